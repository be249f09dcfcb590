"""CrystalGraphFeaturizer: the matminer contract, DataFrames, joblib parallelism, errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from skcgcnn import CrystalGraph, CrystalGraphFeaturizer
from skcgcnn.featurizer import FeaturizationError
from skcgcnn.graph import build_graph


def test_matminer_contract():
    featurizer = CrystalGraphFeaturizer(radius=6.0, max_num_nbr=8, n_jobs=2)
    assert featurizer.feature_labels() == ["crystal_graph"]
    assert "Xie" in featurizer.citations()[0]
    assert featurizer.implementors()
    params = featurizer.get_params()
    assert params == {"radius": 6.0, "max_num_nbr": 8, "n_jobs": 2, "ignore_errors": False}
    assert clone(featurizer).get_params() == params


def test_featurize_dataframe_adds_graph_column(sample_structures):
    ids, structures = sample_structures
    df = pd.DataFrame({"structure": structures}, index=ids)
    out = CrystalGraphFeaturizer().featurize_dataframe(df, "structure", pbar=False)
    assert list(out.columns) == ["structure", "crystal_graph"]
    assert list(out.index) == ids
    for structure, graph in zip(out["structure"], out["crystal_graph"]):
        assert isinstance(graph, CrystalGraph)
        assert graph == build_graph(structure)


def test_parallel_featurization_equals_serial(perovskites):
    structures = perovskites["structure"].iloc[:300]
    serial = CrystalGraphFeaturizer(n_jobs=1).graphs(structures)
    parallel = CrystalGraphFeaturizer(n_jobs=2).graphs(structures)
    assert len(parallel) == 300
    assert all(a == b for a, b in zip(serial, parallel))


def test_error_names_entry_and_reason(sample_structures):
    _, structures = sample_structures
    entries = list(structures[:3]) + ["not a structure"] + list(structures[3:5])
    expected = r"entry 3: expected a pymatgen Structure"
    with pytest.raises(FeaturizationError, match=expected):
        CrystalGraphFeaturizer().featurize_many(entries)


def test_ignore_errors_gives_nan_and_errors(sample_structures):
    _, structures = sample_structures
    broken = structures[0].copy()
    broken.append("Na", broken[0].frac_coords)  # a duplicate site: distance 0
    rows = CrystalGraphFeaturizer().featurize_many(
        [structures[1], broken], ignore_errors=True, return_errors=True
    )
    assert isinstance(rows[0][0], CrystalGraph) and math.isnan(rows[0][1])
    assert math.isnan(rows[1][0]) and "overlap" in rows[1][1]
    transformed = CrystalGraphFeaturizer(ignore_errors=True).transform([structures[1], broken])
    assert transformed.shape == (2, 1) and math.isnan(transformed[1, 0])


def test_transform_shape_for_pipelines(sample_structures):
    _, structures = sample_structures
    out = CrystalGraphFeaturizer().fit(structures).transform(np.array(structures, dtype=object))
    assert out.shape == (10, 1) and out.dtype == object
