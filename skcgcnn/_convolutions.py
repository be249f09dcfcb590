"""The message-passing layers of :class:`~skcgcnn.model.CGCNN`, re-exported by its module.

One round of message passing updates every atom's features from its neighbour slots. The layers
here are the paper's two crystal graph convolutions and the graph convolution it starts from:

* :class:`ConvLayer` (``conv="gated"``): the gated convolution of the reference code (Eq. 5),
  with the reference's parameter names, so its checkpoints load with ``load_state_dict``;
* :class:`SimpleConvLayer` (``conv="simple"``): the simple convolution (Eq. 4);
* :class:`GCNLayer` (``conv="gcn"``): Kipf & Welling's graph convolution with a
  distance-weighted adjacency;

and the distance features they consume: :class:`GaussianExpansion` and :class:`EdgeFeatures`
(the features of the distinct distances of a batch and an (N, M) index into them).

:data:`CONV_LAYERS` is the dispatch of ``CGCNN(conv=...)``: adding a class there adds a ``conv=``
option. Every convolution has one signature, ``forward(atom_fea, nbr_fea, nbr_fea_idx, nbr_mask)``,
and declares what it needs with ``uses_gaussians``: True, ``nbr_fea`` are the Gaussian-expanded
distances (N, M, B) and the class is built as ``cls(atom_fea_len, nbr_fea_len)``; False,
``nbr_fea`` are the raw distances (N, M) and the class is built as ``cls(atom_fea_len)`` (no
Gaussian module, and a ``gaussian_step`` is an error). A Gaussian class may also declare
``compact_edge_features = True`` to receive ``nbr_fea`` as :class:`EdgeFeatures` instead of the
dense tensor. ``nbr_mask`` (N, M) comes from the batch
(:attr:`~skcgcnn.batch.GraphBatch.neighbor_mask`): True for a real neighbour, False for a padded
slot.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CONV_LAYERS",
    "ConvLayer",
    "EdgeFeatures",
    "GCNLayer",
    "GaussianExpansion",
    "SimpleConvLayer",
]


def _gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` along the first dimension, shape ``index.shape + table.shape[1:]``.

    Written with ``index_select``, whose backward (``index_add_``) adds the rows in a fixed order
    on the CPU: advanced indexing's backward (``index_put_`` with accumulation) adds them with
    atomic operations in parallel when torch has several threads, so seeded fits would differ
    from run to run in the last bits.
    """
    return table.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[1:])


class EdgeFeatures(NamedTuple):
    """Edge features stored once per distinct distance: ``rows[index]`` is the (N, M, B) tensor.

    In a batch of crystals many edges share a distance (symmetry-equivalent neighbours), so the
    Gaussian expansion and its product with the edge weights are computed for the U distinct
    distances only (about a fifth of the N*M edges on Materials Project structures) and the
    edges refer to them by ``index``. Convolutions that declare ``compact_edge_features = True``
    receive this; the others receive the dense tensor.

    Examples
    --------
    >>> import torch
    >>> feats = EdgeFeatures(torch.rand(3, 41), torch.tensor([[0, 1], [1, 2]]))
    >>> feats.dense().shape
    torch.Size([2, 2, 41])
    """

    rows: torch.Tensor  #: (U, B) features of the distinct distances
    index: torch.Tensor  #: (N, M) row of ``rows`` for each neighbour slot

    def dense(self) -> torch.Tensor:
        """The (N, M, B) per-slot features."""
        return _gather(self.rows, self.index)


def _edge_rows(nbr_fea: torch.Tensor | EdgeFeatures) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, index)`` of edge features given compactly or as a dense (N, M, B) tensor."""
    if isinstance(nbr_fea, EdgeFeatures):
        return nbr_fea.rows, nbr_fea.index
    n_atoms, n_nbr, width = nbr_fea.shape
    index = torch.arange(n_atoms * n_nbr, device=nbr_fea.device).view(n_atoms, n_nbr)
    return nbr_fea.reshape(n_atoms * n_nbr, width), index


def _batch_norm(layer: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm that uses running statistics for a one-row training batch instead of failing."""
    if layer.training and x.shape[0] == 1:
        return F.batch_norm(
            x, layer.running_mean, layer.running_var, layer.weight, layer.bias,
            training=False, eps=layer.eps,
        )
    return layer(x)


