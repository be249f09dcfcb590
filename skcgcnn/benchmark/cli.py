"""Command line of the benchmark runner (``skcgcnn benchmark`` and ``python -m skcgcnn.benchmark``).

Examples::

    skcgcnn benchmark matbench_perovskites --data ../shared/datasets --folds 0,1 \\
        --model cgcnn --preset budget --time-budget 6000 --threads 1 --results results/
    skcgcnn benchmark matbench_perovskites --data ../shared/datasets --table --plots \\
        --results results/
    skcgcnn benchmark matbench_mp_gap --data ../shared/datasets --folds 0 --full \\
        --store mp_gap_graphs/ --n-jobs 8 --model cgcnn --device cuda --results results/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .models import DEFAULT_SEED, MODELS, PRESETS
from .tasks import FOLDS_FILE, MP_GAP_ARCHIVE, TASKS

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skcgcnn benchmark",
        description="CGCNN vs a classical baseline (Magpie + sine Coulomb matrix + random "
                    "forest) on Matbench-style folds; per-fold rows appended to "
                    "<results>/<task>.csv (resumable).",
    )
    p.add_argument("task", choices=sorted(TASKS))
    p.add_argument("--data", required=True, help="directory with the dataset files and "
                   f"{FOLDS_FILE}")
    p.add_argument("--folds", default=None, help="comma-separated fold numbers (default: all)")
    p.add_argument("--max-train", type=int, default=None,
                   help="subsample each training fold to N structures (learning curves)")
    p.add_argument("--model", default=",".join(MODELS),
                   help=f"comma-separated models: {', '.join(MODELS)} (default: all)")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS),
                   help="CGCNN training recipe")
    p.add_argument("--time-budget", type=float, default=None,
                   help="CGCNN: seconds of training per fold (cosine LR ends there)")
    p.add_argument("--max-epochs", type=int, default=None, help="CGCNN: override max_epochs")
    p.add_argument("--full", action="store_true",
                   help="the task's whole Matbench dataset (mp_gap, mp_is_metal: all 106,113 "
                   f"CIFs of {MP_GAP_ARCHIVE}) instead of its sample")
    p.add_argument("--store", default=None,
                   help="graph store folder for CGCNN: featurized there once (resumable), then "
                   "memory-mapped for every fold; the baseline still reads Structures")
    p.add_argument("--n-jobs", type=int, default=None,
                   help="parallel tasks for featurizing into --store, parsing CIFs and the "
                   "baseline's featurizers and trees")
    p.add_argument("--device", default="cpu", help="CGCNN device: cpu, cuda, auto, ...")
    p.add_argument("--checkpoint", default=None, metavar="DIR",
                   help="CGCNN: save each fold's training state here every epoch and resume "
                   "from it when the same command is run again (Ctrl-C stops after the "
                   "epoch)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--results", default=None,
                   help="results directory (default: the current directory)")
    p.add_argument("--table", action="store_true", help="only print the table")
    p.add_argument("--plots", action="store_true", help="(re)draw the plots")
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``skcgcnn benchmark``; returns the exit status.

    Examples
    --------
    >>> main(["matbench_perovskites", "--data", "../shared/datasets", "--folds", "0",
    ...       "--max-train", "1000"])  # doctest: +SKIP
    0
    """
    from .fold_state import FoldInterrupted
    from .plots import make_plots
    from .report import summary_table
    from .runner import run_benchmark

    args = _parser().parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    results = Path(args.results) if args.results else None
    if not args.table:
        folds = [int(k) for k in args.folds.split(",")] if args.folds else None
        try:
            run_benchmark(
                args.task, args.data,
                models=[m.strip() for m in args.model.split(",") if m.strip()],
                folds=folds, max_train=args.max_train, results_dir=results, seed=args.seed,
                preset=args.preset, time_budget=args.time_budget, max_epochs=args.max_epochs,
                verbose=0 if args.quiet else 1, full=args.full, store=args.store,
                n_jobs=args.n_jobs, device=args.device, checkpoint_dir=args.checkpoint,
            )
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except FoldInterrupted as exc:
            where = (f"; run the same command to resume from {args.checkpoint}"
                     if args.checkpoint else " (no --checkpoint: the fold restarts next time)")
            print(f"interrupted: {exc}, no row written{where}", file=sys.stderr)
            return 130
    if args.plots or not args.table:
        try:
            paths = make_plots(args.task, results)
        except ImportError as exc:
            if args.plots:  # asked for explicitly: an error
                print(f"error: {exc}", file=sys.stderr)
                return 2
            print(f"note: no plots drawn ({exc})", file=sys.stderr)
            paths = []
        for path in paths:
            print(f"wrote {path}")
    print(summary_table(args.task, results, args.data))
    return 0
