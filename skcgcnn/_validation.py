"""Input validation shared by the estimators (private)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pymatgen.core import Site, Structure
from sklearn.utils import check_random_state
from torch.utils.data import Dataset

from .featurizer import _unwrap_row
from .graph import CrystalGraph


def _sample_weights(sample_weight: Any, n_samples: int) -> np.ndarray:
    """``sample_weight`` as float64 of shape (n_samples,) (a scalar is repeated), checked to be
    finite, non-negative and not all zero."""
    weight = np.asarray(sample_weight, dtype=np.float64)
    if weight.ndim == 0:
        weight = np.full(n_samples, float(weight))
    if weight.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) like X, got {weight.shape}"
        )
    if not np.isfinite(weight).all() or (weight < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    if not weight.sum() > 0:
        raise ValueError("sample_weight sums to zero: no sample would be learned from")
    return weight


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
    if sp.issparse(X):
        raise TypeError(
            "sparse input is not supported: X must be a sequence of Structures or CrystalGraphs"
        )
    if isinstance(X, Dataset):  # e.g. skorch's validation Subset, scored by EpochScoring
        X = [X[i][0] for i in range(len(X))]
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
        if X.ndim >= 2 and X.dtype == object and X.size and isinstance(X.flat[0], Site):
            raise ValueError(
                f"X is an array of shape {X.shape} whose entries are sites: numpy split each "
                f"Structure into its {X.shape[1]} sites, because all structures have the same "
                "number of sites (np.array(structures, dtype=object) does that). Pass the "
                "structures as a list, a pandas Series (df['structure']) or a 1-D object array "
                "(df['structure'].to_numpy())"
            )
        if X.ndim != 1:
            raise ValueError(
                f"X must be 1-D (one structure or graph per sample), got shape {X.shape}"
            )
    elif not isinstance(X, Sequence) or isinstance(X, (str, bytes)):
        raise ValueError(
            f"X must be a sequence of Structures or CrystalGraphs, got {type(X).__name__}"
        )
    entries = [_unwrap_row(x) for x in X]
    if not entries:
        raise ValueError("X is empty: at least one sample is required")
    return entries


def _is_missing(entry: Any) -> bool:
    """NaN (what matminer's ``ignore_errors`` leaves) or None (a missing object in pandas)."""
    return entry is None or (isinstance(entry, float) and math.isnan(entry))


def _labels(X: Any, n_samples: int) -> list[Any] | None:
    """The index labels of a pandas ``X`` (None for other inputs and for a default index,
    whose labels are the positions)."""
    index = getattr(X, "index", None)
    if not isinstance(X, (pd.Series, pd.DataFrame)) or len(index) != n_samples:
        return None
    if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
        return None
    return list(index)


def _where(position: int, labels: list[Any] | None) -> str:
    """``X[3]``, or ``X[3] (label 'mb-perovskites-00019')`` when X has index labels."""
    if labels is None:
        return f"X[{position}]"
    return f"X[{position}] (label {labels[position]!r})"


def _check_all_featurized(outputs: np.ndarray, consequence: str) -> None:
    """Raise if a row of ``outputs`` is NaN (a sample that could not be featurized)."""
    missing = np.isnan(outputs.reshape(len(outputs), -1)).any(axis=1)
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} samples could not be featurized (first: "
            f"X[{int(np.flatnonzero(missing)[0])}]) and {consequence}"
        )
