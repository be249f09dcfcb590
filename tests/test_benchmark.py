"""The Matbench benchmark runner: per-fold CSV rows, resumability, plots, table, CLI."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from archives import cif_tar, small_structures
from shared_data import ROOT, require_shared
from sklearn.model_selection import KFold
from skorch.callbacks import Callback

import skcgcnn
from skcgcnn.benchmark import (
    LEADERBOARD_FILE,
    TASKS,
    BudgetCosineLR,
    load_task,
    main,
    make_model,
    make_plots,
    run_benchmark,
    summary_table,
)
from skcgcnn.benchmark.fold_state import FoldInterrupted
from skcgcnn.benchmark.models import model_settings, settings_id
from skcgcnn.benchmark.runner import _append_row
from skcgcnn.store import GraphStore

N = 40  # demo perovskites used by the fast runs


@pytest.fixture(scope="module")
def tiny_task(perovskites):
    """40 real perovskites, 2 folds of a KFold, as (X, y, folds, spec)."""
    subset = perovskites.iloc[:N]
    X = subset["structure"].to_numpy()
    y = subset["e_form"].to_numpy()
    folds = [(tr.astype(np.intp), te.astype(np.intp))
             for tr, te in KFold(2, shuffle=True, random_state=0).split(X)]
    return X, y, folds, TASKS["matbench_perovskites"]


def _run(tiny_task, results, **kwargs):
    return run_benchmark("matbench_perovskites", data_dir=None, data=tiny_task,
                         results_dir=results, max_epochs=2, preset="budget", verbose=0,
                         **kwargs)


def test_rows_resume_and_plots(tiny_task, tmp_path):
    written = _run(tiny_task, tmp_path, models=("cgcnn", "rf-magpie"), folds=[0])
    csv = tmp_path / "matbench_perovskites.csv"
    rows = pd.read_csv(csv)
    assert len(written) == len(rows) == 2
    assert rows["model"].tolist() == ["cgcnn", "rf-magpie"]
    assert set(rows["fold"]) == {0}
    assert (rows["n_train"] == len(tiny_task[2][0][0])).all()
    assert (rows["n_test"] == len(tiny_task[2][0][1])).all()
    for metric in ("mae", "rmse", "fit_time_s", "predict_time_s"):
        assert np.isfinite(rows[metric]).all() and (rows[metric] > 0).all()
    assert (rows["rmse"] >= rows["mae"]).all()
    assert rows.loc[0, "n_epochs"] == 2
    assert "torch=" in rows.loc[0, "versions"] and "matminer=" in rows.loc[0, "versions"]
    assert rows["settings_id"].nunique() == 2

    # the saved predictions are the test fold, in user units, and reproduce the MAE
    pred = pd.read_csv(next((tmp_path / "matbench_perovskites_predictions").glob("cgcnn-*")))
    np.testing.assert_array_equal(pred["position"], tiny_task[2][0][1])
    np.testing.assert_allclose(np.abs(pred["y_true"] - pred["y_pred"]).mean(),
                               rows.loc[0, "mae"], rtol=1e-4)
    # the saved history has one entry per epoch and the target scale of the fitted model
    history = json.loads(next((tmp_path / "matbench_perovskites_history").glob("*.json"))
                         .read_text())
    assert len(history["epochs"]) == 2 and history["y_scale"] > 0

    # resuming: fold 0 is skipped for both models, fold 1 is added
    again = _run(tiny_task, tmp_path, models=("cgcnn", "rf-magpie"), folds=[0, 1])
    rows = pd.read_csv(csv)
    assert len(again) == 2 and set(again["fold"]) == {1}
    assert len(rows) == 4
    assert sorted(zip(rows["model"], rows["fold"])) == [
        ("cgcnn", 0), ("cgcnn", 1), ("rf-magpie", 0), ("rf-magpie", 1)]
    # other settings (a training-set size) are new rows, not skipped
    _run(tiny_task, tmp_path, models=("rf-magpie",), folds=[0], max_train=10)
    rows = pd.read_csv(csv)
    assert len(rows) == 5 and rows["n_train"].iloc[-1] == 10

    paths = make_plots("matbench_perovskites", tmp_path)
    names = {p.name for p in paths}
    assert names == {
        "matbench_perovskites_parity_cgcnn.png", "matbench_perovskites_parity_rf-magpie.png",
        "matbench_perovskites_learning_curve.png", "matbench_perovskites_training_curves.png"}
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000

    # the table: one line per (model, settings); the bold mean is the mean of that model's rows
    table = summary_table("matbench_perovskites", tmp_path)
    assert len(table.splitlines()) > 3
    for (model, sid), group in rows.groupby(["model", "settings_id"]):
        line = next(ln for ln in table.splitlines() if f"({sid})" in ln)
        assert line.startswith(f"| {model} |")
        assert f"**{group['mae'].mean():.4f}**" in line


def test_table_averages_published_scores_over_the_same_folds(tiny_task, tmp_path):
    """With a leaderboard file, the published per-fold numbers of the folds run are averaged."""
    _run(tiny_task, tmp_path, models=("rf-magpie",), folds=[1])
    entries = [
        {"benchmark": "matbench_v0.1_cgcnnv2019", "task": "matbench_perovskites",
         "scores": {"mae": {"folds": [0.10, 0.30, 0.50, 0.70, 0.90]}}},
        {"benchmark": "matbench_v0.1_rf", "task": "matbench_perovskites",
         "scores": {"mae": {"folds": [1.0, 2.0, 3.0, 4.0, 5.0]}}},
        {"benchmark": "matbench_v0.1_rf", "task": "matbench_dielectric",
         "scores": {"mae": {"folds": [9.0] * 5}}},
    ]
    (tmp_path / LEADERBOARD_FILE).write_text(json.dumps({"entries": entries}))
    line = next(ln for ln in summary_table("matbench_perovskites", tmp_path, tmp_path)
                .splitlines() if ln.startswith("| rf-magpie |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[3] == "1"  # the fold run
    assert cells[6:8] == ["0.3000", "2.0000"]  # published CGCNN and RF on fold 1 only
    # without the file, no per-fold published numbers
    line = next(ln for ln in summary_table("matbench_perovskites", tmp_path).splitlines()
                if ln.startswith("| rf-magpie |"))
    assert [c.strip() for c in line.strip("|").split("|")][6:8] == ["-", "-"]


def test_results_go_to_the_current_directory_by_default(tiny_task, tmp_path, monkeypatch):
    package = ROOT / "skcgcnn"
    before = {p for p in package.rglob("*") if "__pycache__" not in p.parts}
    monkeypatch.chdir(tmp_path)
    _run(tiny_task, None, models=("rf-magpie",), folds=[0])
    assert (tmp_path / "matbench_perovskites.csv").is_file()
    assert (tmp_path / "matbench_perovskites_predictions").is_dir()
    assert summary_table("matbench_perovskites").startswith("### matbench_perovskites")
    after = {p for p in package.rglob("*") if "__pycache__" not in p.parts}
    assert after == before  # nothing written into the package's source tree


def _append_rows(csv, worker, n):
    for i in range(n):
        _append_row(csv, {"task": "t", "worker": worker, "i": i, "mae": worker + i / 100})


def test_concurrent_appends_keep_every_row_and_one_header(tmp_path):
    csv = tmp_path / "t.csv"
    # fork: the workers start at once (a spawned one re-imports torch, slow on a loaded machine)
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    procs = [ctx.Process(target=_append_rows, args=(csv, w, 25)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    rows = pd.read_csv(csv)
    assert list(rows.columns) == ["task", "worker", "i", "mae"]
    assert len(rows) == 75
    assert sorted(zip(rows["worker"], rows["i"])) == [(w, i) for w in range(3) for i in range(25)]


def test_appended_row_follows_existing_column_order_and_keeps_new_columns(tmp_path):
    csv = tmp_path / "t.csv"
    _append_row(csv, {"a": 1, "b": 2})
    _append_row(csv, {"b": 4, "a": 3})  # the file's column order wins
    assert pd.read_csv(csv).to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    _append_row(csv, {"b": 6, "extra": "x", "a": 5})  # a newer runner's column is not dropped
    rows = pd.read_csv(csv)
    assert list(rows.columns) == ["a", "b", "extra"]
    assert rows[["a", "b"]].to_dict("list") == {"a": [1, 3, 5], "b": [2, 4, 6]}
    assert rows["extra"].isna().tolist() == [True, True, False]
    assert rows["extra"].iloc[2] == "x"


def test_classification_rows(tiny_task, tmp_path):
    X, y, folds, spec = tiny_task
    labels = (y > np.median(y)).astype(int)
    data = (X, labels, folds, replace(spec, name="tiny_is_high", kind="classification"))
    run_benchmark("tiny_is_high", None, models=("rf-magpie", "cgcnn"), folds=[0],
                  results_dir=tmp_path, data=data, max_epochs=1, verbose=0)
    rows = pd.read_csv(tmp_path / "tiny_is_high.csv")
    assert len(rows) == 2
    assert ((rows["roc_auc"] >= 0) & (rows["roc_auc"] <= 1)).all()
    assert ((rows["accuracy"] >= 0) & (rows["accuracy"] <= 1)).all()
    assert "mae" not in rows.columns


def test_budget_cosine_stops_on_time_and_anneals(tiny_task):
    X, y, _, _ = tiny_task
    reg = make_model("cgcnn", "regression", preset="budget", time_budget=1e-6, verbose=0)
    reg.set_params(max_epochs=5, train_split=None)
    reg.fit(X[:20], y[:20])
    assert len(reg.history) == 1  # the budget was used up in the first epoch
    assert reg.history[-1]["lr"] < 1e-8  # ... and the LR annealed to zero by then

    reg = make_model("cgcnn", "regression", preset="budget", verbose=0)
    reg.set_params(max_epochs=4, train_split=None,
                   callbacks=[("budget_lr", BudgetCosineLR(min_lr_fraction=0.1))])
    reg.fit(X[:20], y[:20])
    lrs = reg.history[:, "lr"]
    assert len(lrs) == 4 and lrs[0] == pytest.approx(0.002)
    assert np.all(np.diff(lrs) < 0) and lrs[-1] >= 0.0002


def test_make_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown model"):
        make_model("svm", "regression")
    with pytest.raises(ValueError, match="unknown preset"):
        make_model("cgcnn", "regression", preset="fast")


def test_cli_errors_and_table(tmp_path, capsys):
    assert main(["matbench_perovskites", "--data", str(tmp_path), "--model", "rf-magpie",
                 "--results", str(tmp_path)]) == 2
    assert "matbench_perovskites.json.gz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["not_a_task", "--data", str(tmp_path)])
    assert main(["matbench_perovskites", "--data", str(tmp_path), "--table",
                 "--results", str(tmp_path)]) == 0
    assert "no results yet" in capsys.readouterr().out


def test_cli_plots_without_matplotlib(tiny_task, tmp_path, monkeypatch, capsys):
    _run(tiny_task, tmp_path, models=("rf-magpie",), folds=[0])
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    argv = ["matbench_perovskites", "--data", str(tmp_path), "--results", str(tmp_path)]
    assert main([*argv, "--table", "--plots"]) == 2  # plots asked for: an error
    assert "pip install skcgcnn[plot]" in capsys.readouterr().err
    assert main([*argv, "--table"]) == 0  # no plots asked for: the table alone
    assert "| rf-magpie |" in capsys.readouterr().out
    assert not list(tmp_path.glob("*.png"))


def test_old_import_paths_and_module_entry_point():
    from skcgcnn.callbacks import BudgetCosineLR as moved

    assert BudgetCosineLR is moved
    assert skcgcnn.benchmark.MagpieSCM.__module__ == "skcgcnn.benchmark.models"
    out = subprocess.run([sys.executable, "-m", "skcgcnn.benchmark", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "matbench_perovskites" in out.stdout
    assert "default: the current directory" in " ".join(out.stdout.split())


@pytest.mark.slow
def test_official_perovskite_folds():
    data = require_shared("datasets")
    X, y, folds, spec = load_task("perovskites", data)
    assert len(X) == 18928 and spec.kind == "regression"
    assert [len(te) for _, te in folds] == [3786, 3786, 3786, 3785, 3785]
    for train, test in folds:
        assert len(train) + len(test) == len(X)
        assert not set(train) & set(test)
    assert np.isclose(float(np.mean(y)), 1.4709, atol=1e-3)


@pytest.mark.slow
def test_elastic_folds_partition_the_data():
    data = require_shared("datasets")
    X, y, folds, spec = load_task("elastic_log_gvrh", data)
    assert len(X) == 3191 and spec.folds == "kfold"
    tests = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(np.sort(tests), np.arange(len(X)))  # each row tested once
    assert {len(test) for _, test in folds} == {638, 639}
    for train, test in folds:
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(X)))
    assert 1.5 < float(np.mean(y)) < 1.8  # log10(G_VRH / GPa)
    again = load_task("elastic_log_gvrh", data)[2]
    for (a, b), (c, d) in zip(folds, again):  # the same folds on every call
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


@pytest.fixture
def whole_mp_gap(tmp_path):
    """A data folder like ../shared/datasets for the whole mp_gap task, in miniature: 30 CIFs
    with Matbench ids in an xz tar (the runner finds it under the task's .tar.gz name), one
    of them broken, and official-style folds over the 30 ids."""
    data = tmp_path / "data"
    data.mkdir()
    ids = [f"mb-mp-gap-{i + 1:06d}" for i in range(30)]
    gaps = [0.0 if i % 3 == 0 else 0.5 + i / 10 for i in range(30)]
    cif_tar(data / "matbench_mp_gap_cifs.tar.xz", small_structures(30), gaps, broken=(4,),
            ids=ids, target_name="gap pbe")
    splits = {}
    for task, prefix in [("matbench_mp_gap", "mb-mp-gap-"),
                         ("matbench_mp_is_metal", "mb-mp-is-metal-")]:
        named = np.array([i.replace("mb-mp-gap-", prefix) for i in ids])
        splits[task] = {f"fold_{k}": {"train": named[tr].tolist(), "test": named[te].tolist()}
                        for k, (tr, te) in enumerate(KFold(5).split(named))}
    with gzip.open(data / "matbench_v0.1_validation.json.gz", "wt") as fh:
        json.dump({"metadata": {}, "splits": splits}, fh)
    return data, ids, gaps


def test_whole_dataset_through_a_store(whole_mp_gap, tmp_path):
    data, ids, gaps = whole_mp_gap
    store, results = tmp_path / "store", tmp_path / "results"
    with pytest.warns(UserWarning, match="1 rows .* left out.*mb-mp-gap-000005"):
        X, y, folds, spec = load_task("matbench_mp_gap", data, full=True, store=store, n_jobs=2)
    assert isinstance(X, GraphStore) and (store / "graphstore.json").is_file()
    kept = [i for i in range(30) if i != 4]
    assert X.ids.tolist() == [ids[i] for i in kept]
    np.testing.assert_allclose(y, [gaps[i] for i in kept])
    train, test = folds[0]  # positions into the store; the broken row is left out of fold 0
    assert len(train) + len(test) == 29 and set(X.ids[test]) == {ids[i] for i in range(1, 6)
                                                                  if i != 4} | {ids[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        written = run_benchmark("matbench_mp_gap", data, models=("cgcnn", "rf-magpie"),
                                folds=[0], full=True, store=store, n_jobs=1,
                                results_dir=results, max_epochs=2, verbose=0)
        # the baseline read the same rows as Structures: same folds, same test positions
        assert written["n_test"].tolist() == [len(test), len(test)]
        assert written["data"].tolist() == ["full", "full"]
        assert written["device"].tolist() == ["cpu", "cpu"]
        assert (written["fit_cpu_s"] >= 0).all() and written["fit_cpu_s"].sum() > 0
        settings = [json.loads(s) for s in written["settings"]]
        assert all(s["data"] == "full" for s in settings)
        # resumable: a second run trains nothing and reuses the store as it is
        stamp = (store / "graphstore.json").stat().st_mtime_ns
        again = run_benchmark("matbench_mp_gap", data, models=("cgcnn", "rf-magpie"),
                              folds=[0], full=True, store=store, results_dir=results,
                              max_epochs=2, verbose=0)
    assert again.empty and (store / "graphstore.json").stat().st_mtime_ns == stamp
    # a run on the task's sample is another experiment (other settings ids)
    assert set(written["settings_id"]).isdisjoint(
        settings_id(model_settings(m, max_epochs=2)) for m in ("cgcnn", "rf-magpie"))
    table = summary_table("matbench_mp_gap", results)
    assert "whole dataset" in table


def test_whole_dataset_needs_a_task_that_has_one(tmp_path):
    with pytest.raises(ValueError, match="no full dataset"):
        load_task("matbench_perovskites", tmp_path, full=True)


def test_cli_whole_dataset_with_a_store(whole_mp_gap, tmp_path, capsys):
    data, _, _ = whole_mp_gap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        code = main(["matbench_mp_is_metal", "--data", str(data), "--folds", "1", "--full",
                     "--store", str(tmp_path / "store"), "--n-jobs", "1", "--model", "cgcnn",
                     "--max-epochs", "2", "--results", str(tmp_path / "r"), "--quiet"])
    assert code == 0
    rows = pd.read_csv(tmp_path / "r" / "matbench_mp_is_metal.csv")
    assert rows["data"].tolist() == ["full"] and rows["n_train"].tolist() == [23]
    assert 0.0 <= rows["roc_auc"].iloc[0] <= 1.0


def test_baseline_n_jobs_changes_speed_not_results(tiny_task):
    X, y, folds, _ = tiny_task
    train, test = folds[0]
    serial = make_model("rf-magpie", "regression").fit(X[train], y[train])
    parallel = make_model("rf-magpie", "regression", n_jobs=2)
    assert parallel.steps[-1][1].n_jobs == 2 and parallel.steps[0][1].n_jobs == 2
    parallel.fit(X[train], y[train])
    # the same trees; only the order of summing them differs (last-bit rounding)
    np.testing.assert_allclose(parallel.predict(X[test]), serial.predict(X[test]), rtol=1e-12)


@pytest.fixture
def interactive_sigint():
    """SIGINT as in a terminal (Python's default handler), also when the test run itself was
    started in the background (where SIGINT is ignored, and stays ignored by design)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


class _SigintAtEpoch(Callback):
    """Sends this process a SIGINT (as Ctrl-C would) when epoch ``epoch`` begins."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def _run_default(tiny_task, results, **kwargs):
    return run_benchmark("matbench_perovskites", data_dir=None, data=tiny_task,
                         models=("cgcnn",), folds=[0], results_dir=results, max_epochs=4,
                         verbose=0, **kwargs)


@pytest.mark.parametrize("preset", ["default", "budget"])  # AnnealOnPlateau, BudgetCosineLR
def test_a_stopped_fold_resumes_to_the_straight_run(tiny_task, tmp_path, monkeypatch, preset,
                                                     interactive_sigint):
    import skcgcnn.benchmark.runner as runner

    straight = _run_default(tiny_task, tmp_path / "straight", preset=preset)
    checkpoints = tmp_path / "ck"
    real = runner.make_model

    def interrupted(*args, **kwargs):
        model = real(*args, **kwargs)
        return model.set_params(callbacks=[*(model.callbacks or []),
                                           ("ctrl_c", _SigintAtEpoch(2))])

    monkeypatch.setattr(runner, "make_model", interrupted)
    with pytest.raises(FoldInterrupted, match="after epoch 2"):
        _run_default(tiny_task, tmp_path / "resumed", checkpoint_dir=checkpoints,
                     preset=preset)
    assert not (tmp_path / "resumed" / "matbench_perovskites.csv").exists()  # nothing recorded
    (folder,) = checkpoints.iterdir()
    assert (folder / "params.pt").is_file() and len(json.loads(
        (folder / "history.json").read_text())) == 2
    monkeypatch.setattr(runner, "make_model", real)
    resumed = _run_default(tiny_task, tmp_path / "resumed", checkpoint_dir=checkpoints,
                           preset=preset)
    assert resumed["resumed_at_epoch"].tolist() == [2]
    assert resumed["n_epochs"].tolist() == straight["n_epochs"].tolist() == [4]
    np.testing.assert_allclose(resumed["mae"], straight["mae"], rtol=1e-6)
    assert resumed["train_time_s"].iloc[0] > 0  # epochs of both sessions
    assert not folder.exists()  # cleared once the row is written
    stem = f"cgcnn-{resumed['settings_id'].iloc[0]}-fold0.csv"
    a = pd.read_csv(tmp_path / "straight" / "matbench_perovskites_predictions" / stem)
    b = pd.read_csv(tmp_path / "resumed" / "matbench_perovskites_predictions" / stem)
    np.testing.assert_allclose(b["y_pred"], a["y_pred"], rtol=1e-5, atol=1e-6)


def test_ctrl_c_without_checkpoints_records_nothing(tiny_task, tmp_path, monkeypatch,
                                                    interactive_sigint):
    import skcgcnn.benchmark.runner as runner

    real = runner.make_model
    monkeypatch.setattr(runner, "make_model", lambda *a, **k: real(*a, **k).set_params(
        callbacks=[("ctrl_c", _SigintAtEpoch(1))]))
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(FoldInterrupted):
        _run_default(tiny_task, tmp_path)
    assert not (tmp_path / "matbench_perovskites.csv").exists()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored


def test_an_ignored_sigint_stays_ignored():
    from skcgcnn.benchmark.fold_state import StopAtEpochEnd, stop_at_epoch_end

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_at_epoch_end(StopAtEpochEnd(), verbose=0):
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # handled
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_change_of_the_default_schedule_is_a_new_experiment():
    # CGCNN runs since the default schedule and loss changed are not skipped as equal to the
    # runs recorded before (results/matbench_mp_gap.csv, 4k, seed 0): the default preset's
    # (schedule and loss) and the budget preset's (loss); the forest keeps its id
    assert settings_id(model_settings("cgcnn", max_train=4000)) not in {
        "b73b13cdb6", "1a39c3a294"}  # the defaults to 608c499, and with the MSE loss
    budget = model_settings("cgcnn", preset="budget", max_train=4000, time_budget=1500.0,
                            max_epochs=60)
    assert settings_id(budget) != "4aad1db484"  # its MSE run: the loss changed
    assert settings_id({k: v for k, v in budget.items() if k != "loss"}) == "4aad1db484"
    assert settings_id(model_settings("rf-magpie", max_train=4000)) == "227549a722"
