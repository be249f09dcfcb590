"""scikit-learn estimators around the CGCNN module, built on skorch.

:class:`CGCNNRegressor` and :class:`CGCNNClassifier` take pymatgen Structures (featurized inside
with their ``featurizer``) or precomputed :class:`~skcgcnn.graph.CrystalGraph`\\ s, and behave like
any scikit-learn estimator: ``fit``/``predict``/``score``, ``clone``, ``GridSearchCV`` over every
constructor argument (including skorch's ``module__*``, ``optimizer__*``, ``callbacks__*`` and
``featurizer__*``), pickling.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from pymatgen.core import Structure
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from skorch import NeuralNet, NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EarlyStopping, LRScheduler
from skorch.dataset import ValidSplit
from torch.utils.data import Dataset

from .batch import GraphBatch, collate
from .elements import resolve_atom_features
from .featurizer import CrystalGraphFeaturizer
from .graph import CrystalGraph
from .model import CGCNN

__all__ = ["CGCNNClassifier", "CGCNNRegressor", "GraphDataset"]

#: Validation fraction of the default ``train_split="auto"``.
VALID_FRACTION = 0.1


class GraphDataset(Dataset):
    """A torch ``Dataset`` of crystal graphs and optional targets.

    Parameters
    ----------
    graphs : sequence of CrystalGraph
    y : array-like of shape (n_samples, ...), optional

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn.graph import build_graph
    >>> po = build_graph(Structure(Lattice.cubic(3.35), ["Po"], [[0, 0, 0]]))
    >>> ds = GraphDataset([po, po], [0.5, 1.5])
    >>> len(ds), ds[1][1]
    (2, 1.5)
    """

    def __init__(self, graphs: Sequence[CrystalGraph], y: Any = None) -> None:
        self.graphs = graphs
        self.y = y

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, i: int) -> tuple[CrystalGraph, Any]:
        return self.graphs[i], None if self.y is None else self.y[i]


class StopOnNonFiniteLoss(Callback):
    """Stop training with a clear error when the training loss becomes NaN or infinite."""

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        loss = net.history[-1].get("train_loss", 0.0)
        if not math.isfinite(loss):
            epoch = net.history[-1]["epoch"]
            raise FloatingPointError(
                f"training loss became {loss} at epoch {epoch}; lower the learning rate "
                "(lr), check the targets for extreme values, or use gradient clipping"
            )


class EarlyStoppingIfValidated(EarlyStopping):
    """skorch's ``EarlyStopping`` that does nothing when there is no validation data."""

    def on_epoch_end(self, net: NeuralNet, **kwargs: Any) -> None:
        if self.monitor in net.history[-1]:
            super().on_epoch_end(net, **kwargs)

    def on_train_end(self, net: NeuralNet, **kwargs: Any) -> None:
        if self.load_best and self.best_model_weights_ is not None:
            super().on_train_end(net, **kwargs)


def _seed_from(random_state: Any) -> int | None:
    """An int seed from a ``random_state`` parameter (None stays None)."""
    if random_state is None:
        return None
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _entries(X: Any) -> list[Any]:
    """The samples of X as a list, from a list, array, Series or one-column DataFrame."""
    if X is None:
        raise ValueError("X is None; expected a sequence of pymatgen Structures or CrystalGraphs")
    if isinstance(X, (Structure, CrystalGraph)):
        raise ValueError(
            f"X is a single {type(X).__name__}; pass a sequence of them, e.g. [structure]"
        )
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 1:
            X = X.iloc[:, 0]
        elif "crystal_graph" in X.columns:
            X = X["crystal_graph"]
        elif "structure" in X.columns:
            X = X["structure"]
        else:
            raise ValueError(
                "X is a DataFrame with several columns and no 'crystal_graph' or 'structure' "
                f"column: {list(X.columns)[:10]}"
            )
    if isinstance(X, pd.Series):
        X = X.to_numpy()
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(
                f"X must be 1-D (one structure or graph per sample), got shape {X.shape}"
            )
    elif not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise ValueError(
            f"X must be a sequence of Structures or CrystalGraphs, got {type(X).__name__}"
        )
    entries = [x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x for x in X]
    if not entries:
        raise ValueError("X is empty: at least one sample is required")
    return entries


