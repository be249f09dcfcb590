"""Grid search over CGCNN beside a matminer + random forest pipeline, on the same folds.

Both models are scikit-learn Pipelines that start from pymatgen Structures, and both are tuned
by ``GridSearchCV`` with the same cross-validation folds (Matbench's
``KFold(shuffle=True, random_state=18012019)``) on the same training structures:

* **Magpie + RF**: matminer's Magpie composition statistics (``ElementProperty``) and a
  ``RandomForestRegressor``, searched over ``max_features`` and ``min_samples_leaf``;
* **CGCNN**: ``CrystalGraphFeaturizer`` and ``CGCNNRegressor``, searched over the number of
  convolutions and the learning rate.

The crystal graphs are cached by content with :class:`skcgcnn.cache.StructureMemory`, so each
training fold is featurized once for all candidates. The refitted best models are then scored
on held-out structures and one comparison table is printed.

Run it with ``python examples/pipeline_gridsearch.py [--data PATH] [--n-samples N]
[--max-epochs N] [--folds K] [--n-jobs J]``; the defaults (600 structures of the shipped
perovskites subset) take a few minutes on two CPU cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from matminer.featurizers.composition import ElementProperty
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import Pipeline

from skcgcnn import CGCNNRegressor, CrystalGraphFeaturizer
from skcgcnn.cache import StructureMemory
from skcgcnn.datasets import load_matbench

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "matbench_perovskites_demo.json.gz"
#: Matbench's seed for its cross-validation folds.
MATBENCH_SEED = 18012019


class MagpieFeatures(TransformerMixin, BaseEstimator):
    """Magpie composition statistics (matminer ``ElementProperty``) of Structures.

    A stateless Pipeline step. matminer's featurizers default to a ``multiprocessing.Pool``,
    which cannot start inside ``GridSearchCV``'s worker processes, and ``clone`` forgets
    ``set_n_jobs``; so the featurizer is made, serial, at transform time.
    """

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        featurizer = ElementProperty.from_preset("magpie", impute_nan=True)
        featurizer.set_n_jobs(1)
        return np.array([featurizer.featurize(structure.composition) for structure in X])


def search_summary(name, search, X_test, y_test, seconds):
    """One row of the comparison table from a fitted search."""
    best = search.best_index_
    fold_maes = -np.array(
        [search.cv_results_[f"split{k}_test_score"][best] for k in range(search.n_splits_)]
    )
    pred = search.predict(X_test)
    params = {key.split("__", 1)[-1]: value for key, value in search.best_params_.items()}
    return {
        "model": name,
        "best parameters": ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in params.items()) or "-",
        "CV MAE": f"{fold_maes.mean():.3f} ± {fold_maes.std():.3f}",
        "test MAE": f"{mean_absolute_error(y_test, pred):.3f}",
        "test R2": f"{r2_score(y_test, pred):.3f}",
        "time (s)": f"{seconds:.0f}",
    }


def print_table(rows):
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--target", default="e_form")
    parser.add_argument("--n-samples", type=int, default=600)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    df = load_matbench(args.data, target=args.target)
    if args.n_samples < len(df):
        df = df.sample(n=args.n_samples, random_state=args.seed)
    X = np.asarray(df["structure"])
    y = df[args.target].to_numpy()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=args.seed
    )
    folds = KFold(args.folds, shuffle=True, random_state=MATBENCH_SEED)  # the same for both
    print(f"{len(X_train)} training / {len(X_test)} test structures from {args.data.name}; "
          f"{args.folds}-fold grid searches with n_jobs={args.n_jobs}\n")

    rows = []
    with tempfile.TemporaryDirectory() as cache:
        memory = StructureMemory(cache)
        start = time.perf_counter()
        mean = GridSearchCV(DummyRegressor(), {"strategy": ["mean", "median"]}, cv=folds,
                            scoring="neg_mean_absolute_error").fit(X_train, y_train)
        rows.append(search_summary("mean predictor", mean, X_test, y_test,
                                   time.perf_counter() - start))

        # no memory here: a class defined in a script's __main__ cannot be pickled back from
        # the search's worker processes, so joblib cannot store its fitted copies
        magpie_rf = Pipeline(
            [("magpie", MagpieFeatures()),
             ("rf", RandomForestRegressor(n_estimators=200, random_state=args.seed))],
        )
        grid = {"rf__max_features": [0.3, 1.0], "rf__min_samples_leaf": [1, 3]}
        start = time.perf_counter()
        forest = GridSearchCV(magpie_rf, grid, cv=folds, n_jobs=args.n_jobs,
                              scoring="neg_mean_absolute_error").fit(X_train, y_train)
        rows.append(search_summary("Magpie + RF", forest, X_test, y_test,
                                   time.perf_counter() - start))

        cgcnn = Pipeline(
            [("graphs", CrystalGraphFeaturizer()),
             ("cgcnn", CGCNNRegressor(module__atom_fea_len=32, module__h_fea_len=64,
                                      max_epochs=args.max_epochs, random_state=args.seed,
                                      verbose=0))],
            memory=memory,
        )
        grid = {"cgcnn__module__n_conv": [2, 3], "cgcnn__lr": [0.003, 0.01]}
        start = time.perf_counter()
        network = GridSearchCV(cgcnn, grid, cv=folds, n_jobs=args.n_jobs,
                               scoring="neg_mean_absolute_error").fit(X_train, y_train)
        rows.append(search_summary("CGCNN", network, X_test, y_test,
                                   time.perf_counter() - start))

    print_table(rows)
    print(f"\nMAE in the units of {args.target!r}; CV: mean ± std over the {args.folds} folds "
          "of the best candidate; time: whole search including the refit.")
    return rows


if __name__ == "__main__":
    main()
