"""Training callbacks: those the estimators add to skorch's defaults, and a time-budget LR schedule.

:class:`BudgetCosineLR` is used by the benchmark runner's ``budget`` recipe
(:mod:`skcgcnn.benchmark`) and works with any estimator of the package.
"""

from __future__ import annotations

import math
import time
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any

from skorch import NeuralNet
from skorch.callbacks import Callback, Checkpoint, EarlyStopping, PrintLog

from ._logging import effective_verbose

__all__ = [
    "AnnealOnPlateau",
    "BudgetCosineLR",
    "EarlyStoppingIfValidated",
    "StopOnNonFiniteLoss",
]


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


def _checkpoint_file(net: NeuralNet, monitor: str) -> Path | None:
    """The weights file of a ``Checkpoint`` callback of ``net`` that saves on ``monitor`` (a
    history key such as ``"valid_loss_best"``), when it exists: the weights of an epoch that
    came before a resume."""
    for _, callback in net.callbacks_:
        if (isinstance(callback, Checkpoint) and callback.f_params is not None
                and callback.monitor == monitor):
            path = callback.get_formatted_files(net)["f_params"]
            if isinstance(path, (str, Path)) and Path(path).is_file():
                return Path(path)
    return None


def _load_weights(net: NeuralNet, weights: dict | None, monitor: str) -> bool:
    """Load an epoch's weights into ``net.module_``: the in-memory copy ``weights``, else the
    file of a ``Checkpoint`` saving on ``monitor``; False when neither exists."""
    if weights is not None:
        net.module_.load_state_dict(weights)
        return True
    saved = _checkpoint_file(net, monitor)
    if saved is not None:
        net.load_params(f_params=saved)
    return saved is not None


def _cycle_start(rows: list) -> int:
    """Index of the row at which the history's current fit cycle started (0 if unmarked)."""
    starts = [i for i, row in enumerate(rows) if row.get("cycle_start")]
    return starts[-1] if starts else 0


def _anneal_in_progress(rows: list) -> tuple[int, int] | None:
    """(start, length) of the anneal the last row of ``rows`` is part of, or None."""
    last = rows[-1] if rows else {}
    if not last.get("anneal_epochs"):
        return None
    return int(last.get("anneal_start", len(rows) - 1)), int(last["anneal_epochs"])


def _current_lr(net: NeuralNet) -> float:
    optimizer = getattr(net, "optimizer_", None)
    if optimizer is None or not optimizer.param_groups:
        return float(net.lr)
    return float(optimizer.param_groups[0]["lr"])


