"""Fine-tuning two pretrained CGCNN models vs training from scratch, on 1,000 perovskites.

The measurement of ``docs/pretrained.md``: Matbench perovskites (``e_form``, heat of formation,
eV per 5-atom cell), a fixed split of the 18,928 rows (a seeded permutation: the first
``--n-train`` rows train, the next ``--n-test`` rows test), and three routes with the same budget
(the same architecture, element table, ``max_epochs``, batch size, validation split and early
stopping; only the starting weights differ):

* ``scratch``: ``CGCNNRegressor`` with the pretrained models' architecture and element table,
  randomly initialised;
* ``formation-energy-per-atom`` and ``band-gap``: the pretrained model loaded by name, then
  ``fit`` -- which fine-tunes from its weights (the one obvious path of ``docs/pretrained.md``);
* the same two with the body frozen (``freeze="body"``: only the layers after pooling train).

Every (route, seed) is one row of the CSV, written as soon as it is done; rows already in the
file are skipped, so an interrupted run resumes. Usage, from the repository root::

    nice -n 10 python benchmarks/finetune_pretrained.py    # -> results/finetune_perovskites.csv
    python benchmarks/finetune_pretrained.py --table        # the markdown table of that CSV
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "matbench_perovskites.json.gz"
OUT = Path(__file__).resolve().parent / "results" / "finetune_perovskites.csv"
PRETRAINED = ("formation-energy-per-atom", "band-gap")
FIELDS = ["route", "freeze", "seed", "n_train", "n_test", "max_epochs", "epochs_run", "lr",
          "mae", "r2", "baseline_mae", "seconds", "threads", "torch", "machine"]


def _routes(epochs: int, lr: float, lr_finetune: float) -> list[tuple[str, str, dict]]:
    routes = [("scratch", "", {"lr": lr})]
    for name in PRETRAINED:
        routes.append((name, "", {"lr": lr_finetune}))
    for name in PRETRAINED:
        routes.append((name, "body", {"lr": lr, "freeze": "body"}))
    return routes


def _model(route: str, settings: dict, seed: int, epochs: int):
    from skcgcnn import CGCNNRegressor, pretrained

    common = {"max_epochs": epochs, "random_state": seed, "verbose": 0, "batch_size": 64}
    if route == "scratch":
        reference = pretrained.load(PRETRAINED[0])  # its architecture and element table
        arch = {k: v for k, v in reference.get_params(deep=False).items()
                if k.startswith("module__") or k in ("atom_features", "featurizer")}
        return CGCNNRegressor(**arch, **common, **settings)
    return pretrained.load(route).set_params(**common, **settings)  # fit fine-tunes


def table(path: Path) -> str:
    """Markdown table of the CSV: test MAE per route, mean over the seeds done (and each seed)."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return "(no rows yet)"
    routes: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        routes.setdefault((row["route"], row["freeze"]), []).append(row)
    first = rows[0]
    lines = [
        f"Test MAE (eV per cell) on {first['n_test']} perovskites, {first['n_train']} for training "
        f"(10 % of them for early stopping), at most {first['max_epochs']} epochs; predicting the "
        f"training mean gives {float(first['baseline_mae']):.4f}.",
        "",
        "| route | frozen body | lr | test MAE (mean) | per seed | epochs run |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (route, freeze), group in routes.items():
        maes = [float(r["mae"]) for r in group]
        per_seed = ", ".join(f"{float(r['mae']):.4f} (seed {r['seed']})" for r in group)
        epochs = ", ".join(r["epochs_run"] for r in group)
        name = "from scratch" if route == "scratch" else f"fine-tuned from `{route}`"
        lines.append(f"| {name} | {'yes' if freeze else 'no'} | {group[0]['lr']} | "
                     f"{np.mean(maes):.4f} | {per_seed} | {epochs} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--lr", type=float, default=2e-3, help="scratch and frozen-body lr")
    parser.add_argument("--lr-finetune", type=float, default=5e-4, help="full fine-tuning lr")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--routes", nargs="+", default=None,
                        help="only these routes (scratch, a pretrained name), e.g. to run them "
                        "in separate processes")
    parser.add_argument("--no-frozen", action="store_true", help="skip the frozen-body routes")
    parser.add_argument("--table", action="store_true", help="print the table of --out, exit")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.out))
        return
    torch.set_num_threads(args.threads)

    from sklearn.metrics import mean_absolute_error, r2_score

    from skcgcnn import CrystalGraphFeaturizer
    from skcgcnn.datasets import load_matbench

    if not DATA.exists():
        raise SystemExit(f"{DATA} not found (the benchmark reads ../shared/datasets)")
    df = load_matbench(DATA, target="e_form")
    order = np.random.default_rng(args.split_seed).permutation(len(df))
    train, test = order[: args.n_train], order[args.n_train: args.n_train + args.n_test]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = CrystalGraphFeaturizer().graphs(df["structure"].to_numpy()[np.r_[train, test]])
    g_train, g_test = graphs[: len(train)], graphs[len(train):]
    y = df["e_form"].to_numpy(dtype=float)
    y_train, y_test = y[train], y[test]
    baseline = mean_absolute_error(y_test, np.full_like(y_test, y_train.mean()))

    done = set()
    if args.out.exists():
        with open(args.out) as f:
            done = {(r["route"], r["freeze"], int(r["seed"]), int(r["n_train"]),
                     int(r["max_epochs"])) for r in csv.DictReader(f)}
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", newline="") as f:
            csv.writer(f).writerow(FIELDS)
    for seed in args.seeds:
        for route, freeze, settings in _routes(args.epochs, args.lr, args.lr_finetune):
            key = (route, freeze, seed, args.n_train, args.epochs)
            if key in done or (args.routes and route not in args.routes) or (
                    freeze and args.no_frozen):
                continue
            model = _model(route, settings, seed, args.epochs)
            start = time.perf_counter()
            model.fit(g_train, y_train)
            seconds = time.perf_counter() - start
            pred = model.predict(g_test)
            row = {
                "route": route, "freeze": freeze, "seed": seed, "n_train": args.n_train,
                "n_test": len(test), "max_epochs": args.epochs, "epochs_run": len(model.history),
                "lr": settings["lr"], "mae": f"{mean_absolute_error(y_test, pred):.5f}",
                "r2": f"{r2_score(y_test, pred):.4f}", "baseline_mae": f"{baseline:.5f}",
                "seconds": f"{seconds:.0f}", "threads": args.threads, "torch": torch.__version__,
                "machine": platform.machine(),
            }
            with open(args.out, "a", newline="") as f:
                csv.DictWriter(f, FIELDS).writerow(row)
            print(", ".join(f"{k}={row[k]}" for k in ("route", "freeze", "seed", "mae",
                                                      "epochs_run", "seconds")), flush=True)


if __name__ == "__main__":
    main()
