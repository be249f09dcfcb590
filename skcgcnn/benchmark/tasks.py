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
from typing import Any

import numpy as np

__all__ = ["ANCHORS", "FOLDS_FILE", "LEADERBOARD_FILE", "MP_GAP_ARCHIVE", "TASKS", "TaskSpec",
           "get_task", "load_task"]

#: Folds file of Matbench v0.1 (inside ``--data``).
FOLDS_FILE = "matbench_v0.1_validation.json.gz"
#: Leaderboard scores file (inside ``--data``), used for the per-fold published numbers.
LEADERBOARD_FILE = "matbench_v0.1_leaderboard_scores.json"
#: All 106,113 structures of matbench_mp_gap as CIFs with their targets (inside ``--data``).
MP_GAP_ARCHIVE = "matbench_mp_gap_cifs.tar.gz"


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
    full_file : str, optional
        The whole Matbench dataset (a tar archive of CIFs with a targets CSV) inside the data
        directory, used instead of ``file`` when the task is loaded with ``full=True``.

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
    full_file: str | None = None


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec("matbench_perovskites", "matbench_perovskites.json.gz", "e_form", "regression",
                 "eV/cell", "matbench:matbench_perovskites", "matbench_perovskites"),
        TaskSpec("matbench_mp_gap", "matbench_mp_gap_sample10k.json.gz", "gap pbe", "regression",
                 "eV", "matbench:matbench_mp_gap", "matbench_mp_gap",
                 "10k random sample of the 106k task (official folds restricted to it); "
                 "published numbers train on ~85k", full_file=MP_GAP_ARCHIVE),
        TaskSpec("matbench_mp_is_metal", "matbench_mp_gap_sample10k.json.gz", "gap pbe",
                 "classification", "", "matbench:matbench_mp_is_metal", "matbench_mp_is_metal",
                 "target gap pbe == 0 on the 10k sample (official folds restricted to it); "
                 "published numbers train on ~85k", full_file=MP_GAP_ARCHIVE),
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


def load_task(task: str, data_dir: str | os.PathLike[str], *, full: bool = False,
              store: str | os.PathLike[str] | None = None, n_jobs: int | None = None,
              ) -> tuple[Any, np.ndarray, list[tuple[np.ndarray, np.ndarray]], TaskSpec]:
    """Inputs, targets and the 5 folds of a benchmark task.

    Parameters
    ----------
    task : str
        A key of :data:`TASKS` (the ``matbench_`` prefix may be left out).
    data_dir : path-like
        Directory holding the dataset and ``matbench_v0.1_validation.json.gz``.
    full : bool, default=False
        Use the task's whole Matbench dataset (:attr:`TaskSpec.full_file`, e.g. all 106,113
        mp_gap CIFs) instead of its sample.
    store : path-like, optional
        A :class:`~skcgcnn.store.GraphStore` folder: X is the store (graphs featurized once,
        memory-mapped) instead of Structures. A folder without a store is featurized from the
        task's data first (resumable: rerun after an interruption keeps the shards written).
    n_jobs : int, optional
        Parallel tasks for featurizing into ``store`` or parsing the CIFs of ``full``.

    Returns
    -------
    X : ndarray of Structure, shape (n,), or GraphStore
    y : ndarray of shape (n,)
    folds : list of (train, test) position arrays
    spec : TaskSpec

    Examples
    --------
    >>> X, y, folds, spec = load_task("matbench_perovskites", "data")  # doctest: +SKIP
    >>> len(X), len(folds), spec.unit  # doctest: +SKIP
    (18928, 5, 'eV/cell')
    >>> X, y, folds, spec = load_task("mp_gap", "data", full=True,
    ...                               store="mp_gap_graphs", n_jobs=8)  # doctest: +SKIP
    >>> len(X), len(folds[0][0])  # doctest: +SKIP
    (106113, 84890)
    """
    from sklearn.model_selection import KFold

    from ..datasets import matbench_folds

    spec = get_task(task)
    data_dir = Path(data_dir)
    if full and spec.full_file is None:
        raise ValueError(f"task {spec.name!r} has no full dataset besides {spec.file}")
    source = _data_file(data_dir, spec.full_file if full else spec.file)
    if store is not None:
        X, y, index = _from_store(spec, source, Path(store), n_jobs)
    elif full:
        X, y, index = _from_archive(spec, source, n_jobs)
    else:
        X, y, index = _from_json(spec, source)
    if spec.name == "matbench_mp_is_metal":
        y = (y == 0).astype(int)
        index = np.char.replace(np.asarray(index, dtype=str), "mb-mp-gap-", "mb-mp-is-metal-")
    if spec.folds.startswith("matbench:"):
        # the whole dataset must hold every fold id (a row that failed to featurize is left
        # out, and said so); a sample keeps the official folds restricted to its rows
        folds = matbench_folds(spec.folds.split(":", 1)[1], data_dir / FOLDS_FILE, index,
                               missing="drop")
    else:
        kfold = KFold(5, shuffle=True, random_state=18012019)
        folds = [(tr.astype(np.intp), te.astype(np.intp)) for tr, te in kfold.split(y)]
    return X, y, folds, spec


