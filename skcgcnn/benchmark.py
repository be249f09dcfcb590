"""Matbench-style benchmarking: CGCNN next to a classical baseline on the same folds.

One cross-validation loop (:func:`run_benchmark`) fits every model as a scikit-learn estimator on
the same ``(train, test)`` fold indices, appends one row per (model, fold) to
``<results>/<task>.csv`` and skips the folds already recorded there for the same model and
settings, so an interrupted run resumes fold by fold. Test-set predictions and the per-epoch
training history are saved beside the CSV; :func:`make_plots` turns them into parity plots, a
learning curve and training curves, and :func:`summary_table` prints the side-by-side table with
the published Matbench v0.1 numbers.

The models (``--model``):

* ``cgcnn``: :class:`~skcgcnn.CGCNNRegressor` / :class:`~skcgcnn.CGCNNClassifier` on the
  structures, with a named training recipe (``--preset``, see :data:`PRESETS`).
* ``rf-magpie``: matminer ``ElementProperty.from_preset("magpie")`` on the composition and the
  sorted eigenvalues of ``SineCoulombMatrix`` (a ``MultipleFeaturizer``), then a random forest,
  in one scikit-learn ``Pipeline``: the "RF-SCM/Magpie" baseline of Matbench.

Command line (``skcgcnn benchmark`` dispatches here)::

    python -m skcgcnn.benchmark matbench_perovskites --data ../shared/datasets --folds 0,1 \
        --model cgcnn --preset budget --time-budget 6000 --threads 1
    python -m skcgcnn.benchmark matbench_perovskites --data ../shared/datasets --table --plots
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matminer.featurizers.base import MultipleFeaturizer
from matminer.featurizers.composition import ElementProperty
from matminer.featurizers.structure import SineCoulombMatrix, StructureComposition
from skorch.callbacks import Callback

__all__ = [
    "ANCHORS",
    "PRESETS",
    "TASKS",
    "BudgetCosineLR",
    "MagpieSCM",
    "TaskSpec",
    "load_task",
    "main",
    "make_model",
    "make_plots",
    "run_benchmark",
    "summary_table",
]

#: Folds file of Matbench v0.1 (inside ``--data``).
FOLDS_FILE = "matbench_v0.1_validation.json.gz"
#: Leaderboard scores file (inside ``--data``), used for the per-fold published numbers.
LEADERBOARD_FILE = "matbench_v0.1_leaderboard_scores.json"
#: Default seed of every model and of the ``--max-train`` subsampling.
DEFAULT_SEED = 0
#: Where results go by default: ``benchmarks/results`` of the source tree, or ``./results``.
_SOURCE_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@dataclass(frozen=True)
class TaskSpec:
    """How to load one benchmark task.

    Parameters
    ----------
    name : str
        Task name used on the command line and for the results file.
    file : str
        Dataset file (matminer DataFrame JSON) inside the data directory.
    target : str
        Target column (or source column of a derived target).
    kind : {"regression", "classification"}
    unit : str
        Unit of the target, for tables and plot labels.
    folds : str
        ``"matbench:<task>"`` for the official Matbench v0.1 folds (restricted to the rows
        present, for subsets that kept the Matbench index), or ``"kfold"`` for
        ``KFold(5, shuffle=True, random_state=18012019)`` (Matbench's own recipe) where the
        official folds do not apply.
    anchor : str
        Matbench task whose published numbers are shown next to ours.
    note : str
        Caveat printed with the table.
    """

    name: str
    file: str
    target: str
    kind: str
    unit: str
    folds: str
    anchor: str
    note: str = ""


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("matbench_perovskites", "matbench_perovskites.json.gz", "e_form", "regression",
                 "eV/cell", "matbench:matbench_perovskites", "matbench_perovskites"),
        TaskSpec("matbench_mp_gap", "matbench_mp_gap_sample10k.json.gz", "gap pbe", "regression",
                 "eV", "matbench:matbench_mp_gap", "matbench_mp_gap",
                 "10k random sample of the 106k task (official folds restricted to it); "
                 "published numbers train on ~85k"),
        TaskSpec("matbench_mp_is_metal", "matbench_mp_gap_sample10k.json.gz", "gap pbe",
                 "classification", "", "matbench:matbench_mp_is_metal", "matbench_mp_is_metal",
                 "target gap pbe == 0 on the 10k sample (official folds restricted to it); "
                 "published numbers train on ~85k"),
        TaskSpec("elastic_log_kvrh", "mp_elastic_moduli.json.gz", "log10(K_VRH)", "regression",
                 "log10(GPa)", "kfold", "matbench_log_kvrh",
                 "3,191 MP structures (not Matbench's 10,987): anchors are indicative only"),
        TaskSpec("elastic_log_gvrh", "mp_elastic_moduli.json.gz", "log10(G_VRH)", "regression",
                 "log10(GPa)", "kfold", "matbench_log_gvrh",
                 "3,191 MP structures (not Matbench's 10,987): anchors are indicative only"),
    ]
}

#: Published Matbench v0.1 5-fold means: (CGCNN, best published, RF-SCM/Magpie); MAE, or
#: ROC-AUC for matbench_mp_is_metal (None where not listed).
ANCHORS: dict[str, dict[str, float | None]] = {
    "matbench_perovskites": {"cgcnn": 0.0452, "best": 0.0269, "rf": 0.2355},
    "matbench_mp_gap": {"cgcnn": 0.2972, "best": 0.1559, "rf": 0.3452},
    "matbench_log_kvrh": {"cgcnn": 0.0712, "best": 0.0491, "rf": 0.0820},
    "matbench_log_gvrh": {"cgcnn": 0.0895, "best": 0.0670, "rf": 0.1040},
    "matbench_mp_is_metal": {"cgcnn": 0.9520, "best": None, "rf": 0.8992},
}

#: Named CGCNN training recipes (estimator parameters on top of the defaults).
#:
#: ``default``: the estimator's defaults (AdamW lr 2e-3, batch 64, up to 200 epochs, cosine LR
#: over 200 epochs, early stopping with patience 30 on a 10 % inner split, best weights restored).
#: ``budget``: the same optimizer, batch and inner split, but one cosine decay of the LR that ends
#: when ``max_epochs`` (120) or the time budget (``--time-budget``) runs out, whichever first
#: (:class:`BudgetCosineLR`); the best inner-validation weights are restored at the end. On
#: matbench_perovskites (official folds 0 and 1, 15k training structures, 2 shared CPU cores,
#: ~68 min per fold) it gave MAE 0.0409 and 0.0416 eV/cell (published CGCNN: 0.0452).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "budget": {"max_epochs": 120},
}


# ------------------------------------------------------------------------------------------
# Training schedule under a time budget
# ------------------------------------------------------------------------------------------


class BudgetCosineLR(Callback):
    """Cosine learning-rate decay over epochs *or* wall-clock time, whichever runs out first.

    The learning rate at each batch is ``lr * (1 + cos(pi * p)) / 2`` with the progress
    ``p = max(epochs_done / max_epochs, elapsed / time_budget)``; training stops after the epoch
    at which ``p`` reaches 1. With ``time_budget=None`` this is the usual per-batch cosine
    schedule over ``max_epochs``. Use it instead of the estimator's ``lr_scheduler`` callback
    (``callbacks__lr_scheduler=None``).

    Parameters
    ----------
    time_budget : float or None, default=None
        Seconds of training allowed (measured from the start of ``fit``).
    min_lr_fraction : float, default=0.0
        Floor of the learning rate, as a fraction of the initial one.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2, 4.3, 4.4, 4.5)]
    >>> reg = CGCNNRegressor(max_epochs=4, random_state=0, verbose=0, train_split=None,
    ...                      callbacks=[("budget_lr", BudgetCosineLR(time_budget=60))],
    ...                      callbacks__lr_scheduler=None).fit(X, [1, 2, 3, 4, 5, 6.0])
    >>> len(reg.history)
    4
    """

    def __init__(self, time_budget: float | None = None, min_lr_fraction: float = 0.0) -> None:
        self.time_budget = time_budget
        self.min_lr_fraction = min_lr_fraction

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.start_ = time.perf_counter()
        self.lr0_ = float(net.lr)
        self.net_max_epochs_ = net.max_epochs
        self.epochs_done_ = 0
        self.batches_per_epoch_: int | None = None
        self.batch_ = 0

    def _progress(self, epoch_fraction: float) -> float:
        p = epoch_fraction / max(int(self.net_max_epochs_), 1)
        if self.time_budget:
            p = max(p, (time.perf_counter() - self.start_) / float(self.time_budget))
        return min(p, 1.0)

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        self.batch_ = 0

    def on_batch_begin(self, net: Any, batch: Any = None, training: bool = False,
                       **kwargs: Any) -> None:
        if not training:
            return
        fraction = self.batch_ / self.batches_per_epoch_ if self.batches_per_epoch_ else 0.0
        p = self._progress(self.epochs_done_ + min(fraction, 1.0))
        floor = self.min_lr_fraction
        lr = self.lr0_ * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
        net.history.record("lr", lr)
        self.batch_ += 1

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self.batches_per_epoch_ = self.batch_ or self.batches_per_epoch_
        self.epochs_done_ += 1
        if self._progress(self.epochs_done_) >= 1.0 and self.epochs_done_ < net.max_epochs:
            if net.verbose:
                print(f"Stopping: time budget of {self.time_budget:g} s used after "
                      f"{self.epochs_done_} epochs.")
            raise KeyboardInterrupt


# ------------------------------------------------------------------------------------------
# Models
# ------------------------------------------------------------------------------------------


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
               verbose: int = 1) -> Any:
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
        from .estimators import CGCNNClassifier, CGCNNRegressor

        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
        params = dict(PRESETS[preset])
        if max_epochs is not None:
            params["max_epochs"] = max_epochs
        if preset != "default" or time_budget is not None:
            params["callbacks"] = [("budget_lr", BudgetCosineLR(time_budget=time_budget))]
            params["callbacks__lr_scheduler"] = None
        cls = CGCNNRegressor if kind == "regression" else CGCNNClassifier
        return cls(random_state=seed, verbose=verbose, **params)
    if name == "rf-magpie":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline

        forest = (RandomForestRegressor if kind == "regression" else RandomForestClassifier)(
            n_estimators=100, random_state=seed, n_jobs=1
        )
        return make_pipeline(MagpieSCM(n_jobs=1), SimpleImputer(), forest)
    raise ValueError(f"unknown model {name!r}; known: ['cgcnn', 'rf-magpie']")


def _model_settings(name: str, preset: str, max_train: int | None, seed: int,
                    time_budget: float | None, max_epochs: int | None) -> dict[str, Any]:
    settings: dict[str, Any] = {"model": name, "seed": seed, "max_train": max_train}
    if name == "cgcnn":
        settings.update(preset=preset, time_budget=time_budget, max_epochs=max_epochs)
    else:
        settings.update(n_estimators=100, features="magpie+scm-eigs")
    return settings


def _settings_id(settings: dict[str, Any]) -> str:
    """Short stable hash of the settings that define a row (everything but the fold)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


