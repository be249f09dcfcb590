"""Train the default CGCNNRegressor on official matbench_mp_gap fold 0, streaming from a GraphStore.

Usage (from the repository root; run the store first with ``benchmarks/mp_gap_store.py``)::

    nice -n 10 python benchmarks/mp_gap_fold0.py train --store /work/stores/mp_gap \\
        --work /work/stores/mp_gap_fold0
    nice -n 10 python benchmarks/mp_gap_fold0.py evaluate --store /work/stores/mp_gap \\
        --work /work/stores/mp_gap_fold0

``train`` is resumable: every epoch a skorch ``Checkpoint(monitor=None)`` in ``--work`` holds the
whole training state, and rerunning the same command continues from it (``LoadInitState``;
the estimator reseeds every epoch from ``random_state``, so a resumed run equals a straight one;
a second checkpoint keeps the best validation epoch's weights, restored when training ends).
Each finished epoch appends a row to ``benchmarks/results/mp_gap_fold0_epochs.csv`` (losses are
those of the estimator's history, on standardised targets; the validation RMSE is converted to
eV), with wall and CPU seconds, the peak RSS of the process and the load average.
``evaluate`` loads the latest checkpoint (then the best epoch's weights) and appends the fold-0
test MAE (21,223 structures) to ``benchmarks/results/mp_gap_fold0_test.csv``, next to the
published CGCNN fold-0 MAE.

The estimator is the package's ``CGCNNRegressor`` with its default network and training
settings (``max_epochs=200``, cosine LR schedule, 10 % validation split, early stopping). X is
the store's view of fold 0's training rows (``store[rows]``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback

from skcgcnn import CGCNNRegressor
from skcgcnn.benchmark.fold_state import checkpoint_callbacks
from skcgcnn.store import GraphStore

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "datasets"
PUBLISHED = 0.2978  # matbench_v0.1_cgcnnv2019, matbench_mp_gap, fold 0 (leaderboard scores)


def fold0(store: GraphStore, shared: Path) -> tuple[np.ndarray, np.ndarray]:
    splits = json.load(gzip.open(shared / "matbench_v0.1_validation.json.gz"))["splits"]
    fold = splits["matbench_mp_gap"]["fold_0"]
    where = {id_: i for i, id_ in enumerate(store.ids)}
    missing = [i for i in fold["train"] + fold["test"] if i not in where]
    if missing:
        raise SystemExit(f"{len(missing)} fold-0 ids are not in the store, e.g. {missing[:3]}")
    return (np.array([where[i] for i in fold["train"]]), np.array([where[i] for i in fold["test"]]))


def estimator(extra: list, **params) -> CGCNNRegressor:
    return CGCNNRegressor(random_state=0, verbose=1, callbacks=extra, **params)


class EpochLog(Callback):
    """Appends one CSV row per finished epoch."""

    def __init__(self, path: Path, y_scale: float) -> None:
        self.path, self.y_scale = path, y_scale

    def on_train_begin(self, net, **kwargs) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def on_epoch_end(self, net, **kwargs) -> None:
        row = net.history[-1]
        new = not self.path.exists()
        with open(self.path, "a") as fh:
            if new:
                fh.write("epoch,train_loss,valid_loss,valid_rmse_ev,lr,epoch_wall_s,"
                         "session_wall_s,session_cpu_s,peak_rss_mb,load1\n")
            lr = net.optimizer_.param_groups[0]["lr"]
            valid = row.get("valid_loss", float("nan"))
            fh.write(f"{row['epoch']},{row['train_loss']:.6f},{valid:.6f},"
                     f"{np.sqrt(valid) * self.y_scale:.4f},{lr:.6g},{row['dur']:.1f},"
                     f"{time.perf_counter() - self.t0:.1f},{time.process_time() - self.c0:.1f},"
                     f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f},"
                     f"{os.getloadavg()[0]:.2f}\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["train", "evaluate"])
    parser.add_argument("--store", default="/work/stores/mp_gap")
    parser.add_argument("--work", default="/work/stores/mp_gap_fold0")
    parser.add_argument("--shared", default=str(SHARED))
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the estimator's")
    parser.add_argument("--limit", type=int, default=None, help="smoke test: first N train rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work, results = Path(args.work), Path(args.results)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = GraphStore(args.store)
    if args.limit:  # smoke test on any store: the first rows, not fold 0
        train, test = np.arange(args.limit), np.arange(args.limit, min(len(store), 2 * args.limit))
    else:
        train, test = fold0(store, Path(args.shared))
    params = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
    y = store.targets
    print(f"store opened, fold 0 mapped: {time.perf_counter() - t0:.1f} s; "
          f"train {len(train)}, test {len(test)}", flush=True)
    # the whole state every epoch, the best epoch's weights (restored at the end), and
    # LoadInitState when a checkpoint is on disk: the runner's --checkpoint callbacks
    checkpoints = checkpoint_callbacks(work, validated=True)
    resumable = any(name == "fold_resume" for name, _ in checkpoints)
    if args.command == "train":
        log = EpochLog(results / "mp_gap_fold0_epochs.csv", float(np.std(y[train])))
        model = estimator([*checkpoints, ("epoch_log", log)], **params)
        model.fit(store[train], y[train])
        return
    if not resumable:
        raise SystemExit(f"no checkpoint in {work}: train first")
    history = json.loads((work / "history.json").read_text())
    done = len(history)
    # a resumed fit with nothing left to train: sets the fitted attributes, loads the weights
    model = estimator(checkpoints, **{**params, "max_epochs": done})
    model.fit(store[train], y[train])
    t0, c0 = time.perf_counter(), time.process_time()
    pred = model.predict(store[test])
    mae = float(np.mean(np.abs(pred - y[test])))
    new = not (results / "mp_gap_fold0_test.csv").exists()
    with open(results / "mp_gap_fold0_test.csv", "a") as fh:
        if new:
            fh.write("epochs_trained,n_train,n_test,test_mae_ev,published_cgcnn_fold0_mae_ev,"
                     "predict_wall_s,predict_cpu_s\n")
        fh.write(f"{done},{len(train)},{len(test)},{mae:.4f},{PUBLISHED},"
                 f"{time.perf_counter() - t0:.1f},{time.process_time() - c0:.1f}\n")
    print(f"fold-0 test MAE after {done} epochs: {mae:.4f} eV (published CGCNN: {PUBLISHED})")


if __name__ == "__main__":
    main()
