"""Paths to the shared data beside the checkout, and a skip helper (importable by tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
REFERENCE = SHARED / "reference-cgcnn"
DATASETS = SHARED / "datasets"
DEMO_DATA = ROOT / "examples" / "data" / "matbench_perovskites_demo.json.gz"


def require_shared(*parts: str) -> Path:
    """Path under ../shared, or skip the test when it is absent (a user's clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (../shared is only beside the developers' checkout)")
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
