"""Matbench-style benchmarking: CGCNN next to a classical baseline on the same folds.

A research runner beside the library (nothing in the core package imports it). One
cross-validation loop (:func:`run_benchmark`) fits every model as a scikit-learn estimator on the
same ``(train, test)`` fold indices, appends one row per (model, fold) to
``<results_dir>/<task>.csv`` (default: the current directory) and skips the folds already
recorded there for the same model and settings, so an interrupted run resumes fold by fold.
:func:`make_plots` draws parity plots, a learning curve and training curves from the saved
results (needs ``pip install skcgcnn[plot]``), and :func:`summary_table` prints the side-by-side
table with the published Matbench v0.1 numbers.

The modules, one job each:

* :mod:`~skcgcnn.benchmark.tasks`: the tasks, their folds and published scores
  (:data:`TASKS`, :data:`ANCHORS`, :func:`load_task`);
* :mod:`~skcgcnn.benchmark.models`: the compared models (:func:`make_model`, :data:`PRESETS`,
  the :class:`MagpieSCM` baseline features);
* :mod:`~skcgcnn.benchmark.runner`: the resumable CV loop (:func:`run_benchmark`);
* :mod:`~skcgcnn.benchmark.report` and :mod:`~skcgcnn.benchmark.plots`: table and figures;
* :mod:`~skcgcnn.benchmark.cli`: ``skcgcnn benchmark`` / ``python -m skcgcnn.benchmark``.

The learning-rate schedule of the ``budget`` recipe is :class:`skcgcnn.callbacks.BudgetCosineLR`
(also importable from here, as before).

Command line::

    skcgcnn benchmark matbench_perovskites --data ../shared/datasets --folds 0,1 \\
        --model cgcnn --preset budget --time-budget 6000 --threads 1 --results results/
    skcgcnn benchmark matbench_perovskites --data ../shared/datasets --table --plots \\
        --results results/
"""

from __future__ import annotations

import importlib
from typing import Any

from .tasks import ANCHORS, FOLDS_FILE, LEADERBOARD_FILE, TASKS, TaskSpec, get_task, load_task

__all__ = [
    "ANCHORS",
    "DEFAULT_SEED",
    "FOLDS_FILE",
    "LEADERBOARD_FILE",
    "PRESETS",
    "TASKS",
    "BudgetCosineLR",
    "MagpieSCM",
    "TaskSpec",
    "get_task",
    "load_task",
    "main",
    "make_model",
    "make_plots",
    "results_path",
    "run_benchmark",
    "summary_table",
]

# Names defined in the submodules that import matminer, skorch or matplotlib: loaded on first use
# (PEP 562), so importing the package (or its task table) stays light.
_LAZY = {
    "DEFAULT_SEED": ".models",
    "PRESETS": ".models",
    "MagpieSCM": ".models",
    "make_model": ".models",
    "results_path": ".runner",
    "run_benchmark": ".runner",
    "summary_table": ".report",
    "make_plots": ".plots",
    "main": ".cli",
    "BudgetCosineLR": "..callbacks",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
