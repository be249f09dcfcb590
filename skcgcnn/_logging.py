"""What a person watching a fit sees (private): when to print, the epoch table, its columns.

- ``verbose="auto"`` (the estimators' default) prints the epoch table only for a fit that a
  person is watching: called from an interactive session (a terminal, IPython or Jupyter) and
  not from inside a scikit-learn meta-estimator (cross-validation, searches, ensembles...), so
  ``cross_val_score(CGCNNRegressor(), X, y)`` prints nothing, as scikit-learn estimators do.
- :class:`EpochLog` is skorch's ``PrintLog`` that colours only a terminal (files and batch-job
  logs get no ANSI codes; best values are marked ``*`` instead) and says, before the table,
  what each column is.
- :class:`ValidationMAE` records the validation error in the units of ``y`` (``valid_mae``),
  from the predictions the validation step already made (no extra forward pass).
"""

from __future__ import annotations

import sys
from numbers import Number
from typing import Any

import numpy as np
from skorch.callbacks import Callback, PrintLog
from skorch.utils import to_numpy

#: Modules whose frames on the call stack mean "fitted by a meta-estimator, not by a person":
#: scikit-learn's model selection (cross-validation, searches, learning curves), ensembles,
#: multi-output / multi-class wrappers, calibration, feature selection, the estimator checks,
#: and skcgcnn's own ensemble and benchmark runner. Pipelines and ColumnTransformers are not
#: here: fitting one is a top-level fit of its steps.
META_MODULES = (
    "sklearn.model_selection",
    "sklearn.ensemble",
    "sklearn.multioutput",
    "sklearn.multiclass",
    "sklearn.calibration",
    "sklearn.feature_selection",
    "sklearn.semi_supervised",
    "sklearn.inspection",
    "sklearn.utils.estimator_checks",
    "skcgcnn.ensemble",
    "skcgcnn.benchmark",
)


