"""A modality that is wrong, not missing (``outliers=``): generated numeric views where one view
is replaced by noise on a share of the rows at predict time. The novelty learned at fit (from
training rows only) sets those rows' view aside; clean rows are predicted as before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from mmfeat.errors import collect_errors
from mmfeat.fusion import LateFusionClassifier, LateFusionRegressor, make_early_fusion
from mmfeat.fusion.novelty import fit_novelty, kept_share, novelty
from mmfeat.modelfile import load_model, save_model
from mmfeat.robustness import robustness_report
from mmfeat.scoring import score

WIDTH = 6
A = [f"a{i}" for i in range(WIDTH)]
B = [f"b{i}" for i in range(WIDTH)]
# Plain models per view: the behaviour under test is the fusion's, and they fit fast.
SPEC = {"a": (A, "passthrough", LogisticRegression()),
        "b": (B, "passthrough", LogisticRegression())}


def views(n, seed, n_classes=3):
    """Two numeric views, each a noisy cue of the class."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(n) % n_classes)
    cues = np.random.default_rng(100).normal(size=(2, n_classes, WIDTH)) * 1.5
    a = cues[0][y] + rng.normal(size=(n, WIDTH))
    b = cues[1][y] + rng.normal(size=(n, WIDTH))
    return pd.DataFrame(np.hstack([a, b]), columns=A + B), y


@pytest.fixture(scope="module")
def data():
    train, y_train = views(240, 0)
    test, y_test = views(240, 1)
    rng = np.random.default_rng(2)
    wrong = rng.random(len(test)) < 0.3  # view a of these rows is noise, far from training
    corrupted = test.copy()
    corrupted.loc[wrong, A] = rng.normal(size=(wrong.sum(), WIDTH)) * 8
    return train, y_train, test, y_test, corrupted, wrong


@pytest.fixture(scope="module")
def fitted(data):
    train, y_train, *_ = data
    return {outliers: LateFusionClassifier(SPEC, cv=3, outliers=outliers,
                                           random_state=0).fit(train, y_train)
            for outliers in (None, "missing")}


def accuracy(model, X, y):
    return float((model.predict(X) == y).mean())


def test_missing_recovers_most_of_the_loss_and_says_why(data, fitted):
    _, _, test, y_test, corrupted, wrong = data
    plain, guarded = fitted[None], fitted["missing"]
    clean = accuracy(plain, test, y_test)
    lost = clean - accuracy(plain, corrupted, y_test)
    assert lost > 0.1  # the noisy view misleads the plain fusion
    with collect_errors() as found:
        recovered = accuracy(guarded, corrupted, y_test)
    assert clean - recovered < 0.25 * lost
    flagged = np.zeros(len(test), bool)
    flagged[[error.row for error in found if error.extractor == "a"]] = True
    assert flagged[wrong].mean() >= 0.95 and flagged[~wrong].mean() <= 0.02
    error = next(error for error in found if error.extractor == "a")
    assert "looks unlike the training items (novelty " in error.cause
    threshold = guarded.modality_report_.set_index("modality").loc["a", "novelty_threshold"]
    assert f"threshold {threshold:.3g})" in error.cause
    # The strange view's share of the decision falls on those rows (to 0 where set aside).
    weights = guarded.modality_weights(corrupted)
    assert weights.loc[flagged, "a"].mean() < 0.05
    assert weights.loc[~wrong, "a"].mean() > 0.2


def test_clean_rows_are_predicted_as_without_the_option(data, fitted):
    _, _, test, y_test, *_ = data
    with collect_errors() as found:
        proba = fitted["missing"].predict_proba(test)
    assert len({error.row for error in found}) <= 0.02 * len(test)
    # A row whose every view's novelty is at most half its threshold keeps all of each output.
    models = fitted["missing"]._novelty
    typical = np.all([novelty(models[view], test[cols].to_numpy()) <= 0.5 * models[view][
        "threshold"] for view, cols in (("a", A), ("b", B))], axis=0)
    assert typical.mean() > 0.9
    np.testing.assert_array_equal(proba[typical], fitted[None].predict_proba(test)[typical])
    # The option acts at predict time only: switched off, the model is the plain one.
    off = fitted["missing"].set_params(outliers=None)
    try:
        np.testing.assert_array_equal(off.predict_proba(test), fitted[None].predict_proba(test))
    finally:
        off.set_params(outliers="missing")


