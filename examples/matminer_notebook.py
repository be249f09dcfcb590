"""A matminer notebook flow with CGCNN dropped in: Magpie + CGCNN embeddings -> random forest.

What a materials scientist's notebook does, cell by cell, on the shipped perovskites:

1. featurize a DataFrame with matminer: Magpie composition statistics (``ElementProperty``) and
   crystal graphs (``CrystalGraphFeaturizer``), both with ``featurize_dataframe``;
2. store the featurized frame with matminer's ``store_dataframe_as_json`` and load it back
   with ``load_dataframe_from_json`` (crystal graphs are MSONable);
3. a ``ColumnTransformer`` passes the Magpie columns through and trains ``CGCNNRegressor`` on
   the graph column, whose crystal embeddings join the Magpie features; a
   ``RandomForestRegressor`` learns from both. ``set_output(transform="pandas")`` keeps column
   names and the index all the way, ``get_feature_names_out()`` names every feature, so the
   forest's feature importances can be read by name;
4. the model predicts the reloaded frame exactly as the original one.

Run it with ``python examples/matminer_notebook.py [--n-samples N] [--max-epochs N]``
(about a minute with the defaults on two cores).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from matminer.featurizers.composition import ElementProperty
from matminer.featurizers.conversions import StructureToComposition
from matminer.utils.io import load_dataframe_from_json, store_dataframe_as_json
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skcgcnn import CGCNNRegressor, CrystalGraphFeaturizer

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "matbench_perovskites_demo.json.gz"


def featurize(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Magpie columns and a crystal_graph column, the matminer way."""
    df = StructureToComposition().featurize_dataframe(df, "structure", pbar=False)
    magpie = ElementProperty.from_preset("magpie", impute_nan=True)
    df = magpie.featurize_dataframe(df, "composition", pbar=False)
    df = CrystalGraphFeaturizer().featurize_dataframe(df, "structure", pbar=False)
    return df, magpie.feature_labels()


def build_model(magpie_columns: list[str], max_epochs: int, seed: int):
    """Magpie features + CGCNN crystal embeddings -> random forest, with pandas output."""
    features = ColumnTransformer([
        ("magpie", "passthrough", magpie_columns),
        ("cgcnn", CGCNNRegressor(max_epochs=max_epochs, random_state=seed), "crystal_graph"),
    ])
    model = make_pipeline(features, RandomForestRegressor(n_estimators=100, random_state=seed,
                                                          n_jobs=1))
    return model.set_output(transform="pandas")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n-samples", type=int, default=600)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the featurized frame is stored (default: a temporary folder)")
    args = parser.parse_args(argv)

    # -- cell 1: load and featurize with matminer
    df = load_dataframe_from_json(str(args.data), pbar=False).iloc[: args.n_samples]
    df, magpie_columns = featurize(df)
    print(f"featurized {len(df)} structures: {len(magpie_columns)} Magpie columns + crystal_graph")

    # -- cell 2: store the featurized frame and load it back (matminer's own JSON functions)
    with tempfile.TemporaryDirectory() as tmp:
        path = (args.workdir or Path(tmp)) / "perovskites_featurized.json.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        store_dataframe_as_json(df, str(path), compression="gz", pbar=False)
        reloaded = load_dataframe_from_json(str(path), pbar=False)
        print(f"stored and reloaded {path.name} ({path.stat().st_size / 1e6:.1f} MB)")

    # -- cell 3: ColumnTransformer (Magpie | CGCNN embeddings) -> random forest
    train, test = train_test_split(df, test_size=0.2, random_state=args.seed)
    model = build_model(magpie_columns, args.max_epochs, args.seed)
    model.fit(train, train["e_form"])
    names = model[:-1].get_feature_names_out()
    transformed = model[:-1].transform(test)
    assert isinstance(transformed, pd.DataFrame) and list(transformed.columns) == list(names)
    importances = pd.Series(model[-1].feature_importances_, index=names)
    top = importances.sort_values(ascending=False).head(10)
    cgcnn_share = importances[[n.startswith("cgcnn__") for n in names]].sum()
    mae = mean_absolute_error(test["e_form"], model.predict(test))
    print(f"\ntest MAE {mae:.3f} eV/atom; the {sum(n.startswith('cgcnn__') for n in names)} "
          f"CGCNN embedding features carry {cgcnn_share:.0%} of the forest's importance")
    print("ten most important features:")
    print(top.to_string(float_format=lambda v: f"{v:.3f}"))

    # -- cell 4: the reloaded frame predicts exactly as the original
    original = model.predict(test)
    again = model.predict(reloaded.loc[test.index])
    identical = bool(np.array_equal(original, again))
    print(f"\npredictions from the reloaded frame identical: {identical}")
    return {"mae": mae, "feature_names": list(names), "importances": importances,
            "identical": identical, "transformed": transformed}


if __name__ == "__main__":
    main()
