"""Where the time goes in parallel featurization of in-memory Structures (``featurize_many``).

Usage (from the repository root)::

    nice -n 10 python benchmarks/profile_parallel.py [--n 3000]

Reads the first ``--n`` CIFs of ``../shared/datasets/matbench_mp_gap_cifs.tar.gz`` and times, per
structure and in this process: parsing the CIF, pickling a Structure (dumps + loads, as a worker
pool does), extracting the arrays the graph is built from (``_GraphInputs``, done in the parent),
pickling those, building the graph, pickling the graph (the result that travels back); then the
cost of starting loky workers and ``featurize_many`` with ``n_jobs=1`` vs ``n_jobs=2``. The load
average is printed next to the numbers: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import pickle
import tarfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from pymatgen.core import Structure  # noqa: E402

from skcgcnn import CrystalGraphFeaturizer  # noqa: E402
from skcgcnn.graph import _GraphInputs  # noqa: E402

TAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets",
                   "matbench_mp_gap_cifs.tar.gz")


def first_cifs(n: int) -> list[str]:
    texts = []
    with tarfile.open(TAR) as tar:
        for member in tar:
            if member.name.endswith(".cif"):
                texts.append(tar.extractfile(member).read().decode())
                if len(texts) == n:
                    break
    return texts


def per_item(label: str, fn, items, rows) -> list:
    t0, c0 = time.perf_counter(), time.process_time()
    out = [fn(x) for x in items]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows.append((label, 1e3 * wall / len(items), 1e3 * cpu / len(items)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    texts = first_cifs(args.n)
    rows: list = []
    structures = per_item("parse CIF (Structure.from_str)", lambda t: Structure.from_str(
        t, fmt="cif"), texts, rows)
    blobs = per_item("pickle.dumps(Structure)", pickle.dumps, structures, rows)
    per_item("pickle.loads(Structure)", pickle.loads, blobs, rows)
    inputs = per_item("extract arrays in parent (_GraphInputs)", _GraphInputs, structures, rows)
    iblobs = per_item("pickle.dumps(_GraphInputs)", pickle.dumps, inputs, rows)
    per_item("pickle.loads(_GraphInputs)", pickle.loads, iblobs, rows)
    graphs = per_item("build graph from arrays", lambda x: x.build(8.0, 12, warn=False),
                      inputs, rows)
    gblobs = per_item("pickle.dumps(CrystalGraph)", pickle.dumps, graphs, rows)
    per_item("pickle.loads(CrystalGraph)", pickle.loads, gblobs, rows)
    print(f"\n{args.n} structures, {np.mean([len(s) for s in structures]):.1f} atoms on average")
    print(f"{'step':45s} {'ms/structure wall':>18s} {'ms CPU':>8s}")
    for label, wall, cpu in rows:
        print(f"{label:45s} {wall:18.3f} {cpu:8.3f}")
    print(f"pickled sizes (mean bytes): CIF text {np.mean([len(t) for t in texts]):.0f}, "
          f"Structure {np.mean([len(b) for b in blobs]):.0f}, _GraphInputs "
          f"{np.mean([len(b) for b in iblobs]):.0f}, CrystalGraph "
          f"{np.mean([len(b) for b in gblobs]):.0f}")

    t0 = time.perf_counter()
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))
    print(f"\nloky: start 2 workers + 1 trivial task each: {time.perf_counter() - t0:.2f} s")
    t0 = time.perf_counter()
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(2))
    print(f"loky: same again, workers warm: {1e3 * (time.perf_counter() - t0):.1f} ms")

    print(f"\nfeaturize_many on the {args.n} parsed Structures (warm workers), 3 rounds:")
    one, two = CrystalGraphFeaturizer(n_jobs=1), CrystalGraphFeaturizer(n_jobs=2)
    for r in range(3):
        for name, f in (("n_jobs=1", one), ("n_jobs=2", two)):
            t0, c0 = time.perf_counter(), time.process_time()
            f.featurize_many(structures)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            print(f"  round {r} {name}: wall {wall:.2f} s, parent CPU {cpu:.2f} s")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
