"""Training callbacks: those the estimators add to skorch's defaults, and a time-budget LR schedule.

:class:`BudgetCosineLR` is used by the benchmark runner's ``budget`` recipe
(:mod:`skcgcnn.benchmark`) and works with any estimator of the package.
"""

from __future__ import annotations

import math
import time
import warnings
from copy import deepcopy
from typing import Any

from skorch import NeuralNet
from skorch.callbacks import Callback, Checkpoint, EarlyStopping

__all__ = ["BudgetCosineLR", "EarlyStoppingIfValidated", "StopOnNonFiniteLoss"]


def _fingerprint(module: Any) -> tuple[float, ...]:
    """A cheap summary of a module's weights, to tell whether they changed."""
    import torch

    with torch.no_grad():
        return tuple(float(t.double().sum()) for t in module.state_dict().values()
                     if t.is_floating_point())


class StopOnNonFiniteLoss(Callback):
    """Stop training with a clear error when the training loss becomes NaN or infinite.

    One of the estimators' default callbacks (named ``"stop_on_nonfinite_loss"``); the error
    names the epoch, so a diverging run never leaves a model that predicts NaN.

    Examples
    --------
    >>> from skcgcnn import CGCNNRegressor
    >>> type(CGCNNRegressor().get_params()["callbacks__stop_on_nonfinite_loss"]).__name__
    'StopOnNonFiniteLoss'
    """

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        loss = net.history[-1].get("train_loss", 0.0)
        if not math.isfinite(loss):
            epoch = net.history[-1]["epoch"]
            raise FloatingPointError(
                f"training loss became {loss} at epoch {epoch}; lower the learning rate "
                "(lr), check the targets for extreme values, or use gradient clipping"
            )


class EarlyStoppingIfValidated(EarlyStopping):
    """skorch's ``EarlyStopping`` that does nothing when there is no validation data.

    The estimators' default ``"early_stopping"`` callback (patience 30, best weights restored);
    it also replays the history of a resumed run so patience carries over.

    Examples
    --------
    >>> from skcgcnn import CGCNNRegressor
    >>> CGCNNRegressor().get_params()["callbacks__early_stopping__patience"]
    30
    """

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        if self.monitor in net.history[-1]:
            super().on_epoch_end(net, **kwargs)

    def on_train_begin(self, net: NeuralNet, **kwargs: Any) -> None:
        """Reset, then replay the recorded scores of a resumed run (warm start, checkpoint).

        Patience and the best score carry over. Best weights carry over when they are still in
        memory (same process) or when the last recorded epoch was the best one (its weights are
        the ones just loaded); otherwise only epochs from now on can be restored.
        """
        previous_best = (
            getattr(self, "best_model_weights_", None), getattr(self, "best_epoch_", None)
        )
        super().on_train_begin(net, **kwargs)
        rows = [row for row in net.history if self.monitor in row]
        for row in rows:
            if self._is_score_improved(row[self.monitor]):
                self.misses_ = 0
                self.dynamic_threshold_ = self._calc_new_threshold(row[self.monitor])
                self.best_epoch_ = row["epoch"]
            else:
                self.misses_ += 1
        if not rows or not self.load_best:
            return
        self.misses_ = min(self.misses_, max(self.patience - 1, 0))
        if previous_best[0] is not None and previous_best[1] == self.best_epoch_:
            self.best_model_weights_ = previous_best[0]
        elif self.best_epoch_ == net.history[-1]["epoch"] or (
            previous_best[1] == self.best_epoch_ and self._holds_best(net)
        ):  # the module holds the best epoch's weights: the last one's, or restored at the end
            self.best_model_weights_ = deepcopy(net.module_.state_dict())

    def _holds_best(self, net: NeuralNet) -> bool:
        restored = getattr(self, "_restored_", None)
        return (restored is not None and restored[0] == self.best_epoch_
                and restored[1] == _fingerprint(net.module_))

    def on_train_end(self, net: NeuralNet, **kwargs: Any) -> None:
        """Restore the best weights, then drop the copy (the module holds them now), so that a
        fitted estimator pickles without a second copy of its weights."""
        self._restored_ = None
        if self.load_best and self.best_model_weights_ is not None:
            super().on_train_end(net, **kwargs)
            self.best_model_weights_ = None
            self._restored_ = (self.best_epoch_, _fingerprint(net.module_))
        elif (
            self.load_best
            and 0 < getattr(self, "best_epoch_", 0) < len(net.history)
            and not any(isinstance(cb, Checkpoint) and cb.load_best for _, cb in net.callbacks_)
        ):
            warnings.warn(
                f"the best epoch ({self.best_epoch_}) came before the checkpoint training was "
                "resumed from, and its weights are not in memory: keeping the last epoch's "
                "weights (add Checkpoint(monitor='valid_loss_best', load_best=True) to restore "
                "them)",
                UserWarning,
                stacklevel=2,
            )


