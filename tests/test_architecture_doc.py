"""docs/architecture.md keeps up with the code: every module, every overridden skorch method."""

from __future__ import annotations

import re

import pytest
from shared_data import ROOT
from skorch import NeuralNetClassifier, NeuralNetRegressor

from skcgcnn._mixin import _CGCNNMixin
from skcgcnn._persist import _PersistenceMixin
from skcgcnn.estimators import CGCNNClassifier, CGCNNRegressor

PAGE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
TEXT = re.sub(r"^```.*?^```", "", PAGE, flags=re.S | re.M)  # without the code blocks
NAMES = set(re.findall(r"`([^`]+)`", TEXT))  # everything written as inline code


#: What every class has (or what ``__init__`` of a subclass is): not an extension of skorch.
PYTHON_INTERNALS = {"__doc__", "__module__", "__init__", "__annotations__", "__dict__",
                    "__weakref__", "__qualname__", "__firstlineno__", "__static_attributes__",
                    "__parameters__", "__orig_bases__", "__abstractmethods__", "_abc_impl"}


@pytest.mark.parametrize("path", sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "skcgcnn").rglob("*.py")))
def test_every_module_is_described(path):
    parts = path.split("/")
    if len(parts) > 2:  # a subpackage is described as a whole, its modules by file name
        assert f"{'/'.join(parts[:-1])}/" in NAMES and f"`{parts[-1]}`" in PAGE, path
    else:
        assert any(path in name for name in NAMES), path


#: The estimators and every base class of theirs the package defines (the mixins).
OWN_CLASSES = sorted(
    {cls for est in (CGCNNRegressor, CGCNNClassifier) for cls in est.__mro__
     if cls.__module__.startswith("skcgcnn")},
    key=lambda cls: (cls.__module__, cls.__qualname__),
)


def test_the_known_extensions_are_among_the_classes_checked():
    assert {_PersistenceMixin, _CGCNNMixin, CGCNNRegressor, CGCNNClassifier} <= set(OWN_CLASSES)


@pytest.mark.parametrize("cls", OWN_CLASSES, ids=lambda cls: cls.__name__)
def test_every_overridden_skorch_method_is_listed(cls):
    overridden = {
        name for name in vars(cls)
        if (hasattr(NeuralNetRegressor, name) or hasattr(NeuralNetClassifier, name))
        and not re.fullmatch(r"set_\w+_request", name)  # scikit-learn's metadata routing
        and name not in PYTHON_INTERNALS
    }
    if cls in (_PersistenceMixin, _CGCNNMixin, CGCNNRegressor, CGCNNClassifier):
        assert overridden  # the estimators do extend skorch
    missing = sorted(overridden - NAMES)
    assert not missing, f"{cls.__name__} overrides {missing}, not described in architecture.md"
