"""The CGCNN network (Xie & Grossman, PRL 120, 145301, 2018) as a PyTorch module.

The architecture is the reference implementation's, layer for layer and with the same parameter
names, so its checkpoints load with ``load_state_dict``:

``embedding`` (Linear(d, F)) -> ``n_conv`` x :class:`ConvLayer` -> mean pooling over each crystal's
atoms -> softplus -> ``conv_to_fc`` (Linear(F, H)) -> softplus [-> dropout, classification] ->
(``n_h`` - 1) x (Linear(H, H), softplus) -> ``fc_out``.

The atom embedding is applied to the element table once per forward pass (101 rows) and then
looked up per atom, instead of multiplying every atom's one-hot vector (the same function).

The convolution is chosen by ``conv``, a key of :data:`CONV_LAYERS`: the reference's gated one
(``conv="gated"``, the paper's Eq. 5, :class:`ConvLayer`), the paper's simpler one
(``conv="simple"``, Eq. 4, :class:`SimpleConvLayer`) or the plain graph convolution of Kipf &
Welling that the paper starts from (``conv="gcn"``, :class:`GCNLayer`). The layers, the Gaussian
distance features and the contract a layer registered in :data:`CONV_LAYERS` follows are in
:mod:`skcgcnn._convolutions`; they are importable from here. The module checks that a batch's
graphs were built with its ``radius``, and offers two read-outs: the reference's mean of atom
embeddings followed by the head (``readout="mean_embedding"``) or the head applied to every atom
followed by the mean (``readout="mean_output"``), for which the per-atom outputs of
:meth:`CGCNN.atom_outputs` are exact additive contributions (the paper's site-energy analysis).
A third read-out, not the paper's, ``readout="mean_embedding+composition"``, also hands the head
the crystal's composition statistics (:meth:`CGCNN.composition`: mean, standard deviation,
minimum and maximum of the element table's rows over the crystal's atoms, the kind of descriptor
a Magpie random forest is built on) beside the pooled embedding.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ._convolutions import (
    CONV_LAYERS,
    ConvLayer,
    EdgeFeatures,
    GaussianExpansion,
    GCNLayer,
    SimpleConvLayer,
    _gather,
)
from .batch import GraphBatch

__all__ = [
    "CGCNN",
    "CONV_LAYERS",
    "READOUTS",
    "ConvLayer",
    "EdgeFeatures",
    "GCNLayer",
    "GaussianExpansion",
    "SimpleConvLayer",
]


#: Default spacing and width of the Gaussians of the layers that use them (the reference's).
DEFAULT_GAUSSIAN_STEP = 0.2
#: Read-outs available as ``CGCNN(readout=...)``.
READOUTS = ("mean_embedding", "mean_output", "mean_embedding+composition")
#: The statistics over a crystal's atoms of :meth:`CGCNN.composition`, in their order.
COMPOSITION_STATISTICS = ("mean", "std", "min", "max")


class CGCNN(nn.Module):
    """Crystal Graph Convolutional Neural Network.

    Parameters
    ----------
    atom_features : array-like of shape (n_elements + 1, d)
        Element feature table indexed by atomic number (row 0 unused); see
        :mod:`skcgcnn.elements`. Held as a (non-trainable, non-persistent) buffer.
    n_outputs : int, default=1
        Regression targets, or classes for classification.
    classification : bool, default=False
        Classification head: dropout after ``conv_to_fc`` and logits out (apply a softmax for
        probabilities). Regression outputs are unbounded.
    atom_fea_len : int, default=64
        F, width of the atom features in the convolutions.
    n_conv : int, default=3
        Number of convolution layers.
    h_fea_len : int, default=128
        H, width of the hidden layers after pooling.
    n_h : int, default=1
        Number of hidden layers after pooling.
    radius : float, default=8.0
        The cut-off radius of the graphs the module is fed (largest Gaussian centre). A batch of
        graphs built with another radius is refused with a ValueError.
    gaussian_step : float or None, default=None
        Spacing and width of the Gaussians; None means 0.2 A (the reference's) for the
        convolutions that use Gaussian features. A convolution that does not use them
        (``conv="gcn"``) refuses a value.
    dropout : float or None, default=None
        Dropout after ``conv_to_fc``; None means 0.5 for classification and none for regression,
        as in the reference.
    conv : {"gated", "simple", "gcn"}, default="gated"
        The convolution, a key of :data:`CONV_LAYERS`: the reference's gated one
        (:class:`ConvLayer`, the paper's Eq. 5), the paper's simple one (:class:`SimpleConvLayer`,
        Eq. 4) or Kipf & Welling's graph convolution with distance-weighted adjacency
        (:class:`GCNLayer`).
    readout : {"mean_embedding", "mean_output", "mean_embedding+composition"}, \
default="mean_embedding"
        "mean_embedding": mean of the atom embeddings, then the head (the reference).
        "mean_output": the head applied to every atom, then the mean of the atoms' outputs, so
        that :meth:`atom_outputs` are exact additive (per-atom) contributions to the prediction.
        "mean_embedding+composition": the mean of the atom embeddings and the crystal's
        composition statistics (:meth:`composition`, 4 d numbers, not learned) side by side
        into the head, whose first layer is then Linear(F + 4 d, H). Not the paper's; an
        option for small data, where fixed composition descriptors carry much of the signal.

    Examples
    --------
    >>> import torch
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.batch import collate_graphs
    >>> from skcgcnn.elements import cgcnn_encoding
    >>> from skcgcnn.graph import build_graph
    >>> cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> model = CGCNN(cgcnn_encoding(), n_outputs=2).eval()
    >>> batch = collate_graphs([build_graph(cscl)] * 3)
    >>> model(batch).shape, model.embed(batch).shape
    (torch.Size([3, 2]), torch.Size([3, 64]))
    """

    def __init__(
        self,
        atom_features: np.ndarray | torch.Tensor,
        n_outputs: int = 1,
        classification: bool = False,
        atom_fea_len: int = 64,
        n_conv: int = 3,
        h_fea_len: int = 128,
        n_h: int = 1,
        radius: float = 8.0,
        gaussian_step: float | None = None,
        dropout: float | None = None,
        conv: str = "gated",
        readout: str = "mean_embedding",
    ) -> None:
        super().__init__()
        if conv not in CONV_LAYERS:
            raise ValueError(f"conv must be one of {sorted(CONV_LAYERS)}, got {conv!r}")
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {list(READOUTS)}, got {readout!r}")
        if not (np.isfinite(radius) and radius > 0):
            raise ValueError(f"radius must be positive, got {radius!r}")
        layer = CONV_LAYERS[conv]
        self.conv = conv
        self.readout = readout
        # a copy: the input may be read-only (the cached built-in table is)
        table = torch.tensor(np.asarray(atom_features, dtype=np.float32))
        if table.ndim != 2:
            raise ValueError(f"atom_features must be 2-D (elements, features), got {table.ndim}-D")
        self.register_buffer("atom_features", table, persistent=False)
        self.classification = classification
        self.radius = float(radius)
        self.embedding = nn.Linear(table.shape[1], atom_fea_len)
        self.gaussians: GaussianExpansion | None
        if layer.uses_gaussians:
            step = DEFAULT_GAUSSIAN_STEP if gaussian_step is None else float(gaussian_step)
            if not (np.isfinite(step) and 0 < step <= radius):
                raise ValueError(
                    f"gaussian_step must be in (0, radius={radius:g}], got {gaussian_step!r}"
                )
            self.gaussians = GaussianExpansion(0.0, radius, step)
            self.convs = nn.ModuleList(
                layer(atom_fea_len, self.gaussians.n_centers) for _ in range(n_conv)
            )
        else:
            if gaussian_step is not None:
                raise ValueError(
                    f"conv={conv!r} does not use Gaussian distance features, so gaussian_step "
                    f"must be None (got {gaussian_step!r})"
                )
            self.gaussians = None
            self.convs = nn.ModuleList(layer(atom_fea_len) for _ in range(n_conv))
        n_composition = (len(COMPOSITION_STATISTICS) * table.shape[1]
                         if readout == "mean_embedding+composition" else 0)
        self.conv_to_fc = nn.Linear(atom_fea_len + n_composition, h_fea_len)
        self.conv_to_fc_softplus = nn.Softplus()
        p = (0.5 if classification else 0.0) if dropout is None else dropout
        self.dropout = nn.Dropout(p) if p > 0 else nn.Identity()
        self.fcs = nn.ModuleList(nn.Linear(h_fea_len, h_fea_len) for _ in range(n_h - 1))
        self.softpluses = nn.ModuleList(nn.Softplus() for _ in range(n_h - 1))
        self.fc_out = nn.Linear(h_fea_len, n_outputs)

    def _atom_rows(self, batch: GraphBatch, table: torch.Tensor) -> torch.Tensor:
        """Each atom's row of ``table`` (occupancy-weighted on disordered sites), (N, columns)."""
        rows = _gather(table, batch.atomic_numbers)  # (N, columns), or (N, K, columns)
        if batch.occupancies is None:
            return rows
        return (batch.occupancies.unsqueeze(-1) * rows).sum(dim=1)

    def composition(self, batch: GraphBatch) -> torch.Tensor:
        """Composition statistics of each crystal, shape (n_crystals, 4 d).

        The mean, population standard deviation, minimum and maximum over the crystal's atoms
        of their rows of the element table (``atom_features``, d columns; a disordered site's
        row is the occupancy-weighted mean of its species' rows), in the order of
        :data:`COMPOSITION_STATISTICS`. Fixed descriptors, not learned: with the one-hot
        ``cgcnn`` table the mean is the fraction of atoms in each bin of group, period,
        electronegativity and so on; with the ``magpie`` table these are Magpie-style
        element-property statistics. The head of ``readout="mean_embedding+composition"``
        takes them beside the pooled embedding.
        """
        rows = self._atom_rows(batch, self.atom_features)
        n, index = batch.n_crystals, batch.crystal_index
        counts = torch.bincount(index, minlength=n).clamp(min=1).unsqueeze(1).to(rows.dtype)
        mean = rows.new_zeros((n, rows.shape[1])).index_add_(0, index, rows) / counts
        square = rows.new_zeros((n, rows.shape[1])).index_add_(0, index, rows * rows) / counts
        std = (square - mean * mean).clamp(min=0.0).sqrt()
        spread = index.unsqueeze(1).expand_as(rows)
        low = rows.new_full((n, rows.shape[1]), math.inf).scatter_reduce(
            0, spread, rows, reduce="amin", include_self=True)
        high = rows.new_full((n, rows.shape[1]), -math.inf).scatter_reduce(
            0, spread, rows, reduce="amax", include_self=True)
        return torch.cat([mean, std, low, high], dim=1)

    def atom_embeddings(self, batch: GraphBatch) -> torch.Tensor:
        """Atom features after the convolutions, shape (N, atom_fea_len)."""
        element_rows = self.embedding(self.atom_features)  # (n_elements + 1, F)
        if batch.occupancies is None:
            atom_fea = _gather(element_rows, batch.atomic_numbers)
        else:  # occupancy-weighted average of element features, then the affine embedding
            bias = self.embedding.bias
            atom_fea = self._atom_rows(batch, element_rows - bias) + bias
        self.check_batch(batch)
        if len(self.convs) == 0:
            return atom_fea
        if self.gaussians is None:
            nbr_fea = batch.distances
        else:  # Gaussians of the distinct distances only
            values, index = batch.distance_values, batch.distance_index
            if values is None or index is None:
                values, index = torch.unique(batch.distances, return_inverse=True)
            nbr_fea = EdgeFeatures(self.gaussians(values), index)
            if not getattr(self.convs[0], "compact_edge_features", False):
                nbr_fea = nbr_fea.dense()
        for conv in self.convs:
            atom_fea = conv(atom_fea, nbr_fea, batch.neighbor_indices, batch.neighbor_mask)
        return atom_fea

    def check_batch(self, batch: GraphBatch) -> None:
        """Raise a ValueError unless the batch's graphs were built with the module's radius."""
        if not math.isclose(batch.radius, self.radius, rel_tol=1e-9, abs_tol=1e-12):
            raise ValueError(
                f"the crystal graphs were built with radius {batch.radius:g} A but the module "
                f"has radius={self.radius:g} (module__radius); build the graphs with "
                f"radius={self.radius:g} or leave module__radius unset (it follows the graphs)"
            )

    def pool(self, atom_fea: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        """Mean of the atom features of each crystal (one scatter, no loop), (n_crystals, F)."""
        summed = atom_fea.new_zeros((batch.n_crystals, atom_fea.shape[1]))
        summed.index_add_(0, batch.crystal_index, atom_fea)
        counts = torch.bincount(batch.crystal_index, minlength=batch.n_crystals)
        return summed / counts.clamp(min=1).unsqueeze(1).to(atom_fea.dtype)

    def embed(self, batch: GraphBatch) -> torch.Tensor:
        """Pooled crystal embeddings (the reference's ``crys_fea``), shape (n_crystals, F)."""
        return self.pool(self.atom_embeddings(batch), batch)

    def head(self, crystal_fea: torch.Tensor,
             composition: torch.Tensor | None = None) -> torch.Tensor:
        """Map pooled crystal embeddings to outputs (n_crystals, n_outputs).

        ``composition`` (:meth:`composition`'s rows, one per embedding) is required by, and
        only accepted with, ``readout="mean_embedding+composition"``.
        """
        hidden = self.conv_to_fc_softplus(crystal_fea)
        if (composition is None) != (self.readout != "mean_embedding+composition"):
            raise ValueError(f"readout={self.readout!r}: the head takes composition statistics "
                             "with 'mean_embedding+composition' and only then")
        if composition is not None:
            hidden = torch.cat([hidden, composition], dim=1)
        hidden = self.conv_to_fc_softplus(self.conv_to_fc(hidden))
        hidden = self.dropout(hidden)
        for fc, softplus in zip(self.fcs, self.softpluses):
            hidden = softplus(fc(hidden))
        return self.fc_out(hidden)

    def atom_outputs(self, batch: GraphBatch) -> torch.Tensor:
        """The head applied to each atom's embedding, shape (N, n_outputs).

        With ``readout="mean_output"`` the prediction of a crystal is exactly the mean of its
        atoms' outputs (the paper's site energies). With the reference read-out
        (``readout="mean_embedding"``) the head is applied to the mean embedding instead, and the
        mean of these per-atom outputs differs from the prediction by the head's curvature (the
        exact decomposition is then the one of :meth:`embed` into :meth:`atom_embeddings`).
        With ``readout="mean_embedding+composition"`` each atom's embedding goes into the head
        with its crystal's composition statistics.
        """
        if self.readout == "mean_embedding+composition":
            per_atom = _gather(self.composition(batch), batch.crystal_index)
            return self.head(self.atom_embeddings(batch), per_atom)
        return self.head(self.atom_embeddings(batch))

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """Predictions (regression values or classification logits), (n_crystals, n_outputs)."""
        if self.readout == "mean_output":
            return self.pool(self.atom_outputs(batch), batch)
        if self.readout == "mean_embedding+composition":
            return self.head(self.embed(batch), self.composition(batch))
        return self.head(self.embed(batch))
