"""scikit-learn estimators around the CGCNN module, built on skorch.

:class:`CGCNNRegressor` and :class:`CGCNNClassifier` take pymatgen Structures (featurized inside
with their ``featurizer``) or precomputed :class:`~skcgcnn.graph.CrystalGraph`\\ s, and behave like
any scikit-learn estimator: ``fit``/``predict``/``score``, ``clone``, ``GridSearchCV`` over every
constructor argument (including skorch's ``module__*``, ``optimizer__*``, ``callbacks__*`` and
``featurizer__*``), pickling.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import TransformerTags
from sklearn.utils.class_weight import compute_class_weight
from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import (
    Callback,
    EpochScoring,
    LoadInitState,
    LRScheduler,
    PassthroughScoring,
)
from skorch.dataset import ValidSplit
from skorch.utils import to_tensor
from torch.utils.data import Dataset

from ._validation import (
    _check_sample_weight,
    _entries,
    _is_missing,
    _positive_int,
    _resolve_device,
    _seed_from,
)
from .batch import GraphBatch, collate
from .callbacks import EarlyStoppingIfValidated, StopOnNonFiniteLoss
from .elements import resolve_atom_features
from .featurizer import CrystalGraphFeaturizer, _is_structure_like
from .graph import CrystalGraph
from .model import CGCNN

__all__ = ["CGCNNClassifier", "CGCNNRegressor", "GraphDataset"]

#: Validation fraction of the default ``train_split="auto"``.
VALID_FRACTION = 0.1

_SEEDED_FIT_LOCK = threading.RLock()


class GraphDataset(Dataset):
    """A torch ``Dataset`` of crystal graphs and optional targets.

    Parameters
    ----------
    graphs : sequence of CrystalGraph
    y : array-like of shape (n_samples, ...), optional
    sample_weight : array-like of shape (n_samples,), optional
        Per-sample loss weights; when given, each item's target is the pair ``(y[i], w[i])``.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.graph import build_graph
    >>> po = build_graph(Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]]))
    >>> ds = GraphDataset([po, po], [0.5, 1.5])
    >>> len(ds), ds[1][1]
    (2, 1.5)
    """

    def __init__(
        self, graphs: Sequence[CrystalGraph], y: Any = None, sample_weight: Any = None
    ) -> None:
        self.graphs = graphs
        self.y = y
        self.sample_weight = sample_weight

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> tuple[CrystalGraph, Any]:
        target = None if self.y is None else self.y[i]
        if self.sample_weight is not None:
            target = (target, self.sample_weight[i])
        return self.graphs[i], target


def _collate(samples: Sequence) -> tuple[GraphBatch, Any]:
    """:func:`~skcgcnn.batch.collate`, also for weighted targets: ``(y, w)`` pairs become a pair
    of tensors (targets, weights) that the regressor's ``get_loss`` reads."""
    if samples and isinstance(samples[0][1], tuple):
        batch, y = collate([(graph, target[0]) for graph, target in samples])
        weight = torch.as_tensor(np.array([target[1] for _, target in samples], np.float32))
        return batch, (y, weight)
    return collate(samples)


def _epoch_seed(seed: int, epoch: int) -> int:
    """Torch seed of one epoch of a seeded fit: the same whether or not training was resumed."""
    return int(np.random.SeedSequence([seed % 2**32, epoch]).generate_state(1)[0])


def _encoded_accuracy(net: Any, X: Any, y: Any) -> float:
    """Validation accuracy on the encoded labels skorch holds (``predict`` returns user labels)."""
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


