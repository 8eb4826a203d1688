"""Platt-scaled SVM probabilities: alone as CalibratedClassifierCV gives them, and inside late
fusion with sigmoids fitted on the out-of-fold decisions, held out from the rows they map."""

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.svm import SVC

from mmfeat.fusion import LateFusionClassifier
from mmfeat.fusion.platt import (
    PlattScaled,
    apply_sigmoids,
    cross_fitted_sigmoids,
    decision_columns,
    fit_sigmoids,
)


@pytest.fixture(scope="module")
def three_classes():
    return make_classification(240, n_features=5, n_informative=4, n_redundant=0, n_classes=3,
                               random_state=0)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_alone_it_gives_calibratedclassifiercv_probabilities(n_classes):
    X, y = make_classification(200, n_features=5, n_informative=4, n_redundant=0,
                               n_classes=n_classes, random_state=1)
    ours = PlattScaled(SVC()).fit(X, y)
    theirs = CalibratedClassifierCV(SVC(), cv=3, ensemble=False).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("params, match", [
    ({"estimator": "svm"}, "'estimator' parameter"),
    ({"estimator": SVC(), "cv": 1}, "'cv' parameter"),
])
def test_parameters_are_validated(three_classes, params, match):
    from sklearn.utils._param_validation import InvalidParameterError

    X, y = three_classes
    with pytest.raises(InvalidParameterError, match=match):
        PlattScaled(**params).fit(X, y)


def test_a_split_missing_classes_gets_their_columns_at_the_lowest_value():
    # Trained on classes 0 and 2 of 0..3: a binary SVM's one decision value becomes two
    # columns, and classes 1 and 3 get a value under any the row has.
    decisions = decision_columns(np.array([0.5, -2.0]), np.array([0, 2]), np.arange(4))
    np.testing.assert_array_equal(decisions, [[-0.5, -1.5, 0.5, -1.5], [2.0, -3.0, -2.0, -3.0]])
    three = decision_columns(np.ones((2, 3)), np.array([0, 1, 3]), np.arange(4))
    np.testing.assert_array_equal(three[:, 2], -1.0)


def test_sigmoids_stay_finite_on_a_separable_class():
    decisions = np.r_[-np.ones(30), np.ones(30)][:, None]
    (a, b), = fit_sigmoids(decisions, np.r_[np.zeros(30, int), np.ones(30, int)])
    assert np.isfinite([a, b]).all() and a > 0
    proba = apply_sigmoids([(a, b)], decisions)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[-1, 1] < 1.0  # Platt's smoothed target, not a certainty


def test_cross_fitted_sigmoids_never_map_rows_they_were_fitted_on():
    # Pure noise decisions: sigmoids fitted on all rows find a slope in the noise; fitted on
    # the other rows, they map each row from what the others say, and a row's own label
    # cannot leak into its probability.
    rng = np.random.default_rng(0)
    decisions, codes = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    splits = [(np.setdiff1d(np.arange(60), test), test) for test in np.array_split(
        np.arange(60), 5)]
    held_out = cross_fitted_sigmoids(decisions, codes, splits)
    flipped = codes.copy()
    flipped[:12] = (codes[:12] + 1) % 3  # change the labels of the first split's rows only
    np.testing.assert_allclose(cross_fitted_sigmoids(decisions, flipped, splits)[:12],
                               held_out[:12])
    in_sample = apply_sigmoids(fit_sigmoids(decisions, codes), decisions)
    assert not np.allclose(in_sample[:12], held_out[:12])


def test_late_fusion_svm_modality_fits_each_svm_once_per_split(three_classes, monkeypatch):
    X, y = three_classes
    fits = []
    original = SVC.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(len(args[1]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SVC, "fit", counting_fit)
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    model = LateFusionClassifier({"a": (["f0", "f1", "f2"], "passthrough"),
                                  "b": (["f3", "f4"], "passthrough")}, cv=3,
                                 random_state=0).fit(df, y)
    # Two narrow modalities, each: an SVM per out-of-fold split and one on all rows.
    assert sorted(fits) == [160] * 6 + [240] * 2
    report = model.modality_report_.set_index("modality")
    svm = [name for name in "ab" if report.loc[name, "model"] == "rbf_svm"]
    for name in svm:
        platt = model.estimators_[name].named_steps["estimator"]
        assert isinstance(platt, PlattScaled)
        proba = platt.predict_proba(X[:, :3] if name == "a" else X[:, 3:])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    proba = model.predict_proba(df)
    assert proba.shape == (240, 3) and (model.predict(df) == y).mean() > 0.7
