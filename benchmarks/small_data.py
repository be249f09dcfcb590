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
import io
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
#: where runs write (``--out``, e.g. a device machine's output folder; ``--merge`` brings them back)
RUN_DIR = Path(os.environ.get("SKCGCNN_SMALL_OUT", RESULTS))
CSV = RUN_DIR / "small_data.csv"
PRED_DIR = RUN_DIR / "small_data_predictions"
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


def _graph_pool(task: str) -> dict[int, Any]:
    """Every graph of a task featurized so far, by position in the dataset (one file per task).

    Folds and sizes share it, so a learning curve featurizes each structure once. Graphs from
    per-(fold, size) files of earlier runs are taken over."""
    path = CACHE / f"{task}-graphs.pkl"
    pool: dict[int, Any] = {}
    if path.is_file():
        with open(path, "rb") as fh:
            pool = pickle.load(fh)
    for old in sorted(CACHE.glob(f"{task}-fold*-n*.pkl")):
        with open(old, "rb") as fh:
            data = pickle.load(fh)
        for key in ("train", "test"):
            pool.update(zip((int(i) for i in data[key]), data["g_" + key], strict=True))
    return pool


def _save(obj: Any, path: Path) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        pickle.dump(obj, fh)
    tmp.replace(path)


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
    pool = _graph_pool(task)
    missing = sorted(set(int(i) for i in np.concatenate([train, test])) - set(pool))
    if missing:
        featurizer = CrystalGraphFeaturizer(n_jobs=1)
        pool.update(zip(missing, featurizer.graphs(list(X[missing])), strict=True))
        _save(pool, CACHE / f"{task}-graphs.pkl")
    data = {
        "kind": kind, "train": train, "test": test, "y_train": y[train], "y_test": y[test],
        "g_train": np.array([pool[int(i)] for i in train] + [None], dtype=object)[:-1],
        "g_test": np.array([pool[int(i)] for i in test] + [None], dtype=object)[:-1],
    }
    _save(data, path)
    return data


# ------------------------------------------------------------------------------------ variants
def _schedule(kind: str, from_best: bool = False, prefer_annealed: bool = False
              ) -> dict[str, Any]:
    """The agreed schedule: constant LR, anneal on plateau, stop once annealed; the anneal
    goes on from the last epoch's weights, and the best epoch of all is kept (the defaults
    up to 608c499)."""
    from skcgcnn.callbacks import AnnealOnPlateau, EarlyStoppingIfValidated

    return {
        "callbacks__lr_scheduler": AnnealOnPlateau(patience=20, anneal_fraction=0.5,
                                                   from_best=from_best),
        "callbacks__early_stopping": EarlyStoppingIfValidated(
            patience=30, load_best=True, max_lr_fraction=0.05, prefer_annealed=prefer_annealed),
    }


def _schedule_from_best(kind: str) -> dict[str, Any]:
    """The same schedule, its anneal started from the best epoch's weights
    (``AnnealOnPlateau(from_best=True)``)."""
    return _schedule(kind, from_best=True)


