"""The opt-in compiled path (skcgcnn._compile): same function as eager, compiled once, fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from skcgcnn import _compile
from skcgcnn.batch import collate_graphs
from skcgcnn.elements import cgcnn_encoding
from skcgcnn.graph import build_graph
from skcgcnn.model import CGCNN

SMALL = {"atom_fea_len": 8, "n_conv": 2, "h_fea_len": 8}


def tiny_batch():
    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return collate_graphs([build_graph(s) for s in (cscl, nacl, fe, cscl)])


def outputs_and_grads(model, batch, forward):
    model.zero_grad()
    out = forward(model, batch)
    out.square().sum().backward()
    return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.fixture(scope="module")
def compiled_available():
    reason = _compile.unavailable_reason()
    if reason is not None:
        pytest.skip(f"inductor unavailable here: {reason}")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_compiled_equals_eager(compiled_available, mode):
    batch = tiny_batch()
    torch.manual_seed(0)
    eager = CGCNN(cgcnn_encoding(), **SMALL).train(mode == "train")
    compiled = CGCNN(cgcnn_encoding(), **SMALL).train(mode == "train")
    compiled.load_state_dict(eager.state_dict())
    out_e, grads_e = outputs_and_grads(eager, batch, lambda m, b: m(b))
    out_c, grads_c = outputs_and_grads(compiled, batch, _compile.compiled_forward)
    assert torch.allclose(out_c, out_e, atol=1e-5, rtol=0), (out_c - out_e).abs().max()
    for name, grad in grads_e.items():
        assert torch.allclose(grads_c[name], grad, atol=1e-5, rtol=1e-4), name
    if mode == "train":  # batch-norm running statistics are updated the same way
        for name, value in eager.state_dict().items():
            assert torch.allclose(compiled.state_dict()[name].float(), value.float(), atol=1e-6)


@pytest.mark.slow
def test_new_module_reuses_compiled_code(compiled_available):
    """A second fit (a new module of the same architecture) compiles nothing new."""
    batch = tiny_batch()
    first = CGCNN(cgcnn_encoding(), **SMALL).train()
    _compile.compiled_forward(first, batch).sum().backward()
    graphs_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    torch.manual_seed(1)
    second = CGCNN(cgcnn_encoding(), **SMALL).train()
    out = _compile.compiled_forward(second, batch)
    out.sum().backward()
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs_before
    assert torch.allclose(out, second(batch), atol=1e-5)  # and it computes the new weights


def test_fallback_warns_names_reason_and_runs_eagerly(monkeypatch):
    def broken_toolchain():
        raise RuntimeError("no working C++ compiler found (g++ missing)")

    monkeypatch.setattr(_compile, "_probe", broken_toolchain)
    _compile._reset_for_tests()
    try:
        model = CGCNN(cgcnn_encoding(), **SMALL).eval()
        batch = tiny_batch()
        with pytest.warns(_compile.CompileFallbackWarning, match="g\\+\\+ missing"):
            out = _compile.compiled_forward(model, batch)
        assert torch.equal(out, model(batch))
        status = _compile.compile_status()
        assert status["checked"] and not status["available"]
        with warnings.catch_warnings():  # warned once per process, not once per batch
            warnings.simplefilter("error")
            _compile.compiled_forward(model, batch)
    finally:
        _compile._reset_for_tests()


def test_compile_error_of_a_model_falls_back(monkeypatch):
    from torch._dynamo.exc import TorchDynamoException

    def failing(module, batch, **kwargs):
        raise TorchDynamoException("lowering failed for this graph")

    monkeypatch.setattr(_compile, "_probe", lambda: None)
    monkeypatch.setattr(_compile, "_compiled", lambda: failing)
    _compile._reset_for_tests()
    try:
        model = CGCNN(cgcnn_encoding(), **SMALL).eval()
        batch = tiny_batch()
        with pytest.warns(_compile.CompileFallbackWarning, match="lowering failed"):
            out = _compile.compiled_forward(model, batch)
        assert torch.equal(out, model(batch))
        assert not _compile.compile_status()["available"]
    finally:
        _compile._reset_for_tests()


def test_genuine_model_errors_are_not_swallowed(monkeypatch):
    def failing(module, batch, **kwargs):
        from torch._dynamo.exc import TorchRuntimeError

        raise TorchRuntimeError("shape mismatch")

    monkeypatch.setattr(_compile, "_probe", lambda: None)
    monkeypatch.setattr(_compile, "_compiled", lambda: failing)
    _compile._reset_for_tests()
    try:
        model = CGCNN(cgcnn_encoding(), **SMALL)
        with pytest.raises(AttributeError):  # eager raises the model's own error
            _compile.compiled_forward(model, "not a batch")
    finally:
        _compile._reset_for_tests()


@pytest.mark.slow
def test_missing_compiler_is_detected_for_real(tmp_path):
    """With no C++ compiler (and an empty kernel cache) the probe fails and names why."""
    code = textwrap.dedent(
        """
        from skcgcnn import _compile
        print("REASON:", _compile.unavailable_reason())
        """
    )
    env = dict(os.environ, CXX=str(tmp_path / "no-such-c++"),
               TORCHINDUCTOR_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("REASON:"))
    assert line != "REASON: None"
    assert "compiler" in line.lower(), line


# --- the estimators' compile=True ------------------------------------------------------------


def estimator_data(perovskite_graphs, n=64):
    graphs, y, _ = perovskite_graphs
    return list(graphs[:n]), y[:n]


def test_estimator_fallback_warns_and_fits(monkeypatch, perovskite_graphs):
    from shared_data import TINY

    from skcgcnn import CGCNNRegressor

    def broken_toolchain():
        raise RuntimeError("no working C++ compiler found (g++ missing)")

    monkeypatch.setattr(_compile, "_probe", broken_toolchain)
    _compile._reset_for_tests()
    try:
        X, y = estimator_data(perovskite_graphs)
        params = {**TINY, "max_epochs": 2, "train_split": None}
        with pytest.warns(_compile.CompileFallbackWarning, match="g\\+\\+ missing"):
            compiled = CGCNNRegressor(compile=True, **params).fit(X, y)
        eager = CGCNNRegressor(**params).fit(X, y)
        np.testing.assert_array_equal(compiled.predict(X), eager.predict(X))
        assert type(compiled.module_) is CGCNN  # never wrapped: same state_dict keys
    finally:
        _compile._reset_for_tests()


@pytest.mark.slow
def test_estimator_compiled_fit_matches_eager_and_compiles_once(compiled_available,
                                                                  perovskite_graphs):
    from shared_data import TINY
    from sklearn.base import clone

    from skcgcnn import CGCNNRegressor

    X, y = estimator_data(perovskite_graphs)
    params = {**TINY, "max_epochs": 2, "train_split": None}
    compiled = CGCNNRegressor(compile=True, **params).fit(X, y)
    eager = CGCNNRegressor(**params).fit(X, y)
    assert type(compiled.module_) is CGCNN
    assert compiled.module_.state_dict().keys() == eager.module_.state_dict().keys()
    predicted = compiled.predict(X)
    compiled.compile = False  # the same fitted weights, eagerly: the same function
    np.testing.assert_allclose(predicted, compiled.predict(X), atol=1e-5 * compiled.y_scale_[0])
    compiled.compile = True
    # the two fits follow the same path up to float round-off (which AdamW amplifies a little)
    np.testing.assert_allclose(predicted, eager.predict(X), atol=3e-3 * compiled.y_scale_[0])
    graphs_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    again = clone(compiled).set_params(random_state=1).fit(X, y)  # a second fit: no compiling
    again.predict(X)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs_before
