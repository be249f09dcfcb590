"""Benchmark tasks: which dataset, target, folds and published scores each one uses.

A task (:class:`TaskSpec`, the table :data:`TASKS`) names a dataset file of ``--data`` (matminer
DataFrame JSON), its target, its folds (the official Matbench v0.1 folds or Matbench's own
``KFold`` recipe) and the Matbench task whose published numbers (:data:`ANCHORS`) are shown
next to ours. :func:`load_task` returns the structures, targets and folds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ANCHORS", "FOLDS_FILE", "LEADERBOARD_FILE", "TASKS", "TaskSpec", "get_task",
           "load_task"]

#: Folds file of Matbench v0.1 (inside ``--data``).
FOLDS_FILE = "matbench_v0.1_validation.json.gz"
#: Leaderboard scores file (inside ``--data``), used for the per-fold published numbers.
LEADERBOARD_FILE = "matbench_v0.1_leaderboard_scores.json"


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

    Examples
    --------
    >>> spec = TASKS["elastic_log_gvrh"]
    >>> spec.kind, spec.folds, spec.anchor
    ('regression', 'kfold', 'matbench_log_gvrh')
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


def get_task(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of a task name (the ``matbench_`` prefix may be left out).

    Parameters
    ----------
    task : str

    Returns
    -------
    TaskSpec

    Raises
    ------
    ValueError
        For a name that is not in :data:`TASKS`.

    Examples
    --------
    >>> get_task("perovskites").unit
    'eV/cell'
    """
    spec = TASKS.get(task) or TASKS.get(f"matbench_{task}")
    if spec is None:
        raise ValueError(f"unknown task {task!r}; known: {sorted(TASKS)}")
    return spec


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

    from ..datasets import load_matbench, matbench_folds

    spec = get_task(task)
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
