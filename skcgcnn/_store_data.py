"""Training straight from a :class:`~skcgcnn.store.GraphStore`: a torch Dataset and its collate.

The dataset yields row numbers, not graphs: the DataLoader asks it for a whole batch at once
(``__getitems__``), and the batch is gathered from the store's memory-mapped columns with
vectorised numpy (:meth:`GraphStore.columns`), so no per-graph Python object is made on the
training path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .batch import GraphBatch
from .store import GraphStore

__all__ = ["StoreDataset", "StoreSamples", "collate_store"]


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


def batch_from_columns(columns: dict[str, np.ndarray]) -> GraphBatch:
    """A :class:`GraphBatch` from the output of :meth:`GraphStore.columns`."""
    sizes = columns["sizes"]
    occupancies = columns.get("occupancies")
    return GraphBatch(
        atomic_numbers=torch.from_numpy(columns["species"]),
        neighbor_indices=torch.from_numpy(columns["neighbor_indices"]),
        distances=torch.from_numpy(columns["distances"]),
        crystal_index=torch.from_numpy(np.repeat(np.arange(len(sizes)), sizes)),
        n_crystals=len(sizes),
        occupancies=None if occupancies is None else torch.from_numpy(occupancies),
    )


def collate_store(samples: StoreSamples) -> tuple[GraphBatch, Any]:
    """Collate a batch of store rows into ``(GraphBatch, targets)`` from the store's columns.

    Targets are stacked as :func:`skcgcnn.batch.collate` does; ``(y, w)`` pairs become a pair
    of tensors (targets, weights).
    """
    batch = batch_from_columns(samples.store.columns(samples.positions))
    targets = samples.targets
    if targets is None:
        return batch, None
    if isinstance(targets, list):  # (y, w) pairs
        y = torch.as_tensor(np.stack([t for t, _ in targets]))
        w = torch.as_tensor(np.array([w for _, w in targets], dtype=np.float32))
        return batch, (y, w)
    return batch, torch.as_tensor(np.asarray(targets))