class EarlyStoppingIfValidated(EarlyStopping):
    """skorch's ``EarlyStopping`` that does nothing when there is no validation data, and that
    never stops while the learning rate is still high.

    The estimators' default ``"early_stopping"`` callback (patience 30, best weights kept);
    it also replays the history of a resumed run so patience carries over.

    The rule: stop when the monitored score has not improved for ``patience`` epochs **and** the
    optimizer's learning rate is at most ``max_lr_fraction`` times the initial ``net.lr``. A run
    stopped while the rate is high ends on weights picked from a noisy validation curve, before
    the annealed phase that gives most of the final accuracy; so with a decaying schedule the
    stop waits for the decay (with :class:`AnnealOnPlateau`, the default schedule, the decay
    itself starts on a plateau). ``max_lr_fraction=None`` restores skorch's rule (stop on
    patience alone).

    The weights kept at the end (``load_best``) are, by default, those of the best epoch among
    the *annealed* ones (trained at a rate below ``net.lr``), when there are any: the lowest
    validation loss of a run is often a lucky epoch of the high-rate phase (on a validation
    set of a hundred structures, the minimum of dozens of noisy epochs), and restoring it would
    throw the anneal away. Without any annealed epoch (a constant rate), the best of all.

    Parameters
    ----------
    max_lr_fraction : float or None, default=0.05
        Stop only once the learning rate has decayed to this fraction of ``net.lr``.
    prefer_annealed : bool, default=True
        With ``load_best``: keep the best of the epochs trained at a rate below ``net.lr``
        when there are any (False: the best of all epochs, skorch's rule).
    **kwargs
        skorch ``EarlyStopping`` parameters (``patience``, ``monitor``, ``threshold``,
        ``load_best``...).

    Attributes
    ----------
    best_epoch_ : int
        The epoch with the best score of all (skorch's).
    annealed_best_epoch_ : int or None
        The epoch with the best score among the annealed ones.
    kept_epoch_ : int or None
        The epoch whose weights the module holds after ``fit``.

    Examples
    --------
    >>> from skcgcnn import CGCNNRegressor
    >>> CGCNNRegressor().get_params()["callbacks__early_stopping__patience"]
    30
    """

    def __init__(
        self,
        monitor: str = "valid_loss",
        patience: int = 5,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        lower_is_better: bool = True,
        sink: Any = print,
        load_best: bool = False,
        max_lr_fraction: float | None = 0.05,
        prefer_annealed: bool = True,
    ) -> None:
        super().__init__(monitor=monitor, patience=patience, threshold=threshold,
                         threshold_mode=threshold_mode, lower_is_better=lower_is_better,
                         sink=sink, load_best=load_best)
        self.max_lr_fraction = max_lr_fraction
        self.prefer_annealed = prefer_annealed

    @staticmethod
    def _below_start(lr: float | None, net: NeuralNet) -> bool:
        return lr is not None and float(lr) < float(net.lr) * (1 - 1e-9)

    def _better_annealed(self, score: float) -> bool:
        best = getattr(self, "annealed_best_", None)
        if best is None:
            return True
        return score < best if self.lower_is_better else score > best

    def _track_annealed(self, net: NeuralNet) -> None:
        """Keep the weights of the best epoch trained at a decayed rate; the history's
        ``annealed_best`` says which epochs were (for a ``Checkpoint(monitor="annealed_best")``
        that lets a resumed run keep them too)."""
        score = float(net.history[-1, self.monitor])
        better = (self.load_best and self.prefer_annealed
                  and self._below_start(_current_lr(net), net) and self._better_annealed(score))
        net.history.record("annealed_best", bool(better))
        if better:
            self.annealed_best_, self.annealed_best_epoch_ = score, net.history[-1, "epoch"]
            self.annealed_weights_ = deepcopy(net.module_.state_dict())

    def _lr_has_decayed(self, net: NeuralNet) -> bool:
        if self.max_lr_fraction is None:
            return True
        return _current_lr(net) <= self.max_lr_fraction * float(net.lr) * (1 + 1e-9)

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        """skorch's patience count (stopping once the learning rate has decayed enough); when
        it stops, the epoch log (which comes after this callback) shows this last epoch first,
        then one line names the epoch that stopped the fit and the best one."""
        if self.monitor not in net.history[-1]:
            return
        self._track_annealed(net)
        if self._is_score_improved(net.history[-1, self.monitor]):
            super().on_epoch_end(net, **kwargs)  # records the best epoch (and its weights)
            return
        self.misses_ += 1
        if not (self.misses_ >= self.patience and self._lr_has_decayed(net)):
            return
        names = [callback for _, callback in net.callbacks_]
        for callback in names[names.index(self) + 1:] if self in names else []:
            if isinstance(callback, PrintLog):  # not reached after the interrupt
                callback.on_epoch_end(net, **kwargs)
        epoch = net.history[-1, "epoch"]
        best_epoch = getattr(self, "best_epoch_", None)
        best = next((row[self.monitor] for row in net.history
                     if row.get("epoch") == best_epoch and self.monitor in row), None)
        message = (f"Stopping at epoch {epoch}: {self.monitor} has not improved in the last "
                   f"{self.misses_} epochs")
        if best is not None:
            restored = self.load_best and getattr(self, "best_model_weights_", None) is not None
            annealed = self.annealed_best_epoch_
            if annealed is not None and annealed != best_epoch:
                message += (f" (best {best:.4g} at epoch {best_epoch}; the weights kept are "
                            f"those of epoch {annealed}, the best annealed one)")
            else:
                message += (f" (best {best:.4g} at epoch {best_epoch}"
                            + ("; its weights are restored)" if restored else ")"))
        self._sink(message, effective_verbose(net))
        self.announced_ = True
        raise KeyboardInterrupt

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
        self.announced_ = False
        self.annealed_best_ = self.annealed_best_epoch_ = self.annealed_weights_ = None
        self.kept_epoch_ = None
        rows = [row for row in net.history if self.monitor in row]
        for row in rows:
            if self._is_score_improved(row[self.monitor]):
                self.misses_ = 0
                self.dynamic_threshold_ = self._calc_new_threshold(row[self.monitor])
                self.best_epoch_ = row["epoch"]
            else:
                self.misses_ += 1
        self._replay_annealed(net, rows)
        if not rows or not self.load_best:
            return
        self.misses_ = min(self.misses_, max(self.patience - 1, 0))
        if previous_best[0] is not None and previous_best[1] == self.best_epoch_:
            self.best_model_weights_ = previous_best[0]
        elif self.best_epoch_ == net.history[-1]["epoch"] or (
            previous_best[1] == self.best_epoch_ and self._holds_best(net)
        ):  # the module holds the best epoch's weights: the last one's, or restored at the end
            self.best_model_weights_ = deepcopy(net.module_.state_dict())

    def _replay_annealed(self, net: NeuralNet, rows: list) -> None:
        """The best annealed epoch of the loaded history's current cycle (a resumed anneal;
        the history marks it ``annealed_best``); its weights are in memory only when it is
        the last epoch."""
        if not (self.load_best and self.prefer_annealed and rows):
            return
        history = list(net.history)
        anneal = _anneal_in_progress(history)
        if anneal is not None and len(history) >= sum(anneal):
            return  # a finished anneal: this call starts a new cycle
        first_epoch = history[_cycle_start(history)]["epoch"]
        for row in rows:
            if row.get("annealed_best") and row["epoch"] >= first_epoch:
                self.annealed_best_ = float(row[self.monitor])
                self.annealed_best_epoch_ = row["epoch"]
        if self.annealed_best_epoch_ is not None and (
                self.annealed_best_epoch_ == net.history[-1]["epoch"]):
            self.annealed_weights_ = deepcopy(net.module_.state_dict())

    def _holds_best(self, net: NeuralNet) -> bool:
        restored = getattr(self, "_restored_", None)
        return (restored is not None and restored[0] == self.best_epoch_
                and restored[1] == _fingerprint(net.module_))

    def on_train_end(self, net: NeuralNet, **kwargs: Any) -> None:
        """Restore the best (annealed) weights, then drop the copies (the module holds them
        now), so that a fitted estimator pickles without a second copy of its weights.

        Weights of an epoch before a resume are read from a ``Checkpoint`` on
        ``annealed_best`` (resp. ``valid_loss_best``); without one, a warning says that the
        last epoch's weights are kept."""
        self._restored_ = None
        last = net.history[-1, "epoch"] if len(net.history) else 0
        self.kept_epoch_ = last
        if not self.load_best:
            return
        annealed = self.annealed_best_epoch_ is not None
        epoch, weights, monitor, which = (
            (self.annealed_best_epoch_, self.annealed_weights_, "annealed_best",
             "best annealed epoch") if annealed
            else (self.best_epoch_, self.best_model_weights_, f"{self.monitor}_best",
                  "best epoch"))
        self.best_model_weights_ = self.annealed_weights_ = None
        if not epoch:
            return
        if epoch != last and _load_weights(net, weights, monitor):
            if weights is not None and not getattr(self, "announced_", False):
                kind = "of the annealed epochs" if annealed else "of all"
                self._sink(f"Restored the weights of epoch {epoch} (best {self.monitor} "
                           f"{kind}).", effective_verbose(net))
        elif epoch != last:
            if not any(isinstance(cb, Checkpoint) and cb.load_best for _, cb in net.callbacks_):
                warnings.warn(
                    f"the {which} ({epoch}) came before the checkpoint training was resumed "
                    "from, and its weights are not in memory: keeping the last epoch's weights "
                    f"(add Checkpoint(monitor={monitor!r}) to restore them)", UserWarning,
                    stacklevel=2)
            return
        self.kept_epoch_ = epoch
        self._restored_ = (epoch, _fingerprint(net.module_))


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
        # a run resumed from a checkpoint (LoadInitState) continues the schedule: the epochs
        # and the seconds of its recorded history count as done
        resumed = getattr(net, "_resumed_at", None) is not None
        done = list(net.history) if resumed else []
        self.start_ = time.perf_counter() - sum(float(row.get("dur", 0.0)) for row in done)
        self.lr0_ = float(net.lr)
        self.net_max_epochs_ = net.max_epochs
        self.epochs_done_ = len(done)
        self.batches_per_epoch_: int | None = (_train_batches(done[-1]) or None) if done else None
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
            if effective_verbose(net):
                print(f"Stopping: time budget of {self.time_budget:g} s used after "
                      f"{self.epochs_done_} epochs.")
            raise KeyboardInterrupt


