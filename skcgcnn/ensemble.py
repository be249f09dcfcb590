"""Deep ensembles of CGCNN regressors: predictions with an uncertainty.

:class:`CGCNNEnsembleRegressor` trains ``n_estimators`` copies of a
:class:`~skcgcnn.CGCNNRegressor` that differ only in their seed (weight initialisation,
validation split, batch order), on the same data, featurized once. ``predict(X,
return_std=True)`` returns the members' mean and their spread, which grows away from the
training data (Lakshminarayanan et al., NeurIPS 2017) and is the usual cheap uncertainty of
CGCNN-type models.
"""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .elements import UnseenElementWarning
from .estimators import CGCNNRegressor

__all__ = ["CGCNNEnsembleRegressor"]


def _fit_member(member: CGCNNRegressor, graphs: np.ndarray, y: Any, sample_weight: Any) -> Any:
    if sample_weight is None:
        return member.fit(graphs, y)
    return member.fit(graphs, y, sample_weight=sample_weight)


class CGCNNEnsembleRegressor(RegressorMixin, BaseEstimator):
    """An ensemble of independently seeded CGCNN regressors, with ``predict(X, return_std=True)``.

    Parameters
    ----------
    estimator : CGCNNRegressor or None, default=None
        The member to copy (with ``clone``); None means ``CGCNNRegressor()``. Its parameters are
        reachable as ``estimator__*`` (e.g. ``estimator__module__n_conv``). Its own
        ``random_state`` is replaced by one seed per member.
    n_estimators : int, default=5
        Number of networks (at least 2).
    random_state : int, RandomState or None, default=None
        Draws the members' seeds: the same value gives the same ensemble.
    n_jobs : int or None, default=None
        Members trained in parallel through joblib (None: one after the other).

    Attributes
    ----------
    estimators_ : list of CGCNNRegressor
        The fitted members.
    seeds_ : ndarray of shape (n_estimators,)
        Their ``random_state``.

    See Also
    --------
    skcgcnn.CGCNNRegressor : one member.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2, 4.3, 4.4, 4.5)]
    >>> y = [4.0, 4.1, 4.2, 4.3, 4.4, 4.5]
    >>> ens = CGCNNEnsembleRegressor(CGCNNRegressor(max_epochs=2, verbose=0), n_estimators=3,
    ...                              random_state=0).fit(X, y)
    >>> mean, std = ens.predict(X, return_std=True)
    >>> mean.shape, std.shape, bool((std > 0).all())
    ((6,), (6,), True)
    """

    _parameter_constraints: dict = {
        "estimator": [CGCNNRegressor, None],
        "n_estimators": [Interval(Integral, 2, None, closed="left")],  # a spread needs two
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        estimator: CGCNNRegressor | None = None,
        n_estimators: int = 5,
        random_state: Any = None,
        n_jobs: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CGCNNEnsembleRegressor:
        """Featurize X once and train every member on it.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), optional
            Passed to every member's ``fit``.

        Returns
        -------
        self
        """
        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        base = CGCNNRegressor() if self.estimator is None else self.estimator
        graphs, _ = clone(base)._to_graphs(X, fitting=True)  # NaN where featurization failed
        rng = check_random_state(self.random_state)
        self.seeds_ = rng.randint(np.iinfo(np.int32).max, size=self.n_estimators)
        members = [clone(base).set_params(random_state=int(seed)) for seed in self.seeds_]
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(member, graphs, y, sample_weight) for member in members
        )
        return self

    def predict(self, X: Any, return_std: bool = False) -> Any:
        """Mean prediction of the members, and optionally their standard deviation.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
        return_std : bool, default=False
            Also return the members' spread (population standard deviation).

        Returns
        -------
        mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        std : ndarray of the same shape
            Only with ``return_std=True``.
        """
        per_member = self.predict_members(X)
        mean = per_member.mean(axis=0)
        return (mean, per_member.std(axis=0)) if return_std else mean

    def predict_members(self, X: Any) -> np.ndarray:
        """Every member's prediction, shape (n_estimators, n_samples[, n_targets])."""
        check_is_fitted(self, "estimators_")
        graphs, _ = self.estimators_[0]._to_graphs(X, fitting=False)  # featurize once
        with warnings.catch_warnings():  # said once above, for all members (same data)
            warnings.simplefilter("ignore", UnseenElementWarning)
            return np.stack([member.predict(graphs) for member in self.estimators_])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.target_tags.multi_output = True
        tags.non_deterministic = self.random_state is None
        return tags
