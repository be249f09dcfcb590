"""The cross-validation loop of the benchmark: one CSV row per (model, fold), resumable.

:func:`run_benchmark` fits every model on the same ``(train, test)`` fold indices, appends one
row per (model, fold) to ``<results_dir>/<task>.csv`` (``results_dir`` defaults to the current
directory) and skips the folds already recorded there for the same model and settings, so an
interrupted run resumes fold by fold and several processes may run different folds into the same
CSV (appends are locked). Test-set predictions and the per-epoch training history are saved
beside the CSV, in ``<task>_predictions/`` and ``<task>_history/``.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .fold_state import (
    StopAtEpochEnd,
    checkpoint_callbacks,
    clear_checkpoint,
    fold_checkpoint_dir,
    stop_at_epoch_end,
)
from .models import DEFAULT_SEED, make_model, model_settings, settings_id
from .tasks import load_task

__all__ = ["resolve_results_dir", "results_path", "run_benchmark"]


def _subsample(train: np.ndarray, max_train: int | None, seed: int) -> np.ndarray:
    if max_train is None or max_train >= len(train):
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=max_train, replace=False))


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


def resolve_results_dir(results_dir: str | os.PathLike[str] | None) -> Path:
    """The results directory: the one given, else the current directory (never the package).

    Parameters
    ----------
    results_dir : path-like or None

    Returns
    -------
    Path

    Examples
    --------
    >>> resolve_results_dir(None) == Path.cwd()
    True
    """
    return Path(results_dir) if results_dir is not None else Path.cwd()


def results_path(results_dir: str | os.PathLike[str] | None, task: str) -> Path:
    """The per-fold results CSV of a task: ``<results_dir>/<task>.csv``.

    Parameters
    ----------
    results_dir : path-like or None
        ``None``: the current directory.
    task : str

    Returns
    -------
    Path

    Examples
    --------
    >>> results_path("results", "matbench_perovskites").as_posix()
    'results/matbench_perovskites.csv'
    """
    return resolve_results_dir(results_dir) / f"{task}.csv"


def _done(csv: Path, settings_id: str) -> set[int]:
    if not csv.is_file():
        return set()
    rows = pd.read_csv(csv)
    return set(rows.loc[rows["settings_id"] == settings_id, "fold"].astype(int))


def _append_row(csv: Path, row: dict[str, Any]) -> None:
    """Append one row; several processes may append to the same CSV (one fold each).

    A row with columns the file does not have yet (a newer runner) rewrites the file with the
    union of the columns, earlier rows left empty there: nothing of the row is dropped.
    """
    csv.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([row])
    with open(csv, "a+", encoding="utf-8") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows
            pass
        if fh.tell() == 0:  # a new (or empty) file
            fh.write(frame.to_csv(index=False))
            return
        columns = pd.read_csv(csv, nrows=0).columns.tolist()
        if set(frame.columns) <= set(columns):
            fh.write(frame.reindex(columns=columns).to_csv(index=False, header=False))
            return
        merged = pd.concat([pd.read_csv(csv), frame], ignore_index=True)
        fh.seek(0)
        fh.truncate()
        fh.write(merged.to_csv(index=False))


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
    full: bool = False,
    store: str | os.PathLike[str] | None = None,
    n_jobs: int | None = None,
    device: str = "cpu",
    checkpoint_dir: str | os.PathLike[str] | None = None,
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
        Where the CSV, predictions and histories go; default: the current directory.
    seed, preset, time_budget, max_epochs, verbose
        See :func:`make_model`.
    data : tuple, optional
        ``(X, y, folds, spec)`` as returned by :func:`load_task`, to skip loading.
    full, store, n_jobs
        See :func:`load_task`: the whole dataset instead of its sample, a graph store as X
        for CGCNN (featurized once; the baseline needs Structures, so with a store it reads
        them from the same data), parallel tasks for featurizing or parsing (and for the
        baseline's featurizers and trees).
    device : str, default="cpu"
        CGCNN's ``device`` (``"cuda"``, ``"auto"``, ...); recorded in the ``device`` column.
    checkpoint_dir : path-like, optional
        CGCNN folds save their whole training state here after every epoch and resume from it
        when the same run is started again (see :mod:`~skcgcnn.benchmark.fold_state`); a
        fold's checkpoint is removed once its row is written.

    Raises
    ------
    FoldInterrupted
        When a CGCNN fit was asked to stop (Ctrl-C, SIGTERM): it stops after the current
        epoch and no row is written for that fold (rows of earlier folds are kept).

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

    loaded: dict[bool, tuple] = {} if data is None else {store is not None: data}
    results_dir = resolve_results_dir(results_dir)
    written = []
    for name in models:
        graphs = store is not None and name == "cgcnn"  # the baseline needs Structures
        if graphs not in loaded:
            loaded[graphs] = load_task(task, data_dir, full=full,
                                       store=store if graphs else None, n_jobs=n_jobs)
        X, y, all_folds, spec = loaded[graphs]
        csv = results_path(results_dir, spec.name)
        fold_ids = list(range(len(all_folds))) if folds is None else [int(k) for k in folds]
        settings = model_settings(name, preset, max_train, seed, time_budget, max_epochs, full)
        sid = settings_id(settings)
        done = _done(csv, sid)
        template = make_model(name, spec.kind, seed, preset, time_budget, max_epochs, verbose,
                              device, n_jobs)
        for k in fold_ids:
            if k in done:
                if verbose:
                    print(f"[{spec.name}] {name} fold {k}: already in {csv}, skipped")
                continue
            train, test = all_folds[k]
            train = _subsample(train, max_train, seed)
            model = clone(template)
            folder, stop = None, StopAtEpochEnd()
            if name == "cgcnn":
                extra = [("stop_at_epoch_end", stop)]
                if checkpoint_dir is not None:
                    folder = fold_checkpoint_dir(checkpoint_dir, spec.name, name, sid, k)
                    extra = checkpoint_callbacks(folder, model.train_split is not None) + extra
                model.set_params(callbacks=[*(model.callbacks or []), *extra])
            if verbose:
                resumed = folder is not None and (folder / "params.pt").is_file()
                print(f"[{spec.name}] {name} fold {k}: fitting on {len(train)}, "
                      f"testing on {len(test)}"
                      f"{f' (resuming from {folder})' if resumed else ''}", flush=True)
            with warnings.catch_warnings(), stop_at_epoch_end(stop, verbose):
                # matminer's SineCoulombMatrix uses np.matrix and complex eigenvalues
                warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
                warnings.filterwarnings("ignore", category=np.exceptions.ComplexWarning)
                t0, c0 = time.perf_counter(), time.process_time()
                model.fit(X[train], y[train])
                fit_time, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
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
                "fit_cpu_s": round(fit_cpu, 2),
                "device": getattr(model, "device_", None) if name == "cgcnn" else "cpu",
                "data": "full" if full else "default",
                "n_epochs": len(history) if history is not None and name == "cgcnn" else None,
                "train_time_s": (round(sum(float(h.get("dur", 0.0)) for h in history), 2)
                                 if history is not None and name == "cgcnn" else None),
                "resumed_at_epoch": getattr(model, "_resumed_at", None),
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
            if folder is not None:
                clear_checkpoint(folder)
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
