"""Plots of saved benchmark results: parity, learning curve, training curves (PNG files).

Needs matplotlib (``pip install skcgcnn[plot]``); drawn off-screen, whatever the backend.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..plot import pyplot
from .runner import resolve_results_dir, results_path
from .tasks import ANCHORS, get_task

__all__ = ["make_plots"]


def make_plots(task: str, results_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Parity plots, learning curve and training curves from the saved results (PNG files).

    Parameters
    ----------
    task : str
    results_dir : path-like, optional
        Where :func:`~skcgcnn.benchmark.run_benchmark` wrote; default: the current directory.

    Returns
    -------
    list of Path
        The PNG files written next to the results CSV.

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install skcgcnn[plot]``).

    Examples
    --------
    >>> make_plots("matbench_perovskites")  # doctest: +SKIP
    """
    plt = pyplot()
    spec = get_task(task)
    results_dir = resolve_results_dir(results_dir)
    csv = results_path(results_dir, spec.name)
    if not csv.is_file():
        return []
    rows = pd.read_csv(csv)
    metric = "mae" if spec.kind == "regression" else "roc_auc"
    unit = f" ({spec.unit})" if spec.unit else ""
    written: list[Path] = []

    # Parity plot per model: the largest-n_train settings of each model, all its folds.
    pred_dir = results_dir / f"{spec.name}_predictions"
    for model, group in rows.groupby("model"):
        top = group[group["n_train"] >= group["n_train"].max() * 0.95]
        sid = top.groupby("settings_id")[metric].count().idxmax()
        parts = [pd.read_csv(pred_dir / f"{model}-{sid}-fold{int(k)}.csv")
                 for k in top.loc[top["settings_id"] == sid, "fold"]
                 if (pred_dir / f"{model}-{sid}-fold{int(k)}.csv").is_file()]
        if not parts:
            continue
        pred = pd.concat(parts)
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        if spec.kind == "regression":
            ax.scatter(pred["y_true"], pred["y_pred"], s=3, alpha=0.3, lw=0)
            lo = min(pred["y_true"].min(), pred["y_pred"].min())
            hi = max(pred["y_true"].max(), pred["y_pred"].max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            mae = np.abs(pred["y_true"] - pred["y_pred"]).mean()
            ax.set_xlabel(f"true {spec.target}{unit}")
            ax.set_ylabel(f"predicted {spec.target}{unit}")
            ax.set_title(f"{spec.name}: {model}\nMAE {mae:.4f} on {len(pred)} test structures",
                         fontsize=9)
        else:
            for label in (0, 1):
                ax.hist(pred.loc[pred["y_true"] == label, "p_true"], bins=40, alpha=0.5,
                        label=f"true {label}")
            ax.set_xlabel("predicted P(metal)")
            ax.legend()
            ax.set_title(f"{spec.name}: {model}", fontsize=9)
        fig.tight_layout()
        path = results_dir / f"{spec.name}_parity_{model}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    # Learning curve: mean metric over folds vs training-set size, per model.
    fig, ax = plt.subplots(figsize=(5, 4))
    for model, group in rows.groupby("model"):
        curve = group.groupby("n_train")[metric].agg(["mean", "std", "count"]).reset_index()
        ax.errorbar(curve["n_train"], curve["mean"], yerr=curve["std"].fillna(0), marker="o",
                    capsize=3, label=model)
    anchors = ANCHORS.get(spec.anchor, {})
    for key, style in (("cgcnn", ":"), ("rf", "-.")):
        if anchors.get(key) is not None:
            ax.axhline(anchors[key], ls=style, color="gray", lw=0.8,
                       label=f"published {key} (full data)")
    ax.set_xscale("log")
    if spec.kind == "regression":
        ax.set_yscale("log")
    ax.set_xlabel("training structures")
    ax.set_ylabel(f"test {metric.upper()}{unit}")
    ax.set_title(f"{spec.name}: learning curve", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = results_dir / f"{spec.name}_learning_curve.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)

    # Training curves: train / inner-validation loss per epoch of each CGCNN fold.
    hist_dir = results_dir / f"{spec.name}_history"
    histories = sorted(hist_dir.glob("cgcnn-*.json")) if hist_dir.is_dir() else []
    cgcnn_rows = rows[rows["model"] == "cgcnn"]
    if len(cgcnn_rows):  # the full-size runs only (learning-curve runs would crowd the plot)
        full = cgcnn_rows[cgcnn_rows["n_train"] >= cgcnn_rows["n_train"].max() * 0.95]
        keep = {f"cgcnn-{sid}-fold{int(k)}" for sid, k in zip(full["settings_id"], full["fold"])}
        histories = [h for h in histories if h.stem in keep]
    if histories:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for i, file in enumerate(histories):
            record = json.loads(file.read_text())
            epochs = pd.DataFrame(record["epochs"])
            color = f"C{i % 10}"
            label = file.stem.replace("cgcnn-", "")
            ax.plot(epochs["epoch"], epochs["train_loss"], color=color, lw=0.8,
                    label=f"{label} train")
            if epochs["valid_loss"].notna().any():
                ax.plot(epochs["epoch"], epochs["valid_loss"], color=color, lw=0.8, ls="--",
                        label=f"{label} valid")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (standardised target)" if spec.kind == "regression"
                      else "cross-entropy")
        ax.set_title(f"{spec.name}: CGCNN training curves (inner 10 % validation)",
                     fontsize=9)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = results_dir / f"{spec.name}_training_curves.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