def test_thresholds_come_from_training_rows_only(data, fitted):
    train, y_train, _, _, corrupted, _ = data
    report = fitted["missing"].modality_report_.set_index("modality")
    before = report["novelty_threshold"].copy()
    fitted["missing"].predict(corrupted)  # predicting learns nothing
    after = fitted["missing"].modality_report_.set_index("modality")["novelty_threshold"]
    pd.testing.assert_series_equal(before, after)
    # The threshold is the 99.5th percentile of the training rows' out-of-fold novelty, the
    # same for a fit on the same rows, and a fresh clean row rarely passes it.
    splits = [(np.setdiff1d(np.arange(240), part), part)
              for part in np.array_split(np.arange(240), 5)]
    model, oof = fit_novelty(train[A].to_numpy(), splits)
    assert model["threshold"] == pytest.approx(np.percentile(oof, 99.5))
    assert np.mean(oof > model["threshold"]) <= 0.01
    assert novelty(model, train[A].to_numpy()).min() == 0.0  # 0 for typical rows
    fresh, _ = views(240, 3)
    assert np.mean(novelty(model, fresh[A].to_numpy()) > model["threshold"]) <= 0.03


def test_trust_learns_to_discount_a_strange_modality(data, fitted):
    train, y_train, test, y_test, corrupted, wrong = data
    model = LateFusionClassifier(SPEC, cv=3, outliers="trust", random_state=0).fit(train, y_train)
    assert {"a_novelty", "b_novelty", "a_0_x_novelty"} <= set(model.meta_feature_names_)
    assert model.final_estimator_.n_features_in_ == len(model.meta_feature_names_)
    # The meta-learner saw every training row, and a copy of each per modality with that
    # modality's output taken from another row and its novelty at the cap.
    assert model.final_estimator_.coef_.shape[0] == 3
    coef = pd.DataFrame(model.final_estimator_.coef_, columns=model.meta_feature_names_)
    for view in ("a", "b"):  # each class's own evidence is discounted where strange
        for c in range(3):
            assert coef.loc[c, f"{view}_{c}"] > 0 > coef.loc[c, f"{view}_{c}_x_novelty"]
    plain = fitted[None]
    lost = accuracy(plain, test, y_test) - accuracy(plain, corrupted, y_test)
    assert accuracy(model, test, y_test) - accuracy(model, corrupted, y_test) < 0.5 * lost
    assert accuracy(model, test, y_test) >= accuracy(plain, test, y_test) - 0.02


def test_strange_copies_are_the_rows_with_one_modality_made_strange(data):
    from mmfeat.fusion.meta import NOVELTY_CAP, meta_features
    from mmfeat.fusion.novelty import with_strange_copies

    train, y_train, *_ = data
    model = LateFusionClassifier(SPEC, cv=3, outliers="trust", random_state=0).fit(train, y_train)
    rng = np.random.default_rng(0)
    outputs = {name: rng.dirichlet(np.ones(3), size=len(train)) for name in ("a", "b")}
    outputs["b"][:10] = np.nan  # b missing in 10 rows: never copied as strange b
    novelties = {name: np.zeros(len(train)) for name in outputs}
    weights = np.arange(len(train), dtype=float)
    meta, y, params = with_strange_copies(model, outputs, train, novelties, y_train,
                                          {"sample_weight": weights})
    n, n_b = len(train), len(train) - 10
    assert meta.shape == (2 * n + n_b, len(model.meta_feature_names_))
    np.testing.assert_array_equal(meta[:n], meta_features(model, outputs, train, novelties))
    names = model.meta_feature_names_
    strange_a = meta[n:2 * n, names.index("a_novelty")]
    np.testing.assert_allclose(strange_a, NOVELTY_CAP)
    np.testing.assert_array_equal(meta[n:2 * n, names.index("b_novelty")], 0.0)
    np.testing.assert_allclose(meta[2 * n:, names.index("b_novelty")], NOVELTY_CAP)
    assert (meta[2 * n:, names.index("b_available")] == 1).all()
    # The copies keep their row's target and weight.
    rows = np.concatenate([np.arange(n), np.arange(n), np.arange(10, n)])
    np.testing.assert_array_equal(y, y_train[rows])
    np.testing.assert_array_equal(params["sample_weight"], weights[rows])


