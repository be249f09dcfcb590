"""Device handling: ``device="auto"`` resolution (on the CPU), and CUDA / MPS end to end.

The CUDA tests run only where ``torch.cuda.is_available()`` (a GPU machine); the MPS tests only on
Apple silicon. Everything else runs on the CPU with ``torch.cuda.is_available`` monkeypatched.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skcgcnn import CGCNNClassifier, CGCNNRegressor
from skcgcnn._runtime import resolve_device
from skcgcnn.batch import collate_graphs
from skcgcnn.estimators import GraphDataset

HAS_CUDA = torch.cuda.is_available()
HAS_MPS = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
needs_mps = pytest.mark.skipif(not HAS_MPS, reason="needs Apple MPS")

N_TRAIN = 120


def _fast(cls, **params):
    defaults = dict(max_epochs=3, batch_size=32, random_state=0, verbose=0, train_split=None)
    return cls(**{**defaults, **params})


@pytest.fixture
def no_accelerator(monkeypatch):
    """Pretend this machine has neither CUDA nor MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def data(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    return graphs[:N_TRAIN], y[:N_TRAIN]


# ------------------------------------------------------------------------------------------
# "auto" resolution (CPU)
@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == expected


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "mps", None, torch.device("cpu")])
def test_explicit_devices_are_left_alone(monkeypatch, device):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(device) == device


@pytest.mark.parametrize("cls", [CGCNNRegressor, CGCNNClassifier])
def test_auto_on_a_cpu_machine_trains_as_cpu_and_keeps_the_param(no_accelerator, data, cls):
    graphs, y = data
    if cls is CGCNNClassifier:
        y = np.where(y > np.median(y), "high", "low")
    auto = _fast(cls, device="auto").fit(graphs, y)
    cpu = _fast(cls, device="cpu").fit(graphs, y)

    assert auto.device_ == "cpu"
    assert {p.device.type for p in auto.module_.parameters()} == {"cpu"}
    # the parameter stays what the user asked for: clone / GridSearchCV see "auto"
    assert auto.get_params()["device"] == "auto"
    assert clone(auto).device == "auto"
    method = "predict" if cls is CGCNNRegressor else "predict_proba"
    expected = getattr(cpu, method)(graphs)
    np.testing.assert_array_equal(getattr(auto, method)(graphs), expected)
    assert auto.device == "auto"  # predict resolved it only for the call

    restored = pickle.loads(pickle.dumps(auto))
    assert restored.device == "auto" and restored.device_ == "cpu"
    np.testing.assert_array_equal(getattr(restored, method)(graphs), expected)


