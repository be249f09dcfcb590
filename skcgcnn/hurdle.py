"""A hurdle (zero-inflated) regressor: P(y = 0) from a classifier, y given y != 0 from a regressor.

Some targets have a point mass at zero: the band gap is exactly 0 eV for every metal (about
40 % of the Materials Project), a magnetic moment is 0 for every non-magnetic material. One
regressor trained on all of them spends its capacity on the step between the two groups and
predicts small non-zero values (often negative ones) for the metals. A hurdle model splits the
question in two (Cragg, Econometrica 39, 829, 1971): a classifier learns whether a structure
is a zero, a regressor learns the value on the non-zero structures only, and the prediction is
0 where the classifier says "zero", the regressor's value elsewhere.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._logging import resolve_verbose
from ._seen import _caller_stacklevel, unseen_elements
from ._targets import regression_targets
from .elements import UnseenElementWarning
from .estimators import CGCNNClassifier, CGCNNRegressor

__all__ = ["CGCNNHurdleRegressor"]


def _fit(estimator: Any, X: Any, y: np.ndarray, sample_weight: Any) -> Any:
    if sample_weight is None:
        return estimator.fit(X, y)
    return estimator.fit(X, y, sample_weight=sample_weight)


def _warn_unseen_by_regressor(regressor: CGCNNRegressor, graphs: Any, n_samples: int) -> None:
    n_new, names = unseen_elements(regressor.seen_elements_, graphs)
    if n_new:
        warnings.warn(
            f"{n_new} of {n_samples} samples are predicted non-zero and contain elements that "
            f"no non-zero training structure has: {', '.join(names)}; their values are "
            "extrapolations (regressor_.seen_elements_ lists the regressor's elements)",
            UnseenElementWarning, stacklevel=_caller_stacklevel())


def _same_featurizer(classifier: CGCNNClassifier, regressor: CGCNNRegressor) -> bool:
    """Whether both networks would build the same graphs (then X is featurized once)."""
    a, b = classifier._make_featurizer(), regressor._make_featurizer()
    return type(a) is type(b) and a.get_params() == b.get_params()


class CGCNNHurdleRegressor(MetaEstimatorMixin, RegressorMixin, BaseEstimator):
    """CGCNN for a target that is exactly zero for a large part of the data (band gaps).

    A :class:`~skcgcnn.CGCNNClassifier` learns whether ``y == 0``; a
    :class:`~skcgcnn.CGCNNRegressor` learns ``y`` on the structures where ``y != 0`` only.
    ``predict`` returns 0 where the classifier's probability of a zero is at least
    ``threshold`` and the regressor's value elsewhere (clipped at 0 when every training target
    is non-negative, as for a band gap). The structures are featurized once for both networks
    (twice if their ``featurizer`` settings differ).

    Parameters
    ----------
    classifier : CGCNNClassifier or None, default=None
        The network deciding "zero or not" (cloned); None means ``CGCNNClassifier()``. Its
        parameters are reachable as ``classifier__*``.
    regressor : CGCNNRegressor or None, default=None
        The network for the non-zero values (cloned); None means ``CGCNNRegressor()``.
        Reachable as ``regressor__*``.
    threshold : float, default=0.5
        Predict 0 where the classifier's P(y = 0) is at least this. 0.5 minimises the
        absolute error when the classifier's probabilities are calibrated: below it, the
        median of the prediction's distribution is not 0.
    random_state : int or None, default=None
        When set, the ``random_state`` of both networks (the same run gives the same model);
        None keeps theirs.

    Attributes
    ----------
    classifier_ : CGCNNClassifier
        Fitted on every structure, with labels ``y == 0``.
    regressor_ : CGCNNRegressor
        Fitted on the structures with ``y != 0``.
    zero_fraction_ : float
        Fraction of the training targets equal to 0.
    nonnegative_ : bool
        Whether every training target was >= 0 (predictions are then clipped at 0).

    See Also
    --------
    skcgcnn.CGCNNRegressor : one network for every structure.

    Notes
    -----
    "Zero" means exactly 0.0, as a database stores the gap of a metal. Round a target measured
    with noise before fitting if its zeros are only nearly 0. At least two training targets of
    each kind (zero, non-zero) are needed.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> X = [Structure(Lattice.cubic(a), [m, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for m in ("Cs", "Cu") for a in (4.0, 4.1, 4.2, 4.3, 4.4)]
    >>> y = [5.0, 5.1, 5.2, 5.3, 5.4, 0, 0, 0, 0, 0]
    >>> small = dict(max_epochs=2, verbose=0)
    >>> model = CGCNNHurdleRegressor(CGCNNClassifier(**small), CGCNNRegressor(**small),
    ...                              random_state=0).fit(X, y)
    >>> model.zero_fraction_
    0.5
    >>> model.predict(X).shape
    (10,)
    """

    _parameter_constraints: dict = {
        "classifier": [CGCNNClassifier, None],
        "regressor": [CGCNNRegressor, None],
        "threshold": [Interval(Real, 0, 1, closed="neither")],
        "random_state": [Integral, None],  # one seed for both networks
    }

    def __init__(
        self,
        classifier: CGCNNClassifier | None = None,
        regressor: CGCNNRegressor | None = None,
        threshold: float = 0.5,
        random_state: int | None = None,
    ) -> None:
        self.classifier = classifier
        self.regressor = regressor
        self.threshold = threshold
        self.random_state = random_state

    def _components(self) -> tuple[CGCNNClassifier, CGCNNRegressor]:
        classifier = clone(CGCNNClassifier() if self.classifier is None else self.classifier)
        regressor = clone(CGCNNRegressor() if self.regressor is None else self.regressor)
        if self.random_state is not None:
            classifier.set_params(random_state=int(self.random_state))
            regressor.set_params(random_state=int(self.random_state))
        return classifier, regressor

    @staticmethod
    def _check_y(y: Any) -> np.ndarray:
        if y is None:
            raise ValueError(
                "CGCNNHurdleRegressor requires y to be passed, but the target y is None")
        y = regression_targets(y)  # numeric and finite, as CGCNNRegressor checks them
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"CGCNNHurdleRegressor takes one target: y has shape {y.shape}")
        return y

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CGCNNHurdleRegressor:
        """Featurize X once, fit the classifier on ``y == 0`` and the regressor on ``y != 0``.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            Passed to both networks (the regressor gets the weights of its structures).

        Returns
        -------
        self
        """
        self._validate_params()
        y = self._check_y(y)
        classifier, regressor = self._components()
        graphs, _ = clone(classifier)._to_graphs(X, fitting=True)  # NaN where featurization failed
        if len(graphs) != len(y):
            raise ValueError(f"X has {len(graphs)} samples but y has {len(y)}")
        shared = _same_featurizer(classifier, regressor)
        reg_graphs = graphs if shared else clone(regressor)._to_graphs(X, fitting=True)[0]
        is_zero = y == 0
        n_zero = int(is_zero.sum())
        if n_zero < 2 or len(y) - n_zero < 2:
            raise ValueError(
                f"y has {n_zero} zeros and {len(y) - n_zero} non-zero values: a hurdle model needs "
                "at least 2 of each (use CGCNNRegressor for a target without a mass at 0)"
            )
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if weights is not None and weights.shape != y.shape:
            raise ValueError(f"sample_weight has shape {weights.shape}, y has {y.shape}")
        nonzero = ~is_zero
        if resolve_verbose(classifier.verbose):  # say whose epoch table follows
            print(f"classifier: y == 0 or not ({n_zero} of {len(y)} are 0)", flush=True)
        self.classifier_ = _fit(classifier, graphs, is_zero, weights)
        if resolve_verbose(regressor.verbose):
            print(f"regressor: y on the {len(y) - n_zero} non-zero targets", flush=True)
        self.regressor_ = _fit(regressor, reg_graphs[nonzero], y[nonzero],
                               None if weights is None else weights[nonzero])
        self.zero_fraction_ = n_zero / len(y)
        self.nonnegative_ = bool((y >= 0).all())
        self._shared_graphs = shared
        return self

    def predict_zero_proba(self, X: Any) -> np.ndarray:
        """The classifier's probability that ``y == 0``, shape (n_samples,)."""
        check_is_fitted(self, "classifier_")
        graphs, _ = self.classifier_._to_graphs(X, fitting=False)
        return self._zero_proba(graphs)

    def _zero_proba(self, graphs: Any) -> np.ndarray:
        if len(graphs) == 0:
            return np.empty(0)
        column = list(self.classifier_.classes_).index(True)
        return self.classifier_.predict_proba(graphs)[:, column]

    def predict(self, X: Any) -> np.ndarray:
        """0 where P(y = 0) >= ``threshold``, the regressor's value elsewhere.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "regressor_")
        graphs, valid = self.classifier_._to_graphs(X, fitting=False)  # featurize once
        reg_graphs = graphs if self._shared_graphs else self.regressor_._to_graphs(
            X, fitting=False)[0]
        zero_proba = np.full(len(graphs), np.nan)
        zero_proba[valid] = self._zero_proba(graphs[valid])
        out = np.where(zero_proba >= self.threshold, 0.0, np.nan)
        used = np.flatnonzero(valid & (zero_proba < self.threshold))
        if used.size:
            # the regressor saw only the non-zero structures: its unseen-element warning is
            # about the structures whose value it gives, not about those predicted 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UnseenElementWarning)
                value = np.asarray(self.regressor_.predict(reg_graphs[used]), dtype=float)
            _warn_unseen_by_regressor(self.regressor_, reg_graphs[used], len(graphs))
            out[used] = np.maximum(value, 0.0) if self.nonnegative_ else value
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        return tags
