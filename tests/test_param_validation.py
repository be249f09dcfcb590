"""Parameters are validated with scikit-learn's ``_parameter_constraints`` tools: a bad value
raises ``InvalidParameterError`` (a ``ValueError``) naming the parameter, at ``fit``, before any
featurization; ``get_params`` / ``clone`` keep working on any value."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from skcgcnn import (
    CGCNNClassifier,
    CGCNNEnsembleRegressor,
    CGCNNRegressor,
    CrystalGraphFeaturizer,
)
from skcgcnn.graph import build_graph

CSCL = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
GRAPHS = [build_graph(CSCL)] * 4


class _NotAStructure:
    """X that would fail featurization: proves the parameter check comes first."""


BAD_ESTIMATOR_PARAMS = [
    ("max_epochs", "abc", r"'max_epochs' parameter of CGCNN\w+ must be an int in the range "
                          r"\[0, inf\)\. Got 'abc'"),
    ("max_epochs", -1, r"'max_epochs' .* \[0, inf\)\. Got -1"),
    ("max_epochs", 2.5, r"'max_epochs' .* Got 2\.5"),
    ("lr", -0.1, r"'lr' .* a float in the range \[0\.0, inf\)"),
    ("batch_size", 0, r"'batch_size' .* \[1, inf\) or a int among \{-1\}"),
    ("train_split", "holdout", r"'train_split' .* a str among \{'auto'\}"),
    ("random_state", "seed", r"'random_state' .* Got 'seed'"),
    ("verbose", -2, r"'verbose' .*"),
    ("device", 3, r"'device' .* Got 3"),
    ("featurizer", "cgcnn", r"'featurizer' .* an object implementing 'featurize_many'"),
    ("warm_start", "yes", r"'warm_start' .* Got 'yes'"),
]


@pytest.mark.parametrize("cls", [CGCNNRegressor, CGCNNClassifier])
@pytest.mark.parametrize(("name", "value", "message"), BAD_ESTIMATOR_PARAMS,
                         ids=[f"{n}={v!r}" for n, v, _ in BAD_ESTIMATOR_PARAMS])
def test_bad_estimator_parameters_raise_at_fit(cls, name, value, message):
    est = cls(**{name: value})
    params = est.get_params()  # reading and cloning never fail
    assert params[name] is value
    assert clone(est).get_params(deep=False)[name] is value
    with pytest.raises(InvalidParameterError, match=message):
        est.fit([_NotAStructure()] * 4, [0, 1, 0, 1])
    with pytest.raises(ValueError, match=f"'{name}'"):  # InvalidParameterError is one
        est.initialize()


def test_max_epochs_no_longer_becomes_one():
    reg = CGCNNRegressor(max_epochs="10", verbose=0)
    with pytest.raises(InvalidParameterError, match="max_epochs"):
        reg.fit(GRAPHS, [1.0, 2.0, 3.0, 4.0])
    assert not reg.initialized_


def test_classifier_parameters_and_targets():
    with pytest.raises(InvalidParameterError, match=r"'class_weight' .* a str among "
                                                    r"\{'balanced'\}"):
        CGCNNClassifier(class_weight="even").fit(GRAPHS, [0, 1, 0, 1])
    with pytest.raises(InvalidParameterError, match="'classes'"):
        CGCNNClassifier(classes=3).fit(GRAPHS, [0, 1, 0, 1])
    # continuous targets are not labels
    with pytest.raises(ValueError, match="looks like continuous values"):
        CGCNNClassifier(verbose=0).fit(GRAPHS, [0.1, 0.7, 1.3, 2.9])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"radius": 0.0}, r"'radius' parameter of CrystalGraphFeaturizer must be a float in the "
                          r"range \(0\.0, inf\)"),
        ({"radius": "8"}, r"'radius' .* Got '8'"),
        ({"max_num_nbr": 0}, r"'max_num_nbr' .* \[1, inf\)"),
        ({"max_num_nbr": 12.0}, r"'max_num_nbr' .* Got 12\.0"),
        ({"n_jobs": "all"}, r"'n_jobs' .* Got 'all'"),
        ({"ignore_errors": "no"}, r"'ignore_errors' .* Got 'no'"),
    ],
)
def test_bad_featurizer_parameters(params, message):
    featurizer = CrystalGraphFeaturizer(**params)
    assert clone(featurizer).get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(InvalidParameterError, match=message):
        featurizer.featurize_many([CSCL])
    with pytest.raises(InvalidParameterError, match=message):  # through transform, estimators
        CGCNNRegressor(featurizer=featurizer).fit([CSCL] * 4, [1.0, 2.0, 3.0, 4.0])


def test_bad_ensemble_parameters():
    with pytest.raises(InvalidParameterError, match=r"'n_estimators' .* \[2, inf\)\. Got 1"):
        CGCNNEnsembleRegressor(n_estimators=1).fit(GRAPHS, [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(InvalidParameterError, match=r"'estimator' .* of '.*CGCNNRegressor'"):
        CGCNNEnsembleRegressor(estimator=CGCNNClassifier()).fit(GRAPHS, [0, 1, 0, 1])


def test_valid_edge_values_are_accepted():
    # max_epochs=0 initialises without training; batch_size=-1 is one batch of everything
    reg = CGCNNRegressor(max_epochs=0, batch_size=-1, train_split=None, verbose=0,
                         random_state=0).fit(GRAPHS, [1.0, 2.0, 3.0, 4.0])
    assert len(reg.history_) == 0 and reg.predict(GRAPHS).shape == (4,)
    reg = CGCNNRegressor(max_epochs=1, batch_size=-1, train_split=None, verbose=0,
                         random_state=np.random.RandomState(0), lr=0.0)
    assert np.isfinite(reg.fit(GRAPHS, [1.0, 2.0, 3.0, 4.0]).predict(GRAPHS)).all()
