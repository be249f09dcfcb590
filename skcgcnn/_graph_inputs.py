"""What X is for the estimators (private): Structures, graphs or a store, checked against the fit.

:class:`_GraphInputsMixin`, a base of :class:`~skcgcnn._mixin._CGCNNMixin`, turns the X given to
``fit``, ``predict``, ``transform``... into crystal graphs: it validates the entries (a pymatgen
Structure, Molecule or ASE ``Atoms``, a :class:`~skcgcnn.graph.CrystalGraph`, or a missing value),
featurizes the structures with ``featurizer_`` (a clone of ``featurizer`` with the
``featurizer__*`` parameters, or the pretrained model's graph settings when fine-tuning), and
passes a :class:`~skcgcnn.store.GraphStore` through as it is. At ``fit`` the graphs decide the
fitted graph settings (``graph_radius_``, ``max_num_nbr_``), the element table
(``atom_features_``) and the elements seen in training (``seen_elements_``); afterwards every X
must have the same settings and only elements the table has a row for, and elements unseen in
training draw an :class:`~skcgcnn.UnseenElementWarning`. Errors name the entry (position and
label). Nothing here overrides a skorch method.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ._finetune import element_table
from ._seen import seen_elements, warn_unseen
from ._validation import _entries, _is_missing, _labels, _where
from .featurizer import CrystalGraphFeaturizer, _is_structure_like
from .graph import CrystalGraph
from .store import GraphStore


class _GraphInputsMixin:
    """X -> crystal graphs, and the graph settings and element table a fit decides."""

    def _make_featurizer(self) -> CrystalGraphFeaturizer:
        from sklearn.base import clone

        source = getattr(self, "_init_source", None)
        if self.featurizer is not None:
            featurizer = clone(self.featurizer)
        elif source is not None and source.radius is not None:  # the pretrained graphs
            featurizer = CrystalGraphFeaturizer(radius=source.radius,
                                                max_num_nbr=source.max_num_nbr)
        else:
            featurizer = CrystalGraphFeaturizer()
        params = self.get_params_for("featurizer")
        return featurizer.set_params(**params) if params else featurizer

    def _to_graphs(self, X: Any, fitting: bool) -> tuple[np.ndarray, np.ndarray]:
        """Validate X and featurize its Structures.

        Returns the graphs (object array, ``nan`` where featurization failed with
        ``ignore_errors``; a :class:`~skcgcnn.store.GraphStore` as it is, never featurized
        again) and a boolean mask of the samples that have a graph.
        """
        if isinstance(X, GraphStore):
            self._check_store(X, fitting)
            return X, np.ones(len(X), dtype=bool)
        entries = _entries(X)
        labels = _labels(X, len(entries))
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
                    f"{_where(i, labels)} is of type {type(entry).__name__}; expected a pymatgen "
                    "Structure (or Molecule, ASE Atoms) or a CrystalGraph"
                )
        if to_featurize:
            featurizer = self._make_featurizer() if fitting else self.featurizer_
            rows = featurizer.featurize_many(  # errors name "entry i (label ...)"
                [entries[i] for i in to_featurize],
                ignore_errors=featurizer.ignore_errors,
                positions=to_featurize,
                labels=None if labels is None else [labels[i] for i in to_featurize],
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
        self._check_graphs(graphs[valid], np.flatnonzero(valid), fitting, labels)
        return graphs, valid

    def _check_store(self, store: GraphStore, fitting: bool) -> None:
        """:meth:`_check_graphs` for a store: its settings, and its elements all at once."""
        from types import SimpleNamespace

        settings = (store.radius, store.max_num_nbr)
        present = store.unique_species()
        if fitting:
            self.featurizer_ = self._make_featurizer()
            self._fit_settings(settings, [SimpleNamespace(atomic_numbers=present)])
        elif settings != (self.graph_radius_, self.max_num_nbr_):
            raise ValueError(
                f"the model was fitted on graphs with radius={self.graph_radius_:g} and "
                f"max_num_nbr={self.max_num_nbr_}; the store has radius={settings[0]:g}, "
                f"max_num_nbr={settings[1]}")
        usable = np.isfinite(self.atom_features_).all(axis=1)
        bad = [int(z) for z in present if z >= len(usable) or not usable[z]]
        if bad:
            raise ValueError(f"the store contains elements with Z={bad}, which have no row in "
                             "the atom feature table (atom_features)")
        seen = getattr(self, "seen_elements_", None)
        if not fitting and seen is not None and len(seen_elements([], list(seen))) < len(
                seen_elements([SimpleNamespace(atomic_numbers=present)], list(seen))):
            warn_unseen(seen, store, len(store))  # per graph, only when some are unseen

    def _fit_settings(self, settings: tuple[float, int], graphs: Any) -> None:
        """Graph settings, element table and seen elements of a fit on ``graphs``."""
        self.graph_radius_, self.max_num_nbr_ = settings
        source = getattr(self, "_init_source", None)
        warm = getattr(self, "_fitting_warm", False)
        if not (warm and hasattr(self, "atom_features_")):
            self.atom_features_ = element_table(self.atom_features, source)
        before = (getattr(self, "seen_elements_", None) if warm
                  else None if source is None else source.seen_elements)
        self.seen_elements_ = seen_elements(graphs, before)

    def _check_graphs(self, graphs: np.ndarray, positions: np.ndarray, fitting: bool,
                      labels: list | None = None) -> None:
        shapes = {(g.radius, g.max_num_nbr) for g in graphs}
        warm = getattr(self, "_fitting_warm", False)
        if fitting and warm and hasattr(self, "graph_radius_"):  # continuing: as fitted
            if shapes != {(self.graph_radius_, self.max_num_nbr_)}:
                raise ValueError(
                    f"the model was fitted on graphs with radius={self.graph_radius_:g} and "
                    f"max_num_nbr={self.max_num_nbr_}; X has {sorted(shapes)}"
                )
        if fitting:
            if len(shapes) > 1:
                raise ValueError(
                    f"crystal graphs built with different (radius, max_num_nbr): {sorted(shapes)}"
                )
            self._fit_settings(shapes.pop(), graphs)
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
                    f"{_where(int(position), labels)} contains elements with Z={bad}, which "
                    "have no row in the atom feature table (atom_features)"
                )
        if not fitting:
            warn_unseen(getattr(self, "seen_elements_", None), graphs, len(graphs))

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
                f"(first: {_where(int(np.flatnonzero(~valid)[0]), _labels(X, len(valid)))}) "
                "and are left out of fit",
                UserWarning,
                stacklevel=4,
            )
        return graphs[valid], valid
