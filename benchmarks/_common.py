"""Shared helpers of the benchmark scripts: data, timing, tables, machine description.

The scripts run in a benchmark environment that has ``cgcnn2`` installed next to skcgcnn (see
``benchmarks/README.md``); nothing here is part of the package.
"""

from __future__ import annotations

import gzip
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLE10K = SHARED / "datasets" / "matbench_mp_gap_sample10k.json.gz"
ATOM_INIT = SHARED / "reference-cgcnn" / "sample-regression" / "atom_init.json"
RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(os.environ.get("SKCGCNN_BENCH_CACHE", Path(tempfile.gettempdir()) / "skcgcnn-bench"))


def cpu_seconds() -> dict[int, float]:
    """CPU seconds used so far by this process and each of its children (the joblib workers)."""
    import psutil

    me = psutil.Process()
    used = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            used[proc.pid] = t.user + t.system
        except psutil.Error:
            pass
    return used


def require_shared() -> None:
    """Exit with a clear message when ``../shared`` (the benchmark data) is absent."""
    if not SAMPLE10K.exists():
        sys.exit(f"benchmark data not found: {SAMPLE10K} (the benchmarks read ../shared/datasets)")


def load_sample(n: int | None = None, seed: int = 0) -> tuple[list[Any], np.ndarray]:
    """Structures and band gaps of matbench_mp_gap_sample10k, in a seeded random order.

    The parsed DataFrame is cached as a pickle under ``$SKCGCNN_BENCH_CACHE`` (default: the
    system temp folder), since parsing the 10,000 structures from JSON takes about 30 s.
    """
    require_shared()
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / "sample10k.pkl.gz"
    if cached.exists() and cached.stat().st_mtime >= SAMPLE10K.stat().st_mtime:
        with gzip.open(cached, "rb") as f:
            structures, y = pickle.load(f)
    else:
        from matminer.utils.io import load_dataframe_from_json

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = load_dataframe_from_json(str(SAMPLE10K), pbar=False)
        structures, y = list(df["structure"]), df["gap pbe"].to_numpy(dtype=float)
        with gzip.open(cached, "wb", compresslevel=1) as f:
            pickle.dump((structures, y), f, protocol=pickle.HIGHEST_PROTOCOL)
    order = np.random.default_rng(seed).permutation(len(structures))
    if n is not None:
        order = order[:n]
    return [structures[i] for i in order], y[order]


def atom_init_table() -> dict[int, np.ndarray]:
    """The reference's ``atom_init.json`` as {Z: float64 vector} (what its featurization uses)."""
    import json

    with open(ATOM_INIT) as f:
        return {int(k): np.asarray(v, dtype=float) for k, v in json.load(f).items()}


class OriginalFeaturization:
    """The reference CGCNN featurization (its ``CIFData.__getitem__``), Structure -> tensors.

    Written from the description in ``shared/reference-cgcnn/REPORT.md`` section 1 (no code of
    the original repository): atom features stacked from ``atom_init.json`` rows, every neighbour
    within ``radius`` from ``Structure.get_all_neighbors(radius, include_index=True)``, each
    atom's list sorted by distance with Python's stable ``sorted``, cut to ``max_num_nbr`` or
    padded with index 0 at distance ``radius + 1`` (with a warning), distances expanded on
    Gaussians (centres 0, 0.2, ..., radius; width 0.2) into an (n, M, 41) array, and the three
    arrays turned into float32 / int64 tensors: the per-crystal item the reference caches.
    Reading the CIF file is left out, as for the other methods.
    """

    def __init__(self, radius: float = 8.0, max_num_nbr: int = 12, step: float = 0.2) -> None:
        self.radius = radius
        self.max_num_nbr = max_num_nbr
        self.atom_init = atom_init_table()
        self.centers = np.arange(0.0, radius + step, step)
        self.width = step

    def __call__(self, structure: Any) -> tuple[Any, Any, Any]:
        import torch

        m = self.max_num_nbr
        atom_fea = np.vstack([self.atom_init[site.specie.number] for site in structure])
        per_atom = structure.get_all_neighbors(self.radius, include_index=True)
        per_atom = [sorted(found, key=lambda nbr: nbr[1]) for found in per_atom]
        index_rows, distance_rows = [], []
        for found in per_atom:
            if len(found) < m:
                warnings.warn("not enough neighbours to build the graph; padding", stacklevel=2)
                missing = m - len(found)
                index_rows.append([nbr[2] for nbr in found] + [0] * missing)
                distance_rows.append([nbr[1] for nbr in found] + [self.radius + 1.0] * missing)
            else:
                index_rows.append([nbr[2] for nbr in found[:m]])
                distance_rows.append([nbr[1] for nbr in found[:m]])
        distances = np.array(distance_rows)
        expanded = np.exp(-((distances[..., np.newaxis] - self.centers) ** 2) / self.width**2)
        return (
            torch.as_tensor(atom_fea, dtype=torch.float32),
            torch.as_tensor(expanded, dtype=torch.float32),
            torch.as_tensor(np.array(index_rows), dtype=torch.long),
        )


