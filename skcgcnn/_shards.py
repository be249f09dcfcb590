"""Writing graph shards: the worker task of parallel featurization and the shard file format.

One task reads its own :class:`~skcgcnn._sources.Slice` of the input, builds the graphs and either
writes one shard (a folder of ``.npy`` files plus ``shard.json``) or returns the same columns.
Warnings raised while reading and featurizing are recorded in the task and returned (counted by
category, with the first message and id), so the parent re-emits them whatever ``n_jobs`` is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ._sources import Slice
from ._warnings import recording

SHARD_FORMAT = "skcgcnn-graphshard"
STORE_FORMAT = "skcgcnn-graphstore"
FORMAT_VERSION = 1
SHARD_INFO = "shard.json"
#: Column files of a shard, in checksum order (absent optional files are skipped).
COLUMNS = ("ids", "offsets", "species", "occupancies", "ordered", "neighbor_indices",
           "distances", "targets")


class StoreFormatError(ValueError):
    """A graph store or shard is missing, truncated, corrupted or not a graph store.

    Examples
    --------
    >>> import tempfile
    >>> from skcgcnn.store import GraphStore
    >>> try:
    ...     GraphStore(tempfile.mkdtemp())
    ... except StoreFormatError as error:
    ...     print("not a graph store" in str(error))
    True
    """


def _graph_of(obj: Any, radius: float, max_num_nbr: int) -> Any:
    from .featurizer import _as_structure
    from .graph import _GraphInputs

    if not isinstance(obj, _GraphInputs):
        obj = _GraphInputs(_as_structure(obj, 0, radius))
    return obj.build(radius, max_num_nbr, warn=True)


def columns_of(graphs: list, ids: list[str], targets: np.ndarray | None) -> dict[str, np.ndarray]:
    """The shard columns of a list of CrystalGraphs (all of one ``max_num_nbr``)."""
    max_num_nbr = graphs[0].max_num_nbr if graphs else 0
    sizes = np.fromiter((g.n_atoms for g in graphs), dtype=np.int64, count=len(graphs))
    offsets = np.zeros(len(graphs) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    cols: dict[str, np.ndarray] = {
        "ids": np.array(ids, dtype=str) if ids else np.zeros(0, dtype="<U1"),
        "offsets": offsets,
    }
    ordered = np.array([g.is_ordered for g in graphs], dtype=bool)
    if ordered.all():
        cols["species"] = (np.concatenate([g.atomic_numbers for g in graphs]).astype(np.int16)
                           if graphs else np.zeros(0, dtype=np.int16))
    else:
        width = max(1 if g.is_ordered else g.atomic_numbers.shape[1] for g in graphs)
        z = np.zeros((int(offsets[-1]), width), dtype=np.int16)
        w = np.zeros((int(offsets[-1]), width), dtype=np.float32)
        for g, a in zip(graphs, offsets[:-1]):
            if g.is_ordered:
                z[a : a + g.n_atoms, 0], w[a : a + g.n_atoms, 0] = g.atomic_numbers, 1.0
            else:
                k = g.atomic_numbers.shape[1]
                z[a : a + g.n_atoms, :k], w[a : a + g.n_atoms, :k] = g.atomic_numbers, g.occupancies
        cols["species"], cols["occupancies"], cols["ordered"] = z, w, ordered
    shape = (0, max_num_nbr)
    cols["neighbor_indices"] = (np.concatenate([g.neighbor_indices for g in graphs]).astype(
        np.int32) if graphs else np.zeros(shape, dtype=np.int32))
    cols["distances"] = (np.concatenate([g.distances for g in graphs]).astype(np.float32)
                         if graphs else np.zeros(shape, dtype=np.float32))
    if targets is not None:
        cols["targets"] = np.asarray(targets, dtype=np.float64)
    return cols


def featurize_slice(part: Slice, radius: float, max_num_nbr: int, out: str | None,
                    name: str, extra: dict[str, Any]) -> dict[str, Any]:
    """Read, parse and featurize one slice; write it as shard ``out/name`` or return columns.

    Returns a dict with ``failures`` (``[id, error]`` pairs), ``warnings`` (``{(category,
    key): [count, first id, first message]}``), and either the shard's ``info`` (when written)
    or its ``columns``.
    """
    if out is not None:
        done = read_shard_info(Path(out) / name, missing_ok=True)
        if done is not None and done.get("plan") == extra.get("plan"):
            return {"info": done, "failures": done["failures"], "warnings": {}, "reused": True}
    graphs, ids, keep, failures = [], [], [], []
    summary: dict = {}
    for row, (id_, parse) in enumerate(part.entries()):
        with recording(summary, id_):
            try:
                graphs.append(_graph_of(parse(), radius, max_num_nbr))
                ids.append(id_)
                keep.append(row)
            except Exception as exc:
                failures.append([id_, f"{type(exc).__name__}: {exc}"])
    targets = None if part.targets is None else part.targets[keep]
    cols = columns_of(graphs, ids, targets)
    if graphs and cols["neighbor_indices"].shape[1] != max_num_nbr:  # pragma: no cover
        raise RuntimeError("graph width differs from max_num_nbr")
    result: dict[str, Any] = {"failures": failures, "warnings": summary}
    if out is None:
        result["columns"] = cols
        return result
    meta = {"radius": float(radius), "max_num_nbr": int(max_num_nbr), "failures": failures,
            **extra}
    result["info"] = write_shard(Path(out) / name, cols, meta)
    return result


def _digest(folder: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for n in sorted(names):  # shard.json lists the columns sorted
        with open(folder / f"{n}.npy", "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def write_shard(folder: Path, cols: dict[str, np.ndarray], meta: dict[str, Any]) -> dict:
    """Write the columns as ``.npy`` files next to a ``shard.json``, atomically (a temporary
    folder renamed into place), and return the shard's info (checksum included)."""
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = [c for c in COLUMNS if c in cols]
    for n in names:
        np.save(tmp / f"{n}.npy", np.ascontiguousarray(cols[n]), allow_pickle=False)
    info = {
        "format": SHARD_FORMAT,
        "format_version": FORMAT_VERSION,
        "n_graphs": int(len(cols["offsets"]) - 1),
        "n_atoms": int(cols["offsets"][-1]),
        "columns": {n: [str(cols[n].dtype), list(cols[n].shape)] for n in names},
        "sha256": _digest(tmp, names),
        **meta,
    }
    (tmp / SHARD_INFO).write_text(json.dumps(info, sort_keys=True, indent=1) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return info


def read_shard_info(folder: Path, missing_ok: bool = False) -> dict | None:
    """The ``shard.json`` of a shard folder (None if absent and ``missing_ok``)."""
    path = folder / SHARD_INFO
    if not path.is_file():
        if missing_ok:
            return None
        raise StoreFormatError(f"shard {str(folder)!r} has no {SHARD_INFO}: not a graph shard")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if missing_ok:
            return None
        raise StoreFormatError(f"{str(path)!r} is not a shard description: {exc}") from exc
    if not isinstance(info, dict) or info.get("format") != SHARD_FORMAT:
        if missing_ok:
            return None
        raise StoreFormatError(f"{str(path)!r} is not a {SHARD_FORMAT} description")
    return info


def load_shard(folder: Path, expected: dict[str, Any], verify: bool) -> dict[str, np.ndarray]:
    """Memory-map a shard's columns after checking them against its description.

    ``expected`` holds what the store's manifest says (checksum, counts, graph settings); any
    mismatch, a truncated or foreign file, or (with ``verify``) a checksum that differs from the
    bytes on disk raises :class:`StoreFormatError`.
    """
    info = read_shard_info(folder)
    if info.get("format_version") != FORMAT_VERSION:
        raise StoreFormatError(f"shard {str(folder)!r} has format version "
                               f"{info.get('format_version')}; this skcgcnn reads {FORMAT_VERSION}")
    for key, value in expected.items():
        if info.get(key) != value:
            raise StoreFormatError(f"shard {str(folder)!r}: {key} is {info.get(key)!r} but the "
                                   f"store's manifest says {value!r}")
    cols = {}
    for n, (dtype, shape) in info["columns"].items():
        try:
            arr = np.load(folder / f"{n}.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise StoreFormatError(f"shard {str(folder)!r}: column {n} cannot be read "
                                   f"(truncated or not a .npy file): {exc}") from exc
        if str(arr.dtype) != dtype or list(arr.shape) != shape:
            raise StoreFormatError(f"shard {str(folder)!r}: column {n} is {arr.dtype} "
                                   f"{list(arr.shape)}, expected {dtype} {shape}")
        cols[n] = arr
    if verify and _digest(folder, list(info["columns"])) != info["sha256"]:
        raise StoreFormatError(f"shard {str(folder)!r}: checksum mismatch (the files were "
                               "changed or damaged after writing)")
    return cols