def test_auto_resolves_to_cuda_for_the_loaders_when_cuda_is_available(monkeypatch, data):
    """skorch's hooks see the concrete device ("cuda"); the parameter stays "auto"."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    reg = CGCNNRegressor(device="auto")
    assert reg._device() == "cuda"
    loader = reg.get_iterator(GraphDataset(data[0]), training=True)
    assert loader.pin_memory  # host->GPU copies from pinned memory, non-blocking
    assert reg.device == "auto"
    assert reg.get_params()["device"] == "auto"


def test_device_param_is_never_rewritten_during_fit_or_predict(no_accelerator, data):
    """Another thread (clone, GridSearchCV) reading the parameters mid-call sees "auto"."""
    from skorch.callbacks import Callback

    seen = []

    class Record(Callback):
        def on_batch_begin(self, net, **kwargs):
            seen.append(net.device)

    graphs, y = data
    reg = _fast(CGCNNRegressor, device="auto", callbacks=[Record()]).fit(graphs, y)
    reg.predict(graphs)
    assert seen and set(seen) == {"auto"}
    assert reg.device_ == "cpu"


@pytest.mark.parametrize(("device", "pinned"), [("cpu", False), ("cuda", True), ("mps", False)])
def test_loaders_pin_memory_only_for_cuda(data, device, pinned):
    reg = CGCNNRegressor(device=device)
    for training in (True, False):
        assert reg.get_iterator(GraphDataset(data[0]), training=training).pin_memory is pinned
    # an explicit user choice wins
    reg = CGCNNRegressor(device=device, iterator_valid__pin_memory=False)
    assert reg.get_iterator(GraphDataset(data[0]), training=False).pin_memory is False


# ------------------------------------------------------------------------------------------
# CUDA end to end (GPU machines only)
def _cpu_outputs(reg, graphs):
    """The fitted network evaluated on the CPU, in the units of y."""
    module = copy.deepcopy(reg.module_).cpu().eval()
    with torch.no_grad():
        raw = module(collate_graphs(list(graphs))).numpy().astype(np.float64)
    return (raw * reg.y_scale_ + reg.y_mean_)[:, 0]


@needs_cuda
@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_cuda_regressor_end_to_end(data, device):
    graphs, y = data
    reg = _fast(CGCNNRegressor, device=device).fit(graphs, y)
    assert reg.device_ == "cuda"
    assert reg.get_params()["device"] == device
    assert {p.device.type for p in reg.module_.parameters()} == {"cuda"}
    # the Gaussian expansion and the element table live on the GPU with the weights
    assert {b.device.type for b in reg.module_.buffers()} == {"cuda"}
    pred = reg.predict(graphs)
    assert pred.shape == (len(graphs),) and np.isfinite(pred).all()
    np.testing.assert_allclose(pred, _cpu_outputs(reg, graphs), rtol=1e-4, atol=1e-4)
    # the GPU learns what the CPU learns from the same seed (up to float reordering)
    cpu = _fast(CGCNNRegressor, device="cpu").fit(graphs, y)
    np.testing.assert_allclose(pred, cpu.predict(graphs), atol=0.05)
    restored = pickle.loads(pickle.dumps(reg))
    np.testing.assert_allclose(restored.predict(graphs), pred, rtol=1e-5, atol=1e-6)


@needs_cuda
def test_cuda_classifier_with_class_weights(data):
    graphs, y = data
    labels = np.where(y > np.quantile(y, 0.75), "high", "low")
    clf = _fast(CGCNNClassifier, device="cuda", class_weight="balanced").fit(graphs, labels)
    assert clf.criterion_.weight.device.type == "cuda"
    proba = clf.predict_proba(graphs)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert set(clf.predict(graphs)) <= {"high", "low"}
    assert clf.transform(graphs).shape[0] == len(graphs)


@needs_cuda
def test_pinned_batch_copies_to_cuda_non_blocking(data):
    batch = collate_graphs(list(data[0][:16])).pin_memory()
    assert batch.distances.is_pinned() and batch.neighbor_indices.is_pinned()
    on_gpu = batch.to("cuda", non_blocking=True)
    torch.cuda.synchronize()
    assert on_gpu.distances.device.type == "cuda"
    assert torch.equal(on_gpu.distances.cpu(), batch.distances)
    assert torch.equal(on_gpu.neighbor_indices.cpu(), batch.neighbor_indices)
    assert len(on_gpu) == len(batch)


@needs_cuda
def test_cuda_fit_predict_from_a_store_equals_in_memory_graphs(perovskites, tmp_path):
    """The MP-scale path on a GPU: batches collated from memory-mapped store columns, pinned
    and copied to the device, learn and predict what the in-memory graphs do."""
    from skcgcnn.store import GraphStore

    store = GraphStore.from_structures(perovskites.iloc[:N_TRAIN], tmp_path / "g",
                                       target="e_form", shard_size=40)
    graphs, y = store.to_graphs(), store.targets
    on_store = _fast(CGCNNRegressor, device="cuda").fit(store, y)
    assert on_store.device_ == "cuda"
    pred = on_store.predict(store)
    assert np.isfinite(pred).all()
    # the same network predicts the same from the store's columns as from in-memory graphs
    np.testing.assert_allclose(pred, on_store.predict(graphs), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred, _cpu_outputs(on_store, graphs), rtol=1e-4, atol=1e-4)
    # and learns what training on in-memory graphs learns: not bit for bit, since CUDA's atomic
    # adds (neighbour gather backward, pooling) sum in a varying order (measured on an H200:
    # 7e-4 apart after 3 epochs)
    in_memory = _fast(CGCNNRegressor, device="cuda").fit(graphs, y)
    np.testing.assert_allclose(pred, in_memory.predict(graphs), atol=0.01)


@needs_cuda
def test_cuda_compiled_path_equals_eager(data):
    from skcgcnn import _compile

    if _compile.unavailable_reason() is not None:
        pytest.skip(f"inductor unavailable: {_compile.unavailable_reason()}")
    graphs, y = data
    eager = _fast(CGCNNRegressor, device="cuda").fit(graphs, y)
    compiled = _fast(CGCNNRegressor, device="cuda", compile=True).fit(graphs, y)
    np.testing.assert_allclose(compiled.predict(graphs), eager.predict(graphs), atol=0.05)


# ------------------------------------------------------------------------------------------
# Apple MPS (macOS only)
@needs_mps
def test_mps_regressor_end_to_end(data):
    graphs, y = data
    reg = _fast(CGCNNRegressor, device="mps").fit(graphs, y)
    assert {p.device.type for p in reg.module_.parameters()} == {"mps"}
    pred = reg.predict(graphs)
    np.testing.assert_allclose(pred, _cpu_outputs(reg, graphs), rtol=1e-3, atol=1e-3)