def _is_missing(entry: Any) -> bool:
    return isinstance(entry, float) and math.isnan(entry)


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
                    T_max=max(int(self.max_epochs), 1),
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
            elif isinstance(entry, Structure):
                to_featurize.append(i)
            elif _is_missing(entry):
                graphs[i] = math.nan
            else:
                raise ValueError(
                    f"X[{i}] is a {type(entry).__name__}; expected a pymatgen Structure or a "
                    "CrystalGraph"
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
        kwargs.setdefault("collate_fn", collate)
        if training:
            kwargs.setdefault("shuffle", True)
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
        self.module_ = module
        return self

    def _seeded_fit(self, graphs: np.ndarray, y: np.ndarray, **fit_params: Any) -> Any:
        seed = _seed_from(self.random_state)
        devices = [torch.cuda.current_device()] if str(self.device).startswith("cuda") else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            if not (self.warm_start and self.initialized_):
                self.initialize()
            NeuralNet.partial_fit(self, graphs, y, **fit_params)
        return self

    def _check_fitted(self) -> None:
        if not getattr(self, "initialized_", False) or not hasattr(self, "n_outputs_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' first."
            )

    def _run_module(self, graphs: np.ndarray, method: str = "forward") -> np.ndarray:
        """Apply ``module_.<method>`` to graphs in eval mode, batch by batch, on the CPU."""
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
        graphs, valid = self._to_graphs(X, fitting=True)
        if y is None:
            raise ValueError("y is None; a target is required to fit")
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

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.structured = True
        tags.non_deterministic = self.random_state is None
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
    verbose : int, default=1
        1 prints a line per epoch; 0 is silent.
    device : str, default="cpu"
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

    def fit(self, X: Any, y: Any, **fit_params: Any) -> CGCNNRegressor:
        """Featurize X if needed and train the network on standardised y.

        Parameters
        ----------
        X : sequence of Structure or CrystalGraph
            A list, 1-D array, pandas Series or one-column DataFrame.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets; several columns train one network with several outputs.

        Returns
        -------
        self
        """
        graphs, valid = self._fit_graphs(X, y)
        y = self._targets(y, len(valid))[valid]
        if len(graphs) < 2:
            raise ValueError(f"at least 2 samples are needed to fit, got {len(graphs)}")
        if not (self.warm_start and getattr(self, "initialized_", False)):
            self.y_ndim_ = y.ndim
            y2 = y.reshape(len(y), -1)
            self.n_outputs_ = y2.shape[1]
            self.y_mean_ = y2.mean(axis=0)
            scale = y2.std(axis=0)
            self.y_scale_ = np.where(scale > 0, scale, 1.0)
        scaled = ((y.reshape(len(y), -1) - self.y_mean_) / self.y_scale_).astype(np.float32)
        return self._seeded_fit(graphs, scaled, **fit_params)

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

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: D102 - not meaningful for regression
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
    featurizer, atom_features, random_state, verbose, device, **kwargs
        As for :class:`CGCNNRegressor`.

    Attributes
    ----------
    classes_ : ndarray
        Class labels, in the order of ``predict_proba``'s columns.
    module_, featurizer_, history_
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
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D for classification, got shape {y.shape}")
        missing = pd.isna(y)
        if missing.any():
            raise ValueError(f"y contains a missing value (NaN/None) at index "
                             f"{int(np.flatnonzero(missing)[0])}")
        kinds = {type(v).__name__ for v in y.tolist()}
        if y.dtype == object and len(kinds - {"int", "bool"}) > 1 and "str" in kinds:
            raise ValueError(f"y mixes label types {sorted(kinds)}; use one type for all labels")
        if not (self.warm_start and getattr(self, "initialized_", False)):
            encoder = LabelEncoder()
            encoder.fit(y if self.classes is None else np.asarray(self.classes))
            if len(encoder.classes_) < 2:
                raise ValueError(
                    f"y has only one class ({encoder.classes_[0]!r}); a classifier needs at "
                    "least 2 classes"
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
            weights = compute_class_weight(self.class_weight, classes=classes, y=y)
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
        if np.isnan(proba).any():
            raise ValueError(
                "some samples could not be featurized; use predict_proba, which gives NaN rows "
                "for them"
            )
        return self.classes_[proba.argmax(axis=1)]