class GaussianExpansion(nn.Module):
    r"""Expand distances on Gaussians: :math:`u_k(d) = \exp(-(d - \mu_k)^2 / \sigma^2)`.

    Centres :math:`\mu_k` run from ``dmin`` to ``dmax`` in steps of ``step`` (0, 0.2, ..., 8.0:
    41 centres for the defaults) and :math:`\sigma` = ``step``, as in the reference code.

    Parameters
    ----------
    dmin, dmax, step : float
        Grid of centres in Angstrom.

    Examples
    --------
    >>> import torch
    >>> expand = GaussianExpansion(0.0, 8.0, 0.2)
    >>> expand(torch.tensor([[2.0]])).shape
    torch.Size([1, 1, 41])
    """

    def __init__(self, dmin: float = 0.0, dmax: float = 8.0, step: float = 0.2) -> None:
        super().__init__()
        centers = np.arange(dmin, dmax + step, step)  # the reference's grid, float64 then cast
        self.register_buffer(
            "centers", torch.as_tensor(centers, dtype=torch.float32), persistent=False
        )
        self.step = float(step)

    @property
    def n_centers(self) -> int:
        """Number of Gaussians."""
        return int(self.centers.shape[0])

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """Map distances of any shape ``S`` to features of shape ``S + (n_centers,)``."""
        return torch.exp(-((distances.unsqueeze(-1) - self.centers) ** 2) / self.step**2)


class ConvLayer(nn.Module):
    r"""The gated crystal graph convolution of CGCNN (the paper's Eq. 5, as coded by its authors).

    .. math::

        z_{ij} &= v_i \oplus v_j \oplus u_{ij} \\
        g_{ij} &= \mathrm{BN}_1(z_{ij} W + b) = g^f_{ij} \oplus g^s_{ij} \\
        v_i &\leftarrow \mathrm{softplus}\Big(v_i + \mathrm{BN}_2\big(
            \textstyle\sum_j \sigma(g^f_{ij}) \odot \mathrm{softplus}(g^s_{ij})\big)\Big)

    with the sum over each atom's M neighbour slots. Padded slots take part in the sum, as in the
    reference (their Gaussian features are zero, but the padding atom's features and the bias
    are not): ``nbr_mask`` is accepted for the common signature and deliberately not used, so
    that the original checkpoints reproduce.

    Parameters
    ----------
    atom_fea_len : int
        F, width of the atom features.
    nbr_fea_len : int
        B, number of Gaussians per distance.

    Notes
    -----
    Shapes: atom_fea (N, F), nbr_fea (N, M, B) or :class:`EdgeFeatures`, nbr_fea_idx (N, M),
    nbr_mask (N, M) -> (N, F)

    The concatenation is never built: ``fc_full(v_i ⊕ v_j ⊕ u_ij)`` is computed as
    ``v_i W_a + v_j W_b + (u_ij W_c + b)``, with both atom terms from one (N, F) x (F, 4F) product
    and the edge term once per distinct distance, and the three rows of each edge are summed
    by one ``embedding_bag`` (a gather-sum whose backward adds in a fixed order).

    Examples
    --------
    >>> import torch
    >>> layer = ConvLayer(atom_fea_len=8, nbr_fea_len=41)
    >>> idx, mask = torch.randint(0, 5, (5, 12)), torch.ones(5, 12, dtype=torch.bool)
    >>> layer(torch.randn(5, 8), torch.rand(5, 12, 41), idx, mask).shape
    torch.Size([5, 8])
    """

    uses_gaussians: ClassVar[bool] = True
    compact_edge_features: ClassVar[bool] = True

    def __init__(self, atom_fea_len: int, nbr_fea_len: int) -> None:
        super().__init__()
        self.atom_fea_len = atom_fea_len
        self.nbr_fea_len = nbr_fea_len
        self.fc_full = nn.Linear(2 * atom_fea_len + nbr_fea_len, 2 * atom_fea_len)
        self.bn1 = nn.BatchNorm1d(2 * atom_fea_len)
        self.bn2 = nn.BatchNorm1d(atom_fea_len)

    def reset_parameters(self) -> None:
        """Re-initialise weights and batch-norm statistics."""
        self.fc_full.reset_parameters()
        self.bn1.reset_parameters()
        self.bn2.reset_parameters()

    def forward(
        self,
        atom_fea: torch.Tensor,
        nbr_fea: torch.Tensor,
        nbr_fea_idx: torch.Tensor,
        nbr_mask: torch.Tensor,
    ) -> torch.Tensor:
        """One round of message passing; see the class docstring for the equation."""
        n_atoms, n_nbr = nbr_fea_idx.shape
        width = self.atom_fea_len
        weight = self.fc_full.weight
        edge_rows, edge_index = _edge_rows(nbr_fea)
        # (F, 4F) = [W_a^T | W_b^T]: row 2i of the (2N, 2F) view is v_i W_a, row 2i+1 is v_i W_b
        atom_weight = (
            weight[:, : 2 * width].reshape(2 * width, 2, width).permute(2, 1, 0).reshape(width, -1)
        )
        atom_terms = (atom_fea @ atom_weight).view(2 * n_atoms, 2 * width)
        edge_terms = torch.addmm(self.fc_full.bias, edge_rows, weight[:, 2 * width :].t())
        n_edge_rows = edge_terms.shape[0]
        centre = torch.arange(n_atoms, device=nbr_fea_idx.device).unsqueeze(1)
        bags = torch.stack(
            [
                edge_index,
                (2 * centre + n_edge_rows).expand(n_atoms, n_nbr),
                2 * nbr_fea_idx + (n_edge_rows + 1),
            ],
            dim=-1,
        ).view(-1, 3)
        # z_ij W + b = (u_ij W_c + b) + v_i W_a + v_j W_b for every edge, one gather-sum
        table = torch.cat([edge_terms, atom_terms])
        gated = F.embedding_bag(bags, table, mode="sum")  # (N*M, 2F)
        gated = _batch_norm(self.bn1, gated).view(n_atoms, n_nbr, 2 * width)
        nbr_filter, nbr_core = gated.chunk(2, dim=2)
        summed = (torch.sigmoid(nbr_filter) * F.softplus(nbr_core)).sum(dim=1)
        return F.softplus(atom_fea + _batch_norm(self.bn2, summed))


