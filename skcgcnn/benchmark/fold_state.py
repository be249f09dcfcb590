"""A CGCNN fold that survives being stopped: checkpoints every epoch, resumes exactly.

For long folds (the whole mp_gap training set on a CPU takes hours) the runner gives the CGCNN
estimator skorch callbacks (:func:`checkpoint_callbacks`): a ``Checkpoint`` of the whole
training state after every epoch, two of the weights of the best validation epoch and of the
best annealed one (which early stopping reads when that epoch came before a resume: the weights
kept at the end and the anneal's start) and, when a checkpoint is on disk, ``LoadInitState``.
The estimator reseeds every epoch from ``random_state`` and its callbacks replay the recorded
history, so a fold stopped and resumed ends where a straight run does.

:func:`stop_at_epoch_end` turns Ctrl-C / SIGTERM during a fit into "finish this epoch (its
checkpoint is written), then stop, record nothing": without it skorch would end the fit early
and the runner would record the truncated model's score as if the fold were done.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from skorch.callbacks import Callback, Checkpoint, LoadInitState

__all__ = ["FoldInterrupted", "StopAtEpochEnd", "checkpoint_callbacks", "clear_checkpoint",
           "fold_checkpoint_dir", "stop_at_epoch_end"]


class FoldInterrupted(Exception):
    """A fit stopped on request (Ctrl-C, SIGTERM) after a finished epoch; no row was written.

    Attributes
    ----------
    epochs : int
        Epochs recorded in the model's history when it stopped.
    """

    def __init__(self, epochs: int) -> None:
        super().__init__(f"stopped on request after epoch {epochs}")
        self.epochs = epochs


class StopAtEpochEnd(Callback):
    """Raise :class:`FoldInterrupted` at the end of the epoch in which a stop was requested.

    Placed after the checkpoint callbacks, so the epoch's checkpoint is on disk first.

    Examples
    --------
    >>> stop = StopAtEpochEnd()
    >>> stop.requested
    False
    """

    def __init__(self) -> None:
        self.requested = False

    def on_epoch_end(self, net: Any, **kwargs: Any) -> None:
        if self.requested:
            raise FoldInterrupted(len(net.history))


@contextlib.contextmanager
def stop_at_epoch_end(stop: StopAtEpochEnd, verbose: int = 1) -> Iterator[None]:
    """While active, the first SIGINT / SIGTERM sets ``stop.requested``; a second SIGINT
    interrupts at once (``KeyboardInterrupt``). A signal the process ignores stays ignored.
    Signal handlers can only be set in the main thread: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request(signum: int, frame: Any) -> None:
        if stop.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.requested = True
        if verbose:
            print("\nStop requested: finishing this epoch, then stopping (the fold resumes "
                  "from its checkpoint when the same command is run again; Ctrl-C again to "
                  "stop now).", flush=True)

    # a signal the process ignores (SIGINT of a `nohup ... &` job) stays ignored
    previous = {sig: signal.signal(sig, request) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def fold_checkpoint_dir(root: str | Path, task: str, model: str, settings_id: str,
                        fold: int) -> Path:
    """The checkpoint folder of one (task, model, settings, fold)."""
    return Path(root) / f"{task}-{model}-{settings_id}-fold{fold}"


def checkpoint_callbacks(folder: Path, validated: bool) -> list[tuple[str, Any]]:
    """The callbacks that checkpoint a fold every epoch and resume it from ``folder``.

    Parameters
    ----------
    folder : Path
        Where the fold's checkpoint lives (created on the first save).
    validated : bool
        Whether the estimator holds out a validation split (then the weights of the best epoch
        and of the best annealed epoch are checkpointed too).

    Returns
    -------
    list of (name, callback)

    Examples
    --------
    >>> [name for name, _ in checkpoint_callbacks(Path("ck"), validated=True)]
    ['fold_checkpoint', 'fold_best', 'fold_annealed']
    """
    last = Checkpoint(dirname=str(folder), monitor=None)
    callbacks: list[tuple[str, Any]] = [("fold_checkpoint", last)]
    if validated:  # the weights early stopping keeps and the anneal starts from, on disk
        callbacks += [(f"fold_{kind}", Checkpoint(
            dirname=str(folder), monitor=monitor, fn_prefix=f"{kind}_", f_optimizer=None,
            f_criterion=None, f_history=None, event_name=f"event_{kind}"))  # not "event_cp"
            for kind, monitor in (("best", "valid_loss_best"), ("annealed", "annealed_best"))]
    if (folder / "params.pt").is_file() and (folder / "history.json").is_file():
        callbacks.append(("fold_resume", LoadInitState(last)))
    return callbacks


def clear_checkpoint(folder: Path) -> None:
    """Remove a fold's checkpoint once its row is recorded (a later run must not resume it)."""
    shutil.rmtree(folder, ignore_errors=True)
