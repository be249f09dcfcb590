"""scikit-learn's ``estimator_checks``, ported to crystal input.

``check_estimator`` runs almost nothing on an estimator whose ``X`` is not a numeric matrix
(tags ``input_tags.two_d_array=False``): it reports "passed" after one check. This module keeps
the list of every check scikit-learn runs on tabular regressors, classifiers and transformers
(:data:`CHECKS`), and says for each one how it is covered:

- ``SKLEARN``: scikit-learn's own function, run unchanged (it needs no numeric data), in
  ``test_sklearn_compat.py::test_sklearn_data_free_checks``;
- ``PORTED``: the same contract, tested here (or in the named test) on real perovskite
  structures or their crystal graphs; a port that fails for a known reason is marked
  ``xfail(strict=True)`` with the reason (see :data:`EXPECTED_FAILURES`), so it is revisited
  when the reason goes away;
- ``NOT_APPLICABLE``: the check is about numeric matrices (feature counts, memory layout,
  sparse formats, array API...) and has no meaning for crystals; the reason says why.

``test_every_sklearn_check_is_accounted_for`` fails when scikit-learn adds a check that is not
in the list, and ``test_docs_list_every_check`` when docs/sklearn.md misses one.
"""

from __future__ import annotations

import functools
import inspect
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from shared_data import ROOT, TINY
from sklearn.base import clone
from sklearn.exceptions import DataConversionWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks
from sklearn.utils._testing import create_memmap_backed_data
from sklearn.utils.validation import check_is_fitted

from skcgcnn import CGCNNClassifier, CGCNNRegressor, CrystalGraph, CrystalGraphFeaturizer
from skcgcnn.graph import build_graph

SKLEARN, PORTED, NOT_APPLICABLE = "sklearn", "ported", "not applicable"

_NO_MATRIX = "X is one crystal per sample, not a numeric matrix"

