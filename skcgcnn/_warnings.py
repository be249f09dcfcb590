"""Warnings raised inside featurization tasks, carried back to the calling process.

joblib's process workers (loky, dask) do not forward warnings: a ``SparseNeighborWarning``
raised in a worker is lost. Tasks therefore record their warnings (:func:`recording`), return
a small summary (count, first id and message per kind), and the caller re-emits them once per
kind (:func:`emit`), the same way whatever ``n_jobs`` is.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

#: {(category, message head): [count, first id, first message]}
Summary = dict


@contextlib.contextmanager
def recording(summary: Summary, id_: Any) -> Iterator[None]:
    """Record every warning raised in the block into ``summary``, attributed to ``id_``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                key = (w.category, str(w.message).split(":")[0][:60])
                entry = summary.setdefault(key, [0, id_, str(w.message)])
                entry[0] += 1


def emit(summaries: Sequence[Summary], stacklevel: int = 3, what: str = "entry") -> None:
    """Re-emit, once per kind, the warnings recorded by tasks (with their count)."""
    merged: Summary = {}
    for summary in summaries:
        for key, (count, first_id, message) in summary.items():
            entry = merged.setdefault(key, [0, first_id, message])
            entry[0] += count
    for (category, _), (count, first_id, message) in merged.items():
        plural = "entries" if what == "entry" else f"{what}s"
        text = message if count == 1 else (
            f"{count} {plural} raised this warning (first: {what} {first_id}): {message}")
        warnings.warn(text, category, stacklevel=stacklevel)