# ------------------------------------------------------------------------------------------
# Data and folds
# ------------------------------------------------------------------------------------------


def load_task(task: str, data_dir: str | os.PathLike[str]) -> tuple[
        np.ndarray, np.ndarray, list[tuple[np.ndarray, np.ndarray]], TaskSpec]:
    """Structures, targets and the 5 folds of a benchmark task.

    Parameters
    ----------
    task : str
        A key of :data:`TASKS` (the ``matbench_`` prefix may be left out).
    data_dir : path-like
        Directory holding the dataset and ``matbench_v0.1_validation.json.gz``.

    Returns
    -------
    X : ndarray of Structure, shape (n,)
    y : ndarray of shape (n,)
    folds : list of (train, test) position arrays
    spec : TaskSpec

    Examples
    --------
    >>> X, y, folds, spec = load_task("matbench_perovskites", "data")  # doctest: +SKIP
    >>> len(X), len(folds), spec.unit  # doctest: +SKIP
    (18928, 5, 'eV/cell')
    """
    from sklearn.model_selection import KFold

    from .datasets import load_matbench, matbench_folds

    spec = TASKS.get(task) or TASKS.get(f"matbench_{task}")
    if spec is None:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    data_dir = Path(data_dir)
    df = load_matbench(data_dir / spec.file, target=spec.target)
    X = df["structure"].to_numpy()
    y = df[spec.target].to_numpy()
    if spec.name == "matbench_mp_is_metal":
        y = (y == 0).astype(int)
        index = df.index.str.replace("mb-mp-gap-", "mb-mp-is-metal-", regex=False)
    else:
        index = df.index
    if spec.folds.startswith("matbench:"):
        folds = matbench_folds(spec.folds.split(":", 1)[1], data_dir / FOLDS_FILE, index,
                               missing="drop")
    else:
        kfold = KFold(5, shuffle=True, random_state=18012019)
        folds = [(tr.astype(np.intp), te.astype(np.intp)) for tr, te in kfold.split(X)]
    return X, y, folds, spec


