"""Deep ensembles of CGCNN networks: predictions with an uncertainty, and better ones.

:class:`CGCNNEnsembleRegressor` trains ``n_estimators`` copies of a
:class:`~skcgcnn.CGCNNRegressor` that differ only in their seed (weight initialisation,
validation split, batch order), on the same data, featurized once. ``predict(X,
return_std=True)`` returns the members' mean and their spread, which grows away from the
training data (Lakshminarayanan et al., NeurIPS 2017) and is the usual cheap uncertainty of
CGCNN-type models. :class:`CGCNNEnsembleClassifier` does the same for
:class:`~skcgcnn.CGCNNClassifier`: the mean of the members' probabilities (scikit-learn's soft
vote, ``VotingClassifier(voting="soft")``, with the seeds drawn for you and the structures
featurized once).
"""

from __future__ import annotations

import warnings
from numbers import Integral
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .elements import UnseenElementWarning
from .estimators import CGCNNClassifier, CGCNNRegressor

__all__ = ["CGCNNEnsembleClassifier", "CGCNNEnsembleRegressor"]


def _fit_member(member: Any, graphs: np.ndarray, y: Any, sample_weight: Any) -> Any:
    if sample_weight is None:
        return member.fit(graphs, y)
    return member.fit(graphs, y, sample_weight=sample_weight)


class _CGCNNEnsemble(BaseEstimator):
    """Seeded copies of one CGCNN estimator trained on the same graphs (the shared part)."""

    #: the member's class, and the one ``estimator=None`` means
    _member_class: type
    #: the constraints of both ensembles; each adds its ``estimator``'s
    _shared_constraints: dict = {
        "n_estimators": [Interval(Integral, 2, None, closed="left")],  # a spread needs two
        "random_state": ["random_state"],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        estimator: Any = None,
        n_estimators: int = 5,
        random_state: Any = None,
        n_jobs: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _fit_members(self, X: Any, y: Any, sample_weight: Any) -> None:
        self._validate_params()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        base = self._member_class() if self.estimator is None else self.estimator
        graphs, _ = clone(base)._to_graphs(X, fitting=True)  # NaN where featurization failed
        rng = check_random_state(self.random_state)
        self.seeds_ = rng.randint(np.iinfo(np.int32).max, size=self.n_estimators)
        members = [clone(base).set_params(random_state=int(seed)) for seed in self.seeds_]
        self.estimators_ = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_member)(member, graphs, y, sample_weight) for member in members
        )

    def _per_member(self, X: Any, method: str) -> np.ndarray:
        """``member.<method>(X)`` for every member, stacked along a first axis."""
        check_is_fitted(self, "estimators_")
        graphs, _ = self.estimators_[0]._to_graphs(X, fitting=False)  # featurize once
        with warnings.catch_warnings():  # said once above, for all members (same data)
            warnings.simplefilter("ignore", UnseenElementWarning)
            return np.stack([getattr(member, method)(graphs) for member in self.estimators_])

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        return tags


