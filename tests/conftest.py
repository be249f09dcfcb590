"""Shared fixtures: the reference's sample crystals (tests/data) and the shipped demo data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from shared_data import DEMO_DATA, REFERENCE

# One intra-op thread per test process: pytest-xdist runs one process per core, and OpenMP
# threads that outnumber the cores spin against each other (orders of magnitude slower).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def sample_structures():
    """The 10 COD structures of the reference implementation's sample data, sorted by id."""
    from pymatgen.core import Structure

    folder = REFERENCE / "sample-regression"
    ids = sorted(p.stem for p in folder.glob("*.cif"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = [Structure.from_file(folder / f"{i}.cif") for i in ids]
    return ids, structures


@pytest.fixture(scope="session")
def perovskites():
    """The shipped 3,000-row Matbench perovskites demo subset (always available)."""
    from skcgcnn.datasets import load_matbench

    return load_matbench(DEMO_DATA, target="e_form")


@pytest.fixture(scope="session")
def perovskite_graphs(perovskites):
    """Graphs and targets of the first 400 demo perovskites."""
    from skcgcnn import CrystalGraphFeaturizer

    subset = perovskites.iloc[:400]
    graphs = CrystalGraphFeaturizer().graphs(subset["structure"])
    return graphs, subset["e_form"].to_numpy(), np.asarray(subset["structure"])
