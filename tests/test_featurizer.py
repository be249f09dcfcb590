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


# --------------------------------------------------------------------------- matminer persistence


def test_featurized_frame_round_trips_through_matminer_json(perovskites, tmp_path):
    from matminer.utils.io import load_dataframe_from_json, store_dataframe_as_json
    from shared_data import TINY

    from skcgcnn import CGCNNRegressor

    df = perovskites.iloc[:48].copy()
    df = CrystalGraphFeaturizer().featurize_dataframe(df, "structure", pbar=False)
    path = tmp_path / "featurized.json.gz"
    store_dataframe_as_json(df, str(path), compression="gz", pbar=False)
    back = load_dataframe_from_json(str(path), pbar=False)
    assert list(back.columns) == list(df.columns) and list(back.index) == list(df.index)
    for original, reloaded in zip(df["crystal_graph"], back["crystal_graph"]):
        assert isinstance(reloaded, CrystalGraph) and reloaded == original
        for name in ("atomic_numbers", "neighbor_indices", "distances"):
            assert getattr(reloaded, name).dtype == getattr(original, name).dtype
    reg = CGCNNRegressor(**{**TINY, "max_epochs": 2}).fit(df["crystal_graph"], df["e_form"])
    np.testing.assert_array_equal(reg.predict(back["crystal_graph"]),
                                  reg.predict(df["crystal_graph"]))


def test_disordered_graph_round_trips_through_matminer_json(tmp_path):
    from matminer.utils.io import load_dataframe_from_json, store_dataframe_as_json
    from pymatgen.core import Lattice, Structure

    mixed = Structure.from_spacegroup("Fm-3m", Lattice.cubic(4.2), [{"Mg": 0.7, "Fe": 0.3}, "O"],
                                      [[0, 0, 0], [0.5, 0.5, 0.5]])
    df = CrystalGraphFeaturizer().featurize_dataframe(
        pd.DataFrame({"structure": [mixed]}), "structure", pbar=False)
    store_dataframe_as_json(df, str(tmp_path / "d.json"), pbar=False)
    graph = load_dataframe_from_json(str(tmp_path / "d.json"), pbar=False)["crystal_graph"][0]
    assert not graph.is_ordered and graph == df["crystal_graph"][0]
    np.testing.assert_array_equal(graph.occupancies, df["crystal_graph"][0].occupancies)


def test_feature_names_and_pandas_output(sample_structures):
    ids, structures = sample_structures
    featurizer = CrystalGraphFeaturizer()
    assert featurizer.get_feature_names_out().tolist() == ["crystal_graph"]
    assert featurizer.get_feature_names_out(["structure"]).tolist() == ["crystal_graph"]
    series = pd.Series(structures, index=ids, name="structure")
    out = clone(featurizer).set_output(transform="pandas").fit_transform(series)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["crystal_graph"]
    assert list(out.index) == ids
    assert all(g == build_graph(s) for g, s in zip(out["crystal_graph"], structures))
    # graphs() (what the estimators use) stays an array whatever set_output says
    graphs = featurizer.set_output(transform="pandas").graphs(series)
    assert isinstance(graphs, np.ndarray) and graphs.shape == (10,)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_errors_name_position_and_index_label(perovskites, n_jobs):
    df = perovskites.iloc[:200].copy()
    df.index = [f"mb-perovskites-{i:05d}" for i in range(200)]
    broken = df["structure"].iloc[150].copy()
    broken.append("O", broken[0].frac_coords, validate_proximity=False)  # overlapping sites
    structures = list(df["structure"])
    structures[150] = broken
    df["structure"] = pd.Series(structures, index=df.index, dtype=object)
    featurizer = CrystalGraphFeaturizer(n_jobs=n_jobs)
    expected = r"entry 150 \(label 'mb-perovskites-00150'\): .*overlap"
    with pytest.raises(FeaturizationError, match=expected) as caught:
        featurizer.featurize_dataframe(df, "structure", pbar=False)
    assert caught.value.position == 150
    with pytest.raises(FeaturizationError, match=expected):
        featurizer.featurize_many(df["structure"])
    with pytest.raises(FeaturizationError, match=r"entry 150: .*overlap"):  # no labels: none
        featurizer.featurize_many(df["structure"].to_numpy())
    with pytest.raises(FeaturizationError, match=r"entry 150: .*overlap"):  # RangeIndex
        featurizer.featurize_dataframe(df.reset_index(drop=True), "structure", pbar=False)


def test_a_single_structure_is_refused_with_what_to_pass(sample_structures):
    _, structures = sample_structures
    for entry in (structures[0], build_graph(structures[0])):
        with pytest.raises(ValueError, match=r"single (Structure|CrystalGraph); pass a sequence"):
            CrystalGraphFeaturizer().transform(entry)


def test_pbar_draws_a_progress_bar_only_when_asked(capsys):
    from pymatgen.core import Lattice, Structure

    cscl = Structure(Lattice.cubic(4.12), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    CrystalGraphFeaturizer().featurize_many([cscl] * 3, pbar=False)
    assert capsys.readouterr().err == ""
    rows = CrystalGraphFeaturizer().featurize_many([cscl] * 3, pbar=True)
    assert len(rows) == 3
    assert "3/3" in capsys.readouterr().err
