"""Peak RSS of training from a GraphStore: one full data pass over fold 0's training rows.

Usage (from the repository root, after ``benchmarks/mp_gap_store.py``)::

    nice -n 10 python benchmarks/mp_gap_memory.py --store /work/stores/mp_gap [--steps 40]

Streams every training row of official matbench_mp_gap fold 0 (84,890 structures; or the first
``--rows`` rows of a partial store) through the training data path: a shuffled torch DataLoader
over :class:`~skcgcnn.batch.StoreDataset`, batches of 64 collated from the store's
memory-mapped columns. The default CGCNN network (``CGCNN`` with the built-in element table,
AdamW, MSE) takes a training step on the first ``--steps`` batches; the remaining batches are
collated only (a full training epoch on the shared 2-core machine takes hours). The resident
memory of the process (which includes the store's pages mapped so far) is recorded after 10k,
50k and all rows: ``benchmarks/results/mp_gap_train_rss.txt``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader

from skcgcnn.batch import StoreDataset, collate_store
from skcgcnn.elements import resolve_atom_features
from skcgcnn.model import CGCNN
from skcgcnn.store import GraphStore

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "datasets"


def partial_store(source: Path, folder: Path) -> Path:
    """A store over the consecutive finished shards of a store still being written (no
    manifest yet): symbolic links to those shards plus a manifest built from their shard.json."""
    from skcgcnn._shards import FORMAT_VERSION, STORE_FORMAT, read_shard_info

    folder.mkdir(parents=True, exist_ok=True)
    shards, failures, k = [], [], 0
    while (info := read_shard_info(source / f"shard-{k:06d}", missing_ok=True)) is not None:
        name = f"shard-{k:06d}"
        if not (folder / name).exists():
            (folder / name).symlink_to(source / name)
        shards.append({"name": name, "n_graphs": info["n_graphs"], "n_atoms": info["n_atoms"],
                       "sha256": info["sha256"]})
        failures += info["failures"]
        k += 1
    manifest = {"format": STORE_FORMAT, "format_version": FORMAT_VERSION,
                "radius": info_radius(source), "max_num_nbr": 12, "target_names": ["gap pbe"],
                "shards": shards, "failures": failures}
    (folder / "graphstore.json").write_text(json.dumps(manifest, sort_keys=True, indent=1))
    return folder


def info_radius(source: Path) -> float:
    return float(json.loads((source / "shard-000000" / "shard.json").read_text())["radius"])


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", default="/work/stores/mp_gap")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rows", type=int, default=None, help="first N rows, not fold 0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--partial", default=None,
                        help="folder for a store over the finished shards of --store")
    args = parser.parse_args()
    if args.partial:
        args.store = str(partial_store(Path(args.store), Path(args.partial)))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lines = [f"rss after imports: {rss_mb():.0f} MB"]
    t0 = time.perf_counter()
    store = GraphStore(args.store)
    if args.rows:
        rows = np.arange(min(args.rows, len(store)))
        what = f"first {len(rows)} rows of the store"
    else:
        splits = json.load(gzip.open(SHARED / "matbench_v0.1_validation.json.gz"))["splits"]
        where = {id_: i for i, id_ in enumerate(store.ids)}
        rows = np.array([where[i] for i in splits["matbench_mp_gap"]["fold_0"]["train"]])
        what = f"official fold 0 training rows ({len(rows)})"
    y = store.targets
    lines.append(f"open store + ids + targets: {time.perf_counter() - t0:.1f} s, "
                 f"rss {rss_mb():.0f} MB")
    y_train = ((y[rows] - y[rows].mean()) / y[rows].std()).astype(np.float32)[:, None]
    loader = DataLoader(StoreDataset(store[rows], y_train), batch_size=64, shuffle=True,
                        collate_fn=collate_store)
    model = CGCNN(resolve_atom_features("cgcnn"), radius=store.radius)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.002)
    seen, marks, peak = 0, {}, 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    step_time = 0.0
    for k, (batch, target) in enumerate(loader):
        if k < args.steps:
            s = time.perf_counter()
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(batch), target)
            loss.backward()
            optimizer.step()
            step_time += time.perf_counter() - s
        seen += len(batch)
        peak = max(peak, rss_mb())
        for mark in (10_000, 50_000):
            if seen >= mark and mark not in marks:
                marks[mark] = peak
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    lines += [
        f"{what}: {seen} rows in {len(loader)} batches of 64, {args.steps} training steps "
        f"({step_time:.1f} s), the rest collated only",
        f"peak RSS after 10k rows {marks.get(10_000, float('nan')):.0f} MB, after 50k "
        f"{marks.get(50_000, float('nan')):.0f} MB, after all {peak:.0f} MB",
        f"pass wall {wall:.0f} s, CPU {cpu:.0f} s; load average {os.getloadavg()}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    with open(HERE / "results" / "mp_gap_train_rss.txt", "a") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