def _schedule_v2(kind: str) -> dict[str, Any]:
    """The defaults since 1a1898f: the anneal starts from the best epoch's weights, and the
    weights kept are the best annealed epoch's
    (``EarlyStoppingIfValidated(prefer_annealed=True)``)."""
    return _schedule(kind, from_best=True, prefer_annealed=True)


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
    # a log-transformed target (sklearn's TransformedTargetRegressor around the default): for
    # positive, right-skewed targets such as the refractive index n (1.3 to 16)
    "new-logy": {"schedule": _schedule, "params": {}, "log_target": True},
    # a hurdle model for targets with a mass at 0 (band gaps: 0 for every metal): the default
    # classifier for y == 0 and the default regressor on y != 0 (CGCNNHurdleRegressor)
    "hurdle": {"schedule": _schedule, "params": {}, "hurdle": True},
    # matminer's 22 Magpie element properties (z-scored) as the atom features, in place of
    # the built-in one-hot CGCNN encoding: the element data the random forest is built on
    "new-magpie": {"schedule": _schedule, "params": {}, "atom_table": "magpie"},
    # five default networks of different seeds, their mean (CGCNNEnsembleRegressor)
    "ens5": {"schedule": _schedule, "params": {}, "ensemble": 5},
    # the anneal starts from the best epoch's weights, not from the plateau's last epoch
    "afb": {"schedule": _schedule_from_best, "params": {}},
    # ... and the best *annealed* epoch is kept: the defaults since 1a1898f (with the MSE loss;
    # v2-l1 is the regressor's defaults since the L1 loss became the default)
    "v2": {"schedule": _schedule_v2, "params": {}},
    "v2-l1": {"schedule": _schedule_v2, "params": {"criterion": "L1Loss"}},
    "v2-magpie": {"schedule": _schedule_v2, "params": {}, "atom_table": "magpie"},
    "v2-logy": {"schedule": _schedule_v2, "params": {}, "log_target": True},
    "v2-ens5": {"schedule": _schedule_v2, "params": {}, "ensemble": 5},
    "v2-l1-magpie": {"schedule": _schedule_v2, "params": {"criterion": "L1Loss"},
                     "atom_table": "magpie"},
    "v2-l1-ens5": {"schedule": _schedule_v2, "params": {"criterion": "L1Loss"}, "ensemble": 5},
    # today's defaults fine-tuned from the formation-energy model (regression: the L1 loss)
    "v2-ft-eform": {"schedule": _schedule_v2, "params": {"lr": 5e-4},
                    "regression_params": {"criterion": "L1Loss"}, "finetune": FINETUNE_FROM},
    # five fine-tuned networks (v2-ft-eform) of different seeds, their mean
    "v2-ft-eform-ens5": {"schedule": _schedule_v2, "params": {"lr": 5e-4},
                         "regression_params": {"criterion": "L1Loss"},
                         "finetune": FINETUNE_FROM, "ensemble": 5},
    # today's defaults with the crystal's composition statistics beside the pooled embedding
    # (module__readout="mean_embedding+composition": mean/std/min/max of the element table)
    "v2-comp": {"schedule": _schedule_v2,
                "params": {"module__readout": "mean_embedding+composition"},
                "regression_params": {"criterion": "L1Loss"}},
}


#: The variant that is ``CGCNNRegressor()`` / ``CGCNNClassifier()`` today, by kind of task (the
#: anneal from the best epoch, the best annealed epoch kept: 1a1898f; the regressor's L1 loss),
#: and the defaults before (to 608c499).
DEFAULTS = {"regression": "v2-l1", "classification": "v2"}
PREVIOUS_DEFAULT = "new"


def reference_variant(runs: pd.DataFrame, kind: str) -> str:
    """What the other variants of ``runs`` (one task and size) are compared with: the default
    where it ran (seed 0), else the previous default."""
    ran = (runs.variant == DEFAULTS[kind]) & (runs.seed == 0)
    return DEFAULTS[kind] if ran.any() else PREVIOUS_DEFAULT


def no_inner_split(variant: str) -> bool:
    """Variants whose networks hold out different structures (a hurdle's two, an ensemble's
    members): no inner-validation loss or score comparable with one network's."""
    spec = VARIANTS.get(variant, {})
    return bool(spec.get("hurdle") or spec.get("ensemble"))


