"""Ensembles of independently seeded CGCNN regressors and classifiers, on real structures."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pymatgen.core import Structure
from shared_data import REFERENCE
from sklearn.base import clone

from skcgcnn import CGCNNRegressor
from skcgcnn.ensemble import CGCNNEnsembleRegressor

N_TRAIN = 100
MEMBER = CGCNNRegressor(
    module__atom_fea_len=16, module__n_conv=2, module__h_fea_len=16, batch_size=16, lr=0.005,
    max_epochs=30, train_split=None, verbose=0,
)


@pytest.fixture(scope="module")
def ensemble(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    return CGCNNEnsembleRegressor(MEMBER, n_estimators=3, random_state=0).fit(
        graphs[:N_TRAIN], y[:N_TRAIN]
    )


def test_predict_with_std_is_the_members_mean_and_spread(ensemble, perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    X = graphs[:N_TRAIN]
    members = ensemble.predict_members(X)
    assert members.shape == (3, N_TRAIN)
    mean, std = ensemble.predict(X, return_std=True)
    np.testing.assert_allclose(mean, members.mean(axis=0))
    np.testing.assert_allclose(std, members.std(axis=0))
    np.testing.assert_array_equal(ensemble.predict(X), mean)
    assert (std > 0).all()  # independently seeded networks disagree a little
    assert len(set(ensemble.seeds_)) == 3
    assert [m.random_state for m in ensemble.estimators_] == list(ensemble.seeds_)
    # the members learned the data: the mean is much better than predicting the average
    assert np.abs(mean - y[:N_TRAIN]).mean() < 0.5 * np.abs(y[:N_TRAIN] - y[:N_TRAIN].mean()).mean()


def test_spread_is_larger_on_strained_perovskites(ensemble, perovskite_graphs):
    """Out of distribution: the training cells expanded to 3 x their volume (1.44 x the
    lattice constants, so every bond is far longer than any seen in training)."""
    _, _, structures = perovskite_graphs
    strained = []
    for structure in structures[:40]:
        copy = structure.copy()
        copy.scale_lattice(3.0 * structure.volume)
        strained.append(copy)
    _, std_train = ensemble.predict(structures[:40], return_std=True)
    _, std_ood = ensemble.predict(strained, return_std=True)
    assert np.median(std_ood) > 1.5 * np.median(std_train), (np.median(std_ood),
                                                           np.median(std_train))


def test_spread_is_larger_on_unrelated_crystals(ensemble, perovskite_graphs):
    """Out of distribution: the reference CGCNN's sample COD crystals (other chemistries,
    up to ~100 atoms per cell) against the 5-atom perovskites the ensemble was trained on."""
    folder = REFERENCE / "sample-regression"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crystals = [Structure.from_file(path) for path in sorted(folder.glob("*.cif"))]
    graphs, _, _ = perovskite_graphs
    _, std_train = ensemble.predict(graphs[:N_TRAIN], return_std=True)
    _, std_ood = ensemble.predict(crystals, return_std=True)
    assert np.median(std_ood) > 2 * np.median(std_train), (np.median(std_ood),
                                                           np.median(std_train))


def test_multi_target_and_reproducibility(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    X, targets = graphs[:40], np.column_stack([y[:40], 2 * y[:40]])
    member = clone(MEMBER).set_params(max_epochs=2)
    a = CGCNNEnsembleRegressor(member, n_estimators=2, random_state=1).fit(X, targets)
    mean, std = a.predict(X, return_std=True)
    assert mean.shape == std.shape == (40, 2)
    b = CGCNNEnsembleRegressor(member, n_estimators=2, random_state=1).fit(X, targets)
    np.testing.assert_array_equal(b.predict(X), mean)
    assert clone(a).get_params()["estimator__module__n_conv"] == 2


def test_ensemble_errors():
    with pytest.raises(ValueError, match=r"'n_estimators' .* an int in the range \[2, inf\)"):
        CGCNNEnsembleRegressor(n_estimators=1).fit([], [])
    with pytest.raises(TypeError, match="'estimator' .* must be an instance of .*CGCNNRegressor"):
        CGCNNEnsembleRegressor(estimator=object()).fit([], [])


def _small_classifier(**params):
    from skcgcnn import CGCNNClassifier

    small = {k: v for k, v in MEMBER.get_params(deep=False).items()
             if k in ("module__atom_fea_len", "module__n_conv", "module__h_fea_len",
                      "batch_size", "lr", "train_split", "verbose")}
    return CGCNNClassifier(**{**small, "max_epochs": 3, **params})


def test_a_classifier_ensemble_is_scikit_learns_soft_vote(perovskite_graphs):
    """CGCNNEnsembleClassifier: the mean of its seeded members' probabilities, the very numbers
    of VotingClassifier(voting="soft") over classifiers of the same seeds (the recipe the
    small-data benchmark ran), on Structures featurized once."""
    from sklearn.ensemble import VotingClassifier

    from skcgcnn.ensemble import CGCNNEnsembleClassifier

    _, y, structures = perovskite_graphs
    X, labels = list(structures[:60]), np.where(y[:60] > np.median(y[:60]), "high", "low")
    ens = CGCNNEnsembleClassifier(_small_classifier(), n_estimators=3, random_state=0)
    ens.fit(X, labels)
    assert list(ens.classes_) == ["high", "low"] and len(set(ens.seeds_)) == 3
    members = ens.predict_proba_members(X)
    assert members.shape == (3, 60, 2)
    assert not np.allclose(members[0], members[1])  # the seeds made different networks
    proba, spread = ens.predict_proba(X, return_std=True)
    np.testing.assert_allclose(proba, members.mean(axis=0))
    np.testing.assert_allclose(spread, members.std(axis=0))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ens.predict(X), ens.classes_[proba.argmax(axis=1)])
    assert ens.score(X, labels) > 0.5

    vote = VotingClassifier([(f"m{i}", _small_classifier(random_state=int(seed)))
                             for i, seed in enumerate(ens.seeds_)], voting="soft")
    vote.fit(X, labels)
    np.testing.assert_allclose(vote.predict_proba(X), proba, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(vote.predict(X), ens.predict(X))


def test_classifier_ensemble_in_cross_validation_and_its_errors(perovskite_graphs):
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    from skcgcnn import CGCNNRegressor
    from skcgcnn.ensemble import CGCNNEnsembleClassifier

    graphs, y, _ = perovskite_graphs
    X, labels = graphs[:60], (y[:60] > np.median(y[:60])).astype(int)
    ens = CGCNNEnsembleClassifier(_small_classifier(max_epochs=2), n_estimators=2,
                                  random_state=0)
    scores = cross_val_score(ens, X, labels, cv=2, scoring="roc_auc")
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert clone(ens).get_params()["estimator__module__n_conv"] == 2
    a = clone(ens).fit(X, labels).predict_proba(X)
    np.testing.assert_array_equal(clone(ens).fit(X, labels).predict_proba(X), a)
    with pytest.raises(TypeError, match="'estimator' .* must be an instance of .*CGCNNClassifier"):
        CGCNNEnsembleClassifier(estimator=CGCNNRegressor()).fit(X, labels)
    with pytest.raises(ValueError, match=r"'n_estimators' .* an int in the range \[2, inf\)"):
        CGCNNEnsembleClassifier(n_estimators=1).fit(X, labels)
    with pytest.raises(ValueError, match="requires y"):
        CGCNNEnsembleClassifier().fit(X, None)
