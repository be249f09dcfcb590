"""CGCNNHurdleRegressor: a classifier for y == 0, a regressor for the rest, featurized once."""

from __future__ import annotations

import copy
import pickle
import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

from skcgcnn import CGCNNClassifier, CGCNNHurdleRegressor, CGCNNRegressor, UnseenElementWarning
from skcgcnn.featurizer import CrystalGraphFeaturizer

SMALL = dict(module__atom_fea_len=16, module__n_conv=1, module__h_fea_len=16, batch_size=16,
             lr=0.01, max_epochs=8, train_split=None, verbose=0)
N = 120


def _hurdle(**kwargs) -> CGCNNHurdleRegressor:
    return CGCNNHurdleRegressor(CGCNNClassifier(**SMALL), CGCNNRegressor(**SMALL),
                                random_state=0, **kwargs)


@pytest.fixture(scope="module")
def gap_like(perovskites):
    """Real perovskites with a zero-inflated target: the formation energy above the median,
    0 below it (half the targets exactly 0, like the band gaps of metals)."""
    subset = perovskites.iloc[:N]
    e = subset["e_form"].to_numpy()
    y = np.maximum(e - np.median(e), 0.0)
    return list(subset["structure"]), y


@pytest.fixture(scope="module")
def fitted(gap_like):
    X, y = gap_like
    return _hurdle().fit(X, y)


def test_classifier_learns_the_zeros_and_regressor_only_the_rest(fitted, gap_like):
    _, y = gap_like
    assert list(fitted.classifier_.classes_) == [False, True]
    assert fitted.zero_fraction_ == pytest.approx(np.mean(y == 0))
    assert fitted.nonnegative_
    # the regressor's target standardisation was fitted on the non-zero targets alone
    assert fitted.regressor_.y_mean_[0] == pytest.approx(y[y != 0].mean(), rel=1e-6)


def test_prediction_is_zero_where_the_classifier_says_so(fitted, gap_like):
    X, _ = gap_like
    p_zero = fitted.predict_zero_proba(X)
    pred = fitted.predict(X)
    assert p_zero.shape == pred.shape == (N,)
    zero = p_zero >= 0.5
    assert 0 < zero.sum() < N
    assert (pred[zero] == 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnseenElementWarning)  # metals' elements, said by predict
        raw = fitted.regressor_.predict(X)
    np.testing.assert_allclose(pred[~zero], np.maximum(raw[~zero], 0.0), rtol=1e-6)
    assert (pred >= 0).all()  # every training target was >= 0: no negative value
    # a threshold of 0.99 predicts 0 only where the classifier is nearly sure
    strict = copy.deepcopy(fitted).set_params(threshold=0.99)  # used at predict time only
    np.testing.assert_allclose(strict.predict(X), np.where(p_zero >= 0.99, 0, np.maximum(raw, 0)),
                               rtol=1e-6)


def test_featurizes_once(gap_like, monkeypatch):
    X, y = gap_like
    calls = []
    original = CrystalGraphFeaturizer.featurize_many

    def counting(self, entries, *args, **kwargs):
        calls.append(len(entries))
        return original(self, entries, *args, **kwargs)

    monkeypatch.setattr(CrystalGraphFeaturizer, "featurize_many", counting)
    model = _hurdle().fit(X[:40], y[:40])
    assert calls == [40]
    model.predict(X[40:60])
    assert calls == [40, 20]
    # different featurizer settings: each network gets its own graphs
    calls.clear()
    other = CGCNNHurdleRegressor(CGCNNClassifier(**SMALL),
                                 CGCNNRegressor(featurizer__radius=6.0, **SMALL), random_state=0)
    other.fit(X[:40], y[:40])
    assert calls == [40, 40]
    assert other.regressor_.graph_radius_ == 6.0 and other.classifier_.graph_radius_ == 8.0


def test_random_state_reproduces_clone_and_pickle_keep_predictions(fitted, gap_like):
    X, y = gap_like
    again = clone(fitted).fit(X, y)
    np.testing.assert_array_equal(again.predict(X[:30]), fitted.predict(X[:30]))
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X[:30]), fitted.predict(X[:30]))


