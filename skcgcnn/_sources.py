"""Inputs of parallel featurization, cut into slices that each worker task reads by itself.

A :class:`Slice` is small and cheap to pickle (a path plus a range, or a few arrays): the worker
opens the input, reads its own members / files / rows, parses the Structures, builds their graphs
and sends back (or writes) only the compact graph columns. Structures never travel between
processes. Supported inputs (see :func:`plan_slices`):

* a tar archive of CIFs (``.tar``, ``.tar.gz``/``.tgz``, ``.tar.xz``/``.txz``,
  ``.tar.bz2``/``.tbz2``) with an optional targets CSV in it;
* a folder of CIFs with the reference ``id_prop.csv`` (or just the ``*.cif`` files);
* a matminer DataFrame JSON (``.json``/``.json.gz``) with a ``structure`` column;
* Structures in memory (a list, a pandas Series, or a DataFrame with a ``structure`` column).
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import lzma
import os
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TAR_SUFFIXES", "Slice", "plan_slices", "read_structures"]

PathLike = str | os.PathLike[str]


class Slice:
    """Rows ``ids`` of one input, read by one worker task; ``entries()`` yields
    ``(id, parse)`` where ``parse()`` returns the Structure (or raises)."""

    def __init__(self, ids: Sequence[str], targets: np.ndarray | None) -> None:
        self.ids = list(ids)
        self.targets = targets

    def entries(self) -> Iterator[tuple[str, Any]]:  # pragma: no cover - abstract
        raise NotImplementedError


def _cif_parser(text: str) -> Any:
    def parse() -> Any:
        from pymatgen.core import Structure

        return Structure.from_str(text, fmt="cif")

    return parse


class _TarSlice(Slice):
    """Members of a tar archive, read from one contiguous byte range of the (decompressed)
    stream: a gzip stream is decompressed up to the range, nothing is extracted to disk."""

    def __init__(self, path: str, spans: np.ndarray, ids: Sequence[str],
                 targets: np.ndarray | None) -> None:
        super().__init__(ids, targets)
        self.path = path
        self.spans = spans  # (n, 2) int64: data offset and size of each member

    def entries(self) -> Iterator[tuple[str, Any]]:
        start = int(self.spans[0, 0])
        stop = int((self.spans[:, 0] + self.spans[:, 1]).max())
        with _open_binary(self.path) as fh:
            fh.seek(start)
            data = fh.read(stop - start)
        if len(data) < stop - start:  # a plain tar cut inside a member: no error from tarfile
            raise ValueError(f"{self.path!r} is truncated: members up to byte {stop} were "
                             f"listed, the archive ends at byte {start + len(data)}")
        for id_, (offset, size) in zip(self.ids, self.spans):
            text = data[offset - start : offset - start + size].decode("utf-8", "replace")
            yield id_, _cif_parser(text)


class _FileSlice(Slice):
    """CIF files of a folder."""

    def __init__(self, files: Sequence[str], ids: Sequence[str],
                 targets: np.ndarray | None) -> None:
        super().__init__(ids, targets)
        self.files = list(files)

    def entries(self) -> Iterator[tuple[str, Any]]:
        for id_, file in zip(self.ids, self.files):
            def parse(file: str = file) -> Any:
                return _cif_parser(Path(file).read_text(encoding="utf-8", errors="replace"))()

            yield id_, parse


class _DictSlice(Slice):
    """Rows of a matminer JSON: the structures as their JSON dicts (decoded in the worker)."""

    def __init__(self, dicts: Sequence[Any], ids: Sequence[str],
                 targets: np.ndarray | None) -> None:
        super().__init__(ids, targets)
        self.dicts = list(dicts)

    def entries(self) -> Iterator[tuple[str, Any]]:
        from pymatgen.core import Structure

        for id_, d in zip(self.ids, self.dicts):
            def parse(d: Any = d) -> Any:
                if not isinstance(d, dict):
                    raise TypeError(f"expected a Structure dict, got {type(d).__name__}")
                return Structure.from_dict(d)

            yield id_, parse


class _InputsSlice(Slice):
    """Structures of the caller's memory, as the arrays graphs are built from (extracted in the
    parent: they pickle ~40x faster than Structures), or the entry itself when that failed."""

    def __init__(self, items: Sequence[Any], ids: Sequence[str],
                 targets: np.ndarray | None) -> None:
        super().__init__(ids, targets)
        self.items = list(items)

    def entries(self) -> Iterator[tuple[str, Any]]:
        for id_, item in zip(self.ids, self.items):
            yield id_, (lambda item=item: item)


#: Magic bytes of the compressed streams a tar archive may come in, and how to open each.
_COMPRESSED = ((b"\x1f\x8b", gzip.open), (b"\xfd7zXZ\x00", lzma.open), (b"BZh", bz2.open))
#: File name endings of the tar archives :func:`plan_slices` reads.
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2")


def _open_binary(path: str) -> Any:
    """The decompressed byte stream of ``path`` (gzip, xz or bzip2 by magic bytes, else raw)."""
    with open(path, "rb") as fh:
        head = fh.read(6)
    for magic, opener in _COMPRESSED:
        if head.startswith(magic):
            return opener(path, "rb")
    return open(path, "rb")


def _bounds(n: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def _targets_array(rows: Sequence[Sequence[float]] | None) -> np.ndarray | None:
    if rows is None:
        return None
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)


def _read_table(text: str, headerless: bool) -> tuple[list[str], list[str], list[list[str]]]:
    """Rows of a CSV: (header, ids, cells)."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    header = [] if headerless else rows.pop(0)
    return header, [r[0].strip() for r in rows], rows