#: Every check scikit-learn yields for tabular estimators -> (how it is covered, where or why).
#: For ``PORTED``, "where" is the test function (in this module unless ``file::name``).
CHECKS: dict[str, tuple[str, str]] = {
    # ---- run unchanged (data-free)
    "check_estimator_cloneable": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_estimator_tags_renamed": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_valid_tag_types": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_estimator_repr": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_no_attributes_set_in_init": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_estimators_unfitted": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_transformers_unfitted": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_do_not_raise_errors_in_init_or_set_params": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_mixin_order": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_parameters_default_constructible": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_get_params_invariance": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_set_params": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_estimator_sparse_tag": (SKLEARN, "test_sklearn_data_free_checks"),
    "check_requires_y_none": (SKLEARN, "test_sklearn_data_free_checks"),
    # ---- ported to structures / graphs
    "check_fit_score_takes_y": (PORTED, "test_fit_score_takes_y"),
    "check_estimators_overwrite_params": (PORTED, "test_estimators_overwrite_params"),
    "check_dont_overwrite_parameters": (PORTED, "test_dont_overwrite_parameters"),
    "check_estimators_fit_returns_self": (PORTED, "test_estimators_fit_returns_self"),
    "check_readonly_memmap_input": (PORTED, "test_readonly_memmap_input"),
    "check_estimators_dtypes": (PORTED, "test_estimators_dtypes"),
    "check_sample_weights_pandas_series": (PORTED, "test_sample_weights_pandas_series"),
    "check_sample_weights_not_an_array": (PORTED, "test_sample_weights_not_an_array"),
    "check_sample_weights_list": (PORTED, "test_sample_weights_list"),
    "check_sample_weights_shape": (PORTED, "test_sample_weights_shape"),
    "check_all_zero_sample_weights_error": (PORTED, "test_all_zero_sample_weights_error"),
    "check_sample_weights_not_overwritten": (PORTED, "test_sample_weights_not_overwritten"),
    "check_sample_weight_equivalence_on_dense_data": (
        PORTED, "test_sample_weight_equivalence",
    ),
    "check_complex_data": (PORTED, "test_complex_data"),
    "check_dtype_object": (PORTED, "test_dtype_object"),
    "check_estimators_empty_data_messages": (PORTED, "test_estimators_empty_data_messages"),
    "check_pipeline_consistency": (PORTED, "test_pipeline_consistency"),
    "check_estimators_nan_inf": (PORTED, "test_estimators_nan_inf"),
    "check_estimator_sparse_array": (PORTED, "test_estimator_sparse_input"),
    "check_estimator_sparse_matrix": (PORTED, "test_estimator_sparse_input"),
    "check_estimators_pickle": (PORTED, "test_estimators_pickle"),
    "check_regressors_train": (PORTED, "test_regressors_train"),
    "check_regressor_data_not_an_array": (PORTED, "test_data_not_an_array"),
    "check_classifier_data_not_an_array": (PORTED, "test_data_not_an_array"),
    "check_transformer_data_not_an_array": (PORTED, "test_transformer_data_not_an_array"),
    "check_estimators_partial_fit_n_features": (
        PORTED, "test_estimators_partial_fit_n_features",
    ),
    "check_regressor_multioutput": (PORTED, "test_regressor_multioutput"),
    "check_regressors_no_decision_function": (PORTED, "test_regressors_no_decision_function"),
    "check_supervised_y_2d": (PORTED, "test_supervised_y_2d"),
    "check_supervised_y_no_nan": (PORTED, "test_supervised_y_no_nan"),
    "check_regressors_int": (PORTED, "test_regressors_int"),
    "check_methods_sample_order_invariance": (PORTED, "test_methods_sample_order_invariance"),
    "check_methods_subset_invariance": (PORTED, "test_methods_subset_invariance"),
    "check_fit2d_1sample": (PORTED, "test_fit2d_1sample"),
    "check_dict_unchanged": (PORTED, "test_dict_unchanged"),
    "check_fit_idempotent": (PORTED, "test_fit_idempotent"),
    "check_fit_check_is_fitted": (PORTED, "test_fit_check_is_fitted"),
    "check_fit1d": (PORTED, "test_fit1d"),
    "check_fit2d_predict1d": (PORTED, "test_fit2d_predict1d"),
    "check_classifiers_one_label": (PORTED, "test_classifiers_one_label"),
    "check_classifiers_classes": (PORTED, "test_classifiers_classes"),
    "check_classifiers_train": (PORTED, "test_classifiers_train"),
    "check_classifiers_regression_target": (PORTED, "test_classifiers_regression_target"),
    "check_class_weight_classifiers": (
        PORTED, "test_sklearn_compat.py::test_classifier_class_weight_dict_and_balanced",
    ),
    "check_transformer_general": (PORTED, "test_transformer_general"),
    # ---- not applicable
    "check_n_features_in": (
        NOT_APPLICABLE,
        f"{_NO_MATRIX}: there is no number of input features to record as n_features_in_; "
        "what the fitted model requires of X is recorded as graph_radius_, max_num_nbr_ and "
        "atom_features_, and checked on predict (test_estimators_partial_fit_n_features)",
    ),
    "check_n_features_in_after_fitting": (NOT_APPLICABLE, "as check_n_features_in"),
    "check_fit2d_1feature": (NOT_APPLICABLE, f"{_NO_MATRIX}: no feature count to vary"),
    "check_positive_only_tag_during_fit": (
        NOT_APPLICABLE, f"{_NO_MATRIX}; the positive_only tag is False",
    ),
    "check_f_contiguous_array_estimator": (
        NOT_APPLICABLE, f"{_NO_MATRIX}: there is no memory layout of X to vary",
    ),
    "check_array_api_input": (
        NOT_APPLICABLE, f"{_NO_MATRIX}: the array API is for numeric arrays (torch is inside)",
    ),
    "check_array_api_mixed_inputs": (NOT_APPLICABLE, "as check_array_api_input"),
    "check_array_api_same_namespace": (NOT_APPLICABLE, "as check_array_api_input"),
    "check_sample_weight_equivalence_on_sparse_data": (
        NOT_APPLICABLE, f"{_NO_MATRIX}; sparse X is refused (test_estimator_sparse_input)",
    ),
    "check_non_transformer_estimators_n_iter": (
        NOT_APPLICABLE,
        "it applies to estimators with a max_iter parameter; training length is max_epochs and "
        "the epochs run are len(history_)",
    ),
    "check_transformer_n_iter": (NOT_APPLICABLE, "as check_non_transformer_estimators_n_iter"),
    "check_transformer_preserve_dtypes": (
        NOT_APPLICABLE,
        "transform gives crystal graphs (featurizer) or float32 embeddings whatever the input; "
        "the preserves_dtype tag is empty, so scikit-learn skips it too",
    ),
    "check_classifiers_one_label_sample_weights": (
        NOT_APPLICABLE,
        "CGCNNClassifier.fit takes no sample_weight (a TypeError says so; use class_weight)",
    ),
    "check_decision_proba_consistency": (
        NOT_APPLICABLE, "the classifier has no decision_function (predict_proba only)",
    ),
    "check_class_weight_balanced_linear_classifier": (
        NOT_APPLICABLE, "for linear classifiers (coef_) only",
    ),
    "check_sparsify_coefficients": (NOT_APPLICABLE, "for linear models with coef_ only"),
    "check_classifiers_multilabel_representation_invariance": (
        NOT_APPLICABLE, "multilabel targets are not supported (the multi_label tag is False)",
    ),
    "check_classifiers_multilabel_output_format_predict": (
        NOT_APPLICABLE, "as check_classifiers_multilabel_representation_invariance",
    ),
    "check_classifiers_multilabel_output_format_predict_proba": (
        NOT_APPLICABLE, "as check_classifiers_multilabel_representation_invariance",
    ),
    "check_classifiers_multilabel_output_format_decision_function": (
        NOT_APPLICABLE, "as check_classifiers_multilabel_representation_invariance",
    ),
}

