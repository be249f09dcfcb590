"""Prediction latency for one structure (featurize + forward), warm, on one core.

Usage (from the repository root, in the benchmark environment of ``benchmarks/README.md``)::

    nice -n 5 /work/bench-venv/bin/python benchmarks/latency.py [--quick]

For each of 200 structures of matbench_mp_gap_sample10k, one at a time, each seen once (the
models and code are warm: one untimed prediction on another structure first):

* skcgcnn, module level: ``build_graph`` -> ``collate_graphs`` -> ``CGCNN`` (eval, no grad);
* skcgcnn, estimator level: ``CGCNNRegressor.predict([structure])`` (skorch, target scaling);
* original: the reference featurization (``benchmarks/_common.OriginalFeaturization``) ->
  ``collate_pool`` -> cgcnn2's ``CrystalGraphConvNet`` (eval, no grad).

All use the default architecture (64, 3 convolutions, 128) and one torch thread.
Output: ``benchmarks/results/speed_latency.txt``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from _common import ATOM_INIT, OriginalFeaturization, Report, load_sample, machine, table
from cgcnn2.data import collate_pool
from cgcnn2.model import CrystalGraphConvNet

from skcgcnn import CGCNNRegressor, build_graph
from skcgcnn.batch import collate_graphs
from skcgcnn.elements import load_atom_init
from skcgcnn.model import CGCNN


def call_ms(fn, structure) -> float:
    start = time.perf_counter()
    fn(structure)
    return 1e3 * (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    report = Report("speed_latency")
    report("# Prediction latency, one structure at a time (warm, 1 torch thread)")
    report(f"\nmachine: {machine()}")

    structures, y = load_sample(50 if args.quick else 200, seed=4)
    train, train_y = load_sample(128, seed=5)
    torch.manual_seed(0)
    module = CGCNN(load_atom_init(ATOM_INIT)).eval()
    original = CrystalGraphConvNet(92, 41).eval()
    featurize_original = OriginalFeaturization()
    estimator = CGCNNRegressor(max_epochs=1, batch_size=64, train_split=None, verbose=0,
                               random_state=0).fit(np.array(train, dtype=object), train_y)

    @torch.no_grad()
    def ours(structure):
        return module(collate_graphs([build_graph(structure)]))

    def ours_estimator(structure):
        return estimator.predict([structure])

    @torch.no_grad()
    def theirs(structure):
        inputs, _, _ = collate_pool([(featurize_original(structure), torch.zeros(1), "id")])
        return original(*inputs)

    methods = {
        "skcgcnn: build_graph + collate_graphs + CGCNN": ours,
        "skcgcnn: CGCNNRegressor.predict([structure])": ours_estimator,
        "original: reference featurization + collate_pool + model": theirs,
    }
    for fn in methods.values():  # warm: first-call costs, on a structure not timed
        fn(train[0])
    times = {name: [] for name in methods}
    for s in structures:  # each structure seen once by each method, interleaved
        for name, fn in methods.items():
            times[name].append(call_ms(fn, s.copy()))  # a copy: no pymatgen caches
    atoms = np.array([len(s) for s in structures])
    rows = []
    for name, t in times.items():
        t = np.array(t)
        rows.append([name, float(np.median(t)), float(np.percentile(t, 90)),
                     float(t.max()), float(np.median(t[atoms <= 40])),
                     float(np.median(t[atoms > 40])) if (atoms > 40).any() else float("nan")])
    report(f"\n### {len(structures)} structures (median {np.median(atoms):.0f} atoms, "
           f"max {atoms.max()}), ms per prediction\n")
    report(table(["path", "median", "p90", "max", "median, <= 40 atoms", "median, > 40 atoms"],
                 rows))
    report("\n### Targets")
    median_ours = float(np.median(times["skcgcnn: CGCNNRegressor.predict([structure])"]))
    report(table(["target", "measured", "goal"], [
        ["latency, one structure, warm (estimator, median)", f"{median_ours:.1f} ms", "< 20 ms"],
    ]))
    report.save()


if __name__ == "__main__":
    main()