def _tar_plan(path: Path, shard_size: int) -> tuple[list[Slice], list[str] | None]:
    members: dict[str, tuple[int, int]] = {}
    tables: dict[str, str] = {}
    order: list[str] = []
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                if m.name.endswith(".cif"):
                    members[m.name] = (m.offset_data, m.size)
                    order.append(m.name)
                elif m.name.endswith(".csv"):
                    tables[m.name] = tar.extractfile(m).read().decode("utf-8")
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"{str(path)!r} is not a readable tar archive (truncated or damaged?): "
                         f"{type(exc).__name__}: {exc}") from exc
    if not order:
        raise ValueError(f"{str(path)!r} holds no .cif member")
    names, ids, targets, target_names = _tar_targets(order, tables, path)
    spans = np.array([members[n] for n in names], dtype=np.int64).reshape(-1, 2)
    slices: list[Slice] = [
        _TarSlice(str(path), spans[a:b], ids[a:b], None if targets is None else targets[a:b])
        for a, b in _bounds(len(names), shard_size)
    ]
    return slices, target_names


def _tar_targets(order: list[str], tables: dict[str, str], path: Path) -> tuple[Any, ...]:
    """Member names in store order, ids, targets and target names from the archive's CSV:
    an ``id_prop.csv`` (reference format: ``id,target...``, no header, ``<id>.cif`` next to
    it) or one CSV with a header whose column ``cif_file`` names the member (relative to the
    CSV's folder); without a CSV the ids are the file names and there are no targets."""
    if not tables:
        return order, [Path(n).stem for n in order], None, None
    if len(tables) > 1:
        raise ValueError(f"{str(path)!r} holds several CSV files ({sorted(tables)}); expected one")
    ((csv_name, text),) = tables.items()
    folder = csv_name.rsplit("/", 1)[0] + "/" if "/" in csv_name else ""
    headerless = csv_name.endswith("id_prop.csv")
    header, ids, rows = _read_table(text, headerless)
    if headerless:
        names = [f"{folder}{i}.cif" for i in ids]
        values, target_names = [r[1:] for r in rows], None
    else:
        if "cif_file" not in header:
            raise ValueError(f"{csv_name} in {str(path)!r} has no 'cif_file' column: {header}")
        k = header.index("cif_file")
        names = [folder + r[k] for r in rows]
        keep = [j for j in range(1, len(header)) if j != k]
        values, target_names = [[r[j] for j in keep] for r in rows], [header[j] for j in keep]
    known = set(order)
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"{str(path)!r}: {len(missing)} CIFs named in {csv_name} are not in the "
                         f"archive, e.g. {missing[:3]}")
    rank = {n: i for i, n in enumerate(order)}
    by_position = sorted(range(len(names)), key=lambda i: rank[names[i]])  # stream order
    targets = _targets_array([[float(v) for v in values[i]] for i in by_position])
    if targets is not None and targets.shape[1] == 0:
        targets, target_names = None, None
    return [names[i] for i in by_position], [ids[i] for i in by_position], targets, target_names


def _folder_plan(path: Path, shard_size: int) -> tuple[list[Slice], list[str] | None]:
    id_prop = path / "id_prop.csv"
    if id_prop.is_file():
        _, ids, rows = _read_table(id_prop.read_text(encoding="utf-8"), headerless=True)
        targets = _targets_array([[float(v) for v in r[1:]] for r in rows])
        files = [str(path / f"{i}.cif") for i in ids]
    else:
        found = sorted(path.glob("*.cif"))
        if not found:
            raise ValueError(f"{str(path)!r} holds neither id_prop.csv nor *.cif files")
        ids, files, targets = [f.stem for f in found], [str(f) for f in found], None
    return [
        _FileSlice(files[a:b], ids[a:b], None if targets is None else targets[a:b])
        for a, b in _bounds(len(ids), shard_size)
    ], None


def _json_plan(path: Path, target: Any, shard_size: int) -> tuple[list[Slice], list[str] | None]:
    with _open_binary(str(path)) as fh:
        doc = json.load(fh)  # plain dicts: Structures are decoded in the workers
    if not isinstance(doc, dict) or not {"index", "columns", "data"} <= set(doc):
        raise ValueError(f"{str(path)!r} is not a matminer DataFrame JSON (index/columns/data)")
    columns = list(doc["columns"])
    if "structure" not in columns:
        raise ValueError(f"{str(path)!r} has no 'structure' column; columns: {columns}")
    k = columns.index("structure")
    ids = [str(i) for i in doc["index"]]
    dicts = [row[k] for row in doc["data"]]
    names = _target_names(target, [c for c in columns if c != "structure"])
    targets = None
    if names:
        js = [columns.index(n) for n in names]
        targets = _targets_array([[row[j] for j in js] for row in doc["data"]])
    return [
        _DictSlice(dicts[a:b], ids[a:b], None if targets is None else targets[a:b])
        for a, b in _bounds(len(ids), shard_size)
    ], names


