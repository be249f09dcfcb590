"""The reference CGCNN folder format: ``<id>.cif`` files, ``id_prop.csv``, ``atom_init.json``.

The ``root_dir`` layout of the original implementation (txie-93/cgcnn), read by
:func:`read_cif_folder` (public as :func:`skcgcnn.datasets.read_cif_folder`): a header-less
``id_prop.csv`` of ``id,target[,target...]`` rows, parsed with errors that name the file and the
row, one CIF per id, read as the reference code reads it (cell as written; the file named on
failure, also by the ``skcgcnn predict`` command for single CIF files), and optionally the
folder's ``atom_init.json`` element table.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
from pymatgen.core import Structure

__all__ = ["read_cif_folder"]

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
    structures = np.empty(len(cif_paths), dtype=object)  # 1-D, not an array of sites
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
