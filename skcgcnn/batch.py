"""Batching crystal graphs: many :class:`~skcgcnn.graph.CrystalGraph` -> one :class:`GraphBatch`.

A batch concatenates the atoms of all its crystals (``N`` rows in total), offsets each crystal's
neighbour indices by the number of atoms before it, and records which crystal each atom belongs
to, so pooling is one vectorised scatter. It also says explicitly which neighbour slots are padding
(``neighbor_mask``, from each graph's own radius) and carries the graphs' radius, which the model
checks against its own settings. :class:`GraphDataset` holds graphs with their targets (and sample
weights) for skorch's data loaders, and :func:`collate` is their ``collate_fn``.

For a :class:`~skcgcnn.store.GraphStore`, :class:`StoreDataset` hands the data loader row
numbers, a whole batch at a time (``__getitems__``), and :func:`collate_store` gathers the batch
from the store's memory-mapped columns with vectorised numpy: no per-graph Python objects on the
training path, and the same tensors as :func:`collate_graphs` gives for the same graphs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .graph import CrystalGraph, padding_mask
from .store import GraphStore

__all__ = ["GraphBatch", "GraphDataset", "StoreDataset", "collate", "collate_graphs",
           "collate_store", "graph_dataset"]


@dataclass
class GraphBatch:
    """Tensors for a batch of crystals.

    Attributes
    ----------
    atomic_numbers : LongTensor of shape (N,) or (N, K)
        Species of every atom of the batch (2-D with ``occupancies`` when a crystal is disordered).
    neighbor_indices : LongTensor of shape (N, M)
        Neighbours of each atom as row indices into the batch.
    distances : FloatTensor of shape (N, M)
        Neighbour distances in Angstrom.
    neighbor_mask : BoolTensor of shape (N, M)
        True for a real neighbour, False for a padded slot (an atom with fewer than M neighbours
        within the radius), from each graph's own padding
        (:attr:`~skcgcnn.graph.CrystalGraph.neighbor_mask`).
    crystal_index : LongTensor of shape (N,)
        Index of the crystal (0..n_crystals-1) each atom belongs to.
    n_crystals : int
        Number of crystals; ``len(batch)``.
    radius : float
        Cut-off radius the graphs were built with (the same for all graphs of a batch).
    occupancies : FloatTensor of shape (N, K) or None
        Site occupancies when the batch holds disordered sites.
    distance_values : FloatTensor of shape (U,) or None
        The distinct values of ``distances`` (sorted), so that the model expands only those.
    distance_index : LongTensor of shape (N, M) or None
        ``distances == distance_values[distance_index]``. Both are None when not precomputed
        (the model then finds them itself).

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.graph import build_graph
    >>> cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> batch = collate_graphs([build_graph(cscl), build_graph(cscl)])
    >>> len(batch), batch.distances.shape, batch.radius
    (2, torch.Size([4, 12]), 8.0)
    >>> batch.crystal_index.tolist()
    [0, 0, 1, 1]
    >>> bool(batch.neighbor_mask.all())  # CsCl has 12 neighbours within 8 A: no padding
    True
    """

    atomic_numbers: torch.Tensor
    neighbor_indices: torch.Tensor
    distances: torch.Tensor
    neighbor_mask: torch.Tensor
    crystal_index: torch.Tensor
    n_crystals: int
    radius: float
    occupancies: torch.Tensor | None = None
    distance_values: torch.Tensor | None = None
    distance_index: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.n_crystals

    @property
    def n_atoms(self) -> int:
        """Total number of atoms in the batch."""
        return int(self.crystal_index.shape[0])

    def to(self, device: str | torch.device, non_blocking: bool = True) -> GraphBatch:
        """Return a copy of the batch on ``device`` (tensors copied asynchronously if possible)."""
        moved = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor):
                value = value.to(device, non_blocking=non_blocking)
            moved[field.name] = value
        return GraphBatch(**moved)

    def pin_memory(self) -> GraphBatch:
        """Pin the tensors (used by ``DataLoader(pin_memory=True)`` for faster GPU copies)."""
        pinned = {
            field.name: getattr(self, field.name).pin_memory()
            if isinstance(getattr(self, field.name), torch.Tensor)
            else getattr(self, field.name)
            for field in fields(self)
        }
        return GraphBatch(**pinned)


def _species_block(graphs: Sequence[CrystalGraph]) -> tuple[np.ndarray, np.ndarray | None]:
    if all(g.is_ordered for g in graphs):
        return np.concatenate([g.atomic_numbers for g in graphs]), None
    width = max(1 if g.is_ordered else g.atomic_numbers.shape[1] for g in graphs)
    numbers, occupancies = [], []
    for g in graphs:
        z = np.zeros((g.n_atoms, width), dtype=np.int16)
        w = np.zeros((g.n_atoms, width), dtype=np.float32)
        if g.is_ordered:
            z[:, 0], w[:, 0] = g.atomic_numbers, 1.0
        else:
            k = g.atomic_numbers.shape[1]
            z[:, :k], w[:, :k] = g.atomic_numbers, g.occupancies
        numbers.append(z)
        occupancies.append(w)
    return np.concatenate(numbers), np.concatenate(occupancies)


def collate_graphs(graphs: Sequence[CrystalGraph]) -> GraphBatch:
    """Concatenate crystal graphs into one :class:`GraphBatch`.

    Parameters
    ----------
    graphs : sequence of CrystalGraph
        All built with the same ``radius`` and ``max_num_nbr``.

    Returns
    -------
    GraphBatch

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.graph import build_graph
    >>> fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])
    >>> batch = collate_graphs([build_graph(po), build_graph(fe)])
    >>> batch.neighbor_indices[1:].unique().tolist()  # Fe indices shifted past the Po atom
    [1, 2]
    """
    if len(graphs) == 0:
        raise ValueError("cannot collate an empty list of crystal graphs")
    widths = {g.max_num_nbr for g in graphs}
    if len(widths) > 1:
        raise ValueError(
            f"crystal graphs in one batch must share max_num_nbr, found {sorted(widths)}"
        )
    radii = {g.radius for g in graphs}
    if len(radii) > 1:
        raise ValueError(
            f"crystal graphs in one batch must share the radius, found {sorted(radii)}"
        )
    (radius,) = radii
    sizes = np.fromiter((g.n_atoms for g in graphs), dtype=np.int64, count=len(graphs))
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    neighbor_indices = np.concatenate(
        [g.neighbor_indices.astype(np.int64) + off for g, off in zip(graphs, offsets)]
    )
    distances = np.concatenate([g.distances for g in graphs])
    atomic_numbers, occupancies = _species_block(graphs)
    values, inverse = np.unique(distances, return_inverse=True)  # edges sharing a distance
    return GraphBatch(
        atomic_numbers=torch.from_numpy(atomic_numbers.astype(np.int64)),
        neighbor_indices=torch.from_numpy(neighbor_indices),
        distances=torch.from_numpy(distances),
        # each graph's own padding (CrystalGraph.neighbor_mask), for all graphs in one pass
        neighbor_mask=torch.from_numpy(padding_mask(distances, radius)),
        crystal_index=torch.from_numpy(np.repeat(np.arange(len(graphs)), sizes)),
        n_crystals=len(graphs),
        radius=radius,
        occupancies=None if occupancies is None else torch.from_numpy(occupancies),
        distance_values=torch.from_numpy(values),
        distance_index=torch.from_numpy(inverse.reshape(distances.shape).astype(np.int64)),
    )


def collate(samples: Sequence) -> tuple[GraphBatch, Any]:
    """``collate_fn`` for skorch's data loaders.

    Parameters
    ----------
    samples : sequence of (CrystalGraph, target) pairs
        As yielded by :class:`GraphDataset`; targets may be ``None``, or ``(y, weight)`` pairs
        when the dataset has sample weights.

    Returns
    -------
    batch : GraphBatch
    targets : Tensor, (Tensor, Tensor) or None
        Stacked targets; the pair (targets, float32 weights) for weighted samples; ``None``
        when the samples have none.

    Examples
    --------
    >>> import numpy as np
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.graph import build_graph
    >>> po = build_graph(Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]]))
    >>> batch, y = collate([(po, np.float32(1.0)), (po, np.float32(2.0))])
    >>> len(batch), y.tolist()
    (2, [1.0, 2.0])
    """
    if isinstance(samples, StoreSamples):  # a batch of a StoreDataset: from the columns
        return collate_store(samples)
    graphs = [sample[0] for sample in samples]
    targets = [sample[1] for sample in samples]
    batch = collate_graphs(graphs)
    if targets[0] is None:
        return batch, None
    if isinstance(targets[0], tuple):  # (y, weight) pairs of a weighted GraphDataset
        y = torch.as_tensor(np.stack([target[0] for target in targets]))
        weight = torch.as_tensor(np.array([target[1] for target in targets], np.float32))
        return batch, (y, weight)
    return batch, torch.as_tensor(np.stack(targets))


class GraphDataset(Dataset):
    """A torch ``Dataset`` of crystal graphs and optional targets.

    Parameters
    ----------
    graphs : sequence of CrystalGraph
    y : array-like of shape (n_samples, ...), optional
    sample_weight : array-like of shape (n_samples,), optional
        Per-sample loss weights; when given, each item's target is the pair ``(y[i], w[i])``,
        which :func:`collate` stacks into a pair of tensors.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.graph import build_graph
    >>> po = build_graph(Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]]))
    >>> ds = GraphDataset([po, po], [0.5, 1.5])
    >>> len(ds), ds[1][1]
    (2, 1.5)
    >>> weighted = GraphDataset([po, po], [0.5, 1.5], sample_weight=[1.0, 3.0])
    >>> batch, (y, w) = collate([weighted[0], weighted[1]])
    >>> y.tolist(), w.tolist()
    ([0.5, 1.5], [1.0, 3.0])
    """

    def __init__(
        self, graphs: Sequence[CrystalGraph], y: Any = None, sample_weight: Any = None
    ) -> None:
        self.graphs = graphs
        self.y = y
        self.sample_weight = sample_weight

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> tuple[CrystalGraph, Any]:
        target = None if self.y is None else self.y[i]
        if self.sample_weight is not None:
            target = (target, self.sample_weight[i])
        return self.graphs[i], target


# --------------------------------------------------------------------------- graph stores
class StoreSamples(list):
    """What :meth:`StoreDataset.__getitems__` returns: the samples of one batch (a list of
    ``(row, target)`` pairs, as a DataLoader expects), plus the store they come from."""

    def __init__(self, store: GraphStore, positions: np.ndarray, targets: Any) -> None:
        super().__init__(zip(positions.tolist(), [None] * len(positions) if targets is None
                             else list(targets)))
        self.store, self.positions, self.targets = store, positions, targets


class StoreDataset(Dataset):
    """A torch ``Dataset`` over a graph store (or a view of one) and optional targets.

    Parameters
    ----------
    store : GraphStore
    y : array-like of shape (n_samples, ...), optional
    sample_weight : array-like of shape (n_samples,), optional
        Per-sample loss weights; each item's target is then the pair ``(y[i], w[i])``.

    Examples
    --------
    >>> import tempfile
    >>> from pymatgen.core import Lattice, Structure
    >>> fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> from skcgcnn.store import GraphStore
    >>> store = GraphStore.from_structures([fe, fe, fe], tempfile.mkdtemp() + "/g")
    >>> ds = StoreDataset(store, [1.0, 2.0, 3.0])
    >>> batch, y = collate_store(ds.__getitems__([2, 0]))
    >>> len(batch), batch.n_atoms, y.tolist()
    (2, 4, [3.0, 1.0])
    """

    def __init__(self, store: GraphStore, y: Any = None, sample_weight: Any = None) -> None:
        self.store = store
        self.y = y
        self.sample_weight = sample_weight

    def __len__(self) -> int:
        return len(self.store)

    def _targets(self, index: Any) -> Any:
        if self.y is None:
            return None
        y = np.asarray(self.y)[index]
        if self.sample_weight is None:
            return y
        return [(t, w) for t, w in zip(y, np.asarray(self.sample_weight)[index])]

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        targets = self._targets([i])
        return self.store[int(i)], None if targets is None else targets[0]

    def __getitems__(self, indices: Sequence[int]) -> StoreSamples:
        positions = np.asarray(indices, dtype=np.int64)
        return StoreSamples(self.store, positions, self._targets(positions))


def batch_from_columns(columns: dict[str, np.ndarray], radius: float) -> GraphBatch:
    """A :class:`GraphBatch` from the output of :meth:`GraphStore.columns` (graphs built with
    ``radius``), equal to what :func:`collate_graphs` makes of the same graphs."""
    sizes = columns["sizes"]
    occupancies = columns.get("occupancies")
    distances = columns["distances"]
    values, inverse = np.unique(distances, return_inverse=True)  # as collate_graphs
    return GraphBatch(
        atomic_numbers=torch.from_numpy(columns["species"]),
        neighbor_indices=torch.from_numpy(columns["neighbor_indices"]),
        distances=torch.from_numpy(columns["distances"]),
        neighbor_mask=torch.from_numpy(padding_mask(columns["distances"], radius)),
        crystal_index=torch.from_numpy(np.repeat(np.arange(len(sizes)), sizes)),
        n_crystals=len(sizes),
        radius=float(radius),
        occupancies=None if occupancies is None else torch.from_numpy(occupancies),
        distance_values=torch.from_numpy(values),
        distance_index=torch.from_numpy(inverse.reshape(distances.shape).astype(np.int64)),
    )


def collate_store(samples: StoreSamples) -> tuple[GraphBatch, Any]:
    """Collate a batch of store rows into ``(GraphBatch, targets)`` from the store's columns
    (:func:`collate` calls it for the samples of a :class:`StoreDataset`).

    Targets are stacked as :func:`collate` does; ``(y, w)`` pairs become a pair of tensors
    (targets, weights).
    """
    store = samples.store
    batch = batch_from_columns(store.columns(samples.positions), store.radius)
    targets = samples.targets
    if targets is None:
        return batch, None
    if isinstance(targets, list):  # (y, w) pairs
        y = torch.as_tensor(np.stack([t for t, _ in targets]))
        w = torch.as_tensor(np.array([w for _, w in targets], dtype=np.float32))
        return batch, (y, w)
    return batch, torch.as_tensor(np.asarray(targets))


def graph_dataset(graphs: Any, y: Any = None, sample_weight: Any = None) -> Dataset:
    """A :class:`StoreDataset` for a :class:`~skcgcnn.store.GraphStore` (or view), else a
    :class:`GraphDataset`."""
    if isinstance(graphs, GraphStore):
        return StoreDataset(graphs, y, sample_weight)
    return GraphDataset(graphs, y, sample_weight)