class _CGCNNMixin:
    """Everything the regressor and the classifier share (input handling, seeding, module)."""

    prefixes_ = NeuralNet.prefixes_ + ["featurizer"]

    # ----------------------------------------------------------------- parameters
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
        if deep:  # skorch reports the default callbacks' (and featurizer's) own values over
            # explicitly set ``callbacks__*`` / ``featurizer__*``; the explicit ones are used
            params.update({k: v for k, v in vars(self).items() if k in params and "__" in k})
        return params

    @property
    def _default_callbacks(self) -> list[tuple[str, Callback | None]]:
        callbacks = super()._default_callbacks
        extra = [
            ("stop_on_nonfinite_loss", StopOnNonFiniteLoss()),
            ("early_stopping", EarlyStoppingIfValidated(patience=30, load_best=True)),
            (
                "lr_scheduler",
                LRScheduler(
                    policy=torch.optim.lr_scheduler.CosineAnnealingLR,
                    T_max=_positive_int(self.max_epochs),
                ),
            ),
        ]
        return callbacks[:-1] + extra + callbacks[-1:]  # print_log last

    # ----------------------------------------------------------------- data
    def _make_featurizer(self) -> CrystalGraphFeaturizer:
        from sklearn.base import clone

        featurizer = CrystalGraphFeaturizer() if self.featurizer is None else clone(
            self.featurizer
        )
        params = self.get_params_for("featurizer")
        return featurizer.set_params(**params) if params else featurizer

    def _to_graphs(self, X: Any, fitting: bool) -> tuple[np.ndarray, np.ndarray]:
        """Validate X and featurize its Structures.

        Returns the graphs (object array, ``nan`` where featurization failed with
        ``ignore_errors``) and a boolean mask of the samples that have a graph.
        """
        entries = _entries(X)
        graphs = np.empty(len(entries), dtype=object)
        to_featurize = []
        for i, entry in enumerate(entries):
            if isinstance(entry, CrystalGraph):
                graphs[i] = entry
            elif _is_structure_like(entry):  # Structure; Molecule / ASE Atoms are converted
                to_featurize.append(i)
            elif _is_missing(entry):
                graphs[i] = math.nan
            else:
                raise ValueError(
                    f"X[{i}] is of type {type(entry).__name__}; expected a pymatgen Structure "
                    "(or Molecule, ASE Atoms) or a CrystalGraph"
                )
        if to_featurize:
            featurizer = self._make_featurizer() if fitting else self.featurizer_
            rows = featurizer.featurize_many(
                [entries[i] for i in to_featurize],
                ignore_errors=featurizer.ignore_errors,
                positions=to_featurize,
            )
            for i, row in zip(to_featurize, rows):
                graphs[i] = row[0]
            if fitting:
                self.featurizer_ = featurizer
        elif fitting:
            self.featurizer_ = self._make_featurizer()
        valid = np.array([isinstance(g, CrystalGraph) for g in graphs])
        if not valid.any():
            raise ValueError("no sample of X could be featurized")
        self._check_graphs(graphs[valid], np.flatnonzero(valid), fitting)
        return graphs, valid

    def _check_graphs(self, graphs: np.ndarray, positions: np.ndarray, fitting: bool) -> None:
        shapes = {(g.radius, g.max_num_nbr) for g in graphs}
        if fitting:
            if len(shapes) > 1:
                raise ValueError(
                    f"crystal graphs built with different (radius, max_num_nbr): {sorted(shapes)}"
                )
            self.graph_radius_, self.max_num_nbr_ = shapes.pop()
            self.atom_features_ = resolve_atom_features(self.atom_features)
        elif shapes != {(self.graph_radius_, self.max_num_nbr_)}:
            raise ValueError(
                f"the model was fitted on graphs with radius={self.graph_radius_:g} and "
                f"max_num_nbr={self.max_num_nbr_}; X has {sorted(shapes)}"
            )
        usable = np.isfinite(self.atom_features_).all(axis=1)
        for position, graph in zip(positions, graphs):
            numbers_ = graph.atomic_numbers
            if numbers_.max() >= len(usable) or not usable[numbers_[numbers_ > 0]].all():
                bad = sorted({int(z) for z in np.ravel(numbers_) if z >= len(usable) or (
                    z > 0 and not usable[z])})
                raise ValueError(
                    f"X[{int(position)}] contains elements with Z={bad}, which have no row in "
                    "the atom feature table (atom_features)"
                )

    # ----------------------------------------------------------------- training
    def _train_split_for(self, n_samples: int, y: np.ndarray) -> Callable | None:
        if isinstance(self.train_split, str):
            if self.train_split != "auto":
                raise ValueError(f"train_split must be 'auto', None or callable, got "
                                 f"{self.train_split!r}")
            stratified = self._stratify(y)
            return ValidSplit(VALID_FRACTION, stratified=stratified,
                              random_state=_seed_from(self.random_state))
        return self.train_split

    def _stratify(self, y: np.ndarray) -> bool:
        return False

    def get_split_datasets(self, X: Any, y: Any = None, **fit_params: Any) -> tuple:
        dataset = self.get_dataset(X, y)
        split = self._train_split_for(len(dataset), y)
        if split is None:
            return dataset, None
        return split(dataset, y, **fit_params)

    def get_dataset(self, X: Any, y: Any = None) -> Dataset:
        if isinstance(X, Dataset):
            return X
        return GraphDataset(X, y)

    def get_iterator(self, dataset: Dataset, training: bool = False) -> Any:
        prefix = "iterator_train" if training else "iterator_valid"
        kwargs = self.get_params_for(prefix)
        kwargs.setdefault("collate_fn", _collate)
        if str(self.device).startswith("cuda"):  # pinned batches: asynchronous host->GPU copies
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
        return self.module_(x.to(self.device), **fit_params)

    def initialize_module(self) -> Any:
        kwargs = {
            "atom_features": self.atom_features_,
            "n_outputs": self.n_outputs_,
            "classification": self._is_classification,
            "radius": self.graph_radius_,
        }
        kwargs.update(self.get_params_for("module"))
        module = self.initialized_instance(self.module, kwargs)
        if getattr(self, "init_from", None) is not None:  # fine-tuning: pretrained weights
            from .checkpoints import init_module_from

            self.reinitialized_params_ = init_module_from(module, self.init_from)
        self.module_ = module
        return self

    @contextlib.contextmanager
    def _resolved_device(self) -> Iterator[None]:
        """Within the block, ``self.device`` is the concrete device ``device="auto"`` stands
        for (skorch reads ``self.device`` in many places); ``get_params`` keeps ``"auto"``."""
        requested = self.device
        if not (isinstance(requested, str) and requested == "auto"):
            yield
            return
        self.device = getattr(self, "device_", None) or _resolve_device(requested)
        try:
            yield
        finally:
            self.device = requested

    def initialize(self) -> Any:
        """skorch's ``initialize``, with ``device="auto"`` resolved."""
        with self._resolved_device():
            return super().initialize()

    def __setstate__(self, state: dict[str, Any]) -> None:
        # skorch maps the tensors to ``state["device"]``; "auto" means: this machine's best.
        requested = state.get("device")
        auto = isinstance(requested, str) and requested == "auto"
        super().__setstate__({**state, "device": _resolve_device("auto")} if auto else state)
        if "device_" in state:
            self.device_ = self.device  # where the weights were mapped on this machine
        if auto:
            self.device = "auto"

    def _seeded_fit(self, graphs: np.ndarray, y: np.ndarray, **fit_params: Any) -> Any:
        if not (self.warm_start and self.initialized_ and hasattr(self, "device_")):
            self.device_ = _resolve_device(self.device)
        with self._resolved_device():
            return self._seeded_fit_on_device(graphs, y, **fit_params)

    def _seeded_fit_on_device(self, graphs: np.ndarray, y: np.ndarray, **fit_params: Any) -> Any:
        seed = _seed_from(self.random_state)
        devices = [torch.cuda.current_device()] if str(self.device).startswith("cuda") else []
        # torch has one global generator per process: seeded fits in threads of one process
        # (joblib's threading backend, multi-threaded dask workers) take turns so each one
        # sees only its own seed. Unseeded fits run concurrently.
        lock = _SEEDED_FIT_LOCK if seed is not None else contextlib.nullcontext()
        with lock, torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            if not (self.warm_start and self.initialized_):
                self.initialize()
            self._fit_seed = seed
            NeuralNet.partial_fit(self, graphs, y, **fit_params)
        return self

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
            torch.manual_seed(_epoch_seed(self._fit_seed, len(self.history)))

    def _check_fitted(self) -> None:
        if not getattr(self, "initialized_", False) or not hasattr(self, "n_outputs_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' first."
            )

    def _run_module(self, graphs: np.ndarray, method: str = "forward") -> np.ndarray:
        """Apply ``module_.<method>`` to graphs in eval mode, batch by batch, on the
        estimator's device; the outputs come back as a CPU array."""
        with self._resolved_device():
            return self._run_module_on_device(graphs, method)

    def _run_module_on_device(self, graphs: np.ndarray, method: str) -> np.ndarray:
        loader = self.get_iterator(GraphDataset(graphs), training=False)
        module = self.module_
        was_training = module.training
        module.eval()
        outputs = []
        try:
            with torch.no_grad():
                for batch, _ in loader:
                    outputs.append(getattr(module, method)(batch.to(self.device)).cpu())
        finally:
            module.train(was_training)
        return torch.cat(outputs).numpy()

    def _outputs(self, X: Any, method: str = "forward") -> np.ndarray:
        """Module outputs for every sample of X; NaN rows for samples without a graph."""
        self._check_fitted()
        graphs, valid = self._to_graphs(X, fitting=False)
        values = self._run_module(graphs[valid], method)
        if valid.all():
            return values
        out = np.full((len(graphs),) + values.shape[1:], np.nan, dtype=values.dtype)
        out[valid] = values
        return out

    def _fit_graphs(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if y is None:  # before featurizing; sklearn's wording
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None"
            )
        graphs, valid = self._to_graphs(X, fitting=True)
        if len(y) != len(graphs):
            raise ValueError(
                f"X and y have different lengths: {len(graphs)} samples in X, {len(y)} in y"
            )
        if not valid.all():
            warnings.warn(
                f"{int((~valid).sum())} of {len(graphs)} samples could not be featurized "
                f"(first: X[{int(np.flatnonzero(~valid)[0])}]) and are left out of fit",
                UserWarning,
                stacklevel=3,
            )
        return graphs[valid], valid

    def transform(self, X: Any) -> np.ndarray:
        """Pooled crystal embeddings of a fitted model, shape (n_samples, atom_fea_len).

        These are the mean-pooled atom features before the hidden layers (the reference's
        ``crys_fea``), ready for classical models.
        """
        return self._outputs(X, method="embed")

    def atom_contributions(self, X: Any, output: str = "prediction") -> list[np.ndarray | None]:
        """Each atom's contribution to its crystal's prediction or pooled embedding.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
        output : {"prediction", "embedding"}, default="prediction"
            "prediction": the head applied to each atom's embedding, in the units of y
            (regressor) or as logits (classifier): the paper's site energies. With
            ``module__readout="mean_output"`` the mean over a crystal's atoms *is* its
            prediction (logits for the classifier), exactly. With the default read-out the head
            is applied to the mean embedding instead, and the mean of these contributions
            differs from the prediction by the head's nonlinearity (softplus).
            "embedding": each atom's embedding after the convolutions, whose mean is exactly
            ``transform(X)`` for any read-out.

        Returns
        -------
        list of ndarray
            One array per crystal, rows in site order: shape (n_atoms,) for a one-target
            regressor, (n_atoms, n_outputs) otherwise; None for samples without a graph.
        """
        if output not in ("prediction", "embedding"):
            raise ValueError(f"output must be 'prediction' or 'embedding', got {output!r}")
        self._check_fitted()
        graphs, valid = self._to_graphs(X, fitting=False)
        method = "atom_outputs" if output == "prediction" else "atom_embeddings"
        values = self._run_module(graphs[valid], method).astype(np.float64)
        if output == "prediction" and hasattr(self, "y_scale_"):
            values = values * self.y_scale_ + self.y_mean_
            values = values[:, 0] if self.y_ndim_ == 1 else values
        parts = iter(np.split(values, np.cumsum([g.n_atoms for g in graphs[valid]])[:-1]))
        return [next(parts) if ok else None for ok in valid]

    @classmethod
    def from_checkpoint(cls, path: Any, atom_init: Any = None, **params: Any) -> Any:
        """A fitted estimator from a checkpoint of the original CGCNN (or of ``save_checkpoint``).

        See :func:`skcgcnn.checkpoints.load_checkpoint`, to which all arguments are passed.
        """
        from .checkpoints import load_checkpoint

        task = "classification" if cls._is_classification else "regression"
        return load_checkpoint(path, atom_init, task=task, estimator=cls, **params)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.non_deterministic = self.random_state is None
        tags.transformer_tags = TransformerTags(preserves_dtype=[])  # transform: embeddings
        return tags


