"""Training that survives: interruption, checkpoint + resume, determinism (docs/robustness.md)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from skorch.callbacks import Callback, Checkpoint, LoadInitState

from skcgcnn import CGCNNClassifier, CGCNNRegressor, CrystalGraphFeaturizer
from skcgcnn import featurizer as featurizer_module

TINY = {
    "random_state": 0,
    "verbose": 0,
    "batch_size": 8,
    "module__atom_fea_len": 8,
    "module__h_fea_len": 8,
    "module__n_conv": 2,
}


def _crystals() -> tuple[list[Structure], np.ndarray, np.ndarray]:
    """36 real rocksalt / CsCl-type halides with strained lattices; y = a, labels = type."""
    structures, a_values, kinds = [], [], []
    for cation, anion, a0 in [("Na", "Cl", 5.64), ("K", "Cl", 6.29), ("Li", "F", 4.03),
                              ("K", "Br", 6.60), ("Na", "F", 4.63), ("Li", "Cl", 5.13)]:
        for strain in (0.97, 1.0, 1.03):
            a = a0 * strain
            fcc = Lattice([[0, a / 2, a / 2], [a / 2, 0, a / 2], [a / 2, a / 2, 0]])
            structures.append(Structure(fcc, [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]]))
            a_values.append(a)
            kinds.append("rocksalt")
    for cation, anion, a0 in [("Cs", "Cl", 4.12), ("Cs", "Br", 4.29), ("Tl", "Cl", 3.84),
                              ("Cs", "I", 4.57), ("Tl", "Br", 3.97), ("Tl", "I", 4.20)]:
        for strain in (0.97, 1.0, 1.03):
            a = a0 * strain
            structures.append(Structure(Lattice.cubic(a), [cation, anion],
                                        [[0, 0, 0], [0.5, 0.5, 0.5]]))
            a_values.append(a)
            kinds.append("cscl")
    return structures, np.array(a_values), np.array(kinds)


X, Y, LABELS = _crystals()
ESTIMATORS = {"regressor": (CGCNNRegressor, Y), "classifier": (CGCNNClassifier, LABELS)}


def _outputs(model) -> np.ndarray:
    if isinstance(model, CGCNNClassifier):
        return model.predict_proba(X)
    return model.predict(X)


def _state(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.module_.state_dict().items()}


class _InterruptAt(Callback):
    """Raise KeyboardInterrupt (as Ctrl-C would) at the end of one epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs) -> None:
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


class _RecordWeights(Callback):
    def initialize(self):
        self.states_ = {}
        return self

    def on_epoch_end(self, net, **kwargs) -> None:
        self.states_[len(net.history)] = copy.deepcopy(net.module_.state_dict())


# --------------------------------------------------------------------------- interruption
@pytest.mark.parametrize("train_split", ["auto", None], ids=["with-validation", "no-validation"])
@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_keyboard_interrupt_keeps_a_usable_model_with_the_best_weights(kind, train_split):
    cls, y = ESTIMATORS[kind]
    recorder = _RecordWeights()
    model = cls(**TINY, max_epochs=10, train_split=train_split,
                callbacks=[("record", recorder), ("interrupt", _InterruptAt(3))])
    model.fit(X, y)  # skorch catches the KeyboardInterrupt: fit returns normally
    assert len(model.history_) == 3
    out = _outputs(model)
    assert out.shape[0] == len(X) and np.isfinite(out).all()
    if train_split is None:  # no validation data, no "best": the weights of the last epoch
        best = 3
    else:
        best = int(np.argmin(model.history_[:, "valid_loss"])) + 1
    for name, value in model.module_.state_dict().items():
        torch.testing.assert_close(value, recorder.states_[best][name], rtol=0, atol=0)


# --------------------------------------------------------------------------- checkpoint + resume
def _best_checkpoints(tmp_path) -> list[tuple[str, Checkpoint]]:
    """Weights only of the best validation epoch and of the best annealed one (the recipe of
    docs/robustness.md): early stopping reads them when those epochs came before a resume."""
    return [(kind, Checkpoint(dirname=str(tmp_path), monitor=monitor, fn_prefix=f"{kind}_",
                              f_optimizer=None, f_criterion=None, f_history=None,
                              event_name=f"event_{kind}"))
            for kind, monitor in [("best", "valid_loss_best"), ("annealed", "annealed_best")]]