def _data_file(data_dir: Path, name: str) -> Path:
    """``data_dir / name``; for a tar archive that is not there, the same archive compressed
    otherwise (``.tar.xz`` for ``.tar.gz``, say) when the folder holds exactly one."""
    from .._sources import TAR_SUFFIXES

    path = data_dir / name
    suffix = next((s for s in TAR_SUFFIXES[1:] if name.endswith(s)), None)
    if path.exists() or suffix is None:
        return path
    stem = name[: -len(suffix)]
    others = [data_dir / f"{stem}{s}" for s in TAR_SUFFIXES if (data_dir / f"{stem}{s}").exists()]
    return others[0] if len(others) == 1 else path


def _from_json(spec: TaskSpec, source: Path) -> tuple[np.ndarray, np.ndarray, Any]:
    from ..datasets import load_matbench

    df = load_matbench(source, target=spec.target)
    return df["structure"].to_numpy(), df[spec.target].to_numpy(), df.index


def _target_column(spec: TaskSpec, names: list[str] | None, values: np.ndarray | None,
                   source: Path) -> np.ndarray:
    if values is None or names is None or spec.target not in names:
        raise ValueError(f"{str(source)!r} has no target column {spec.target!r} "
                         f"(targets found: {names})")
    return np.asarray(values).reshape(len(values), -1)[:, names.index(spec.target)]


def _from_archive(spec: TaskSpec, source: Path, n_jobs: int | None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    import warnings

    from .._sources import read_structures

    if not source.exists():
        raise FileNotFoundError(f"{str(source)!r} not found")
    parsed = read_structures(source, n_jobs=n_jobs)
    if parsed["failures"]:
        warnings.warn(f"{len(parsed['failures'])} CIFs of {source.name} could not be parsed and "
                      f"are left out (first: {parsed['failures'][0]})", stacklevel=3)
    y = _target_column(spec, parsed["target_names"], parsed["targets"], source)
    return parsed["structures"], y, parsed["ids"]


def _from_store(spec: TaskSpec, source: Path, path: Path, n_jobs: int | None,
                ) -> tuple[Any, np.ndarray, np.ndarray]:
    import warnings

    from .._sources import TAR_SUFFIXES
    from ..store import MANIFEST, GraphStore

    if not (path / MANIFEST).exists():
        if not source.exists():
            raise FileNotFoundError(f"{str(source)!r} not found")
        target = None if source.name.lower().endswith(TAR_SUFFIXES) else spec.target
        GraphStore.from_structures(source, path, target=target, n_jobs=n_jobs)
    store = GraphStore(path)
    if store.failures:
        warnings.warn(f"{len(store.failures)} rows of {str(path)!r} could not be featurized and "
                      f"are left out (first: {store.failures[0]})", stacklevel=3)
    y = _target_column(spec, store.target_names, store.targets, path)
    return store, y, store.ids