def _target_names(target: Any, available: list[str]) -> list[str] | None:
    if target is None:
        return None
    names = [target] if isinstance(target, str) else list(target)
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"no target column {missing}; columns: {available}")
    return names


def _memory_plan(data: Any, target: Any, ids: Any, shard_size: int,
                 radius: float) -> tuple[list[Slice], list[str] | None]:
    import pandas as pd

    from .featurizer import _as_structure
    from .graph import _GraphInputs

    names = None
    targets = None
    if isinstance(data, pd.DataFrame):
        if "structure" not in data.columns:
            raise ValueError(f"the DataFrame has no 'structure' column: {list(data.columns)}")
        names = _target_names(target, [str(c) for c in data.columns if c != "structure"])
        if names:
            targets = data[names].to_numpy(dtype=np.float64)
        data = data["structure"]
    elif target is not None:
        targets = np.asarray(target, dtype=np.float64).reshape(len(data), -1)
    index = data.index if isinstance(data, pd.Series) and ids is None else ids
    entries = list(data.to_numpy() if isinstance(data, pd.Series) else data)
    ids = [str(i) for i in (range(len(entries)) if index is None else index)]
    items: list[Any] = []
    for position, entry in enumerate(entries):
        try:
            items.append(_GraphInputs(_as_structure(entry, position, radius)))
        except Exception:
            items.append(entry)  # the worker raises the same error, reported with its id
    return [
        _InputsSlice(items[a:b], ids[a:b], None if targets is None else targets[a:b])
        for a, b in _bounds(len(ids), shard_size)
    ], names


def plan_slices(source: Any, shard_size: int, target: Any = None, ids: Any = None,
                radius: float = 8.0) -> tuple[list[Slice], list[str] | None]:
    """Cut ``source`` into slices of at most ``shard_size`` rows, in input order.

    Returns the slices and the target names (None when unnamed or absent). The cut depends on
    ``shard_size`` only, never on the number of workers, so any ``n_jobs`` writes the same shards.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return _folder_plan(path, shard_size)
        if not path.is_file():
            raise FileNotFoundError(f"input {str(path)!r} not found")
        name = path.name.lower()
        if name.endswith(TAR_SUFFIXES):
            return _tar_plan(path, shard_size)
        if name.endswith((".json", ".json.gz")):
            return _json_plan(path, target, shard_size)
        raise ValueError(f"cannot read {str(path)!r}: expected a CIF folder, a tar archive of "
                         "CIFs (.tar, .tar.gz, .tar.xz, .tar.bz2) or a matminer .json(.gz)")
    return _memory_plan(source, target, ids, shard_size, radius)


def _parse_slice(part: Slice) -> tuple[list[str], list[Any], list[int], list[list[str]]]:
    """Parse one slice: (ids, Structures, positions kept within the slice, failures)."""
    ids, structures, kept, failures = [], [], [], []
    for position, (id_, parse) in enumerate(part.entries()):
        try:
            structures.append(parse())
        except Exception as exc:  # reported with the row's id, like featurization failures
            failures.append([id_, f"{type(exc).__name__}: {exc}"])
            continue
        ids.append(id_)
        kept.append(position)
    return ids, structures, kept, failures


def read_structures(source: PathLike, target: Any = None, n_jobs: int | None = None,
                    shard_size: int = 2048) -> dict[str, Any]:
    """Parse every Structure of a file input (CIF tar / folder, matminer JSON), in parallel.

    For models that need the Structures themselves (a composition + Coulomb-matrix baseline),
    not graphs. Each joblib task parses its own slice; the Structures come back to the caller
    (unlike :func:`~skcgcnn.store.write_store`, which sends back only graph columns).

    Returns a dict with ``ids`` (ndarray of str), ``structures`` (1-D object array),
    ``targets`` (ndarray (n, n_targets) or None), ``target_names`` and ``failures``
    (``[id, error]`` pairs of rows that could not be parsed, left out of the rest).
    """
    from joblib import Parallel, delayed

    slices, names = plan_slices(source, shard_size, target)
    results = Parallel(n_jobs=n_jobs)(delayed(_parse_slice)(part) for part in slices)
    structures = np.empty(sum(len(r[1]) for r in results), dtype=object)
    structures[:] = [s for r in results for s in r[1]]
    targets = None
    if slices and slices[0].targets is not None:
        targets = np.concatenate([part.targets[r[2]] for part, r in zip(slices, results)])
    return {
        "ids": np.array([i for r in results for i in r[0]], dtype=str),
        "structures": structures,
        "targets": targets,
        "target_names": names,
        "failures": [f for r in results for f in r[3]],
    }
