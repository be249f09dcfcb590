"""Peak RSS and time of one training epoch streaming from a GraphStore (matbench_mp_gap fold 0).

Usage (from the repository root, after ``benchmarks/mp_gap_store.py``)::

    nice -n 19 python benchmarks/mp_gap_memory.py --store /work/stores/mp_gap

Fits the package's default :class:`~skcgcnn.CGCNNRegressor` (``random_state=0``, every other
parameter at its default except ``max_epochs=1``) on the store's view of official
matbench_mp_gap fold 0's training rows (84,890 structures; the default ``train_split="auto"``
keeps 10 % of them for validation, so one epoch trains on 90 % and evaluates the rest). ``X`` is
``store[rows]``: batches are collated from the memory-mapped columns by
:class:`~skcgcnn.batch.StoreDataset` / :func:`~skcgcnn.batch.collate_store`.

Memory is the summed RSS of this process and all its descendants (none unless the data loader
starts workers), sampled every 0.5 s in a thread; the RSS also counts the store's pages mapped
so far (file-backed, the kernel can drop them). A callback counts the rows streamed (training
and validation batches) and records the peak after 10k, 50k and all rows. ``--rows N`` uses
the first N rows of the store instead of fold 0 (smoke test); ``--partial FOLDER`` trains on
the fold-0 training rows among the finished shards of a store still being written (a store of
symbolic links to them is made in FOLDER).

Appends one line per run to ``benchmarks/results/mp_gap_epoch_rss.csv`` (rows, peak RSS at the
marks, epoch time from the estimator's history, wall and CPU seconds of the fit, load average)
and a readable summary to ``benchmarks/results/mp_gap_epoch_rss.txt``; while the epoch runs,
a progress row every 50 batches to ``benchmarks/results/mp_gap_epoch_progress.csv``.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from _rss import TreeRSS
from skorch.callbacks import Callback

from skcgcnn import CGCNNRegressor
from skcgcnn.store import GraphStore

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "datasets"
MARKS = (10_000, 50_000)


class RowMarks(Callback):
    """Counts the rows of every batch (training and validation), notes the tree RSS peak when
    the count first reaches each mark, and every ``every`` batches appends a progress row
    (elapsed s, rows, tree RSS, peak, process-tree CPU s, load) to ``progress``."""

    def __init__(self, sampler: TreeRSS, marks: tuple[int, ...], progress: Path, run: str,
                 every: int = 50) -> None:
        self.sampler, self.marks, self.progress, self.run = sampler, marks, progress, run
        self.every = every

    def initialize(self) -> RowMarks:
        self.seen, self.batches, self.at = 0, 0, {}
        self.t0, self.c0 = time.perf_counter(), tree_cpu()
        if not self.progress.exists():
            self.progress.write_text("run_start_utc,elapsed_s,phase,rows_seen,tree_rss_mb,"
                                     "peak_rss_mb,cpu_s,load1\n")
        return self

    def on_batch_end(self, net, batch=None, training=None, **kwargs) -> None:
        self.seen += len(batch[1])
        self.batches += 1
        rss = self.sampler.sample()
        for m in self.marks:
            if self.seen >= m and m not in self.at:
                self.at[m] = self.sampler.peak
        if self.batches % self.every == 0:
            with open(self.progress, "a") as fh:
                fh.write(f"{self.run},{time.perf_counter() - self.t0:.1f},"
                         f"{'train' if training else 'valid'},{self.seen},{rss / 2**20:.0f},"
                         f"{self.sampler.peak / 2**20:.0f},{tree_cpu() - self.c0:.1f},"
                         f"{os.getloadavg()[0]:.2f}\n")


def fold0_rows(store: GraphStore, partial: bool = False) -> np.ndarray:
    """Store rows of fold 0's training ids (with ``partial``: those of them in the store)."""
    splits = json.load(gzip.open(SHARED / "matbench_v0.1_validation.json.gz"))["splits"]
    where = {id_: i for i, id_ in enumerate(store.ids)}
    train = splits["matbench_mp_gap"]["fold_0"]["train"]
    return np.array([where[i] for i in train if not partial or i in where])


