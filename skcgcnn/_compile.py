"""The opt-in compiled path: a CGCNN module's forward pass through ``torch.compile`` (inductor).

The compiled code is shared by every module of the process: :data:`_forward` below is compiled
once, with dynamic shapes, as a plain function of ``(module, batch)``. TorchDynamo inlines the
module's own ``forward`` (whatever the layers compute) and lifts its parameters and buffers to
graph inputs, so a new module instance of the same architecture (a new fit, the next fold of a
cross-validation, the next candidate of a grid search) reuses the compiled graphs instead of
compiling again; batches of other sizes reuse them too (``dynamic=True``). The compile time is
paid once per process, on the first batch, and again only for what changes the traced code (an
other architecture, eval mode, a new dtype).

TorchDynamo guards on ``torch.get_num_threads()``: code is compiled once per process *and thread
count* (a ``torch.set_num_threads`` to a new value compiles again, once). Training and prediction
(grad mode, train/eval mode) and each architecture (``n_conv``, ``conv``...) are compiled once
each; so that a grid search over architectures keeps its compiled code, the per-function
recompile limit of TorchDynamo (8 by default) is raised to :data:`RECOMPILE_LIMIT` when the
compiled path is first used.

Where inductor cannot work (no C++ compiler, an unsupported Python or platform, a broken
toolchain), :func:`compiled_forward` warns once with a :class:`CompileFallbackWarning` naming the
reason and runs the module eagerly: same function, no speed-up.
"""

from __future__ import annotations

import threading
import time
import warnings
from typing import Any

import torch

__all__ = ["CompileFallbackWarning", "compile_status", "compiled_forward", "unavailable_reason"]

class CompileFallbackWarning(UserWarning):
    """``compile=True`` was asked for but ``torch.compile`` is unavailable: the model runs eagerly.

    Examples
    --------
    >>> import warnings
    >>> from skcgcnn._compile import CompileFallbackWarning
    >>> issubclass(CompileFallbackWarning, UserWarning)
    True
    """


def _call(module: torch.nn.Module, batch: Any, **kwargs: Any) -> torch.Tensor:
    return module(batch, **kwargs)


def _probe_fn(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x) * x + 1.0


#: TorchDynamo's per-function recompile limit while the compiled path is in use (at least)
RECOMPILE_LIMIT = 64

_lock = threading.Lock()
_state: dict[str, Any] = {"checked": False, "reason": None, "forward": None, "warned": False}
#: seconds spent in calls that compiled (first calls of a new graph), for reporting
_timings: dict[str, float] = {"probe_s": 0.0}


def _probe() -> None:
    """Compile and run a tiny function with inductor; raises where the toolchain is missing."""
    if not torch._dynamo.is_dynamo_supported():
        raise RuntimeError("TorchDynamo does not support this Python/platform")
    fn = torch.compile(_probe_fn, backend="inductor", dynamic=True)
    x = torch.linspace(-1.0, 1.0, 7)
    if not torch.allclose(fn(x), _probe_fn(x)):
        raise RuntimeError("inductor's probe kernel gave a wrong result")


def unavailable_reason() -> str | None:
    """Why the compiled path cannot run here (``None`` when it can); checked once per process.

    The check compiles and runs a tiny function with inductor (a few seconds the first time in a
    process; the generated kernel is cached on disk by torch).
    """
    with _lock:
        if not _state["checked"]:
            start = time.perf_counter()
            try:
                _probe()
            except Exception as exc:  # any failure of the toolchain means: run eagerly
                _state["reason"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"[
                    :300
                ]
            _timings["probe_s"] = time.perf_counter() - start
            _state["checked"] = True
        return _state["reason"]


def _compiled() -> Any:
    with _lock:
        if _state["forward"] is None:
            config = torch._dynamo.config
            config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
            _state["forward"] = torch.compile(
                _call, backend="inductor", dynamic=True
            )
        return _state["forward"]


def compiled_forward(module: torch.nn.Module, batch: Any, **kwargs: Any) -> torch.Tensor:
    """``module(batch, **kwargs)`` through the process-wide compiled code, or eagerly as fallback.

    Parameters
    ----------
    module : torch.nn.Module
        Usually a :class:`skcgcnn.model.CGCNN`.
    batch : GraphBatch
        Its input.
    **kwargs
        Passed to the module.

    Returns
    -------
    Tensor
        The module's output; equal to the eager one within float32 round-off.

    Warns
    -----
    CompileFallbackWarning
        Once per process, when inductor is unavailable or compiling the model fails (the
        reason is in the message); the module then runs eagerly from then on.

    Examples
    --------
    >>> import torch
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.batch import collate_graphs
    >>> from skcgcnn.elements import cgcnn_encoding
    >>> from skcgcnn.graph import build_graph
    >>> from skcgcnn.model import CGCNN
    >>> cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> model = CGCNN(cgcnn_encoding(), atom_fea_len=8, n_conv=1, h_fea_len=8).eval()
    >>> batch = collate_graphs([build_graph(cscl)] * 2)
    >>> out = compiled_forward(model, batch)  # doctest: +SKIP
    >>> torch.allclose(out, model(batch), atol=1e-5)  # doctest: +SKIP
    True
    """
    reason = unavailable_reason()
    if reason is not None:
        warn_fallback(reason)
        return module(batch, **kwargs)
    try:
        return _compiled()(module, batch, **kwargs)
    except Exception as exc:
        if not _is_compile_error(exc):
            raise
        # A genuine error of the model raises here again, as it would without compile=True;
        # otherwise compiling this model failed: say why and go on eagerly.
        out = module(batch, **kwargs)
        with _lock:
            _state["reason"] = f"compiling the model failed: {type(exc).__name__}: " + (
                str(exc).strip().splitlines() or [""]
            )[0][:300]
        warn_fallback(_state["reason"])
        return out


def _is_compile_error(exc: BaseException) -> bool:
    """An error of TorchDynamo/inductor (tracing, lowering, the C++ toolchain)."""
    from torch._dynamo.exc import TorchDynamoException

    return isinstance(exc, TorchDynamoException) or type(exc).__module__.startswith(
        ("torch._inductor", "torch._dynamo")
    )


def warn_fallback(reason: str) -> None:
    """Warn (once per process) that the compiled path falls back to eager execution."""
    with _lock:
        if _state["warned"]:
            return
        _state["warned"] = True
    warnings.warn(
        f"compile=True: torch.compile (inductor) is unavailable here, so the model runs "
        f"eagerly (same results, no speed-up). Reason: {reason}",
        CompileFallbackWarning,
        stacklevel=3,
    )


def compile_status() -> dict[str, Any]:
    """What the compiled path did in this process: availability, reason, probe seconds.

    Examples
    --------
    >>> sorted(compile_status())
    ['available', 'checked', 'probe_s', 'reason']
    """
    return {
        "checked": _state["checked"],
        "available": _state["checked"] and _state["reason"] is None,
        "reason": _state["reason"],
        "probe_s": _timings["probe_s"],
    }


def _reset_for_tests() -> None:
    """Forget the availability check and the warning (tests only)."""
    with _lock:
        _state.update(checked=False, reason=None, warned=False)