class CGCNNRegressor(_CGCNNMixin, NeuralNetRegressor):
    """Crystal Graph Convolutional Neural Network regressor.

    Parameters
    ----------
    module : type, default=CGCNN
        The network; its constructor arguments are set with ``module__*`` (``atom_fea_len``,
        ``n_conv``, ``h_fea_len``, ``n_h``, ``dropout``...).
    criterion : type, default=torch.nn.MSELoss
        Loss on the standardised targets.
    optimizer : type, default=torch.optim.AdamW
    lr : float, default=0.002
    max_epochs : int, default=200
        Upper bound on epochs; early stopping on the validation loss usually ends sooner.
    batch_size : int, default=64
    train_split : "auto", None or callable, default="auto"
        "auto": a seeded random 10 % validation split (used by early stopping, which restores
        the best weights); None trains on everything for ``max_epochs``.
    featurizer : CrystalGraphFeaturizer or None, default=None
        How Structures become graphs (None: ``CrystalGraphFeaturizer()``); its parameters are
        reachable as ``featurizer__radius`` etc.
    atom_features : str, path, dict or array, default="cgcnn"
        Element feature table (see :func:`skcgcnn.elements.resolve_atom_features`).
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, the validation split and batch order; the same value gives
        bitwise identical models on the CPU.
    init_from : path, state_dict or None, default=None
        Fine-tuning: start ``fit`` from these pretrained weights (a checkpoint file of the
        original CGCNN or of :func:`~skcgcnn.checkpoints.save_checkpoint`, or a fitted
        estimator's ``module_.state_dict()``) instead of a random initialisation. The architecture
        (``module__*``) and ``atom_features`` must match the pretrained model's; the output layer
        is new when the number of outputs differs. See ``docs/pretrained.md``.
    verbose : int, default=1
        1 prints a line per epoch; 0 is silent.
    device : str, default="cpu"
        Where the network trains and predicts: ``"cpu"``, ``"cuda"`` (``"cuda:1"``...),
        ``"mps"``, or ``"auto"`` (CUDA when available, then MPS, else CPU; the choice is made
        at ``fit`` and stored in ``device_``, while ``get_params`` keeps ``"auto"``).
        Batches are copied to the device asynchronously from pinned memory on CUDA.
    **kwargs
        Any other skorch ``NeuralNet`` argument (``callbacks``, ``warm_start``, ``module__*``,
        ``optimizer__*``, ``callbacks__*``, ``iterator_train__*``...).

    Attributes
    ----------
    module_ : CGCNN
        The trained network.
    featurizer_ : CrystalGraphFeaturizer
        The featurizer used for Structures.
    n_outputs_ : int
        Number of targets.
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        Target standardisation; predictions are returned in the units of y.
    history_ : skorch History
        Per-epoch losses.
    device_ : str
        The device the network is on (what ``device="auto"`` resolved to).

    See Also
    --------
    CGCNNClassifier : the classification counterpart.
    skcgcnn.CrystalGraphFeaturizer : the structure -> graph step.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2, 4.3, 4.4, 4.5)]
    >>> y = [4.0, 4.1, 4.2, 4.3, 4.4, 4.5]
    >>> reg = CGCNNRegressor(max_epochs=3, random_state=0, verbose=0).fit(X, y)
    >>> reg.predict(X).shape
    (6,)
    """

    _is_classification = False

    def __init__(
        self,
        module: type = CGCNN,
        *,
        criterion: type = torch.nn.MSELoss,
        optimizer: type = torch.optim.AdamW,
        lr: float = 0.002,
        max_epochs: int = 200,
        batch_size: int = 64,
        train_split: Any = "auto",
        featurizer: CrystalGraphFeaturizer | None = None,
        atom_features: Any = "cgcnn",
        random_state: Any = None,
        init_from: Any = None,
        verbose: int = 1,
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            verbose=verbose,
            device=device,
            **kwargs,
        )
        self.featurizer = featurizer
        self.atom_features = atom_features
        self.random_state = random_state
        self.init_from = init_from

    def _targets(self, y: Any, n_samples: int) -> np.ndarray:
        y = np.asarray(y)
        if y.dtype == object:
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"y must be numeric for regression: {exc}") from exc
        if not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
            raise ValueError(f"y must be numeric for regression, got dtype {y.dtype}")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        y = y.astype(np.float64)
        bad = ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"y contains NaN or infinity at index {k} ({int(bad.sum())} such rows)"
            )
        return y

    def fit(
        self, X: Any, y: Any, sample_weight: Any = None, **fit_params: Any
    ) -> CGCNNRegressor:
        """Featurize X if needed and train the network on standardised y.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
            A list, 1-D array, pandas Series or one-column DataFrame.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; several columns train one network with several outputs.
        sample_weight : array-like of shape (n_samples,), optional
            Per-sample weights of the loss (training and validation): each batch's loss is
            the mean of ``w_i * loss_i`` with the weights scaled to mean 1 over the training
            data, so a weight of 2 counts a sample twice and 0 ignores it. The target
            standardisation (``y_mean_``, ``y_scale_``) is weighted too.

        Returns
        -------
        self
        """
        graphs, valid = self._fit_graphs(X, y)
        y = self._targets(y, len(valid))[valid]
        if len(graphs) < 2:
            raise ValueError(f"at least 2 samples are needed to fit, got {len(graphs)}")
        weight = None
        if sample_weight is not None:
            weight = _check_sample_weight(sample_weight, len(valid))[valid]
            weight = _check_sample_weight(weight, len(weight))  # not all zero once NaN rows left
        if not (self.warm_start and getattr(self, "initialized_", False)):
            self.y_ndim_ = y.ndim
            y2 = y.reshape(len(y), -1)
            self.n_outputs_ = y2.shape[1]
            self.y_mean_ = np.average(y2, axis=0, weights=weight)
            scale = np.sqrt(np.average((y2 - self.y_mean_) ** 2, axis=0, weights=weight))
            self.y_scale_ = np.where(scale > 0, scale, 1.0)
        scaled = ((y.reshape(len(y), -1) - self.y_mean_) / self.y_scale_).astype(np.float32)
        if weight is None:
            return self._seeded_fit(graphs, scaled, **fit_params)
        dataset = GraphDataset(graphs, scaled, (weight / weight.mean()).astype(np.float32))
        return self._seeded_fit(dataset, scaled, **fit_params)

    def get_loss(
        self, y_pred: torch.Tensor, y_true: Any, X: Any = None, training: bool = False
    ) -> torch.Tensor:
        """skorch's loss; with ``sample_weight``, the mean of the weighted per-sample losses."""
        if not isinstance(y_true, (tuple, list)):
            return super().get_loss(y_pred, y_true, X=X, training=training)
        target, weight = (to_tensor(t, device=self.device) for t in y_true)
        criterion = self.criterion_
        reduction = getattr(criterion, "reduction", None)
        if reduction is None:
            raise TypeError(
                f"sample_weight needs a criterion with a 'reduction' argument (a torch loss); "
                f"{type(criterion).__name__} has none"
            )
        criterion.reduction = "none"
        try:
            losses = criterion(y_pred, target)
        finally:
            criterion.reduction = reduction
        return (losses.reshape(len(losses), -1).mean(dim=1) * weight).mean()

    def partial_fit(self, X: Any, y: Any, classes: Any = None, **fit_params: Any) -> Any:
        """Train for ``max_epochs`` more epochs without re-initialising (as ``warm_start``)."""
        if not getattr(self, "initialized_", False) or not hasattr(self, "n_outputs_"):
            return self.fit(X, y, **fit_params)
        warm_start, self.warm_start = self.warm_start, True
        try:
            return self.fit(X, y, **fit_params)
        finally:
            self.warm_start = warm_start

    def predict(self, X: Any) -> np.ndarray:
        """Predict targets in the units of y.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
            NaN for samples whose structure could not be featurized (``ignore_errors``).
        """
        raw = self._outputs(X).astype(np.float64)
        values = raw * self.y_scale_ + self.y_mean_
        return values[:, 0] if self.y_ndim_ == 1 else values

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of the predictions, as scikit-learn regressors; every sample needs a prediction."""
        from sklearn.metrics import r2_score

        predicted = self.predict(X)
        missing = np.isnan(predicted.reshape(len(predicted), -1)).any(axis=1)
        if missing.any():
            raise ValueError(
                f"{int(missing.sum())} samples could not be featurized (first: "
                f"X[{int(np.flatnonzero(missing)[0])}]) and have NaN predictions; drop them "
                "before scoring"
            )
        return float(r2_score(y, predicted, sample_weight=sample_weight))

    @property
    def predict_proba(self) -> Any:  # noqa: D102 - hidden: hasattr() is False, as for sklearn
        raise AttributeError("CGCNNRegressor has no predict_proba")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class CGCNNClassifier(_CGCNNMixin, NeuralNetClassifier):
    """Crystal Graph Convolutional Neural Network classifier.

    Any number of classes, labels of any type (strings included); ``predict_proba`` columns
    follow ``classes_``.

    Parameters
    ----------
    module : type, default=CGCNN
        The network; set its arguments with ``module__*``.
    criterion : type, default=torch.nn.CrossEntropyLoss
    optimizer : type, default=torch.optim.AdamW
    lr : float, default=0.002
    max_epochs : int, default=200
    batch_size : int, default=64
    train_split : "auto", None or callable, default="auto"
        "auto": a seeded, stratified 10 % validation split used by early stopping.
    classes : array-like or None, default=None
        All class labels, if y of one fit may not show every class.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in scikit-learn.
    featurizer, atom_features, random_state, init_from, verbose, device, **kwargs
        As for :class:`CGCNNRegressor`.

    Attributes
    ----------
    classes_ : ndarray
        Class labels, in the order of ``predict_proba``'s columns.
    module_, featurizer_, history_, device_
        As for :class:`CGCNNRegressor`.

    See Also
    --------
    CGCNNRegressor

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNClassifier
    >>> X = [Structure(Lattice.cubic(a), [el, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.2, 4.4) for el in ("Cs", "Na")]
    >>> y = ["cs", "na"] * 3
    >>> clf = CGCNNClassifier(max_epochs=3, random_state=0, verbose=0).fit(X, y)
    >>> clf.classes_.tolist(), clf.predict_proba(X).shape
    (['cs', 'na'], (6, 2))
    """

    _is_classification = True

    @property
    def _default_callbacks(self) -> list[tuple[str, Callback | None]]:
        return [
            (name, EpochScoring(_encoded_accuracy, name="valid_acc", lower_is_better=False))
            if name == "valid_acc" else (name, callback)
            for name, callback in super()._default_callbacks
        ]

    def __init__(
        self,
        module: type = CGCNN,
        *,
        criterion: type = torch.nn.CrossEntropyLoss,
        optimizer: type = torch.optim.AdamW,
        lr: float = 0.002,
        max_epochs: int = 200,
        batch_size: int = 64,
        train_split: Any = "auto",
        classes: Any = None,
        class_weight: Any = None,
        featurizer: CrystalGraphFeaturizer | None = None,
        atom_features: Any = "cgcnn",
        random_state: Any = None,
        init_from: Any = None,
        verbose: int = 1,
        device: str = "cpu",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            classes=classes,
            verbose=verbose,
            device=device,
            **kwargs,
        )
        self.class_weight = class_weight
        self.featurizer = featurizer
        self.atom_features = atom_features
        self.random_state = random_state
        self.init_from = init_from

    @property
    def classes_(self) -> np.ndarray:
        try:
            return self.label_encoder_.classes_
        except AttributeError:
            raise AttributeError(
                f"This {type(self).__name__} is not fitted yet, so it has no classes_"
            ) from None

    def _stratify(self, y: np.ndarray) -> bool:
        counts = np.bincount(y)
        return bool((counts[counts > 0] >= 2).all()) and len(y) * VALID_FRACTION >= len(counts)

    def _encode(self, y: Any) -> np.ndarray:
        raw = np.asarray(y, dtype=object)  # before numpy turns ["a", 1, nan] into strings
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y, raw = y[:, 0], raw[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D for classification, got shape {y.shape}")
        missing = pd.isna(raw)
        if missing.any():
            raise ValueError(f"y contains a missing value (NaN/None) at index "
                             f"{int(np.flatnonzero(missing)[0])}")
        is_str = np.array([isinstance(v, (str, bytes)) for v in raw], dtype=bool)
        if is_str.any() and not is_str.all():
            k = int(np.flatnonzero(is_str != is_str[0])[0])
            raise ValueError(
                f"y mixes label types: y[0] is {type(raw[0]).__name__} and y[{k}] is "
                f"{type(raw[k]).__name__}; use one type for all labels"
            )
        if not (self.warm_start and getattr(self, "initialized_", False)):
            encoder = LabelEncoder()
            encoder.fit(y if self.classes is None else np.asarray(self.classes))
            if len(encoder.classes_) < 2:
                raise ValueError(
                    f"y has only one class ({encoder.classes_.tolist()[0]!r}); a classifier "
                    "needs at least 2 classes"
                )
            self.label_encoder_ = encoder
            self.n_outputs_ = len(encoder.classes_)
        unknown = ~np.isin(y, self.label_encoder_.classes_)
        if unknown.any():
            raise ValueError(f"y[{int(np.flatnonzero(unknown)[0])}] is not one of the classes "
                             f"{self.label_encoder_.classes_.tolist()}")
        return self.label_encoder_.transform(y).astype(np.int64)

    def initialize_criterion(self) -> Any:
        kwargs = self.get_params_for("criterion")
        if self.class_weight is not None and "weight" not in kwargs:
            classes = np.arange(self.n_outputs_)
            y = getattr(self, "_y_encoded", classes)
            class_weight = self.class_weight
            if isinstance(class_weight, dict):  # keyed by the user's labels; the loss sees codes
                labels = self.classes_.tolist()
                unknown = [key for key in class_weight if key not in labels]
                if unknown:
                    raise ValueError(
                        f"class_weight has labels {unknown} that are not classes: {labels}"
                    )
                class_weight = {code: class_weight[label] for code, label in enumerate(labels)
                                if label in class_weight}
            weights = compute_class_weight(class_weight, classes=classes, y=y)
            kwargs["weight"] = torch.as_tensor(weights, dtype=torch.float32, device=self.device)
        self.criterion_ = self.initialized_instance(self.criterion, kwargs)
        return self

    def fit(self, X: Any, y: Any, **fit_params: Any) -> CGCNNClassifier:
        """Featurize X if needed and train on the encoded labels.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
        y : array-like of shape (n_samples,)
            Class labels of any type.

        Returns
        -------
        self
        """
        if fit_params.get("sample_weight") is not None:
            raise TypeError(
                "CGCNNClassifier does not support sample_weight (skorch's accuracy scoring "
                "cannot carry it); weight classes with class_weight, or resample the data"
            )
        fit_params.pop("sample_weight", None)
        graphs, valid = self._fit_graphs(X, y)
        y = self._encode(y)[valid]
        if len(graphs) < 2:
            raise ValueError(f"at least 2 samples are needed to fit, got {len(graphs)}")
        self._y_encoded = y
        try:
            return self._seeded_fit(graphs, y, **fit_params)
        finally:
            del self._y_encoded

    def partial_fit(self, X: Any, y: Any, classes: Any = None, **fit_params: Any) -> Any:
        """Train for ``max_epochs`` more epochs without re-initialising (as ``warm_start``)."""
        if not getattr(self, "initialized_", False) or not hasattr(self, "n_outputs_"):
            return self.fit(X, y, **fit_params)
        warm_start, self.warm_start = self.warm_start, True
        try:
            return self.fit(X, y, **fit_params)
        finally:
            self.warm_start = warm_start

    def check_data(self, X: Any, y: Any) -> None:
        """Labels are validated and encoded in :meth:`fit`; nothing to infer here."""

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_`` (NaN rows for failed samples)."""
        logits = torch.as_tensor(self._outputs(X))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label for each sample."""
        proba = self.predict_proba(X)
        missing = np.isnan(proba).any(axis=1)
        if missing.any():
            raise ValueError(
                f"{int(missing.sum())} samples could not be featurized (first: "
                f"X[{int(np.flatnonzero(missing)[0])}]) and have no class; use predict_proba, "
                "which gives NaN rows for them, or drop them"
            )
        return self.classes_[proba.argmax(axis=1)]