def test_regression_and_a_saved_model(data, tmp_path):
    train, y_train, test, _, corrupted, wrong = data
    target = train[A[0]] + train[B[0]]
    spec = {"a": (A, "passthrough", Ridge()), "b": (B, "passthrough", Ridge())}
    model = LateFusionRegressor(spec, cv=3, outliers="missing").fit(train, target)
    loaded = load_model(save_model(model, tmp_path / "late.skops"))  # the novelty: plain arrays
    np.testing.assert_allclose(loaded.predict(corrupted), model.predict(corrupted))
    shares = model.modality_weights(corrupted)
    assert (shares.loc[wrong, "a"] == 0).mean() > 0.9


def test_early_fusion_turns_a_strange_block_into_a_missing_one(data):
    train, y_train, test, y_test, corrupted, wrong = data

    def early(outliers):
        view = FunctionTransformer(feature_names_out="one-to-one")
        return make_early_fusion(a=(A, view), b=(B, view), handle_missing=True,
                                 outliers=outliers, estimator=LogisticRegression())

    plain, guarded = early(None).fit(train, y_train), early("missing").fit(train, y_train)
    clean = accuracy(plain, test, y_test)
    lost = clean - accuracy(plain, corrupted, y_test)
    assert lost > 0.1
    with collect_errors() as found:
        assert clean - accuracy(guarded, corrupted, y_test) < 0.25 * lost
    flagged = np.isin(np.arange(len(test)), [error.row for error in found])
    assert flagged[wrong].mean() >= 0.95 and flagged[~wrong].mean() <= 0.02
    block = guarded.named_steps["features"].transform(corrupted)
    missing = guarded.named_steps["features"].get_feature_names_out().tolist().index("a__missing")
    assert block[wrong, missing].mean() > 0.95 and block[~wrong, missing].mean() <= 0.02


def test_robustness_report_rows_with_the_option_off_and_on(data):
    _, _, test, y_test, *_ = data
    frame = test[["a0", "b0"]].rename(columns={"a0": "a", "b0": "b"})
    def column():  # one number per item, NaN for a removed one
        return FunctionTransformer(lambda items: np.asarray(items, dtype=float).reshape(-1, 1))

    model = LateFusionClassifier({"a": ("a", column()), "b": ("b", column())}, cv=3,
                                 outliers="missing").fit(frame, y_test)
    report = robustness_report(model, frame, y_test, modalities={"a": ("a", None),
                                                                 "b": ("b", None)})
    assert list(report["outliers"]) == ["off", "missing"] * 3
    off = report[report["outliers"] == "off"].drop(columns="outliers").reset_index(drop=True)
    plain = robustness_report(model.set_params(outliers=None), frame, y_test,
                              modalities={"a": ("a", None), "b": ("b", None)})
    model.set_params(outliers="missing")
    pd.testing.assert_frame_equal(off, plain)


@pytest.mark.parametrize("params, match", [
    ({"outliers": "drop"}, "The 'outliers' parameter of LateFusionClassifier must be"),
    ({"outliers": "missing", "handle_missing": False}, "needs handle_missing=True"),
    ({"outliers": "trust", "rule": "mean"}, "outliers='trust' gives the meta-learner"),
])
def test_bad_outliers_are_named(data, params, match):
    train, y_train, *_ = data
    with pytest.raises((ValueError, InvalidParameterError), match=match):
        LateFusionClassifier(SPEC, cv=3, **params).fit(train, y_train)


def test_missing_needs_a_model_fitted_with_the_option(data, fitted):
    _, _, test, *_ = data
    model = fitted[None]
    try:
        with pytest.raises(ValueError, match="fitted with outliers=None; fit it again"):
            model.set_params(outliers="missing").predict(test)
    finally:
        model.set_params(outliers=None)


def test_mmfeat_score_writes_why_a_modality_was_set_aside(data, fitted, tmp_path):
    _, _, _, _, corrupted, wrong = data
    rows = corrupted.iloc[:20]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    score(fitted["missing"], tmp_path / "rows.csv", tmp_path / "out", progress=False)
    out = pd.read_parquet(tmp_path / "out")
    causes = out["missing"].fillna("")
    assert causes[wrong[:20]].str.startswith("a: row ").all()
    assert causes[wrong[:20]].str.contains(r"looks unlike the training items \(novelty ").all()
    assert out["prediction"].notna().all() and out["error"].isna().all()