def inside_meta_estimator() -> bool:
    """Whether a frame of a :data:`META_MODULES` module is on the call stack."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(META_MODULES):
            return True
        frame = frame.f_back
    return False


def stdout_is_terminal() -> bool:
    """Whether standard output is a terminal (not a file, a pipe or a captured stream)."""
    try:
        return bool(sys.stdout.isatty())
    except (AttributeError, ValueError):
        return False


def interactive() -> bool:
    """Whether a person is watching: a terminal, or an IPython / Jupyter session."""
    if stdout_is_terminal():
        return True
    ipython = sys.modules.get("IPython")
    return ipython is not None and getattr(ipython, "get_ipython", lambda: None)() is not None


def resolve_verbose(verbose: Any) -> Any:
    """The verbosity a fit runs with: ``"auto"`` becomes 1 for a watched top-level fit, else
    0; any other value is returned as given."""
    if isinstance(verbose, str) and verbose == "auto":
        return int(interactive() and not inside_meta_estimator())
    return verbose


def effective_verbose(net: Any) -> Any:
    """The verbosity of the running fit: ``verbose_`` (resolved at fit) for our estimators,
    else ``verbose`` with ``"auto"`` resolved now."""
    verbose = getattr(net, "verbose_", None)
    return resolve_verbose(net.verbose) if verbose is None else verbose


def _criterion_name(net: Any) -> str:
    criterion = getattr(net, "criterion_", None) or getattr(net, "criterion", None)
    name = getattr(criterion, "__name__", None) or type(criterion).__name__
    return {"MSELoss": "mean squared error", "L1Loss": "mean absolute error",
            "CrossEntropyLoss": "cross-entropy", "NLLLoss": "negative log-likelihood",
            "HuberLoss": "Huber loss", "SmoothL1Loss": "smooth L1 loss"}.get(name, name)


def describe_columns(net: Any, keys: list[str]) -> list[tuple[str, str]]:
    """(column, meaning) for the columns of the epoch table that have a known meaning."""
    regression = hasattr(net, "y_scale_")
    loss = _criterion_name(net) + (" of the standardised targets ((y - mean) / std)"
                                   if regression else "")
    meanings = {
        "epoch": "epoch number",
        "train_loss": f"training loss: {loss}",
        "valid_loss": "the same loss on the validation split (early stopping watches it)",
        "train_mae": "mean absolute error on the training batches during the epoch, in the "
                     "units of y",
        "valid_mae": "mean absolute error on the validation split, in the units of y"
                     + (" (averaged over the targets)" if getattr(net, "n_outputs_", 1) > 1
                        else ""),
        "valid_acc": "accuracy on the validation split (fraction classified correctly)",
        "lr": "learning rate",
        "cp": "+ when a checkpoint was saved",
        "dur": "seconds the epoch took",
    }
    return [(key, meanings[key]) for key in keys if key in meanings]


class EpochLog(PrintLog):
    """skorch's ``PrintLog``: colours only a terminal, and explains its columns first.

    Best-so-far values are coloured on a terminal and marked with ``*`` elsewhere (files,
    pipes, Jupyter), so logs and batch-system output files carry no ANSI codes. Before the
    table, one line per column says what it is (the losses' units, ``valid_mae`` in the units
    of ``y``, ...).
    """

    def initialize(self) -> EpochLog:
        super().initialize()
        self.colour_ = self.sink is print and stdout_is_terminal()
        return self

    def format_row(self, row: dict, key: str, color: str) -> Any:
        if self.colour_:
            return super().format_row(row, key, color)
        value = row[key]
        if isinstance(value, bool) or value is None:
            return "+" if value else ""
        if not isinstance(value, Number):
            return value
        template = "{}" if float(value).is_integer() else "{:" + self.floatfmt + "}"
        best = row.get(key + "_best")
        return template.format(value) + ("*" if best else "")

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        row = net.history[-1]
        verbose = effective_verbose(net)
        tabulated = self.table(row)
        if self.first_iteration_:
            keys = [k[6:] if k.startswith("event_") else k
                    for k in self._sorted_keys(row.keys())]
            described = describe_columns(net, keys)
            if described:
                width = max(len(key) for key, _ in described)
                lines = [f"  {key:<{width}}  {meaning}" for key, meaning in described]
                marker = "coloured" if self.colour_ else "marked *"
                self._sink("\n".join(["columns:", *lines, f"  (best values so far are "
                                      f"{marker})"]), verbose)
            header, rule = tabulated.split("\n", 2)[:2]
            self._sink(header, verbose)
            self._sink(rule, verbose)
            self.first_iteration_ = False
        self._sink(tabulated.rsplit("\n", 1)[-1], verbose)
        if self.sink is print and verbose:
            sys.stdout.flush()


class ValidationMAE(Callback):
    """Record ``valid_mae`` and ``train_mae``: a regressor's errors in the units of ``y``.

    Uses the predictions the training and validation steps already made (standardised), undoes
    the estimator's target scaling (``y_scale_``) and, with ``sample_weight``, weights the
    errors as the loss does. ``train_mae`` is measured on the training batches while the epoch
    trains (as ``train_loss`` is); a fit without a validation split records no ``valid_mae``.
    ``valid_mae_best`` marks improvements.
    """

    def initialize(self) -> ValidationMAE:
        self.best_ = np.inf
        return self

    def on_train_begin(self, net: Any, **kwargs: Any) -> None:
        previous = [row["valid_mae"] for row in net.history if "valid_mae" in row]
        self.best_ = min(previous, default=np.inf)  # a resumed run keeps its best

    def on_epoch_begin(self, net: Any, **kwargs: Any) -> None:
        self.sums_ = {"train": [0.0, 0.0], "valid": [0.0, 0.0]}  # error sum, weight sum

    def on_batch_end(self, net: Any, batch: Any = None, training: bool = False,
                     y_pred: Any = None, **kwargs: Any) -> None:
        if y_pred is None or batch is None or not hasattr(net, "y_scale_"):
            return
        target = batch[1]
        weight = None
        if isinstance(target, (tuple, list)):  # (y, sample_weight) pairs
            target, weight = target
        errors = np.abs(to_numpy(y_pred).reshape(len(y_pred), -1).astype(np.float64)
                        - to_numpy(target).reshape(len(y_pred), -1))
        errors = (errors * net.y_scale_).mean(axis=1)
        w = np.ones(len(errors)) if weight is None else to_numpy(weight).astype(np.float64)
        sums = self.sums_["train" if training else "valid"]
        sums[0] += float((errors * w).sum())
        sums[1] += float(w.sum())

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        for split, (error, weight) in self.sums_.items():
            if not weight > 0:
                continue
            mae = error / weight
            net.history.record(f"{split}_mae", mae)
            if split == "valid":
                net.history.record("valid_mae_best", bool(mae < self.best_))
                self.best_ = min(self.best_, mae)


__all__ = ["EpochLog", "ValidationMAE", "effective_verbose", "inside_meta_estimator",
           "interactive", "resolve_verbose"]
