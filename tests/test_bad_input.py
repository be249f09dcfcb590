"""The robustness catalogue at the estimator and featurizer level (see docs/robustness.md).

Every bad input gets a clear error naming the entry and the reason, or follows a documented path
(NaN rows, a warning that counts what was dropped, a conversion with a warning). Graph-level
cases are in ``test_graph.py``, checkpoint files in ``test_checkpoints.py`` and CIF folders in
``test_datasets.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from pymatgen.core import DummySpecies, Lattice, Molecule, Structure
from sklearn.exceptions import NotFittedError

from skcgcnn import CGCNNClassifier, CGCNNRegressor, CrystalGraphFeaturizer, build_graph
from skcgcnn.elements import cgcnn_encoding
from skcgcnn.featurizer import FeaturizationError, StructureConversionWarning
from skcgcnn.graph import SparseNeighborWarning

TINY = {
    "max_epochs": 2,
    "batch_size": 8,
    "random_state": 0,
    "verbose": 0,
    "module__atom_fea_len": 8,
    "module__h_fea_len": 8,
    "module__n_conv": 1,
}

# Real binary crystals (experimental lattice constants, Angstrom) in their primitive cells.
ROCKSALT = {"LiF": 4.03, "NaCl": 5.64, "KCl": 6.29, "MgO": 4.21, "NaF": 4.63, "KBr": 6.60,
            "CaO": 4.81, "LiCl": 5.13}
CSCL = {"CsCl": 4.12, "CsBr": 4.29, "TlCl": 3.84, "CsI": 4.57}


def _rocksalt(formula: str, a: float) -> Structure:
    cation, anion = _split(formula)
    fcc = Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
    return Structure(fcc, [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _cscl(formula: str, a: float) -> Structure:
    cation, anion = _split(formula)
    return Structure(Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _split(formula: str) -> tuple[str, str]:
    k = next(i for i in range(1, len(formula)) if formula[i].isupper())
    return formula[:k], formula[k:]


STRUCTURES = [_rocksalt(f, a) for f, a in ROCKSALT.items()] + [_cscl(f, a) for f, a in CSCL.items()]
LATTICE_A = np.array(list(ROCKSALT.values()) + list(CSCL.values()))  # a real target: y = a
STRUCTURE_TYPE = np.array(["rocksalt"] * len(ROCKSALT) + ["cscl"] * len(CSCL))
N = len(STRUCTURES)


def _overlapping() -> Structure:
    broken = STRUCTURES[1].copy()
    broken.append("Na", [0.0, 0.0, 0.0001], validate_proximity=False)
    return broken


def _with(k: int, entry: object) -> list:
    X = list(STRUCTURES)
    X[k] = entry
    return X


@pytest.fixture(scope="module")
def regressor() -> CGCNNRegressor:
    return CGCNNRegressor(**TINY).fit(STRUCTURES, LATTICE_A)


@pytest.fixture(scope="module")
def classifier() -> CGCNNClassifier:
    return CGCNNClassifier(**TINY).fit(STRUCTURES, STRUCTURE_TYPE)


# --------------------------------------------------------------------------- clear errors in fit
def _partial_atom_table() -> dict:
    table = cgcnn_encoding()
    return {z: table[z].tolist() for z in range(1, 101) if z != 55}  # no caesium


FIT_ERRORS = {
    # id: (estimator, X, y, extra params, exception, message)
    "X-None": ("reg", None, LATTICE_A, {}, ValueError, r"X is None"),
    "X-empty": ("reg", [], [], {}, ValueError, r"X is empty"),
    "X-single-Structure": ("reg", STRUCTURES[0], LATTICE_A[:1], {}, ValueError,
                           r"X is a single Structure; pass a sequence"),
    "X-int-at-k": ("reg", _with(2, 3), LATTICE_A, {}, ValueError, r"X\[2\] is of type int"),
    "X-str-at-k": ("clf", _with(5, "NaCl"), STRUCTURE_TYPE, {}, ValueError,
                   r"X\[5\] is of type str"),
    "X-dict-at-k": ("reg", _with(7, STRUCTURES[7].as_dict()), LATTICE_A, {}, ValueError,
                    r"X\[7\] is of type dict"),
    "X-2d-array": ("reg", np.empty((N, 2), dtype=object), LATTICE_A, {}, ValueError,
                   r"X must be 1-D"),
    "X-frame-without-structures": (
        "reg", pd.DataFrame({"a": range(N), "b": range(N)}), LATTICE_A, {}, ValueError,
        r"no 'crystal_graph' or 'structure' column"),
    "y-None": ("reg", STRUCTURES, None, {}, ValueError, r"y is None"),
    "y-NaN-at-k": ("reg", STRUCTURES, np.where(np.arange(N) == 3, np.nan, LATTICE_A), {},
                   ValueError, r"NaN or infinity at index 3"),
    "y-inf-at-k": ("reg", STRUCTURES, np.where(np.arange(N) == 9, -np.inf, LATTICE_A), {},
                   ValueError, r"NaN or infinity at index 9"),
    "len-X-ne-len-y": ("reg", STRUCTURES, LATTICE_A[:-1], {}, ValueError,
                       r"different lengths: 12 samples in X, 11 in y"),
    "y-text-for-regression": ("reg", STRUCTURES, STRUCTURE_TYPE, {}, ValueError,
                              r"y must be numeric"),
    "single-sample": ("reg", STRUCTURES[:1], LATTICE_A[:1], {}, ValueError,
                      r"at least 2 samples are needed to fit, got 1"),
    "classifier-one-class": ("clf", STRUCTURES, ["rocksalt"] * N, {}, ValueError,
                             r"only one class \('rocksalt'\)"),
    "classifier-mixed-label-types": ("clf", STRUCTURES, ["a", 1] * (N // 2), {}, ValueError,
                                     r"mixes label types: y\[0\] is str and y\[1\] is int"),
    "classifier-missing-label": ("clf", STRUCTURES, [*STRUCTURE_TYPE[:4], np.nan,
                                                     *STRUCTURE_TYPE[5:]], {},
                                 ValueError, r"missing value \(NaN/None\) at index 4"),
    "featurization-fails-at-k": ("reg", _with(4, _overlapping()), LATTICE_A, {},
                                 FeaturizationError, r"entry 4: .*sites 0 and 2 overlap"),
    "dummy-species-at-k": (
        "clf", _with(6, Structure(Lattice.cubic(4.0), ["Na", DummySpecies("X")],
                                  [[0, 0, 0], [0.5, 0.5, 0.5]])),
        STRUCTURE_TYPE, {}, FeaturizationError, r"entry 6: .*species X0\+ is not a chemical"),
    "element-missing-from-atom-table": ("reg", STRUCTURES, LATTICE_A,
                                        {"atom_features": _partial_atom_table()}, ValueError,
                                        r"X\[8\] contains elements with Z=\[55\]"),
}


@pytest.mark.parametrize("case", list(FIT_ERRORS), ids=list(FIT_ERRORS))
def test_fit_rejects_bad_input_with_a_clear_error(case: str) -> None:
    kind, X, y, params, exception, message = FIT_ERRORS[case]
    estimator = (CGCNNRegressor if kind == "reg" else CGCNNClassifier)(**{**TINY, **params})
    with pytest.raises(exception, match=message):
        estimator.fit(X, y)


def test_mixed_graph_settings_in_fit_are_rejected() -> None:
    graphs = [build_graph(s, radius=8.0) for s in STRUCTURES]
    graphs[3] = build_graph(STRUCTURES[3], radius=6.0)
    with pytest.raises(ValueError, match=r"different \(radius, max_num_nbr\)"):
        CGCNNRegressor(**TINY).fit(graphs, LATTICE_A)


# --------------------------------------------------------------------------- clear errors later
@pytest.mark.parametrize("method", ["predict", "transform", "score"])
@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_unfitted_model_raises_not_fitted(kind: str, method: str) -> None:
    estimator = CGCNNRegressor(**TINY) if kind == "reg" else CGCNNClassifier(**TINY)
    args = (STRUCTURES, LATTICE_A if kind == "reg" else STRUCTURE_TYPE)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(estimator, method)(*args[: 2 if method == "score" else 1])


def test_unfitted_classifier_predict_proba_and_classes() -> None:
    with pytest.raises(NotFittedError):
        CGCNNClassifier(**TINY).predict_proba(STRUCTURES)
    with pytest.raises(AttributeError, match="not fitted yet"):
        CGCNNClassifier(**TINY).classes_  # noqa: B018


def test_predict_on_graphs_of_another_radius_is_rejected(regressor: CGCNNRegressor) -> None:
    other = [build_graph(s, radius=6.0) for s in STRUCTURES[:3]]
    with pytest.raises(ValueError, match=r"fitted on graphs with radius=8 and max_num_nbr=12"):
        regressor.predict(other)


@pytest.mark.parametrize("bad", [None, [], 7], ids=["None", "empty", "int"])
def test_predict_rejects_bad_X(regressor: CGCNNRegressor, bad: object) -> None:
    with pytest.raises(ValueError, match=r"X is None|X is empty|X must be a sequence"):
        regressor.predict(bad)


@pytest.mark.parametrize("kind", ["reg", "clf"])
def test_single_sample_predict_works(kind: str, regressor, classifier) -> None:
    model = regressor if kind == "reg" else classifier
    single = model.predict([STRUCTURES[0]])
    assert single.shape == (1,)
    batched = model.predict(STRUCTURES)[0]
    assert single[0] == pytest.approx(batched, rel=1e-6) if kind == "reg" else single[0] == batched


def test_unseen_labels_count_as_wrong_in_score(classifier: CGCNNClassifier) -> None:
    predicted = classifier.predict(STRUCTURES)
    # half of the true labels replaced by a class the model never saw
    y = np.where(np.arange(N) % 2 == 0, STRUCTURE_TYPE, "zincblende")
    expected = np.mean(predicted == y)
    assert classifier.score(STRUCTURES, y) == pytest.approx(expected)
    assert classifier.score(STRUCTURES, ["zincblende"] * N) == 0.0


# --------------------------------------------------------------------------- ignore_errors paths
BROKEN_AT = 4


@pytest.fixture(scope="module", params=["ignore_errors-featurizer", "NaN-graph-entries"])
def X_with_failures(request) -> tuple[list, str]:
    """X where entry 4 cannot be used, in the two ways it can arrive."""
    if request.param == "ignore_errors-featurizer":
        return _with(BROKEN_AT, _overlapping()), request.param
    graphs = CrystalGraphFeaturizer().featurize_dataframe(
        pd.DataFrame({"structure": _with(BROKEN_AT, _overlapping())}), "structure",
        ignore_errors=True, pbar=False,
    )["crystal_graph"]
    assert pd.isna(graphs.iloc[BROKEN_AT])
    return list(graphs), request.param


def _tolerant(cls):
    return cls(featurizer=CrystalGraphFeaturizer(ignore_errors=True), **TINY)


def test_failed_rows_are_dropped_from_fit_with_a_counting_warning(X_with_failures) -> None:
    X, _ = X_with_failures
    with pytest.warns(UserWarning, match=r"1 of 12 samples could not be featurized "
                                         r"\(first: X\[4\]\) and are left out of fit"):
        model = _tolerant(CGCNNRegressor).fit(X, LATTICE_A)
    # trained on the other 11 only: the same model as fitting them directly
    kept = [s for i, s in enumerate(STRUCTURES) if i != BROKEN_AT]
    reference = CGCNNRegressor(**TINY).fit(kept, np.delete(LATTICE_A, BROKEN_AT))
    np.testing.assert_array_equal(model.predict(kept), reference.predict(kept))


def test_regressor_predicts_nan_for_failed_rows(X_with_failures, regressor) -> None:
    X, _ = X_with_failures
    model = _tolerant(CGCNNRegressor)
    with pytest.warns(UserWarning, match="left out of fit"):
        model.fit(X, LATTICE_A)
    predicted = model.predict(X)
    assert np.isnan(predicted[BROKEN_AT])
    assert np.isfinite(np.delete(predicted, BROKEN_AT)).all()  # never a silent zero
    with pytest.raises(ValueError, match=r"1 samples could not be featurized \(first: X\[4\]\) "
                                         r"and have NaN predictions"):
        model.score(X, LATTICE_A)


def test_classifier_gives_nan_probabilities_and_predict_raises(X_with_failures) -> None:
    X, _ = X_with_failures
    with pytest.warns(UserWarning, match="left out of fit"):
        model = _tolerant(CGCNNClassifier).fit(X, STRUCTURE_TYPE)
    proba = model.predict_proba(X)
    assert np.isnan(proba[BROKEN_AT]).all()
    np.testing.assert_allclose(np.delete(proba, BROKEN_AT, axis=0).sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match=r"X\[4\]\) and have no class; use predict_proba"):
        model.predict(X)


def test_without_ignore_errors_predict_names_the_entry(regressor: CGCNNRegressor) -> None:
    with pytest.raises(FeaturizationError, match=r"entry 4: .*overlap"):
        regressor.predict(_with(BROKEN_AT, _overlapping()))


# --------------------------------------------------------------------------- training edge cases
def _po(a: float) -> Structure:
    return Structure(Lattice.cubic(a), ["Po"], [[0, 0, 0]])  # alpha-Po: one atom per cell


@pytest.mark.parametrize(
    "n_samples, batch_size",
    [(6, 1), (9, 8)],
    ids=["every-batch-one-atom", "last-batch-one-atom"],
)
def test_one_atom_training_batch_uses_running_batchnorm_stats(n_samples, batch_size) -> None:
    X = [_po(3.2 + 0.05 * i) for i in range(n_samples)]
    y = np.linspace(0.0, 1.0, n_samples)
    model = CGCNNRegressor(**{**TINY, "batch_size": batch_size, "train_split": None}).fit(X, y)
    assert len(model.history_) == 2
    assert np.isfinite(model.history_[:, "train_loss"]).all()
    assert np.isfinite(model.predict(X)).all()


class _InfiniteLoss(torch.nn.MSELoss):
    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(input, target * float("inf"))


class _NaNFromEpoch3(torch.nn.MSELoss):
    """Finite for two calls (two epochs of one batch), NaN afterwards."""

    calls = 0

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        loss = super().forward(input, target)
        return loss * float("nan") if type(self).calls >= 3 else loss


@pytest.mark.parametrize(
    "params, epoch",
    [
        ({"criterion": _InfiniteLoss}, 1),
        ({"lr": 1e30}, 1),
        ({"criterion": _NaNFromEpoch3, "batch_size": N, "train_split": None}, 3),
    ],
    ids=["inf-scaled-targets", "absurd-learning-rate", "nan-from-epoch-3"],
)
def test_non_finite_loss_stops_training_naming_the_epoch(params: dict, epoch: int) -> None:
    _NaNFromEpoch3.calls = 0
    model = CGCNNRegressor(**{**TINY, "max_epochs": 5, "batch_size": 4, **params})
    with pytest.raises(FloatingPointError,
                       match=rf"training loss became (nan|inf) at epoch {epoch}; lower the"):
        model.fit(STRUCTURES, LATTICE_A)
    assert len(model.history_) == epoch  # stopped there, not trained on


# --------------------------------------------------------------------------- non-Structure input
def _carbon_monoxide() -> Molecule:
    return Molecule(["C", "O"], [[0, 0, 0], [0, 0, 1.128]])


def test_molecule_is_boxed_in_vacuum_with_a_warning() -> None:
    with pytest.warns(StructureConversionWarning, match=r"1 non-periodic entries \(first: entry 0"):
        with pytest.warns(SparseNeighborWarning):
            graph = CrystalGraphFeaturizer().featurize(_carbon_monoxide())[0]
    assert graph.n_atoms == 2
    np.testing.assert_allclose(graph.distances[:, 0], 1.128, atol=1e-5)  # the C-O bond ...
    np.testing.assert_array_equal(graph.distances[:, 1:], 9.0)  # ... and no periodic image


def test_estimators_accept_molecules(regressor: CGCNNRegressor) -> None:
    with pytest.warns(StructureConversionWarning, match=r"first: entry 1\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SparseNeighborWarning)
            predicted = regressor.predict([STRUCTURES[0], _carbon_monoxide()])
    assert predicted.shape == (2,) and np.isfinite(predicted).all()
    assert predicted[0] == pytest.approx(regressor.predict(STRUCTURES[:1])[0], rel=1e-6)


def test_ase_atoms_are_converted() -> None:
    ase_build = pytest.importorskip("ase.build")
    featurizer = CrystalGraphFeaturizer()
    nacl = ase_build.bulk("NaCl", "rocksalt", a=5.64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a periodic crystal converts without any warning
        from_ase = featurizer.featurize(nacl)[0]
    np.testing.assert_array_equal(from_ase.atomic_numbers, [11, 17])
    np.testing.assert_allclose(from_ase.distances, build_graph(STRUCTURES[1]).distances,
                               atol=1e-5)

    water = ase_build.molecule("H2O")
    with pytest.warns(StructureConversionWarning):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SparseNeighborWarning)
            rows = featurizer.featurize_many([nacl, water])
    assert rows[1][0].n_atoms == 3 and (rows[1][0].distances[:, 2:] == 9.0).all()

    slab = ase_build.fcc111("Cu", (2, 2, 3), vacuum=None)  # pbc (T, T, F) and no c vector
    with pytest.raises(FeaturizationError, match=r"entry 0: ASE Atoms with pbc=\[True, True, "
                                                 r"False\] has a cell of zero volume"):
        featurizer.featurize_many([slab])
