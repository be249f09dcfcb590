"""Plotting helpers (matplotlib, an optional extra: ``pip install skcgcnn[plot]``).

matplotlib is imported only when a plot is drawn, so the rest of the package works without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pyplot"]

_INSTALL_HINT = "plotting needs matplotlib: pip install skcgcnn[plot] (or pip install matplotlib)"


def pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError that says how to install it.

    Returns
    -------
    module
        ``matplotlib.pyplot``.

    Raises
    ------
    ImportError
        When matplotlib is not installed; the message names ``pip install skcgcnn[plot]``.

    Examples
    --------
    >>> plt = pyplot()
    >>> plt.__name__
    'matplotlib.pyplot'
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    return plt
