"""The small-data verdicts, pooled over seeds: one line per task, size and CGCNN variant.

For every variant, the test metric averaged over the seeds it ran (on the folds the default
ran), and the difference to the random forest on the same test structures with a 95 %
interval from a paired bootstrap over those structures: each resample draws test structures
and recomputes mean-over-seeds metric(CGCNN) - metric(RF). "win" / "loss" when the interval
excludes 0 (in the metric's better / worse direction), "tie" otherwise.

The default is ``small_data.DEFAULTS[kind]`` (``v2-l1`` for regression, ``v2`` for
classification: what ``CGCNNRegressor()`` / ``CGCNNClassifier()`` do today) where it ran, else
``small_data.PREVIOUS_DEFAULT`` (``new``: the defaults up to 608c499, the only CGCNN runs at
some sizes). The variant that the training
data picks (:func:`pick_against_default`: inner-split scores against the default's, never the
test fold) is marked "picked". Variants that hold out no
comparable inner split (the hurdle's two networks, an ensemble's five, see different
structures) are never picked and are marked "a priori": options for a kind of target (a mass
at zero) or of budget (five fits), reported beside the pick, not chosen by a score.

Usage::

    python benchmarks/small_data_summary.py            # markdown table, every size
    python benchmarks/small_data_summary.py --sizes 1000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import small_data as sd  # noqa: E402


def pooled_versus(kind: str, y: np.ndarray, preds: list[np.ndarray], other: np.ndarray,
                  n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """mean_s metric(preds[s]) - metric(other), and its 95 % interval over resampled structures
    (the same draw for every seed: the seeds share the test structures)."""
    def stat(idx: np.ndarray) -> float:
        mean = np.mean([sd._metric(kind, y[idx], p[idx]) for p in preds])
        return float(mean - sd._metric(kind, y[idx], other[idx]))

    rng = np.random.default_rng(seed)
    diffs = [stat(rng.integers(0, len(y), len(y))) for _ in range(n_boot)]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return stat(np.arange(len(y))), float(lo), float(hi)


def verdict(kind: str, lo: float, hi: float) -> str:
    better_if_negative = kind == "regression"
    if hi < 0:
        return "win" if better_if_negative else "loss"
    if lo > 0:
        return "loss" if better_if_negative else "win"
    return "tie"


def pick_against_default(runs: pd.DataFrame, kind: str) -> str | None:
    """The variant the training data picks: each variant's inner-split score (MAE or ROC-AUC
    on the estimator's held-out 10 %, target units) against the default's on the (fold, seed)
    pairs where both have one; the variant with the best mean difference, if it is better
    than the default, else the default. Without any scored pair, the inner validation loss of
    the variants trained on the default loss (``small_data._pick``)."""
    scored = runs[runs.inner_valid_score.notna()]
    reference = sd.reference_variant(runs, kind) if len(runs) else sd.DEFAULTS[kind]
    default = scored[scored.variant == reference]
    sign = -1.0 if kind == "classification" else 1.0  # lower is better after the sign
    by_pair = {(f, s): v for f, s, v in zip(default.fold, default.seed,
                                             default.inner_valid_score, strict=True)}
    best, best_diff, compared = reference, 0.0, False
    for variant, group in scored[scored.variant != reference].groupby("variant"):
        diffs = [sign * (v - by_pair[(f, s)])
                 for f, s, v in zip(group.fold, group.seed, group.inner_valid_score, strict=True)
                 if (f, s) in by_pair]
        compared = compared or bool(diffs)
        if diffs and np.mean(diffs) < best_diff:
            best, best_diff = variant, float(np.mean(diffs))
    if compared:
        return best
    return sd._pick(runs, kind) if len(runs) else None


def summary(sizes: list[int] | None = None) -> pd.DataFrame:
    out = []
    for task, kind, metric, col, size, at in sd.cgcnn_runs_by_size(sizes):
        reference = sd.reference_variant(at, kind)
        default = at[(at.variant == reference) & (at.seed == 0)]
        folds = sorted(int(f) for f in default.fold) or [0]
        at = at[at.fold.isin(folds)]
        # a variant counts at a seed only when it ran every fold of the default
        complete = at.groupby(["variant", "seed"]).fold.nunique() == len(folds)
        complete = complete[complete].index
        if len(complete) == 0:
            continue
        pick = pick_against_default(at[[not sd.no_inner_split(v) for v in at.variant]], kind)
        rf = sd._rf_predictions(task, size, folds)
        order = {sd.DEFAULTS[kind]: 0, sd.PREVIOUS_DEFAULT: 1}
        for variant in sorted({v for v, _ in complete}, key=lambda v: (order.get(v, 2), v)):
            seeds = sorted(s for v, s in complete if v == variant)
            preds = [sd._predictions(task, variant, at[(at.variant == variant)
                                                       & (at.seed == s)]) for s in seeds]
            if any(p is None for p in preds):
                continue
            base = preds[0][["position", "y_true"]]
            aligned = [base.merge(p, on=["position", "y_true"])[col].to_numpy()
                       for p in preds]
            if any(len(a) != len(base) for a in aligned):
                continue
            per_seed = [sd._metric(kind, base.y_true.to_numpy(), a) for a in aligned]
            line = {"task": task, "metric": metric, "size": int(size),
                    "folds": ",".join(map(str, folds)), "variant": variant,
                    "how": ", ".join(filter(None, [
                        {sd.DEFAULTS[kind]: "default",
                         sd.PREVIOUS_DEFAULT: "previous default"}.get(
                            variant, ""),
                        "picked" if variant == pick else
                        "a priori" if sd.no_inner_split(variant) else ""])),
                    "seeds": "/".join(map(str, seeds)), "cgcnn": float(np.mean(per_seed)),
                    "per_seed": "/".join(f"{m:.4f}" for m in per_seed)}
            if rf is not None:
                both = base.merge(rf[["position", col]].rename(columns={col: col + "_rf"}),
                                  on="position")
                if len(both) == len(base):
                    y = base.y_true.to_numpy()
                    d, lo, hi = pooled_versus(kind, y, aligned, both[col + "_rf"].to_numpy())
                    line.update(rf=sd._metric(kind, y, both[col + "_rf"].to_numpy()),
                                diff=d, lo=lo, hi=hi, verdict=verdict(kind, lo, hi))
            out.append(line)
    return pd.DataFrame(out)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| task (metric) | size | folds | RF | CGCNN variant | seeds | CGCNN (seed mean) "
             "| per seed | CGCNN - RF [95 % CI] | verdict |", "|" + " --- |" * 10]
    for r in frame.itertuples():
        how = f" ({r.how})" if r.how else ""
        has_rf = isinstance(getattr(r, "rf", None), float) and not np.isnan(r.rf)
        rf = f"{r.rf:.4f}" if has_rf else ""
        ci = f"{r.diff:+.4f} [{r.lo:+.4f}, {r.hi:+.4f}]" if has_rf else ""
        lines.append(f"| {r.task} ({r.metric}) | {r.size} | {r.folds} | {rf} | {r.variant}{how} "
                     f"| {r.seeds} | {r.cgcnn:.4f} | {r.per_seed} | {ci} | "
                     f"{r.verdict if has_rf else ''} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="", help="comma-separated sizes (default: all)")
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(markdown(summary(sizes or None)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
