"""skcgcnn: Crystal Graph Convolutional Neural Networks as scikit-learn estimators.

>>> from skcgcnn import CrystalGraphFeaturizer, CGCNNRegressor, CGCNNClassifier

Public names are imported lazily (PEP 562): ``import skcgcnn`` loads neither torch nor
pymatgen, so featurization workers and command-line tools start fast; the first use of a
name imports its module.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__  # noqa: F401 (re-exported)

#: public name -> module (relative to the package) that defines it
_EXPORTS = {
    "CGCNNClassifier": "estimators",
    "CGCNNEnsembleClassifier": "ensemble",
    "CGCNNEnsembleRegressor": "ensemble",
    "CGCNNHurdleRegressor": "hurdle",
    "CGCNNRegressor": "estimators",
    "CrystalGraph": "graph",
    "CrystalGraphFeaturizer": "featurizer",
    "FeaturizationError": "featurizer",
    "GraphConstructionError": "graph",
    "GraphStore": "store",
    "SparseNeighborWarning": "graph",
    "StructureConversionWarning": "featurizer",
    "StructureMemory": "cache",
    "UnseenElementWarning": "elements",
    "build_graph": "graph",
    "content_hash": "cache",
    "load_checkpoint": "checkpoints",
    "save_checkpoint": "checkpoints",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
