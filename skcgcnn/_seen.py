"""Which elements a model saw in training, and the warning for the others (private)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .elements import UnseenElementWarning
from .graph import CrystalGraph


def _numbers(graph: CrystalGraph) -> np.ndarray:
    numbers = np.asarray(graph.atomic_numbers).ravel()
    return numbers[numbers > 0]  # 0 pads the species of disordered sites


def elements_of(graphs: Iterable[CrystalGraph]) -> np.ndarray:
    """Sorted atomic numbers present in ``graphs``."""
    present = np.zeros(256, dtype=bool)
    for graph in graphs:
        present[_numbers(graph)] = True
    return np.flatnonzero(present)


def symbols(numbers: Iterable[int]) -> list[str]:
    from pymatgen.core.periodic_table import Element

    return [Element.from_Z(int(z)).symbol for z in numbers]


def atomic_numbers(symbols_: Sequence[str]) -> np.ndarray:
    from pymatgen.core.periodic_table import Element

    return np.array([Element(s).Z for s in symbols_], dtype=int)


def seen_elements(graphs: Iterable[CrystalGraph], before: Sequence[str] | None = None
                  ) -> np.ndarray:
    """The ``seen_elements_`` of a fit on ``graphs``: their element symbols, sorted by atomic
    number, with those ``before`` (of the pretrained model, or of earlier ``partial_fit``)."""
    numbers = set(elements_of(graphs).tolist())
    if before is not None:
        numbers |= set(atomic_numbers(list(before)).tolist())
    return np.array(symbols(sorted(numbers)), dtype=object)


_PACKAGE = str(Path(__file__).resolve().parent)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside skcgcnn (the user's call)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
            _PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def unseen_elements(seen: Sequence[str], graphs: Sequence[CrystalGraph]
                    ) -> tuple[int, list[str]]:
    """How many of ``graphs`` hold elements not in ``seen``, and the symbols of those elements."""
    known = np.zeros(256, dtype=bool)
    known[atomic_numbers(seen)] = True
    unseen = np.zeros(256, dtype=bool)
    n_affected = 0
    for graph in graphs:
        numbers = _numbers(graph)
        new = numbers[~known[numbers]]
        if new.size:
            unseen[new] = True
            n_affected += 1
    return n_affected, symbols(np.flatnonzero(unseen))


def warn_unseen(seen: Sequence[str] | None, graphs: Sequence[CrystalGraph], n_samples: int
                ) -> None:
    """One :class:`UnseenElementWarning` for the ``graphs`` that hold elements not in ``seen``
    (``None``: the model does not record what it saw, nothing to say)."""
    if seen is None:
        return
    n_affected, names = unseen_elements(seen, graphs)
    if n_affected:
        warnings.warn(
            f"{n_affected} of {n_samples} samples contain elements the model never saw in "
            f"training: {', '.join(names)}; their predictions are extrapolations "
            "(seen_elements_ lists the elements of the training data)",
            UnseenElementWarning,
            stacklevel=_caller_stacklevel(),
        )
