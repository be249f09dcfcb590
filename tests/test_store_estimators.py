"""A GraphStore as X: fit, predict, transform, cross_validate, GridSearchCV, no re-featurizing."""

from __future__ import annotations

import numpy as np
import pytest
from shared_data import TINY
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from skcgcnn import CGCNNClassifier, CGCNNRegressor
from skcgcnn import featurizer as featurizer_module
from skcgcnn.store import GraphStore

SETTINGS = {**TINY, "max_epochs": 2}


@pytest.fixture(scope="module")
def data(perovskites, tmp_path_factory):
    subset = perovskites.iloc[:120]
    store = GraphStore.from_structures(subset, tmp_path_factory.mktemp("st") / "g",
                                       target="e_form", shard_size=50)
    return store, store.to_graphs(), store.targets


def test_fit_predict_transform_on_a_store_equal_the_in_memory_graphs(data):
    store, graphs, y = data
    rows = np.arange(0, 120, 2)
    on_store = CGCNNRegressor(**SETTINGS).fit(store[rows], y[rows])
    in_memory = CGCNNRegressor(**SETTINGS).fit(graphs[rows], y[rows])
    assert list(on_store.seen_elements_) == list(in_memory.seen_elements_)
    np.testing.assert_array_equal(on_store.predict(store), in_memory.predict(graphs))
    np.testing.assert_array_equal(on_store.transform(store[:7]), in_memory.transform(graphs[:7]))
    weights = np.linspace(0.5, 1.5, len(rows))
    a = CGCNNRegressor(**SETTINGS).fit(store[rows], y[rows], sample_weight=weights)
    b = CGCNNRegressor(**SETTINGS).fit(graphs[rows], y[rows], sample_weight=weights)
    np.testing.assert_array_equal(a.predict(store[:9]), b.predict(graphs[:9]))


def test_classifier_on_a_store(data):
    store, graphs, y = data
    labels = np.where(y > np.median(y), "high", "low")
    clf = CGCNNClassifier(**SETTINGS).fit(store, labels)
    reference = CGCNNClassifier(**SETTINGS).fit(graphs, labels)
    np.testing.assert_array_equal(clf.predict_proba(store[:10]),
                                  reference.predict_proba(graphs[:10]))


def test_cross_validate_and_grid_search_on_a_store_never_featurize(data, monkeypatch):
    store, graphs, y = data

    def fail(*args, **kwargs):
        raise AssertionError("featurized again")

    monkeypatch.setattr(featurizer_module.CrystalGraphFeaturizer, "featurize_many", fail)
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_validate(CGCNNRegressor(**SETTINGS), store, y, cv=cv,
                            scoring="neg_mean_absolute_error")
    reference = cross_validate(CGCNNRegressor(**SETTINGS), graphs, y, cv=cv,
                               scoring="neg_mean_absolute_error")
    np.testing.assert_array_equal(scores["test_score"], reference["test_score"])
    search = GridSearchCV(CGCNNRegressor(**SETTINGS), {"lr": [1e-3, 3e-3]}, cv=cv,
                          scoring="neg_mean_absolute_error", n_jobs=2).fit(store, y)
    assert search.best_params_["lr"] in (1e-3, 3e-3)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.predict(store[:3]).shape == (3,)


def test_store_with_other_graph_settings_is_refused(data, tmp_path):
    store, _, y = data
    model = CGCNNRegressor(**SETTINGS).fit(store[:40], y[:40])
    other = GraphStore.from_structures(_two_structures(), tmp_path / "o",
                                       radius=6.0)
    with pytest.raises(ValueError, match="radius"):
        model.predict(other)


def _two_structures():
    from pymatgen.core import Lattice, Structure

    fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return [fe, fe.copy()]