#: Ported checks that fail for a stated reason: (check, estimator kind) -> reason. Each is run
#: with ``xfail(strict=True)``: it must still fail, so the list is revisited when it passes.
EXPECTED_FAILURES: dict[tuple[str, str], str] = {
    ("check_sample_weight_equivalence_on_dense_data", "regressor"): (
        "batch normalisation: a sample repeated twice enters the batch statistics twice, a "
        "sample of weight 2 once (and a sample of weight 0 still enters them), so weights and "
        "repetitions give close but not equal networks; the loss itself is exactly equivalent"
    ),
    ("check_estimators_empty_data_messages", "featurizer"): (
        "an empty input gives an empty (0, 1) result, as matminer's featurize_many gives an "
        "empty list: a stateless featurizer has nothing to refuse"
    ),
}

class NotAnArray:
    """An array-like that is only that (``__array__``), as scikit-learn's checks use."""

    def __init__(self, data):
        self.data = np.asarray(data)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self):
        return len(self.data)


#: Estimators of the ported checks: CGCNNRegressor, CGCNNClassifier, CrystalGraphFeaturizer.
KINDS = ("regressor", "classifier")


def _params(kind: str, checks: tuple[str, ...]) -> list:
    """Parametrisation over estimator kinds, with the expected failures marked."""
    out = []
    for k in kind.split(","):
        marks = [
            pytest.mark.xfail(strict=True, reason=EXPECTED_FAILURES[(check, k)])
            for check in checks if (check, k) in EXPECTED_FAILURES
        ]
        out.append(pytest.param(k, id=k, marks=marks))
    return out


def kinds(*checks: str, kind: str = "regressor,classifier"):
    return pytest.mark.parametrize("kind", _params(kind, checks))


def make(kind: str, **params):
    if kind == "featurizer":
        return CrystalGraphFeaturizer(**params)
    cls = CGCNNRegressor if kind == "regressor" else CGCNNClassifier
    return cls(**{**TINY, "max_epochs": 2, **params})


@pytest.fixture(scope="module")
def data(perovskite_graphs):
    graphs, y, structures = perovskite_graphs
    n = 64
    y = y[:n]
    return SimpleNamespace(
        graphs=graphs[:n],
        structures=structures[:n],
        y=y,
        labels=np.where(y > np.median(y), "high", "low").astype(object),
        all_graphs=graphs,
        all_y=perovskite_graphs[1],
    )


def target(data, kind: str) -> np.ndarray:
    return data.y if kind == "regressor" else data.labels


@pytest.fixture(scope="module")
def fitted(data):
    return {kind: make(kind).fit(data.graphs, target(data, kind)) for kind in KINDS}


def _outputs(est, X) -> dict[str, np.ndarray]:
    """What a fitted estimator computes from X, by method."""
    methods = ["predict", "transform"] + (["predict_proba"] if hasattr(est, "predict_proba")
                                          else [])
    return {m: getattr(est, m)(X) for m in methods}


def _assert_same_outputs(a: dict, b: dict, exact: bool = True) -> None:
    assert a.keys() == b.keys()
    for method in a:
        if exact or a[method].dtype == object:
            np.testing.assert_array_equal(a[method], b[method], err_msg=method)
        else:  # float32 network: batch composition changes BLAS blocking in the last bits
            np.testing.assert_allclose(a[method], b[method], rtol=1e-5, atol=1e-6,
                                       err_msg=method)


# =========================================================================== bookkeeping


def _sklearn_check_names(estimator) -> set[str]:
    names = set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for check in estimator_checks._yield_all_checks(estimator, legacy=True):
            func = check.func if isinstance(check, functools.partial) else check
            names.add(func.__name__)
    return names


def test_every_sklearn_check_is_accounted_for():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, SGDClassifier, SGDRegressor
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    tabular = (RandomForestRegressor(), LogisticRegression(), StandardScaler(),
               SGDClassifier(), SGDRegressor(), MLPClassifier())
    names = set().union(*(_sklearn_check_names(est) for est in tabular))
    assert names - set(CHECKS) == set(), "new scikit-learn checks: port them or say why not"
    gone = {name for name in CHECKS if not hasattr(estimator_checks, name)}
    assert gone == set(), "checks listed here that scikit-learn no longer has"
    # and on our estimators scikit-learn itself runs (almost) nothing: that is why this exists
    assert len(_sklearn_check_names(CGCNNRegressor())) < 5


