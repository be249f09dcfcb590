"""Readers for crystal-structure datasets.

Three on-disk formats are supported:

* **Matbench / matminer DataFrame JSON** (``*.json`` or ``*.json.gz`` written by
  :func:`matminer.utils.io.store_dataframe_as_json`): :func:`load_matbench`.
* **The official Matbench v0.1 cross-validation folds** (``matbench_v0.1_validation.json(.gz)``):
  :func:`matbench_folds` turns them into ``(train, test)`` position arrays that scikit-learn's
  ``cv=`` argument accepts.
* **The reference CGCNN folder format** (one ``<id>.cif`` per crystal, a header-less
  ``id_prop.csv`` and optionally ``atom_init.json``): :func:`read_cif_folder`, whose reader of
  that format lives in :mod:`skcgcnn._cif_folder`; this module holds the two Matbench readers.

Nothing here downloads anything: every reader takes the path of a local file or folder and
fails with an error naming what is missing or malformed.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from matminer.utils.io import load_dataframe_from_json
from pymatgen.core import Structure

from ._cif_folder import ATOM_INIT_FILE as ATOM_INIT_FILE  # the folder format's file names,
from ._cif_folder import ID_PROP_FILE as ID_PROP_FILE  # importable from here as before
from ._cif_folder import PathLike, _preview, read_cif_folder

__all__ = ["load_matbench", "matbench_folds", "read_cif_folder"]


def _object_array(items: Sequence[Any]) -> np.ndarray:
    """Build a 1-D object array without numpy descending into the items.

    ``np.array(list_of_structures)`` would iterate over each Structure's sites and build a 2-D
    array, so the array is filled element by element.
    """
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


# --------------------------------------------------------------------------------------------
# Matbench / matminer DataFrame JSON
# --------------------------------------------------------------------------------------------


def load_matbench(path: PathLike, target: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Load a Matbench-style (matminer DataFrame JSON) dataset from a local file.

    Parameters
    ----------
    path : str or path-like
        A ``.json``, ``.json.gz`` or ``.json.bz2`` file written by
        :func:`matminer.utils.io.store_dataframe_as_json`, such as
        ``matbench_perovskites.json.gz``. Nothing is downloaded: the file must already exist.
    target : str or sequence of str, optional
        Column name(s) that must be present, e.g. ``"e_form"``. Only checked; every column of
        the file is returned.

    Returns
    -------
    pandas.DataFrame
        The data with its index as stored (Matbench names such as ``mb-perovskites-00001``),
        a ``structure`` column of :class:`pymatgen.core.Structure` objects and the other
        columns of the file (the target(s) among them).

    Raises
    ------
    FileNotFoundError
        If ``path`` is not an existing file.
    ValueError
        If the file is not a DataFrame JSON, has no ``structure`` column, holds a
        ``structure`` entry that is not a Structure, or lacks a requested ``target`` column.
        The message lists the columns found.

    See Also
    --------
    matbench_folds : the official Matbench cross-validation folds for such a DataFrame.
    read_cif_folder : read the reference CGCNN folder format (CIFs + ``id_prop.csv``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> from matminer.utils.io import store_dataframe_as_json
    >>> from pymatgen.core import Lattice, Structure
    >>> nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> df = pd.DataFrame({"structure": [nacl, nacl], "e_form": [-2.1, -2.0]},
    ...                   index=["mb-demo-1", "mb-demo-2"])
    >>> tmp = Path(tempfile.mkdtemp())
    >>> store_dataframe_as_json(df, str(tmp / "demo.json.gz"), compression="gz", pbar=False)
    >>> data = load_matbench(tmp / "demo.json.gz", target="e_form")
    >>> data.index.tolist(), data.columns.tolist()
    (['mb-demo-1', 'mb-demo-2'], ['structure', 'e_form'])
    >>> data["structure"].iloc[0].composition.reduced_formula
    'NaCl'
    """
    path = Path(path)
    if not path.is_file():
        hint = ""
        for alt in (Path(f"{path}.gz"), path.with_suffix("") if path.suffix == ".gz" else None):
            if alt is not None and alt.is_file():
                hint = f" A file {str(alt)!r} exists; did you mean it?"
                break
        raise FileNotFoundError(
            f"Dataset file {str(path)!r} not found. skcgcnn does not download data at run time: "
            f"pass the path of a local matminer DataFrame JSON file (e.g. "
            f"'matbench_perovskites.json.gz').{hint}"
        )
    try:
        df = load_dataframe_from_json(str(path), pbar=False)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Could not read {str(path)!r} as DataFrame JSON: {exc}") from exc
    if not isinstance(df, pd.DataFrame):  # bad file content, not a bad argument type
        raise ValueError(
            f"{str(path)!r} is JSON but not a matminer DataFrame (expected the keys "
            f"'index', 'columns' and 'data' as written by store_dataframe_as_json)."
        )

    columns = [str(c) for c in df.columns]
    if "structure" not in df.columns:
        raise ValueError(f"{str(path)!r} has no 'structure' column; columns found: {columns}.")
    bad = [idx for idx, s in df["structure"].items() if not isinstance(s, Structure)]
    if bad:
        raise ValueError(
            f"{str(path)!r}: {len(bad)} 'structure' entries are not pymatgen Structures, "
            f"at index {_preview(bad)}."
        )
    targets = [target] if isinstance(target, str) else list(target or [])
    missing = [t for t in targets if t not in df.columns]
    if missing:
        raise ValueError(
            f"{str(path)!r} has no target column {_preview(missing)}; columns found: {columns}."
        )
    return df