class SimpleConvLayer(nn.Module):
    r"""The simple crystal graph convolution of the CGCNN paper (its Eq. 4).

    .. math::

        v_i \leftarrow g\Big(\big(\textstyle\sum_{j} v_j \oplus u_{ij}\big) W_c + v_i W_s + b\Big)

    with :math:`g` = softplus and the sum over the neighbours ``j`` of atom ``i`` kept in the graph
    (the M nearest within the radius; padded slots, which are not neighbours, are left out). The
    same :math:`W_c` acts on every neighbour, which neglects the differences of interaction
    strength between neighbours: the limitation that motivates the gated Eq. 5
    (:class:`ConvLayer`).
    :math:`W_c` is ``fc_nbr`` (no bias) and :math:`W_s, b` are ``fc_self``.

    Parameters
    ----------
    atom_fea_len : int
        F, width of the atom features.
    nbr_fea_len : int
        B, number of Gaussians per distance.

    Notes
    -----
    Shapes: atom_fea (N, F), nbr_fea (N, M, B), nbr_fea_idx (N, M), nbr_mask (N, M) bool -> (N, F)

    Examples
    --------
    >>> import torch
    >>> layer = SimpleConvLayer(atom_fea_len=8, nbr_fea_len=41)
    >>> idx, mask = torch.randint(0, 5, (5, 12)), torch.ones(5, 12, dtype=torch.bool)
    >>> layer(torch.randn(5, 8), torch.rand(5, 12, 41), idx, mask).shape
    torch.Size([5, 8])
    """

    uses_gaussians: ClassVar[bool] = True

    def __init__(self, atom_fea_len: int, nbr_fea_len: int) -> None:
        super().__init__()
        self.atom_fea_len = atom_fea_len
        self.nbr_fea_len = nbr_fea_len
        self.fc_nbr = nn.Linear(atom_fea_len + nbr_fea_len, atom_fea_len, bias=False)
        self.fc_self = nn.Linear(atom_fea_len, atom_fea_len)

    def reset_parameters(self) -> None:
        """Re-initialise the weights."""
        self.fc_nbr.reset_parameters()
        self.fc_self.reset_parameters()

    def forward(
        self,
        atom_fea: torch.Tensor,
        nbr_fea: torch.Tensor,
        nbr_fea_idx: torch.Tensor,
        nbr_mask: torch.Tensor,
    ) -> torch.Tensor:
        """One round of message passing; see the class docstring for the equation."""
        if isinstance(nbr_fea, EdgeFeatures):
            nbr_fea = nbr_fea.dense()
        keep = nbr_mask.unsqueeze(-1).to(atom_fea.dtype)  # padded slots contribute nothing
        nbr_atoms = _gather(atom_fea, nbr_fea_idx)  # (N, M, F)
        summed = torch.cat([(nbr_atoms * keep).sum(dim=1), (nbr_fea * keep).sum(dim=1)], dim=1)
        return F.softplus(self.fc_nbr(summed) + self.fc_self(atom_fea))