def _subsample(train: np.ndarray, max_train: int | None, seed: int) -> np.ndarray:
    if max_train is None or max_train >= len(train):
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=max_train, replace=False))


# ------------------------------------------------------------------------------------------
# The cross-validation loop
# ------------------------------------------------------------------------------------------


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("skcgcnn", "torch", "skorch", "scikit-learn", "matminer", "pymatgen"):
        try:
            out.append(f"{pkg}={version(pkg)}")
        except PackageNotFoundError:
            out.append(f"{pkg}=?")
    return " ".join(out)


def _scores(kind: str, y_true: np.ndarray, pred: np.ndarray,
            proba: np.ndarray | None) -> dict[str, float]:
    from sklearn.metrics import (
        accuracy_score,
        mean_absolute_error,
        mean_squared_error,
        r2_score,
        roc_auc_score,
    )

    if kind == "regression":
        return {"mae": mean_absolute_error(y_true, pred),
                "rmse": math.sqrt(mean_squared_error(y_true, pred)),
                "r2": r2_score(y_true, pred)}
    return {"roc_auc": roc_auc_score(y_true, proba[:, 1]) if proba is not None else math.nan,
            "accuracy": accuracy_score(y_true, pred)}


def results_path(results_dir: str | os.PathLike[str], task: str) -> Path:
    """The per-fold results CSV of a task."""
    return Path(results_dir) / f"{task}.csv"


