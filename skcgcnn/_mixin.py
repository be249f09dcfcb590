"""What :class:`~skcgcnn.CGCNNRegressor` and :class:`~skcgcnn.CGCNNClassifier` share (private).

The estimators are skorch nets; skorch (the versions pinned in ``pyproject.toml``) is extended
through its documented hooks (``initialize``, ``initialize_module``, ``get_dataset``,
``get_split_datasets``, ``get_iterator``, ``infer``, ``get_loss``, ``load_params``,
``on_train_begin``, ``on_epoch_begin``, ``fit_loop``, ``check_data``, ``get_params``,
``set_params``, ``__setstate__``) and, where it offers none, through these **private skorch
names**, each overridden for one reason:

``prefixes_``
    skorch routes ``<prefix>__*`` parameters by this list; ``"featurizer"`` is added so that
    ``featurizer__radius`` etc. are parameters (for ``GridSearchCV``).
``_params_to_validate``
    the set of ``<prefix>__*`` keys skorch checks at ``initialize``; ``set_params`` adds the
    ``featurizer__*`` keys it stores itself (skorch's ``set_params`` cannot store them).
``_get_param_names``
    skorch takes every attribute not ending in ``_`` for a parameter; the fit-time bookkeeping
    (``_fit_seed``, ``_resumed_at``) starts with ``_`` and is left out.
``_default_callbacks``
    adds the package's default callbacks (``valid_mae`` for the regressor, stop on a
    non-finite loss, early stopping when there is a validation set, the anneal-on-plateau
    learning-rate schedule) before ``print_log``, which becomes
    :class:`~skcgcnn._logging.EpochLog`; the classifier replaces ``valid_acc`` by accuracy on
    the encoded labels.

and one **private scikit-learn** module: ``sklearn.utils._param_validation`` (``Interval``,
``StrOptions``... and ``validate_parameter_constraints``), the tools scikit-learn's own estimators
validate their ``_parameter_constraints`` with. skorch's ``NeuralNet`` defines its own
``_validate_params`` (for ``<prefix>__*`` keys), which hides scikit-learn's, so the constraints are
checked by :meth:`_CGCNNMixin._check_params` at ``fit`` / ``initialize``.

Everything skorch does with ``net.device`` (moving modules, mapping loaded tensors) needs a
concrete device, while ``device="auto"`` must stay ``"auto"`` for ``get_params``/``clone``: the
device is resolved once per fit into ``device_``, our hooks use that, and skorch's own
``initialize``/``load_params`` run on a view of the estimator with the concrete device
(:func:`skcgcnn._runtime.on_device`). No call changes a parameter of the estimator.

Two jobs have bases of their own, which override no skorch method: what X is and whether it fits
the fitted graph settings (:mod:`skcgcnn._graph_inputs`), and what a fitted model computes for X
(:mod:`skcgcnn._prediction`); the work on y is in :mod:`skcgcnn._targets`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.utils import TransformerTags
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from skorch import NeuralNet
from skorch.callbacks import Callback, LoadInitState, LRScheduler, PassthroughScoring
from skorch.dataset import ValidSplit
from skorch.utils import to_tensor
from torch.utils.data import Dataset

from ._checkpoint_io import build_estimator
from ._finetune import freeze_parameters, init_module_from, resolve_init_source
from ._graph_inputs import _GraphInputsMixin
from ._logging import EpochLog, ValidationMAE, resolve_verbose
from ._persist import _PersistenceMixin
from ._prediction import _PredictionMixin
from ._runtime import (
    adopt,
    check_device,
    epoch_seed,
    is_auto,
    on_device,
    resolve_device,
    rng_for_fit,
    weighted_loss,
)
from ._validation import _seed_from
from .batch import GraphBatch, collate, graph_dataset
from .callbacks import AnnealOnPlateau, EarlyStoppingIfValidated, StopOnNonFiniteLoss
from .featurizer import CrystalGraphFeaturizer

#: Validation fraction of the default ``train_split="auto"``.
VALID_FRACTION = 0.1


class _CGCNNMixin(_GraphInputsMixin, _PredictionMixin, _PersistenceMixin):
    """Everything the regressor and the classifier share: parameters, the seeded fit loop,
    devices, the skorch hooks; and from its bases X -> graphs
    (:class:`~skcgcnn._graph_inputs._GraphInputsMixin`), outputs, ``transform`` and
    ``atom_contributions`` (:class:`~skcgcnn._prediction._PredictionMixin`, with feature names,
    ``set_output`` and scikit-learn's repr from its base :class:`~skcgcnn._output.OutputMixin`),
    pickling and checkpoints (:class:`~skcgcnn._persist._PersistenceMixin`)."""

    prefixes_ = NeuralNet.prefixes_ + ["featurizer"]
    _is_classification: bool

    #: Checked at ``fit`` and ``initialize`` (skorch checks the ``<prefix>__*`` keys).
    _parameter_constraints: dict = {
        "lr": [Interval(Real, 0, None, closed="left")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
        "train_split": [StrOptions({"auto"}), callable, None],
        "featurizer": [HasMethods(["featurize_many", "set_params"]), None],
        "atom_features": [str, os.PathLike, dict, "array-like", None],
        "random_state": ["random_state"],
        "init_from": "no_validation",  # many kinds of source: resolve_init_source checks them
        "warm_start": ["boolean"],
        "verbose": ["verbose", StrOptions({"auto"})],
        "device": [str, torch.device, None],
    }

    def __init__(
        self,
        module: type,
        *,
        featurizer: CrystalGraphFeaturizer | None,
        atom_features: Any,
        random_state: Any,
        init_from: Any,
        freeze: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(module, **kwargs)
        self.featurizer = featurizer
        self.atom_features = atom_features
        self.random_state = random_state
        self.init_from = init_from
        self.freeze = freeze

    # ----------------------------------------------------------------- parameters
    def _check_params(self) -> None:
        """Raise ``InvalidParameterError`` (a ``ValueError``) naming a parameter out of range."""
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(deep=False),
            caller_name=type(self).__name__,
        )

    def _get_param_names(self) -> list[str]:
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def set_params(self, **params: Any) -> Any:
        featurizer_params = {k: v for k, v in params.items() if k.startswith("featurizer__")}
        for key, value in featurizer_params.items():  # applied to the featurizer at fit time
            setattr(self, key, value)
            self._params_to_validate.add(key)
        rest = {k: v for k, v in params.items() if k not in featurizer_params}
        return super().set_params(**rest) if rest else self

    def get_params(self, deep: bool = True, **kwargs: Any) -> dict[str, Any]:
        params = super().get_params(deep=deep, **kwargs)
        for key in [k for k in params if k.startswith("init_from__")]:
            del params[key]  # a fitted estimator as init_from is a source, not a sub-estimator
        if deep:  # skorch reports the default callbacks' (and featurizer's) own values over
            # explicitly set ``callbacks__*`` / ``featurizer__*``; the explicit ones are used
            params.update({k: v for k, v in vars(self).items() if k in params and "__" in k})
        return params

    @property
    def _default_callbacks(self) -> list[tuple[str, Callback | None]]:
        callbacks = [(name, EpochLog() if name == "print_log" else callback)
                     for name, callback in super()._default_callbacks]
        if not self._is_classification:  # the validation error in the units of y
            callbacks.insert(len(callbacks) - 1, ("valid_mae", ValidationMAE()))
        extra = [
            ("stop_on_nonfinite_loss", StopOnNonFiniteLoss()),
            (
                "early_stopping",
                EarlyStoppingIfValidated(patience=30, load_best=True, max_lr_fraction=0.05),
            ),
            ("lr_scheduler", AnnealOnPlateau(patience=20, anneal_fraction=0.5)),
        ]
        return callbacks[:-1] + extra + callbacks[-1:]  # print_log last

    # ----------------------------------------------------------------- training
    def _fitted(self) -> bool:
        return bool(getattr(self, "initialized_", False)) and hasattr(self, "n_outputs_")

    def __sklearn_is_fitted__(self) -> bool:
        return self._fitted()

    def _warm_start(self) -> bool:
        """Whether ``fit`` continues from the current state (``warm_start`` once initialized)."""
        return bool(self.warm_start and getattr(self, "initialized_", False))

    def _fit(self, X: Any, y: Any, warm: bool, **fit_params: Any) -> Any:
        """Featurize X, validate y and train; ``warm`` continues from the current weights and
        target encoding. The subclass validates (``_targets``) and prepares (``_training_data``)
        the targets."""
        self._check_params()
        if not (warm and hasattr(self, "device_")):
            check_device(self.device)  # before featurizing: a clear error, early
        if self.freeze is not None and self.init_from is None and not warm:
            raise ValueError("freeze needs init_from (there is nothing pretrained to freeze)")
        # fine-tuning: the pretrained weights, read once per fit, decide the architecture,
        # the element table and the graph settings that are not set explicitly
        self._init_source = None if warm or self.init_from is None else resolve_init_source(
            self.init_from)
        self._fitting_warm = warm
        try:
            graphs, valid = self._fit_graphs(X, y)
            y = self._targets(y, warm)[valid]
            if len(graphs) < 2:
                raise ValueError(f"at least 2 samples are needed to fit, got {len(graphs)}")
            data, targets = self._training_data(graphs, y, valid, warm, fit_params)
            if not (warm and hasattr(self, "device_")):
                self.device_ = resolve_device(self.device)
            # "auto": print for a fit a person watches, not inside a meta-estimator
            self.verbose_ = resolve_verbose(self.verbose)
            seed = _seed_from(self.random_state)
            with rng_for_fit(seed, self.device_):
                if not warm:
                    self.initialize()
                self._fit_seed = seed
                NeuralNet.partial_fit(self, data, targets, **fit_params)
        finally:
            del self._init_source, self._fitting_warm
        return self

    def partial_fit(self, X: Any, y: Any, **fit_params: Any) -> Any:
        """Train for ``max_epochs`` more epochs, continuing from the current weights (a first
        call fits as ``fit``)."""
        return self._fit(X, y, warm=self._fitted() or self._warm_start(), **fit_params)

    def _train_split_for(self, y: np.ndarray) -> Callable | None:
        if isinstance(self.train_split, str):  # "auto" (_check_params)
            return ValidSplit(VALID_FRACTION, stratified=self._stratify(y),
                              random_state=_seed_from(self.random_state))
        return self.train_split

    def _stratify(self, y: np.ndarray) -> bool:
        return False

    def get_split_datasets(self, X: Any, y: Any = None, **fit_params: Any) -> tuple:
        dataset = self.get_dataset(X, y)
        split = self._train_split_for(y)
        if split is None:
            return dataset, None
        return split(dataset, y, **fit_params)

    def get_dataset(self, X: Any, y: Any = None) -> Dataset:
        if isinstance(X, Dataset):
            return X
        return graph_dataset(X, y)

    def _device(self) -> Any:
        """The concrete device: ``device``, or what ``"auto"`` resolved to at fit."""
        if not is_auto(self.device):
            return self.device
        return getattr(self, "device_", None) or resolve_device(self.device)

    def get_iterator(self, dataset: Dataset, training: bool = False) -> Any:
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("collate_fn", collate)
        if str(self._device()).startswith("cuda"):  # pinned batches: asynchronous copies
            kwargs.setdefault("pin_memory", True)
        if training:
            kwargs.setdefault("shuffle", True)
        else:  # a DataLoader draws a base seed even unshuffled: keep the global RNG untouched,
            # so predicting in one thread cannot shift a seeded fit running in another
            kwargs.setdefault("generator", torch.Generator())
        if kwargs.get("batch_size", self.batch_size) == -1:
            kwargs["batch_size"] = len(dataset)
        kwargs.setdefault("batch_size", self.batch_size)
        iterator = self.iterator_train if training else self.iterator_valid
        return iterator(dataset, **kwargs)

    def infer(self, x: GraphBatch, **fit_params: Any) -> torch.Tensor:
        if self.compile:  # the process-wide compiled forward (skcgcnn._compile)
            from ._compile import compiled_forward

            return compiled_forward(self.module_, x.to(self._device()), **fit_params)
        return self.module_(x.to(self._device()), **fit_params)

    def torch_compile(self, module: Any, name: str) -> Any:
        """``compile=True`` leaves the modules unwrapped (same class, ``state_dict`` keys and
        pickles): :meth:`infer` runs ``module_`` through skcgcnn's compiled code, shared by all
        estimators of the process, so a refit or the next fold compiles nothing. Warns (a
        :class:`~skcgcnn._compile.CompileFallbackWarning`) when inductor is unavailable."""
        if self.compile and name == "module":
            from ._compile import unavailable_reason, warn_fallback

            reason = unavailable_reason()
            if reason is not None:
                warn_fallback(reason)
        return module

    def get_loss(
        self, y_pred: torch.Tensor, y_true: Any, X: Any = None, training: bool = False
    ) -> torch.Tensor:
        """The criterion on the concrete device; with ``sample_weight`` (a ``(targets,
        weights)`` pair), the mean of the weighted per-sample losses."""
        if isinstance(y_true, (tuple, list)):
            target, weight = (to_tensor(t, device=self._device()) for t in y_true)
            return weighted_loss(self.criterion_, y_pred, target, weight)
        return self.criterion_(y_pred, to_tensor(y_true, device=self._device()))

    def initialize_module(self) -> Any:
        kwargs = {
            "atom_features": self.atom_features_,
            "n_outputs": self.n_outputs_,
            "classification": self._is_classification,
            "radius": self.graph_radius_,
        }
        source = getattr(self, "_init_source", None)
        if getattr(self, "_loading_params", False):  # load_params brings the weights
            source = None
        elif source is None and self.init_from is not None:  # initialize() outside fit
            source = resolve_init_source(self.init_from)
        if source is not None:  # the pretrained architecture, unless set explicitly
            kwargs.update({k[len("module__"):]: v for k, v in source.module_params.items()})
        kwargs.update(self.get_params_for("module"))
        module = self.initialized_instance(self.module, kwargs)
        if source is not None:  # fine-tuning: the pretrained weights
            self.reinitialized_params_ = init_module_from(module, source)
        if self.freeze is not None and source is not None:
            self.frozen_params_ = freeze_parameters(module, self.freeze)
        self.module_ = module
        return self

    def initialize(self) -> Any:
        """skorch's ``initialize``, with the modules on the concrete device."""
        self._check_params()
        if not is_auto(self.device):
            return super().initialize()
        view = on_device(self, self._device())
        super(_CGCNNMixin, view).initialize()
        adopt(self, view)
        return self

    def load_params(self, *args: Any, **kwargs: Any) -> None:
        """skorch's ``load_params``, with tensors mapped to the concrete device."""
        if not is_auto(self.device):
            return super().load_params(*args, **kwargs)
        view = on_device(self, self._device())
        super(_CGCNNMixin, view).load_params(*args, **kwargs)
        adopt(self, view)
        return None

    def __setstate__(self, state: dict[str, Any]) -> None:
        # skorch maps the tensors to ``state["device"]``; "auto" means: this machine's best.
        requested = state.get("device")
        auto = is_auto(requested)
        super().__setstate__({**state, "device": resolve_device("auto")} if auto else state)
        if "device_" in state:
            self.device_ = self.device  # where the weights were mapped on this machine
        if auto:
            self.device = "auto"

    def on_train_begin(self, net: NeuralNet, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        """Load a ``LoadInitState`` checkpoint first, so the LR schedule and early stopping
        that the other callbacks set up now start from the resumed epoch; and take the best
        losses so far from the history (skorch does it for ``EpochScoring`` only), so that
        ``valid_loss_best`` and ``Checkpoint`` keep their meaning across a resume."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self._resumed_at = None
        for _, callback in self.callbacks_:
            if isinstance(callback, LoadInitState) and not callback.did_load_:
                callback.on_train_begin(net, X=X, y=y, **kwargs)
                if len(self.history):
                    self._resumed_at = len(self.history)
        for _, callback in self.callbacks_:
            if isinstance(callback, PassthroughScoring):
                best = [row[callback.name] for row in self.history
                        if row.get(f"{callback.name}_best")]
                if best:
                    callback.best_score_ = best[-1]

    def fit_loop(self, X: Any, y: Any = None, epochs: int | None = None, **fit_params: Any) -> Any:
        """skorch's loop; a run resumed by ``LoadInitState`` trains the rest of ``max_epochs``."""
        if epochs is None and getattr(self, "_resumed_at", None) is not None:
            epochs = max(self.max_epochs - self._resumed_at, 0)
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def on_epoch_begin(self, net: NeuralNet, **kwargs: Any) -> None:
        """Reseed torch per epoch in a seeded fit: epoch e shuffles and drops out the same way
        in a straight run and in one resumed from a checkpoint."""
        super().on_epoch_begin(net, **kwargs)
        if getattr(self, "_fit_seed", None) is not None:
            torch.manual_seed(epoch_seed(self._fit_seed, len(self.history)))

    def on_train_end(self, net: NeuralNet, X: Any = None, y: Any = None, **kwargs: Any) -> None:
        """Leave the module in eval mode (so that predicting changes nothing, whatever the
        thread) and let go of the LR scheduler, which holds the optimizer (skorch makes a new
        one at the next ``on_train_begin``)."""
        super().on_train_end(net, X=X, y=y, **kwargs)
        self.module_.eval()
        for _, callback in self.callbacks_:
            if isinstance(callback, LRScheduler):
                callback.lr_scheduler_ = None

    @classmethod
    def from_checkpoint(cls, path: Any, atom_init: Any = None, **params: Any) -> Any:
        """A fitted estimator from a checkpoint of the original CGCNN (or of ``save_checkpoint``).

        See :func:`skcgcnn.checkpoints.load_checkpoint` for the arguments.
        """
        task = "classification" if cls._is_classification else "regression"
        return build_estimator(path, atom_init, task=task, estimator=cls, **params)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        tags.transformer_tags = TransformerTags(preserves_dtype=[])  # transform: embeddings
        return tags
