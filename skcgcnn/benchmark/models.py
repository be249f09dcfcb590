"""The compared models: CGCNN training recipes and the RF-SCM/Magpie baseline.

:func:`make_model` builds each one as an unfitted scikit-learn estimator that takes pymatgen
Structures, so the runner fits them all through the same ``clone`` / ``fit`` / ``predict`` loop:

* ``cgcnn``: :class:`~skcgcnn.CGCNNRegressor` / :class:`~skcgcnn.CGCNNClassifier`, with a named
  training recipe (:data:`PRESETS`).
* ``rf-magpie``: :class:`MagpieSCM` features (matminer) then a random forest, in one
  ``Pipeline``: the "RF-SCM/Magpie" baseline of Matbench.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from matminer.featurizers.base import MultipleFeaturizer

from ..callbacks import BudgetCosineLR

__all__ = ["DEFAULT_SEED", "MODELS", "PRESETS", "MagpieSCM", "make_model", "model_settings",
           "settings_id"]

#: Default seed of every model and of the ``--max-train`` subsampling.
DEFAULT_SEED = 0
#: Names accepted by :func:`make_model`.
MODELS = ("cgcnn", "rf-magpie")

#: Named CGCNN training recipes (estimator parameters on top of the defaults).
#:
#: ``default``: the estimator's defaults (L1 loss, AdamW lr 2e-3, batch 64, up to 200 epochs,
#: constant LR until the 10 % inner split's loss plateaus for 20 epochs, then a cosine anneal to
#: zero and a stop (:class:`~skcgcnn.callbacks.AnnealOnPlateau`), the anneal started from the
#: best epoch's weights, the best annealed epoch's weights kept).
#: ``budget``: the same optimizer, batch and inner split, but one cosine decay of the LR that ends
#: when ``max_epochs`` (120) or the time budget (``--time-budget``) runs out, whichever first
#: (:class:`BudgetCosineLR`); the best inner-validation weights are restored at the end. On
#: matbench_perovskites (official folds 0 and 1, 15k training structures, 2 shared CPU cores,
#: ~68 min per fold, with the MSE loss, the default then) it gave MAE 0.0409 and 0.0416 eV/cell
#: (published CGCNN: 0.0452).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "budget": {"max_epochs": 120},
}


class MagpieSCM(MultipleFeaturizer):
    """Magpie composition statistics + sine Coulomb matrix eigenvalues (matminer).

    The features of Matbench's "RF-SCM/Magpie" baseline: ``ElementProperty.from_preset("magpie")``
    on each structure's composition and the sorted eigenvalues of ``SineCoulombMatrix``
    (zero-padded to the largest structure seen in ``fit``). A ``MultipleFeaturizer`` whose
    ``n_jobs`` is a constructor parameter, so it survives ``clone`` (matminer's ``set_n_jobs``
    does not; a cloned featurizer would start one process per CPU).

    Parameters
    ----------
    n_jobs : int, default=1

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> features = MagpieSCM().fit([nacl])
    >>> len(features.featurize(nacl)), len(features.feature_labels())
    (134, 134)
    """

    def __init__(self, n_jobs: int = 1) -> None:
        # matminer's structure featurizers import pymatgen's diffraction code, hence matplotlib
        from matminer.featurizers.composition import ElementProperty
        from matminer.featurizers.structure import SineCoulombMatrix, StructureComposition

        super().__init__([
            StructureComposition(ElementProperty.from_preset("magpie")),
            SineCoulombMatrix(flatten=True),
        ])
        self.set_n_jobs(n_jobs)
        for featurizer in self.featurizers:
            featurizer.set_n_jobs(n_jobs)

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor parameters (only ``n_jobs``)."""
        return {"n_jobs": self.n_jobs}


