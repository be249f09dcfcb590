"""Featurize all 106,113 matbench_mp_gap CIFs into a GraphStore, logging memory as it grows.

Usage (from the repository root; resumable: rerun the same command after an interruption, the
shards already written are kept)::

    nice -n 10 python benchmarks/mp_gap_store.py --store /work/stores/mp_gap --n-jobs 2

Writes ``benchmarks/results/mp_gap_featurize_rss.csv``: every 5 s the elapsed time, the graphs
written so far (counted from the shards on disk), the summed RSS of this process and its joblib
workers, the peak so far and the load average. The summary (peak RSS when 10k, 50k and all
graphs were written; wall and CPU time) goes to ``benchmarks/results/mp_gap_featurize.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from _rss import TreeRSS  # noqa: E402

from skcgcnn.store import GraphStore  # noqa: E402

HERE = Path(__file__).resolve().parent
TAR = HERE.parent.parent / "shared" / "datasets" / "matbench_mp_gap_cifs.tar.gz"


def written(store: Path) -> int:
    n = 0
    for info in store.glob("shard-*/shard.json"):
        try:
            n += json.loads(info.read_text())["n_graphs"]
        except (OSError, ValueError, KeyError):
            pass
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="/work/stores/mp_gap")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=2048)
    parser.add_argument("--tar", default=str(TAR))
    parser.add_argument("--results", default=str(HERE / "results"))
    args = parser.parse_args()
    results = Path(args.results)
    store = Path(args.store)
    log = results / "mp_gap_featurize_rss.csv"
    new = not log.exists()
    fh = open(log, "a", buffering=1)
    if new:
        fh.write("elapsed_s,graphs_written,tree_rss_mb,peak_rss_mb,load1\n")
    marks: dict[int, float] = {}
    start = time.perf_counter()
    last = [0.0]

    def on_sample(rss: int) -> None:
        t = time.perf_counter() - start
        if t - last[0] < 5:
            return
        last[0] = t
        n = written(store)
        for mark in (10_000, 50_000):
            if n >= mark and mark not in marks:
                marks[mark] = sampler.peak / 2**20
        fh.write(f"{t:.1f},{n},{rss / 2**20:.1f},{sampler.peak / 2**20:.1f},"
                 f"{os.getloadavg()[0]:.2f}\n")

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with TreeRSS(1.0, on_sample) as sampler:
        result = GraphStore.from_structures(args.tar, store, n_jobs=args.n_jobs,
                                            shard_size=args.shard_size)
    wall = time.perf_counter() - start
    self_cpu = resource.getrusage(resource.RUSAGE_SELF)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = len(result)
    parent_cpu = (self_cpu.ru_utime + self_cpu.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
    disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**20
    t0 = time.perf_counter()
    reopened = GraphStore(store)
    _ = reopened.ids, reopened.targets
    open_s = time.perf_counter() - t0
    summary = [
        f"graphs: {n} written, {len(result.failures)} failed; store {store}",
        f"peak RSS (this process + workers): at 10k {marks.get(10_000, float('nan')):.0f} MB, "
        f"at 50k {marks.get(50_000, float('nan')):.0f} MB, at {n} {sampler.peak / 2**20:.0f} MB",
        f"wall {wall:.0f} s; CPU parent {parent_cpu:.0f} s, reaped workers "
        f"{child.ru_utime + child.ru_stime:.0f} s (loky workers still alive are not counted)",
        f"open the store + read ids and targets (checksums verified): {open_s:.2f} s",
        f"store size on disk: {disk:.0f} MB",
        f"n_jobs={args.n_jobs}, shard_size={args.shard_size}, "
        f"load average at end {os.getloadavg()}",
    ]
    text = "\n".join(summary) + "\n"
    print(text)
    (results / "mp_gap_featurize.txt").write_text(text)


if __name__ == "__main__":
    main()