class GCNLayer(nn.Module):
    r"""Graph convolution of Kipf & Welling (ICLR 2017) on the crystal graph.

    .. math::

        H' = g\big(\hat A H W + b\big), \qquad
        \hat A_{ii} = \frac{1}{d_i}, \quad
        \hat A_{ij} = \frac{w_{ij}}{\sqrt{d_i d_j}}, \quad
        d_i = 1 + \textstyle\sum_j w_{ij}, \quad w_{ij} = 1 / r_{ij}

    i.e. :math:`\hat A = D^{-1/2}(A + I)D^{-1/2}` with the self-loops of Kipf & Welling and the
    adjacency :math:`A_{ij} = w_{ij}` weighted by inverse distance (in 1/Angstrom) over the M
    neighbour slots of atom ``i`` (padded slots, ``nbr_mask`` False, have :math:`w_{ij} = 0`; a
    neighbour met several times through periodic images adds up). :math:`g` = softplus. The
    crystal graph is directed (``j`` is among the M nearest of ``i``, not necessarily the reverse),
    so :math:`d_i` is the weighted out-degree. Bond lengths enter only through :math:`w_{ij}`: the
    layer takes the raw distances as ``nbr_fea`` (``uses_gaussians = False``), and the module
    builds no Gaussian expansion for it. This is the plain graph convolution the CGCNN paper
    departs from. ``fc`` holds :math:`W` and :math:`b`.

    Parameters
    ----------
    atom_fea_len : int
        F, width of the atom features.

    Notes
    -----
    Shapes: atom_fea (N, F), nbr_fea = distances (N, M), nbr_fea_idx (N, M), nbr_mask (N, M)
    -> (N, F)

    Examples
    --------
    >>> import torch
    >>> layer = GCNLayer(atom_fea_len=8)
    >>> idx, mask = torch.randint(0, 5, (5, 12)), torch.ones(5, 12, dtype=torch.bool)
    >>> layer(torch.randn(5, 8), 2.0 + torch.rand(5, 12), idx, mask).shape
    torch.Size([5, 8])
    """

    uses_gaussians: ClassVar[bool] = False

    def __init__(self, atom_fea_len: int) -> None:
        super().__init__()
        self.atom_fea_len = atom_fea_len
        self.fc = nn.Linear(atom_fea_len, atom_fea_len)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform weights and zero bias, as Kipf & Welling initialise them.

        (PyTorch's default ``Linear`` initialisation shrinks the features threefold per layer,
        on top of the neighbourhood averaging, and the network then barely trains.)
        """
        nn.init.xavier_uniform_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    @staticmethod
    def edge_weights(distances: torch.Tensor, nbr_mask: torch.Tensor) -> torch.Tensor:
        """:math:`w_{ij} = 1/r_{ij}` for real neighbours, 0 for padded slots."""
        inverse = 1.0 / distances.clamp(min=1e-6)
        return torch.where(nbr_mask, inverse, torch.zeros_like(inverse))

    def forward(
        self,
        atom_fea: torch.Tensor,
        nbr_fea: torch.Tensor,
        nbr_fea_idx: torch.Tensor,
        nbr_mask: torch.Tensor,
    ) -> torch.Tensor:
        """One propagation step; see the class docstring for the equation."""
        nbr_weight = self.edge_weights(nbr_fea, nbr_mask)  # (N, M)
        degree = 1.0 + nbr_weight.sum(dim=1)  # (N,)
        inv_sqrt = degree.rsqrt()
        projected = F.linear(atom_fea, self.fc.weight)  # H W, (N, F)
        coef = nbr_weight * inv_sqrt.unsqueeze(1) * _gather(inv_sqrt, nbr_fea_idx)  # (N, M)
        aggregated = projected / degree.unsqueeze(1) + (
            coef.unsqueeze(-1) * _gather(projected, nbr_fea_idx)
        ).sum(dim=1)
        return F.softplus(aggregated + self.fc.bias)


#: Convolutions available as ``CGCNN(conv=...)``: the dispatch (see the module docstring for the
#: contract a class registered here must follow).
CONV_LAYERS: dict[str, type[nn.Module]] = {
    "gated": ConvLayer,
    "simple": SimpleConvLayer,
    "gcn": GCNLayer,
}
