"""``GraphStore``: crystal graphs on disk, sharded and columnar, featurized once, memory-mapped.

Layout of a store folder::

    graphstore.json          manifest: format + version, radius, max_num_nbr, target names,
                             shards (name, n_graphs, n_atoms, sha256), failed rows (id, error)
    shard-000000/            one shard per featurization task
        shard.json           the same settings, column dtypes/shapes, sha256 of the columns
        ids.npy              (n_graphs,) str          graph ids
        offsets.npy          (n_graphs + 1,) int64    first atom row of each graph
        species.npy          (n_atoms,) int16         atomic numbers; (n_atoms, K) with
        occupancies.npy      (n_atoms, K) float32     ...occupancies when a graph is disordered
        ordered.npy          (n_graphs,) bool         ...and which graphs are ordered
        neighbor_indices.npy (n_atoms, M) int32       neighbours, within the graph
        distances.npy        (n_atoms, M) float32     neighbour distances (A)
        targets.npy          (n_graphs, T) float64    targets, when the input had them

Every column is a plain ``.npy`` file (readable with ``numpy.load`` alone) and is memory-mapped
on first use, after its shape, dtype and the shard's checksum are checked against the manifest:
a truncated, damaged or foreign file raises :class:`StoreFormatError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from joblib import Parallel, delayed

from ._shards import FORMAT_VERSION, STORE_FORMAT, StoreFormatError, featurize_slice, load_shard
from ._sources import plan_slices
from ._warnings import emit
from .graph import CrystalGraph

__all__ = ["FeaturizationWarning", "GraphStore", "StoreFormatError", "featurize_source"]

MANIFEST = "graphstore.json"
PathLike = str | os.PathLike[str]


class FeaturizationWarning(UserWarning):
    """Some rows of a featurization failed and were left out (their ids and errors are kept).

    Examples
    --------
    >>> import warnings
    >>> from pymatgen.core import Lattice, Structure
    >>> fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     out = featurize_source([fe, "not a structure"])
    >>> out["failures"][0][0], any(w.category is FeaturizationWarning for w in caught)
    ('1', True)
    """


def _plan_key(ids: Sequence[str], radius: float, max_num_nbr: int) -> str:
    h = hashlib.sha256(f"{radius!r}|{max_num_nbr}|".encode())
    h.update("\n".join(ids).encode())
    return h.hexdigest()[:32]


def _run(source: Any, out: Path | None, radius: float, max_num_nbr: int, target: Any, ids: Any,
         n_jobs: int | None, shard_size: int, first: int = 0) -> tuple[list[dict], Any]:
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    slices, target_names = plan_slices(source, shard_size, target, ids, radius)
    tasks = []
    for k, part in enumerate(slices):
        extra = {"plan": _plan_key(part.ids, radius, max_num_nbr)}
        tasks.append(delayed(featurize_slice)(part, radius, max_num_nbr,
                                              None if out is None else str(out),
                                              f"shard-{first + k:06d}", extra))
    results = Parallel(n_jobs=n_jobs)(tasks)
    emit([r["warnings"] for r in results], stacklevel=4, what="row")
    failures = [f for r in results for f in r["failures"]]
    if failures:
        warnings.warn(f"{len(failures)} rows could not be featurized and were left out (first: "
                      f"{failures[0][0]}: {failures[0][1]})", FeaturizationWarning, stacklevel=4)
    return results, target_names


def featurize_source(source: Any, radius: float = 8.0, max_num_nbr: int = 12, target: Any = None,
                     ids: Any = None, n_jobs: int | None = None,
                     shard_size: int = 1024) -> dict[str, Any]:
    """Featurize an input into memory, in parallel, with workers reading their own slices.

    Parameters are those of :meth:`GraphStore.from_structures`. Returns a dict with ``ids``
    (ndarray of str), ``graphs`` (1-D object array of CrystalGraph), ``targets`` (ndarray or
    None), ``target_names`` and ``failures`` (``[id, error]`` pairs, left out of the rest).

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> out = featurize_source([fe, fe], ids=["a", "b"])
    >>> out["ids"].tolist(), out["graphs"][0].n_atoms
    (['a', 'b'], 2)
    """
    results, names = _run(source, None, radius, max_num_nbr, target, ids, n_jobs, shard_size)
    graphs: list[CrystalGraph] = []
    for r in results:
        graphs.extend(_graphs_from_columns(r["columns"], radius, range(len(r["columns"]["ids"]))))
    graph_array = np.empty(len(graphs), dtype=object)
    graph_array[:] = graphs
    targets = [r["columns"]["targets"] for r in results if "targets" in r["columns"]]
    return {
        "ids": np.concatenate([r["columns"]["ids"] for r in results]).astype(str),
        "graphs": graph_array,
        "targets": np.concatenate(targets) if targets else None,
        "target_names": names,
        "failures": [f for r in results for f in r["failures"]],
    }


def _graphs_from_columns(cols: dict[str, np.ndarray], radius: float,
                         rows: Any) -> Iterator[CrystalGraph]:
    offsets = cols["offsets"]
    for i in rows:
        a, b = int(offsets[i]), int(offsets[i + 1])
        species = np.array(cols["species"][a:b])
        occupancies = None
        if "ordered" in cols:
            if cols["ordered"][i]:
                species = species[:, 0].copy()
            else:
                occ = np.array(cols["occupancies"][a:b])
                width = int(np.flatnonzero((species != 0).any(axis=0)).max()) + 1
                species, occupancies = species[:, :width].copy(), occ[:, :width].copy()
        yield CrystalGraph(species, np.array(cols["neighbor_indices"][a:b]),
                           np.array(cols["distances"][a:b]), radius, occupancies)


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not file.is_file():
        raise StoreFormatError(f"{str(path)!r} is not a graph store (no {MANIFEST}); create one "
                               "with GraphStore.from_structures or `skcgcnn featurize`")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreFormatError(f"{str(file)!r} is not a graph store manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        raise StoreFormatError(f"{str(file)!r} is not a {STORE_FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StoreFormatError(f"{str(file)!r} has format version "
                               f"{manifest.get('format_version')}; this skcgcnn reads "
                               f"version {FORMAT_VERSION}")
    return manifest


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    tmp = path / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    os.replace(tmp, path / MANIFEST)


def write_store(source: Any, path: PathLike, *, radius: float = 8.0, max_num_nbr: int = 12,
                target: Any = None, ids: Any = None, n_jobs: int | None = None,
                shard_size: int = 2048, append: bool = False) -> GraphStore:
    """Featurize ``source`` into the store at ``path`` (see :meth:`GraphStore.from_structures`)."""
    path = Path(path)
    manifest = None
    if (path / MANIFEST).exists():
        if not append:
            raise FileExistsError(f"{str(path)!r} already holds a graph store; pass append=True "
                                  "to add shards to it, or choose a new folder")
        manifest = _read_manifest(path)
        if (manifest["radius"], manifest["max_num_nbr"]) != (float(radius), int(max_num_nbr)):
            raise ValueError(f"the store was built with radius={manifest['radius']}, "
                             f"max_num_nbr={manifest['max_num_nbr']}; cannot append graphs "
                             f"built with radius={radius}, max_num_nbr={max_num_nbr}")
    path.mkdir(parents=True, exist_ok=True)
    first = 0 if manifest is None else len(manifest["shards"])
    results, names = _run(source, path, radius, max_num_nbr, target, ids, n_jobs, shard_size,
                          first)
    if manifest is None:
        manifest = {"format": STORE_FORMAT, "format_version": FORMAT_VERSION,
                    "radius": float(radius), "max_num_nbr": int(max_num_nbr),
                    "target_names": names, "shards": [], "failures": []}
    for k, r in enumerate(results):
        info = r["info"]
        manifest["shards"].append({"name": f"shard-{first + k:06d}", "n_graphs": info["n_graphs"],
                                   "n_atoms": info["n_atoms"], "sha256": info["sha256"]})
        manifest["failures"].extend(r["failures"])
    _write_manifest(path, manifest)
    return GraphStore(path)


class GraphStore:
    """Crystal graphs on disk: featurize once, then fit, predict and search without re-featurizing.

    Opening a store reads its small manifest; each shard's columns are memory-mapped (and their
    checksum verified) the first time a graph of that shard is needed. Integer-array (or slice,
    or boolean) indexing returns a view: a ``GraphStore`` over the selected rows that shares the
    memory maps, so scikit-learn's CV splitters and ``GridSearchCV`` pass sub-stores to the
    estimators, and a pickled view is its path and rows.

    Parameters
    ----------
    path : str or path-like
        The store folder (written by :meth:`from_structures` or ``skcgcnn featurize``).
    verify : bool, default=True
        Check each shard's SHA-256 checksum when it is first memory-mapped.

    Attributes
    ----------
    radius, max_num_nbr : float, int
        The graph settings the store was built with.
    target_names : list of str or None
        Names of the target columns, when the input named them.

    See Also
    --------
    skcgcnn.CrystalGraphFeaturizer : the same graphs, in memory.

    Examples
    --------
    >>> import tempfile
    >>> from pymatgen.core import Lattice, Structure
    >>> fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> nacl = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> folder = tempfile.mkdtemp() + "/graphs"
    >>> store = GraphStore.from_structures([fe, nacl, fe], folder, target=[1.0, 2.0, 3.0])
    >>> len(store), store.ids.tolist(), store.targets.tolist()
    (3, ['0', '1', '2'], [1.0, 2.0, 3.0])
    >>> view = store[[2, 0]]
    >>> len(view), view.ids.tolist(), view[0].n_atoms
    (2, ['2', '0'], 2)
    """

    def __init__(self, path: PathLike, verify: bool = True) -> None:
        self.path = Path(path)
        self.verify = verify
        manifest = _read_manifest(self.path)
        self.radius = float(manifest["radius"])
        self.max_num_nbr = int(manifest["max_num_nbr"])
        self.target_names = manifest["target_names"]
        self._manifest = manifest
        counts = np.array([s["n_graphs"] for s in manifest["shards"]], dtype=np.int64)
        self._starts = np.concatenate(([0], np.cumsum(counts)))
        self._shards: dict[int, dict[str, np.ndarray]] = {}
        self._rows: np.ndarray | None = None  # None: every row of the store, in order

    @classmethod
    def from_structures(cls, source: Any, path: PathLike, *, radius: float = 8.0,
                        max_num_nbr: int = 12, target: Any = None, ids: Any = None,
                        n_jobs: int | None = None, shard_size: int = 2048,
                        append: bool = False) -> GraphStore:
        """Featurize an input into a new store (or new shards of one), in parallel.

        Each joblib task reads its own slice of the input (a range of members of a CIF tar,
        a list of CIF files, a chunk of a matminer JSON's rows), builds the graphs and writes
        one shard; Structures never travel between processes, so any joblib backend works
        (loky locally, dask.distributed on a cluster, with ``path`` on a shared file system).
        Shards are cut every ``shard_size`` rows whatever ``n_jobs`` is, so the store is the
        same bit for bit. A shard already on disk for the same rows and settings (from an
        interrupted run) is kept, so rerunning the same call resumes.

        Parameters
        ----------
        source : path or list-like of Structure or DataFrame
            A CIF folder (with ``id_prop.csv``, or just ``*.cif`` files), a ``.tar``/``.tar.gz``
            of CIFs (targets from the CSV in it: a reference ``id_prop.csv`` or a CSV with a
            ``cif_file`` column), a matminer DataFrame ``.json(.gz)``, or Structures in memory
            (a list, Series, or DataFrame with a ``structure`` column).
        path : str or path-like
            The store folder.
        radius, max_num_nbr : float, int
            Graph settings, as :class:`~skcgcnn.CrystalGraphFeaturizer`.
        target : str, list of str or array-like, optional
            Target column name(s) of a JSON or DataFrame input, or target values for a list.
        ids : list-like of str, optional
            Ids for Structures in memory (default: the Series/DataFrame index, or 0, 1, ...).
        n_jobs : int, optional
            Parallel tasks (joblib semantics; a ``joblib.parallel_config`` backend applies).
        shard_size : int, default=2048
            Rows per shard (and per task).
        append : bool, default=False
            Add shards to an existing store at ``path`` (same graph settings).

        Returns
        -------
        GraphStore

        Warns
        -----
        FeaturizationWarning
            When rows failed: they are left out and listed in :attr:`failures`.
        """
        return write_store(source, path, radius=radius, max_num_nbr=max_num_nbr, target=target,
                           ids=ids, n_jobs=n_jobs, shard_size=shard_size, append=append)

    def append(self, source: Any, **kwargs: Any) -> GraphStore:
        """Featurize ``source`` into new shards of this store and return the reopened store."""
        if self._rows is not None:
            raise ValueError("cannot append to a view of a store; append to GraphStore(path)")
        return write_store(source, self.path, radius=self.radius, max_num_nbr=self.max_num_nbr,
                           append=True, **kwargs)

    # ---- size and columns -----------------------------------------------------------------
    @property
    def rows(self) -> np.ndarray:
        """Rows of the whole store that this store (or view) holds, in order."""
        return np.arange(self._starts[-1]) if self._rows is None else self._rows

    def __len__(self) -> int:
        return int(self._starts[-1]) if self._rows is None else len(self._rows)

    @property
    def shape(self) -> tuple[int]:
        """``(n_graphs,)``: lets scikit-learn index a store as an array (giving views)."""
        return (len(self),)

    @property
    def failures(self) -> list[tuple[str, str]]:
        """``(id, error)`` of the input rows that could not be featurized (not in the store)."""
        return [tuple(f) for f in self._manifest["failures"]]

    def _shard(self, k: int) -> dict[str, np.ndarray]:
        if k not in self._shards:
            entry = self._manifest["shards"][k]
            expected = {"n_graphs": entry["n_graphs"], "n_atoms": entry["n_atoms"],
                        "sha256": entry["sha256"], "radius": self.radius,
                        "max_num_nbr": self.max_num_nbr}
            self._shards[k] = load_shard(self.path / entry["name"], expected, self.verify)
        return self._shards[k]

    def _column(self, name: str) -> np.ndarray | None:
        parts = []
        for k in range(len(self._manifest["shards"])):
            col = self._shard(k).get(name)
            if col is None:
                return None
            parts.append(np.asarray(col))
        if not parts:
            return None
        whole = np.concatenate(parts)
        return whole if self._rows is None else whole[self._rows]

    @property
    def ids(self) -> np.ndarray:
        """Ids of the graphs (str), in order."""
        ids = self._column("ids")
        return np.zeros(0, dtype=str) if ids is None else ids.astype(str)

    @property
    def targets(self) -> np.ndarray | None:
        """Targets (1-D for one target column), or None when the input had none."""
        y = self._column("targets")
        if y is None:
            return None
        return y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y

    @property
    def n_atoms(self) -> np.ndarray:
        """Number of atoms of each graph."""
        return np.diff(self._locate(self.rows)[2], axis=0)[0] if len(self) else np.zeros(0, int)

    def _locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shard, row within shard and (start, stop) atom rows of each store row."""
        shard = np.searchsorted(self._starts, rows, side="right") - 1
        local = rows - self._starts[shard]
        bounds = np.zeros((2, len(rows)), dtype=np.int64)
        for k in np.unique(shard):
            sel = shard == k
            offsets = self._shard(int(k))["offsets"]
            bounds[0, sel] = offsets[local[sel]]
            bounds[1, sel] = offsets[local[sel] + 1]
        return shard, local, bounds

    def unique_species(self) -> np.ndarray:
        """Sorted atomic numbers present in this store (or view); 0 (an empty species slot of
        a disordered site) excluded."""
        rows = self.rows
        shard = np.searchsorted(self._starts, rows, side="right") - 1
        found = []
        for k in np.unique(shard):
            cols = self._shard(int(k))
            local = rows[shard == k] - self._starts[k]
            if len(local) == len(cols["ids"]):  # the whole shard
                species = cols["species"]
            else:
                a, b = cols["offsets"][local], cols["offsets"][local + 1]
                within = np.arange(int((b - a).sum())) - np.repeat(np.cumsum(b - a) - (b - a),
                                                                     b - a)
                species = cols["species"][np.repeat(a, b - a) + within]
            found.append(np.unique(np.asarray(species)))
        values = np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int16)
        return values[values > 0]

    # ---- indexing -------------------------------------------------------------------------
    def _view(self, rows: np.ndarray) -> GraphStore:
        view = object.__new__(GraphStore)
        view.__dict__.update(self.__dict__)
        view._rows = rows.astype(np.int64)
        return view

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):  # sklearn's _array_indexing: store[key, ...]
            if len(key) == 2 and key[1] is Ellipsis:
                key = key[0]
            else:
                raise IndexError("a graph store is 1-D: index it with one key")
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(f"index {key} out of range for a store of {n} graphs")
            return self.graph(int(self.rows[key]))
        if isinstance(key, slice):
            return self._view(self.rows[key])
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean index of shape {key.shape} for {len(self)} graphs")
            return self._view(self.rows[key])
        if key.size and not np.issubdtype(key.dtype, np.integer):
            raise IndexError(f"a graph store is indexed with integers, got {key.dtype}")
        return self._view(self.rows[key.astype(np.int64).reshape(-1)])

    def graph(self, row: int) -> CrystalGraph:
        """The :class:`CrystalGraph` of row ``row`` of the whole store."""
        k = int(np.searchsorted(self._starts, row, side="right") - 1)
        return next(_graphs_from_columns(self._shard(k), self.radius, [row - self._starts[k]]))

    def __iter__(self) -> Iterator[CrystalGraph]:
        for row in self.rows:
            yield self.graph(int(row))

    def to_graphs(self) -> np.ndarray:
        """All graphs as a 1-D object array of :class:`CrystalGraph` (in memory)."""
        out = np.empty(len(self), dtype=object)
        out[:] = list(self)
        return out

    def columns(self, index: Any) -> dict[str, np.ndarray]:
        """Batch columns of the graphs at positions ``index`` of this store (or view).

        Returns ``species`` ((N,) int64, or (N, K) with ``occupancies`` (N, K) float32 when a
        graph is disordered), ``neighbor_indices`` ((N, M) int64, rows within the batch),
        ``distances`` ((N, M) float32) and ``sizes`` ((B,) int64 atoms per graph), gathered
        with vectorised numpy from the memory-mapped shards (no per-graph Python objects).
        """
        rows = self.rows[np.asarray(index, dtype=np.int64).reshape(-1)]
        shard, _, bounds = self._locate(rows)
        sizes = bounds[1] - bounds[0]
        starts = np.zeros(len(rows), dtype=np.int64)
        np.cumsum(sizes[:-1], out=starts[1:])
        n = int(sizes.sum())
        m = self.max_num_nbr
        nbr, dist = np.empty((n, m), dtype=np.int64), np.empty((n, m), dtype=np.float32)
        disordered = any("ordered" in self._shard(int(k)) for k in np.unique(shard))
        width = max((self._shard(int(k))["species"].shape[1] for k in np.unique(shard)
                     if "ordered" in self._shard(int(k))), default=1)
        species = np.zeros((n, width) if disordered else n, dtype=np.int64)
        occ = np.zeros((n, width), dtype=np.float32) if disordered else None
        for k in np.unique(shard):
            cols, sel = self._shard(int(k)), np.flatnonzero(shard == k)
            cnt = sizes[sel]
            within = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            dst = np.repeat(starts[sel], cnt) + within
            src = np.repeat(bounds[0, sel], cnt) + within
            nbr[dst] = cols["neighbor_indices"][src]
            nbr[dst] += np.repeat(starts[sel], cnt)[:, None]
            dist[dst] = cols["distances"][src]
            z = cols["species"][src]
            if not disordered:
                species[dst] = z
            elif z.ndim == 1:
                species[dst, 0], occ[dst, 0] = z, 1.0
            else:
                species[dst, : z.shape[1]] = z
                occ[dst, : z.shape[1]] = cols["occupancies"][src]
        out = {"species": species, "neighbor_indices": nbr, "distances": dist, "sizes": sizes}
        if occ is not None:
            out["occupancies"] = occ
        return out

    # ---- pickling and display -------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "verify": self.verify, "rows": self._rows}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], verify=state["verify"])
        self._rows = state["rows"]

    def __repr__(self) -> str:
        what = "" if self._rows is None else f"view of {int(self._starts[-1])}, "
        return (f"GraphStore({str(self.path)!r}, {what}n_graphs={len(self)}, "
                f"radius={self.radius:g}, max_num_nbr={self.max_num_nbr})")