def partial_store(source: Path, folder: Path) -> Path:
    """A store over the consecutive finished shards of a store still being written (no
    manifest yet): symbolic links to those shards plus a manifest built from their shard.json."""
    from skcgcnn._shards import FORMAT_VERSION, STORE_FORMAT, read_shard_info

    folder.mkdir(parents=True, exist_ok=True)
    shards, failures, k, info = [], [], 0, None
    while (nxt := read_shard_info(source / f"shard-{k:06d}", missing_ok=True)) is not None:
        info, name = nxt, f"shard-{k:06d}"
        if not (folder / name).exists():
            (folder / name).symlink_to(source / name)
        shards.append({"name": name, "n_graphs": info["n_graphs"], "n_atoms": info["n_atoms"],
                       "sha256": info["sha256"]})
        failures += info["failures"]
        k += 1
    if info is None:
        raise SystemExit(f"no finished shard in {source}")
    manifest = {"format": STORE_FORMAT, "format_version": FORMAT_VERSION,
                "radius": info["radius"], "max_num_nbr": info["max_num_nbr"],
                "target_names": ["gap pbe"], "shards": shards, "failures": failures}
    (folder / "graphstore.json").write_text(json.dumps(manifest, sort_keys=True, indent=1))
    return folder


def tree_cpu() -> float:
    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="/work/stores/mp_gap")
    parser.add_argument("--rows", type=int, default=None, help="first N rows, not fold 0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--partial", default=None,
                        help="folder for a store over the finished shards of --store (still "
                        "being written): train on the fold-0 training rows among them")
    args = parser.parse_args()
    if args.partial:
        args.store = str(partial_store(Path(args.store), Path(args.partial)))
    torch.set_num_threads(args.threads)
    mb = 2**20
    start = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    with TreeRSS(0.5) as sampler:
        after_imports = sampler.sample() / mb
        t0 = time.perf_counter()
        store = GraphStore(args.store)
        if args.rows:
            rows = np.arange(min(args.rows, len(store)))
            what = f"first {len(rows)} rows of the store"
        else:
            rows = fold0_rows(store, partial=bool(args.partial))
            what = (f"official fold 0 training rows ({len(rows)})" if not args.partial else
                    f"the {len(rows)} official fold 0 training rows among the first "
                    f"{len(store)} graphs (partial store)")
        y = store.targets[rows]
        X = store[rows]
        open_s, after_open = time.perf_counter() - t0, sampler.sample() / mb
        marks = RowMarks(sampler, (*MARKS, len(rows)),
                         Path(args.results) / "mp_gap_epoch_progress.csv", start)
        model = CGCNNRegressor(max_epochs=1, random_state=0, verbose=0,
                               callbacks=[("row_marks", marks)])
        w0, c0 = time.perf_counter(), tree_cpu()
        model.fit(X, y)
        wall, cpu = time.perf_counter() - w0, tree_cpu() - c0
    peak, self_max = sampler.peak / mb, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    at = {m: v / mb for m, v in marks.at.items()}
    row = model.history_[-1]
    load = os.getloadavg()
    results = Path(args.results)
    csv = results / "mp_gap_epoch_rss.csv"
    new = not csv.exists()
    with open(csv, "a") as fh:
        if new:
            fh.write("run_start_utc,store_graphs,rows,rows_seen,rss_after_imports_mb,"
                     "rss_after_open_mb,peak_rss_10k_mb,peak_rss_50k_mb,peak_rss_all_mb,"
                     "self_maxrss_mb,epoch_dur_s,fit_wall_s,fit_cpu_s,train_loss,valid_loss,"
                     "threads,load1_end\n")
        fh.write(f"{start},{len(store)},{len(rows)},{marks.seen},{after_imports:.0f},"
                 f"{after_open:.0f},{at.get(10_000, float('nan')):.0f},"
                 f"{at.get(50_000, float('nan')):.0f},{peak:.0f},{self_max:.0f},"
                 f"{row['dur']:.1f},{wall:.1f},{cpu:.1f},{row['train_loss']:.5f},"
                 f"{row.get('valid_loss', float('nan')):.5f},{args.threads},{load[0]:.2f}\n")
    text = "\n".join([
        f"run {start} UTC: store {args.store} ({len(store)} graphs); {what}",
        f"default CGCNNRegressor, max_epochs=1, random_state=0, {args.threads} torch threads",
        f"open store + ids + targets + fold map: {open_s:.1f} s",
        f"tree RSS (this process + descendants, summed): after imports {after_imports:.0f} MB, "
        f"after opening the store {after_open:.0f} MB; peak after "
        + ", ".join(f"{m} rows {v:.0f} MB" for m, v in at.items())
        + f"; peak over the run {peak:.0f} MB (ru_maxrss of this process {self_max:.0f} MB)",
        f"rows streamed (training + validation batches): {marks.seen}",
        f"epoch {row['dur']:.0f} s (history dur); fit wall {wall:.0f} s, CPU {cpu:.0f} s "
        f"(process tree); train loss {row['train_loss']:.4f}, valid loss "
        f"{row.get('valid_loss', float('nan')):.4f} (standardised targets)",
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}",
    ]) + "\n\n"
    print(text)
    with open(results / "mp_gap_epoch_rss.txt", "a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
