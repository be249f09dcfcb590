"""Featurize all 106,113 matbench_mp_gap CIFs into a GraphStore, logging memory as it grows.

Usage (from the repository root; resumable: rerun the same command after an interruption, the
shards already written are kept)::

    nice -n 10 python benchmarks/mp_gap_store.py --store /work/stores/mp_gap --n-jobs 2

Writes ``benchmarks/results/mp_gap_featurize_rss.csv``: every 5 s the UTC start time of this
run (one value per resumed run), the elapsed time of the run, the graphs written so far (counted
from the shards on disk), the summed RSS of this process and all its descendants (the loky
workers and loky's resource tracker: a sum of RSS, so pages shared between them count once per
process), the run's peak so far and the load average. A fresh store (no shard on disk yet)
starts a fresh log; a resumed run appends to it. The summary, computed from the whole log (so
it spans resumed runs): the peak tree RSS up to the moment 10k, 50k and all graphs were on
disk, the wall time summed over runs and this run's CPU time, goes to
``benchmarks/results/mp_gap_featurize.txt``.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import resource
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import psutil  # noqa: E402
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


def growth(log: Path, marks: tuple[int, ...]) -> tuple[dict[int, float], float]:
    """Peak tree RSS (MB) over the log's rows up to the first row where each mark of graphs was
    on disk, and the wall time summed over the runs of the log."""
    rows = list(csv.DictReader(open(log)))
    out, peak = {}, 0.0
    for r in rows:
        peak = max(peak, float(r["tree_rss_mb"]))
        for m in marks:
            if m not in out and int(r["graphs_written"]) >= m:
                out[m] = peak
    last: dict[str, float] = {}
    for r in rows:
        last[r["run_start_utc"]] = float(r["elapsed_s"])
    return out, sum(last.values())


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
    fresh = not any(store.glob("shard-*/shard.json"))
    fh = open(log, "w" if fresh or not log.exists() else "a", buffering=1)
    if fresh or log.stat().st_size == 0:
        fh.write("run_start_utc,elapsed_s,graphs_written,tree_rss_mb,peak_rss_mb,load1\n")
    run = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    start = time.perf_counter()
    last = [0.0]

    def on_sample(rss: int) -> None:
        t = time.perf_counter() - start
        if t - last[0] < 5:
            return
        last[0] = t
        n = written(store)
        fh.write(f"{run},{t:.1f},{n},{rss / 2**20:.1f},{sampler.peak / 2**20:.1f},"
                 f"{os.getloadavg()[0]:.2f}\n")

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    with TreeRSS(1.0, on_sample) as sampler:
        result = GraphStore.from_structures(args.tar, store, n_jobs=args.n_jobs,
                                            shard_size=args.shard_size)
    wall = time.perf_counter() - start
    alive = 0.0  # the loky workers are kept alive for reuse: their CPU time, read before exit
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
            alive += t.user + t.system
        except psutil.Error:
            pass
    self_cpu = resource.getrusage(resource.RUSAGE_SELF)
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = len(result)
    fh.write(f"{run},{wall:.1f},{n},{sampler.sample() / 2**20:.1f},{sampler.peak / 2**20:.1f},"
             f"{os.getloadavg()[0]:.2f}\n")
    fh.close()
    marks, total_wall = growth(log, (10_000, 50_000, n))
    parent_cpu = (self_cpu.ru_utime + self_cpu.ru_stime - cpu0.ru_utime - cpu0.ru_stime)
    disk = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**20
    t0 = time.perf_counter()
    reopened = GraphStore(store)
    _ = reopened.ids, reopened.targets
    open_s = time.perf_counter() - t0
    summary = [
        f"graphs: {n} written, {len(result.failures)} failed; store {store}",
        "peak tree RSS (this process + loky workers + resource tracker, summed) until the "
        "store held: " + ", ".join(f"{m} graphs {v:.0f} MB" for m, v in marks.items()),
        f"wall {total_wall:.0f} s over all runs of the log, this run {wall:.0f} s; "
        f"this run's CPU: parent {parent_cpu:.0f} s, workers {alive:.0f} s (alive at the end) "
        f"+ {child.ru_utime + child.ru_stime:.0f} s (reaped)",
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