def test_nested_parameters_and_cross_val_score(gap_like):
    X, y = gap_like
    model = _hurdle().set_params(regressor__max_epochs=3, classifier__max_epochs=3)
    params = model.get_params()
    assert params["regressor__max_epochs"] == 3 and params["classifier__max_epochs"] == 3
    scores = cross_val_score(model, X[:60], y[:60], cv=2,
                             scoring="neg_mean_absolute_error")
    assert scores.shape == (2,) and np.isfinite(scores).all()


def test_defaults_are_the_default_networks(gap_like):
    model = CGCNNHurdleRegressor()
    classifier, regressor = model._components()
    assert classifier.get_params(deep=False) == CGCNNClassifier().get_params(deep=False)
    assert regressor.get_params(deep=False) == CGCNNRegressor().get_params(deep=False)


def _unseen_warnings(model, X) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(X)
    return [str(w.message) for w in caught if issubclass(w.category, UnseenElementWarning)]


def test_unseen_warning_only_for_values_the_regressor_gives():
    lattices = (4.0, 4.1, 4.2, 4.3, 4.4, 4.5)
    salt = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5] * 3]) for a in lattices]
    metal = [Structure(Lattice.cubic(a / 1.5), ["Cu"], [[0, 0, 0]]) for a in lattices]
    X, y = salt + metal, [5.0, 5.1, 5.2, 5.3, 5.4, 5.5] + [0.0] * 6
    model = _hurdle().fit(X, y)
    assert list(model.regressor_.seen_elements_) == ["Cl", "Cs"]  # Cu only in zeros
    p_zero = model.predict_zero_proba(metal)
    assert 0 < p_zero.min() and p_zero.max() < 1
    # the classifier saw Cu: no warning when every Cu structure is predicted 0 ...
    below = copy.deepcopy(model).set_params(threshold=float(p_zero.min()) / 2)
    assert (below.predict(metal) == 0).all() and _unseen_warnings(below, metal) == []
    # ... one naming the count when the regressor's value is used for them
    above = copy.deepcopy(model).set_params(threshold=(float(p_zero.max()) + 1) / 2)
    (message,) = _unseen_warnings(above, metal)
    assert message.startswith("6 of 6 samples are predicted non-zero")
    assert ": Cu;" in message  # names the element the regressor never saw
    assert _unseen_warnings(above, salt) == []


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (np.arange(1.0, 11.0), "0 zeros and 10 non-zero"),
        (np.r_[np.zeros(9), 1.0], "9 zeros and 1 non-zero"),
        (np.r_[np.zeros(5), 1.0, 2.0, np.nan, 3.0, 4.0], "NaN or infinity at index 7"),
        (np.zeros((10, 2)), "one target"),
    ],
)
def test_bad_targets_are_refused(y, match, gap_like):
    X, _ = gap_like
    with pytest.raises(ValueError, match=match):
        _hurdle().fit(X[:10], y)


def test_bad_parameters_are_refused(gap_like):
    X, y = gap_like
    with pytest.raises(ValueError, match="threshold"):
        _hurdle(threshold=1.5).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="random_state"):  # one int seeds both networks
        _hurdle().set_params(random_state=np.random.RandomState(0)).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="regressor"):
        CGCNNHurdleRegressor(regressor=CGCNNClassifier()).fit(X[:10], y[:10])


def test_each_epoch_table_is_named_when_verbose(gap_like, capsys):
    X, y = gap_like
    loud = {**SMALL, "verbose": 1, "max_epochs": 1}
    CGCNNHurdleRegressor(CGCNNClassifier(**loud), CGCNNRegressor(**loud),
                         random_state=0).fit(X[:40], y[:40])
    out = capsys.readouterr().out
    n_zero = int((y[:40] == 0).sum())
    assert out.index(f"classifier: y == 0 or not ({n_zero} of 40 are 0)") < out.index(
        f"regressor: y on the {40 - n_zero} non-zero targets")
    _hurdle().fit(X[:40], y[:40])  # verbose=0: nothing
    assert capsys.readouterr().out == ""
