"""Parallel featurization from files: ``n_jobs=1`` vs ``n_jobs=2`` on 10,000 mp_gap CIFs.

Usage (from the repository root)::

    nice -n 10 python benchmarks/featurize_parallel.py [--n 10000] [--repeats 2]

The first ``--n`` CIFs (and targets) of ``../shared/datasets/matbench_mp_gap_cifs.tar.gz`` are
copied into a temporary ``.tar.gz`` (not timed). Then, round-robin in the same run, each path is
timed with ``n_jobs=1`` and ``n_jobs=2`` (loky workers started once before, their start cost
reported separately):

* into a store: ``GraphStore.from_structures(tar, folder, n_jobs=...)``;
* into memory: ``featurize_source(tar, n_jobs=...)`` (graphs back in the parent).

Every task reads its own members of the tar, parses and featurizes them; only the compact graph
columns travel (or are written). The table gives wall time, throughput, the CPU seconds of the
parent and of the workers (psutil), and the load average, which on a shared machine says how
far from "2 idle cores" the run was. Output: ``benchmarks/results/featurize_parallel.txt``
(appended, one block per run).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import psutil  # noqa: E402
from _common import cpu_seconds  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

from skcgcnn.store import GraphStore, featurize_source  # noqa: E402

HERE = Path(__file__).resolve().parent
TAR = HERE.parent.parent / "shared" / "datasets" / "matbench_mp_gap_cifs.tar.gz"


def first_members(src: Path, dst: Path, n: int) -> None:
    with tarfile.open(src) as tar, tarfile.open(dst, "w:gz") as out:
        table, count = None, 0
        for m in tar:
            if m.name.endswith(".csv"):
                table = tar.extractfile(m).read().decode().splitlines()
            elif m.name.endswith(".cif"):
                out.addfile(m, io.BytesIO(tar.extractfile(m).read()))
                count += 1
                if count == n:
                    break
        data = ("\n".join(table[: n + 1]) + "\n").encode()
        info = tarfile.TarInfo("matbench_mp_gap/matbench_mp_gap.csv")
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=1024)
    parser.add_argument("--tar", default=str(TAR))
    parser.add_argument("--into", default="store,memory", help="comma-separated: store,memory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="skcgcnn-par-"))
    src = tmp / "first.tar.gz"
    first_members(Path(args.tar), src, args.n)
    first_members(Path(args.tar), tmp / "warm.tar.gz", 8)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))
    start_workers = time.perf_counter() - t0
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        featurize_source(tmp / "warm.tar.gz", n_jobs=2, shard_size=4)  # imports in workers
    import_in_workers = time.perf_counter() - t0

    def to_store(n_jobs: int) -> None:
        out = tmp / f"store-{n_jobs}"
        shutil.rmtree(out, ignore_errors=True)
        GraphStore.from_structures(src, out, n_jobs=n_jobs, shard_size=args.shard_size)

    def to_memory(n_jobs: int) -> None:
        featurize_source(src, n_jobs=n_jobs, shard_size=args.shard_size)

    rows = {}
    for r in range(args.repeats):
        for name, fn in (("store", to_store), ("memory", to_memory)):
            if name not in args.into.split(","):
                continue
            for n_jobs in (1, 2):
                before, t0 = cpu_seconds(), time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fn(n_jobs)
                wall = time.perf_counter() - t0
                after = cpu_seconds()
                me = os.getpid()
                parent = after[me] - before[me]
                workers = sum(after[p] - before.get(p, 0.0) for p in after if p != me)
                rows.setdefault((name, n_jobs), []).append(
                    (wall, parent, workers, os.getloadavg()[0]))
                print(f"round {r} {name} n_jobs={n_jobs}: {wall:.1f} s", flush=True)
    lines = [f"\n## {args.n} structures, shard_size {args.shard_size}, {args.repeats} rounds "
             f"(round-robin), load average at start {load_start[0]:.1f} / "
             f"{load_start[1]:.1f} / {load_start[2]:.1f} (1/5/15 min), "
             f"{psutil.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"starting 2 loky workers (once, before the rounds): {start_workers:.2f} s, then "
             f"importing skcgcnn + pymatgen in them (first 8-CIF task): "
             f"{import_in_workers:.2f} s\n",
             "| into | n_jobs | wall s (best) | wall s (median) | structures/s | "
             "parent CPU s | worker CPU s | load avg (1 min) at end | speed-up (wall) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name in [n for n in ("store", "memory") if (n, 1) in rows]:
        base = min(w for w, *_ in rows[(name, 1)])
        for n_jobs in (1, 2):
            runs = sorted(rows[(name, n_jobs)])
            best = runs[0]
            median = runs[len(runs) // 2][0]
            lines.append(f"| {name} | {n_jobs} | {best[0]:.1f} | {median:.1f} | "
                         f"{args.n / best[0]:.0f} | {best[1]:.1f} | {best[2]:.1f} | "
                         f"{best[3]:.1f} | {base / best[0]:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    with open(HERE / "results" / "featurize_parallel.txt", "a") as fh:
        fh.write(text)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
