"""Plotting helpers (skcgcnn.plot) and matplotlib as an optional extra."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from pymatgen.core import Lattice, Structure  # noqa: E402
from shared_data import ROOT, TINY  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402

from skcgcnn import CGCNNClassifier, CGCNNRegressor, build_graph  # noqa: E402
from skcgcnn.plot import plot_crystal_graph, plot_learning_curves, plot_parity  # noqa: E402

# Run in a fresh interpreter in which any import of matplotlib fails, as in an installation
# without the ``plot`` extra.
_WITHOUT_MATPLOTLIB = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")

sys.meta_path.insert(0, Block())
import skcgcnn
import skcgcnn.benchmark
import skcgcnn.benchmark.cli
import skcgcnn.cli
import skcgcnn.plot
from skcgcnn.cli import main

try:
    main(["--help"])
except SystemExit as exc:
    assert exc.code == 0, exc.code
assert "matplotlib" not in sys.modules
try:
    skcgcnn.plot.pyplot()
except ImportError as exc:
    print("ERROR:", exc)
"""


def test_core_and_cli_import_without_matplotlib():
    out = subprocess.run([sys.executable, "-c", _WITHOUT_MATPLOTLIB], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "usage: skcgcnn" in out.stdout
    assert "ERROR: plotting needs matplotlib: pip install skcgcnn[plot]" in out.stdout


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _edges(ax):
    edges = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(edges) == 1
    return edges[0]


@pytest.mark.parametrize("projection", ["3d", "xz"])
def test_crystal_graph_draws_every_real_edge_at_its_length(perovskites, projection):
    structure = perovskites["structure"].iloc[7]
    graph = build_graph(structure)
    ax = plot_crystal_graph(structure, projection=projection)
    edges = _edges(ax)
    values = np.asarray(edges.get_array())
    assert len(values) == graph.n_atoms * 12  # a dense crystal: no padding at 8 A
    # the colour values are the graph's distances, atom by atom, nearest first
    np.testing.assert_allclose(values, graph.distances.ravel(), rtol=1e-6)
    segments = np.asarray(edges._segments3d if projection == "3d" else edges.get_segments())
    lengths = np.linalg.norm(segments[:, 1] - segments[:, 0], axis=1)
    if projection == "3d":  # each edge ends on the right periodic image
        np.testing.assert_allclose(lengths, values, atol=1e-3)
        assert ax.get_zlabel() == "z (Å)"
    else:  # a projection is never longer than the edge
        assert (lengths <= values + 1e-3).all() and (lengths < values - 0.1).any()
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("x (Å)", "z (Å)")
    bar = ax.figure.axes[-1]
    assert bar.get_ylabel() == "neighbour distance (Å)"
    symbols = {site.specie.symbol for site in structure}
    assert symbols <= {t.get_text() for t in ax.get_legend().get_texts()}


def test_crystal_graph_leaves_out_padded_slots():
    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    # within 4.0 A each atom has its 8 unlike neighbours (3.57 A); the other 4 slots are padding
    ax = plot_crystal_graph(cscl, radius=4.0)
    values = np.asarray(_edges(ax).get_array())
    assert len(values) == 2 * 12 - 2 * 4
    np.testing.assert_allclose(values, 4.12 * np.sqrt(3) / 2, rtol=1e-5)
    assert "16 edges" in ax.get_title()


def test_crystal_graph_of_a_graph_uses_a_circular_layout(perovskites):
    structure = perovskites["structure"].iloc[3]
    graph = build_graph(structure, radius=3.0, warn=False)
    ax = plot_crystal_graph(graph)
    values = np.asarray(_edges(ax).get_array())
    real = graph.distances <= graph.radius
    assert len(values) == int(real.sum()) < graph.n_atoms * 12
    np.testing.assert_allclose(np.sort(values), np.sort(graph.distances[real]), rtol=1e-6)


def test_crystal_graph_rejects_unknown_projection():
    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match="projection"):
        plot_crystal_graph(cscl, projection="zx")


@pytest.fixture(scope="module")
def fitted_regressor(perovskites):
    subset = perovskites.iloc[:40]
    # without the valid_mae callback: the curves come from the losses (the paper's MSE loss:
    # its RMSE conversion; the default L1 loss is test_learning_curves_mae_from_the_default_loss)
    return CGCNNRegressor(max_epochs=3, callbacks__valid_mae=None, criterion=torch.nn.MSELoss,
                          **TINY).fit(
        subset["structure"].to_numpy(), subset["e_form"].to_numpy())


def _line(ax, label):
    return next(line for line in ax.get_lines() if line.get_label() == label)


