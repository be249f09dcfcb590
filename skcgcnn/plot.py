"""Plotting helpers: learning curves, parity plots and crystal graphs (matplotlib).

matplotlib is an optional extra (``pip install skcgcnn[plot]``): it is imported only when a plot
is drawn, so the rest of the package works without it, and a plot asked for without it raises an
ImportError that says what to install. Every function draws on the ``ax`` it is given (or on a
new figure) and returns the Axes, so the figure can be adjusted and saved by the caller.

* :func:`plot_learning_curves`: train / validation error per epoch of a fitted estimator, in the
  target's units for a regressor;
* :func:`plot_parity`: predicted against true values, with the MAE;
* :func:`plot_crystal_graph`: a crystal's atoms and the edges to their nearest neighbours (the
  CGCNN graph), coloured by distance.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from pymatgen.core import Structure

    from .graph import CrystalGraph

__all__ = ["plot_crystal_graph", "plot_learning_curves", "plot_parity", "pyplot"]

_INSTALL_HINT = "plotting needs matplotlib: pip install skcgcnn[plot] (or pip install matplotlib)"

#: History columns already in the target's units (regression): the validation MAE the
#: estimators' epoch log records, or one a user records with a callback of the same name.
TARGET_UNIT_COLUMNS = ("valid_mae",)


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


def _axes(ax: Axes | None, projection: str | None = None) -> Axes:
    plt = pyplot()
    if ax is not None:
        return ax
    fig = plt.figure(figsize=(5.5, 4.5) if projection is None else (6, 5.5))
    return fig.add_subplot(projection=projection)


def _unit_label(quantity: str, unit: str | None) -> str:
    return f"{quantity} ({unit})" if unit else quantity


# ---------------------------------------------------------------------------- learning curves
def _history_columns(history: Any) -> set[str]:
    return {key for row in history for key in row}


def _learning_curve_series(
    estimator: Any,
) -> tuple[str, dict[tuple[str, str], np.ndarray], np.ndarray]:
    """(axis quantity, {(split, metric): values per epoch}, epochs) for a fitted estimator.

    ``split`` is "train" or "validation"; ``metric`` names what the values are ("RMSE", "MAE",
    "loss").
    """
    history = getattr(estimator, "history_", None)
    if history is None or len(history) == 0:
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(
            f"this {type(estimator).__name__} has no training history yet; call fit first"
        )
    columns = _history_columns(history)
    epochs = np.array([row["epoch"] for row in history])

    def column(name: str) -> np.ndarray:
        return np.array([row.get(name, np.nan) for row in history], dtype=float)

    losses = {split: column(f"{key}_loss") for split, key in
              (("train", "train"), ("validation", "valid")) if f"{key}_loss" in columns}
    if not hasattr(estimator, "y_scale_"):  # a classifier: cross-entropy
        return "loss", {(split, "loss"): v for split, v in losses.items()}, epochs
    # the losses in target units, where the loss allows it (one target)
    scale = np.ravel(estimator.y_scale_)
    loss = type(getattr(estimator, "criterion_", None)).__name__
    converted: dict[tuple[str, str], np.ndarray] = {}
    if len(scale) == 1 and loss == "MSELoss":  # mean squared standardised error -> RMSE
        converted = {(split, "RMSE"): np.sqrt(v) * scale[0] for split, v in losses.items()}
    elif len(scale) == 1 and loss == "L1Loss":  # mean absolute standardised error -> MAE
        converted = {(split, "MAE"): v * scale[0] for split, v in losses.items()}
    # the errors recorded in target units (valid_mae, and train_mae if a callback records it)
    recorded = {}
    for name in TARGET_UNIT_COLUMNS:
        if name in columns:
            metric = name.split("_", 1)[1].upper()
            recorded[("validation", metric)] = column(name)
            if f"train_{metric.lower()}" in columns:
                recorded[("train", metric)] = column(f"train_{metric.lower()}")
    if not converted and not recorded:
        return "loss (standardised target)", {(s, "loss"): v for s, v in losses.items()}, epochs
    series = {**converted, **recorded}  # a recorded error replaces the same converted one
    metrics = {metric for _, metric in series}
    return (metrics.pop() if len(metrics) == 1 else "error"), series, epochs


def plot_learning_curves(estimator: Any, *, unit: str | None = None,
                         ax: Axes | None = None) -> Axes:
    """Training and validation error per epoch of a fitted estimator.

    For a regressor the curves are in the target's units: the recorded losses converted with the
    estimator's target scale ``y_scale_`` (the default ``L1Loss`` on the standardised target
    gives the MAE, ``loss * y_scale_``; an ``MSELoss`` gives the RMSE,
    ``sqrt(loss) * y_scale_``), and the validation MAE when the history records it (a ``valid_mae``
    column, and ``train_mae`` if present). With another loss, or several targets, the losses
    cannot be converted: the recorded MAE is shown alone, or, without one, the losses as
    recorded (standardised). For a classifier the losses (cross-entropy) are shown, and the
    validation accuracy on a second axis when recorded. The epoch with the best validation loss
    is marked.

    Parameters
    ----------
    estimator : CGCNNRegressor or CGCNNClassifier
        A fitted estimator (anything with a skorch ``history_``).
    unit : str, optional
        Unit of the target, for the axis label (e.g. ``"eV/atom"``).
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure.

    Returns
    -------
    matplotlib Axes
        One line per curve, labelled ``"<train|validation> <RMSE|MAE|loss>"``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When the estimator has no training history.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> from skcgcnn import CGCNNRegressor
    >>> X = [Structure(Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ...      for a in (4.0, 4.1, 4.2, 4.3, 4.4, 4.5)]
    >>> y = [0.1 * i for i in range(6)]
    >>> reg = CGCNNRegressor(max_epochs=3, train_split=None, random_state=0, verbose=0)
    >>> ax = plot_learning_curves(reg.fit(X, y), unit="eV")
    >>> ax.get_ylabel(), [line.get_label() for line in ax.get_lines()]
    ('MAE (eV)', ['train MAE'])
    """
    quantity, series, epochs = _learning_curve_series(estimator)
    ax = _axes(ax)
    colors = {"train": "C0", "validation": "C1"}
    styles = {"RMSE": "-", "loss": "-", "MAE": "--"}
    for (split, metric), values in series.items():
        ax.plot(epochs, values, label=f"{split} {metric}", color=colors[split],
                ls=styles[metric], marker="." if len(epochs) < 30 else None)
    history = estimator.history_
    best = [row["epoch"] for row in history if row.get("valid_loss_best")]
    if best and any(split == "validation" for split, _ in series):
        ax.axvline(best[-1], color="gray", ls=":", lw=0.8,
                   label=f"best validation loss (epoch {best[-1]})")
    regressor = hasattr(estimator, "y_scale_")
    if "valid_acc" in _history_columns(history) and not regressor:
        twin = ax.twinx()
        acc = np.array([row.get("valid_acc", np.nan) for row in history], dtype=float)
        twin.plot(epochs, acc, color="C2", ls="--", label="validation accuracy")
        twin.set_ylabel("validation accuracy")
        twin.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("epoch")
    in_units = regressor and quantity != "loss (standardised target)"
    ax.set_ylabel(_unit_label(quantity, unit if in_units else None))
    ax.set_title(f"{type(estimator).__name__}: learning curves", fontsize=10)
    ax.legend(loc="best" if regressor else "upper left", fontsize=8)
    return ax


# ---------------------------------------------------------------------------- parity
def plot_parity(y_true: Any, y_pred: Any, *, y_std: Any = None, unit: str | None = None,
                quantity: str = "target", ax: Axes | None = None) -> Axes:
    """Predicted against true values, with the identity line and the MAE.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted values (one target).
    y_std : array-like of shape (n_samples,), optional
        Predictive standard deviations (e.g. ``CGCNNEnsembleRegressor.predict(X,
        return_std=True)``), drawn as vertical error bars.
    unit : str, optional
        Unit of the target, for the axis labels.
    quantity : str, default="target"
        Name of the target, for the axis labels.
    ax : matplotlib Axes, optional
        Where to draw; default: a new figure.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_parity([1.0, 2.0, 3.0], [1.1, 1.8, 3.3], unit="eV", quantity="band gap")
    >>> ax.get_xlabel(), ax.get_title()
    ('true band gap (eV)', 'MAE 0.2000 eV on 3 samples')
    """
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} != {len(y_pred)}")
    ax = _axes(ax)
    alpha = 0.8 if len(y_true) < 500 else 0.3
    if y_std is not None:
        ax.errorbar(y_true, y_pred, yerr=np.asarray(y_std, dtype=float).ravel(), fmt="none",
                    ecolor="C0", alpha=alpha / 2, lw=0.8)
    ax.scatter(y_true, y_pred, s=12 if len(y_true) < 500 else 4, alpha=alpha, lw=0,
               label="predictions")
    both = np.concatenate([y_true, y_pred])
    lo, hi = float(np.nanmin(both)), float(np.nanmax(both))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="y = x")
    mae = float(np.nanmean(np.abs(y_true - y_pred)))
    ax.set_xlabel(_unit_label(f"true {quantity}", unit))
    ax.set_ylabel(_unit_label(f"predicted {quantity}", unit))
    ax.set_title(f"MAE {mae:.4f}{' ' + unit if unit else ''} on {len(y_true)} samples",
                 fontsize=10)
    ax.set_aspect("equal", adjustable="datalim")
    return ax


# ---------------------------------------------------------------------------- crystal graph
def _edge_images(structure: Structure, graph: CrystalGraph) -> np.ndarray:
    """Cartesian position of the neighbour image behind each real slot of ``graph``.

    The graph stores neighbour indices within the cell; the neighbour itself may be a periodic
    image. Each slot is matched to an unused (index, distance) pair of pymatgen's neighbour list,
    so tied neighbours (images at the same distance) end on different images.
    """
    centers, points, offsets, distances = structure.get_neighbor_list(graph.radius)
    lattice = structure.lattice.matrix
    cart = structure.cart_coords
    ends = np.full(graph.distances.shape + (3,), np.nan)
    for i in range(graph.n_atoms):
        mine = np.flatnonzero(centers == i)
        used = np.zeros(len(mine), dtype=bool)
        for slot in range(graph.max_num_nbr):
            d = float(graph.distances[i, slot])
            if d > graph.radius:
                continue
            j = int(graph.neighbor_indices[i, slot])
            match = np.flatnonzero(~used & (points[mine] == j)
                                   & (np.abs(distances[mine] - d) < 1e-3))
            if len(match) == 0:  # pragma: no cover - the graph was not built from this structure
                raise ValueError(f"edge {i}->{j} at {d:.4f} A is not in the structure")
            k = match[np.argmin(np.abs(distances[mine][match] - d))]
            used[k] = True
            ends[i, slot] = cart[j] + offsets[mine[k]] @ lattice
    return ends


def _cell_edges(lattice: np.ndarray) -> list[np.ndarray]:
    corners = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], float)
    pairs = [(p, q) for p in range(8) for q in range(p + 1, 8)
             if np.abs(corners[p] - corners[q]).sum() == 1]
    return [np.array([corners[p], corners[q]]) @ lattice for p, q in pairs]


def _loop(center: np.ndarray, size: float, k: int) -> np.ndarray:
    """A small closed loop at ``center`` (an edge from an atom to its own image)."""
    t = np.linspace(0, 2 * np.pi, 17)
    angle = 2 * np.pi * k / 12
    offset = 1.6 * size * np.array([np.cos(angle), np.sin(angle)])
    return center + offset + size * np.column_stack([np.cos(t), np.sin(t)])


def plot_crystal_graph(structure_or_graph: Structure | CrystalGraph, *,
                       radius: float = 8.0, max_num_nbr: int = 12,
                       projection: str = "3d", cmap: str = "viridis",
                       show_cell: bool = True, ax: Axes | None = None) -> Axes:
    """Draw a crystal graph: atoms, and edges to their nearest neighbours coloured by distance.

    For a pymatgen ``Structure`` the graph is built as the estimators build it
    (:func:`~skcgcnn.graph.build_graph` with ``radius`` and ``max_num_nbr``) and drawn in real
    space: the atoms of the unit cell (one colour per element), an edge from each atom to each
    of its ``max_num_nbr`` neighbours (periodic images included, drawn at their image position
    as small open markers), and the cell. Padded slots (atoms with fewer neighbours within the
    radius) are not real neighbours and are not drawn, so there are ``n_atoms * max_num_nbr``
    edges minus the padding. The edges form one ``LineCollection`` (``Line3DCollection`` in 3-D)
    whose colour values are the distances in Angstrom, with a colour bar.

    A :class:`~skcgcnn.graph.CrystalGraph` carries no coordinates: its atoms are placed on a
    circle (a 2-D layout), each edge ``i -> j`` is a chord, and an edge to an image of the atom
    itself a small loop beside it.

    Parameters
    ----------
    structure_or_graph : pymatgen Structure or CrystalGraph
    radius : float, default=8.0
        Graph radius in Angstrom (for a Structure; a graph keeps its own).
    max_num_nbr : int, default=12
        Neighbours per atom (for a Structure).
    projection : {"3d", "xy", "xz", "yz"}, default="3d"
        For a Structure: a 3-D drawing, or its projection on a Cartesian plane.
    cmap : str, default="viridis"
        Colour map of the edge distances.
    show_cell : bool, default=True
        Draw the unit cell (Structure only).
    ax : matplotlib Axes, optional
        Where to draw (a 3-D Axes for ``projection="3d"``); default: a new figure.

    Returns
    -------
    matplotlib Axes
        Its first collection holds the edges; ``collection.get_array()`` gives their distances.

    Examples
    --------
    >>> from pymatgen.core import Lattice, Structure
    >>> cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    >>> ax = plot_crystal_graph(cscl)
    >>> edges = ax.collections[0]
    >>> len(edges.get_array())  # 2 atoms x 12 neighbours, none padded
    24
    >>> sorted({round(float(d), 2) for d in edges.get_array()})  # Cs-Cl, then Cs-Cs / Cl-Cl
    [3.57, 4.12]
    """
    from .graph import CrystalGraph, build_graph

    plt = pyplot()
    if isinstance(structure_or_graph, CrystalGraph):
        return _plot_graph_layout(structure_or_graph, cmap=cmap, ax=ax)
    if projection not in ("3d", "xy", "xz", "yz"):
        raise ValueError(f"projection must be '3d', 'xy', 'xz' or 'yz', got {projection!r}")
    structure = structure_or_graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sparse neighbours: the padding is simply not drawn
        graph = build_graph(structure, radius=radius, max_num_nbr=max_num_nbr)
    ends = _edge_images(structure, graph)
    real = graph.distances <= graph.radius
    starts = np.repeat(structure.cart_coords[:, None, :], graph.max_num_nbr, axis=1)[real]
    ends, distances = ends[real], graph.distances[real].astype(float)
    axes_of = {"xy": [0, 1], "xz": [0, 2], "yz": [1, 2], "3d": [0, 1, 2]}[projection]
    names = "xyz"
    segments = np.stack([starts, ends], axis=1)[:, :, axes_of]

    ax = _axes(ax, "3d" if projection == "3d" else None)
    norm = plt.Normalize(float(distances.min()), float(distances.max())) if len(distances) else None
    if projection == "3d":
        from mpl_toolkits.mplot3d.art3d import Line3DCollection

        lines = Line3DCollection(segments, cmap=cmap, norm=norm, linewidths=1.2)
    else:
        from matplotlib.collections import LineCollection

        lines = LineCollection(segments, cmap=cmap, norm=norm, linewidths=1.2)
    lines.set_array(distances)
    if projection == "3d":
        ax.computed_zorder = False  # atoms on top of the edges, whatever the view angle
        ax.add_collection3d(lines)
    else:
        ax.add_collection(lines)

    images = np.unique(np.round(ends, 4), axis=0)
    if len(images):
        ax.scatter(*images[:, axes_of].T, s=12, facecolors="none", edgecolors="gray",
                   linewidths=0.6, label="neighbour images")
    symbols = np.array([site.species_string for site in structure])
    flat = {"depthshade": False} if projection == "3d" else {}
    for k, symbol in enumerate(dict.fromkeys(symbols)):
        at = structure.cart_coords[symbols == symbol][:, axes_of]
        ax.scatter(*at.T, s=110, color=f"C{k % 10}", edgecolors="black", linewidths=0.8,
                   label=symbol, zorder=3, **flat)
    if show_cell:
        for edge in _cell_edges(structure.lattice.matrix):
            ax.plot(*edge[:, axes_of].T, color="0.35", lw=0.9, ls="--", zorder=2)

    points = np.concatenate([structure.cart_coords, ends])[:, axes_of]
    if projection == "3d":
        lo, hi = points.min(axis=0), points.max(axis=0)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_zlim(lo[2], hi[2])
        ax.set_box_aspect(np.maximum(hi - lo, 1e-3))
        ax.set_zlabel("z (Å)")
    else:
        ax.autoscale_view()
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"{names[axes_of[0]]} (Å)")
    ax.set_ylabel(f"{names[axes_of[1]]} (Å)")
    bar = ax.figure.colorbar(lines, ax=ax, shrink=0.7, pad=0.1 if projection == "3d" else 0.03)
    bar.set_label("neighbour distance (Å)")
    ax.set_title(f"{structure.composition.reduced_formula}: {graph.n_atoms} atoms, "
                 f"{len(distances)} edges ({graph.max_num_nbr} neighbours, "
                 f"r = {graph.radius:g} Å)", fontsize=9)
    ax.legend(loc="upper left", fontsize=7, markerscale=0.6, framealpha=0.8)
    return ax


def _plot_graph_layout(graph: CrystalGraph, *, cmap: str, ax: Axes | None) -> Axes:
    from matplotlib.collections import LineCollection
    from pymatgen.core import Element

    plt = pyplot()
    n = graph.n_atoms
    angle = 2 * np.pi * np.arange(n) / max(n, 1)
    xy = np.column_stack([np.cos(angle), np.sin(angle)])
    size = 0.08 if n > 1 else 0.2
    segments, distances = [], []
    for i in range(n):
        for slot in range(graph.max_num_nbr):
            d = float(graph.distances[i, slot])
            if d > graph.radius:
                continue
            j = int(graph.neighbor_indices[i, slot])
            segments.append(_loop(xy[i], size, slot) if i == j else np.array([xy[i], xy[j]]))
            distances.append(d)
    ax = _axes(ax)
    values = np.array(distances, dtype=float)
    norm = plt.Normalize(float(values.min()), float(values.max())) if len(values) else None
    lines = LineCollection(segments, cmap=cmap, norm=norm, linewidths=1.0, alpha=0.8)
    lines.set_array(values)
    ax.add_collection(lines)
    numbers = np.asarray(graph.atomic_numbers)
    numbers = numbers if numbers.ndim == 1 else numbers[:, 0]  # first species of a site
    symbols = np.array([Element.from_Z(int(z)).symbol for z in numbers])
    for k, symbol in enumerate(dict.fromkeys(symbols)):
        ax.scatter(*xy[symbols == symbol].T, s=80, color=f"C{k % 10}", edgecolors="black",
                   linewidths=0.5, label=symbol, zorder=3)
    ax.set_aspect("equal")
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_xticks([])
    ax.set_yticks([])
    bar = ax.figure.colorbar(lines, ax=ax, shrink=0.7)
    bar.set_label("neighbour distance (Å)")
    ax.set_title(f"crystal graph: {n} atoms, {len(values)} edges (circular layout)", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    return ax
