"""CGCNN inside scikit-learn's tools, on real structures: Pipelines (with content-keyed memory),
GridSearchCV / RandomizedSearchCV in loky workers, cross_validate / cross_val_predict on
Matbench-style folds, and embeddings feeding a random forest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure
from scipy.stats import loguniform, randint
from shared_data import TINY
from sklearn.base import clone
from sklearn.ensemble import RandomForestRegressor
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_val_predict,
    cross_validate,
)
from sklearn.pipeline import Pipeline, make_pipeline

import skcgcnn.featurizer
from skcgcnn import CGCNNClassifier, CGCNNRegressor, CrystalGraphFeaturizer
from skcgcnn.cache import StructureMemory, content_hash

#: Matbench's regression folds (KFold(5, shuffle=True, random_state=18012019)).
MATBENCH_KFOLD = KFold(5, shuffle=True, random_state=18012019)


@pytest.fixture
def count_graphs(monkeypatch):
    """Count calls of build_graph made by the featurizer (in this process)."""
    calls = []
    original = skcgcnn.featurizer.build_graph

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(skcgcnn.featurizer, "build_graph", counting)
    return calls


def _fresh(structures):
    """New Structure objects with the same content and empty pymatgen caches."""
    return [Structure.from_dict(s.as_dict()) for s in structures]


# --------------------------------------------------------------------------- Pipeline


def test_make_pipeline_on_structures_equals_the_estimator_alone(perovskites):
    X, y = perovskites["structure"].iloc[:60], perovskites["e_form"].iloc[:60]
    pipe = make_pipeline(CrystalGraphFeaturizer(), CGCNNRegressor(**TINY, max_epochs=2))
    pred = pipe.fit(X, y).predict(X)
    assert isinstance(pred, np.ndarray) and pred.shape == (60,)
    alone = CGCNNRegressor(**TINY, max_epochs=2).fit(X, y)
    np.testing.assert_array_equal(pred, alone.predict(X))
    assert pipe.score(X, y) == pytest.approx(alone.score(X, y))


def test_pipeline_memory_featurizes_the_same_structures_once(perovskites, tmp_path,
                                                             count_graphs):
    structures = _fresh(perovskites["structure"].iloc[:40])
    y = perovskites["e_form"].iloc[:40].to_numpy()
    pipe = Pipeline(
        [("graphs", CrystalGraphFeaturizer()), ("cgcnn", CGCNNRegressor(**TINY, max_epochs=1))],
        memory=StructureMemory(tmp_path),
    )
    key = content_hash(structures)
    first = pipe.fit(structures, y).predict(structures)
    assert len(count_graphs) == 80  # fit + predict (predict is never cached by a Pipeline)
    assert content_hash(structures) == key  # featurizing filled pymatgen's caches: same key
    second = pipe.fit(structures, y).predict(structures)
    assert len(count_graphs) == 120  # the second fit did not featurize; predict did
    np.testing.assert_array_equal(first, second)
    # equal content in new objects hits the cache too; a changed structure does not
    pipe.fit(_fresh(structures), y)
    assert len(count_graphs) == 120
    changed = _fresh(structures)
    changed[5].perturb(0.05, min_distance=0.01)
    pipe.fit(changed, y)
    assert len(count_graphs) == 160
    # and a grid search over the network only featurizes each training fold once
    count_graphs.clear()
    search = GridSearchCV(pipe, {"cgcnn__lr": [0.001, 0.01, 0.1]}, cv=2, refit=False)
    search.fit(_fresh(structures), y)
    # per fold: the 20 training structures once (not once per candidate), and the 20 test
    # structures for each candidate's score (a Pipeline caches fit_transform, not transform)
    assert len(count_graphs) == 2 * (20 + 3 * 20)


# --------------------------------------------------------------------------- searches


@pytest.mark.slow  # starting two loky workers (torch imports) dominates: ~15-30 s
def test_grid_search_in_loky_workers_over_network_parameters(perovskites):
    """260 structures and 2 folds: each worker featurizes 130 structures with n_jobs=2, which is
    joblib's parallel path, nested inside a loky worker (no multiprocessing.Pool)."""
    X, y = perovskites["structure"].iloc[:260], perovskites["e_form"].iloc[:260]
    pipe = make_pipeline(CrystalGraphFeaturizer(n_jobs=2), CGCNNRegressor(**TINY))
    grid = [
        {"cgcnnregressor__module__n_conv": [1, 2], "cgcnnregressor__lr": [0.01],
         "cgcnnregressor__max_epochs": [2], "cgcnnregressor__batch_size": [32]},
        {"cgcnnregressor__module__n_conv": [1], "cgcnnregressor__lr": [0.003],
         "cgcnnregressor__max_epochs": [1], "cgcnnregressor__batch_size": [64]},
    ]
    search = GridSearchCV(pipe, grid, cv=2, n_jobs=2, refit=True,
                          scoring="neg_mean_absolute_error", error_score="raise")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 3
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    best = search.best_estimator_
    assert best[-1].get_params()["module__n_conv"] == search.best_params_[
        "cgcnnregressor__module__n_conv"]
    assert len(best[-1].history_) == search.best_params_["cgcnnregressor__max_epochs"]
    pred = search.predict(X.iloc[:10])
    assert pred.shape == (10,) and np.isfinite(pred).all()