# --------------------------------------------------------------------------------------------
# Official Matbench folds
# --------------------------------------------------------------------------------------------


def _read_json_maybe_gzip(path: Path) -> Any:
    """Read a JSON file, gzip-compressed or not (detected from the content, not the name)."""
    with open(path, "rb") as fh:
        compressed = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if compressed else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@overload
def matbench_folds(
    task: str,
    validation_json: PathLike,
    index: None = None,
    *,
    missing: Literal["raise", "drop"] = "raise",
) -> list[tuple[np.ndarray, np.ndarray]]: ...
@overload
def matbench_folds(
    task: str,
    validation_json: PathLike,
    index: pd.Index | Sequence[str] | np.ndarray,
    *,
    missing: Literal["raise", "drop"] = "raise",
) -> list[tuple[np.ndarray, np.ndarray]]: ...
def matbench_folds(
    task: str,
    validation_json: PathLike,
    index: pd.Index | Sequence[str] | np.ndarray | None = None,
    *,
    missing: Literal["raise", "drop"] = "raise",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return the official Matbench v0.1 cross-validation folds of a task.

    Parameters
    ----------
    task : str
        Matbench task name, e.g. ``"matbench_perovskites"`` (the ``"matbench_"`` prefix may be
        left out).
    validation_json : str or path-like
        The official folds file ``matbench_v0.1_validation.json`` (gzip-compressed or not),
        shaped ``{"metadata": ..., "splits": {task: {"fold_0": {"train": [...],
        "test": [...]}, ...}}}``. Nothing is downloaded.
    index : pandas.Index or sequence of str, optional
        The ids of the rows of your data, usually ``df.index`` of the DataFrame returned by
        :func:`load_matbench`. The ids must be unique. If given, the folds are returned as
        integer positions into ``index``; if None, as the fold ids themselves.
    missing : {"raise", "drop"}, default="raise"
        What to do with fold ids that are not in ``index``. ``"raise"`` raises a ValueError;
        ``"drop"`` leaves them out, which gives the official folds restricted to a subset of the
        data (e.g. a random sample of a Matbench dataset that kept the Matbench index).

    Returns
    -------
    list of (ndarray, ndarray)
        One ``(train, test)`` pair per fold, in fold order (``fold_0``, ``fold_1``, ...), each
        array in the order of the file. With ``index`` they are ``np.intp`` positions, so the
        list can be passed as ``cv=`` to :func:`sklearn.model_selection.cross_validate`,
        :class:`~sklearn.model_selection.GridSearchCV` and the like; without ``index`` they are
        object arrays of id strings (use ``df.loc[ids]``).

    Raises
    ------
    FileNotFoundError
        If ``validation_json`` does not exist.
    ValueError
        If the file is not a Matbench folds file, ``task`` is not in it (the known tasks are
        listed), ``index`` has duplicates, or (with ``missing="raise"``) fold ids are not in
        ``index`` (their count and the first few are given).

    See Also
    --------
    load_matbench : load the dataset the folds refer to.

    Notes
    -----
    For the regression tasks the official folds equal
    ``KFold(5, shuffle=True, random_state=18012019)`` over the dataset in row order; for the
    classification tasks they come from the stratified version. Reading them from the file
    avoids relying on that and on the row order of your copy of the data.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> import pandas as pd
    >>> splits = {"matbench_demo": {
    ...     "fold_0": {"train": ["mb-3", "mb-4"], "test": ["mb-1", "mb-2"]},
    ...     "fold_1": {"train": ["mb-1", "mb-2"], "test": ["mb-3", "mb-4"]}}}
    >>> file = Path(tempfile.mkdtemp()) / "matbench_v0.1_validation.json"
    >>> _ = file.write_text(json.dumps({"metadata": {}, "splits": splits}))
    >>> index = pd.Index(["mb-1", "mb-2", "mb-3", "mb-4"])
    >>> folds = matbench_folds("matbench_demo", file, index)
    >>> [(train.tolist(), test.tolist()) for train, test in folds]
    [([2, 3], [0, 1]), ([0, 1], [2, 3])]
    >>> matbench_folds("demo", file)[0][1].tolist()    # ids when no index is given
    ['mb-1', 'mb-2']
    >>> folds = matbench_folds("matbench_demo", file, index[:3], missing="drop")
    >>> [(train.tolist(), test.tolist()) for train, test in folds]
    [([2], [0, 1]), ([0, 1], [2])]

    With a real Matbench dataset the folds plug straight into scikit-learn:

    >>> df = load_matbench("matbench_perovskites.json.gz", target="e_form")  # doctest: +SKIP
    >>> cv = matbench_folds("matbench_perovskites", "matbench_v0.1_validation.json.gz",
    ...                     df.index)  # doctest: +SKIP
    >>> cross_validate(model, df["structure"], df["e_form"], cv=cv)  # doctest: +SKIP
    """
    if missing not in ("raise", "drop"):
        raise ValueError(f"missing must be 'raise' or 'drop', got {missing!r}.")
    path = Path(validation_json)
    if not path.is_file():
        raise FileNotFoundError(
            f"Matbench folds file {str(path)!r} not found (expected the official "
            f"'matbench_v0.1_validation.json' or '.json.gz'). skcgcnn does not download data "
            f"at run time."
        )
    try:
        content = _read_json_maybe_gzip(path)
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"Could not read {str(path)!r} as JSON: {exc}") from exc
    if not isinstance(content, dict) or not isinstance(content.get("splits"), dict):
        raise ValueError(  # bad file content, not a bad argument type
            f"{str(path)!r} is not a Matbench folds file: expected a JSON object with a "
            f"'splits' mapping of task -> fold -> {{'train', 'test'}}."
        )
    splits = content["splits"]
    known = sorted(splits)
    name = task if task in splits else f"matbench_{task}"
    if name not in splits:
        raise ValueError(f"Unknown Matbench task {task!r} in {str(path)!r}; known tasks: {known}.")
    fold_names = sorted(splits[name], key=lambda k: (len(k), k))  # fold_2 before fold_10
    try:
        raw = [(splits[name][k]["train"], splits[name][k]["test"]) for k in fold_names]
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{str(path)!r}: task {name!r} has a fold without 'train'/'test' lists."
        ) from exc

    if index is None:
        return [(_object_array(train), _object_array(test)) for train, test in raw]

    if isinstance(index, (pd.DataFrame, pd.Series)):
        raise TypeError(
            "index must be a pandas Index or a sequence of ids; to use the index of a "
            "DataFrame or Series pass `df.index`."
        )
    index = pd.Index(index)
    if not index.is_unique:
        dup = index[index.duplicated()].unique().tolist()
        raise ValueError(f"index has {len(dup)} duplicated ids: {_preview(dup)}.")

    folds: list[tuple[np.ndarray, np.ndarray]] = []
    for fold_name, (train, test) in zip(fold_names, raw, strict=True):
        pair = []
        for part, ids in (("train", train), ("test", test)):
            positions = index.get_indexer(ids)
            absent = positions < 0
            if absent.any():
                if missing == "raise":
                    lost = [ids[i] for i in np.flatnonzero(absent)]
                    raise ValueError(
                        f"{len(lost)} of the {len(ids)} {part} ids of {name} {fold_name} are "
                        f"not in index (of {len(index)} ids, e.g. {_preview(index[:3])}): "
                        f"{_preview(lost)}. Pass the index of the full Matbench dataset, or "
                        f"missing='drop' to restrict the folds to the rows you have."
                    )
                positions = positions[~absent]
            pair.append(positions.astype(np.intp, copy=False))
        folds.append((pair[0], pair[1]))
    return folds