def test_histograms_are_also_scored_in_log_units():
    """A histogram that moves a little mass into bins empty in every training row (what a blur
    does to a colour histogram) is typical in its own units and far in log units."""
    rng = np.random.default_rng(0)

    def histograms(n):  # 4 large bins, 8 small ones, 24 always empty
        counts = np.zeros((n, 36))
        counts[:, :4] = rng.gamma(2.0, size=(n, 4)) * 10
        counts[:, 4:12] = rng.gamma(2.0, size=(n, 8))
        return counts / counts.sum(axis=1, keepdims=True)

    train, test = histograms(300), histograms(200)
    spread = test.copy()
    spread[:, 12:18] += 0.05 / 6  # 5 % of the mass spread over 6 of the empty bins
    spread /= spread.sum(axis=1, keepdims=True)
    splits = [(np.setdiff1d(np.arange(300), part), part)
              for part in np.array_split(np.arange(300), 5)]
    model, _ = fit_novelty(train, splits)
    assert [view["transform"] for view in model["views"]] == ["identity", "standard", "log"]
    assert (novelty(model, spread) > model["threshold"]).mean() > 0.95
    assert (novelty(model, test) > model["threshold"]).mean() <= 0.03
    linear = {**model, "views": model["views"][:1]}  # the features' own units alone
    assert (novelty(linear, spread) > model["threshold"]).mean() < 0.05
    # Signed features (embeddings, MFCCs) are not scored in log units.
    assert "log" not in [view["transform"] for view in fit_novelty(train - 0.5, splits)[0]["views"]]


def test_features_on_several_scales_are_also_scored_standardised():
    """Noise in features that vary little (an embedding's quiet dimensions) is nothing beside
    the large ones in the features' own units, and far once each feature is standardised."""
    rng = np.random.default_rng(0)

    def embeddings(n):  # features on three scales
        return np.hstack([rng.normal(size=(n, 5)) * 10, rng.normal(size=(n, 10)),
                          rng.normal(size=(n, 30)) * 0.01])

    train, test = embeddings(300), embeddings(200)
    noisy = test.copy()
    noisy[:, 15:] += rng.normal(size=(200, 30)) * 0.1
    splits = [(np.setdiff1d(np.arange(300), part), part)
              for part in np.array_split(np.arange(300), 5)]
    model, _ = fit_novelty(train, splits)
    assert [view["transform"] for view in model["views"]] == ["identity", "standard"]
    assert (novelty(model, noisy) > model["threshold"]).mean() > 0.95
    assert (novelty(model, test) > model["threshold"]).mean() <= 0.03
    own_units = {**model, "views": model["views"][:1]}
    assert (novelty(own_units, noisy) > model["threshold"]).mean() < 0.1


def test_missing_draws_a_strange_output_towards_the_fill_by_its_novelty(data, fitted):
    """Late fusion keeps all of a modality's output up to half its threshold, half of it at the
    threshold and none from 1.5 times it (missing there): a rare clean row just past the
    threshold is not treated as one far past it."""
    np.testing.assert_allclose(kept_share([0.0, 0.5, 1.0, 1.25, 1.5, 9.0], 1.0),
                               [1.0, 1.0, 0.5, 0.25, 0.0, 0.0])
    _, _, test, _, corrupted, wrong = data
    guarded = fitted["missing"]
    model, fill = guarded._novelty["a"], guarded._fill["a"]
    rows = np.r_[np.flatnonzero(~wrong)[:20], np.flatnonzero(wrong)[:20]]
    mixed = pd.concat([test.iloc[rows[:20]], corrupted.iloc[rows[20:]]])
    share = kept_share(novelty(model, mixed[A].to_numpy()), model["threshold"])
    plain = fitted[None]._outputs(mixed)[0]
    drawn = guarded._outputs(mixed)[0]
    kept = share > 0
    np.testing.assert_allclose(drawn["a"][kept],
                               fill + share[kept, None] * (plain["a"][kept] - fill))
    assert np.isnan(drawn["a"][~kept]).all() and (~kept[20:]).mean() > 0.9
    typical_b = kept_share(novelty(guarded._novelty["b"], mixed[B].to_numpy()),
                           guarded._novelty["b"]["threshold"]) == 1
    np.testing.assert_array_equal(drawn["b"][typical_b], plain["b"][typical_b])
    with collect_errors() as found:
        guarded.predict(mixed)
    partly = [error for error in found if error.extractor == "a"
              and 0 < share[error.row] < 1]
    assert all(f"weight {share[error.row]:.2g})" in error.cause for error in partly)