class CGCNNEnsembleRegressor(RegressorMixin, _CGCNNEnsemble):
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
    CGCNNEnsembleClassifier : the same for classifiers.

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

    _member_class = CGCNNRegressor
    _parameter_constraints: dict = {
        "estimator": [CGCNNRegressor, None], **_CGCNNEnsemble._shared_constraints}

    def __init__(
        self,
        estimator: CGCNNRegressor | None = None,
        n_estimators: int = 5,
        random_state: Any = None,
        n_jobs: int | None = None,
    ) -> None:
        super().__init__(estimator, n_estimators, random_state, n_jobs)

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
        self._fit_members(X, y, sample_weight)
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
        return self._per_member(X, "predict")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class CGCNNEnsembleClassifier(ClassifierMixin, _CGCNNEnsemble):
    """An ensemble of independently seeded CGCNN classifiers: the mean of their probabilities.

    The members are trained on the same graphs (featurized once) and differ only in their
    seed. ``predict_proba`` is the mean of the members' probabilities, scikit-learn's soft vote
    (``VotingClassifier(voting="soft")`` over the same seeded members gives the same numbers);
    ``predict_proba(X, return_std=True)`` adds their spread, a disagreement between networks
    (not a calibrated error bar). Averaging networks ranks structures better than one does
    (Matbench's mp_is_metal at 1,000 training structures: ``docs/benchmarks.md``, "Small data").

    Parameters
    ----------
    estimator : CGCNNClassifier or None, default=None
        The member to copy (with ``clone``); None means ``CGCNNClassifier()``. Its parameters
        are reachable as ``estimator__*``; its own ``random_state`` is replaced by one seed per
        member.
    n_estimators : int, default=5
        Number of networks (at least 2).
    random_state : int, RandomState or None, default=None
        Draws the members' seeds: the same value gives the same ensemble.
    n_jobs : int or None, default=None
        Members trained in parallel through joblib (None: one after the other).

    Attributes
    ----------
    estimators_ : list of CGCNNClassifier
        The fitted members.
    seeds_ : ndarray of shape (n_estimators,)
        Their ``random_state``.
    classes_ : ndarray of shape (n_classes,)
        The class labels (every member's ``classes_``).

    See Also
    --------
    skcgcnn.CGCNNClassifier : one member.
    CGCNNEnsembleRegressor : the same for regressors.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNClassifier
    >>> X = [Structure(Lattice.cubic(4.2), [m, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for m in ("Cs", "K", "Rb", "Na", "Li", "Ag")]
    >>> y = ["alkali", "alkali", "alkali", "alkali", "alkali", "other"]
    >>> ens = CGCNNEnsembleClassifier(CGCNNClassifier(max_epochs=2, verbose=0), n_estimators=3,
    ...                               random_state=0).fit(X, y)
    >>> proba, spread = ens.predict_proba(X, return_std=True)
    >>> ens.classes_.tolist(), proba.shape, spread.shape
    (['alkali', 'other'], (6, 2), (6, 2))
    """

    _member_class = CGCNNClassifier
    _parameter_constraints: dict = {
        "estimator": [CGCNNClassifier, None], **_CGCNNEnsemble._shared_constraints}

    def __init__(
        self,
        estimator: CGCNNClassifier | None = None,
        n_estimators: int = 5,
        random_state: Any = None,
        n_jobs: int | None = None,
    ) -> None:
        super().__init__(estimator, n_estimators, random_state, n_jobs)

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CGCNNEnsembleClassifier:
        """Featurize X once and train every member on it.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), optional
            Passed to every member's ``fit``.

        Returns
        -------
        self
        """
        self._fit_members(X, y, sample_weight)
        classes = [np.asarray(member.classes_) for member in self.estimators_]
        if any(not np.array_equal(c, classes[0]) for c in classes[1:]):  # e.g. fixed `classes`
            raise ValueError(f"the members learned different classes: {classes}")
        self.classes_ = classes[0]
        return self

    def predict_proba(self, X: Any, return_std: bool = False) -> Any:
        """Mean class probabilities of the members, and optionally their standard deviation.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
        return_std : bool, default=False
            Also return the members' spread (population standard deviation) per class.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; each row sums to 1.
        std : ndarray of the same shape
            Only with ``return_std=True``.
        """
        per_member = self.predict_proba_members(X)
        mean = per_member.mean(axis=0)
        return (mean, per_member.std(axis=0)) if return_std else mean

    def predict_proba_members(self, X: Any) -> np.ndarray:
        """Every member's probabilities, shape (n_estimators, n_samples, n_classes)."""
        return self._per_member(X, "predict_proba")

    def predict(self, X: Any) -> np.ndarray:
        """The class of highest mean probability (the soft vote)."""
        proba = self.predict_proba(X)  # checks that the ensemble is fitted
        return self.classes_[np.argmax(proba, axis=1)]