def make_model(name: str, kind: str, seed: int = DEFAULT_SEED, preset: str = "default",
               time_budget: float | None = None, max_epochs: int | None = None,
               verbose: int = 1, device: str = "cpu", n_jobs: int | None = None) -> Any:
    """Build one benchmark model as an unfitted scikit-learn estimator taking Structures.

    Parameters
    ----------
    name : {"cgcnn", "rf-magpie"}
    kind : {"regression", "classification"}
    seed : int, default=0
    preset : str, default="default"
        CGCNN training recipe, a key of :data:`PRESETS`.
    time_budget : float, optional
        CGCNN only: stop training (with the LR annealed to its floor) after this many seconds.
    max_epochs : int, optional
        CGCNN only: overrides the preset's ``max_epochs``.
    verbose : int, default=1
    device : str, default="cpu"
        CGCNN only: the estimator's ``device``.
    n_jobs : int, optional
        Baseline only: processes for its featurizers and trees (the results do not depend on
        it: the forest is seeded); default 1.

    Returns
    -------
    estimator
        ``fit(structures, y)`` / ``predict(structures)`` (and ``predict_proba`` for
        classification).

    Examples
    --------
    >>> make_model("rf-magpie", "regression").steps[-1][0]
    'randomforestregressor'
    >>> make_model("cgcnn", "classification", preset="budget").max_epochs
    120
    """
    if name == "cgcnn":
        from ..estimators import CGCNNClassifier, CGCNNRegressor

        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        params = dict(PRESETS[preset])
        if max_epochs is not None:
            params["max_epochs"] = max_epochs
        if preset != "default" or time_budget is not None:
            params["callbacks"] = [("budget_lr", BudgetCosineLR(time_budget=time_budget))]
            params["callbacks__lr_scheduler"] = None
        cls = CGCNNRegressor if kind == "regression" else CGCNNClassifier
        return cls(random_state=seed, verbose=verbose, device=device, **params)
    if name == "rf-magpie":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline

        forest = (RandomForestRegressor if kind == "regression" else RandomForestClassifier)(
            n_estimators=100, random_state=seed, n_jobs=n_jobs or 1
        )
        return make_pipeline(MagpieSCM(n_jobs=n_jobs or 1), SimpleImputer(), forest)
    raise ValueError(f"unknown model {name!r}; known: {list(MODELS)}")


def model_settings(name: str, preset: str = "default", max_train: int | None = None,
                   seed: int = DEFAULT_SEED, time_budget: float | None = None,
                   max_epochs: int | None = None, full: bool = False) -> dict[str, Any]:
    """The settings that define a results row of a model (everything but the fold).

    Two runs with equal settings are the same experiment: the runner skips the folds already
    recorded for them. The CGCNN-only arguments are left out of the baseline's settings.

    Parameters
    ----------
    name, preset, max_train, seed, time_budget, max_epochs, full
        As in :func:`make_model` and :func:`~skcgcnn.benchmark.run_benchmark` (``full``: the
        whole dataset instead of the task's sample; only recorded when True, so the settings of
        earlier runs keep their ids).

    Returns
    -------
    dict

    Examples
    --------
    >>> model_settings("rf-magpie", preset="budget")
    {'model': 'rf-magpie', 'seed': 0, 'max_train': None, 'n_estimators': 100, \
'features': 'magpie+scm-eigs'}
    """
    settings: dict[str, Any] = {"model": name, "seed": seed, "max_train": max_train}
    if name == "cgcnn":
        settings.update(preset=preset, time_budget=time_budget, max_epochs=max_epochs)
        # the defaults changed (runs before have other ids: no "anneal" / no "loss" key): the
        # schedule since 1a1898f (the default preset's; the budget one has its own), the loss
        if preset == "default":
            settings["anneal"] = "from_best, annealed best kept"
        settings["loss"] = "L1"
    else:
        settings.update(n_estimators=100, features="magpie+scm-eigs")
    if full:
        settings["data"] = "full"
    return settings


def settings_id(settings: dict[str, Any]) -> str:
    """Short stable hash of :func:`model_settings` (the ``settings_id`` column of the CSV).

    Parameters
    ----------
    settings : dict

    Returns
    -------
    str
        10 hexadecimal digits, independent of the key order.

    Examples
    --------
    >>> settings_id({"a": 1, "b": 2}) == settings_id({"b": 2, "a": 1})
    True
    """
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]