def _done(csv: Path, settings_id: str) -> set[int]:
    if not csv.is_file():
        return set()
    rows = pd.read_csv(csv)
    return set(rows.loc[rows["settings_id"] == settings_id, "fold"].astype(int))


def _append_row(csv: Path, row: dict[str, Any]) -> None:
    """Append one row; several processes may append to the same CSV (one fold each)."""
    csv.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([row])
    header = not csv.is_file() or csv.stat().st_size == 0
    if not header:
        columns = pd.read_csv(csv, nrows=0).columns.tolist()
        frame = frame.reindex(columns=columns)
    with open(csv, "a", encoding="utf-8") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass
        if header and fh.tell() > 0:  # another process wrote the header meanwhile
            header = False
            frame = frame.reindex(columns=pd.read_csv(csv, nrows=0).columns.tolist())
        fh.write(frame.to_csv(index=False, header=header))


def run_benchmark(
    task: str,
    data_dir: str | os.PathLike[str],
    models: Sequence[str] = ("cgcnn", "rf-magpie"),
    folds: Sequence[int] | None = None,
    max_train: int | None = None,
    results_dir: str | os.PathLike[str] | None = None,
    seed: int = DEFAULT_SEED,
    preset: str = "default",
    time_budget: float | None = None,
    max_epochs: int | None = None,
    verbose: int = 1,
    data: tuple | None = None,
) -> pd.DataFrame:
    """Fit each model on each requested fold, appending one CSV row per (model, fold).

    Every model goes through the same loop: ``clone`` the estimator, ``fit`` on the structures
    of the training fold (optionally subsampled to ``max_train``), ``predict`` the test fold,
    score, and record. Folds already in the CSV for the same settings are skipped.

    Parameters
    ----------
    task : str
        A key of :data:`TASKS`.
    data_dir : path-like
        Directory with the dataset files and the official folds.
    models : sequence of str
        Names accepted by :func:`make_model`.
    folds : sequence of int, optional
        Fold numbers (0-4); all five by default.
    max_train : int, optional
        Train on a seeded random subset of this many structures of each training fold (for
        learning curves); the test fold is always whole.
    results_dir : path-like, optional
        Default: ``benchmarks/results`` of the source tree when it exists, else ``./results``.
    seed, preset, time_budget, max_epochs, verbose
        See :func:`make_model`.
    data : tuple, optional
        ``(X, y, folds, spec)`` as returned by :func:`load_task`, to skip loading.

    Returns
    -------
    pandas.DataFrame
        The rows written by this call.

    Examples
    --------
    >>> rows = run_benchmark("matbench_perovskites", "data", folds=[0],
    ...                      max_train=500)  # doctest: +SKIP
    """
    from sklearn.base import clone

    X, y, all_folds, spec = data if data is not None else load_task(task, data_dir)
    results_dir = Path(results_dir) if results_dir is not None else _default_results_dir()
    csv = results_path(results_dir, spec.name)
    fold_ids = list(range(len(all_folds))) if folds is None else [int(k) for k in folds]
    written = []
    for name in models:
        settings = _model_settings(name, preset, max_train, seed, time_budget, max_epochs)
        sid = _settings_id(settings)
        done = _done(csv, sid)
        template = make_model(name, spec.kind, seed, preset, time_budget, max_epochs, verbose)
        for k in fold_ids:
            if k in done:
                if verbose:
                    print(f"[{spec.name}] {name} fold {k}: already in {csv}, skipped")
                continue
            train, test = all_folds[k]
            train = _subsample(train, max_train, seed)
            model = clone(template)
            if verbose:
                print(f"[{spec.name}] {name} fold {k}: fitting on {len(train)}, "
                      f"testing on {len(test)}", flush=True)
            with warnings.catch_warnings():
                # matminer's SineCoulombMatrix uses np.matrix and complex eigenvalues
                warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
                warnings.filterwarnings("ignore", category=np.exceptions.ComplexWarning)
                t0 = time.perf_counter()
                model.fit(X[train], y[train])
                fit_time = time.perf_counter() - t0
                t0 = time.perf_counter()
                pred = model.predict(X[test])
                proba = model.predict_proba(X[test]) if spec.kind == "classification" else None
                predict_time = time.perf_counter() - t0
            history = getattr(model, "history_", None) or getattr(model, "history", None)
            row = {
                "task": spec.name, "model": name, "settings_id": sid, "fold": k,
                "n_train": len(train), "n_test": len(test), "max_train": max_train,
                **_scores(spec.kind, y[test], pred, proba),
                "fit_time_s": round(fit_time, 2), "predict_time_s": round(predict_time, 2),
                "n_epochs": len(history) if history is not None and name == "cgcnn" else None,
                "seed": seed, "preset": preset if name == "cgcnn" else None,
                "settings": json.dumps(settings, sort_keys=True),
                "torch_threads": _torch_threads(), "versions": _versions(),
                "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
            stem = f"{name}-{sid}-fold{k}"
            _save_predictions(results_dir / f"{spec.name}_predictions" / f"{stem}.csv",
                              test, y[test], pred, proba)
            if history is not None and name == "cgcnn":
                _save_history(results_dir / f"{spec.name}_history" / f"{stem}.json", model)
            _append_row(csv, row)
            written.append(row)
            if verbose:
                metric = "mae" if spec.kind == "regression" else "roc_auc"
                print(f"[{spec.name}] {name} fold {k}: {metric} = {row[metric]:.4f} "
                      f"(fit {fit_time:.0f} s) -> {csv}", flush=True)
    return pd.DataFrame(written)


def _torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:  # pragma: no cover
        return None


def _default_results_dir() -> Path:
    return _SOURCE_RESULTS if _SOURCE_RESULTS.parent.is_dir() else Path("results")


def _save_predictions(path: Path, test: np.ndarray, y_true: np.ndarray, pred: np.ndarray,
                      proba: np.ndarray | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"position": test, "y_true": y_true, "y_pred": pred})
    if proba is not None:
        frame["p_true"] = proba[:, 1]
    frame.to_csv(path, index=False, float_format="%.6g")


