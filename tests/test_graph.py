"""Graph-level robustness: what ``build_graph`` does with broken, unusual and large structures.

Each case of the robustness catalogue (docs/robustness.md) is one parametrised case here; the
reference-parity tests of the graph live in ``test_graph_parity.py``.
"""

from __future__ import annotations

import time
import tracemalloc
import warnings

import numpy as np
import pytest
import torch
from pymatgen.core import DummySpecies, Lattice, Structure

from skcgcnn.batch import collate_graphs
from skcgcnn.elements import resolve_atom_features
from skcgcnn.graph import GraphConstructionError, SparseNeighborWarning, build_graph
from skcgcnn.model import CGCNN


def srtio3() -> Structure:
    """Cubic SrTiO3 perovskite (a = 3.905 A), 5 atoms."""
    return Structure(
        Lattice.cubic(3.905),
        ["Sr", "Ti", "O", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]],
    )


def rocksalt(cation: str | dict, anion: str | dict = "O", a: float = 4.2) -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])


# --------------------------------------------------------------------------- broken structures
def _overlapping_same_position() -> Structure:
    s = srtio3()
    s.append("O", [0.5, 0.5, 0.0], validate_proximity=False)
    return s


def _overlapping_through_image() -> Structure:
    s = srtio3()
    s.append("Sr", [0.99999999, 0.0, 1e-9], validate_proximity=False)  # the image of site 0
    return s


