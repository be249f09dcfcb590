"""Matbench benchmark: CGCNN next to the RF-SCM/Magpie baseline on the official folds.

A thin wrapper around :func:`skcgcnn.benchmark.main` (the same as ``skcgcnn benchmark`` with
``--results benchmarks/results`` unless ``--results`` is given). Per-fold
rows are appended to ``benchmarks/results/<task>.csv`` (folds already there for the same settings
are skipped), predictions and training histories are saved beside it, and the plots and the
table with the published Matbench v0.1 numbers are (re)drawn at the end. Examples, from the
repository root::

    # CGCNN, official folds 0 and 1 of matbench_perovskites, one fold per process on 1 thread
    nice -n 5 python benchmarks/matbench.py matbench_perovskites --data ../shared/datasets \
        --folds 0 --model cgcnn --preset budget --time-budget 6000 --threads 1
    # the baseline on all five folds
    nice -n 5 python benchmarks/matbench.py matbench_perovskites --data ../shared/datasets \
        --model rf-magpie
    # learning curve points: 1,000 training structures of fold 0
    python benchmarks/matbench.py matbench_mp_gap --data ../shared/datasets --folds 0 \
        --max-train 1000
    # only the table (and plots) from what is recorded
    python benchmarks/matbench.py matbench_perovskites --data ../shared/datasets --table --plots

See ``docs/benchmarks.md`` for the results and the command behind each row.
"""

from __future__ import annotations

import sys
from pathlib import Path

from skcgcnn.benchmark import main

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--results" or a.startswith("--results=") for a in argv):
        argv += ["--results", str(RESULTS)]
    sys.exit(main(argv))
