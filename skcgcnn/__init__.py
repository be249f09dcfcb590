"""skcgcnn: Crystal Graph Convolutional Neural Networks as scikit-learn estimators.

>>> from skcgcnn import CrystalGraphFeaturizer, CGCNNRegressor, CGCNNClassifier
"""

from .cache import StructureMemory, content_hash
from .checkpoints import load_checkpoint, save_checkpoint
from .elements import UnseenElementWarning
from .ensemble import CGCNNEnsembleRegressor
from .estimators import CGCNNClassifier, CGCNNRegressor
from .featurizer import CrystalGraphFeaturizer, FeaturizationError, StructureConversionWarning
from .graph import CrystalGraph, GraphConstructionError, SparseNeighborWarning, build_graph

__version__ = "0.1.0"

__all__ = [
    "CGCNNClassifier",
    "CGCNNEnsembleRegressor",
    "CGCNNRegressor",
    "CrystalGraph",
    "CrystalGraphFeaturizer",
    "FeaturizationError",
    "GraphConstructionError",
    "SparseNeighborWarning",
    "StructureConversionWarning",
    "StructureMemory",
    "UnseenElementWarning",
    "__version__",
    "build_graph",
    "content_hash",
    "load_checkpoint",
    "save_checkpoint",
]