def _straight_and_resumed(cls, y, tmp_path, train_split, epochs=4, stop=2):
    """``epochs`` epochs straight, and ``stop`` epochs (interrupted) + the rest resumed from
    the checkpoint.

    This is the recipe of docs/robustness.md: a ``Checkpoint(monitor=None)`` holds the last
    epoch's full state; with validation data two more keep the best and best annealed weights.
    """
    def best():
        return _best_checkpoints(tmp_path) if train_split is not None else []

    straight = cls(**TINY, max_epochs=epochs, train_split=train_split,
                   callbacks=[*best()]).fit(X, y)

    last = Checkpoint(dirname=str(tmp_path), monitor=None)  # every epoch, all state
    cls(**TINY, max_epochs=epochs, train_split=train_split,
        callbacks=[("last", last), *best(), ("interrupt", _InterruptAt(stop))]).fit(X, y)
    # a fresh estimator, as in a new process: LoadInitState loads the last checkpoint
    resumed = cls(**TINY, max_epochs=epochs, train_split=train_split, callbacks=[
        ("last", Checkpoint(dirname=str(tmp_path), monitor=None)), *best(),
        ("resume", LoadInitState(last)),
    ])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing lost, so nothing to warn about
        resumed.fit(X, y)
    return straight, resumed


@pytest.mark.parametrize("train_split", ["auto", None], ids=["with-validation", "no-validation"])
@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize("epochs, stop", [(4, 2), (6, 5)], ids=["2+2", "5+1-mid-anneal"])
def test_resumed_epochs_equal_the_straight_run(kind, train_split, epochs, stop, tmp_path):
    # 2+2: the anneal (epochs 3 and 4, from the best epoch's weights) begins after the resume;
    # 5+1: it began before (epochs 5 and 6), so the best annealed epoch may precede the resume
    cls, y = ESTIMATORS[kind]
    straight, resumed = _straight_and_resumed(cls, y, tmp_path, train_split, epochs, stop)
    assert len(resumed.history_) == epochs  # the rest of max_epochs, not all of them again
    np.testing.assert_allclose(resumed.history_[:, "train_loss"],
                               straight.history_[:, "train_loss"], rtol=1e-6)
    # the cosine LR schedule continues where it stopped
    np.testing.assert_allclose(resumed.history_[:, "event_lr"], straight.history_[:, "event_lr"],
                               rtol=1e-12)
    if train_split is not None:
        np.testing.assert_allclose(resumed.history_[:, "valid_loss"],
                                   straight.history_[:, "valid_loss"], rtol=1e-6)
        assert resumed.history_[:, "valid_loss_best"] == straight.history_[:, "valid_loss_best"]
    np.testing.assert_allclose(_outputs(resumed), _outputs(straight), rtol=1e-5, atol=1e-6)
    for name, value in straight.module_.state_dict().items():
        torch.testing.assert_close(resumed.module_.state_dict()[name], value,
                                   rtol=1e-5, atol=1e-6)


def test_resume_in_the_same_process_with_load_params(tmp_path):
    straight = CGCNNRegressor(**TINY, max_epochs=4, train_split=None).fit(X, Y)
    checkpoint = Checkpoint(dirname=str(tmp_path), monitor=None)
    model = CGCNNRegressor(**TINY, max_epochs=4, train_split=None,
                           callbacks=[("checkpoint", checkpoint), ("interrupt", _InterruptAt(2))])
    model.fit(X, Y)
    model.load_params(checkpoint=checkpoint)  # epoch-2 weights, optimizer state and history
    model.partial_fit(X, Y, epochs=2)  # (the interrupt fires at epoch 2 only)
    assert len(model.history_) == 4
    np.testing.assert_allclose(model.history_[:, "event_lr"], straight.history_[:, "event_lr"])
    np.testing.assert_allclose(model.predict(X), straight.predict(X), rtol=1e-5, atol=1e-6)