class BudgetCosineLR(Callback):
    """Cosine learning-rate decay over epochs *or* wall-clock time, whichever runs out first.

    The learning rate at each batch is ``lr * (1 + cos(pi * p)) / 2`` with the progress
    ``p = max(epochs_done / max_epochs, elapsed / time_budget)``; training stops after the epoch
    at which ``p`` reaches 1. With ``time_budget=None`` this is the usual per-batch cosine
    schedule over ``max_epochs``. Use it instead of the estimator's ``lr_scheduler`` callback
    (``callbacks__lr_scheduler=None``).

    Parameters
    ----------
    time_budget : float or None, default=None
        Seconds of training allowed (measured from the start of ``fit``).
    min_lr_fraction : float, default=0.0
        Floor of the learning rate, as a fraction of the initial one.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNRegressor
    >>> from skcgcnn.callbacks import BudgetCosineLR
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2, 4.3, 4.4, 4.5)]
    >>> reg = CGCNNRegressor(max_epochs=4, random_state=0, verbose=0, train_split=None,
    ...                      callbacks=[("budget_lr", BudgetCosineLR(time_budget=60))],
    ...                      callbacks__lr_scheduler=None).fit(X, [1, 2, 3, 4, 5, 6.0])
    >>> len(reg.history)
    4
    """

    def __init__(self, time_budget: float | None = None, min_lr_fraction: float = 0.0) -> None:
        self.time_budget = time_budget
        self.min_lr_fraction = min_lr_fraction

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        self.start_ = time.perf_counter()
        self.lr0_ = float(net.lr)
        self.net_max_epochs_ = net.max_epochs
        self.epochs_done_ = 0
        self.batches_per_epoch_: int | None = None
        self.batch_ = 0

    def _progress(self, epoch_fraction: float) -> float:
        p = epoch_fraction / max(int(self.net_max_epochs_), 1)
        if self.time_budget:
            p = max(p, (time.perf_counter() - self.start_) / float(self.time_budget))
        return min(p, 1.0)

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        self.batch_ = 0

    def on_batch_begin(self, net: Any, batch: Any = None, training: bool = False,
                       **kwargs: Any) -> None:
        if not training:
            return
        fraction = self.batch_ / self.batches_per_epoch_ if self.batches_per_epoch_ else 0.0
        p = self._progress(self.epochs_done_ + min(fraction, 1.0))
        floor = self.min_lr_fraction
        lr = self.lr0_ * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
        net.history.record("lr", lr)
        self.batch_ += 1

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        self.batches_per_epoch_ = self.batch_ or self.batches_per_epoch_
        self.epochs_done_ += 1
        if self._progress(self.epochs_done_) >= 1.0 and self.epochs_done_ < net.max_epochs:
            if net.verbose:
                print(f"Stopping: time budget of {self.time_budget:g} s used after "
                      f"{self.epochs_done_} epochs.")
            raise KeyboardInterrupt
