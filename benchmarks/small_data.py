"""Small-data experiments (issue 17): CGCNN recipes at ~1,000 training structures.

Each run fits one *variant* (a recipe, see ``VARIANTS``) on one task / fold / seed, predicts the
test fold and appends one row to ``benchmarks/results/small_data.csv`` (its test predictions go to
``small_data_predictions/``). Runs already in the CSV are skipped, so the script resumes.

The training structures are the same seeded subsample (seed 0) of the training fold as the
``skcgcnn benchmark --max-train N`` rows, so the random-forest predictions of that runner pair with
these row by row (``--report`` draws the paired bootstrap). ``--seed`` changes only the network's
seed (initialisation, inner validation split, batch order), not the training structures.

Choices between variants use the **inner validation split only** (the estimator's seeded 10 %
split of the training structures, identical for every variant at the same seed): the CSV records
``inner_valid_loss``, the best validation loss of the run (standardised targets, so comparable
across variants of one task).

Usage::

    python benchmarks/small_data.py matbench_perovskites --variants new,old,ft-eform --threads 1
    python benchmarks/small_data.py dielectric_n --folds 0,1,2,3,4 --variants new,rf
    python benchmarks/small_data.py --report                  # the 1k table with bootstrap CIs
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CSV = RESULTS / "small_data.csv"
PRED_DIR = RESULTS / "small_data_predictions"
DATA = Path(os.environ.get("SKCGCNN_DATA", ROOT.parent / "shared" / "datasets"))
CACHE = Path(os.environ.get("SKCGCNN_GRAPH_CACHE", Path.home() / ".cache" / "skcgcnn-small"))

#: Task -> (kind, metric, RF prediction file of ``skcgcnn benchmark`` at the same subsample).
TASKS = {
    "matbench_perovskites": ("regression", "mae"),
    "matbench_mp_gap": ("regression", "mae"),
    "matbench_mp_is_metal": ("classification", "roc_auc"),
    "elastic_log_kvrh": ("regression", "mae"),
    "elastic_log_gvrh": ("regression", "mae"),
    "dielectric_n": ("regression", "mae"),
}

#: Pretrained model each task fine-tunes from (formation energy everywhere: the band-gap,
#: metal-classification and moduli models were trained on Materials Project labels of many of
#: the very test structures, so fine-tuning from them would leak test labels).
FINETUNE_FROM = "formation-energy-per-atom"


def _subsample(train: np.ndarray, max_train: int | None, seed: int = 0) -> np.ndarray:
    """The seeded subsample of ``skcgcnn benchmark --max-train`` (same RNG calls)."""
    if max_train is None or max_train >= len(train):
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=max_train, replace=False))


def load(task: str) -> tuple[np.ndarray, np.ndarray, list, str]:
    """Structures, targets, the 5 folds and the kind of a task."""
    from sklearn.model_selection import KFold

    if task == "dielectric_n":
        from skcgcnn.datasets import load_matbench

        df = load_matbench(DATA / "dielectric_petousis.json.gz", target="n")
        X, y = df["structure"].to_numpy(), df["n"].to_numpy(dtype=float)
        kfold = KFold(5, shuffle=True, random_state=18012019)
        folds = [(tr.astype(np.intp), te.astype(np.intp)) for tr, te in kfold.split(X)]
        return X, y, folds, "regression"
    from skcgcnn.benchmark import load_task

    X, y, folds, spec = load_task(task, DATA)
    return X, y, folds, spec.kind


def graphs_for(task: str, fold: int, n_train: int | None) -> dict[str, Any]:
    """Graphs of the subsampled training fold and of the test fold (featurized once, cached)."""
    path = CACHE / f"{task}-fold{fold}-n{n_train}.pkl"
    if path.is_file():
        with open(path, "rb") as fh:
            return pickle.load(fh)
    from skcgcnn import CrystalGraphFeaturizer

    X, y, folds, kind = load(task)
    train, test = folds[fold]
    train = _subsample(train, n_train, 0)
    featurizer = CrystalGraphFeaturizer(n_jobs=1)
    data = {
        "kind": kind, "train": train, "test": test, "y_train": y[train], "y_test": y[test],
        "g_train": np.array(featurizer.graphs(list(X[train])), dtype=object),
        "g_test": np.array(featurizer.graphs(list(X[test])), dtype=object),
    }
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".tmp"), "wb") as fh:
        pickle.dump(data, fh)
    path.with_suffix(".tmp").replace(path)
    return data


# ------------------------------------------------------------------------------------ variants
def _schedule(kind: str) -> dict[str, Any]:
    """The agreed schedule: constant LR, anneal on plateau, stop once annealed."""
    from skcgcnn.callbacks import AnnealOnPlateau, EarlyStoppingIfValidated

    return {
        "callbacks__lr_scheduler": AnnealOnPlateau(patience=20, anneal_fraction=0.5),
        "callbacks__early_stopping": EarlyStoppingIfValidated(patience=30, load_best=True,
                                                              max_lr_fraction=0.05),
    }


def _old_schedule(kind: str) -> dict[str, Any]:
    """The defaults before issue 17: cosine over max_epochs, early stopping on patience 30."""
    import torch
    from skorch.callbacks import LRScheduler

    from skcgcnn.callbacks import EarlyStoppingIfValidated

    return {
        "callbacks__lr_scheduler": LRScheduler(torch.optim.lr_scheduler.CosineAnnealingLR,
                                               T_max=200),
        "callbacks__early_stopping": EarlyStoppingIfValidated(patience=30, load_best=True,
                                                              max_lr_fraction=None),
    }


VARIANTS: dict[str, dict[str, Any]] = {
    # name: {"schedule": callable, "params": estimator params, "finetune": pretrained name}
    "old": {"schedule": _old_schedule, "params": {}},
    "new": {"schedule": _schedule, "params": {}},
    "new-b32": {"schedule": _schedule, "params": {"batch_size": 32}},
    "new-small": {"schedule": _schedule,
                  "params": {"batch_size": 32, "module__atom_fea_len": 32,
                             "module__h_fea_len": 64, "optimizer__weight_decay": 0.05}},
    "ft-eform": {"schedule": _schedule, "params": {"lr": 5e-4}, "finetune": FINETUNE_FROM},
    "ft-eform-lr2e-3": {"schedule": _schedule, "params": {"lr": 2e-3},
                        "finetune": FINETUNE_FROM},
    # an L1 loss: the conditional median, which is 0 for a likely metal (MAE is the metric)
    "new-l1": {"schedule": _schedule, "params": {"criterion": "L1Loss"}},
    "ft-eform-l1": {"schedule": _schedule, "params": {"lr": 5e-4, "criterion": "L1Loss"},
                    "finetune": FINETUNE_FROM},
}


def make_cgcnn(variant: str, kind: str, seed: int) -> Any:
    import torch
    from sklearn.base import clone

    from skcgcnn import CGCNNClassifier, CGCNNRegressor

    spec = VARIANTS[variant]
    params = {**spec["schedule"](kind), **spec["params"]}
    if isinstance(params.get("criterion"), str):
        params["criterion"] = getattr(torch.nn, params["criterion"])
    cls = CGCNNRegressor if kind == "regression" else CGCNNClassifier
    if spec.get("finetune"):
        from skcgcnn import pretrained

        base = pretrained.load(spec["finetune"])
        arch = {k: v for k, v in base.get_params(deep=False).items() if k.startswith("module__")}
        return cls(random_state=seed, verbose=0, atom_features=clone(base).atom_features,
                   init_from=str(pretrained.checkpoint_path(spec["finetune"])),
                   **arch, **params)
    return cls(random_state=seed, verbose=0, **params)


def make_rf(kind: str, seed: int) -> Any:
    from skcgcnn.benchmark import make_model

    return make_model("rf-magpie", kind, seed)


# ------------------------------------------------------------------------------------ runs
def _done() -> set[tuple]:
    if not CSV.is_file():
        return set()
    rows = pd.read_csv(CSV)
    return {(r.task, r.variant, int(r.fold), int(r.seed), int(r.n_train))
            for r in rows.itertuples()}


def _append(row: dict[str, Any]) -> None:
    import fcntl

    CSV.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([row])
    with open(CSV, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        header = fh.tell() == 0
        if not header:
            frame = frame.reindex(columns=pd.read_csv(CSV, nrows=0).columns)
        frame.to_csv(fh, header=header, index=False)


def _versions() -> str:
    from importlib.metadata import version

    return " ".join(f"{p}={version(p)}" for p in ("torch", "skorch", "scikit-learn"))


def run_one(task: str, variant: str, fold: int, seed: int, n_train: int | None,
            note: str = "") -> dict[str, Any] | None:
    from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

    data = graphs_for(task, fold, n_train)
    n = len(data["train"])
    if (task, variant, fold, seed, n) in _done():
        print(f"[{task}] {variant} fold {fold} seed {seed} n {n}: done, skipped", flush=True)
        return None
    kind = data["kind"]
    print(f"[{task}] {variant} fold {fold} seed {seed}: fitting on {n}", flush=True)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        warnings.filterwarnings("ignore", category=np.exceptions.ComplexWarning)
        if variant == "rf":
            X, _, _, _ = load(task)
            model = make_rf(kind, seed).fit(X[data["train"]], data["y_train"])
            Xt = X[data["test"]]
        else:
            model = make_cgcnn(variant, kind, seed).fit(data["g_train"], data["y_train"])
            Xt = data["g_test"]
        fit_time = time.perf_counter() - t0
        pred = model.predict(Xt)
        proba = model.predict_proba(Xt)[:, 1] if kind == "classification" else None
    y = data["y_test"]
    if kind == "regression":
        scores = {"mae": mean_absolute_error(y, pred),
                  "rmse": float(np.sqrt(np.mean((np.asarray(y) - pred) ** 2)))}
    else:
        scores = {"roc_auc": roc_auc_score(y, proba), "accuracy": accuracy_score(y, pred)}
    row: dict[str, Any] = {"task": task, "variant": variant, "fold": fold, "seed": seed,
                           "n_train": n, "n_test": len(y), **scores}
    if variant != "rf":
        hist = model.history_
        valid = [h.get("valid_loss") for h in hist if h.get("valid_loss") is not None]
        best = int(np.argmin(valid)) + 1 if valid else None
        anneal = [h.get("anneal_start") for h in hist if h.get("anneal_start") is not None]
        row.update(
            inner_valid_loss=float(min(valid)) if valid else math.nan,
            inner_valid_score=_inner_score(model, data, kind),
            best_epoch=best, n_epochs=len(hist),
            anneal_start=anneal[-1] if anneal else None,
            lr_at_stop=float(model.optimizer_.param_groups[0]["lr"]),
            lr=float(model.lr),
        )
    row.update(fit_time_s=round(fit_time, 1), threads=_threads(), note=note,
               versions=_versions(),
               finished_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    PRED_DIR.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"position": data["test"], "y_true": y, "y_pred": pred})
    if proba is not None:
        frame["p_true"] = proba
    frame.to_csv(PRED_DIR / f"{task}-{variant}-n{n}-fold{fold}-seed{seed}.csv", index=False,
                 float_format="%.6g")
    _append(row)
    metric = TASKS[task][1]
    print(f"[{task}] {variant} fold {fold} seed {seed}: {metric} = {row[metric]:.4f}, "
          f"fit {fit_time:.0f} s, inner valid {row.get('inner_valid_loss', math.nan):.4f}, "
          f"epochs {row.get('n_epochs')}", flush=True)
    return row


def _inner_score(model: Any, data: dict[str, Any], kind: str) -> float:
    """MAE (or ROC-AUC) of the fitted model on its own inner validation split, in target units:
    comparable across variants whatever their loss."""
    from sklearn.metrics import roc_auc_score

    y = data["y_train"]
    y_split = model.classes_.searchsorted(y) if kind == "classification" else y
    _, valid = model.get_split_datasets(data["g_train"], y_split)
    if valid is None:
        return math.nan
    idx = np.asarray(valid.indices)
    g = data["g_train"][idx]
    if kind == "classification":
        return float(roc_auc_score(y[idx], model.predict_proba(g)[:, 1]))
    return float(np.mean(np.abs(y[idx] - model.predict(g))))


# ------------------------------------------------------------------------------------ report
def _rf_predictions(task: str, n: int) -> pd.DataFrame | None:
    """Test predictions of the random forest on the same training structures, all folds run."""
    if task == "dielectric_n":
        files = sorted(PRED_DIR.glob(f"{task}-rf-n*-fold*-seed0.csv"))
    else:  # rows of ``skcgcnn benchmark --max-train N --model rf-magpie`` (seed 0, fold 0)
        bench = pd.read_csv(RESULTS / f"{task}.csv")
        rows = bench[(bench.model == "rf-magpie") & (bench.n_train == n) & (bench.fold == 0)]
        files = [RESULTS / f"{task}_predictions" / f"rf-magpie-{sid}-fold0.csv"
                 for sid in rows.settings_id.unique()[:1]]
    frames = [pd.read_csv(f) for f in files if f.is_file()]
    return pd.concat(frames, ignore_index=True) if frames else None


def _cgcnn_predictions(task: str, variant: str, seed: int, folds: list[int],
                       n: int | None) -> pd.DataFrame | None:
    frames = []
    for fold in folds:
        found = sorted(PRED_DIR.glob(f"{task}-{variant}-n*-fold{fold}-seed{seed}.csv"))
        if not found:
            return None
        frames.append(pd.read_csv(found[0]))
    return pd.concat(frames, ignore_index=True)


def _metric(kind: str, y: np.ndarray, pred: np.ndarray) -> float:
    if kind == "regression":
        return float(np.mean(np.abs(y - pred)))
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, pred))


def paired_bootstrap(kind: str, y: np.ndarray, a: np.ndarray, b: np.ndarray,
                     n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """metric(a) - metric(b) and its 95 % percentile interval over resampled test structures."""
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        diffs[i] = _metric(kind, y[idx], a[idx]) - _metric(kind, y[idx], b[idx])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return _metric(kind, y, a) - _metric(kind, y, b), float(lo), float(hi)


def report(n_train: int = 1000) -> str:
    """The small-data table: per task, RF vs each CGCNN variant (seed 0), with the paired
    bootstrap interval of (CGCNN - RF), and the variant the inner validation loss picks."""
    rows = pd.read_csv(CSV)
    lines = ["| task (metric) | n_train | RF | CGCNN variant | test | inner valid loss | "
             "epochs (anneal start) | CGCNN - RF [95 % CI] | variant - new [95 % CI] |",
             "|" + " --- |" * 9]
    for task, (kind, metric) in TASKS.items():
        sub = rows[(rows.task == task) & (rows.variant != "rf") & (rows.seed == 0)]
        if task != "dielectric_n":
            sub = sub[sub.n_train == n_train]
        if sub.empty:
            continue
        folds = sorted(sub.fold.unique())
        rf = _rf_predictions(task, n_train)
        pick = sub.groupby("variant").inner_valid_loss.mean().idxmin()
        col = "p_true" if kind == "classification" else "y_pred"
        default = _cgcnn_predictions(task, "new", 0, folds, n_train)
        for variant, group in sub.groupby("variant"):
            if sorted(group.fold) != folds:
                continue
            pred = _cgcnn_predictions(task, variant, 0, folds, n_train)
            vs_new = ""
            if default is not None and variant != "new":
                both = pred.merge(default, on="position", suffixes=("", "_new"))
                d, lo, hi = paired_bootstrap(kind, both.y_true.to_numpy(), both[col].to_numpy(),
                                             both[col + "_new"].to_numpy())
                vs_new = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            test = _metric(kind, pred.y_true.to_numpy(), pred[col].to_numpy())
            ci, rf_score = "", ""
            if rf is not None:
                merged = pred.merge(rf, on="position", suffixes=("", "_rf"))
                if len(merged) == len(pred):
                    y = merged.y_true.to_numpy()
                    d, lo, hi = paired_bootstrap(kind, y, merged[col].to_numpy(),
                                                 merged[col + "_rf"].to_numpy())
                    ci = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
                    rf_score = f"{_metric(kind, y, merged[col + '_rf'].to_numpy()):.4f}"
            epochs = "/".join(f"{int(e)}" for e in group.n_epochs)
            starts = "/".join("-" if pd.isna(a) else f"{int(a)}" for a in group.anneal_start)
            mark = " (picked)" if variant == pick else ""
            lines.append(
                f"| {task} ({metric}) | {int(group.n_train.mean())} | {rf_score} | "
                f"{variant}{mark} | {test:.4f} | {group.inner_valid_loss.mean():.4f} | "
                f"{epochs} ({starts}) | {ci} | {vs_new} |")
    return "\n".join(lines)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", nargs="?", choices=sorted(TASKS))
    p.add_argument("--variants", default="new")
    p.add_argument("--folds", default="0")
    p.add_argument("--seeds", default="0")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--note", default="")
    p.add_argument("--featurize-only", action="store_true")
    p.add_argument("--report", action="store_true")
    args = p.parse_args(argv)
    if args.report:
        print(report(args.n_train))
        return 0
    import torch

    torch.set_num_threads(args.threads)
    for fold in (int(k) for k in args.folds.split(",")):
        graphs_for(args.task, fold, args.n_train)
        if args.featurize_only:
            continue
        for seed in (int(s) for s in args.seeds.split(",")):
            for variant in args.variants.split(","):
                run_one(args.task, variant, fold, seed, args.n_train, args.note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
