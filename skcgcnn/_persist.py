"""Saving and loading the estimators (private): ``save_params``/``load_params``, pickling.

skorch's ``save_params(f_params=...)`` writes the module's ``state_dict`` only, and
``load_params`` loads it into an estimator that must already hold the fitted attributes (element
table, target normaliser, classes): on a fresh estimator that fails, and on one fitted on other
data it silently predicts with the other data's normaliser. Here ``f_params`` is a checkpoint in
the format of :func:`skcgcnn.checkpoints.save_checkpoint` (weights *and* fitted state), so the
round trip is exact; a bare ``state_dict`` (written by plain skorch or torch) loads only into an
estimator that is already fitted, and otherwise the error points to the exact ways.

A pickled fitted estimator holds the model, its fitted state and its history, not the
optimizer's moments: :func:`light_view` is what ``__getstate__`` pickles.
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

EXACT_WAYS = (
    "for an exact round trip use skcgcnn.checkpoints.save_checkpoint(est, path) and "
    "load_checkpoint(path), pickle/joblib, or this estimator's own save_params(f_params=...)"
)


def is_fitted(est: Any) -> bool:
    return bool(getattr(est, "initialized_", False)) and hasattr(est, "n_outputs_")


def save_params_file(est: Any, f: Any) -> None:
    """Write ``f_params``: the weights and the fitted state, as a skcgcnn checkpoint."""
    from ._checkpoint_io import checkpoint_dict

    torch.save(checkpoint_dict(est), f)


def _read(f: Any) -> Any:
    from ._checkpoint_file import _torch_load

    if hasattr(f, "read"):
        return _torch_load(f)
    with open(f, "rb") as handle:
        return _torch_load(handle)


def _same_table(module: torch.nn.Module, table: np.ndarray) -> bool:
    own = getattr(module, "atom_features", None)
    if own is None:
        return False
    own = own.detach().cpu().numpy()
    return own.shape == table.shape and bool(np.allclose(own, table, equal_nan=True))


def load_params_file(est: Any, f: Any, initialize: Any) -> None:
    """Load ``f_params`` into ``est``: weights and, from a skcgcnn checkpoint, the fitted state.

    ``initialize`` is the estimator's (device-aware) ``initialize``; it runs when ``est`` has no
    module yet or one built for another element table or number of outputs. The history is kept.
    """
    from ._checkpoint_file import _check_structure
    from ._checkpoint_io import restore_fitted_state

    content = _read(f)
    where = f if isinstance(f, str) else getattr(f, "name", "f_params")
    if isinstance(content, Mapping) and "state_dict" in content and "skcgcnn" in content:
        _check_structure(content, where)
        restore_fitted_state(est, content, str(where))
        state = content["state_dict"]
        module = getattr(est, "module_", None)
        rebuild = (
            not getattr(est, "initialized_", False)
            or module is None
            or not _same_table(module, est.atom_features_)
            or tuple(module.state_dict()["fc_out.weight"].shape) != tuple(
                state["fc_out.weight"].shape)
        )
        if rebuild:
            history = getattr(est, "history_", None)
            est._loading_params = True  # the weights come from the file, not from init_from
            try:
                initialize()
            finally:
                del est._loading_params
            if history is not None:
                est.history_ = history
    elif isinstance(content, Mapping) and all(isinstance(v, torch.Tensor)
                                              for v in content.values()):
        if not is_fitted(est):
            raise ValueError(
                f"'{where}' holds weights only (a bare state_dict, as plain skorch or torch "
                f"write it), and this {type(est).__name__} is not fitted: its element table and "
                f"target normaliser (or classes) are unknown, so predictions would be wrong; "
                f"{EXACT_WAYS}"
            )
        state = content
    else:
        raise ValueError(f"'{where}' is neither a skcgcnn checkpoint nor a state_dict; "
                         f"{EXACT_WAYS}")
    try:
        est.module_.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise ValueError(
            f"the weights in '{where}' do not fit this {type(est).__name__}'s network (build it "
            f"with the same module__* parameters, or use load_checkpoint(path), which reads them "
            f"from the file): {detail[:300]}"
        ) from None


def _without_moments(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """A shallow copy of ``optimizer`` with the same parameter groups and no per-parameter state."""
    light = copy.copy(optimizer)
    light.state = collections.defaultdict(dict)
    return light


def light_view(est: Any) -> Any:
    """A shallow view of ``est`` to pickle: the optimizer without its per-parameter state (Adam's
    moments, twice the size of the model). ``est`` itself is not changed."""
    optimizer = vars(est).get("optimizer_")
    if optimizer is None or not getattr(optimizer, "state", None):
        return est
    view = object.__new__(type(est))
    view.__dict__.update(vars(est))
    view.__dict__["optimizer_"] = _without_moments(optimizer)
    return view


class _PersistenceMixin:
    """How the estimators are copied and saved: ``clone``, pickling, ``save_params`` /
    ``load_params`` (a base of :class:`~skcgcnn._mixin._CGCNNMixin`)."""

    def __sklearn_clone__(self) -> Any:
        """scikit-learn's ``clone``, except that a fitted estimator given as ``init_from`` is
        kept as it is (``clone`` would unfit it, losing the weights to fine-tune from)."""
        from sklearn.base import clone

        params = self.get_params(deep=False)
        source = params.get("init_from")
        keep = source is not None and hasattr(source, "get_params") and hasattr(source, "module_")
        new_params = {name: source if keep and name == "init_from" else clone(value, safe=False)
                      for name, value in params.items()}
        new = type(self)(**new_params)
        if hasattr(self, "_metadata_request"):
            new._metadata_request = copy.deepcopy(self._metadata_request)
        if hasattr(self, "_sklearn_output_config"):  # set_output, as scikit-learn's clone
            new._sklearn_output_config = copy.deepcopy(self._sklearn_output_config)
        return new

    def __getstate__(self) -> dict[str, Any]:
        """What a pickle holds: the model, its fitted state and history, without the
        optimizer's per-parameter state (see :func:`light_view`)."""
        return super(_PersistenceMixin, light_view(self)).__getstate__()

    def save_params(self, f_params: Any = None, f_optimizer: Any = None, f_criterion: Any = None,
                    f_history: Any = None, use_safetensors: bool = False, **kwargs: Any) -> None:
        """skorch's ``save_params``; ``f_params`` holds the weights *and* the fitted state (a
        checkpoint of :func:`skcgcnn.checkpoints.save_checkpoint`), so that ``load_params``
        restores the estimator exactly, even into a fresh one."""
        target = f_params if f_params is not None else kwargs.pop("f_module", None)
        if target is not None and not use_safetensors and is_fitted(self):
            save_params_file(self, target)
            target = None
        files = {"f_optimizer": f_optimizer, "f_criterion": f_criterion,
                 "f_history": f_history, **kwargs}
        if target is not None:
            files["f_params"] = target
        if any(value is not None for value in files.values()):
            super().save_params(use_safetensors=use_safetensors, **files)

    def load_params(self, f_params: Any = None, f_optimizer: Any = None, f_criterion: Any = None,
                    f_history: Any = None, checkpoint: Any = None, use_safetensors: bool = False,
                    **kwargs: Any) -> None:
        """skorch's ``load_params``; ``f_params`` written by :meth:`save_params` restores the
        fitted state with the weights (element table, normaliser or classes, graph settings),
        exactly, into a fresh estimator too. A bare ``state_dict`` loads only into a fitted
        estimator (a ``ValueError`` names the exact ways otherwise)."""
        files = {}
        if checkpoint is not None:  # as skorch: the history first, it names the files
            if f_history is None and checkpoint.f_history is not None:
                from skorch.history import History

                self.history_ = History.from_file(checkpoint.f_history_)
            files.update(checkpoint.get_formatted_files(self))
            if f_history is None:
                files.pop("f_history", None)
        files.update(kwargs)
        for key, value in (("f_params", f_params), ("f_optimizer", f_optimizer),
                           ("f_criterion", f_criterion), ("f_history", f_history)):
            if value:
                files[key] = value
        target = files.pop("f_params", None)
        target = files.pop("f_module", None) if target is None else target
        if target is not None and not use_safetensors:
            load_params_file(self, target, self.initialize)
            target = None
        if target is not None:
            files["f_params"] = target
        files = {key: value for key, value in files.items() if value is not None}
        if files:
            super().load_params(use_safetensors=use_safetensors, **files)
