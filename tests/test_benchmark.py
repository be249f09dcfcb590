"""The Matbench benchmark runner: per-fold CSV rows, resumability, plots, table, CLI."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from shared_data import require_shared
from sklearn.model_selection import KFold

from skcgcnn.benchmark import (
    TASKS,
    BudgetCosineLR,
    load_task,
    main,
    make_model,
    make_plots,
    run_benchmark,
    summary_table,
)

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

    table = summary_table("matbench_perovskites", tmp_path)
    assert "| cgcnn |" in table and "| rf-magpie |" in table
    assert "0.0452" in table and "0.2355" in table  # the published anchors


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


@pytest.mark.slow
def test_official_perovskite_folds():
    data = require_shared("datasets")
    X, y, folds, spec = load_task("perovskites", data)
    assert len(X) == 18928 and spec.kind == "regression"
    assert [len(te) for _, te in folds] == [3786, 3786, 3786, 3785, 3785]
    for train, test in folds:
        assert len(train) + len(test) == len(X)
        assert not set(train) & set(test)
    assert math.isclose(float(np.mean(y)), 1.4709, abs_tol=1e-3)


@pytest.mark.slow
def test_elastic_folds_are_matbench_kfold():
    data = require_shared("datasets")
    X, y, folds, spec = load_task("elastic_log_gvrh", data)
    assert len(X) == 3191 and spec.folds == "kfold"
    expected = list(KFold(5, shuffle=True, random_state=18012019).split(X))
    for (train, test), (expected_train, expected_test) in zip(folds, expected, strict=True):
        np.testing.assert_array_equal(train, expected_train)
        np.testing.assert_array_equal(test, expected_test)
    assert 1.5 < float(np.mean(y)) < 1.8  # log10(G_VRH / GPa)
