"""CGCNNRegressor / CGCNNClassifier: fit/predict on real structures, shapes, reproducibility."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skcgcnn import CGCNNClassifier, CGCNNRegressor

FAST = {"max_epochs": 3, "batch_size": 32, "verbose": 0, "random_state": 0}


def test_fit_predict_structures_graphs_and_series(perovskite_graphs):
    graphs, y, structures = perovskite_graphs
    graphs, y, structures = graphs[:60], y[:60], structures[:60]
    from_structures = CGCNNRegressor(**FAST).fit(structures, y)
    from_graphs = CGCNNRegressor(**FAST).fit(graphs, y)
    from_series = CGCNNRegressor(**FAST).fit(pd.Series(list(structures)), pd.Series(y))
    p1 = from_structures.predict(structures)
    assert p1.shape == (60,) and p1.dtype == np.float64
    np.testing.assert_array_equal(p1, from_graphs.predict(graphs))
    np.testing.assert_array_equal(p1, from_series.predict(list(structures)))
    assert from_structures.predict(pd.DataFrame({"structure": structures})).shape == (60,)


def test_regressor_learns_real_perovskites(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    train, test = slice(0, 320), slice(320, 400)
    model = CGCNNRegressor(max_epochs=60, random_state=0, verbose=0).fit(graphs[train], y[train])
    mae = np.abs(model.predict(graphs[test]) - y[test]).mean()
    baseline = np.abs(y[test] - y[train].mean()).mean()
    assert mae < 0.7 * baseline, (mae, baseline)
    assert len(model.history_) >= 10


def test_regressor_returns_user_units(perovskite_graphs):
    """Predictions follow an affine change of the target's units (eV -> 100 x + 1000)."""
    graphs, y, _ = perovskite_graphs
    base = CGCNNRegressor(**FAST).fit(graphs[:80], y[:80]).predict(graphs[80:120])
    shifted = CGCNNRegressor(**FAST).fit(graphs[:80], y[:80] * 100.0 + 1000.0)
    pred = shifted.predict(graphs[80:120])
    np.testing.assert_allclose(pred, base * 100.0 + 1000.0, rtol=0, atol=1e-3 * 100 * y.std())
    assert np.ptp(base) > 0  # the predictions vary with the crystal


def test_classifier_string_labels_and_probabilities(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    labels = np.where(y[:120] > np.median(y[:120]), "unstable", "stable")
    clf = CGCNNClassifier(**FAST).fit(graphs[:120], labels)
    assert clf.classes_.tolist() == ["stable", "unstable"]
    proba = clf.predict_proba(graphs[:120])
    assert proba.shape == (120, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(clf.predict(graphs[:120])) <= {"stable", "unstable"}
    assert 0.0 <= clf.score(graphs[:120], labels) <= 1.0


def test_clone_and_pickle_give_identical_predictions(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    model = CGCNNRegressor(**FAST).fit(graphs[:60], y[:60])
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(model.predict(graphs[:60]), restored.predict(graphs[:60]))
    refit = clone(model).fit(graphs[:60], y[:60])
    np.testing.assert_array_equal(model.predict(graphs[:60]), refit.predict(graphs[:60]))


def test_same_random_state_same_model_different_state_different(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    a = CGCNNRegressor(**FAST).fit(graphs[:60], y[:60]).predict(graphs[:60])
    b = CGCNNRegressor(**FAST).fit(graphs[:60], y[:60]).predict(graphs[:60])
    c = CGCNNRegressor(**{**FAST, "random_state": 1}).fit(graphs[:60], y[:60]).predict(graphs[:60])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_not_fitted_error(perovskite_graphs):
    graphs, _, _ = perovskite_graphs
    with pytest.raises(NotFittedError):
        CGCNNRegressor().predict(graphs[:2])
    with pytest.raises(NotFittedError):
        CGCNNClassifier().predict_proba(graphs[:2])


def test_bad_inputs_name_the_offending_index(perovskite_graphs):
    graphs, y, structures = perovskite_graphs
    X = list(structures[:5])
    X[3] = "Fe2O3"
    with pytest.raises(ValueError, match=r"X\[3\] is of type str"):
        CGCNNRegressor(**FAST).fit(X, y[:5])
    with pytest.raises(ValueError, match="different lengths: 5 samples in X, 4 in y"):
        CGCNNRegressor(**FAST).fit(graphs[:5], y[:4])
    y_bad = y[:5].copy()
    y_bad[2] = np.nan
    with pytest.raises(ValueError, match="index 2"):
        CGCNNRegressor(**FAST).fit(graphs[:5], y_bad)


def test_multi_target_regression(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    targets = np.column_stack([y[:60], -2 * y[:60]])
    model = CGCNNRegressor(**FAST).fit(graphs[:60], targets)
    assert model.predict(graphs[:60]).shape == (60, 2)
    assert model.module_.fc_out.out_features == 2


def test_transform_gives_crystal_embeddings(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    model = CGCNNRegressor(**FAST, module__atom_fea_len=16).fit(graphs[:40], y[:40])
    embeddings = model.transform(graphs[:40])
    assert embeddings.shape == (40, 16)
    assert np.isfinite(embeddings).all()


def test_verbose_zero_is_silent_and_one_prints(perovskite_graphs, capsys):
    graphs, y, _ = perovskite_graphs
    CGCNNRegressor(**FAST).fit(graphs[:30], y[:30])
    assert capsys.readouterr().out == ""
    CGCNNRegressor(**{**FAST, "verbose": 1}).fit(graphs[:30], y[:30])
    assert "train_loss" in capsys.readouterr().out


def test_seeded_fits_in_threads_are_reproducible(perovskite_graphs):
    """torch's RNG is global: seeded fits (and predictions) running in threads must not mix."""
    from joblib import Parallel, delayed, parallel_config

    graphs, y, _ = perovskite_graphs
    graphs, y = graphs[:40], y[:40]

    def fit_predict(seed):
        model = CGCNNRegressor(**{**FAST, "random_state": seed}).fit(graphs, y)
        return model.predict(graphs)

    seeds = (0, 1, 0, 1)
    sequential = [fit_predict(seed) for seed in seeds]
    with parallel_config(backend="threading", n_jobs=4):
        threaded = Parallel()(delayed(fit_predict)(seed) for seed in seeds)
    for a, b in zip(sequential, threaded):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(sequential[0], sequential[1])
