"""What the estimators do with y (skcgcnn._targets), tested on y alone, without a network."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import DataConversionWarning

from skcgcnn._targets import (
    class_labels,
    class_weights,
    encode_labels,
    fit_label_encoder,
    regression_targets,
    standardisation,
)


def test_a_weight_of_two_counts_a_sample_twice_in_the_standardisation():
    y = np.array([[1.0, 10.0], [2.0, 10.0], [6.0, 10.0]])
    weighted = standardisation(y, np.array([1.0, 2.0, 1.0]))
    repeated = standardisation(y[[0, 1, 1, 2]], None)
    np.testing.assert_allclose(weighted[0], repeated[0])
    np.testing.assert_allclose(weighted[1], repeated[1])
    assert repeated[1][1] == 1.0  # a constant column is not divided by zero
    scaled = (y[[0, 1, 1, 2]] - repeated[0]) / repeated[1]
    np.testing.assert_allclose(scaled[:, 0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, 0].std(), 1.0)


def test_regression_targets_become_float64_and_refuse_what_is_not_a_number():
    y = regression_targets(np.array(["1.5", 2, 3], dtype=object))
    assert y.dtype == np.float64 and y.tolist() == [1.5, 2.0, 3.0]
    with pytest.raises(ValueError, match="index 1 "):
        regression_targets([0.0, np.inf, 1.0])
    with pytest.raises(ValueError, match="numeric"):
        regression_targets(["a", "b"])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        regression_targets(np.zeros((2, 2, 2)))


def test_class_labels_flatten_a_column_with_sklearns_warning_and_refuse_mixed_types():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = class_labels(np.array([["a"], ["b"]]))
    assert y.tolist() == ["a", "b"]
    assert [w.category for w in caught] == [DataConversionWarning]
    with pytest.raises(ValueError, match=r"y\[0\] is str and y\[2\] is int"):
        class_labels(np.array(["a", "b", 1], dtype=object))
    with pytest.raises(ValueError, match="missing value .* at index 1"):
        class_labels(["a", None, "b"])


def test_the_encoder_takes_the_given_classes_and_encodes_in_their_order():
    encoder = fit_label_encoder(np.array(["b", "b"]), classes=["c", "a", "b"])
    assert encoder.classes_.tolist() == ["a", "b", "c"]  # a class y lacks is kept
    assert encode_labels(np.array(["c", "a"]), encoder).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"y\[1\] is not one of the classes"):
        encode_labels(np.array(["a", "d"]), encoder)
    with pytest.raises(ValueError, match="only one class"):
        fit_label_encoder(np.array(["a", "a"]))
    with pytest.raises(ValueError, match="continuous"):
        fit_label_encoder(np.array([0.1, 0.25, 0.7]))
    # the same floats are labels when the classes are given
    assert fit_label_encoder(np.array([0.1, 0.25]), classes=[0.1, 0.25, 0.7]).classes_.size == 3


def test_class_weights_are_keyed_by_label_and_come_out_per_code():
    classes = np.array(["a", "b", "c"])
    codes = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(class_weights({"b": 3.0}, classes, codes), [1.0, 3.0, 1.0])
    balanced = class_weights("balanced", classes, codes)
    np.testing.assert_allclose(balanced, [6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2)])
    with pytest.raises(ValueError, match=r"class_weight has labels \['z'\]"):
        class_weights({"z": 2.0}, classes, codes)