def make_cgcnn(variant: str, kind: str, seed: int, device: str = "cpu") -> Any:
    import torch
    from sklearn.base import clone

    from skcgcnn import CGCNNClassifier, CGCNNRegressor

    spec = VARIANTS[variant]
    params = {**spec["schedule"](kind), **spec["params"],
              **(spec.get("regression_params", {}) if kind == "regression" else {})}
    if kind == "regression":  # every variant names its loss (the default was MSE, is L1)
        params.setdefault("criterion", "MSELoss")
    if isinstance(params.get("criterion"), str):
        params["criterion"] = getattr(torch.nn, params["criterion"])
    cls = CGCNNRegressor if kind == "regression" else CGCNNClassifier
    if spec.get("finetune"):  # the pretrained model's architecture, table and weights
        from skcgcnn import pretrained

        base = pretrained.load(spec["finetune"])
        params.update({k: v for k, v in base.get_params(deep=False).items()
                       if k.startswith("module__")})
        params.update(atom_features=clone(base).atom_features,
                      init_from=str(pretrained.checkpoint_path(spec["finetune"])))
    if spec.get("hurdle"):
        from skcgcnn import CGCNNHurdleRegressor

        return CGCNNHurdleRegressor(
            CGCNNClassifier(verbose=0, device=device, **params),
            CGCNNRegressor(verbose=0, device=device, **params), random_state=seed)
    if spec.get("atom_table"):
        params["atom_features"] = spec["atom_table"]  # "magpie": skcgcnn._magpie's table
    if spec.get("ensemble"):
        # seeded members on graphs featurized once. The classifier ensembles' rows
        # (ens5, v2-ens5, v2-ft-eform-ens5) ran code before 9690c6d: scikit-learn's
        # VotingClassifier(voting="soft") over classifiers of the same seeds, the same numbers
        # (tests/test_uncertainty.py)
        from skcgcnn import CGCNNEnsembleClassifier, CGCNNEnsembleRegressor

        ensemble = CGCNNEnsembleRegressor if kind == "regression" else CGCNNEnsembleClassifier
        return ensemble(cls(verbose=0, device=device, **params),
                        n_estimators=spec["ensemble"], random_state=seed)
    model = cls(random_state=seed, verbose=0, device=device, **params)
    if spec.get("log_target"):
        from sklearn.compose import TransformedTargetRegressor

        return TransformedTargetRegressor(model, func=np.log, inverse_func=np.exp,
                                          check_inverse=False)
    return model


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


def _rescored() -> set[tuple]:
    """Rows that have an inner-split score (nothing left to rescore)."""
    if not CSV.is_file():
        return set()
    rows = pd.read_csv(CSV)
    if "inner_valid_score" not in rows:
        return set()
    rows = rows[rows.inner_valid_score.notna()]
    return {(r.task, r.variant, int(r.fold), int(r.seed), int(r.n_train))
            for r in rows.itertuples()}


def _append(row: dict[str, Any]) -> None:
    """Append one row (under a lock). A row with columns the CSV lacks (the first
    classification row of a CSV begun by regression rows) widens the header: the file is
    rewritten with every earlier row kept and the new columns empty for them."""
    import fcntl

    CSV.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([row])
    with open(CSV, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        if fh.tell() == 0:
            frame.to_csv(fh, header=True, index=False)
            return
        fh.seek(0)
        old = pd.read_csv(fh, dtype=str, keep_default_na=False)  # earlier rows kept as text
        new_cols = [c for c in frame.columns if c not in old.columns]
        if new_cols:
            text = pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str,
                               keep_default_na=False)
            fh.seek(0)
            fh.truncate()
            pd.concat([old, text], ignore_index=True).fillna("").to_csv(fh, index=False)
        else:
            fh.seek(0, os.SEEK_END)
            frame.reindex(columns=old.columns).to_csv(fh, header=False, index=False)


