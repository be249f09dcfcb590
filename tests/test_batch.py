"""Batching graphs: offsets, crystal index, disordered sites, device moves."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from skcgcnn.batch import GraphBatch, collate, collate_graphs
from skcgcnn.graph import build_graph


def _cscl(a=4.12):
    return Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_collate_offsets_neighbour_indices(sample_structures):
    _, structures = sample_structures
    graphs = [build_graph(s) for s in structures[:3]]
    batch = collate_graphs(graphs)
    sizes = [g.n_atoms for g in graphs]
    assert len(batch) == 3
    assert batch.n_atoms == sum(sizes)
    assert batch.crystal_index.tolist() == sum(([i] * n for i, n in enumerate(sizes)), [])
    start = 0
    for graph, size in zip(graphs, sizes):
        block = batch.neighbor_indices[start : start + size]
        np.testing.assert_array_equal(block.numpy() - start, graph.neighbor_indices)
        start += size
    assert batch.distances.dtype == torch.float32


def test_collate_with_targets_and_without():
    graph = build_graph(_cscl())
    batch, y = collate([(graph, np.array([1.0], np.float32)), (graph, np.array([2.0], np.float32))])
    assert isinstance(batch, GraphBatch)
    assert y.shape == (2, 1)
    batch, y = collate([(graph, None)])
    assert y is None and len(batch) == 1


def test_collate_mixes_ordered_and_disordered():
    ordered = build_graph(_cscl())
    disordered = build_graph(
        Structure(Lattice.cubic(4.12), [{"Cs": 0.5, "Rb": 0.5}, "Cl"], [[0, 0, 0], [0.5] * 3])
    )
    batch = collate_graphs([ordered, disordered])
    assert batch.occupancies is not None
    assert batch.atomic_numbers.shape == (4, 2)
    np.testing.assert_allclose(batch.occupancies[:2, 0].numpy(), [1.0, 1.0])
    assert batch.occupancies[2].tolist() == [0.5, 0.5]


def test_collate_rejects_mixed_widths_and_empty():
    with pytest.raises(ValueError, match="max_num_nbr"):
        collate_graphs([build_graph(_cscl(), max_num_nbr=12), build_graph(_cscl(), max_num_nbr=8)])
    with pytest.raises(ValueError, match="empty"):
        collate_graphs([])


def test_batch_to_device_keeps_values():
    batch = collate_graphs([build_graph(_cscl())] * 2)
    moved = batch.to("cpu")
    assert len(moved) == 2
    assert torch.equal(moved.distances, batch.distances)


def test_neighbor_mask_comes_from_each_graphs_padding():
    """True exactly for the real neighbours of each graph, from the graph's own radius."""
    lone = Structure(Lattice.cubic(20.0), ["Xe"], [[0, 0, 0]])  # no neighbour within 8 A
    po = Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]])  # 6 within 3.4 A, 12 within 8 A
    graphs = [build_graph(s, warn=False) for s in (_cscl(), lone, po)]
    batch = collate_graphs(graphs)
    assert batch.neighbor_mask.dtype == torch.bool
    assert batch.neighbor_mask.shape == batch.neighbor_indices.shape
    expected = np.concatenate([g.neighbor_mask for g in graphs])
    np.testing.assert_array_equal(batch.neighbor_mask.numpy(), expected)
    assert batch.neighbor_mask[:2].all() and not batch.neighbor_mask[2].any()
    assert batch.radius == 8.0
    small = build_graph(po, radius=3.4, max_num_nbr=12, warn=False)
    assert small.neighbor_mask.sum(axis=1).tolist() == [6]
    np.testing.assert_array_equal(collate_graphs([small]).neighbor_mask.numpy(),
                                  small.neighbor_mask)
    # a neighbour at exactly the radius is real, whatever the radius's float32 rounding
    at_edge = build_graph(po, radius=3.35, max_num_nbr=12, warn=False)
    assert at_edge.neighbor_mask.sum() == 6


def test_collate_rejects_mixed_radii():
    with pytest.raises(ValueError, match="share the radius"):
        collate_graphs([build_graph(_cscl(), radius=8.0), build_graph(_cscl(), radius=6.0)])


def test_batch_to_device_keeps_mask_and_radius():
    batch = collate_graphs([build_graph(_cscl())] * 2)
    moved = batch.pin_memory() if torch.cuda.is_available() else batch.to("cpu")
    assert torch.equal(moved.neighbor_mask, batch.neighbor_mask) and moved.radius == batch.radius


def test_collate_records_distinct_distances(sample_structures):
    _, structures = sample_structures
    batch = collate_graphs([build_graph(s) for s in structures[:4]])
    values, index = batch.distance_values, batch.distance_index
    assert index.shape == batch.distances.shape and index.dtype == torch.int64
    assert torch.equal(values[index], batch.distances)
    assert torch.equal(values, torch.unique(batch.distances))  # distinct and sorted