def test_every_port_and_sklearn_check_exists():
    from test_sklearn_compat import DATA_FREE_CHECKS

    assert {n for n, (how, _) in CHECKS.items() if how == SKLEARN} == set(DATA_FREE_CHECKS)
    here = globals()
    for name, (how, where) in CHECKS.items():
        if how != PORTED:
            continue
        if "::" in where:
            module, function = where.split("::")
            text = (ROOT / "tests" / module).read_text()
            assert f"def {function}(" in text, (name, where)
        else:
            assert callable(here.get(where)), (name, where)
    for check, _ in EXPECTED_FAILURES:
        assert CHECKS[check][0] == PORTED


def test_docs_list_every_check():
    text = (ROOT / "docs" / "sklearn.md").read_text()
    missing = [name for name in CHECKS if f"`{name}`" not in text]
    assert not missing, f"docs/sklearn.md does not list {missing}"
    for (check, _kind), reason in EXPECTED_FAILURES.items():
        row = [line for line in text.splitlines() if f"`{check}`" in line and "|" in line]
        assert row and any(reason.split(":")[0].split(",")[0] in line for line in row), check


# =========================================================================== API contracts


@kinds("check_fit_score_takes_y")
def test_fit_score_takes_y(kind, data):
    est = make(kind)
    for method in ("fit", "partial_fit", "score"):
        names = list(inspect.signature(getattr(est, method)).parameters)
        assert names[:2] == ["X", "y"], (method, names)
    assert est.fit(data.graphs, target(data, kind)).score(data.graphs, target(data, kind)) > -10


@kinds("check_estimators_overwrite_params")
def test_estimators_overwrite_params(kind, data):
    import joblib

    est = make(kind, module__n_conv=1, callbacks__early_stopping__patience=5,
               featurizer=CrystalGraphFeaturizer(radius=6.0), optimizer__weight_decay=1e-4)
    before = {k: joblib.hash(v) for k, v in est.get_params(deep=True).items()}
    est.fit(data.structures[:32], target(data, kind)[:32])
    after = {k: joblib.hash(v) for k, v in est.get_params(deep=True).items()}
    assert after == before
    assert est.featurizer.radius == 6.0 and not hasattr(est.featurizer, "featurizer_")


@kinds("check_dont_overwrite_parameters")
def test_dont_overwrite_parameters(kind, data):
    est = make(kind)
    before = dict(vars(est))
    est.fit(data.graphs, target(data, kind))
    added = set(vars(est)) - set(before)
    public = {name for name in added if not name.startswith("_")}
    assert public and all(name.endswith("_") for name in public), public
    changed = {name for name in before if name in est.get_params(deep=False)
               and vars(est)[name] is not before[name]}
    assert not changed, changed


@kinds("check_estimators_fit_returns_self")
def test_estimators_fit_returns_self(kind, data):
    est = make(kind)
    y = target(data, kind)
    assert est.fit(data.graphs, y) is est
    assert est.fit(data.structures[:16], y[:16]) is est
    assert est.partial_fit(data.graphs, y) is est
    featurizer = make("featurizer")
    assert featurizer.fit(data.structures) is featurizer


@kinds("check_readonly_memmap_input")
def test_readonly_memmap_input(kind, data):
    """Graphs whose arrays are read-only memory maps (as a GraphStore gives) work unchanged."""
    graphs = create_memmap_backed_data(list(data.graphs))
    assert isinstance(graphs[0].distances, np.memmap) and not graphs[0].distances.flags.writeable
    y = target(data, kind)
    plain = make(kind).fit(data.graphs, y)
    mapped = make(kind).fit(graphs, y)
    _assert_same_outputs(_outputs(plain, data.graphs), _outputs(mapped, graphs))


@kinds("check_estimators_dtypes")
def test_estimators_dtypes(kind, data):
    """X has no dtype; its graphs' arrays do: any integer/float dtypes give the same model."""
    def widened(graph):
        return CrystalGraph(graph.atomic_numbers.astype(np.int64),
                            graph.neighbor_indices.astype(np.int64),
                            graph.distances.astype(np.float64), graph.radius)

    other = [widened(g) for g in data.graphs]
    y = target(data, kind)
    _assert_same_outputs(_outputs(make(kind).fit(data.graphs, y), data.graphs),
                         _outputs(make(kind).fit(other, y), other))
    if kind == "regressor":  # and y of any real dtype
        reference = make(kind).fit(data.graphs, y).predict(data.graphs)
        for dtype in (np.float32, np.int64):
            values = (y * 100).astype(dtype) / 100 if dtype == np.int64 else y.astype(dtype)
            pred = make(kind).fit(data.graphs, values).predict(data.graphs)
            assert pred.dtype == np.float64
            if dtype == np.float32:
                np.testing.assert_allclose(pred, reference, rtol=1e-2)  # float32 y, amplified


# =========================================================================== sample weights

regressor_only = pytest.mark.parametrize("kind", ["regressor"])