BROKEN = {
    "overlapping-sites": (_overlapping_same_position, r"sites 2 and 5 overlap|sites 5 and 2 "),
    "overlapping-periodic-image": (_overlapping_through_image, r"sites 0 and 5 overlap|sites 5 "),
    "zero-volume-lattice": (
        lambda: Structure(Lattice([[3, 0, 0], [0, 3, 0], [3, 3, 0]]), ["Na", "Cl"],
                          [[0, 0, 0], [0.5, 0.5, 0]]),
        r"zero volume",
    ),
    "flat-lattice": (
        lambda: Structure(Lattice([[3, 0, 0], [0, 3, 0], [0, 0, 0]]), ["Na"], [[0, 0, 0]]),
        r"zero volume",
    ),
    "no-sites": (lambda: Structure(Lattice.cubic(4.0), [], []), r"no sites"),
    "dummy-species-X": (
        lambda: Structure(Lattice.cubic(4.0), [DummySpecies("X"), "Cl"],
                          [[0, 0, 0], [0.5, 0.5, 0.5]]),
        r"species X0\+ is not a chemical element",
    ),
    "dummy-species-Xa": (
        lambda: Structure(Lattice.cubic(4.0), ["Na", DummySpecies("Xa")],
                          [[0, 0, 0], [0.5, 0.5, 0.5]]),
        r"species Xa0\+ is not a chemical element",
    ),
    "Z-101-Md": (lambda: rocksalt("Md"), r"species Md has Z=101"),
    "Z-118-Og": (lambda: rocksalt("Og", "Cl"), r"species Og has Z=118"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_structure_gives_clear_error(case: str) -> None:
    make, message = BROKEN[case]
    with pytest.raises(GraphConstructionError, match=message):
        build_graph(make())


@pytest.mark.parametrize(
    "kwargs, message",
    [({"radius": 0.0}, "must be positive"), ({"max_num_nbr": 0}, "must be positive")],
    ids=["radius-0", "max_num_nbr-0"],
)
def test_bad_graph_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_graph(srtio3(), **kwargs)


@pytest.mark.parametrize("entry", [None, "SrTiO3", srtio3().as_dict()], ids=["None", "str", "dict"])
def test_build_graph_rejects_non_structures(entry: object) -> None:
    with pytest.raises(TypeError, match="expected a pymatgen Structure"):
        build_graph(entry)


def test_oxidation_state_species_are_fine() -> None:
    plain = build_graph(srtio3())
    decorated = srtio3()
    decorated.add_oxidation_state_by_element({"Sr": 2, "Ti": 4, "O": -2})
    assert build_graph(decorated) == plain


# --------------------------------------------------------------------------- sparse neighbourhoods
@pytest.mark.parametrize("box", [20.0, 30.0], ids=["Xe-in-20A-box", "Xe-in-30A-box"])
def test_isolated_atom_is_padded_like_the_reference_and_warned(box: float) -> None:
    xe = Structure(Lattice.cubic(box), ["Xe"], [[0, 0, 0]])
    with pytest.warns(SparseNeighborWarning, match=r"1 of 1 atoms .* 0 neighbours"):
        graph = build_graph(xe, radius=8.0, max_num_nbr=12)
    # the reference: index 0 (the crystal's first atom) at distance radius + 1
    np.testing.assert_array_equal(graph.neighbor_indices, np.zeros((1, 12), dtype=np.int32))
    np.testing.assert_array_equal(graph.distances, np.full((1, 12), 9.0, dtype=np.float32))


def test_partially_filled_neighbour_list_is_padded_after_the_real_neighbours() -> None:
    # a CO molecule in a 20 A box: one real neighbour each, 11 padded slots
    co = Structure(Lattice.cubic(20.0), ["C", "O"], [[0, 0, 0], [0, 0, 1.128 / 20]])
    with pytest.warns(SparseNeighborWarning, match="2 of 2 atoms"):
        graph = build_graph(co)
    np.testing.assert_allclose(graph.distances[:, 0], [1.128, 1.128], atol=1e-5)
    np.testing.assert_array_equal(graph.neighbor_indices[:, 0], [1, 0])
    np.testing.assert_array_equal(graph.neighbor_indices[:, 1:], 0)
    np.testing.assert_array_equal(graph.distances[:, 1:], 9.0)


def test_sparse_warning_can_be_switched_off() -> None:
    xe = Structure(Lattice.cubic(20.0), ["Xe"], [[0, 0, 0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = build_graph(xe, warn=False)
    assert graph.n_atoms == 1


def test_one_atom_cell_links_to_its_own_images_without_warning() -> None:
    fe = Structure(Lattice([[-1.435, 1.435, 1.435], [1.435, -1.435, 1.435],
                            [1.435, 1.435, -1.435]]), ["Fe"], [[0, 0, 0]])  # primitive bcc Fe
    with warnings.catch_warnings():
        warnings.simplefilter("error", SparseNeighborWarning)
        graph = build_graph(fe)
    assert graph.n_atoms == 1
    np.testing.assert_array_equal(graph.neighbor_indices, 0)
    np.testing.assert_allclose(graph.distances[0, :8], 2.485, atol=1e-3)  # first shell
    np.testing.assert_allclose(graph.distances[0, 8:], 2.87, atol=1e-3)  # 4 of the 6 second


# --------------------------------------------------------------------------- disorder
DISORDERED_CIF = """data_LiCoO2_disordered_rocksalt
_symmetry_space_group_name_H-M   'F m -3 m'
_symmetry_Int_Tables_number      225
_cell_length_a     4.156
_cell_length_b     4.156
_cell_length_c     4.156
_cell_angle_alpha  90
_cell_angle_beta   90
_cell_angle_gamma  90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
Li1 Li 0.0 0.0 0.0 {li}
Co1 Co 0.0 0.0 0.0 {co}
O1  O  0.5 0.5 0.5 1.0
"""


def _structure_from_cif(text: str) -> Structure:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen notes about rounded coordinates
        return Structure.from_str(text, fmt="cif")


def _embedding_module() -> CGCNN:
    """A CGCNN without convolutions: ``atom_embeddings`` is then the embedded atom features."""
    torch.manual_seed(0)
    return CGCNN(resolve_atom_features("cgcnn"), n_conv=0, atom_fea_len=16).eval()


@pytest.mark.parametrize("li, co", [(0.5, 0.5), (0.25, 0.75)], ids=["Li0.5Co0.5O", "Li0.25Co0.75O"])
def test_disordered_cif_uses_occupancy_weighted_element_features(li: float, co: float) -> None:
    structure = _structure_from_cif(DISORDERED_CIF.format(li=li, co=co))
    assert not structure.is_ordered and len(structure) == 8  # conventional cell, 4 + 4 sites
    graph = build_graph(structure)
    assert not graph.is_ordered
    cations = graph.atomic_numbers[:, 1] > 0
    assert cations.sum() == 4
    np.testing.assert_array_equal(np.sort(graph.atomic_numbers[cations], axis=1), [[3, 27]] * 4)
    weights = {
        int(z): float(w)
        for z, w in zip(graph.atomic_numbers[cations].ravel(), graph.occupancies[cations].ravel())
    }
    assert weights == pytest.approx({3: li, 27: co})
    np.testing.assert_array_equal(graph.occupancies[~cations], [[1.0, 0.0]] * 4)

    model = _embedding_module()
    table = model.atom_features
    with torch.no_grad():
        atom_fea = model.atom_embeddings(collate_graphs([graph]))
        expected = model.embedding(li * table[3] + co * table[27])
        oxygen = model.embedding(table[8])
    torch.testing.assert_close(atom_fea[torch.from_numpy(cations)], expected.expand(4, -1),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(atom_fea[torch.from_numpy(~cations)], oxygen.expand(4, -1),
                               atol=1e-5, rtol=1e-5)


def test_full_occupancy_site_gives_exactly_the_ordered_result() -> None:
    from_dicts = rocksalt({"Co": 1.0}, {"O": 1.0})
    ordered = rocksalt("Co", "O")
    assert build_graph(from_dicts) == build_graph(ordered)  # bitwise: same arrays, ordered graph

    # an ordered crystal batched with a disordered one predicts as it does alone
    disordered = build_graph(_structure_from_cif(DISORDERED_CIF.format(li=0.5, co=0.5)))
    model = CGCNN(resolve_atom_features("cgcnn"), atom_fea_len=16, n_conv=2).eval()
    with torch.no_grad():
        alone = model(collate_graphs([build_graph(ordered)]))
        mixed = model(collate_graphs([build_graph(ordered), disordered]))[:1]
    torch.testing.assert_close(mixed, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("occupancy", [0.8, 0.5], ids=["Li0.8-vacancy", "Li0.5-vacancy"])
def test_vacancy_scales_the_element_features(occupancy: float) -> None:
    structure = _structure_from_cif(
        DISORDERED_CIF.replace("Co1 Co 0.0 0.0 0.0 {co}\n", "").format(li=occupancy)
    )
    graph = build_graph(structure)
    cations = graph.atomic_numbers[:, 0] == 3
    np.testing.assert_allclose(graph.occupancies[cations].sum(axis=1), occupancy)
    model = _embedding_module()
    with torch.no_grad():
        atom_fea = model.atom_embeddings(collate_graphs([graph]))[torch.from_numpy(cations)]
        full = model.embedding(model.atom_features[3])
        bias = model.embedding.bias
    # the vacant fraction contributes a zero feature row: occupancy * W f_Li + b
    torch.testing.assert_close(atom_fea, (occupancy * (full - bias) + bias).expand(4, -1),
                               atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- large cells
def _best_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def test_500_atom_cell_memory_and_time_scale_linearly() -> None:
    small, large = srtio3() * (5, 2, 2), srtio3() * (5, 5, 4)
    assert (len(small), len(large)) == (100, 500)
    graph = build_graph(large)
    # graph size is n * max_num_nbr edges: ~98 bytes per atom, no (n x n) anything
    assert graph.neighbor_indices.shape == (500, 12) and graph.distances.shape == (500, 12)
    assert graph.nbytes == 500 * (12 * (4 + 4) + 2)

    peaks = []
    for structure in (small, large):
        tracemalloc.start()
        build_graph(structure)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 5 * 1.5 * peaks[0], peaks  # linear (5x the atoms), not quadratic (25x)
    assert peaks[1] < 20e6, peaks  # tens of kB per atom at most

    # time: loose, interleaved to share the machine's load; quadratic would be 25x + overheads
    t_small = min(_best_time(lambda: build_graph(small)) for _ in range(2))
    t_large = min(_best_time(lambda: build_graph(large)) for _ in range(2))
    assert t_large < 40 * t_small + 0.05, (t_small, t_large)

    # the model handles it too: 6000 edges in one forward pass
    model = CGCNN(resolve_atom_features("cgcnn"), atom_fea_len=16, n_conv=2).eval()
    with torch.no_grad():
        out = model(collate_graphs([graph]))
    assert out.shape == (1, 1) and torch.isfinite(out).all()


# --------------------------------------------------------------------------- serialisation


def test_as_dict_is_compact_json_and_exact() -> None:
    import json

    from skcgcnn.graph import CrystalGraph

    graph = build_graph(srtio3().make_supercell([2, 2, 2], in_place=False))
    text = json.dumps(graph.as_dict())
    assert len(text) < 1.4 * graph.nbytes + 400  # base64: 4/3 of the bytes, plus the keys
    back = CrystalGraph.from_dict(json.loads(text))
    assert back == graph and back.radius == graph.radius and back.occupancies is None
    for name in ("atomic_numbers", "neighbor_indices", "distances"):
        assert getattr(back, name).dtype == getattr(graph, name).dtype
        assert getattr(back, name).flags.writeable
    # monty's decoder (what matminer uses) rebuilds it from @module/@class
    from monty.json import MontyDecoder, MontyEncoder

    assert MontyDecoder().decode(json.dumps(graph, cls=MontyEncoder)) == graph


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format_version=99), r"format_version 99.*upgrade skcgcnn"),
        (lambda d: d.pop("format_version"), r"format_version None"),
        (lambda d: d.pop("distances"), r"lacks the array 'distances'"),
        (lambda d: d["distances"].update(shape=[12, 5]), r"inconsistent array shapes"),
        (lambda d: d["distances"].update(base64="!!"), r"unreadable 'distances'"),
        (lambda d: d.pop("radius"), r"no usable 'radius'"),
    ],
)
def test_from_dict_refuses_what_it_cannot_read(change, message) -> None:
    from skcgcnn.graph import CrystalGraph

    d = build_graph(srtio3()).as_dict()
    change(d)
    with pytest.raises(ValueError, match=message):
        CrystalGraph.from_dict(d)


def test_arrays_are_stored_in_the_canonical_dtypes_without_copies() -> None:
    from skcgcnn.graph import CrystalGraph

    graph = build_graph(srtio3())
    same = CrystalGraph(graph.atomic_numbers, graph.neighbor_indices, graph.distances, 8.0)
    assert same.distances is graph.distances and same.neighbor_indices is graph.neighbor_indices
    wide = CrystalGraph(graph.atomic_numbers.astype(np.int64),
                        graph.neighbor_indices.astype(np.int64),
                        graph.distances.astype(np.float64), 8.0)
    assert (wide.atomic_numbers.dtype, wide.neighbor_indices.dtype, wide.distances.dtype) == (
        np.int16, np.int32, np.float32)
    assert wide == graph