def test_randomized_search_in_loky_workers(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    distributions = {
        "module__n_conv": randint(1, 3),
        "lr": loguniform(1e-3, 1e-2),
        "max_epochs": [1, 2],
        "batch_size": [32, 64],
    }
    search = RandomizedSearchCV(CGCNNRegressor(**TINY), distributions, n_iter=3, cv=2, n_jobs=2,
                                random_state=0, error_score="raise")
    search.fit(graphs[:120], y[:120])
    assert len(search.cv_results_["params"]) == 3
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(graphs[:5]).shape == (5,)
    assert 1e-3 <= search.best_params_["lr"] <= 1e-2


# --------------------------------------------------------------------------- cross-validation


def test_cross_validate_and_cross_val_predict_on_matbench_folds(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    X, y = graphs[:100], y[:100]
    reg = CGCNNRegressor(**TINY, max_epochs=3)
    result = cross_validate(reg, X, y, cv=MATBENCH_KFOLD,
                            scoring=["neg_mean_absolute_error", "r2"], return_estimator=True)
    assert len(result["test_neg_mean_absolute_error"]) == 5
    assert (result["test_neg_mean_absolute_error"] < 0).all()
    assert np.isfinite(result["test_r2"]).all()
    predicted = cross_val_predict(reg, X, y, cv=MATBENCH_KFOLD)
    assert predicted.shape == (100,)
    # each sample is predicted by the model of the fold that held it out
    for (_, test), model in zip(MATBENCH_KFOLD.split(X), result["estimator"]):
        np.testing.assert_array_equal(predicted[test], model.predict(X[test]))
    maes = [np.abs(predicted[test] - y[test]).mean() for _, test in MATBENCH_KFOLD.split(X)]
    np.testing.assert_allclose(-result["test_neg_mean_absolute_error"], maes, rtol=1e-6)


def test_classifier_stratified_folds_roc_auc_and_accuracy(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    X, y = graphs[:150], y[:150]
    labels = np.where(y > np.median(y), "unstable", "stable")
    clf = CGCNNClassifier(**TINY, max_epochs=10, lr=0.01, train_split=None)
    cv = StratifiedKFold(3, shuffle=True, random_state=18012019)
    result = cross_validate(clf, X, labels, cv=cv, scoring=["roc_auc", "accuracy"])
    assert ((result["test_accuracy"] >= 0) & (result["test_accuracy"] <= 1)).all()
    assert result["test_roc_auc"].mean() > 0.6, result["test_roc_auc"]
    proba = cross_val_predict(clf, X, labels, cv=cv, method="predict_proba")
    assert proba.shape == (150, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # three classes: one-vs-rest ROC AUC from the probability columns
    terciles = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))
    names = np.array(["low", "mid", "high"], dtype=object)[terciles]
    auc = cross_validate(clf, X, names, cv=cv, scoring="roc_auc_ovr")["test_score"]
    assert np.isfinite(auc).all() and auc.mean() > 0.55, auc


# --------------------------------------------------------------------------- embeddings


def test_embeddings_feed_a_random_forest_better_than_random_features(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    train, test = slice(0, 250), slice(250, 400)
    reg = CGCNNRegressor(**{**TINY, "module__atom_fea_len": 32}, max_epochs=15, lr=0.01,
                         train_split=None).fit(graphs[train], y[train])
    embeddings = reg.transform(graphs[test])
    assert embeddings.shape == (150, 32) and np.isfinite(embeddings).all()

    forest = RandomForestRegressor(n_estimators=100, random_state=0)
    on_embeddings = make_pipeline(FrozenEstimator(reg), clone(forest))
    on_embeddings.fit(graphs[train], y[train])  # the frozen network is not refitted
    assert reg.history_ is on_embeddings[0].estimator.history_
    mae_embeddings = np.abs(on_embeddings.predict(graphs[test]) - y[test]).mean()

    rng = np.random.default_rng(0)
    noise = clone(forest).fit(rng.normal(size=(250, 32)), y[train])
    mae_random = np.abs(noise.predict(rng.normal(size=(150, 32))) - y[test]).mean()
    assert mae_embeddings < 0.75 * mae_random, (mae_embeddings, mae_random)

    # an unfitted CGCNN as a pipeline step: the network is trained on y, then the forest
    joint = make_pipeline(CGCNNRegressor(**TINY, max_epochs=2), clone(forest))
    assert joint.fit(graphs[:60], y[:60]).predict(graphs[:5]).shape == (5,)


# --------------------------------------------------------------------------- the example


def test_pipeline_gridsearch_example_runs(capsys):
    """examples/pipeline_gridsearch.py end to end, on a tiny configuration."""
    path = Path(__file__).resolve().parents[1] / "examples" / "pipeline_gridsearch.py"
    spec = importlib.util.spec_from_file_location("pipeline_gridsearch_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rows = example.main(["--n-samples", "60", "--max-epochs", "1", "--folds", "2",
                         "--n-jobs", "1"])
    assert [row["model"] for row in rows] == ["mean predictor", "Magpie + RF", "CGCNN"]
    out = capsys.readouterr().out
    assert "48 training / 12 test structures" in out
    for row in rows:
        assert row["model"] in out and float(row["test MAE"]) > 0