@regressor_only
def test_sample_weights_pandas_series(kind, data):
    w = np.linspace(0.5, 2.0, len(data.y))
    as_series = make(kind).fit(data.graphs, pd.Series(data.y),
                               sample_weight=pd.Series(w, index=np.arange(len(w))[::-1]))
    as_array = make(kind).fit(data.graphs, data.y, sample_weight=w)
    np.testing.assert_array_equal(as_series.predict(data.graphs), as_array.predict(data.graphs))


@regressor_only
def test_sample_weights_not_an_array(kind, data):
    w = np.linspace(0.5, 2.0, len(data.y))
    est = make(kind).fit(data.graphs, NotAnArray(data.y), sample_weight=NotAnArray(w))
    reference = make(kind).fit(data.graphs, data.y, sample_weight=w)
    np.testing.assert_array_equal(est.predict(data.graphs), reference.predict(data.graphs))


@regressor_only
def test_sample_weights_list(kind, data):
    est = make(kind).fit(data.graphs, list(data.y), sample_weight=[1.0] * len(data.y))
    reference = make(kind).fit(data.graphs, data.y)
    np.testing.assert_array_equal(est.predict(data.graphs), reference.predict(data.graphs))


@regressor_only
def test_sample_weights_shape(kind, data):
    n = len(data.y)
    for bad in (np.ones(n + 1), np.ones(n - 1), np.ones((n, 2))):
        with pytest.raises(ValueError, match=r"sample_weight must have shape"):
            make(kind).fit(data.graphs, data.y, sample_weight=bad)


@regressor_only
def test_all_zero_sample_weights_error(kind, data):
    with pytest.raises(ValueError, match="sample_weight sums to zero"):
        make(kind).fit(data.graphs, data.y, sample_weight=np.zeros(len(data.y)))


@regressor_only
def test_sample_weights_not_overwritten(kind, data):
    w = np.linspace(0.5, 2.0, len(data.y))
    copy = w.copy()
    make(kind).fit(data.graphs, data.y, sample_weight=w)
    np.testing.assert_array_equal(w, copy)


