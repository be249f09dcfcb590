"""The training schedule and the stopping rule agree (issue 17): ``AnnealOnPlateau`` and
``EarlyStoppingIfValidated``'s rule "stop only once the learning rate has decayed"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from skorch.callbacks import Callback, Checkpoint, LoadInitState, LRScheduler

from skcgcnn import CGCNNClassifier, CGCNNRegressor
from skcgcnn.callbacks import AnnealOnPlateau, EarlyStoppingIfValidated

TINY = {
    "random_state": 0,
    "verbose": 0,
    "batch_size": 8,
    "lr": 0.01,
    "module__atom_fea_len": 8,
    "module__h_fea_len": 8,
    "module__n_conv": 2,
}
#: A relative improvement of 1000 %: after the first epoch nothing counts as an improvement,
#: so plateaus and patience are exactly predictable.
NEVER_IMPROVES = 10.0


def _crystals() -> tuple[list[Structure], np.ndarray]:
    structures, y = [], []
    for cation, anion, a0 in [("Na", "Cl", 5.64), ("K", "Cl", 6.29), ("Li", "F", 4.03),
                              ("Cs", "Cl", 4.12), ("Cs", "Br", 4.29), ("Tl", "I", 4.20)]:
        for strain in (0.97, 0.99, 1.0, 1.01, 1.03):
            a = a0 * strain
            structures.append(Structure(Lattice.cubic(a), [cation, anion],
                                        [[0, 0, 0], [0.5, 0.5, 0.5]]))
            y.append(a)
    return structures, np.array(y)


X, Y = _crystals()


def _lrs(model) -> list[float]:
    return [float(v) for v in model.history_[:, "event_lr"]]


def _fit(**params):
    return CGCNNRegressor(**{**TINY, **params}).fit(X, Y)


def test_early_stopping_waits_while_the_learning_rate_is_high():
    # constant rate: patience is used up after epoch 3, but the rate never decays -> no stop
    stopper = EarlyStoppingIfValidated(patience=2, threshold=NEVER_IMPROVES, load_best=True)
    model = _fit(max_epochs=7, callbacks__lr_scheduler=None, callbacks__early_stopping=stopper)
    assert len(model.history_) == 7
    # skorch's rule (max_lr_fraction=None) stops on patience alone
    stopper = EarlyStoppingIfValidated(patience=2, threshold=NEVER_IMPROVES, load_best=True,
                                       max_lr_fraction=None)
    model = _fit(max_epochs=7, callbacks__lr_scheduler=None, callbacks__early_stopping=stopper)
    assert len(model.history_) == 3


def test_early_stopping_fires_at_the_first_epoch_the_rate_has_decayed():
    # the rate halves every epoch; patience is used up after epoch 3, the stop comes at the
    # first epoch whose rate is <= 5 % of the initial one
    schedule = LRScheduler(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    stopper = EarlyStoppingIfValidated(patience=2, threshold=NEVER_IMPROVES, load_best=True)
    model = _fit(max_epochs=12, callbacks__lr_scheduler=schedule,
                 callbacks__early_stopping=stopper)
    lr_at_stop = model.optimizer_.param_groups[0]["lr"]
    assert lr_at_stop <= 0.05 * TINY["lr"]
    assert len(model.history_) < 12
    # one epoch earlier the rate was still above the threshold
    assert lr_at_stop * 2 > 0.05 * TINY["lr"]


def test_anneal_starts_on_a_plateau_and_training_stops_when_it_is_complete():
    schedule = AnnealOnPlateau(patience=2, threshold=NEVER_IMPROVES, anneal_fraction=0.5,
                               min_anneal_epochs=2)
    model = _fit(max_epochs=50, callbacks__lr_scheduler=schedule)
    # epoch 1 is the best; epochs 2 and 3 miss -> the anneal starts after 3 epochs and lasts
    # max(2, ceil(0.5 * 3)) = 2 epochs -> training stops after epoch 5, long before 50
    assert len(model.history_) == 5
    assert list(model.history_[:, "anneal_epochs"]) == [0, 0, 0, 2, 2]
    lrs = _lrs(model)
    assert lrs[:3] == [TINY["lr"]] * 3  # constant phase
    assert TINY["lr"] > lrs[3] > lrs[4]  # decaying
    assert lrs[4] == 0.0  # the rate reached its floor when training stopped
    assert schedule.annealed_


def test_anneal_floor_and_per_batch_cosine():
    seen = []

    class Spy(Callback):  # records the optimizer's rate at every training batch
        def on_batch_begin(self, net, training=False, **kwargs):
            if training:
                seen.append(net.optimizer_.param_groups[0]["lr"])

    schedule = AnnealOnPlateau(patience=1, threshold=NEVER_IMPROVES, min_anneal_epochs=4,
                               min_lr_fraction=0.1)
    model = _fit(max_epochs=40, train_split=None, callbacks__lr_scheduler=schedule,
                 callbacks=[("spy", Spy())], callbacks__early_stopping=None)
    # no validation data: the anneal starts at floor(40 / 1.5) = 26 and ends at epoch 40
    assert len(model.history_) == 40
    assert schedule.anneal_start_ == 26 and schedule.anneal_epochs_ == 14
    batches = len(seen) // 40
    annealing = np.array(seen[26 * batches:])
    assert np.all(np.diff(annealing) < 0)  # strictly decreasing, batch by batch
    assert np.all(annealing > 0.1 * TINY["lr"])
    assert _lrs(model)[-1] == pytest.approx(0.1 * TINY["lr"])
    assert seen[: 26 * batches] == [TINY["lr"]] * (26 * batches)


def test_default_pair_never_stops_before_the_rate_has_decayed():
    # the pair as the estimators use it: early stopping's patience is used up first (2 < 3),
    # yet training goes on until the schedule has annealed the rate
    schedule = AnnealOnPlateau(patience=3, threshold=NEVER_IMPROVES, min_anneal_epochs=6)
    stopper = EarlyStoppingIfValidated(patience=2, threshold=NEVER_IMPROVES, load_best=True)
    model = _fit(max_epochs=60, callbacks__lr_scheduler=schedule,
                 callbacks__early_stopping=stopper)
    stop_lr = model.optimizer_.param_groups[0]["lr"]
    assert stop_lr <= 0.05 * TINY["lr"]
    assert 4 + 1 <= len(model.history_) <= 4 + 6
    # epoch 1 is the best of all; the weights kept are those of the best annealed epoch
    assert stopper.best_epoch_ == 1 and stopper.kept_epoch_ == stopper.annealed_best_epoch_ > 4


def test_classifier_uses_the_same_rule():
    labels = np.where(Y > 4.5, "big", "small")
    schedule = AnnealOnPlateau(patience=2, threshold=NEVER_IMPROVES, min_anneal_epochs=2)
    model = CGCNNClassifier(**TINY, max_epochs=30, callbacks__lr_scheduler=schedule).fit(
        X, labels)
    assert len(model.history_) == 5
    assert _lrs(model)[-1] == 0.0


def test_an_interrupted_anneal_resumes_where_it_stopped(tmp_path):
    def schedule():
        return AnnealOnPlateau(patience=2, threshold=NEVER_IMPROVES, min_anneal_epochs=4)

    straight = _fit(max_epochs=30, callbacks__lr_scheduler=schedule())
    assert len(straight.history_) == 7  # 3 epochs, then an anneal of max(4, 2) = 4

    class InterruptAt(Checkpoint):
        def __init__(self):
            super().__init__(dirname=str(tmp_path), monitor=None)

        def on_epoch_end(self, net, **kwargs):
            super().on_epoch_end(net, **kwargs)
            if len(net.history) == 5:  # in the middle of the anneal
                raise KeyboardInterrupt

    checkpoint = InterruptAt()
    _fit(max_epochs=30, callbacks__lr_scheduler=schedule(),
         callbacks=[("checkpoint", checkpoint)])
    resumed = _fit(max_epochs=30, callbacks__lr_scheduler=schedule(),
                   callbacks=[("resume", LoadInitState(checkpoint))])
    assert len(resumed.history_) == 7
    np.testing.assert_allclose(_lrs(resumed), _lrs(straight), rtol=1e-12, atol=0)
    assert list(resumed.history_[:, "anneal_epochs"]) == [0, 0, 0, 4, 4, 4, 4]


@pytest.mark.parametrize("cls", [CGCNNRegressor, CGCNNClassifier])
def test_estimators_default_to_the_agreeing_pair(cls):
    params = cls().get_params()
    schedule = params["callbacks__lr_scheduler"]
    stopper = params["callbacks__early_stopping"]
    assert isinstance(schedule, AnnealOnPlateau) and schedule.patience == 20
    assert isinstance(stopper, EarlyStoppingIfValidated)
    assert stopper.patience == 30 and stopper.max_lr_fraction == 0.05 and stopper.load_best


def test_default_fit_ends_annealed():
    # defaults except a short run: the stop comes with the rate at its floor, never in between
    model = CGCNNRegressor(**{**TINY, "lr": 0.002}, max_epochs=12).fit(X, Y)
    assert len(model.history_) <= 12
    assert _lrs(model)[-1] <= 0.05 * 0.002


class _WeightsAtEpochs(Callback):
    """Records the module's weights and Adam's step count after each epoch's last training
    step, and at the start of each epoch (after the schedule has acted on the previous
    epoch's end)."""

    def initialize(self):
        self.at_end, self.at_begin = {}, {}
        return self

    @staticmethod
    def _state(net):
        steps = [float(s["step"]) for s in net.optimizer_.state_dict()["state"].values()]
        return ({k: v.clone() for k, v in net.module_.state_dict().items()}, steps[:1])

    def on_epoch_begin(self, net, **kwargs):
        self.at_begin[len(net.history)] = self._state(net)

    def on_batch_end(self, net, training=False, **kwargs):
        if training:  # the latest is the epoch's last step
            self.at_end[len(net.history)] = self._state(net)


def _same(a, b) -> bool:
    return all(torch.equal(a[0][k], b[0][k]) for k in a[0])


@pytest.mark.parametrize("from_best", [True, False])
def test_the_anneal_starts_from_the_best_epochs_weights(from_best):
    # epoch 1 is the best; epochs 2 and 3 miss -> the anneal starts after epoch 3, from the
    # weights of epoch 1 -- or, without from_best, of 3; Adam's state goes on (its step count)
    schedule = AnnealOnPlateau(patience=2, threshold=NEVER_IMPROVES, min_anneal_epochs=2,
                               from_best=from_best)
    spy = _WeightsAtEpochs()
    model = _fit(max_epochs=50, callbacks__lr_scheduler=schedule, callbacks=[("spy", spy)],
                 callbacks__early_stopping=None)
    spy = dict(model.callbacks_)["spy"]
    source = 1 if from_best else 3
    assert _same(spy.at_begin[4], spy.at_end[source])
    assert not _same(spy.at_begin[4], spy.at_end[4 - source])  # 3 resp. 1: they differ
    assert spy.at_begin[4][1] == spy.at_end[3][1]  # the optimizer's steps go on
    assert list(model.history_[:, "anneal_from"][-2:]) == [source, source]
    assert schedule.anneal_from_ == source
    assert schedule.best_state_ is None  # the copy is dropped: a fitted model pickles without


def test_the_anneal_starts_from_the_last_epoch_when_it_is_the_best():
    # no validation data: nothing is monitored, the anneal (at floor(9 / 1.5) = 6) goes on
    # from the last epoch's weights
    schedule = AnnealOnPlateau()
    spy = _WeightsAtEpochs()
    model = _fit(max_epochs=9, train_split=None, callbacks__lr_scheduler=schedule,
                 callbacks=[("spy", spy)], callbacks__early_stopping=None)
    spy = dict(model.callbacks_)["spy"]
    assert schedule.anneal_start_ == 6 and schedule.anneal_from_ == 6
    assert _same(spy.at_begin[7], spy.at_end[6])


def test_the_default_schedule_anneals_from_the_best_epoch():
    assert CGCNNRegressor().get_params()["callbacks__lr_scheduler"].from_best
    assert CGCNNClassifier().get_params()["callbacks__lr_scheduler"].from_best


def test_a_resumed_plateau_without_the_best_weights_warns_and_anneals_from_the_last(tmp_path):
    # interrupted after epoch 3 of a plateau (epoch 1 best); the anneal starts after epoch 4:
    # without a best-weights checkpoint, epoch 1's weights are gone, and the user is told
    def schedule():
        return AnnealOnPlateau(patience=3, threshold=NEVER_IMPROVES, min_anneal_epochs=2)

    class InterruptAt(Checkpoint):
        def __init__(self):
            super().__init__(dirname=str(tmp_path), monitor=None)

        def on_epoch_end(self, net, **kwargs):
            super().on_epoch_end(net, **kwargs)
            if len(net.history) == 3:
                raise KeyboardInterrupt

    checkpoint = InterruptAt()
    _fit(max_epochs=30, callbacks__lr_scheduler=schedule(), callbacks__early_stopping=None,
         callbacks=[("checkpoint", checkpoint)])
    resumed_schedule = schedule()
    with pytest.warns(UserWarning, match="the anneal starts from the last epoch's weights"):
        _fit(max_epochs=30, callbacks__lr_scheduler=resumed_schedule,
             callbacks__early_stopping=None, callbacks=[("resume", LoadInitState(checkpoint))])
    assert resumed_schedule.anneal_start_ == 4 and resumed_schedule.anneal_from_ == 4


def _annealed_best(model) -> int:
    rows = [row for row in model.history_ if row["event_lr"] < model.lr]
    return min(rows, key=lambda row: row["valid_loss"])["epoch"]


@pytest.mark.parametrize("prefer_annealed", [True, False])
def test_the_weights_kept_are_the_best_annealed_epochs(prefer_annealed):
    # the schedule sees no improvement after epoch 1 (NEVER_IMPROVES) and anneals in epochs 4
    # and 5, from epoch 1's weights: the best of these two is kept, whichever epoch has the
    # lowest validation loss of all (prefer_annealed=False: that one, skorch's rule)
    spy = _WeightsAtEpochs()
    stopper = EarlyStoppingIfValidated(patience=30, load_best=True,
                                       prefer_annealed=prefer_annealed)
    schedule = AnnealOnPlateau(patience=2, threshold=NEVER_IMPROVES, min_anneal_epochs=2)
    model = _fit(max_epochs=50, callbacks__lr_scheduler=schedule,
                 callbacks__early_stopping=stopper, callbacks=[("spy", spy)])
    spy = dict(model.callbacks_)["spy"]
    assert len(model.history_) == 5
    best_of_all = int(np.argmin(model.history_[:, "valid_loss"])) + 1
    kept = _annealed_best(model) if prefer_annealed else best_of_all
    assert kept in ((4, 5) if prefer_annealed else (1, 2, 3, 4, 5))
    assert stopper.kept_epoch_ == kept
    final = ({k: v for k, v in model.module_.state_dict().items()}, None)
    assert _same(final, spy.at_end[kept])
    assert stopper.annealed_weights_ is None and stopper.best_model_weights_ is None


def test_without_an_anneal_the_best_of_all_epochs_is_kept():
    # a constant rate (no scheduler): nothing is annealed, skorch's rule holds
    stopper = EarlyStoppingIfValidated(patience=30, load_best=True)
    model = _fit(max_epochs=6, callbacks__lr_scheduler=None, callbacks__early_stopping=stopper)
    best = int(np.argmin(model.history_[:, "valid_loss"])) + 1
    assert stopper.annealed_best_epoch_ is None and stopper.kept_epoch_ == best
