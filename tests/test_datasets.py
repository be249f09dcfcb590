"""Tests for skcgcnn.datasets: Matbench JSON, Matbench folds and the reference CIF folder."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matminer.utils.io import store_dataframe_as_json
from pymatgen.core import Lattice, Structure
from shared_data import REFERENCE, reference_atom_init
from sklearn.model_selection import KFold

from skcgcnn.datasets import load_matbench, matbench_folds, read_cif_folder

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = SHARED / "datasets"
PEROVSKITES = DATASETS / "matbench_perovskites.json.gz"
VALIDATION = DATASETS / "matbench_v0.1_validation.json.gz"
SAMPLE_REGRESSION = REFERENCE / "sample-regression"
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "data" / "matbench_perovskites_demo.json.gz"

SAMPLE_IDS = [
    "1000041", "1000050", "1101051", "1507756", "7206075",
    "9000046", "9009743", "9011050", "9011998", "9012304",
]  # fmt: skip


def needs(path: Path) -> None:
    """Skip the calling test when shared data are absent (e.g. on a fresh clone)."""
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")


# ------------------------------------------------------------------------------------------
# fixtures
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def perovskites() -> pd.DataFrame:
    needs(PEROVSKITES)
    return load_matbench(PEROVSKITES, target="e_form")


@pytest.fixture
def nacl() -> Structure:
    return Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def real_cif() -> Path:
    """Return a real CIF of the reference sample folder (skip when absent)."""
    path = SAMPLE_REGRESSION / "1000041.cif"
    needs(path)
    return path


def make_folder(tmp_path: Path, cif: Path, id_prop: str, ids: tuple[str, ...] = ("a", "b")) -> Path:
    """Write a reference-format folder: copies of ``cif`` as ``<id>.cif`` and ``id_prop``."""
    folder = tmp_path / "data"
    folder.mkdir()
    for i in ids:
        shutil.copy(cif, folder / f"{i}.cif")
    (folder / "id_prop.csv").write_text(id_prop)
    return folder


# ------------------------------------------------------------------------------------------
# load_matbench
# ------------------------------------------------------------------------------------------


def test_load_matbench_perovskites(perovskites: pd.DataFrame) -> None:
    df = perovskites
    assert len(df) == 18928
    assert list(df.columns) == ["structure", "e_form"]
    assert df.index[0] == "mb-perovskites-00001"
    assert df.index[-1] == "mb-perovskites-18928"
    assert all(isinstance(s, Structure) and len(s) == 5 for s in df["structure"])
    assert df["e_form"].dtype == np.float64
    assert df["e_form"].mean() == pytest.approx(1.4709, abs=1e-4)


def test_load_matbench_roundtrip_and_target_list(tmp_path: Path, nacl: Structure) -> None:
    df = pd.DataFrame(
        {"structure": [nacl, nacl.copy()], "e_form": [-1.0, 2.0], "gap": [0.1, 0.2]},
        index=["x-1", "x-2"],
    )
    store_dataframe_as_json(df, str(tmp_path / "d.json.gz"), compression="gz", pbar=False)
    out = load_matbench(tmp_path / "d.json.gz", target=["e_form", "gap"])
    assert out.index.tolist() == ["x-1", "x-2"]
    assert out["structure"].iloc[0] == nacl
    np.testing.assert_array_equal(out["gap"], [0.1, 0.2])
    # uncompressed json works too, and target=None checks nothing
    store_dataframe_as_json(df, str(tmp_path / "d.json"), pbar=False)
    assert list(load_matbench(str(tmp_path / "d.json")).columns) == ["structure", "e_form", "gap"]


def test_load_matbench_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "matbench_perovskites.json.gz"
    with pytest.raises(FileNotFoundError, match=r"matbench_perovskites\.json\.gz") as info:
        load_matbench(missing)
    assert "does not download" in str(info.value)


def test_load_matbench_missing_file_hints_gz(tmp_path: Path, nacl: Structure) -> None:
    df = pd.DataFrame({"structure": [nacl], "y": [1.0]})
    store_dataframe_as_json(df, str(tmp_path / "d.json.gz"), compression="gz", pbar=False)
    with pytest.raises(FileNotFoundError, match=r"d\.json\.gz.*did you mean"):
        load_matbench(tmp_path / "d.json")


def test_load_matbench_no_structure_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"composition": ["NaCl"], "e_form": [1.0]})
    store_dataframe_as_json(df, str(tmp_path / "d.json.gz"), compression="gz", pbar=False)
    with pytest.raises(ValueError, match=r"no 'structure' column.*'composition', 'e_form'"):
        load_matbench(tmp_path / "d.json.gz")


def test_load_matbench_missing_target(tmp_path: Path, nacl: Structure) -> None:
    df = pd.DataFrame({"structure": [nacl], "e_form": [1.0]})
    store_dataframe_as_json(df, str(tmp_path / "d.json.gz"), compression="gz", pbar=False)
    with pytest.raises(ValueError, match=r"no target column 'gap pbe'.*'structure', 'e_form'"):
        load_matbench(tmp_path / "d.json.gz", target="gap pbe")


def test_load_matbench_not_structures(tmp_path: Path) -> None:
    df = pd.DataFrame({"structure": ["NaCl", "KCl"], "y": [1.0, 2.0]}, index=["r1", "r2"])
    store_dataframe_as_json(df, str(tmp_path / "d.json.gz"), compression="gz", pbar=False)
    with pytest.raises(
        ValueError, match=r"2 'structure' entries are not pymatgen Structures.*'r1'"
    ):
        load_matbench(tmp_path / "d.json.gz")


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"not json at all", "Could not read"), (b'{"a": 1}', "not a matminer DataFrame")],
)
def test_load_matbench_not_a_dataframe(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_matbench(path)


def test_demo_subset_is_shipped_and_small() -> None:
    assert DEMO.is_file(), "examples/data/matbench_perovskites_demo.json.gz is missing"
    assert DEMO.stat().st_size <= 2 * 1024 * 1024
    df = load_matbench(DEMO, target="e_form")
    assert len(df) == 3000
    assert df.index.is_monotonic_increasing
    assert df.index.is_unique
    assert df.index.str.fullmatch(r"mb-perovskites-\d{5}").all()


def test_demo_subset_matches_full_data(perovskites: pd.DataFrame) -> None:
    demo = load_matbench(DEMO)
    full = perovskites.loc[demo.index]
    np.testing.assert_array_equal(demo["e_form"], full["e_form"])
    assert all(a == b for a, b in zip(demo["structure"], full["structure"], strict=True))
    expected = perovskites.sample(n=3000, random_state=0).sort_index().index
    assert demo.index.equals(expected)


# ------------------------------------------------------------------------------------------
# matbench_folds
# ------------------------------------------------------------------------------------------


def test_matbench_folds_perovskites_equal_kfold(perovskites: pd.DataFrame) -> None:
    needs(VALIDATION)
    folds = matbench_folds("matbench_perovskites", VALIDATION, perovskites.index)
    expected = KFold(5, shuffle=True, random_state=18012019).split(np.zeros(len(perovskites)))
    assert len(folds) == 5
    all_test = []
    for (train, test), (exp_train, exp_test) in zip(folds, expected, strict=True):
        assert train.dtype == np.intp
        assert test.dtype == np.intp
        np.testing.assert_array_equal(train, exp_train)
        np.testing.assert_array_equal(test, exp_test)
        assert np.intersect1d(train, test).size == 0
        assert len(train) + len(test) == len(perovskites)
        all_test.append(test)
    # the test sets partition the index
    np.testing.assert_array_equal(np.sort(np.concatenate(all_test)), np.arange(len(perovskites)))


def test_matbench_folds_ids_and_prefixless_task(perovskites: pd.DataFrame) -> None:
    needs(VALIDATION)
    ids = matbench_folds("perovskites", VALIDATION)
    positions = matbench_folds("matbench_perovskites", VALIDATION, perovskites.index)
    for (id_train, id_test), (train, test) in zip(ids, positions, strict=True):
        assert perovskites.index[test].tolist() == id_test.tolist()
        assert perovskites.index[train].tolist() == id_train.tolist()


def test_matbench_folds_usable_as_cv(perovskites: pd.DataFrame) -> None:
    needs(VALIDATION)
    from sklearn.dummy import DummyRegressor
    from sklearn.model_selection import cross_val_score

    cv = matbench_folds("matbench_perovskites", VALIDATION, perovskites.index)
    X = np.zeros((len(perovskites), 1))
    scores = -cross_val_score(
        DummyRegressor(), X, perovskites["e_form"], cv=cv, scoring="neg_mean_absolute_error"
    )
    # the Matbench leaderboard's dummy MAE for this task is 0.5660 eV/cell
    assert scores.mean() == pytest.approx(0.5660, abs=2e-3)


def test_matbench_folds_on_demo_subset() -> None:
    needs(VALIDATION)
    demo = load_matbench(DEMO)
    with pytest.raises(ValueError, match="not in index"):
        matbench_folds("matbench_perovskites", VALIDATION, demo.index)
    folds = matbench_folds("matbench_perovskites", VALIDATION, demo.index, missing="drop")
    tests = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(demo)))


def write_folds(path: Path, splits: dict, compress: bool = False) -> Path:
    data = json.dumps({"metadata": {}, "splits": splits}).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


SPLITS = {
    "matbench_toy": {
        "fold_0": {"train": ["c", "d"], "test": ["a", "b"]},
        "fold_1": {"train": ["a", "b"], "test": ["c", "d"]},
    },
    "matbench_other": {"fold_0": {"train": ["a"], "test": ["b"]}},
}


@pytest.mark.parametrize("compress", [False, True])
def test_matbench_folds_small_file(tmp_path: Path, compress: bool) -> None:
    # gzip is detected from the content, whatever the file name
    path = write_folds(tmp_path / "folds.json", SPLITS, compress=compress)
    folds = matbench_folds("matbench_toy", path, ["d", "c", "b", "a"])
    assert [(tr.tolist(), te.tolist()) for tr, te in folds] == [([1, 0], [3, 2]), ([3, 2], [1, 0])]


def test_matbench_folds_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"matbench_v0\.1_validation\.json\.gz"):
        matbench_folds("matbench_toy", tmp_path / "matbench_v0.1_validation.json.gz")


def test_matbench_folds_unknown_task(tmp_path: Path) -> None:
    path = write_folds(tmp_path / "folds.json", SPLITS)
    with pytest.raises(ValueError, match=r"Unknown Matbench task 'nope'.*matbench_other"):
        matbench_folds("nope", path)


def test_matbench_folds_ids_missing_from_index(tmp_path: Path) -> None:
    path = write_folds(tmp_path / "folds.json", SPLITS)
    with pytest.raises(ValueError, match=r"1 of the 2 test ids of matbench_toy fold_0.*'a'"):
        matbench_folds("matbench_toy", path, pd.Index(["b", "c", "d"]))


def test_matbench_folds_duplicated_index(tmp_path: Path) -> None:
    path = write_folds(tmp_path / "folds.json", SPLITS)
    with pytest.raises(ValueError, match=r"duplicated ids: 'a'"):
        matbench_folds("matbench_toy", path, ["a", "a", "b", "c", "d"])


def test_matbench_folds_rejects_dataframe(tmp_path: Path) -> None:
    path = write_folds(tmp_path / "folds.json", SPLITS)
    with pytest.raises(TypeError, match=r"df\.index"):
        matbench_folds("matbench_toy", path, pd.DataFrame(index=["a", "b", "c", "d"]))


def test_matbench_folds_not_a_folds_file(tmp_path: Path) -> None:
    path = tmp_path / "folds.json"
    path.write_text('{"tasks": []}')
    with pytest.raises(ValueError, match="not a Matbench folds file"):
        matbench_folds("matbench_toy", path)


# ------------------------------------------------------------------------------------------
# read_cif_folder
# ------------------------------------------------------------------------------------------


def test_read_cif_folder_sample_regression() -> None:
    # pymatgen's parser warnings are passed on with the name of the CIF they are about
    with pytest.warns(UserWarning, match=r"^1101051\.cif: .*rounded") as record:
        ids, structures, y = read_cif_folder(SAMPLE_REGRESSION)
    assert all(Path(w.filename) == Path(__file__) for w in record)  # points at the caller
    assert ids.tolist() == SAMPLE_IDS
    assert structures.shape == (10,)
    assert structures.dtype == object
    assert all(isinstance(s, Structure) for s in structures)
    assert sum(len(s) for s in structures) == 65  # REPORT.md section 7
    assert structures[0].composition.reduced_formula == "NaCl"
    np.testing.assert_array_equal(y, np.arange(1.0, 11.0))


@pytest.mark.filterwarnings("ignore:1101051.cif:UserWarning")
def test_read_cif_folder_frame_and_atom_init(tmp_path: Path) -> None:
    folder = tmp_path / "sample-regression"
    shutil.copytree(SAMPLE_REGRESSION, folder)
    shutil.copy(reference_atom_init(), folder / "atom_init.json")
    _ids, _structures, y, atom_init = read_cif_folder(folder, atom_init=True)
    assert atom_init == folder / "atom_init.json"
    frame = read_cif_folder(folder, as_frame=True)
    assert frame.index.name == "id"
    assert frame.index.tolist() == SAMPLE_IDS
    assert list(frame.columns) == ["structure", "target"]
    np.testing.assert_array_equal(frame["target"], y)
    frame2, atom_init2 = read_cif_folder(folder, atom_init=True, as_frame=True)
    assert atom_init2 == atom_init
    assert frame2.index.equals(frame.index)


def test_read_cif_folder_multi_target_no_atom_init(tmp_path: Path, real_cif: Path) -> None:
    folder = make_folder(tmp_path, real_cif, "a,1,10\r\n\r\nb,2.5,20\r\n")  # CRLF + blank line
    ids, _, y, atom_init = read_cif_folder(folder, atom_init=True)
    assert ids.tolist() == ["a", "b"]
    assert atom_init is None
    np.testing.assert_array_equal(y, [[1.0, 10.0], [2.5, 20.0]])
    frame = read_cif_folder(folder, as_frame=True)
    assert list(frame.columns) == ["structure", "target_0", "target_1"]


def test_read_cif_folder_keeps_id_strings(tmp_path: Path, real_cif: Path) -> None:
    folder = make_folder(tmp_path, real_cif, "007,1\n7,2\n", ids=("007", "7"))
    ids, _, _ = read_cif_folder(folder)
    assert ids.tolist() == ["007", "7"]


def test_read_cif_folder_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_cif_folder(tmp_path / "nowhere")


def test_read_cif_folder_missing_id_prop(tmp_path: Path, real_cif: Path) -> None:
    shutil.copy(real_cif, tmp_path / "a.cif")
    with pytest.raises(ValueError, match=r"No id_prop\.csv in"):
        read_cif_folder(tmp_path)


def test_read_cif_folder_header_row(tmp_path: Path, real_cif: Path) -> None:
    folder = make_folder(tmp_path, real_cif, "id,target\na,1\nb,2\n")
    with pytest.raises(ValueError, match=r"id_prop\.csv, row 1: .* looks like a header"):
        read_cif_folder(folder)


def test_read_cif_folder_non_numeric_target(tmp_path: Path, real_cif: Path) -> None:
    folder = make_folder(tmp_path, real_cif, "a,1\nb,high\n")
    with pytest.raises(ValueError, match=r"row 2 \(id 'b'\): non-numeric target 'high'"):
        read_cif_folder(folder)


@pytest.mark.parametrize(
    ("id_prop", "match"),
    [
        ("a,1\nb\n", r"row 2: expected 'id,target'"),
        ("a,1\n,2\n", r"row 2: empty id"),
        ("a,1\nb,nan\n", r"row 2 \(id 'b'\): non-finite"),
        ("a,1,2\nb,3\n", r"row 2 \(id 'b'\): 1 target columns, but the first row has 2"),
        ("\n\n", r"has no rows"),
    ],
)
def test_read_cif_folder_bad_rows(tmp_path: Path, real_cif: Path, id_prop: str, match: str) -> None:
    folder = make_folder(tmp_path, real_cif, id_prop)
    with pytest.raises(ValueError, match=match):
        read_cif_folder(folder)


def test_read_cif_folder_duplicate_ids(tmp_path: Path, real_cif: Path) -> None:
    folder = make_folder(tmp_path, real_cif, "a,1\nb,2\na,3\n")
    with pytest.raises(ValueError, match=r"1 duplicated ids: 'a'"):
        read_cif_folder(folder)


def test_read_cif_folder_missing_cif(tmp_path: Path, real_cif: Path) -> None:
    folder = make_folder(tmp_path, real_cif, "a,1\nb,2\nc,3\n")
    with pytest.raises(ValueError, match=r"1 CIF files .* are missing .*'c\.cif'"):
        read_cif_folder(folder)


def test_read_cif_folder_unreadable_cif(tmp_path: Path, real_cif: Path) -> None:
    folder = make_folder(tmp_path, real_cif, "a,1\nb,2\n")
    (folder / "b.cif").write_text("data_broken\n_cell_length_a 3.0\n")
    with pytest.raises(ValueError, match=r"Could not read CIF '.*b\.cif': ValueError: Invalid CIF"):
        read_cif_folder(folder)


def test_read_cif_folder_not_a_folder(tmp_path: Path, real_cif: Path) -> None:
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        read_cif_folder(real_cif)