@contextlib.contextmanager
def _recorded_mae(reg, values):
    """The history with ``valid_mae`` set to ``values`` (None: without it), restored after."""
    saved = [{k: row[k] for k in ("valid_mae", "valid_mae_best") if k in row}
             for row in reg.history_]
    for row, value in zip(reg.history_, values or [None] * len(reg.history_)):
        row.pop("valid_mae", None)
        row.pop("valid_mae_best", None)
        if value is not None:
            row["valid_mae"] = value
    try:
        yield reg
    finally:
        for row, old in zip(reg.history_, saved):
            row.pop("valid_mae", None)
            row.update(old)


def test_learning_curves_convert_the_loss_to_target_units(fitted_regressor):
    with _recorded_mae(fitted_regressor, None) as reg:
        ax = plot_learning_curves(reg, unit="eV/cell")
    assert ax.get_ylabel() == "RMSE (eV/cell)" and ax.get_xlabel() == "epoch"
    scale = float(reg.y_scale_[0])
    for label, key in (("train RMSE", "train_loss"), ("validation RMSE", "valid_loss")):
        line = _line(ax, label)
        np.testing.assert_array_equal(line.get_xdata(), [1, 2, 3])
        np.testing.assert_allclose(line.get_ydata(),
                                   np.sqrt(np.array(reg.history_[:, key])) * scale, rtol=1e-6)
    assert any(line.get_label().startswith("best validation") for line in ax.get_lines())


def test_learning_curves_show_a_recorded_target_unit_column(fitted_regressor):
    mae = [0.3, 0.2, 0.25]
    with _recorded_mae(fitted_regressor, mae) as reg:
        ax = plot_learning_curves(reg, unit="eV/cell")
    assert ax.get_ylabel() == "error (eV/cell)"  # RMSE and MAE on one axis
    np.testing.assert_allclose(_line(ax, "validation MAE").get_ydata(), mae)
    labels = {line.get_label() for line in ax.get_lines()}
    assert {"train RMSE", "validation RMSE"} <= labels and "train MAE" not in labels


def test_learning_curves_mae_from_the_default_loss(perovskites):
    subset = perovskites.iloc[:30]  # the default criterion, L1Loss
    reg = CGCNNRegressor(max_epochs=2, callbacks__valid_mae=None, **TINY).fit(
        subset["structure"].to_numpy(), subset["e_form"].to_numpy())
    scale = float(reg.y_scale_[0])
    with _recorded_mae(reg, None):
        ax = plot_learning_curves(reg, unit="eV")
    assert ax.get_ylabel() == "MAE (eV)"
    np.testing.assert_allclose(_line(ax, "validation MAE").get_ydata(),
                               np.array(reg.history_[:, "valid_loss"]) * scale, rtol=1e-6)
    # a recorded validation MAE replaces the one converted from the loss: one line, its values
    with _recorded_mae(reg, [0.5, 0.4]):
        ax = plot_learning_curves(reg, unit="eV")
    lines = [line for line in ax.get_lines() if line.get_label() == "validation MAE"]
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0].get_ydata(), [0.5, 0.4])
    np.testing.assert_allclose(_line(ax, "train MAE").get_ydata(),
                               np.array(reg.history_[:, "train_loss"]) * scale, rtol=1e-6)


def test_learning_curves_of_a_classifier(perovskites):
    subset = perovskites.iloc[:40]
    y = (subset["e_form"] > subset["e_form"].median()).astype(int).to_numpy()
    clf = CGCNNClassifier(max_epochs=2, **TINY).fit(subset["structure"].to_numpy(), y)
    ax = plot_learning_curves(clf, unit="ignored")
    assert ax.get_ylabel() == "loss"
    np.testing.assert_allclose(_line(ax, "train loss").get_ydata(),
                               clf.history_[:, "train_loss"])
    twin = [a for a in ax.figure.axes if a is not ax][0]
    assert twin.get_ylabel() == "validation accuracy"
    np.testing.assert_allclose(twin.get_lines()[0].get_ydata(), clf.history_[:, "valid_acc"])


def test_learning_curves_need_a_fitted_estimator():
    with pytest.raises(NotFittedError, match="fit"):
        plot_learning_curves(CGCNNRegressor())


def test_parity_plot():
    y_true, y_pred = np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.5, 1.0, 1.0, 4.5])
    fig, ax = plt.subplots()
    assert plot_parity(y_true, y_pred, y_std=[0.1, 0.2, 0.1, 0.3], unit="eV", ax=ax) is ax
    points = ax.collections[-1].get_offsets()
    np.testing.assert_array_equal(points, np.column_stack([y_true, y_pred]))
    diagonal = _line(ax, "y = x")
    np.testing.assert_array_equal(diagonal.get_xdata(), [0.0, 4.5])
    np.testing.assert_array_equal(diagonal.get_ydata(), [0.0, 4.5])
    assert ax.get_title() == "MAE 0.5000 eV on 4 samples"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("true target (eV)", "predicted target (eV)")
    with pytest.raises(ValueError, match="length"):
        plot_parity([1.0, 2.0], [1.0])


def test_plots_without_matplotlib_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install skcgcnn\[plot\]"):
        plot_parity([1.0], [1.0])

