"""Readers for crystal-structure datasets.

Three on-disk formats are supported:

* **Matbench / matminer DataFrame JSON** (``*.json`` or ``*.json.gz`` written by
  :func:`matminer.utils.io.store_dataframe_as_json`): :func:`load_matbench`.
* **The official Matbench v0.1 cross-validation folds** (``matbench_v0.1_validation.json(.gz)``):
  :func:`matbench_folds` turns them into ``(train, test)`` position arrays that scikit-learn's
  ``cv=`` argument accepts.
* **The reference CGCNN folder format** (one ``<id>.cif`` per crystal, a header-less
  ``id_prop.csv`` and optionally ``atom_init.json``): :func:`read_cif_folder`.

Nothing here downloads anything: every reader takes the path of a local file or folder and
fails with an error naming what is missing or malformed.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from matminer.utils.io import load_dataframe_from_json
from pymatgen.core import Structure

__all__ = ["load_matbench", "matbench_folds", "read_cif_folder"]

PathLike = str | os.PathLike[str]

#: Name of the targets file in the reference CGCNN folder format.
ID_PROP_FILE = "id_prop.csv"
#: Name of the optional element-feature table in the reference CGCNN folder format.
ATOM_INIT_FILE = "atom_init.json"

_N_SHOWN = 5  # how many offending entries an error message lists


def _preview(items: Sequence[Any], n: int = _N_SHOWN) -> str:
    """Return ``'a', 'b', ... (k more)`` for an error message."""
    shown = ", ".join(repr(x) for x in list(items)[:n])
    more = len(items) - n
    return shown + (f", ... ({more} more)" if more > 0 else "")


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


# --------------------------------------------------------------------------------------------
# Reference CGCNN folder: <id>.cif files + id_prop.csv (+ atom_init.json)
# --------------------------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_id_prop(csv_path: Path) -> tuple[list[str], np.ndarray]:
    """Parse a header-less ``id,target[,target...]`` file into ids and a 2-D float array."""
    ids: list[str] = []
    rows: list[list[float]] = []
    n_cols: int | None = None
    where = str(csv_path)
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:  # -sig: tolerate a BOM
        reader = csv.reader(fh)
        for raw_cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in raw_cells]
            if not any(cells):
                continue  # blank line
            if len(cells) < 2:
                raise ValueError(
                    f"{where}, row {line}: expected 'id,target' (at least 2 columns), got "
                    f"{len(cells)} column: {cells!r}. The file needs a target column even for "
                    f"prediction (use a dummy value such as 0)."
                )
            if not cells[0]:
                raise ValueError(f"{where}, row {line}: empty id.")
            if not all(_is_number(c) for c in cells[1:]):
                if not ids:
                    raise ValueError(
                        f"{where}, row {line}: {cells!r} looks like a header (non-numeric target "
                        f"in the first row). id_prop.csv must have no header: remove that row."
                    )
                bad = next(c for c in cells[1:] if not _is_number(c))
                raise ValueError(
                    f"{where}, row {line} (id {cells[0]!r}): non-numeric target {bad!r}."
                )
            values = [float(c) for c in cells[1:]]
            if not all(math.isfinite(v) for v in values):
                raise ValueError(
                    f"{where}, row {line} (id {cells[0]!r}): non-finite target in {cells[1:]!r}."
                )
            if n_cols is None:
                n_cols = len(values)
            elif len(values) != n_cols:
                raise ValueError(
                    f"{where}, row {line} (id {cells[0]!r}): {len(values)} target columns, but "
                    f"the first row has {n_cols}."
                )
            ids.append(cells[0])
            rows.append(values)
    if not ids:
        raise ValueError(f"{where} has no rows.")
    duplicated = [i for i, count in Counter(ids).items() if count > 1]
    if duplicated:
        raise ValueError(f"{where}: {len(duplicated)} duplicated ids: {_preview(duplicated)}.")
    return ids, np.asarray(rows, dtype=np.float64)


def _read_cif(cif_path: Path) -> Structure:
    """Read one CIF as the reference code does (cell as written); name the file on failure."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            structure = Structure.from_file(cif_path)
        except Exception as exc:  # pymatgen raises many types for malformed CIFs
            reason = f"{type(exc).__name__}: {exc}"
            notes = [str(w.message) for w in caught]
            if notes:
                reason += f" (parser warnings: {notes[-1]})"
            raise ValueError(f"Could not read CIF {str(cif_path)!r}: {reason}") from exc
    for w in caught:  # pass the parser's warnings on, with the file they are about
        warnings.warn(f"{cif_path.name}: {w.message}", w.category, stacklevel=3)
    if len(structure) == 0:
        raise ValueError(f"Could not read CIF {str(cif_path)!r}: the structure has no sites.")
    return structure