def test_optimizer_state_is_restored(tmp_path):
    checkpoint = Checkpoint(dirname=str(tmp_path), monitor=None)
    first = CGCNNRegressor(**TINY, max_epochs=4, train_split=None,
                           callbacks=[("checkpoint", checkpoint), ("interrupt", _InterruptAt(2))])
    first.fit(X, Y)
    resumed = CGCNNRegressor(**TINY, max_epochs=2, train_split=None,
                             callbacks=[("resume", LoadInitState(checkpoint))])
    resumed.fit(X, Y, epochs=0)  # loads, trains nothing
    saved = torch.load(tmp_path / "optimizer.pt", weights_only=True)
    loaded = resumed.optimizer_.state_dict()
    assert loaded["param_groups"][0]["lr"] == saved["param_groups"][0]["lr"]
    for key, value in saved["state"][0].items():
        torch.testing.assert_close(loaded["state"][0][key], value)
    assert saved["state"][0]["step"] > 0  # Adam moments of 2 epochs, not a fresh optimizer


def test_early_stopping_patience_carries_over_a_resume(tmp_path):
    # an impossible improvement threshold: epoch 1 is the best, patience 2 stops after epoch 3
    params = {"callbacks__early_stopping__patience": 2,
              "callbacks__early_stopping__threshold": 10.0,
              "callbacks__early_stopping__max_lr_fraction": None}
    straight = CGCNNRegressor(**TINY, max_epochs=8, **params).fit(X, Y)
    assert len(straight.history_) == 3

    checkpoint = Checkpoint(dirname=str(tmp_path), monitor=None)
    CGCNNRegressor(**TINY, max_epochs=8, callbacks=[
        ("checkpoint", checkpoint), ("interrupt", _InterruptAt(2))], **params).fit(X, Y)
    resumed = CGCNNRegressor(**TINY, max_epochs=8,
                             callbacks=[("resume", LoadInitState(checkpoint))], **params)
    with pytest.warns(UserWarning, match=r"best epoch \(1\) came before the checkpoint"):
        resumed.fit(X, Y)
    assert len(resumed.history_) == 3  # stopped where the straight run stopped
    np.testing.assert_allclose(resumed.history_[:, "valid_loss"],
                               straight.history_[:, "valid_loss"], rtol=1e-6)


# --------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_same_random_state_gives_bitwise_identical_predictions(kind):
    cls, y = ESTIMATORS[kind]
    first = _outputs(cls(**TINY, max_epochs=3).fit(X, y))
    second = _outputs(cls(**TINY, max_epochs=3).fit(X, y))
    np.testing.assert_array_equal(first, second)
    other = _outputs(cls(**{**TINY, "random_state": 1}, max_epochs=3).fit(X, y))
    assert not np.array_equal(first, other)  # the seed matters, so the check above can fail


def test_featurizer_n_jobs_does_not_change_the_model(perovskites):
    structures = list(perovskites["structure"].iloc[:140])
    y = perovskites["e_form"].to_numpy()[:140]
    assert len(structures) >= 2 * featurizer_module._MIN_CHUNK  # n_jobs=2 really runs parallel
    serial = CrystalGraphFeaturizer(n_jobs=1).graphs(structures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # loky's notes on a busy machine
        parallel = CrystalGraphFeaturizer(n_jobs=2).graphs(structures)
    assert all(a == b for a, b in zip(serial, parallel))

    predictions = []
    for n_jobs in (1, 2):
        model = CGCNNRegressor(**TINY, max_epochs=2,
                               featurizer=CrystalGraphFeaturizer(n_jobs=n_jobs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            predictions.append(model.fit(structures, y).predict(structures))
    np.testing.assert_array_equal(predictions[0], predictions[1])


def test_a_best_annealed_epoch_before_the_resume_is_read_from_its_checkpoint(tmp_path,
                                                                           monkeypatch):
    # 9 epochs, the anneal in epochs 7-9; with this seed (and the MSE loss) the best annealed
    # epoch is 7, one epoch before the checkpoint training resumes from (8): its weights come
    # from the "annealed" checkpoint's file, and the resumed model equals the straight one
    monkeypatch.setitem(TINY, "random_state", 2)
    monkeypatch.setitem(TINY, "criterion", torch.nn.MSELoss)
    straight, resumed = _straight_and_resumed(CGCNNRegressor, Y, tmp_path, "auto", 9, 8)
    kept = dict(straight.callbacks_)["early_stopping"].kept_epoch_
    assert kept == dict(resumed.callbacks_)["early_stopping"].kept_epoch_ == 7
    np.testing.assert_allclose(resumed.predict(X), straight.predict(X), rtol=1e-5, atol=1e-6)
