"""The results table: our per-fold scores next to the published Matbench v0.1 numbers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .runner import results_path
from .tasks import ANCHORS, LEADERBOARD_FILE, get_task

__all__ = ["summary_table"]


def _leaderboard_folds(data_dir: Path | None, task: str) -> dict[str, list[float]]:
    """Per-fold published scores of CGCNN and RF for a Matbench task, where available."""
    if data_dir is None or not (data_dir / LEADERBOARD_FILE).is_file():
        return {}
    entries = json.loads((data_dir / LEADERBOARD_FILE).read_text())["entries"]
    metric = "rocauc" if task == "matbench_mp_is_metal" else "mae"
    names = {"matbench_v0.1_cgcnnv2019": "cgcnn", "matbench_v0.1_rf": "rf"}
    return {names[e["benchmark"]]: e["scores"][metric]["folds"] for e in entries
            if e["task"] == task and e["benchmark"] in names and metric in e["scores"]}


def summary_table(task: str, results_dir: str | os.PathLike[str] | None = None,
                  data_dir: str | os.PathLike[str] | None = None) -> str:
    """The side-by-side table (Markdown) of our per-fold results and the published anchors.

    Parameters
    ----------
    task : str
    results_dir : path-like, optional
        Where :func:`~skcgcnn.benchmark.run_benchmark` wrote; default: the current directory.
    data_dir : path-like, optional
        With the leaderboard file, the published per-fold numbers are shown for the same folds.

    Returns
    -------
    str
        A Markdown table, one line per (model, settings, training size).

    Examples
    --------
    >>> print(summary_table("matbench_perovskites"))  # doctest: +SKIP
    """
    spec = get_task(task)
    csv = results_path(results_dir, spec.name)
    if not csv.is_file():
        return f"no results yet in {csv}"
    rows = pd.read_csv(csv)
    metric = "mae" if spec.kind == "regression" else "roc_auc"
    anchors = ANCHORS.get(spec.anchor, {})
    published = ({} if spec.folds == "kfold"  # other data, other folds: no per-fold match
                 else _leaderboard_folds(Path(data_dir) if data_dir else None, spec.anchor))
    fmt = "{:.4f}".format
    lines = [
        f"### {spec.name} ({metric.upper()}{', ' + spec.unit if spec.unit else ''})",
        "",
        f"| model | settings | n_train | folds | {metric} per fold | mean {metric} | "
        "published CGCNN (same folds) | published RF (same folds) | fit time / fold |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    order = rows.assign(_size=-rows["n_train"]).sort_values(["model", "_size"])
    for (model, sid), group in order.groupby(["model", "settings_id"], sort=False):
        group = group.sort_values("fold")
        folds_ = group["fold"].astype(int).tolist()
        ours = group[metric].to_numpy()
        same = {k: (np.mean([v[f] for f in folds_]) if v else None)
                for k, v in published.items()}
        settings = json.loads(group["settings"].iloc[0])
        if model == "cgcnn":
            lo, hi = int(group["n_epochs"].min()), int(group["n_epochs"].max())
            label = f"{group['preset'].iloc[0]}: {lo if lo == hi else f'{lo}-{hi}'} epochs"
            if settings.get("time_budget"):
                label += f" (cap {settings['time_budget']:g} s)"
        else:
            label = "100 trees"
        if settings.get("data") == "full":
            label += ", whole dataset"
        if "device" in group and group["device"].notna().any():
            label += f", {'/'.join(sorted(set(group['device'].dropna().astype(str))))}"
        lines.append(
            f"| {model} | {label} ({sid}) | {int(group['n_train'].median())} | "
            f"{','.join(map(str, folds_))} | {' '.join(fmt(v) for v in ours)} | "
            f"**{fmt(ours.mean())}** | "
            f"{fmt(same['cgcnn']) if same.get('cgcnn') is not None else '-'} | "
            f"{fmt(same['rf']) if same.get('rf') is not None else '-'} | "
            f"{group['fit_time_s'].mean():.0f} s |"
        )
    if anchors:
        best = anchors.get("best")
        lines += ["", f"Published Matbench v0.1 ({spec.anchor}, 5-fold mean): CGCNN "
                  f"{anchors['cgcnn']}, best {best if best is not None else '-'}, "
                  f"RF-SCM/Magpie {anchors['rf']}."]
    if spec.note:
        whole = " (rows marked 'whole dataset' train on the full data)" if spec.full_file else ""
        lines.append(f"Note: {spec.note}{whole}.")
    return "\n".join(lines)
