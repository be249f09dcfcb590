"""What the estimators show scikit-learn tools (private): feature names, pandas output, repr.

- :class:`OutputMixin` gives the estimators ``get_feature_names_out`` (the crystal embeddings
  of ``transform``: ``cgcnnregressor0``, ``cgcnnregressor1``, ...) and, through scikit-learn's
  ``TransformerMixin``, ``set_output(transform="pandas")`` and ``fit_transform``; its
  ``__repr__`` is scikit-learn's (the parameters that differ from their defaults), not skorch's
  (the torch module tree).
- :func:`full_signature` is the signature of an estimator's ``__init__`` with the skorch
  parameters it passes on through ``**kwargs`` (``iterator_train``, ``warm_start``, ...), so
  scikit-learn's repr, inside a ``Pipeline`` too, knows their defaults and leaves them out.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class OutputMixin(TransformerMixin):
    """Feature names, ``set_output`` and scikit-learn's repr for the skorch-based estimators."""

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the columns of :meth:`transform`: ``<class name in lower case><i>``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored (X is crystals, whatever its column is called); accepted so that
            ``Pipeline`` and ``ColumnTransformer`` can chain feature names.

        Returns
        -------
        ndarray of str, shape (n_embedding_features,)
        """
        from sklearn.exceptions import NotFittedError

        if not self.__sklearn_is_fitted__():
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' first."
            )
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.n_embedding_features_)],
                          dtype=object)

    @property
    def n_embedding_features_(self) -> int:
        """Width of the crystal embeddings that :meth:`transform` returns."""
        module = self.module_
        width = getattr(module, "atom_fea_len", None)
        if width is None:
            width = module.embedding.out_features
        return int(width)

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:  # noqa: N803 - scikit-learn's name
        return BaseEstimator.__repr__(self, N_CHAR_MAX=N_CHAR_MAX)


def full_signature(cls: type) -> inspect.Signature:
    """``cls.__init__``'s signature with the parameters its skorch bases accept through
    ``**kwargs`` added as keyword-only parameters with their defaults (``**kwargs`` stays last,
    for ``module__*`` and the like)."""
    own = inspect.signature(cls.__init__)
    params = [p for p in own.parameters.values() if p.kind is not p.VAR_KEYWORD]
    names = {p.name for p in params}
    for base in cls.__mro__[1:]:
        if "__init__" not in vars(base) or base.__module__.split(".")[0] != "skorch":
            continue
        for p in inspect.signature(base.__init__).parameters.values():
            if (p.name in names or p.default is p.empty
                    or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)):
                continue
            params.append(p.replace(kind=p.KEYWORD_ONLY))
            names.add(p.name)
    params += [p for p in own.parameters.values() if p.kind is p.VAR_KEYWORD]
    return own.replace(parameters=params)


def document_skorch_defaults(cls: type) -> type:
    """Class decorator: ``cls.__init__`` with its :func:`full_signature` (for the repr).

    The ``__init__`` is wrapped (not changed), so that classes sharing one ``__init__`` keep
    their own signatures.
    """
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:  # noqa: N807
        init(self, *args, **kwargs)

    __init__.__signature__ = full_signature(cls)
    cls.__init__ = __init__
    return cls
