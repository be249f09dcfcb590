"""scikit-learn estimators around the CGCNN module, built on skorch.

:class:`CGCNNRegressor` and :class:`CGCNNClassifier` take pymatgen Structures (featurized inside
with their ``featurizer``) or precomputed :class:`~skcgcnn.graph.CrystalGraph`\\ s, and behave like
any scikit-learn estimator: ``fit``/``predict``/``score``, ``clone``, ``GridSearchCV`` over every
constructor argument (including skorch's ``module__*``, ``optimizer__*``, ``callbacks__*`` and
``featurizer__*``), pickling.

This module holds what differs between the two (target scaling, label encoding; the functions
that check, standardise and encode y are in :mod:`skcgcnn._targets`); what they share is in
:mod:`skcgcnn._mixin`, the data path in :mod:`skcgcnn.batch` and the runtime (RNG, devices,
weighted loss) in :mod:`skcgcnn._runtime`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import StrOptions
from skorch import NeuralNetClassifier, NeuralNetRegressor
from skorch.callbacks import Callback, EpochScoring

from ._mixin import VALID_FRACTION, _CGCNNMixin
from ._output import document_skorch_defaults
from ._targets import (
    class_labels,
    class_weights,
    encode_labels,
    fit_label_encoder,
    regression_targets,
    standardisation,
)
from ._validation import _check_all_featurized, _sample_weights
from .batch import GraphDataset, graph_dataset
from .featurizer import CrystalGraphFeaturizer
from .model import CGCNN

__all__ = ["CGCNNClassifier", "CGCNNRegressor", "GraphDataset"]


def _encoded_accuracy(net: Any, X: Any, y: Any) -> float:
    """Validation accuracy on the encoded labels skorch holds (``predict`` returns user labels)."""
    return float(np.mean(net.predict_proba(X).argmax(axis=1) == np.asarray(y)))


@document_skorch_defaults
class CGCNNRegressor(_CGCNNMixin, NeuralNetRegressor):
    """Crystal Graph Convolutional Neural Network regressor.

    Parameters
    ----------
    module : type, default=CGCNN
        The network; its constructor arguments are set with ``module__*`` (``atom_fea_len``,
        ``n_conv``, ``h_fea_len``, ``n_h``, ``dropout``...).
    criterion : type, default=torch.nn.L1Loss
        Loss on the standardised targets. The default, the mean absolute error, is minimised
        by the conditional median and matches the metric materials benchmarks report (MAE);
        ``torch.nn.MSELoss`` is the original CGCNN's loss (the conditional mean, a lower
        RMSE). On 1,000 training structures L1 gave lower test MAEs on most shared tasks
        (``docs/benchmarks.md``, "Small data").
    optimizer : type, default=torch.optim.AdamW
    lr : float, default=0.002
    max_epochs : int, default=200
        Upper bound on epochs. The rate stays at ``lr`` until the validation loss plateaus
        (20 epochs without improvement), then anneals to zero, starting from the best epoch's
        weights, over half as many epochs as were trained, and training stops
        (``callbacks__lr_scheduler``, an :class:`~skcgcnn.callbacks.AnnealOnPlateau`); without
        validation data the anneal takes the last third of ``max_epochs``.
    batch_size : int, default=64
    train_split : "auto", None or callable, default="auto"
        "auto": a seeded random 10 % validation split (used by early stopping, which keeps
        the best annealed epoch's weights); None trains on everything for ``max_epochs``.
    featurizer : CrystalGraphFeaturizer or None, default=None
        How Structures become graphs (None: ``CrystalGraphFeaturizer()``, or with ``init_from``
        the pretrained model's radius and neighbours); its parameters are reachable as
        ``featurizer__radius`` etc.
    atom_features : str, path, dict, array or None, default=None
        Element feature table (see :func:`skcgcnn.elements.resolve_atom_features`): ``"cgcnn"``
        (one-hot), ``"magpie"`` (matminer's Magpie properties, dense), a file, dict or array.
        None: the table that comes with ``init_from``, else the built-in ``"cgcnn"`` encoding.
    random_state : int, RandomState or None, default=None
        Seeds weight initialisation, the validation split and batch order; the same value gives
        bitwise identical models on the CPU.
    init_from : str, path, fitted estimator or None, default=None
        Fine-tuning: ``fit`` starts from these pretrained weights instead of a random
        initialisation -- a pretrained model's name (:func:`skcgcnn.pretrained.list_models`), a
        checkpoint file (original CGCNN or :func:`~skcgcnn.checkpoints.save_checkpoint`) or a
        fitted skcgcnn estimator (kept as is by ``clone``). The architecture (``module__*``),
        element table and graph settings left unset are the pretrained model's; set, they must
        match. The output layer is new when the number of outputs differs. The target
        normaliser is fitted to the new y. Models loaded with ``pretrained.load`` or
        ``load_checkpoint`` have it set to their source. See ``docs/pretrained.md``.
    freeze : "body", list of str or None, default=None
        With ``init_from``: parameters that keep their pretrained values. "body" is the
        embedding and the convolutions (``["embedding.*", "convs.*"]``, the same as skorch's
        ``Freezer`` with these patterns and ``skcgcnn train --freeze``).
    verbose : "auto", int, default="auto"
        "auto" prints the epoch table (with a legend of its columns, the validation error in
        the units of y among them) for a fit a person watches: called from a terminal,
        IPython or Jupyter, and not inside a cross-validation, search or other scikit-learn
        meta-estimator. 1 always prints, 0 never does. Colour codes go to terminals only.
    device : str, default="cpu"
        Where the network trains and predicts: ``"cpu"``, ``"cuda"`` (``"cuda:1"``...),
        ``"mps"``, or ``"auto"`` (CUDA when available, then MPS, else CPU; the choice is made
        at ``fit`` and stored in ``device_``, while ``get_params`` keeps ``"auto"``).
        Batches are copied to the device asynchronously from pinned memory on CUDA.
    compile : bool, default=False
        Opt-in: train and predict through ``torch.compile`` (inductor, dynamic shapes). The
        compiled code is shared by all estimators of a process, so it is compiled once per
        process (and architecture, thread count, training/prediction), not per fit or fold;
        ``module_`` stays a plain :class:`~skcgcnn.model.CGCNN`. Where inductor is unavailable
        (no C++ compiler...), a ``CompileFallbackWarning`` names the reason and the model runs
        eagerly. ``compile__*`` options are not used. See ``docs/performance.md``.
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
    seen_elements_ : ndarray of str
        The elements of the training data (with those of the pretrained model when it records
        them); predicting for others raises an :class:`~skcgcnn.UnseenElementWarning`.

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
        criterion: type = torch.nn.L1Loss,
        optimizer: type = torch.optim.AdamW,
        lr: float = 0.002,
        max_epochs: int = 200,
        batch_size: int = 64,
        train_split: Any = "auto",
        featurizer: CrystalGraphFeaturizer | None = None,
        atom_features: Any = None,
        random_state: Any = None,
        init_from: Any = None,
        freeze: Any = None,
        verbose: int | str = "auto",
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
            featurizer=featurizer,
            atom_features=atom_features,
            random_state=random_state,
            init_from=init_from,
            freeze=freeze,
            verbose=verbose,
            device=device,
            **kwargs,
        )

    def _targets(self, y: Any, warm: bool) -> np.ndarray:
        return regression_targets(y)

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
        return self._fit(X, y, warm=self._warm_start(), sample_weight=sample_weight, **fit_params)

    def _training_data(
        self, graphs: np.ndarray, y: np.ndarray, valid: np.ndarray, warm: bool, fit_params: dict
    ) -> tuple[Any, np.ndarray]:
        """Standardised float32 targets (the statistics are kept when ``warm``) and the data to
        train on: the graphs, or a weighted :class:`GraphDataset` (``sample_weight`` is taken
        out of ``fit_params``)."""
        sample_weight = fit_params.pop("sample_weight", None)
        weight = None
        if sample_weight is not None:
            weight = _sample_weights(sample_weight, len(valid))[valid]
            weight = _sample_weights(weight, len(weight))  # not all zero once NaN rows left
        if not warm:
            self.y_ndim_ = y.ndim
            y2 = y.reshape(len(y), -1)
            self.n_outputs_ = y2.shape[1]
            self.y_mean_, self.y_scale_ = standardisation(y2, weight)
        scaled = ((y.reshape(len(y), -1) - self.y_mean_) / self.y_scale_).astype(np.float32)
        if weight is None:
            return graphs, scaled
        weights = (weight / weight.mean()).astype(np.float32)
        return graph_dataset(graphs, scaled, weights), scaled

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
        _check_all_featurized(predicted, "have NaN predictions; drop them before scoring")
        return float(r2_score(y, predicted, sample_weight=sample_weight))

    @property
    def predict_proba(self) -> Any:  # hidden: hasattr() is False, as for sklearn regressors
        raise AttributeError("CGCNNRegressor has no predict_proba")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


@document_skorch_defaults
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
    featurizer, atom_features, random_state, init_from, freeze, verbose, device, compile,
    **kwargs
        As for :class:`CGCNNRegressor`.

    Attributes
    ----------
    classes_ : ndarray
        Class labels, in the order of ``predict_proba``'s columns.
    class_weight_ : ndarray of shape (n_classes,)
        The weight of each class in the loss (with ``class_weight`` set).
    module_, featurizer_, history_, device_, seen_elements_
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
    _parameter_constraints: dict = {
        **_CGCNNMixin._parameter_constraints,
        "classes": ["array-like", None],
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

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
        atom_features: Any = None,
        random_state: Any = None,
        init_from: Any = None,
        freeze: Any = None,
        verbose: int | str = "auto",
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
            featurizer=featurizer,
            atom_features=atom_features,
            random_state=random_state,
            init_from=init_from,
            freeze=freeze,
            verbose=verbose,
            device=device,
            **kwargs,
        )
        self.class_weight = class_weight

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

    def _targets(self, y: Any, warm: bool) -> np.ndarray:
        """Labels validated and encoded as 0..n_classes-1 (the encoder is kept when ``warm``)."""
        y = class_labels(y)
        if not warm:
            classes = getattr(self, "_partial_fit_classes", None)
            self.label_encoder_ = fit_label_encoder(
                y, self.classes if classes is None else classes)
            self.n_outputs_ = len(self.label_encoder_.classes_)
        return encode_labels(y, self.label_encoder_)

    def _training_data(
        self, graphs: np.ndarray, y: np.ndarray, valid: np.ndarray, warm: bool, fit_params: dict
    ) -> tuple[np.ndarray, np.ndarray]:
        """The graphs and encoded labels; ``class_weight_`` from the training labels."""
        if not warm and self.class_weight is not None:
            self.class_weight_ = self._class_weights(y)
        return graphs, y

    def _class_weights(self, y: np.ndarray) -> np.ndarray:
        """``class_weight`` as one weight per encoded class, computed on the codes ``y``."""
        return class_weights(self.class_weight, self.classes_, y)

    def initialize_criterion(self) -> Any:
        kwargs = self.get_params_for("criterion")
        if self.class_weight is not None and "weight" not in kwargs:
            weights = getattr(self, "class_weight_", None)
            if weights is None:  # initialized without training labels (load_checkpoint)
                weights = self._class_weights(np.arange(self.n_outputs_))
            kwargs["weight"] = torch.as_tensor(weights, dtype=torch.float32, device=self._device())
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
        return self._fit(X, y, warm=self._warm_start(), **fit_params)

    def _fit(self, X: Any, y: Any, warm: bool, **fit_params: Any) -> CGCNNClassifier:
        if fit_params.pop("sample_weight", None) is not None:
            raise TypeError(
                "CGCNNClassifier does not support sample_weight (skorch's accuracy scoring "
                "cannot carry it); weight classes with class_weight, or resample the data"
            )
        return super()._fit(X, y, warm=warm, **fit_params)

    def partial_fit(self, X: Any, y: Any, classes: Any = None, **fit_params: Any) -> Any:
        """Train for ``max_epochs`` more epochs, continuing from the current weights (a first
        call fits as ``fit``).

        Parameters
        ----------
        X, y
            As for :meth:`fit`.
        classes : array-like, optional
            All class labels, as in scikit-learn's ``partial_fit``: on the first call they set
            ``classes_`` (so a first batch need not show every class); on later calls they must
            equal ``classes_``. They must agree with the ``classes`` parameter when that is set.

        Returns
        -------
        self
        """
        first = not (self._fitted() or (self.warm_start and getattr(self, "initialized_", False)))
        if classes is not None:
            given = np.unique(np.asarray(classes))
            expected = (self.classes_ if not first
                        else None if self.classes is None else np.unique(np.asarray(self.classes)))
            if expected is not None and not np.array_equal(given, expected):
                raise ValueError(
                    f"classes={np.asarray(classes).tolist()} differ from the classifier's "
                    f"classes {expected.tolist()} (partial_fit's classes must stay the same)"
                )
        if not (first and classes is not None):
            return super().partial_fit(X, y, **fit_params)
        self._partial_fit_classes = np.asarray(classes)
        try:
            return super().partial_fit(X, y, **fit_params)
        finally:
            del self._partial_fit_classes

    def check_data(self, X: Any, y: Any) -> None:
        """Labels are validated and encoded in :meth:`fit`; nothing to infer here."""

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns ordered as ``classes_`` (NaN rows for failed samples)."""
        logits = torch.as_tensor(self._outputs(X))
        return torch.softmax(logits.double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class label for each sample."""
        proba = self.predict_proba(X)
        _check_all_featurized(proba, "have no class; use predict_proba, which gives NaN rows "
                                     "for them, or drop them")
        return self.classes_[proba.argmax(axis=1)]
