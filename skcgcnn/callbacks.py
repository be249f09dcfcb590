"""Training callbacks the estimators add to skorch's defaults."""

from __future__ import annotations

import math
import warnings
from copy import deepcopy
from typing import Any

from skorch import NeuralNet
from skorch.callbacks import Callback, Checkpoint, EarlyStopping

__all__ = ["EarlyStoppingIfValidated", "StopOnNonFiniteLoss"]


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
        elif self.best_epoch_ == net.history[-1]["epoch"]:
            self.best_model_weights_ = deepcopy(net.module_.state_dict())

    def on_train_end(self, net: NeuralNet, **kwargs: Any) -> None:
        if self.load_best and self.best_model_weights_ is not None:
            super().on_train_end(net, **kwargs)
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