def _save_history(path: Path, model: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = float(np.ravel(getattr(model, "y_scale_", [1.0]))[0])
    rows = [{"epoch": h["epoch"], "train_loss": h.get("train_loss"),
             "valid_loss": h.get("valid_loss"), "dur": h.get("dur")} for h in model.history]
    path.write_text(json.dumps({"y_scale": scale, "epochs": rows}))


# ------------------------------------------------------------------------------------------
# Tables and plots
# ------------------------------------------------------------------------------------------


def _leaderboard_folds(data_dir: Path | None, task: str) -> dict[str, list[float]]:
    """Per-fold published scores of CGCNN and RF for a Matbench task, where available."""
    if data_dir is None or not (data_dir / LEADERBOARD_FILE).is_file():
        return {}
    entries = json.loads((data_dir / LEADERBOARD_FILE).read_text())["entries"]
    metric = "rocauc" if task == "matbench_mp_is_metal" else "mae"
    names = {"matbench_v0.1_cgcnnv2019": "cgcnn", "matbench_v0.1_rf": "rf"}
    return {names[e["benchmark"]]: e["scores"][metric]["folds"] for e in entries
            if e["task"] == task and e["benchmark"] in names and metric in e["scores"]}


def summary_table(task: str, results_dir: str | os.PathLike[str] | None = None,
                  data_dir: str | os.PathLike[str] | None = None) -> str:
    """The side-by-side table (Markdown) of our per-fold results and the published anchors.

    Parameters
    ----------
    task : str
    results_dir : path-like, optional
    data_dir : path-like, optional
        With the leaderboard file, the published per-fold numbers are shown for the same folds.

    Returns
    -------
    str
        A Markdown table, one line per (model, settings, training size).

    Examples
    --------
    >>> print(summary_table("matbench_perovskites"))  # doctest: +SKIP
    """
    spec = TASKS.get(task) or TASKS[f"matbench_{task}"]
    results_dir = Path(results_dir) if results_dir is not None else _default_results_dir()
    csv = results_path(results_dir, spec.name)
    if not csv.is_file():
        return f"no results yet in {csv}"
    rows = pd.read_csv(csv)
    metric = "mae" if spec.kind == "regression" else "roc_auc"
    anchors = ANCHORS.get(spec.anchor, {})
    published = ({} if spec.folds == "kfold"  # other data, other folds: no per-fold match
                 else _leaderboard_folds(Path(data_dir) if data_dir else None, spec.anchor))
    fmt = "{:.4f}".format
    lines = [
        f"### {spec.name} ({metric.upper()}{', ' + spec.unit if spec.unit else ''})",
        "",
        f"| model | settings | n_train | folds | {metric} per fold | mean {metric} | "
        "published CGCNN (same folds) | published RF (same folds) | fit time / fold |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    order = rows.assign(_size=-rows["n_train"]).sort_values(["model", "_size"])
    for (model, sid), group in order.groupby(["model", "settings_id"], sort=False):
        group = group.sort_values("fold")
        folds_ = group["fold"].astype(int).tolist()
        ours = group[metric].to_numpy()
        same = {k: (np.mean([v[f] for f in folds_]) if v else None)
                for k, v in published.items()}
        if model == "cgcnn":
            settings = json.loads(group["settings"].iloc[0])
            lo, hi = int(group["n_epochs"].min()), int(group["n_epochs"].max())
            label = f"{group['preset'].iloc[0]}: {lo if lo == hi else f'{lo}-{hi}'} epochs"
            if settings.get("time_budget"):
                label += f" (cap {settings['time_budget']:g} s)"
        else:
            label = "100 trees"
        lines.append(
            f"| {model} | {label} ({sid}) | {int(group['n_train'].median())} | "
            f"{','.join(map(str, folds_))} | {' '.join(fmt(v) for v in ours)} | "
            f"**{fmt(ours.mean())}** | "
            f"{fmt(same['cgcnn']) if same.get('cgcnn') is not None else '-'} | "
            f"{fmt(same['rf']) if same.get('rf') is not None else '-'} | "
            f"{group['fit_time_s'].mean():.0f} s |"
        )
    if anchors:
        best = anchors.get("best")
        lines += ["", f"Published Matbench v0.1 ({spec.anchor}, 5-fold mean): CGCNN "
                  f"{anchors['cgcnn']}, best {best if best is not None else '-'}, "
                  f"RF-SCM/Magpie {anchors['rf']}."]
    if spec.note:
        lines.append(f"Note: {spec.note}.")
    return "\n".join(lines)


def make_plots(task: str, results_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Parity plots, learning curve and training curves from the saved results (PNG files).

    Parameters
    ----------
    task : str
    results_dir : path-like, optional

    Returns
    -------
    list of Path
        The PNG files written next to the results CSV.

    Examples
    --------
    >>> make_plots("matbench_perovskites")  # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = TASKS.get(task) or TASKS[f"matbench_{task}"]
    results_dir = Path(results_dir) if results_dir is not None else _default_results_dir()
    csv = results_path(results_dir, spec.name)
    if not csv.is_file():
        return []
    rows = pd.read_csv(csv)
    metric = "mae" if spec.kind == "regression" else "roc_auc"
    unit = f" ({spec.unit})" if spec.unit else ""
    written: list[Path] = []

    # Parity plot per model: the largest-n_train settings of each model, all its folds.
    pred_dir = results_dir / f"{spec.name}_predictions"
    for model, group in rows.groupby("model"):
        top = group[group["n_train"] >= group["n_train"].max() * 0.95]
        sid = top.groupby("settings_id")[metric].count().idxmax()
        parts = [pd.read_csv(pred_dir / f"{model}-{sid}-fold{int(k)}.csv")
                 for k in top.loc[top["settings_id"] == sid, "fold"]
                 if (pred_dir / f"{model}-{sid}-fold{int(k)}.csv").is_file()]
        if not parts:
            continue
        pred = pd.concat(parts)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        if spec.kind == "regression":
            ax.scatter(pred["y_true"], pred["y_pred"], s=3, alpha=0.3, lw=0)
            lo = min(pred["y_true"].min(), pred["y_pred"].min())
            hi = max(pred["y_true"].max(), pred["y_pred"].max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            mae = np.abs(pred["y_true"] - pred["y_pred"]).mean()
            ax.set_xlabel(f"true {spec.target}{unit}")
            ax.set_ylabel(f"predicted {spec.target}{unit}")
            ax.set_title(f"{spec.name}: {model}\nMAE {mae:.4f} on {len(pred)} test structures",
                         fontsize=9)
        else:
            for label in (0, 1):
                ax.hist(pred.loc[pred["y_true"] == label, "p_true"], bins=40, alpha=0.5,
                        label=f"true {label}")
            ax.set_xlabel("predicted P(metal)")
            ax.legend()
            ax.set_title(f"{spec.name}: {model}", fontsize=9)
        fig.tight_layout()
        path = results_dir / f"{spec.name}_parity_{model}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    # Learning curve: mean metric over folds vs training-set size, per model.
    fig, ax = plt.subplots(figsize=(5, 4))
    for model, group in rows.groupby("model"):
        curve = group.groupby("n_train")[metric].agg(["mean", "std", "count"]).reset_index()
        ax.errorbar(curve["n_train"], curve["mean"], yerr=curve["std"].fillna(0), marker="o",
                    capsize=3, label=model)
    anchors = ANCHORS.get(spec.anchor, {})
    for key, style in (("cgcnn", ":"), ("rf", "-.")):
        if anchors.get(key) is not None:
            ax.axhline(anchors[key], ls=style, color="gray", lw=0.8,
                       label=f"published {key} (full data)")
    ax.set_xscale("log")
    if spec.kind == "regression":
        ax.set_yscale("log")
    ax.set_xlabel("training structures")
    ax.set_ylabel(f"test {metric.upper()}{unit}")
    ax.set_title(f"{spec.name}: learning curve", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = results_dir / f"{spec.name}_learning_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)

    # Training curves: train / inner-validation loss per epoch of each CGCNN fold.
    hist_dir = results_dir / f"{spec.name}_history"
    histories = sorted(hist_dir.glob("cgcnn-*.json")) if hist_dir.is_dir() else []
    cgcnn_rows = rows[rows["model"] == "cgcnn"]
    if len(cgcnn_rows):  # the full-size runs only (learning-curve runs would crowd the plot)
        full = cgcnn_rows[cgcnn_rows["n_train"] >= cgcnn_rows["n_train"].max() * 0.95]
        keep = {f"cgcnn-{sid}-fold{int(k)}" for sid, k in zip(full["settings_id"], full["fold"])}
        histories = [h for h in histories if h.stem in keep]
    if histories:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for i, file in enumerate(histories):
            record = json.loads(file.read_text())
            epochs = pd.DataFrame(record["epochs"])
            color = f"C{i % 10}"
            label = file.stem.replace("cgcnn-", "")
            ax.plot(epochs["epoch"], epochs["train_loss"], color=color, lw=0.8,
                    label=f"{label} train")
            if epochs["valid_loss"].notna().any():
                ax.plot(epochs["epoch"], epochs["valid_loss"], color=color, lw=0.8, ls="--",
                        label=f"{label} valid")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (standardised target)" if spec.kind == "regression"
                      else "cross-entropy")
        ax.set_title(f"{spec.name}: CGCNN training curves (inner 10 % validation)",
                     fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = results_dir / f"{spec.name}_training_curves.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skcgcnn benchmark",
        description="CGCNN vs a classical baseline (Magpie + sine Coulomb matrix + random "
                    "forest) on Matbench-style folds; per-fold rows appended to "
                    "<results>/<task>.csv (resumable).",
    )
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--data", required=True, help="directory with the dataset files and "
                   f"{FOLDS_FILE}")
    p.add_argument("--folds", default=None, help="comma-separated fold numbers (default: all)")
    p.add_argument("--max-train", type=int, default=None,
                   help="subsample each training fold to N structures (learning curves)")
    p.add_argument("--model", default="cgcnn,rf-magpie",
                   help="comma-separated models: cgcnn, rf-magpie (default: both)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="CGCNN training recipe")
    p.add_argument("--time-budget", type=float, default=None,
                   help="CGCNN: seconds of training per fold (cosine LR ends there)")
    p.add_argument("--max-epochs", type=int, default=None, help="CGCNN: override max_epochs")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--results", default=None, help="results directory")
    p.add_argument("--table", action="store_true", help="only print the table")
    p.add_argument("--plots", action="store_true", help="(re)draw the plots")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``skcgcnn benchmark``; returns the exit status.

    Examples
    --------
    >>> main(["matbench_perovskites", "--data", "../shared/datasets", "--folds", "0",
    ...       "--max-train", "1000"])  # doctest: +SKIP
    0
    """
    args = _parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = Path(args.results) if args.results else None
    if not args.table:
        folds = [int(k) for k in args.folds.split(",")] if args.folds else None
        try:
            run_benchmark(
                args.task, args.data,
                models=[m.strip() for m in args.model.split(",") if m.strip()],
                folds=folds, max_train=args.max_train, results_dir=results, seed=args.seed,
                preset=args.preset, time_budget=args.time_budget, max_epochs=args.max_epochs,
                verbose=0 if args.quiet else 1,
            )
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.plots or not args.table:
        for path in make_plots(args.task, results):
            print(f"wrote {path}")
    print(summary_table(args.task, results, args.data))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