def backfill_classification_scores() -> int:
    """Fill ``roc_auc``/``accuracy`` of classification rows written before the CSV had those
    columns (they were dropped by the earlier ``_append``), from the row's own saved test
    predictions. Returns the number of rows filled."""
    import fcntl

    from sklearn.metrics import accuracy_score, roc_auc_score

    with open(CSV, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        rows = pd.read_csv(fh, dtype=str, keep_default_na=False)  # other cells kept as text
        for col in ("roc_auc", "accuracy"):
            if col not in rows.columns:
                rows[col] = ""
        filled = 0
        for i, r in rows.iterrows():
            if TASKS[r.task][0] != "classification" or r.roc_auc != "":
                continue
            path = _pred_file(r.task, r.variant, int(r.n_train), int(r.fold), int(r.seed))
            if not path.is_file():
                continue
            pred = pd.read_csv(path)
            rows.loc[i, "roc_auc"] = repr(float(roc_auc_score(pred.y_true, pred.p_true)))
            rows.loc[i, "accuracy"] = repr(float(accuracy_score(pred.y_true, pred.y_pred)))
            filled += 1
        if filled:
            fh.seek(0)
            fh.truncate()
            rows.to_csv(fh, index=False)
    return filled


def _versions() -> str:
    from importlib.metadata import version

    return " ".join(f"{p}={version(p)}" for p in ("torch", "skorch", "scikit-learn"))


def run_one(task: str, variant: str, fold: int, seed: int, n_train: int | None,
            note: str = "", device: str = "cpu") -> dict[str, Any] | None:
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
            model = make_cgcnn(variant, kind, seed, device).fit(data["g_train"], data["y_train"])
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
        # the network inside a target transform / a hurdle; an ensemble's first member
        net = getattr(model, "regressor_", getattr(model, "estimators_", [model])[0])
        hist = net.history_
        valid = [h.get("valid_loss") for h in hist if h.get("valid_loss") is not None]
        best = int(np.argmin(valid)) + 1 if valid else None
        anneal = [h.get("anneal_start") for h in hist if h.get("anneal_start") is not None]
        if VARIANTS[variant].get("ensemble"):
            note = (f"{note}; " if note else "") + "epochs of the members: " + "/".join(
                str(len(m.history_)) for m in model.estimators_)
        elif VARIANTS[variant].get("hurdle"):  # the regressor's numbers; the classifier's here
            clf = model.classifier_.history_
            note = (f"{note}; " if note else "") + (
                f"hurdle: zero fraction {model.zero_fraction_:.3f}, classifier "
                f"{len(clf)} epochs, best valid loss {min(h['valid_loss'] for h in clf):.4f}")
        apart = no_inner_split(variant)
        row.update(
            inner_valid_loss=math.nan if apart or not valid else float(min(valid)),
            inner_valid_score=math.nan if apart else _inner_score(model, data, kind),
            best_epoch=best, kept_epoch=_kept_epoch(net), n_epochs=len(hist),
            anneal_start=anneal[-1] if anneal else None,
            lr_at_stop=float(net.optimizer_.param_groups[0]["lr"]),
            lr=float(net.lr),
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


def _kept_epoch(net: Any) -> int | None:
    """The epoch whose weights the fitted network holds (early stopping's choice)."""
    early = dict(getattr(net, "callbacks_", [])).get("early_stopping")
    return getattr(early, "kept_epoch_", None)


def _inner_score(model: Any, data: dict[str, Any], kind: str) -> float:
    """MAE (or ROC-AUC) of the fitted model on its own inner validation split, in target units:
    comparable across variants whatever their loss."""
    from sklearn.metrics import roc_auc_score

    y = data["y_train"]
    y_split = model.classes_.searchsorted(y) if kind == "classification" else y
    # the split depends on the seed and the number of structures only (not on y's values)
    _, valid = getattr(model, "regressor_", model).get_split_datasets(data["g_train"], y_split)
    if valid is None:
        return math.nan
    idx = np.asarray(valid.indices)
    g = data["g_train"][idx]
    if kind == "classification":
        return float(roc_auc_score(y[idx], model.predict_proba(g)[:, 1]))
    return float(np.mean(np.abs(y[idx] - model.predict(g))))


# ------------------------------------------------------------------------------------ report
def _size(task: str, n_train: int) -> int:
    """The learning-curve size of a run: dielectric_n's whole training folds (844-845) are 1k."""
    return 1000 if task == "dielectric_n" and n_train >= 844 else int(n_train)


def _pred_file(task: str, variant: str, n: int, fold: int, seed: int) -> Path:
    return PRED_DIR / f"{task}-{variant}-n{n}-fold{fold}-seed{seed}.csv"


def _rf_predictions(task: str, size: int, folds: list[int]) -> pd.DataFrame | None:
    """Test predictions of the random forest on the same training structures (seed 0): rows of
    this script (variant ``rf``), else of ``skcgcnn benchmark --max-train N --model rf-magpie``."""
    rows = pd.read_csv(CSV)
    rows = rows[(rows.task == task) & (rows.variant == "rf") & (rows.seed == 0)]
    rows = rows[np.array([_size(task, n) == size for n in rows.n_train]) & rows.fold.isin(folds)]
    if len(rows) == len(folds):
        return pd.concat([pd.read_csv(_pred_file(task, "rf", int(r.n_train), int(r.fold), 0))
                          for r in rows.itertuples()], ignore_index=True)
    if folds != [0] or not (RESULTS / f"{task}.csv").is_file():
        return None
    bench = pd.read_csv(RESULTS / f"{task}.csv")
    rows = bench[(bench.model == "rf-magpie") & (bench.n_train == size) & (bench.fold == 0)]
    files = [RESULTS / f"{task}_predictions" / f"rf-magpie-{sid}-fold0.csv"
             for sid in rows.settings_id.unique()[:1]]
    frames = [pd.read_csv(f) for f in files if f.is_file()]
    return pd.concat(frames, ignore_index=True) if frames else None


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


def _versus(kind: str, pred: pd.DataFrame, other: pd.DataFrame | None, col: str) -> str:
    if other is None:
        return ""
    both = pred.merge(other, on="position", suffixes=("", "_b"))
    if len(both) != len(pred):
        return ""
    d, lo, hi = paired_bootstrap(kind, both.y_true.to_numpy(), both[col].to_numpy(),
                                 both[col + "_b"].to_numpy())
    return f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _predictions(task: str, variant: str, runs: pd.DataFrame) -> pd.DataFrame | None:
    """Test predictions of ``variant`` in the folds/sizes/seed of ``runs`` (CSV rows), joined."""
    files = [_pred_file(task, variant, int(r.n_train), int(r.fold), int(r.seed))
             for r in runs.itertuples()]
    if not files or not all(f.is_file() for f in files):
        return None
    return pd.concat([pd.read_csv(f) for f in files], ignore_index=True)


def _pick(runs: pd.DataFrame, kind: str) -> str:
    """The variant the training data picks: the best mean inner-validation score (MAE or
    ROC-AUC in target units, on the estimator's inner split) where every variant has one, else
    the lowest inner-validation loss among variants trained on the default loss; means over
    the (fold, seed) pairs every variant ran, where there are such pairs."""
    if {"fold", "seed"} <= set(runs.columns):
        pairs = runs.groupby("variant").apply(lambda g: set(zip(g.fold, g.seed, strict=True)),
                                              include_groups=False)
        common = set.intersection(*pairs)
        if common:
            keep = [(f, s) in common for f, s in zip(runs.fold, runs.seed, strict=True)]
            runs = runs[np.array(keep)]
    if "inner_valid_score" in runs and runs.inner_valid_score.notna().all():
        score = runs.groupby("variant").inner_valid_score.mean()
        return score.idxmax() if kind == "classification" else score.idxmin()
    same_loss = runs[~runs.variant.str.contains("l1|logy")]
    return same_loss.groupby("variant").inner_valid_loss.mean().idxmin()


def cgcnn_runs_by_size(sizes: list[int] | None = None):
    """(task, kind, metric, prediction column, size, CSV rows): the CGCNN runs of each task at
    each learning-curve size (all sizes, or those in ``sizes``)."""
    rows = pd.read_csv(CSV)
    rows["size"] = [_size(t, n) for t, n in zip(rows.task, rows.n_train, strict=True)]
    for task, (kind, metric) in TASKS.items():
        col = "p_true" if kind == "classification" else "y_pred"
        cg = rows[(rows.task == task) & (rows.variant != "rf")]
        for size in sorted(cg["size"].unique()):
            if not sizes or size in sizes:
                yield task, kind, metric, col, int(size), cg[cg["size"] == size]


def report(sizes: list[int] | None = None) -> str:
    """The small-data table: per task, size and seed, RF vs each CGCNN variant with the paired
    bootstrap interval of (CGCNN - RF) and (variant - reference), the reference being the
    default (``DEFAULTS[kind]``) where it ran, else the previous default (``new``), and the
    variant the inner validation loss picks (lowest mean over the seeds run for every
    variant)."""
    lines = ["| task (metric) | size | seed | folds | RF | CGCNN variant | test | "
             "inner valid loss | epochs (anneal start) | CGCNN - RF [95 % CI] | "
             "variant - reference [95 % CI] | note |", "|" + " --- |" * 12]
    for task, kind, metric, col, size, at in cgcnn_runs_by_size(sizes):
        pick = _pick(at, kind)
        ref = reference_variant(at, kind)
        for (seed, variant), group in at.groupby(["seed", "variant"]):
            folds = sorted(int(f) for f in group.fold)
            pred = _predictions(task, variant, group)
            if pred is None:
                continue
            new = at[(at.variant == ref) & (at.seed == seed) & at.fold.isin(folds)]
            vs_new = ""
            if variant != ref and len(new) == len(folds):
                vs_new = f"{_versus(kind, pred, _predictions(task, ref, new), col)} vs {ref}"
            rf = _rf_predictions(task, size, folds)
            rf_score = ""
            if rf is not None:
                merged = pred.merge(rf, on="position", suffixes=("", "_rf"))
                score = _metric(kind, merged.y_true.to_numpy(), merged[col + "_rf"].to_numpy())
                rf_score = f"{score:.4f}"
            test = _metric(kind, pred.y_true.to_numpy(), pred[col].to_numpy())
            epochs = "/".join(f"{int(e)}" for e in group.n_epochs)
            starts = "/".join("-" if pd.isna(a) else f"{int(a)}" for a in group.anneal_start)
            notes = "; ".join(sorted({str(n) for n in group.note if isinstance(n, str)}))
            lines.append(
                f"| {task} ({metric}) | {size} | {int(seed)} | "
                f"{','.join(map(str, folds))} | {rf_score} | "
                f"{variant}{' (picked)' if variant == pick else ''} | {test:.4f} | "
                f"{group.inner_valid_loss.mean():.4f} | {epochs} ({starts}) | "
                f"{_versus(kind, pred, rf, col)} | {vs_new} | {notes} |")
    return "\n".join(lines)


def plot_learning_curves() -> list[Path]:
    """One figure per task: test metric against training size, the random forest (seed 0) and
    each CGCNN variant (every seed a dot, the mean over seeds a line), on the folds the default
    ran at 1k (fold means for the 5-fold dielectric_n)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = pd.read_csv(CSV)
    rows["size"] = [_size(t, n) for t, n in zip(rows.task, rows.n_train, strict=True)]
    written = []
    for task, (kind, metric) in TASKS.items():
        sub = rows[rows.task == task]
        if sub.empty:
            continue
        # the folds every curve has (5-fold dielectric_n: those of the default at 1k, seed 0)
        at_1k = sub[sub["size"] == 1000]
        ref = at_1k[(at_1k.variant == reference_variant(at_1k, kind)) & (at_1k.seed == 0)]
        folds = sorted(int(f) for f in ref.fold) or [0]
        sub = sub[sub.fold.isin(folds)]
        fig, ax = plt.subplots(figsize=(5.5, 4))
        rf_rows = sub[sub.variant == "rf"]
        if task != "dielectric_n" and (RESULTS / f"{task}.csv").is_file():
            bench = pd.read_csv(RESULTS / f"{task}.csv")
            bench = bench[(bench.model == "rf-magpie") & (bench.fold == 0)]
            extra = bench.groupby("n_train")[metric].first().reset_index()
            extra = extra[~extra.n_train.isin(rf_rows["size"])]
            rf_curve = pd.concat([rf_rows.groupby("size")[metric].mean(),
                                  extra.set_index("n_train")[metric]]).sort_index()
        else:
            rf_curve = rf_rows.groupby("size")[metric].mean()
        rf_curve = rf_curve[rf_curve.index <= 4000]
        ax.plot(rf_curve.index, rf_curve.to_numpy(), "s-", color="0.4", label="RF-SCM/Magpie")
        if task != "dielectric_n" and (RESULTS / f"{task}.csv").is_file():
            bench = pd.read_csv(RESULTS / f"{task}.csv")
            bench = bench[(bench.model == "cgcnn") & (bench.preset == "budget")
                          & (bench.fold == 0) & (bench.n_train <= 4000)]
            budget = bench.groupby("n_train")[metric].last()
            if len(budget):
                ax.plot(budget.index, budget.to_numpy(), "^--", color="0.65",
                        label="CGCNN `budget` preset (skcgcnn benchmark)")
        for variant, group in sub[sub.variant != "rf"].groupby("variant"):
            per_seed = group.groupby(["size", "seed"])[metric].mean().reset_index()
            mean = per_seed.groupby("size")[metric].mean()
            n_seeds = per_seed.groupby("size").seed.nunique()
            line, = ax.plot(mean.index, mean.to_numpy(), "o-",
                            label=f"CGCNN {variant} (seeds: {'/'.join(map(str, n_seeds))})")
            ax.scatter(per_seed["size"], per_seed[metric], s=12, color=line.get_color(),
                       alpha=0.5)
        ax.set_xscale("log")
        ax.set_xlabel("training structures")
        ax.set_ylabel(f"test {metric}" + (" (fold mean)" if len(folds) > 1 else ""))
        ax.set_title(f"{task}: small data (fold {','.join(map(str, folds))})")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = RESULTS / f"small_data_{task}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _run_piece(piece: tuple, threads: int, note: str, device: str) -> str:
    """One (task, variant, fold, seed, n_train) in a worker process of ``--jobs``."""
    import traceback

    import torch

    torch.set_num_threads(threads)
    try:
        row = run_one(*piece, note=note, device=device)
    except Exception:  # one failing piece must not stop the others; the log says why
        return f"{piece}: FAILED\n{traceback.format_exc()}"
    return f"{piece}: {'skipped' if row is None else 'done'}"


def run_plan(pieces: list[tuple], jobs: int, threads: int, note: str, device: str) -> None:
    """Run pieces in ``jobs`` processes (each appends its row as soon as it finishes)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    for task, _, fold, _, n in sorted({(p[0], None, p[2], None, p[4]) for p in pieces}):
        graphs_for(task, fold, n)  # featurize (or load) once, before the workers start
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(_run_piece, piece, threads, note, device) for piece in pieces]
        for future in as_completed(futures):
            print(future.result(), flush=True)


def read_plan(path: str) -> list[tuple]:
    """Pieces from a plan file: one ``task variant fold seed n_train`` a line (# comments)."""
    pieces = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            task, variant, fold, seed, n = line.split()
            if task not in TASKS or variant.removesuffix("@rescore") not in {*VARIANTS, "rf"}:
                raise ValueError(f"unknown task or variant in plan: {line}")
            pieces.append((task, variant, int(fold), int(seed), int(n)))
    return pieces


def work(plan: str, threads: int, note: str, device: str) -> None:
    """A worker over a plan file shared with other workers: take the first piece that is
    neither in the CSV nor claimed (an ``O_EXCL`` file in the cache), run it, read the plan
    again (it may have been edited meanwhile), until nothing is left."""
    import torch

    torch.set_num_threads(threads)
    claims = CACHE / "claims"
    claims.mkdir(parents=True, exist_ok=True)
    while True:
        done = {(t, v, f, s, _size(t, n)) for t, v, f, s, n in _done()}
        done |= {(t, v + "@rescore", f, s, _size(t, n)) for t, v, f, s, n in _rescored()}
        for task, variant, fold, seed, n in read_plan(plan):
            key = (task, variant, fold, seed, _size(task, n))
            claim = claims / "{}-{}-fold{}-seed{}-n{}".format(*key)
            if key in done:
                continue
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            if variant.endswith("@rescore"):
                rescore(task, variant.removesuffix("@rescore"), fold, seed, n)
            else:
                run_one(task, variant, fold, seed, n, note=note, device=device)
            break
        else:
            return


def rescore(task: str, variant: str, fold: int, seed: int, n_train: int | None) -> bool:
    """Fill the inner-split score of a row written before the CSV kept that column: refit the
    same variant, seed and structures, and write the score only if the refit's test
    predictions equal the row's saved ones (to 1e-6), i.e. it is the same model (CPU fits are
    deterministic). The row's note says so. Returns whether the row was filled."""
    import fcntl

    import torch

    data = graphs_for(task, fold, n_train)
    n, kind = len(data["train"]), data["kind"]
    saved = pd.read_csv(_pred_file(task, variant, n, fold, seed))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PendingDeprecationWarning)
        model = make_cgcnn(variant, kind, seed).fit(data["g_train"], data["y_train"])
        col = "p_true" if kind == "classification" else "y_pred"
        again = (model.predict_proba(data["g_test"])[:, 1] if kind == "classification"
                 else model.predict(data["g_test"]))
        score = _inner_score(model, data, kind)
    gap = float(np.max(np.abs(again - saved[col].to_numpy())))
    print(f"[{task}] {variant} fold {fold} seed {seed}: refit, test predictions differ by at "
          f"most {gap:.2e}; inner score {score:.4f} (torch threads {torch.get_num_threads()})",
          flush=True)
    if gap > 1e-5:  # saved with 6 significant digits
        return False
    with open(CSV, "r+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        rows = pd.read_csv(fh, dtype=str, keep_default_na=False)
        if "inner_valid_score" not in rows.columns:
            rows["inner_valid_score"] = ""
        hit = ((rows.task == task) & (rows.variant == variant) & (rows.fold == str(fold))
               & (rows.seed == str(seed)) & (rows.n_train == str(n)))
        rows.loc[hit, "inner_valid_score"] = repr(score)
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.loc[hit, "note"] = (rows.loc[hit, "note"] + f" inner_valid_score from a refit "
                                 f"{stamp} (test predictions equal to {gap:.0e})").str.strip()
        fh.seek(0)
        fh.truncate()
        rows.to_csv(fh, index=False)
    return True


def merge(source: Path) -> int:
    """Append the rows of another run folder (a device run's output) that this CSV lacks,
    with their prediction files. Returns the number of rows added."""
    import shutil

    rows = pd.read_csv(source / "small_data.csv")
    done, added = _done(), 0
    for row in rows.to_dict("records"):
        key = (row["task"], row["variant"], int(row["fold"]), int(row["seed"]),
               int(row["n_train"]))
        name = f"{key[0]}-{key[1]}-n{key[4]}-fold{key[2]}-seed{key[3]}.csv"
        pred = source / "small_data_predictions" / name
        if key in done or not pred.is_file():
            continue
        PRED_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pred, PRED_DIR / name)
        _append(row)
        added += 1
    return added


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("task", nargs="?", choices=sorted(TASKS))
    p.add_argument("--variants", default="new")
    p.add_argument("--folds", default="0")
    p.add_argument("--seeds", default="0")
    p.add_argument("--n-train", default="1000",
                   help="one size or a comma-separated list (--report: 'all')")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1, help="pieces run in parallel processes")
    p.add_argument("--plan", help="a file of pieces: 'task variant fold seed n_train' a line")
    p.add_argument("--worker", action="store_true",
                   help="with --plan: take unclaimed pieces one by one (run several workers)")
    p.add_argument("--note", default="")
    p.add_argument("--featurize-only", action="store_true")
    p.add_argument("--report", action="store_true")
    p.add_argument("--plot", action="store_true", help="learning-curve plots of every task")
    p.add_argument("--merge", type=Path, help="append the rows of another run folder")
    p.add_argument("--backfill", action="store_true",
                   help="fill missing roc_auc/accuracy of classification rows from predictions")
    args = p.parse_args(argv)
    sizes = [] if args.n_train == "all" else [int(n) for n in args.n_train.split(",")]
    if args.report:
        print(report(sizes if args.n_train != "all" else None))
        return 0
    if args.plot:
        for path in plot_learning_curves():
            print(path)
        return 0
    if args.merge:
        print(f"{merge(args.merge)} rows added to {CSV}")
        return 0
    if args.backfill:
        print(f"{backfill_classification_scores()} classification rows filled in {CSV}")
        return 0
    if args.plan and args.worker:
        work(args.plan, args.threads, args.note, args.device)
        return 0
    if args.plan:
        pieces = read_plan(args.plan)
    else:
        pieces = [(args.task, v, int(f), int(s), n) for n in sizes
                  for f in args.folds.split(",") for s in args.seeds.split(",")
                  for v in args.variants.split(",")]
    if args.featurize_only:
        for task, _, fold, _, n in pieces:
            graphs_for(task, fold, n)
        return 0
    if args.jobs > 1:
        run_plan(pieces, args.jobs, args.threads, args.note, args.device)
        return 0
    import torch

    torch.set_num_threads(args.threads)
    for piece in pieces:
        run_one(*piece, note=args.note, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