def _train_batches(row: dict) -> int:
    return sum(1 for batch in row.get("batches", []) if "train_loss" in batch)


class AnnealOnPlateau(Callback):
    """Constant learning rate until the validation loss plateaus, then one cosine anneal to
    zero, then stop: a schedule whose length follows the stopping point.

    The estimators' default ``"lr_scheduler"`` callback. Phase 1 trains at ``net.lr``. When the
    monitored score has not improved (by a relative ``threshold``) for ``patience`` epochs, the
    rate decays per batch along a half cosine from ``net.lr`` to ``min_lr_fraction * net.lr``
    over ``max(min_anneal_epochs, ceil(anneal_fraction * e))`` epochs, where ``e`` is the number
    of epochs trained so far; training stops when that anneal is complete. The anneal is
    started at the latest at epoch ``floor(max_epochs / (1 + anneal_fraction))`` (it then lasts
    until ``max_epochs``) and always ends by ``max_epochs``: a run without validation data
    (``train_split=None``) is "constant, then cosine over the last third". Either way the run
    ends with the rate annealed, never in the middle of a high-rate phase. Each epoch records
    ``event_lr`` (the rate at its end) and ``anneal_epochs`` (the anneal's length once it has
    started, else 0).

    With ``from_best`` (the default) the anneal starts from the best epoch's weights, not from
    the last epoch's: the epochs of the plateau, at the full rate, often only fit the training
    data closer, and an anneal from there may never come back to the best validation score, so
    that the restored best weights would be high-rate weights that were never annealed (the
    optimizer's moments go on as they are, as with a restart from a best-weights checkpoint).
    The epoch the anneal starts from is recorded as ``anneal_from``.

    Parameters
    ----------
    patience : int, default=20
        Epochs without improvement of ``monitor`` that start the anneal.
    anneal_fraction : float, default=0.5
        Length of the anneal as a fraction of the epochs before it.
    min_anneal_epochs : int, default=5
    min_lr_fraction : float, default=0.0
        Learning rate at the end of the anneal, as a fraction of ``net.lr``.
    monitor : str, default="valid_loss"
        Lower is better.
    threshold : float, default=1e-4
        Relative improvement that counts (as skorch's ``EarlyStopping``).
    stop : bool, default=True
        Stop training when the anneal is complete (before ``max_epochs``).
    from_best : bool, default=True
        Start the anneal from the weights of the epoch with the best ``monitor`` score (a copy
        is kept in memory during ``fit``; a run resumed from a checkpoint after that epoch
        takes them from a ``Checkpoint(monitor="valid_loss_best")`` callback's file). Without
        validation data, or when the last epoch is the best, the anneal starts from the last
        epoch.

    Attributes
    ----------
    anneal_start_ : int or None
        Number of epochs trained when the anneal started.
    anneal_epochs_ : int or None
        Length of the anneal.
    annealed_ : bool
        Whether the anneal is complete.
    anneal_from_ : int or None
        The epoch whose weights the anneal started from.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2, 4.3, 4.4, 4.5)]
    >>> reg = CGCNNRegressor(max_epochs=9, random_state=0, verbose=0, train_split=None,
    ...                      callbacks__lr_scheduler=AnnealOnPlateau()).fit(X, [1, 2, 3, 4, 5, 6.0])
    >>> reg.history_[:, "anneal_epochs"]
    [0, 0, 0, 0, 0, 0, 3, 3, 3]
    >>> float(reg.history_[-1, "event_lr"])
    0.0
    """

    def __init__(
        self,
        patience: int = 20,
        anneal_fraction: float = 0.5,
        min_anneal_epochs: int = 5,
        min_lr_fraction: float = 0.0,
        monitor: str = "valid_loss",
        threshold: float = 1e-4,
        stop: bool = True,
        from_best: bool = True,
    ) -> None:
        self.patience = patience
        self.anneal_fraction = anneal_fraction
        self.min_anneal_epochs = min_anneal_epochs
        self.min_lr_fraction = min_lr_fraction
        self.monitor = monitor
        self.threshold = threshold
        self.stop = stop
        self.from_best = from_best

    # ------------------------------------------------------------------ state
    def _improved(self, score: float) -> bool:
        return score < self.best_ * (1 - self.threshold) if math.isfinite(self.best_) else True

    def _observe(self, row: dict) -> bool:
        """Count the row's score; True when it is a new best."""
        if self.monitor not in row:
            return False
        score = float(row[self.monitor])
        if self._improved(score):
            self.best_, self.misses_ = score, 0
            self.best_epoch_ = row.get("epoch")
            return True
        self.misses_ += 1
        return False

    def _keep_best(self, net: NeuralNet) -> None:
        """Copy the weights of the epoch just scored best."""
        if self.from_best:
            self.best_state_ = deepcopy(net.module_.state_dict())

    def _return_to_best(self, net: NeuralNet, epochs_done: int) -> None:
        """Load the best epoch's weights when they are not the module's (the last of the
        ``epochs_done`` epochs was not the best)."""
        self.anneal_from_ = epochs_done
        if self.from_best and self.best_epoch_ is not None and self.misses_ > 0:
            if _load_weights(net, self.best_state_, f"{self.monitor}_best"):
                self.anneal_from_ = self.best_epoch_
            else:
                warnings.warn(
                    f"the best epoch ({self.best_epoch_}) came before the checkpoint training "
                    "was resumed from, and its weights are not in memory: the anneal starts "
                    "from the last epoch's weights (add Checkpoint(monitor='valid_loss_best') "
                    "to start it from the best)", UserWarning, stacklevel=2)
        self.best_state_ = None

    def on_train_begin(self, net: NeuralNet, **kwargs: Any) -> None:
        """Set up, replaying the history of a resumed run (an unfinished anneal continues)."""
        self.lr0_ = float(net.lr)
        self.best_, self.misses_ = math.inf, 0
        self.anneal_start_: int | None = None
        self.anneal_epochs_: int | None = None
        self.anneal_from_: int | None = None
        self.annealed_ = False
        self.best_epoch_: int | None = None
        self.best_state_: dict | None = None
        self.batches_per_epoch_: int | None = None
        self.batch_in_epoch_ = 0
        rows = list(net.history)
        if rows:
            self.batches_per_epoch_ = _train_batches(rows[-1]) or None
        self.offset_ = len(rows)  # epochs of this call are counted from here
        anneal = _anneal_in_progress(rows)
        if anneal is not None:
            if len(rows) < sum(anneal):  # unfinished: continue it
                self.anneal_start_, self.anneal_epochs_ = anneal
                self.anneal_from_ = rows[-1].get("anneal_from")
                self.offset_ = _cycle_start(rows)
            else:  # a finished anneal: this call is a new cycle
                rows = []
        elif rows:
            self.offset_ = _cycle_start(rows)
        for row in rows:
            self._observe(row)
        if rows and self.misses_ == 0 and self.anneal_start_ is None:
            self._keep_best(net)  # the weights just loaded are the best epoch's

    def on_train_end(self, net: NeuralNet, **kwargs: Any) -> None:
        """Drop the copy of the best state, so that a fitted estimator pickles without it."""
        self.best_state_ = None

    def _latest_start(self, net: NeuralNet) -> int:
        return self.offset_ + int(int(net.max_epochs) / (1 + self.anneal_fraction))

    def _start_anneal(self, net: NeuralNet, epochs_done: int, fill: bool = False) -> None:
        end = self.offset_ + int(net.max_epochs)
        length = end - epochs_done if fill else max(
            int(self.min_anneal_epochs),
            math.ceil(self.anneal_fraction * (epochs_done - self.offset_)))
        self.anneal_start_ = epochs_done
        self.anneal_epochs_ = max(min(length, end - epochs_done), 1)

    def _lr_at(self, progress: float) -> float:
        floor = self.min_lr_fraction
        p = min(max(progress, 0.0), 1.0)
        return self.lr0_ * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))

    def _set_lr(self, net: NeuralNet, lr: float) -> None:
        for group in net.optimizer_.param_groups:
            group["lr"] = lr

    # ------------------------------------------------------------------ hooks
    def on_epoch_begin(self, net: NeuralNet, **kwargs: Any) -> None:
        self.batch_in_epoch_ = 0
        epochs_done = len(net.history) - 1  # the new epoch's row is already there
        if epochs_done == self.offset_:
            net.history.record("cycle_start", True)
        if self.anneal_start_ is None and epochs_done >= self._latest_start(net):
            self._start_anneal(net, epochs_done, fill=True)
            self._return_to_best(net, epochs_done)
        self._set_lr(net, self._lr_for(epochs_done, 0.0))

    def _lr_for(self, epochs_done: int, batch_fraction: float) -> float:
        if self.anneal_start_ is None:
            return self.lr0_
        return self._lr_at((epochs_done - self.anneal_start_ + batch_fraction)
                           / self.anneal_epochs_)

    def on_batch_begin(self, net: NeuralNet, batch: Any = None, training: bool = False,
                       **kwargs: Any) -> None:
        if not training:
            return
        fraction = (self.batch_in_epoch_ / self.batches_per_epoch_ if self.batches_per_epoch_
                    else 0.0)
        self._set_lr(net, self._lr_for(len(net.history) - 1, min(fraction, 1.0)))
        self.batch_in_epoch_ += 1

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        self.batches_per_epoch_ = self.batch_in_epoch_ or self.batches_per_epoch_
        epochs_done = len(net.history)
        if self._observe(net.history[-1]) and self.anneal_start_ is None:
            self._keep_best(net)
        if self.anneal_start_ is not None:
            net.history.record("anneal_epochs", self.anneal_epochs_)
            net.history.record("anneal_start", self.anneal_start_)
            if self.anneal_from_ is not None:  # None: resumed from an older version's anneal
                net.history.record("anneal_from", self.anneal_from_)
            done = epochs_done >= self.anneal_start_ + self.anneal_epochs_
            if done:
                self.annealed_ = True
                self._set_lr(net, self._lr_at(1.0))
            net.history.record("event_lr", _current_lr(net))
            if done:
                if self.stop and epochs_done < self.offset_ + int(net.max_epochs):
                    if effective_verbose(net):
                        print(f"Stopping: learning rate annealed after {epochs_done} epochs "
                              f"(plateau at epoch {self.anneal_start_}).")
                    raise KeyboardInterrupt
            return
        net.history.record("event_lr", _current_lr(net))
        net.history.record("anneal_epochs", 0)
        if self.misses_ >= self.patience:
            self._start_anneal(net, epochs_done)
            self._return_to_best(net, epochs_done)
