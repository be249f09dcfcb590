"""What a fitted estimator computes for new X (private): outputs, embeddings, atom contributions.

:class:`_PredictionMixin`, a base of :class:`~skcgcnn._mixin._CGCNNMixin`, runs the fitted
module on the graphs of X (from :class:`~skcgcnn._graph_inputs._GraphInputsMixin`) in eval mode
under ``torch.no_grad``, batch by batch through the estimator's ``get_iterator``, and returns
CPU arrays with NaN rows (or None) for the samples that could not be featurized: the raw outputs
that the regressor's ``predict`` and the classifier's ``predict_proba`` map back to the units
of y or to probabilities, the pooled crystal embeddings of ``transform``, and the per-atom
results of ``atom_contributions``. Nothing of the estimator changes, so predictions from several
threads at once are safe. Nothing here overrides a skorch method.

It is a subclass of :class:`~skcgcnn._output.OutputMixin` (``get_feature_names_out``,
``set_output``): scikit-learn wraps ``transform`` for ``set_output(transform="pandas")`` only in a
class derived from its ``TransformerMixin`` that defines ``transform`` itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._output import OutputMixin
from .batch import graph_dataset


class _PredictionMixin(OutputMixin):
    """Module outputs for X, ``transform`` and ``atom_contributions`` of a fitted estimator."""

    def _run_module(self, graphs: np.ndarray, method: str = "forward") -> np.ndarray:
        """Apply ``module_.<method>`` to graphs in eval mode, batch by batch, on the
        estimator's device; the outputs come back as a CPU array. Nothing of the estimator
        changes, so predictions from several threads at once are safe (a module that someone
        put in training mode is put back in eval mode, as skorch's ``predict`` does)."""
        loader = self.get_iterator(graph_dataset(graphs), training=False)
        device = self._device()
        module = self.module_
        if module.training:
            module.eval()
        outputs = []
        with torch.no_grad():
            for batch, _ in loader:
                outputs.append(getattr(module, method)(batch.to(device)).cpu())
        return torch.cat(outputs).numpy()

    def _outputs(self, X: Any, method: str = "forward") -> np.ndarray:
        """Module outputs for every sample of X; NaN rows for samples without a graph."""
        check_is_fitted(self)
        graphs, valid = self._to_graphs(X, fitting=False)
        values = self._run_module(graphs[valid], method)
        if valid.all():
            return values
        out = np.full((len(graphs),) + values.shape[1:], np.nan, dtype=values.dtype)
        out[valid] = values
        return out

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
        check_is_fitted(self)
        graphs, valid = self._to_graphs(X, fitting=False)
        method = "atom_outputs" if output == "prediction" else "atom_embeddings"
        values = self._run_module(graphs[valid], method).astype(np.float64)
        if output == "prediction" and hasattr(self, "y_scale_"):
            values = values * self.y_scale_ + self.y_mean_
            values = values[:, 0] if self.y_ndim_ == 1 else values
        parts = iter(np.split(values, np.cumsum([g.n_atoms for g in graphs[valid]])[:-1]))
        return [next(parts) if ok else None for ok in valid]
