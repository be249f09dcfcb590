"""Runtime concerns of the estimators (private): torch's global RNG, devices, weighted losses.

* **RNG.** torch has one global generator per process, which weight initialisation, dropout and
  the training loader's shuffling draw from. :func:`rng_for_fit` serialises fits that set a seed
  (each one sees only its own seed, so a seeded fit gives the same model whether or not other fits
  run in threads of the same process: joblib's threading backend, multi-threaded dask workers),
  while unseeded fits run concurrently with one another. :func:`epoch_seed` is the seed of one
  epoch of a seeded fit, so a resumed run shuffles like a straight one.
* **Devices.** :func:`resolve_device` turns ``device="auto"`` into a concrete device;
  :func:`on_device` gives skorch's own methods, which read ``net.device``, a view of the estimator
  with the concrete device, so the ``device`` parameter itself never changes during a call.
* **Weighted losses.** :func:`weighted_loss` evaluates a torch loss per sample on a copy with
  ``reduction="none"``, leaving the estimator's ``criterion_`` untouched.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


class _RNGLock:
    """A readers-writer lock around torch's global RNG.

    Seeded fits take it exclusively (re-entrant within one thread), unseeded fits take it shared.
    Waiting seeded fits have priority, so a stream of unseeded fits cannot starve them.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None  # thread holding it exclusively
        self._depth = 0  # the owner's re-entries
        self._shared: dict[int, int] = {}  # thread -> number of shared holds
        self._waiting = 0  # seeded fits waiting

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner != me:
                self._waiting += 1
                try:
                    while self._owner is not None or any(t != me for t in self._shared):
                        self._cond.wait()
                finally:
                    self._waiting -= 1
                self._owner = me
            self._depth += 1
        try:
            yield
        finally:
            with self._cond:
                self._depth -= 1
                if not self._depth:
                    self._owner = None
                    self._cond.notify_all()

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner != me and me not in self._shared:
                while self._owner is not None or self._waiting:
                    self._cond.wait()
            self._shared[me] = self._shared.get(me, 0) + 1
        try:
            yield
        finally:
            with self._cond:
                self._shared[me] -= 1
                if not self._shared[me]:
                    del self._shared[me]
                    self._cond.notify_all()


RNG_LOCK = _RNGLock()


@contextlib.contextmanager
def rng_for_fit(seed: int | None, device: Any) -> Iterator[None]:
    """Within the block, torch's global RNG belongs to this fit.

    With a seed: exclusively, seeded with ``seed``, and restored afterwards (CPU, and the current
    CUDA device when ``device`` is a CUDA device). Without: shared with other unseeded fits.
    """
    if seed is None:
        with RNG_LOCK.shared():
            yield
        return
    devices = [torch.cuda.current_device()] if str(device).startswith("cuda") else []
    with RNG_LOCK.exclusive(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def epoch_seed(seed: int, epoch: int) -> int:
    """Torch seed of one epoch of a seeded fit: the same whether or not training was resumed.

    Examples
    --------
    >>> epoch_seed(0, 3) == epoch_seed(0, 3) != epoch_seed(0, 4)
    True
    """
    return int(np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1)[0])


def is_auto(device: Any) -> bool:
    """Whether ``device`` is the string ``"auto"``."""
    return isinstance(device, str) and device == "auto"


def resolve_device(device: Any) -> Any:
    """The device ``device="auto"`` stands for: ``"cuda"`` when CUDA is available, else
    ``"mps"`` (Apple silicon) when available, else ``"cpu"``. Other values are returned as given.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("auto") in {"cuda", "mps", "cpu"}
    True
    """
    if not is_auto(device):
        return device
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def available_devices() -> list[str]:
    """The kinds of device torch can use on this machine, e.g. ``['cpu', 'cuda']``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(device: Any) -> None:
    """Refuse, with a ``ValueError`` that says what is available, a CUDA or MPS device that this
    machine does not have (torch would fail later with an ``AssertionError``).

    Examples
    --------
    >>> check_device("cpu"), check_device("auto")
    (None, None)
    """
    if is_auto(device) or device is None:
        return
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):  # not a device: skorch says so
        return
    available = available_devices()
    if kind in ("cuda", "mps") and kind not in available:
        build = (" (this torch is a CPU-only build)"
                 if kind == "cuda" and torch.version.cuda is None else "")
        raise ValueError(
            f"device={str(device)!r}: {kind.upper() if kind == 'cuda' else 'MPS'} is not "
            f"available on this machine{build}; available: {available}. device='auto' uses the "
            "best one available (portable)"
        )


def on_device(net: Any, device: Any) -> Any:
    """A shallow view of ``net`` whose ``device`` is ``device``, for skorch methods that read
    ``net.device`` (and cannot take ``"auto"``).

    The view shares every attribute object with ``net`` (modules, optimizer, history); what
    the method assigns to the view is copied back with :func:`adopt`.
    """
    view = object.__new__(type(net))
    view.__dict__.update(vars(net))
    view.__dict__["device"] = device
    return view


def adopt(net: Any, view: Any) -> None:
    """Copy the attributes a skorch method set on a view from :func:`on_device` back to ``net``,
    except the concrete ``device``."""
    net.__dict__.update({k: v for k, v in vars(view).items() if k != "device"})


def weighted_loss(
    criterion: torch.nn.Module, y_pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Mean of ``weight_i * loss_i`` for a torch loss ``criterion`` (per-sample losses averaged
    over a sample's outputs).

    The loss is evaluated by a shallow copy of ``criterion`` with ``reduction="none"`` (sharing
    its parameters and buffers, e.g. class weights), so ``criterion`` is not modified.

    Examples
    --------
    >>> import torch
    >>> mse = torch.nn.MSELoss()
    >>> loss = weighted_loss(mse, torch.zeros(2, 1), torch.ones(2, 1), torch.tensor([0.0, 2.0]))
    >>> float(loss), mse.reduction
    (1.0, 'mean')
    """
    if getattr(criterion, "reduction", None) is None:
        raise TypeError(
            f"sample_weight needs a criterion with a 'reduction' argument (a torch loss); "
            f"{type(criterion).__name__} has none"
        )
    unreduced = copy.copy(criterion)
    unreduced.reduction = "none"
    losses = unreduced(y_pred, target)
    return (losses.reshape(len(losses), -1).mean(dim=1) * weight).mean()
