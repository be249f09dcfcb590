"""Drop-in for a matminer notebook: what changes when RandomForestRegressor() becomes
CGCNNRegressor() in a notebook that does what notebooks do next.

Feature names and pandas output in a ColumnTransformer, the notebook example end to end, quiet
fits inside meta-estimators, the epoch log (columns in target units, explained, no colour codes
in files, the early-stopping epoch shown), scikit-learn's text repr, and error messages that
name what the user knows (equal-size structures in an object array, DataFrame labels).
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pandas as pd
import pytest
from shared_data import ROOT, TINY
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from skcgcnn import CGCNNClassifier, CGCNNRegressor, CrystalGraphFeaturizer

QUIET_TINY = {k: v for k, v in TINY.items() if k != "verbose"}  # verbose left at its default


def _regressor(**params):
    return CGCNNRegressor(**{**TINY, "max_epochs": 2, **params})


# =========================================================================== feature names


@pytest.mark.parametrize("cls", [CGCNNRegressor, CGCNNClassifier])
def test_get_feature_names_out_and_pandas_output(cls, perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    target = y[:40] if cls is CGCNNRegressor else np.where(y[:40] > np.median(y[:40]), "a", "b")
    est = cls(**{**TINY, "max_epochs": 1, "module__atom_fea_len": 8})
    with pytest.raises(Exception, match="not fitted"):
        est.get_feature_names_out()
    est.fit(graphs[:40], target)
    prefix = cls.__name__.lower()
    names = est.get_feature_names_out()
    assert names.tolist() == [f"{prefix}{i}" for i in range(8)]
    series = pd.Series(graphs[:40], index=[f"id-{i}" for i in range(40)])
    plain = est.transform(series)
    est.set_output(transform="pandas")
    frame = est.transform(series)
    assert isinstance(frame, pd.DataFrame) and frame.columns.tolist() == names.tolist()
    assert frame.index.tolist() == series.index.tolist()
    np.testing.assert_array_equal(frame.to_numpy(), plain)
    # predict is not affected by set_output; a clone keeps the output setting
    assert isinstance(est.predict(series), np.ndarray)
    assert isinstance(clone(est).fit(graphs[:40], target).transform(series), pd.DataFrame)


def test_column_transformer_magpie_and_cgcnn_to_random_forest(perovskites):
    df = perovskites.iloc[:80].copy()
    df = CrystalGraphFeaturizer().featurize_dataframe(df, "structure", pbar=False)
    df["volume_per_atom"] = [s.volume / len(s) for s in df["structure"]]
    features = ColumnTransformer([
        ("numeric", "passthrough", ["volume_per_atom"]),
        ("cgcnn", _regressor(module__atom_fea_len=8), "structure"),
    ]).set_output(transform="pandas")
    model = make_pipeline(features, RandomForestRegressor(n_estimators=20, random_state=0))
    model.fit(df, df["e_form"])
    names = model[0].get_feature_names_out().tolist()
    assert names == ["numeric__volume_per_atom"] + [f"cgcnn__cgcnnregressor{i}" for i in range(8)]
    out = model[0].transform(df)
    assert out.columns.tolist() == names and out.index.equals(df.index)
    importances = pd.Series(model[-1].feature_importances_, index=names)
    assert importances.sum() == pytest.approx(1.0)
    # the graph column works as well as the structure column, with the same result
    by_graph = clone(model).set_params(
        columntransformer__transformers=[("numeric", "passthrough", ["volume_per_atom"]),
                                         ("cgcnn", _regressor(module__atom_fea_len=8),
                                          "crystal_graph")])
    np.testing.assert_array_equal(by_graph.fit(df, df["e_form"]).predict(df), model.predict(df))
    # and the pipeline of featurizer + network names its features too
    pipe = make_pipeline(CrystalGraphFeaturizer(), _regressor(module__atom_fea_len=8))
    pipe.fit(df["structure"], df["e_form"])
    assert pipe.get_feature_names_out().tolist() == [f"cgcnnregressor{i}" for i in range(8)]


def test_matminer_notebook_example_runs_end_to_end(capsys):
    spec = importlib.util.spec_from_file_location("matminer_notebook",
                                                  ROOT / "examples" / "matminer_notebook.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--n-samples", "120", "--max-epochs", "3"])
    out = capsys.readouterr().out
    assert result["identical"] and "identical: True" in out
    names = result["feature_names"]
    assert sum(n.startswith("magpie__") for n in names) == 132
    assert sum(n.startswith("cgcnn__cgcnnregressor") for n in names) == 64
    assert result["importances"].index.tolist() == names
    assert isinstance(result["transformed"], pd.DataFrame)
    assert np.isfinite(result["mae"])


# =========================================================================== quiet by default


@pytest.fixture
def terminal(monkeypatch):
    """Make the estimators believe a person watches stdout on a terminal."""
    import skcgcnn._logging as logging_

    monkeypatch.setattr(logging_, "stdout_is_terminal", lambda: True)


def test_cross_val_score_with_defaults_prints_nothing(perovskite_graphs, capfd, terminal):
    graphs, y, _ = perovskite_graphs
    est = CGCNNRegressor(**{**QUIET_TINY, "max_epochs": 2})
    assert est.get_params()["verbose"] == "auto"
    scores = cross_val_score(est, graphs[:60], y[:60], cv=3)
    assert len(scores) == 3
    GridSearchCV(est, {"lr": [0.001, 0.01]}, cv=2).fit(graphs[:40], y[:40])
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""
    # while the same estimator, fitted at the top level of a watched session, shows its log
    clone(est).fit(graphs[:60], y[:60])
    out = capfd.readouterr().out
    assert "train_loss" in out and "valid_mae" in out


def test_auto_verbose_is_quiet_when_nobody_watches(perovskite_graphs, capfd):
    graphs, y, _ = perovskite_graphs
    CGCNNRegressor(**{**QUIET_TINY, "max_epochs": 2}).fit(graphs[:40], y[:40])
    assert capfd.readouterr().out == ""  # stdout is captured: not a terminal


def test_log_in_files_has_no_colour_codes_but_a_terminal_has(perovskite_graphs, capsys,
                                                             monkeypatch):
    graphs, y, _ = perovskite_graphs
    _regressor(verbose=1, max_epochs=3).fit(graphs[:60], y[:60])
    plain = capsys.readouterr().out
    assert "\x1b[" not in plain and "*" in plain  # best values marked without ANSI codes
    import skcgcnn._logging as logging_

    monkeypatch.setattr(logging_, "stdout_is_terminal", lambda: True)
    _regressor(verbose=1, max_epochs=3).fit(graphs[:60], y[:60])
    assert "\x1b[" in capsys.readouterr().out


# =========================================================================== the epoch log


def test_epoch_log_shows_validation_error_in_target_units_and_explains_columns(
        perovskite_graphs, capsys):
    graphs, y, _ = perovskite_graphs
    X, target = graphs[:100], y[:100]
    est = _regressor(verbose=1, max_epochs=3).fit(X, target)
    out = capsys.readouterr().out
    assert re.search(r"valid_mae\s+mean absolute error on the validation split, in the units "
                     r"of y", out)
    assert re.search(r"train_loss\s+training loss: mean absolute error of the standardised",
                     out)
    header = next(line for line in out.splitlines()
                  if line.split()[:1] == ["epoch"] and "train_loss" in line)
    assert "valid_mae" in header.split()
    # valid_mae is the MAE of the validation predictions in the units of y
    history_mae = est.history_[-1, "valid_mae"]
    from skorch.dataset import ValidSplit

    _, valid = ValidSplit(0.1, random_state=0)(X, target)
    idx = np.asarray(valid.indices)
    expected = np.mean(np.abs(est.predict(X[idx]) - target[idx]))
    assert history_mae == pytest.approx(expected, rel=1e-4)
    # scaled targets: the MAE in eV/atom is the loss-scale error times the std of y
    assert 0.05 * np.std(target) < history_mae < 5 * np.std(target)


def test_classifier_log_shows_accuracy(perovskite_graphs, capsys):
    graphs, y, _ = perovskite_graphs
    labels = np.where(y[:100] > np.median(y[:100]), "high", "low")
    CGCNNClassifier(**{**TINY, "verbose": 1, "max_epochs": 2}).fit(graphs[:100], labels)
    out = capsys.readouterr().out
    assert re.search(r"valid_acc\s+accuracy on the validation split", out)
    assert "cross-entropy" in out


def test_early_stopping_shows_the_epoch_that_triggered_it(perovskite_graphs, capsys):
    graphs, y, _ = perovskite_graphs
    est = _regressor(verbose=1, max_epochs=50, lr=0.3,
                     callbacks__early_stopping__patience=2).fit(graphs[:60], y[:60])
    out = capsys.readouterr().out
    stopped_at = len(est.history_)
    assert stopped_at < 50
    rows = [line.split() for line in out.splitlines()
            if line.strip() and line.split()[0].isdigit()]
    assert int(rows[-1][0]) == stopped_at  # the last epoch is in the table
    best = est.callbacks_[[n for n, _ in est.callbacks_].index("early_stopping")][1].best_epoch_
    assert re.search(rf"[Ss]topp\w* at epoch {stopped_at}\b.*best.*epoch {best}", out)


# =========================================================================== repr


def test_text_repr_is_scikit_learns():
    est = CGCNNRegressor(max_epochs=7, lr=0.01, module__n_conv=4)
    assert repr(est) == "CGCNNRegressor(lr=0.01, max_epochs=7, module__n_conv=4)"
    assert repr(CGCNNRegressor()) == "CGCNNRegressor()"
    assert repr(CGCNNClassifier(class_weight="balanced")) == (
        "CGCNNClassifier(class_weight='balanced')")
    text = repr(make_pipeline(CrystalGraphFeaturizer(radius=6.0), est))
    assert "iterator_train" not in text and "use_caching" not in text and "compile" not in text
    assert "CGCNNRegressor(lr=0.01, max_epochs=7, module__n_conv=4)" in text.replace("\n", "")


def test_repr_of_a_fitted_model_has_no_module_tree(perovskite_graphs):
    graphs, y, _ = perovskite_graphs
    est = _regressor(max_epochs=1).fit(graphs[:30], y[:30])
    text = repr(est)
    assert "Linear(" not in text and "module_=" not in text and "initialized" not in text
    assert text.startswith("CGCNNRegressor(") and "max_epochs=1" in text


# =========================================================================== error messages


def test_equal_size_structures_in_an_object_array_are_explained(perovskites):
    structures = perovskites["structure"].iloc[:20]  # all perovskites have 5 sites
    X = np.array(list(structures), dtype=object)
    assert X.ndim == 2  # numpy splits each Structure into its sites
    with pytest.raises(ValueError) as caught:
        _regressor().fit(X, perovskites["e_form"].iloc[:20])
    message = str(caught.value)
    assert "(20, 5)" in message and "sites" in message
    assert ".to_numpy()" in message and "list" in message


def test_errors_name_position_and_label(perovskites):
    df = perovskites.iloc[:30].copy()
    df.index = [f"mb-perovskites-{i:05d}" for i in range(30)]
    X = df["structure"].copy()
    X.iloc[3] = "SrTiO3"
    with pytest.raises(ValueError, match=r"X\[3\] \(label 'mb-perovskites-00003'\) is of type "
                                         r"str"):
        _regressor().fit(X, df["e_form"])
    broken = df["structure"].iloc[4].copy()
    broken.append("O", broken[0].frac_coords, validate_proximity=False)
    structures = list(df["structure"])
    structures[4] = broken
    X = pd.Series(structures, index=df.index, dtype=object)
    with pytest.raises(ValueError, match=r"entry 4 \(label 'mb-perovskites-00004'\).*overlap"):
        _regressor().fit(X, df["e_form"])
    # without labels (list, array, default index), only positions
    with pytest.raises(ValueError, match=r"entry 4: .*overlap"):
        _regressor().fit(structures, df["e_form"])

