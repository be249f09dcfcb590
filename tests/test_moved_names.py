"""Names that moved to a smaller module stay where they were: old imports and old pickles work.

When a module was split, its classes and functions went to a new module and are re-exported
from the old one. Pickles made before refer to a class by its old module (``skcgcnn.model
ConvLayer``); pickle looks it up with ``getattr(import_module(module), name)``, which these tests
do through a pickle stream that names the old place.
"""

from __future__ import annotations

import pickle

import pytest

#: (old module, name, module that defines it now), for every public name that moved.
MOVED = [
    ("skcgcnn.model", "GaussianExpansion", "skcgcnn._convolutions"),
    ("skcgcnn.model", "EdgeFeatures", "skcgcnn._convolutions"),
    ("skcgcnn.model", "ConvLayer", "skcgcnn._convolutions"),
    ("skcgcnn.model", "SimpleConvLayer", "skcgcnn._convolutions"),
    ("skcgcnn.model", "GCNLayer", "skcgcnn._convolutions"),
    ("skcgcnn.model", "CONV_LAYERS", "skcgcnn._convolutions"),
    ("skcgcnn.datasets", "read_cif_folder", "skcgcnn._cif_folder"),
    ("skcgcnn.datasets", "ID_PROP_FILE", "skcgcnn._cif_folder"),
    ("skcgcnn.datasets", "ATOM_INIT_FILE", "skcgcnn._cif_folder"),
    ("skcgcnn.checkpoints", "read_checkpoint", "skcgcnn._checkpoint_file"),
]
#: Module constants that were importable but never in the old module's ``__all__``.
UNLISTED = {"ID_PROP_FILE", "ATOM_INIT_FILE"}


def _by_old_reference(module: str, name: str):
    """What unpickling a reference to ``module.name`` (protocol 0 ``GLOBAL``) gives."""
    return pickle.loads(f"c{module}\n{name}\n.".encode())


@pytest.mark.parametrize(("old", "name", "new"), MOVED, ids=[f"{o}.{n}" for o, n, _ in MOVED])
def test_a_moved_name_is_found_at_its_old_place(old, name, new):
    import importlib

    moved = getattr(importlib.import_module(new), name)
    assert getattr(importlib.import_module(old), name) is moved
    if name not in UNLISTED:
        assert name in importlib.import_module(old).__all__
    if isinstance(moved, type):
        assert moved.__module__ == new  # new pickles name the new place ...
        assert _by_old_reference(old, name) is moved  # ... and old ones still load


def test_a_module_pickled_with_the_old_class_path_loads():
    """A layer pickled when it lived in ``skcgcnn.model`` (the reference rewritten to the old
    path) unpickles to the same layer."""
    import torch

    from skcgcnn.model import ConvLayer

    torch.manual_seed(0)
    layer = ConvLayer(4, 6)
    data = pickle.dumps(layer, protocol=2)
    old = data.replace(b"skcgcnn._convolutions", b"skcgcnn.model")
    assert old != data and b"skcgcnn._convolutions" not in old
    restored = pickle.loads(old)
    assert type(restored) is ConvLayer
    for key, value in layer.state_dict().items():
        assert torch.equal(restored.state_dict()[key], value), key