class _InMemoryStructures:
    """Stands in for ``cgcnn2.data.Structure`` so its CIFData reads structures from memory.

    ``CIFData`` loads ``<root>/<id>.cif`` with ``Structure.from_file``; mapping those paths to
    Structures already in memory makes its featurization comparable (Structure -> graph, no CIF
    parsing) without touching its code.
    """

    def __init__(self, table: dict[str, Any]) -> None:
        from pymatgen.core import Structure

        self.table = table
        self._structure = Structure

    def from_file(self, path: str, *args: Any, **kwargs: Any) -> Any:
        if path in self.table:
            return self.table[path]
        return self._structure.from_file(path, *args, **kwargs)


_N_DATASETS = 0


def cgcnn2_dataset(structures: Sequence[Any], targets: Sequence[float] | None = None,
                   cache: bool = True) -> Any:
    """A ``cgcnn2.data.CIFData`` over in-memory Structures, with its own fast featurization path.

    Uses the package's own code (``CIFData._load_item_fast``: ``Structure.get_neighbor_list``,
    Python bucketing and sorting, Gaussian expansion) and its LRU cache when ``cache`` is True.
    """
    import os.path

    import cgcnn2.data as cdata

    if targets is None:
        targets = [0.0] * len(structures)
    global _N_DATASETS
    _N_DATASETS += 1
    root = str(CACHE / f"cgcnn2-in-memory-{_N_DATASETS}")  # never on disk
    ids = [f"s{i:06d}" for i in range(len(structures))]
    if not isinstance(cdata.Structure, _InMemoryStructures):
        cdata.Structure = _InMemoryStructures({})
    cdata.Structure.table.update(
        {os.path.join(root, cid + ".cif"): s for cid, s in zip(ids, structures)}
    )
    data = object.__new__(cdata.CIFData)  # skip the folder checks of __init__, set what it sets
    data.root_dir = root
    data.max_num_nbr, data.radius = 12, 8
    data.id_prop_data = [[cid, repr(float(t))] for cid, t in zip(ids, targets)]
    data.ari = cdata.AtomCustomJSONInitializer(str(ATOM_INIT))
    data.gdf = cdata.GaussianDistance(dmin=0, dmax=data.radius, step=0.2)
    data._raw_load_item = data._load_item_fast
    data.cache_size = None if cache else 0
    data._configure_cache()
    return data


class Timing:
    """Wall-clock and CPU seconds of the repeats of one method."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)


def clock(fn: Callable[[], Any]) -> tuple[float, float]:
    """(wall-clock, CPU) seconds taken by one call of ``fn`` (CPU time of this process)."""
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


def interleaved(
    methods: dict[str, Callable[[], Any]],
    repeats: int,
    warmup: dict[str, Callable[[], Any]] | None = None,
) -> dict[str, Timing]:
    """Time every method ``repeats`` times, round-robin, so CPU contention hits all alike.

    ``warmup`` callables (default: the methods themselves) run once first, untimed.
    """
    for fn in (methods if warmup is None else warmup).values():
        fn()
    times = {name: Timing() for name in methods}
    for _ in range(repeats):
        for name, fn in methods.items():
            times[name].add(*clock(fn))
    return times


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def spread(values: Sequence[float]) -> str:
    """``min-max`` of the repeats relative to their median, e.g. ``±4%``."""
    m = median(values)
    return f"±{100 * max(abs(max(values) - m), abs(m - min(values))) / m:.0f}%"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table with right-aligned numeric columns."""
    cells = [[str(c) for c in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_num(row[i]) for row in rows) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)
        ) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if num else "-" * w
                           for w, num in zip(widths, numeric)) + " |"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _fmt(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        ax = abs(float(x))
        if ax == 0:
            return "0"
        if ax >= 1000:
            return f"{x:,.0f}"
        if ax >= 100:
            return f"{x:.0f}"
        if ax >= 10:
            return f"{x:.1f}"
        if ax >= 0.1:
            return f"{x:.2f}"
        return f"{x:.3g}"
    if isinstance(x, (int, np.integer)):
        return f"{x:,}"
    return str(x)


def machine() -> str:
    """One line describing the machine and library versions."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    versions = [f"python {platform.python_version()}", f"torch {torch.__version__}",
                f"numpy {np.__version__}"]
    for mod in ("pymatgen.core", "cgcnn2"):
        try:
            module = __import__(mod, fromlist=["__version__"])
            versions.append(f"{mod.split('.')[0]} {getattr(module, '__version__', '?')}")
        except ImportError:
            pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs; load average at start {load}; "
        f"torch threads {torch.get_num_threads()}; " + ", ".join(versions)
    )


class Report:
    """Collects what a script prints and writes it to ``benchmarks/results/<name>.txt``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def save(self) -> Path:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"{self.name}.txt"
        path.write_text("\n".join(self.lines) + "\n")
        print(f"\n(written to {path.relative_to(ROOT)})")
        return path
