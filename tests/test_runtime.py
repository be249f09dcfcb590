"""Runtime behaviour: torch's global RNG shared by threads, calls that leave the estimator's
parameters alone (device, criterion, warm_start), the data path moved to ``skcgcnn.batch``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from skcgcnn import CGCNNClassifier, CGCNNRegressor
from skcgcnn._runtime import _RNGLock, weighted_loss

FAST = {"max_epochs": 3, "batch_size": 16, "verbose": 0, "train_split": None}


@pytest.fixture
def small(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    return graphs[:40], y[:40]


class _Noisy(Callback):
    """Draws from torch's global RNG every batch, slowly: a busy neighbour of a seeded fit."""

    def on_batch_begin(self, net, **kwargs):
        torch.rand(8)
        time.sleep(0.002)


class _Interval(Callback):
    """Records when training started and ended."""

    def __init__(self, log, key):
        self.log, self.key = log, key

    def on_train_begin(self, net, **kwargs):
        self.log[self.key] = [time.monotonic(), None]

    def on_train_end(self, net, **kwargs):
        self.log[self.key][1] = time.monotonic()


def _in_threads(*jobs):
    errors = []

    def run(job):
        try:
            job()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if errors:
        raise errors[0]


def test_seeded_fit_is_reproducible_while_unseeded_fits_run_in_threads(small):
    graphs, y = small
    alone = CGCNNRegressor(**FAST, random_state=7, callbacks=[_Noisy()]).fit(graphs, y)
    alone = alone.predict(graphs)
    noisy = [CGCNNRegressor(**{**FAST, "max_epochs": 6}, callbacks=[_Noisy()]) for _ in range(2)]
    seeded = CGCNNRegressor(**FAST, random_state=7, callbacks=[_Noisy()])
    jobs = [lambda m=m: m.fit(graphs, y) for m in noisy]
    jobs.append(lambda: (time.sleep(0.05), seeded.fit(graphs, y)))
    _in_threads(*jobs)
    np.testing.assert_array_equal(seeded.predict(graphs), alone)
    assert all(m.history[-1, "epoch"] == 6 for m in noisy)


def test_unseeded_fits_run_concurrently_and_seeded_fits_alone(small):
    graphs, y = small
    # two unseeded fits meet at a barrier inside training: they must overlap in time
    barrier = threading.Barrier(2, timeout=60)

    class Meet(Callback):
        def on_train_begin(self, net, **kwargs):
            barrier.wait()

    _in_threads(*[lambda: CGCNNRegressor(**FAST, callbacks=[Meet()]).fit(graphs, y)] * 2)

    # a seeded and an unseeded fit started together never train at the same time
    log = {}
    seeded = CGCNNRegressor(**FAST, random_state=0, callbacks=[_Interval(log, "s"), _Noisy()])
    unseeded = CGCNNRegressor(**FAST, callbacks=[_Interval(log, "u"), _Noisy()])
    _in_threads(lambda: seeded.fit(graphs, y), lambda: unseeded.fit(graphs, y))
    (s0, s1), (u0, u1) = log["s"], log["u"]
    assert s1 <= u0 or u1 <= s0, log


def test_rng_lock_is_reentrant_and_seeded_waiters_go_first():
    lock = _RNGLock()
    with lock.exclusive(), lock.exclusive(), lock.shared():  # nested in one thread
        pass
    order = []
    reader_in = threading.Event()

    def reader(name, hold):
        with lock.shared():
            order.append(name)
            reader_in.set()
            time.sleep(hold)

    def writer():
        with lock.exclusive():
            order.append("seeded")

    first = threading.Thread(target=reader, args=("unseeded-1", 1.0))
    first.start()
    reader_in.wait(10)
    w = threading.Thread(target=writer)
    w.start()
    deadline = time.monotonic() + 10
    while lock._waiting == 0 and time.monotonic() < deadline:  # the seeded fit now waits
        time.sleep(0.001)
    late = threading.Thread(target=reader, args=("unseeded-2", 0))
    late.start()
    for thread in (first, w, late):
        thread.join(10)
    assert order == ["unseeded-1", "seeded", "unseeded-2"]


def test_weighted_loss_leaves_the_criterion_alone(small):
    calls = []

    class RecordingMSE(torch.nn.MSELoss):
        def forward(self, input, target):
            calls.append((id(self), self.reduction))
            return super().forward(input, target)

    graphs, y = small
    reg = CGCNNRegressor(**FAST, random_state=0, criterion=RecordingMSE)
    reg.fit(graphs, y, sample_weight=np.linspace(0.5, 2.0, len(y)))
    assert reg.criterion_.reduction == "mean"
    assert calls and all(r == "none" for _, r in calls)  # evaluated unreduced...
    assert id(reg.criterion_) not in {i for i, _ in calls}  # ...by a copy, never the original

    mse = torch.nn.MSELoss()
    loss = weighted_loss(mse, torch.zeros(3, 2), torch.ones(3, 2), torch.tensor([1.0, 0, 2]))
    assert float(loss) == pytest.approx(1.0) and mse.reduction == "mean"
    with pytest.raises(TypeError, match="reduction"):
        weighted_loss(lambda a, b: a, torch.zeros(2), torch.zeros(2), torch.ones(2))


def test_partial_fit_does_not_toggle_warm_start(small):
    seen = []

    class Record(Callback):
        def on_epoch_begin(self, net, **kwargs):
            seen.append(net.warm_start)

    graphs, y = small
    reg = CGCNNRegressor(**FAST, random_state=0, callbacks=[Record()])
    reg.partial_fit(graphs, y)
    first = reg.module_.state_dict()["fc_out.weight"].clone()
    reg.partial_fit(graphs, y)
    assert len(reg.history) == 6  # continued, not restarted
    assert not torch.equal(first, reg.module_.state_dict()["fc_out.weight"])
    assert seen == [False] * 6 and reg.warm_start is False


def test_classifier_partial_fit_checks_classes(small):
    graphs, y = small
    labels = np.where(y > np.median(y), "high", "low")
    clf = CGCNNClassifier(**FAST, random_state=0)
    clf.partial_fit(graphs, labels, classes=["low", "high"])
    clf.partial_fit(graphs, labels, classes=["high", "low"])
    with pytest.raises(ValueError, match="differ from the classifier's classes"):
        clf.partial_fit(graphs, labels, classes=["high", "low", "mid"])
    # scikit-learn's contract: the first call's classes may hold labels y does not show
    first = CGCNNClassifier(**FAST).partial_fit(graphs, labels, classes=["high", "low", "mid"])
    assert first.classes_.tolist() == ["high", "low", "mid"]
    with pytest.raises(ValueError, match="differ"):
        CGCNNClassifier(**FAST, classes=["high", "low"]).partial_fit(
            graphs, labels, classes=["high", "low", "mid"])


def test_data_path_lives_in_batch_and_keeps_its_old_import_path():
    from skcgcnn import batch, estimators

    assert estimators.GraphDataset is batch.GraphDataset
