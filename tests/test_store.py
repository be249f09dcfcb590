"""GraphStore: parallel = serial bit for bit, damage, disorder, failures, views, inputs, CLI."""

from __future__ import annotations

import bz2
import filecmp
import gzip
import io
import json
import lzma
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from archives import cif_tar, small_structures
from pymatgen.core import Lattice, Structure
from pymatgen.io.cif import CifWriter

from skcgcnn import CrystalGraphFeaturizer, SparseNeighborWarning, build_graph
from skcgcnn._sources import read_structures
from skcgcnn.batch import collate_graphs
from skcgcnn.store import FeaturizationWarning, GraphStore, StoreFormatError, featurize_source


def _same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(
        filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


@pytest.fixture(scope="module")
def tar_input(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tar")
    structures = small_structures(40)
    targets = [float(i) / 10 for i in range(40)]
    return cif_tar(folder / "set.tar.gz", structures, targets, broken=(7,)), targets


@pytest.fixture(scope="module")
def store(tar_input, tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GraphStore.from_structures(tar_input[0], tmp_path_factory.mktemp("s") / "g",
                                          shard_size=8, n_jobs=1)


def test_parallel_write_equals_serial_write_bit_for_bit(tar_input, store, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel = GraphStore.from_structures(tar_input[0], tmp_path / "p", shard_size=8,
                                              n_jobs=2)
    assert len(parallel) == len(store) == 39
    assert len(list(store.path.glob("shard-*"))) == 5
    assert _same_tree(store.path, parallel.path)


def test_tar_rows_ids_targets_and_failures(tar_input, store):
    _, targets = tar_input
    expected_ids = [f"id-{i:04d}" for i in range(40) if i != 7]
    assert store.ids.tolist() == expected_ids
    np.testing.assert_array_equal(store.targets, [t for i, t in enumerate(targets) if i != 7])
    assert store.target_names == ["gap"]
    ((failed_id, error),) = store.failures
    assert failed_id == "id-0007" and error  # the broken CIF, with its error
    reference = build_graph(small_structures(40)[3])
    assert store[3] == reference


def test_failed_rows_warn_with_id_and_are_not_fatal(tmp_path):
    structures = small_structures(3)
    with pytest.warns(FeaturizationWarning, match="1 rows could not be featurized.*b"):
        out = GraphStore.from_structures([structures[0], "junk", structures[2]], tmp_path / "g",
                                         ids=["a", "b", "c"])
    assert out.ids.tolist() == ["a", "c"]
    assert out.failures[0][0] == "b" and "expected a pymatgen Structure" in out.failures[0][1]


def test_truncated_shard_is_an_error(store, tmp_path):
    copy = tmp_path / "copy"
    _copy_tree(store.path, copy)
    column = copy / "shard-000001" / "distances.npy"
    column.write_bytes(column.read_bytes()[:-40])
    for verify in (True, False):
        damaged = GraphStore(copy, verify=verify)
        assert len(damaged) == 39  # opening reads the manifest only
        damaged[0]  # shard 0 is intact
        with pytest.raises(StoreFormatError, match="shard-000001"):
            damaged[9]


def test_changed_or_foreign_files_are_errors(store, tmp_path):
    copy = tmp_path / "copy"
    _copy_tree(store.path, copy)
    column = copy / "shard-000002" / "distances.npy"
    values = np.load(column)
    np.save(column, values + 1.0)  # a valid .npy of the right shape, other content
    with pytest.raises(StoreFormatError, match="checksum mismatch"):
        GraphStore(copy)[17]
    (copy / "shard-000003" / "shard.json").write_text('{"format": "something else"}')
    with pytest.raises(StoreFormatError, match="not a skcgcnn-graphshard"):
        GraphStore(copy)[25]
    with pytest.raises(StoreFormatError, match="not a graph store"):
        GraphStore(tmp_path)
    (tmp_path / "graphstore.json").write_text("[1, 2]")
    with pytest.raises(StoreFormatError, match="not a skcgcnn-graphstore manifest"):
        GraphStore(tmp_path)
    manifest = json.loads((copy / "graphstore.json").read_text())
    manifest["format_version"] = 99
    (copy / "graphstore.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreFormatError, match="format version 99"):
        GraphStore(copy)


def _cut_header(shard: Path) -> None:
    column = shard / "distances.npy"
    column.write_bytes(column.read_bytes()[:50])  # inside the .npy header


def _text_column(shard: Path) -> None:
    (shard / "distances.npy").write_text("a foreign file, not a .npy array\n")


def _wrong_shape_column(shard: Path) -> None:
    np.save(shard / "distances.npy", np.zeros((3, 12), dtype=np.float32))


def _cut_shard_json(shard: Path) -> None:
    info = shard / "shard.json"
    info.write_text(info.read_text()[:30])


@pytest.mark.parametrize("damage, message", [
    (_cut_header, "column distances cannot be read .truncated or not a .npy file"),
    (lambda shard: (shard / "distances.npy").unlink(), "column distances cannot be read"),
    (_text_column, "column distances cannot be read .truncated or not a .npy file"),
    (_wrong_shape_column, r"column distances is float32 \[3, 12\], expected float32"),
    (_cut_shard_json, "shard.json' is not a shard description"),
    (lambda shard: _rmtree(shard), "has no shard.json: not a graph shard"),
])
@pytest.mark.parametrize("verify", [True, False])
def test_every_damaged_shard_is_a_clear_error(store, tmp_path, damage, message, verify):
    """Cut headers, missing or foreign column files, a cut shard.json, a missing shard: each an
    error naming the shard (with or without checksum verification), never garbage."""
    copy = tmp_path / "copy"
    _copy_tree(store.path, copy)
    damage(copy / "shard-000001")
    damaged = GraphStore(copy, verify=verify)
    assert damaged[0] == store[0]  # the other shards stay readable
    with pytest.raises(StoreFormatError, match=message) as info:
        damaged[9]
    assert "shard-000001" in str(info.value)


def test_truncated_input_archive_is_a_clear_error(tar_input, tmp_path, capsys):
    """A cut .tar.gz, .tar or .tar.xz is a ValueError naming the archive (a one-line error from the
    CLI), and so is an archive cut after its members were listed (read by a worker)."""
    from skcgcnn._sources import plan_slices
    from skcgcnn.cli import main

    raw = tar_input[0].read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(raw[: len(raw) // 2])
    assert main(["featurize", str(cut), "-o", str(tmp_path / "g"), "--n-jobs", "1"]) == 1
    err = capsys.readouterr().err
    assert "is not a readable tar archive (truncated or damaged?)" in err
    assert "Traceback" not in err and not (tmp_path / "g" / "graphstore.json").exists()

    plain = tmp_path / "plain.tar"
    with tarfile.open(tar_input[0]) as src, tarfile.open(plain, "w") as dst:
        for m in src:
            dst.addfile(m, src.extractfile(m))
    whole = plain.read_bytes()
    with tarfile.open(plain) as tar:
        last = tar.getmembers()[-1]
    plain.write_bytes(whole[: last.offset_data + last.size // 2])  # inside the last member
    with pytest.raises(ValueError, match="not a readable tar archive"):
        GraphStore.from_structures(plain, tmp_path / "p", n_jobs=1)

    xz = tmp_path / "cut.tar.xz"
    xz.write_bytes(lzma.compress(whole)[:2000])
    with pytest.raises(ValueError, match="cut.tar.xz' is not a readable tar archive"):
        GraphStore.from_structures(xz, tmp_path / "x", n_jobs=1)

    plain.write_bytes(whole)
    slices, _ = plan_slices(plain, 8)
    plain.write_bytes(whole[:1000])  # replaced by a cut copy after planning
    with pytest.raises(ValueError, match="plain.tar' is truncated"):
        list(slices[-1].entries())


def test_cli_featurize_real_mp_gap_tar(tmp_path, capsys):
    """``skcgcnn featurize`` on the layout of matbench_mp_gap_cifs.tar.gz: its own CSV
    (``matbench_mp_gap/matbench_mp_gap.csv``, columns id, cif_file, gap pbe) and its first 50
    CIFs, repacked (the whole archive takes an hour); graphs equal the featurizer's, targets
    and ids the CSV's."""
    from shared_data import require_shared

    from skcgcnn.cli import main

    source = require_shared("datasets", "matbench_mp_gap_cifs.tar.gz")
    small, cifs, rows = tmp_path / "mp_gap_50.tar.gz", {}, []
    with tarfile.open(source) as src:
        for m in src:
            if m.name.endswith(".csv"):
                table = src.extractfile(m).read().decode().splitlines()
                header, csv_name = table[0], m.name
            elif m.name.endswith(".cif"):
                cifs[m.name] = src.extractfile(m).read()
                if len(cifs) == 50:
                    break
    folder = csv_name.rsplit("/", 1)[0] + "/"
    rows = [r for r in table[1:] if folder + r.split(",")[1] in cifs]
    assert len(rows) == 50
    with tarfile.open(small, "w:gz") as dst:
        for name, data in [(csv_name, "\n".join([header, *rows]).encode() + b"\n"),
                           *cifs.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    out = tmp_path / "graphs"
    assert main(["featurize", str(small), "-o", str(out), "--n-jobs", "2",
                 "--shard-size", "16"]) == 0
    assert "50 graphs" in capsys.readouterr().err
    store = GraphStore(out)
    assert store.ids.tolist() == [r.split(",")[0] for r in rows]
    assert store.target_names == [header.split(",")[2]]
    np.testing.assert_allclose(store.targets, [float(r.split(",")[2]) for r in rows])
    assert len(list(out.glob("shard-*"))) == 4
    featurizer = CrystalGraphFeaturizer()
    for k in (0, 17, 49):
        cif = cifs[folder + rows[k].split(",")[1]].decode()
        assert store[k] == featurizer.featurize(Structure.from_str(cif, fmt="cif"))[0]


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def _copy_tree(src: Path, dst: Path) -> None:
    import shutil

    shutil.copytree(src, dst)


def test_disordered_graphs_round_trip(tmp_path):
    ordered = small_structures(3)
    alloy = Structure(Lattice.cubic(3.6), [{"Cu": 0.75, "Au": 0.25}, {"Cu": 0.5, "Ni": 0.5}],
                      [[0, 0, 0], [0.5, 0.5, 0]])
    three = Structure(Lattice.cubic(4.0), [{"Fe": 0.5, "Co": 0.3, "Ni": 0.2}, "O"],
                      [[0, 0, 0], [0.5, 0.5, 0.5]])
    structures = [ordered[0], alloy, ordered[1], three, ordered[2]]
    store = GraphStore.from_structures(structures, tmp_path / "g", shard_size=3)
    graphs = [build_graph(s) for s in structures]
    for i, g in enumerate(graphs):
        assert store[i] == g
        assert store[i].is_ordered == g.is_ordered
    assert store[3].atomic_numbers.shape == (2, 3)
    batch, reference = store.columns(np.array([3, 0, 1, 4])), collate_graphs(
        [graphs[3], graphs[0], graphs[1], graphs[4]])
    np.testing.assert_array_equal(batch["species"], reference.atomic_numbers.numpy())
    np.testing.assert_array_equal(batch["occupancies"], reference.occupancies.numpy())
    np.testing.assert_array_equal(batch["neighbor_indices"], reference.neighbor_indices.numpy())


def test_views_index_columns_and_pickle(store):
    rows = np.array([30, 2, 17, 2, 9])
    view = store[rows]
    assert isinstance(view, GraphStore) and len(view) == 5 and view.shape == (5,)
    assert view.ids.tolist() == store.ids[rows].tolist()
    np.testing.assert_array_equal(view.targets, store.targets[rows])
    subview = view[np.array([4, 0])]
    assert subview.ids.tolist() == [store.ids[9], store.ids[30]]
    assert store[5:8].ids.tolist() == store.ids[5:8].tolist()
    mask = np.zeros(len(store), dtype=bool)
    mask[[1, 3]] = True
    assert store[mask].ids.tolist() == store.ids[[1, 3]].tolist()
    columns = view.columns(np.arange(5))
    reference = collate_graphs([store[int(r)] for r in rows])
    np.testing.assert_array_equal(columns["species"], reference.atomic_numbers.numpy())
    np.testing.assert_array_equal(columns["neighbor_indices"],
                                  reference.neighbor_indices.numpy())
    np.testing.assert_array_equal(columns["distances"], reference.distances.numpy())
    clone = pickle.loads(pickle.dumps(view))
    assert len(pickle.dumps(view)) < 2000  # a path and rows, not the graphs
    assert clone.ids.tolist() == view.ids.tolist() and clone[1] == view[1]
    with pytest.raises(IndexError):
        store[len(store)]


def test_sklearn_splitters_give_views(store):
    from sklearn.model_selection import KFold, train_test_split
    from sklearn.utils import _safe_indexing

    train, test = train_test_split(store, random_state=0)
    assert isinstance(train, GraphStore) and len(train) + len(test) == len(store)
    part = _safe_indexing(store, np.array([3, 1]))
    assert isinstance(part, GraphStore) and part.ids.tolist() == store.ids[[3, 1]].tolist()
    for tr, _ in KFold(3).split(store):
        assert len(store[tr]) == len(tr)


def test_append_adds_shards(tmp_path):
    first = GraphStore.from_structures(small_structures(5), tmp_path / "g", shard_size=4,
                                       ids=list("abcde"))
    with pytest.raises(FileExistsError):
        GraphStore.from_structures(small_structures(2), tmp_path / "g")
    more = first.append(small_structures(3, seed=1), ids=list("xyz"), shard_size=4)
    assert len(more) == 8 and more.ids.tolist() == list("abcdexyz")
    assert more[6] == build_graph(small_structures(3, seed=1)[1])
    with pytest.raises(ValueError, match="radius"):
        GraphStore.from_structures(small_structures(2), tmp_path / "g", radius=6.0,
                                   append=True)


def test_interrupted_write_resumes_from_the_shards_on_disk(tmp_path, monkeypatch):
    structures = small_structures(12)
    full = GraphStore.from_structures(structures, tmp_path / "a", shard_size=4)
    # an interrupted run left shards 0 and 1 but no manifest
    partial = tmp_path / "b"
    _copy_tree(full.path, partial)
    (partial / "graphstore.json").unlink()
    import shutil

    shutil.rmtree(partial / "shard-000002")
    import skcgcnn._shards as shards

    calls = []
    original = shards._graph_of
    monkeypatch.setattr(shards, "_graph_of", lambda *a: calls.append(1) or original(*a))
    resumed = GraphStore.from_structures(structures, partial, shard_size=4)
    assert len(calls) == 4  # only the missing shard was featurized
    assert _same_tree(full.path, resumed.path)


def test_folder_json_and_memory_inputs_agree(tmp_path):
    import pandas as pd
    from matminer.utils.io import store_dataframe_as_json

    structures = small_structures(6)
    y = np.arange(6, dtype=float)
    folder = tmp_path / "cifs"
    folder.mkdir()
    for i, s in enumerate(structures):
        CifWriter(s).write_file(folder / f"m{i}.cif")
    (folder / "id_prop.csv").write_text("".join(f"m{i},{v}\n" for i, v in enumerate(y)))
    df = pd.DataFrame({"structure": structures, "e": y}, index=[f"m{i}" for i in range(6)])
    store_dataframe_as_json(df, str(tmp_path / "d.json.gz"), compression="gz", pbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_folder = GraphStore.from_structures(folder, tmp_path / "s1")
    from_json = GraphStore.from_structures(tmp_path / "d.json.gz", tmp_path / "s2", target="e")
    from_frame = GraphStore.from_structures(df, tmp_path / "s3", target="e")
    for s in (from_folder, from_json, from_frame):
        assert s.ids.tolist() == [f"m{i}" for i in range(6)]
        np.testing.assert_array_equal(s.targets, y)
    np.testing.assert_allclose(from_folder[2].distances, from_frame[2].distances, atol=1e-4)
    assert from_json[2] == from_frame[2]
    out = featurize_source(df, target="e", n_jobs=2, shard_size=2)
    assert out["ids"].tolist() == from_frame.ids.tolist()
    assert all(a == b for a, b in zip(out["graphs"], from_frame.to_graphs()))


def _sparse(n: int) -> list[Structure]:
    """Structures whose atoms have fewer than 12 neighbours within 8 A (one warning each)."""
    return [Structure(Lattice.cubic(20.0 + 0.01 * i), ["Xe"], [[0, 0, 0]]) for i in range(n)]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_worker_warnings_reach_the_caller(n_jobs):
    """Issue 16, case 8: warnings raised in featurizer workers are seen by the parent."""
    featurizer = CrystalGraphFeaturizer(n_jobs=n_jobs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        featurizer.featurize_many(_sparse(130))
    sparse = [w for w in caught if issubclass(w.category, SparseNeighborWarning)]
    assert len(sparse) == 1
    assert str(sparse[0].message).startswith("130 entries raised this warning (first: entry 0)")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_store_worker_warnings_reach_the_caller(n_jobs, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        GraphStore.from_structures(_sparse(20), tmp_path / "g", shard_size=5, n_jobs=n_jobs)
    sparse = [w for w in caught if issubclass(w.category, SparseNeighborWarning)]
    assert len(sparse) == 1 and str(sparse[0].message).startswith("20 rows raised")


def test_cli_featurize(tar_input, tmp_path, capsys):
    from skcgcnn.cli import main

    out = tmp_path / "graphs"
    assert main(["featurize", str(tar_input[0]), "-o", str(out), "--n-jobs", "1",
                 "--shard-size", "16"]) == 0
    err = capsys.readouterr().err
    assert "39 graphs" in err and "failed: id-0007" in err
    assert len(GraphStore(out)) == 39
    assert main(["featurize", str(tar_input[0]), "-o", str(out)]) == 1  # exists: no overwrite
    assert "already holds a graph store" in capsys.readouterr().err


def test_collate_store_equals_collate_graphs_padding_included(tmp_path):
    """The store's batches carry the same tensors as collated graphs, the padding mask too."""
    import torch

    from skcgcnn.batch import StoreDataset, collate_graphs, collate_store

    structures = _sparse(3) + small_structures(4)
    store = GraphStore.from_structures(structures, tmp_path / "g", target=np.arange(7.0),
                                       shard_size=3)
    rows = [5, 0, 3, 1]
    batch, y = collate_store(StoreDataset(store, store.targets).__getitems__(rows))
    reference = collate_graphs([build_graph(structures[r], warn=False) for r in rows])
    for name in ("atomic_numbers", "neighbor_indices", "distances", "neighbor_mask",
                 "crystal_index"):
        a, b = getattr(batch, name), getattr(reference, name)
        assert a.dtype == b.dtype and torch.equal(a, b), name
    assert not batch.neighbor_mask.all()  # the Xe atoms are padded
    assert (batch.n_crystals, batch.radius) == (reference.n_crystals, reference.radius)
    assert y.tolist() == [5.0, 0.0, 3.0, 1.0]


@pytest.mark.parametrize("compression", ["xz", "bz2", ""])
def test_xz_bz2_and_plain_tars_give_the_same_store(tar_input, store, tmp_path, compression):
    raw = gzip.decompress(tar_input[0].read_bytes())
    packed = {"xz": lzma.compress, "bz2": bz2.compress, "": bytes}[compression](raw)
    path = tmp_path / ("set.tar" + (f".{compression}" if compression else ""))
    path.write_bytes(packed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = GraphStore.from_structures(path, tmp_path / "g", shard_size=8, n_jobs=1)
    assert _same_tree(store.path, other.path)


def test_read_structures_parses_an_archive_with_ids_targets_and_failures(tar_input):
    path, targets = tar_input
    out = read_structures(path, n_jobs=2, shard_size=8)
    kept = [i for i in range(40) if i != 7]
    assert out["ids"].tolist() == [f"id-{i:04d}" for i in kept]
    np.testing.assert_array_equal(out["targets"][:, 0], [targets[i] for i in kept])
    assert out["target_names"] == ["gap"]
    assert [f[0] for f in out["failures"]] == ["id-0007"]
    assert len(out["structures"]) == 39
    original = small_structures(40)[kept[10]]
    parsed = out["structures"][10]
    assert parsed.composition == original.composition
    np.testing.assert_allclose(parsed.lattice.abc, original.lattice.abc, atol=1e-5)
