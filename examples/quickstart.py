"""Quickstart: CGCNN beside a classical baseline on real perovskites.

This is what ``make demo`` runs. On the 3,000-structure Matbench perovskites subset shipped in
``examples/data`` it

1. splits the structures 80/20 (seeded),
2. trains a matminer + scikit-learn baseline (Magpie ``ElementProperty`` composition features and a
   ``RandomForestRegressor``),
3. trains ``CGCNNRegressor`` on the same training structures,
4. prints a table (MAE, R², fit time) next to the mean predictor and saves a parity plot.

Run it with ``python examples/quickstart.py [--data PATH] [--out DIR] [--max-epochs N]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matminer.featurizers.composition import ElementProperty  # noqa: E402
from matminer.featurizers.conversions import StructureToComposition  # noqa: E402
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.metrics import mean_absolute_error, r2_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skcgcnn import CGCNNRegressor, CrystalGraphFeaturizer  # noqa: E402
from skcgcnn.datasets import load_matbench  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "matbench_perovskites_demo.json.gz"


def magpie_features(structures):
    """Magpie composition statistics (matminer) of each structure."""
    compositions = StructureToComposition().featurize_many(structures, pbar=False)
    featurizer = ElementProperty.from_preset("magpie", impute_nan=True)
    return np.array(featurizer.featurize_many([c[0] for c in compositions], pbar=False))


def evaluate(name, y_true, y_pred, fit_seconds):
    return {
        "model": name,
        "MAE": mean_absolute_error(y_true, y_pred),
        "R2": r2_score(y_true, y_pred),
        "fit_s": fit_seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=Path("demo_output"))
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    df = load_matbench(args.data, target="e_form")
    print(f"{len(df)} perovskites from {args.data.name}; target e_form (eV per 5-atom cell)")
    train, test = train_test_split(df, test_size=0.2, random_state=args.seed)
    y_train, y_test = train["e_form"].to_numpy(), test["e_form"].to_numpy()

    rows, predictions = [], {}
    rows.append(evaluate("mean predictor", y_test, np.full_like(y_test, y_train.mean()), 0.0))

    start = time.perf_counter()
    baseline = RandomForestRegressor(n_estimators=300, n_jobs=-1, random_state=args.seed)
    baseline.fit(magpie_features(train["structure"]), y_train)
    predictions["Magpie + RandomForest"] = baseline.predict(magpie_features(test["structure"]))
    rows.append(evaluate("Magpie + RandomForest", y_test, predictions["Magpie + RandomForest"],
                         time.perf_counter() - start))

    start = time.perf_counter()
    featurizer = CrystalGraphFeaturizer(n_jobs=-1)
    graphs_train = featurizer.graphs(train["structure"])
    graphs_test = featurizer.graphs(test["structure"])
    model = CGCNNRegressor(max_epochs=args.max_epochs, random_state=args.seed, verbose=1)
    model.fit(graphs_train, y_train)
    predictions["CGCNN"] = model.predict(graphs_test)
    rows.append(evaluate("CGCNN", y_test, predictions["CGCNN"], time.perf_counter() - start))

    print(f"\nTest set: {len(test)} structures (train {len(train)})")
    print(f"{'model':<24}{'MAE (eV/cell)':>15}{'R2':>8}{'fit (s)':>10}")
    for row in rows:
        print(f"{row['model']:<24}{row['MAE']:>15.4f}{row['R2']:>8.3f}{row['fit_s']:>10.1f}")

    fig, axes = plt.subplots(1, len(predictions), figsize=(5 * len(predictions), 4.6))
    lo, hi = y_test.min() - 0.2, y_test.max() + 0.2
    for ax, (name, pred) in zip(np.atleast_1d(axes), predictions.items()):
        ax.scatter(y_test, pred, s=6, alpha=0.5)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        mae = mean_absolute_error(y_test, pred)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="DFT e_form (eV/cell)",
               ylabel="predicted (eV/cell)", title=f"{name}\nMAE {mae:.3f} eV/cell")
    fig.tight_layout()
    plot_path = args.out / "parity.png"
    fig.savefig(plot_path, dpi=120)
    print(f"\nParity plot: {plot_path}")
    return rows


if __name__ == "__main__":
    main()
