"""Regression guards for speed and memory that time nothing.

The benchmarks (``benchmarks/``) measure; these tests pin the properties the measured speed and
memory rest on, so a change that loses them fails here and not only in a benchmark table:

* graph construction uses pymatgen's compiled neighbour search, never the per-site
  ``Structure.get_all_neighbors`` of the original code, nor any pymatgen ``Neighbor`` objects;
* the parallel featurizer sends arrays, not pymatgen Structures, to its worker processes;
* pooling and the whole forward pass issue the same number of torch calls for 10 and for 1,000
  crystals (no Python loop over crystals) and pooling is exact;
* a stored graph takes at most 0.15 kB per atom (the original stores 2.4 kB).
"""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.core import structure as pmg_structure
from torch.overrides import TorchFunctionMode

from skcgcnn import CrystalGraphFeaturizer, build_graph
from skcgcnn.batch import collate_graphs
from skcgcnn.elements import cgcnn_encoding
from skcgcnn.model import CGCNN

#: Bytes per atom of the reference implementation's stored item: atom features (92 float32),
#: Gaussian-expanded distances (12 x 41 float32) and neighbour indices (12 int64).
ORIGINAL_BYTES_PER_ATOM = 92 * 4 + 12 * 41 * 4 + 12 * 8


def _forbid(monkeypatch, owner, name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{owner.__name__}.{name} was called")

    monkeypatch.setattr(owner, name, fail)


def test_featurizer_never_uses_the_per_site_neighbour_search(monkeypatch, perovskites):
    structures = list(perovskites["structure"].iloc[:50])
    expected = [build_graph(s) for s in structures]
    for name in ("get_all_neighbors", "get_all_neighbors_py", "get_all_neighbors_old",
                 "get_neighbors", "get_sites_in_sphere"):
        if hasattr(pmg_structure.IStructure, name):
            _forbid(monkeypatch, pmg_structure.IStructure, name)
    for cls in (pmg_structure.Neighbor, pmg_structure.PeriodicNeighbor):
        _forbid(monkeypatch, cls, "__init__")  # no Neighbor objects are built either
    graphs = CrystalGraphFeaturizer().graphs(structures)
    assert all(a == b for a, b in zip(graphs, expected))
    assert graphs[0].distances[0, 0] > 1.0


def test_parallel_featurizer_sends_arrays_not_structures(monkeypatch, perovskites):
    """Pickling a Structure to a worker costs more than building its graph."""
    from skcgcnn import featurizer as featurizer_module

    sent = []
    original_chunk = featurizer_module._featurize_chunk

    def recording_chunk(featurizer, entries, *args):
        sent.extend(type(e).__name__ for e in entries)
        return original_chunk(featurizer, entries, *args)

    monkeypatch.setattr(featurizer_module, "_featurize_chunk", recording_chunk)
    structures = list(perovskites["structure"].iloc[:200]) + ["not a structure"]
    from joblib import parallel_config

    with parallel_config(backend="threading"):  # the same dispatch, in this process
        rows = CrystalGraphFeaturizer(n_jobs=2).featurize_many(structures, ignore_errors=True)
    assert Counter(sent) == Counter({"_GraphInputs": 200, "str": 1})
    assert all(a[0] == build_graph(s) for a, s in zip(rows[:-1], structures[:-1]))
    assert np.isnan(rows[-1][0])


class _CountTorchCalls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def _batch(n_crystals):
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    graphs = [build_graph(nacl), build_graph(cscl)]
    return collate_graphs([graphs[i % 2] for i in range(n_crystals)])


def _torch_calls(fn):
    with _CountTorchCalls() as mode:
        fn()
    return mode.calls


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return CGCNN(cgcnn_encoding(), atom_fea_len=16, n_conv=2, h_fea_len=16).eval()


def test_pooling_is_one_scatter_for_any_number_of_crystals(model):
    small, large = _batch(10), _batch(1000)
    assert large.n_crystals == 1000 and large.n_atoms == 500 * 8 + 500 * 2
    atom_fea = torch.randn(large.n_atoms, 16, dtype=torch.float64)
    first = atom_fea[: small.n_atoms]
    calls_small = _torch_calls(lambda: model.pool(first, small))
    calls_large = _torch_calls(lambda: model.pool(atom_fea, large))
    assert calls_large == calls_small <= 12
    pooled = model.pool(atom_fea, large).numpy()
    index = large.crystal_index.numpy()
    expected = np.stack([atom_fea.numpy()[index == c].mean(axis=0) for c in range(1000)])
    np.testing.assert_allclose(pooled, expected, rtol=1e-12, atol=1e-12)


def test_forward_has_no_python_loop_over_crystals(model):
    with torch.no_grad():
        calls_small = _torch_calls(lambda: model(_batch(10)))
        calls_large = _torch_calls(lambda: model(_batch(1000)))
    assert calls_large == calls_small


def test_collate_concatenates_each_field_once():
    """torch work in collate does not grow with the number of crystals either."""
    from skcgcnn.batch import collate_graphs as collate

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    graphs = [build_graph(nacl)] * 1000
    assert _torch_calls(lambda: collate(graphs[:10])) == _torch_calls(lambda: collate(graphs))


def test_graph_stores_at_most_0_15_kb_per_atom(perovskites):
    # 2x2x2 supercells of the demo perovskites: 40 atoms, about the size of a typical
    # Materials Project cell (matbench_mp_gap: 30 atoms on average)
    structures = [s * (2, 2, 2) for s in perovskites["structure"].iloc[:100]]
    graphs = CrystalGraphFeaturizer().graphs(structures)
    n_atoms = sum(g.n_atoms for g in graphs)
    array_bytes = sum(g.nbytes for g in graphs) / n_atoms
    pickled_bytes = len(pickle.dumps(list(graphs), protocol=pickle.HIGHEST_PROTOCOL)) / n_atoms
    assert array_bytes <= 100  # int16 species, 12 x int32 indices, 12 x float32 distances
    assert pickled_bytes <= 150
    assert ORIGINAL_BYTES_PER_ATOM / pickled_bytes >= 15
    graph = graphs[0]
    assert graph.atomic_numbers.dtype == np.int16
    assert graph.neighbor_indices.dtype == np.int32
    assert graph.distances.dtype == np.float32