@overload
def read_cif_folder(
    path: PathLike, atom_init: Literal[False] = False, as_frame: Literal[False] = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
@overload
def read_cif_folder(
    path: PathLike, atom_init: Literal[True], as_frame: Literal[False] = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Path | None]: ...
@overload
def read_cif_folder(
    path: PathLike, atom_init: Literal[False] = False, *, as_frame: Literal[True]
) -> pd.DataFrame: ...
@overload
def read_cif_folder(
    path: PathLike, atom_init: Literal[True], as_frame: Literal[True]
) -> tuple[pd.DataFrame, Path | None]: ...
def read_cif_folder(
    path: PathLike, atom_init: bool = False, as_frame: bool = False
) -> (
    tuple[np.ndarray, np.ndarray, np.ndarray]
    | tuple[np.ndarray, np.ndarray, np.ndarray, Path | None]
    | pd.DataFrame
    | tuple[pd.DataFrame, Path | None]
):
    r"""Read a dataset in the reference CGCNN folder format.

    The folder holds a header-less ``id_prop.csv`` with rows ``id,target`` (or
    ``id,target_0,target_1,...`` for several targets), one ``<id>.cif`` per row and, optionally,
    the ``atom_init.json`` element-feature table. This is the ``root_dir`` layout of the
    original implementation (txie-93/cgcnn). Rows keep the order of ``id_prop.csv`` (the
    reference code shuffles them; shuffle in your CV splitter instead). Each CIF is read with
    :meth:`pymatgen.core.Structure.from_file`, so cells are kept as written, as in the
    reference code.

    Parameters
    ----------
    path : str or path-like
        The folder.
    atom_init : bool, default=False
        If True, also return the path of the folder's ``atom_init.json`` (None if it has none),
        as the last element of the returned tuple. Pass it to the estimators or the checkpoint
        loader to use the original element encoding.
    as_frame : bool, default=False
        If True, return a DataFrame instead of separate arrays.

    Returns
    -------
    ids : ndarray of str, shape (n_samples,)
        The ids from ``id_prop.csv`` as strings (``"1000041"`` stays a string; leading zeros
        are kept). Only when ``as_frame=False``.
    structures : ndarray of Structure, shape (n_samples,)
        A 1-D object array of :class:`pymatgen.core.Structure`. Only when ``as_frame=False``.
    y : ndarray of float64, shape (n_samples,) or (n_samples, n_targets)
        The targets; 1-D when the file has one target column. Only when ``as_frame=False``.
    frame : pandas.DataFrame
        Only when ``as_frame=True``: index ``id`` (the ids), a ``structure`` column and a
        ``target`` column, or ``target_0``, ``target_1``, ... for several targets.
    atom_init_path : pathlib.Path or None
        Only when ``atom_init=True``: the path of ``atom_init.json``, or None if the folder has
        none.

    So the return value is ``(ids, structures, y)``, ``(ids, structures, y, atom_init_path)``,
    ``frame`` or ``(frame, atom_init_path)``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    NotADirectoryError
        If ``path`` is not a folder.
    ValueError
        If the folder is not in the reference format. The message names the file and row:
        no ``id_prop.csv``; a header row; a row with fewer than 2 columns, an empty id, a
        non-numeric or non-finite target, or a different number of target columns than the
        first row; duplicated ids (named); CIF files that do not exist (named); a CIF that
        cannot be parsed (named, with the parser's reason).

    See Also
    --------
    load_matbench : read a Matbench / matminer DataFrame JSON file.

    Examples
    --------
    Build a tiny folder in the reference format and read it back:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pymatgen.core import Lattice, Structure
    >>> folder = Path(tempfile.mkdtemp())
    >>> nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> si = Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]])
    >>> _ = nacl.to(filename=str(folder / "0001.cif"))
    >>> _ = si.to(filename=str(folder / "0002.cif"))
    >>> _ = (folder / "id_prop.csv").write_text("0001,-2.1\n0002,0.0\n")
    >>> ids, structures, y = read_cif_folder(folder)
    >>> ids.tolist(), [s.composition.reduced_formula for s in structures], y.tolist()
    (['0001', '0002'], ['NaCl', 'Si'], [-2.1, 0.0])

    As a DataFrame, with the (absent) ``atom_init.json``:

    >>> frame, atom_init_path = read_cif_folder(folder, atom_init=True, as_frame=True)
    >>> frame.index.name, frame.columns.tolist(), atom_init_path
    ('id', ['structure', 'target'], None)

    Errors name the file and the row:

    >>> _ = (folder / "id_prop.csv").write_text("id,band_gap\n0001,-2.1\n")
    >>> read_cif_folder(folder)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: .../id_prop.csv, row 1: ['id', 'band_gap'] looks like a header ...
    """
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"CIF folder {str(folder)!r} does not exist.")
    if not folder.is_dir():
        raise NotADirectoryError(
            f"{str(folder)!r} is not a folder; expected a folder holding {ID_PROP_FILE} and "
            f"one <id>.cif per row."
        )
    csv_path = folder / ID_PROP_FILE
    if not csv_path.is_file():
        raise ValueError(
            f"No {ID_PROP_FILE} in {str(folder)!r}: the reference CGCNN format needs a "
            f"header-less {ID_PROP_FILE} with rows 'id,target' next to the <id>.cif files."
        )
    ids, targets = _read_id_prop(csv_path)

    cif_paths = [folder / f"{i}.cif" for i in ids]
    absent = [p.name for p in cif_paths if not p.is_file()]
    if absent:
        raise ValueError(
            f"{len(absent)} CIF files listed in {str(csv_path)!r} are missing from "
            f"{str(folder)!r}: {_preview(absent)}."
        )
    structures = np.empty(len(cif_paths), dtype=object)  # 1-D, see _object_array
    for k, cif_path in enumerate(cif_paths):
        structures[k] = _read_cif(cif_path)
    y = targets[:, 0] if targets.shape[1] == 1 else targets
    atom_init_path = folder / ATOM_INIT_FILE if (folder / ATOM_INIT_FILE).is_file() else None

    if not as_frame:
        id_array = np.asarray(ids, dtype=object)
        return (id_array, structures, y, atom_init_path) if atom_init else (id_array, structures, y)

    if targets.shape[1] == 1:
        target_columns = {"target": targets[:, 0]}
    else:
        target_columns = {f"target_{k}": targets[:, k] for k in range(targets.shape[1])}
    frame = pd.DataFrame(
        {"structure": structures, **target_columns}, index=pd.Index(ids, name="id", dtype=object)
    )
    return (frame, atom_init_path) if atom_init else frame