@kinds("check_sample_weight_equivalence_on_dense_data", kind="regressor")
def test_sample_weight_equivalence(kind, data):
    """Weight 2 == the sample twice, weight 0 == the sample left out (one full batch)."""
    n = 32
    graphs, y = data.graphs[:n], data.y[:n]
    w = np.tile([0.0, 1.0, 2.0, 1.0], n // 4)
    repeats = w.astype(int)
    params = {"train_split": None, "batch_size": -1, "max_epochs": 3}
    weighted = make(kind, **params).fit(graphs, y, sample_weight=w)
    repeated = make(kind, **params).fit(np.repeat(graphs, repeats), np.repeat(y, repeats))
    np.testing.assert_allclose(weighted.predict(graphs), repeated.predict(graphs), rtol=1e-6)


# =========================================================================== bad input


@regressor_only
def test_complex_data(kind, data):
    with pytest.raises(ValueError, match="numeric"):
        make(kind).fit(data.graphs, data.y + 1j)


@kinds("check_dtype_object")
def test_dtype_object(kind, data):
    """X is always an object array; an entry that is not a crystal is named in the error."""
    X = np.array(list(data.graphs[:8]) + ["SrTiO3"] + list(data.graphs[9:16]), dtype=object)
    with pytest.raises(ValueError, match=r"X\[8\] is of type str"):
        make(kind).fit(X, target(data, kind)[:16])


@kinds("check_estimators_empty_data_messages", kind="regressor,classifier,featurizer")
def test_estimators_empty_data_messages(kind):
    est = make(kind)
    for empty in ([], np.empty(0, dtype=object), pd.Series([], dtype=object)):
        with pytest.raises(ValueError, match="empty"):
            est.fit_transform(empty) if kind == "featurizer" else est.fit(empty, [])


@kinds("check_estimators_nan_inf")
def test_estimators_nan_inf(kind, data):
    """Missing entries (NaN/None, what featurize_dataframe(ignore_errors=True) leaves) are
    left out of fit with a warning naming the first one, and never predicted silently."""
    X = np.array(list(data.graphs[:16]), dtype=object)
    X[3], X[7] = np.nan, None
    y = target(data, kind)[:16]
    with pytest.warns(UserWarning, match=r"2 of 16 samples could not be featurized .*X\[3\]"):
        est = make(kind).fit(X, y)
    if kind == "regressor":
        pred = est.predict(X)
        assert np.isnan(pred[[3, 7]]).all() and np.isfinite(np.delete(pred, [3, 7])).all()
    else:
        with pytest.raises(ValueError, match=r"X\[3\]"):
            est.predict(X)
        assert np.isnan(est.predict_proba(X)[[3, 7]]).all()


@kinds("check_estimator_sparse_array")
def test_estimator_sparse_input(kind, data):
    for X in (sp.csr_matrix(np.ones((16, 3))), sp.csr_array(np.ones((16, 3)))):
        with pytest.raises((TypeError, ValueError), match="sparse"):
            make(kind).fit(X, target(data, kind)[:16])


@kinds("check_fit2d_1sample")
def test_fit2d_1sample(kind, data):
    # (for the classifier, one sample is also one class, which is said first)
    with pytest.raises(ValueError, match="at least 2 samples|only one class"):
        make(kind).fit(data.graphs[:1], target(data, kind)[:1])


@kinds("check_fit1d")
def test_fit1d(kind, data):
    with pytest.raises(ValueError, match=r"X\[0\] is of type float64"):
        make(kind).fit(np.arange(16.0), target(data, kind)[:16])


@kinds("check_fit2d_predict1d", kind="regressor,classifier,featurizer")
def test_fit2d_predict1d(kind, data, fitted):
    """One crystal instead of a sequence of them is refused with what to pass instead."""
    structure = data.structures[0]
    if kind == "featurizer":
        for entry in (structure, data.graphs[0]):
            with pytest.raises(ValueError, match=r"single (Structure|CrystalGraph).*\[structure\]"):
                make(kind).transform(entry)
        return
    est = fitted[kind]
    for method in ("predict", "transform") + (("predict_proba",) if kind == "classifier" else ()):
        with pytest.raises(ValueError, match=r"single Structure.*\[structure\]"):
            getattr(est, method)(structure)
        with pytest.raises(ValueError, match=r"single CrystalGraph; pass a sequence"):
            getattr(est, method)(data.graphs[0])


@kinds("check_supervised_y_no_nan")
def test_supervised_y_no_nan(kind, data):
    y = target(data, kind)[:16].copy()
    y[5] = np.nan
    with pytest.raises(ValueError, match=r"y contains .*(NaN|missing).* index 5"):
        make(kind).fit(data.graphs[:16], y)
    if kind == "regressor":
        y[5] = np.inf
        with pytest.raises(ValueError, match=r"infinity at index 5"):
            make(kind).fit(data.graphs[:16], y)


# =========================================================================== fitting contracts


@kinds("check_pipeline_consistency")
def test_pipeline_consistency(kind, data):
    X, y = data.structures[:32], target(data, kind)[:32]
    alone = make(kind).fit(X, y)
    pipe = make_pipeline(CrystalGraphFeaturizer(), make(kind)).fit(X, y)
    np.testing.assert_array_equal(alone.predict(X), pipe.predict(X))
    assert alone.score(X, y) == pipe.score(X, y)
    if kind == "classifier":
        np.testing.assert_array_equal(alone.predict_proba(X), pipe.predict_proba(X))


@kinds("check_estimators_pickle", kind="regressor,classifier,featurizer")
def test_estimators_pickle(kind, data, fitted):
    if kind == "featurizer":
        est = make(kind, radius=6.0)
        back = pickle.loads(pickle.dumps(est))
        assert back.get_params() == est.get_params()
        assert all(a == b for a, b in zip(back.graphs(data.structures[:8]),
                                          est.graphs(data.structures[:8])))
        return
    est = fitted[kind]
    back = pickle.loads(pickle.dumps(est))
    _assert_same_outputs(_outputs(est, data.graphs), _outputs(back, data.graphs))
    _assert_same_outputs(_outputs(est, data.structures[:8]), _outputs(back, data.structures[:8]))
    unfitted = pickle.loads(pickle.dumps(make(kind)))
    with pytest.raises(NotFittedError):
        unfitted.predict(data.graphs)


@kinds("check_fit_idempotent", kind="regressor,classifier,featurizer")
def test_fit_idempotent(kind, data):
    if kind == "featurizer":
        est = make(kind)
        first = est.fit(data.structures[:8]).transform(data.structures[:8])
        again = est.fit(data.structures[8:16]).transform(data.structures[:8])
        assert all(a == b for a, b in zip(first[:, 0], again[:, 0]))
        return
    y = target(data, kind)
    est = make(kind)
    first = _outputs(est.fit(data.graphs, y), data.graphs)
    est.fit(data.all_graphs[100:140], np.tile(y[:20], 2))  # something else in between
    _assert_same_outputs(first, _outputs(est.fit(data.graphs, y), data.graphs))
    assert len(est.history_) == est.max_epochs  # a refit starts over (warm_start=False)


@kinds("check_fit_check_is_fitted")
def test_fit_check_is_fitted(kind, data):
    est = make(kind)
    with pytest.raises(NotFittedError):
        check_is_fitted(est)
    est.fit(data.structures[:16], target(data, kind)[:16])
    check_is_fitted(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(clone(est))  # a clone is a new, unfitted estimator
    check_is_fitted(make("featurizer"))  # stateless: always fitted (requires_fit=False)


@kinds("check_dict_unchanged", kind="regressor,classifier,featurizer")
def test_dict_unchanged(kind, data, fitted):
    est = make(kind) if kind == "featurizer" else fitted[kind]
    before = dict(vars(est))
    history = None if kind == "featurizer" else len(est.history_)
    methods = ["transform"] if kind == "featurizer" else list(_outputs(est, data.graphs[:2]))
    for method in methods:
        getattr(est, method)(data.structures[:8])
    if kind != "featurizer":
        est.score(data.graphs, target(data, kind))
        assert len(est.history_) == history
    after = vars(est)
    assert after.keys() == before.keys()
    assert [k for k in before if after[k] is not before[k]] == []


@kinds("check_methods_sample_order_invariance", kind="regressor,classifier,featurizer")
def test_methods_sample_order_invariance(kind, data, fitted):
    order = np.random.default_rng(0).permutation(len(data.graphs))
    if kind == "featurizer":
        est = make(kind)
        out, shuffled = est.graphs(data.structures), est.graphs(data.structures[order])
        assert all(a == b for a, b in zip(out[order], shuffled))
        return
    est = fitted[kind]
    out, shuffled = _outputs(est, data.graphs), _outputs(est, data.graphs[order])
    _assert_same_outputs({k: v[order] for k, v in out.items()}, shuffled, exact=False)


@kinds("check_methods_subset_invariance", kind="regressor,classifier,featurizer")
def test_methods_subset_invariance(kind, data, fitted):
    parts = np.array_split(np.arange(len(data.graphs)), [1, 5, 37])
    if kind == "featurizer":
        est = make(kind)
        whole = est.graphs(data.structures)
        pieces = np.concatenate([est.graphs(data.structures[p]) for p in parts])
        assert all(a == b for a, b in zip(whole, pieces))
        return
    est = fitted[kind]
    whole = _outputs(est, data.graphs)
    pieces = [_outputs(est, data.graphs[p]) for p in parts]
    _assert_same_outputs(whole, {m: np.concatenate([p[m] for p in pieces]) for m in whole},
                         exact=False)


@kinds("check_regressor_data_not_an_array")
def test_data_not_an_array(kind, data):
    y = target(data, kind)[:32]
    reference = make(kind).fit(data.graphs[:32], y).predict(data.graphs[:32])
    for X, yy in (
        (list(data.graphs[:32]), list(y)),
        (pd.Series(data.graphs[:32], index=np.arange(32) * 3), pd.Series(y)),
        (pd.DataFrame({"crystal_graph": data.graphs[:32]}), NotAnArray(y)),
        (tuple(data.graphs[:32]), tuple(y)),
    ):
        np.testing.assert_array_equal(make(kind).fit(X, yy).predict(X), reference)


def test_transformer_data_not_an_array(data):
    structures = data.structures[:12]
    reference = make("featurizer").transform(structures)
    for X in (list(structures), pd.Series(structures, index=np.arange(12) + 100),
              pd.DataFrame({"structure": structures}), tuple(structures)):
        out = make("featurizer").transform(X)
        assert out.shape == (12, 1) and all(a == b for a, b in zip(out[:, 0], reference[:, 0]))


def test_transformer_general(data):
    structures = data.structures[:12]
    est = make("featurizer")
    fit_transformed = clone(est).fit_transform(structures)
    transformed = clone(est).fit(structures).transform(structures)
    assert fit_transformed.shape == transformed.shape == (12, 1)
    assert fit_transformed.dtype == object
    assert all(a == b == build_graph(s) for a, b, s in
               zip(fit_transformed[:, 0], transformed[:, 0], structures))
    assert all(a == b for a, b in zip(est.transform(structures)[:, 0], transformed[:, 0]))


@kinds("check_estimators_partial_fit_n_features")
def test_estimators_partial_fit_n_features(kind, data):
    """What plays the part of the number of features: the graphs' radius and neighbour count.
    Continuing (partial_fit) or predicting on graphs built otherwise is refused."""
    y = target(data, kind)[:16]
    est = make(kind).partial_fit(data.graphs[:16], y)
    other = CrystalGraphFeaturizer(radius=6.0, max_num_nbr=8).graphs(data.structures[:16])
    with pytest.raises(ValueError, match=r"radius=8 and max_num_nbr=12; X has \[\(6.0, 8\)\]"):
        est.partial_fit(other, y)
    with pytest.raises(ValueError, match=r"radius=8 and max_num_nbr=12"):
        est.predict(other)


def test_partial_fit_contract(data):
    """partial_fit: the first call fits; each further call trains max_epochs more epochs from
    the current weights (never a re-initialisation) and leaves the parameters as they were."""
    est = make("regressor", max_epochs=1, lr=0.01, train_split=None)
    est.partial_fit(data.graphs, data.y)
    weights = [p.detach().clone() for p in est.module_.parameters()]
    losses = [est.history_[-1, "train_loss"]]
    for _ in range(3):
        assert est.partial_fit(data.graphs, data.y) is est
        losses.append(est.history_[-1, "train_loss"])
    assert len(est.history_) == 4 and est.warm_start is False
    assert losses[-1] < losses[0]
    assert any(not np.array_equal(a, b) for a, b in zip(weights, est.module_.parameters()))
    # a plain fit after partial_fit starts over
    assert len(est.fit(data.graphs, data.y).history_) == 1


def test_classifier_partial_fit_classes(data):
    """As scikit-learn's partial_fit: ``classes`` on the first call names every label, so a
    later call may bring a class the first batch did not have."""
    labels = np.array(["low", "mid", "high"], dtype=object)[np.arange(len(data.y)) % 3]
    first = labels != "high"
    est = make("classifier").partial_fit(data.graphs[first], labels[first],
                                         classes=["high", "low", "mid"])
    assert est.classes_.tolist() == ["high", "low", "mid"]
    assert est.predict_proba(data.graphs).shape == (len(labels), 3)
    est.partial_fit(data.graphs, labels)
    assert est.classes_.tolist() == ["high", "low", "mid"] and len(est.history_) == 4
    with pytest.raises(ValueError, match="not one of the classes"):
        make("classifier").partial_fit(data.graphs, labels, classes=["low", "mid"])


# =========================================================================== regressors


@regressor_only
def test_regressors_train(kind, data):
    X, y = data.all_graphs[:160], data.all_y[:160]
    est = make(kind, max_epochs=40, lr=0.01, train_split=None).fit(X, y)
    assert est.predict(X).shape == (160,)
    assert est.score(X, y) > 0.5  # scikit-learn's threshold on the training data
    with pytest.raises(ValueError, match="different lengths"):
        make(kind).fit(X, y[:-1])


@regressor_only
def test_regressor_multioutput(kind, data):
    y2 = np.column_stack([data.y, 10 * data.y + 3])
    pred = make(kind).fit(data.graphs, y2).predict(data.graphs)
    assert pred.shape == (len(data.y), 2) and pred.dtype == np.float64


@regressor_only
def test_regressors_no_decision_function(kind, fitted):
    est = fitted[kind]
    assert not hasattr(est, "decision_function") and not hasattr(est, "predict_proba")


@regressor_only
def test_regressors_int(kind, data):
    y_int = np.round(data.y * 10).astype(np.int64)
    as_int = make(kind).fit(data.graphs, y_int).predict(data.graphs)
    as_float = make(kind).fit(data.graphs, y_int.astype(np.float64)).predict(data.graphs)
    np.testing.assert_array_equal(as_int, as_float)


@kinds("check_supervised_y_2d")
def test_supervised_y_2d(kind, data):
    y = target(data, kind)
    pred = make(kind).fit(data.graphs, y).predict(data.graphs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataConversionWarning)
        est = make(kind).fit(data.graphs, y[:, None])
    pred_2d = est.predict(data.graphs)
    conversions = [w for w in caught if issubclass(w.category, DataConversionWarning)]
    if kind == "regressor":  # multi_output: (n, 1) in, (n, 1) out, no warning
        assert pred_2d.shape == (len(y), 1) and not conversions
    else:
        assert len(conversions) == 1 and "column-vector y" in str(conversions[0].message)
    np.testing.assert_array_equal(pred.ravel(), pred_2d.ravel())


# =========================================================================== classifiers

classifier_only = pytest.mark.parametrize("kind", ["classifier"])


@classifier_only
def test_classifiers_one_label(kind, data):
    with pytest.raises(ValueError, match="only one class"):
        make(kind).fit(data.graphs[:16], ["metal"] * 16)


@classifier_only
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifiers_classes(kind, data, n_classes):
    codes = np.arange(len(data.y)) % n_classes
    for labels in (np.array(["b", "c", "a"], dtype=object)[codes], codes * 3 - 1):
        est = make(kind).fit(data.graphs, labels)
        np.testing.assert_array_equal(est.classes_, np.unique(labels))
        pred = est.predict(data.graphs)
        assert set(pred) <= set(labels) and pred.dtype.kind == np.asarray(labels).dtype.kind


@classifier_only
def test_classifiers_train(kind, data):
    X, y = data.all_graphs[:160], data.all_y[:160]
    labels = np.where(y > np.median(y), "high", "low")
    est = make(kind, max_epochs=40, lr=0.01, train_split=None).fit(X, labels)
    pred, proba = est.predict(X), est.predict_proba(X)
    assert pred.shape == (160,) and proba.shape == (160, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(pred, est.classes_[proba.argmax(axis=1)])
    assert np.mean(pred == labels) > 0.83  # scikit-learn's threshold on the training data
    with pytest.raises(ValueError, match="different lengths"):
        make(kind).fit(X, labels[:-1])


@classifier_only
def test_classifiers_regression_target(kind, data):
    with pytest.raises(ValueError, match=r"continuous.*CGCNNRegressor"):
        make(kind).fit(data.graphs, data.y)

