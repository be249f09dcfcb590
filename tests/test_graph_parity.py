"""Crystal graphs equal the reference implementation's on its 10 sample CIFs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from shared_data import REFERENCE

from skcgcnn.graph import CrystalGraph, build_graph


def _reference_graph(cif_id: str):
    return np.load(REFERENCE / "derived" / "graphs" / f"{cif_id}.npz")


def test_graphs_match_reference(sample_structures):
    ids, structures = sample_structures
    assert len(ids) == 10
    for cif_id, structure in zip(ids, structures):
        ref = _reference_graph(cif_id)
        graph = build_graph(structure, radius=8.0, max_num_nbr=12)
        np.testing.assert_array_equal(graph.atomic_numbers, ref["atomic_numbers"])
        assert graph.distances.dtype == np.float32
        # per atom: sorted neighbour distances agree ...
        np.testing.assert_allclose(
            np.sort(graph.distances, axis=1), np.sort(ref["nbr_dist"], axis=1), atol=1e-5
        )
        # ... and the neighbour multiset agrees once tied neighbours are treated as equal:
        # group (distance rounded, neighbour species) pairs per atom.
        for atom in range(graph.n_atoms):
            ours = sorted(
                (round(float(d), 4), int(graph.atomic_numbers[j]))
                for d, j in zip(graph.distances[atom], graph.neighbor_indices[atom])
            )
            theirs = sorted(
                (round(float(d), 4), int(ref["atomic_numbers"][j]))
                for d, j in zip(ref["nbr_dist"][atom], ref["nbr_fea_idx"][atom])
            )
            assert ours == theirs, (cif_id, atom)


def test_graph_is_compact_and_picklable(sample_structures):
    _, structures = sample_structures
    graph = build_graph(structures[0])
    assert graph.neighbor_indices.dtype == np.int32
    assert graph.nbytes / graph.n_atoms <= 150  # bytes per atom: nothing expanded is stored
    clone = pickle.loads(pickle.dumps(graph))
    assert isinstance(clone, CrystalGraph)
    assert clone == graph


def test_graph_invariant_to_cell_choice(sample_structures):
    """A supercell's graph has the same neighbour distances per atom as the unit cell's."""
    _, structures = sample_structures
    structure = structures[1]  # KCl, 2 atoms
    unit = build_graph(structure)
    supercell = build_graph(structure * (2, 1, 1))
    assert supercell.n_atoms == 2 * unit.n_atoms
    np.testing.assert_allclose(
        np.sort(supercell.distances[:: 2], axis=1)[:, :8],
        np.sort(unit.distances, axis=1)[:, :8],
        atol=1e-5,
    )


@pytest.mark.parametrize("radius,max_num_nbr", [(6.0, 8), (8.0, 12), (10.0, 16)])
def test_graph_respects_radius_and_width(sample_structures, radius, max_num_nbr):
    _, structures = sample_structures
    graph = build_graph(structures[4], radius=radius, max_num_nbr=max_num_nbr)
    assert graph.neighbor_indices.shape == (graph.n_atoms, max_num_nbr)
    real = graph.distances <= radius
    assert real.all()  # TiO2 has plenty of neighbours within these radii
    assert (np.diff(graph.distances, axis=1) >= 0).all()  # nearest first
