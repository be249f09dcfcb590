"""The targets y of the estimators (private): checked, standardised, label-encoded.

What :class:`~skcgcnn.estimators.CGCNNRegressor` and :class:`~skcgcnn.estimators.CGCNNClassifier`
do with y before training, as functions of y alone (numpy and scikit-learn, no torch); the
estimators keep the fitted results (``y_mean_``, ``y_scale_``, ``label_encoder_``,
``class_weight_``):

* regression: :func:`regression_targets` (numeric, finite, 1-D or 2-D, as float64) and
  :func:`standardisation` (the weighted mean and standard deviation the network's outputs are
  scaled by);
* classification: :func:`class_labels` (one label per sample, no missing value, one label type),
  :func:`fit_label_encoder` (the classes, from ``classes`` or from y; continuous values and a
  single class refused), :func:`encode_labels` and :func:`class_weights` (``class_weight`` as one
  weight per encoded class).

Errors name the first offending index, in scikit-learn's wording where it has one.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import DataConversionWarning
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import type_of_target


# ------------------------------------------------------------------------------- regression
def regression_targets(y: Any) -> np.ndarray:
    """y as a float64 array of shape (n,) or (n, n_targets); non-numeric or non-finite refused."""
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


def standardisation(y2: np.ndarray, weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-column (weighted) mean and standard deviation of y2 (n, n_targets); a constant
    column gets the scale 1."""
    mean = np.average(y2, axis=0, weights=weight)
    scale = np.sqrt(np.average((y2 - mean) ** 2, axis=0, weights=weight))
    return mean, np.where(scale > 0, scale, 1.0)


# ------------------------------------------------------------------------------- classification
def class_labels(y: Any) -> np.ndarray:
    """y as a 1-D array of labels: a column vector is flattened (with scikit-learn's
    ``DataConversionWarning``); a missing value or labels of mixed types are refused."""
    raw = np.asarray(y, dtype=object)  # before numpy turns ["a", 1, nan] into strings
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the "
            "shape of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=5,  # the frame of the estimator's fit, as when this was its method
        )
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
    return y


def fit_label_encoder(y: np.ndarray, classes: Any = None) -> LabelEncoder:
    """The encoder of the classes: ``classes`` when given, else those of y (which must not look
    like continuous values); at least 2 classes."""
    if classes is None and type_of_target(y).startswith("continuous"):
        raise ValueError(
            f"y looks like continuous values ({len(np.unique(y))} distinct floats); a "
            "classifier needs class labels: for numbers to predict use CGCNNRegressor"
        )
    encoder = LabelEncoder().fit(y if classes is None else np.asarray(classes))
    if len(encoder.classes_) < 2:
        raise ValueError(
            f"y has only one class ({encoder.classes_.tolist()[0]!r}); a classifier "
            "needs at least 2 classes"
        )
    return encoder


def encode_labels(y: np.ndarray, encoder: LabelEncoder) -> np.ndarray:
    """The codes 0..n_classes-1 of the labels y (int64); a label that is not a class refused."""
    unknown = ~np.isin(y, encoder.classes_)
    if unknown.any():
        raise ValueError(f"y[{int(np.flatnonzero(unknown)[0])}] is not one of the classes "
                         f"{encoder.classes_.tolist()}")
    return encoder.transform(y).astype(np.int64)


def class_weights(class_weight: Any, classes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``class_weight`` (``"balanced"`` or a dict keyed by the user's labels) as one weight per
    encoded class, computed on the codes of the training labels."""
    if isinstance(class_weight, dict):  # keyed by the user's labels; the loss sees codes
        labels = np.asarray(classes).tolist()
        unknown = [key for key in class_weight if key not in labels]
        if unknown:
            raise ValueError(
                f"class_weight has labels {unknown} that are not classes: {labels}"
            )
        class_weight = {code: class_weight[label] for code, label in enumerate(labels)
                        if label in class_weight}
    return compute_class_weight(class_weight, classes=np.arange(len(classes)), y=codes)
