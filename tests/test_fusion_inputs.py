"""What a new user does to the fusion estimators: other columns in the frame, global pandas
output, sample weights, wrong parameters and columns, the HTML repr, feature names."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import estimator_html_repr
from threadpoolctl import threadpool_limits

import mmfeat
from mmfeat import ExtractionWarning
from mmfeat.audio import MFCCStats
from mmfeat.datasets import make_multimodal
from mmfeat.fusion import (
    LateFusionClassifier,
    LateFusionRegressor,
    ModalityBlock,
    make_early_fusion,
)
from mmfeat.fusion.platt import PlattScaled
from mmfeat.image import ColorHistogram

N_SAMPLES = 80


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The demo table (id, image, text, audio, label) plus a numeric column ``score``."""
    df = make_multimodal(n_samples=N_SAMPLES, random_state=1,
                         data_dir=tmp_path_factory.mktemp("inputs"))
    codes = pd.factorize(df["label"], sort=True)[0]
    return df.assign(score=codes + np.random.default_rng(0).normal(0, 1.0, len(df)))


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def modalities():
    return {"image": ("image", ColorHistogram(bins=(8, 2, 2))),
            "audio": ("audio", MFCCStats(n_mfcc=8, deltas=0))}


def late(**params):
    return LateFusionClassifier(modalities(), **{"cv": 3, "random_state": 0, **params})


def other_frames(df):
    """The same rows as a user may hand them over at predict time."""
    unlabeled = df.drop(columns=["id", "label"])
    return {"without id and label": unlabeled,
            "reordered": unlabeled[unlabeled.columns[::-1]],
            "with an extra column": unlabeled.assign(comment="new")}


# ---------------------------------------------------------------------------- other columns


@pytest.mark.parametrize("rule", ["stack", "product"])
def test_late_fusion_reads_only_the_columns_it_uses(data, rule):
    passthrough = ["score"] if rule == "stack" else False
    model = late(rule=rule, passthrough=passthrough).fit(data, data["label"])  # README's way
    assert list(model.feature_names_in_) == list(data.columns)  # as ColumnTransformer records
    expected = model.predict_proba(data)
    for what, frame in other_frames(data).items():
        assert np.allclose(model.predict_proba(frame), expected), what
    with pytest.raises(ValueError, match=re.escape(
            "Modality 'audio' reads column(s) ['audio'], which the input does not have; its "
            "columns are ['id', 'image', 'text', 'label', 'score']")):
        model.predict(data.drop(columns=["audio"]))
    with pytest.raises(ValueError, match="reads its columns by name; got a ndarray: pass a "
                                         "DataFrame with the columns \\['image', 'audio'"):
        model.predict(data.to_numpy())


def test_late_fusion_regressor_reads_only_the_columns_it_uses(data):
    y = data["score"].to_numpy()
    model = LateFusionRegressor(modalities(), cv=3).fit(data, y)
    expected = model.predict(data)
    for what, frame in other_frames(data).items():
        assert np.allclose(model.predict(frame.drop(columns="score")), expected), what


def test_positional_columns_still_need_the_columns_of_fit():
    """Selections by position mean nothing in another column order: those stay strict."""
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 4)), columns=list("abcd"))
    y = (X["a"] > 0).astype(int)
    model = LateFusionClassifier({"first": ([0, 1], "passthrough"),
                                  "last": (slice(2, 4), "passthrough")}, cv=3).fit(X, y)
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        model.predict(X[["d", "c", "b", "a"]])


def test_a_wrong_column_names_the_modality_and_the_columns_there_are(data):
    model = LateFusionClassifier({"text": ("caption", FunctionTransformer())})
    with pytest.raises(ValueError, match=re.escape(
            "Modality 'text' reads column(s) ['caption'], which the input does not have; its "
            "columns are ['id', 'image', 'text', 'audio', 'label', 'score']")):
        model.fit(data, data["label"])
    with pytest.raises(ValueError, match=re.escape(
            "passthrough reads column(s) ['price']")):
        late(passthrough=["price"]).fit(data, data["label"])


def test_a_text_column_given_as_numbers_is_named(data):
    with pytest.raises(ValueError, match=re.escape(
            "passthrough: column 'label' is not numeric (could not convert string to float: ")):
        late(passthrough=["score", "label"]).fit(data, data["label"])
    numbers = LateFusionClassifier({"numbers": (["score", "text"], "passthrough")}, cv=3)
    with pytest.raises(ValueError, match=re.escape(
            "Modality 'numbers' passes ['score', 'text'] through as numbers: column 'text' is not "
            "numeric")):
        numbers.fit(data, data["label"])


def test_scoring_an_unlabeled_manifest_with_a_late_fusion_model(data, tmp_path):
    from mmfeat.scoring import score

    model = late(passthrough=["score"]).fit(data, data["label"])
    path = tmp_path / "model.joblib"
    mmfeat.save_model(model, path)
    unlabeled = tmp_path / "unlabeled.csv"
    frame = data.drop(columns=["label"])
    frame[frame.columns[::-1]].assign(note="x").to_csv(unlabeled, index=False)
    summary = score(str(path), str(unlabeled), str(tmp_path / "scores"))
    scored = pd.read_parquet(tmp_path / "scores").sort_values("id")
    assert scored["error"].isna().all(), summary
    assert (scored["prediction"].to_numpy() == model.predict(data)).all()


# ---------------------------------------------------------------------------- pandas output


@pytest.mark.slow
def test_every_fusion_estimator_works_under_global_pandas_output(data):
    y = data["label"]
    with_missing = data.assign(image=data["image"].where(data.index % 9 > 0),
                               price=data["score"].where(data.index % 7 > 0))
    early = make_early_fusion(**modalities(), passthrough=["price"], handle_missing=True,
                              estimator=LogisticRegression(max_iter=1000))
    models = {"early": early, "stack": late(passthrough=["score"]), "product": late(rule="product"),
              "regressor": LateFusionRegressor(modalities(), cv=3)}
    targets = {"regressor": data["score"].to_numpy()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtractionWarning)
        plain = {name: clone(m).fit(with_missing, targets.get(name, y)).predict(with_missing)
                 for name, m in models.items()}
        with sklearn.config_context(transform_output="pandas"):
            for name, model in models.items():
                predicted = model.fit(with_missing, targets.get(name, y)).predict(with_missing)
                assert np.allclose(predicted, plain[name]) if name == "regressor" \
                    else (predicted == plain[name]).all(), name
            features = early[:-1].transform(with_missing)
            block = ModalityBlock(FunctionTransformer(feature_names_out="one-to-one"), pca=1,
                                  handle_missing=True).fit_transform(
                np.array([[1.0, 2], [np.nan, np.nan], [3, 1]]))
    assert isinstance(features, pd.DataFrame) and not features.isna().any().any()
    assert list(features.columns[-3:]) == ["audio__mfcc_missing", "numeric__price",
                                           "numeric__missingindicator_price"]
    assert features["image__hsv_missing"].sum() == with_missing["image"].isna().sum()
    assert isinstance(block, pd.DataFrame) and list(block.columns) == ["pca0", "missing"]


# ---------------------------------------------------------------------------- sample weights


def test_sample_weight_reaches_every_modality_and_the_meta_learner(data):
    y = data["label"].to_numpy()
    weight = np.where(y == "fire", 20.0, 1.0)
    weighted = late().fit(data, y, sample_weight=weight)
    plain = late().fit(data, y)
    # Each modality's estimator is the one fitted with those weights on its features.
    for name, pipeline in weighted.estimators_.items():
        features = pipeline[0].transform(data[name])
        model, fitted, method = pipeline[-1], pipeline[-1], "predict_proba"
        if isinstance(model, PlattScaled):  # an SVM: its sigmoids come from the fusion's folds
            model, fitted, method = model.estimator, model.estimator_, "decision_function"
        step = model.steps[-1][0]
        refit = clone(model).fit(features, y, **{f"{step}__sample_weight": weight})
        assert np.allclose(getattr(fitted, method)(features), getattr(refit, method)(features))
        proba = pipeline[-1].predict_proba(features)
        assert not np.allclose(proba, plain.estimators_[name][-1].predict_proba(features)), name
    assert weighted.class_prior_[list(weighted.classes_).index("fire")] > 0.8
    # The meta-learner learned the weights too: "fire" is predicted far more often.
    assert (weighted.predict(data) == "fire").sum() > (plain.predict(data) == "fire").sum() + 5
    regressor = LateFusionRegressor(modalities(), cv=3).fit(data, data["score"],
                                                            sample_weight=weight)
    assert np.isclose(regressor._target_mean, np.average(data["score"], weights=weight))


def test_sample_weight_for_an_estimator_without_it_is_refused(data):
    model = LateFusionClassifier({"image": ("image", ColorHistogram(bins=(8, 2, 2)),
                                            KNeighborsClassifier())}, cv=3)
    with pytest.raises(TypeError, match="Got sample_weight, but the estimator of modality 'image' "
                                        "\\(KNeighborsClassifier\\) does not accept it in fit"):
        model.fit(data, data["label"], sample_weight=np.ones(N_SAMPLES))
    with pytest.raises(ValueError, match="Passing extra keyword arguments to LateFusionClassifier"
                                         ".fit is only supported if enable_metadata_routing=True"):
        late().fit(data, data["label"], bogus=np.ones(N_SAMPLES))


def test_sample_weight_under_metadata_routing(data):
    y = data["label"].to_numpy()
    weight = np.where(y == "fire", 20.0, 1.0)
    with sklearn.config_context(enable_metadata_routing=True):
        routed = late().fit(data, y, sample_weight=weight)  # the defaults request it
        own = {"image": ("image", ColorHistogram(bins=(8, 2, 2)),
                         make_pipeline(StandardScaler(), LogisticRegression()))}
        with pytest.raises(ValueError, match="sample_weight.*not.*(requested|explicitly)"):
            LateFusionClassifier(own, cv=3).fit(data, y, sample_weight=weight)
    plain = late().fit(data, y, sample_weight=weight)
    assert np.allclose(routed.predict_proba(data), plain.predict_proba(data))


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("make, message", [
    (lambda: late(cv=1), r"The 'cv' parameter of LateFusionClassifier must be an int in the range "
                         r"\[2, inf\), an object implementing 'split' and 'get_n_splits', an "
                         r"iterable or None. Got 1 instead."),
    (lambda: late(stack_method="proba"), r"The 'stack_method' parameter of LateFusionClassifier "
                                         r"must be a str among .*Got 'proba' instead."),
    (lambda: late(passthrough=True), r"The 'passthrough' parameter of LateFusionClassifier must be "
                                     r"an array-like, an instance of 'str', None or a bool among "
                                     r"\{False\}. Got True instead."),
    (lambda: late(handle_missing="yes"), r"The 'handle_missing' parameter of LateFusionClassifier "
                                         r"must be an instance of 'bool'.* Got 'yes' instead."),
    (lambda: late(n_jobs=1.5), r"The 'n_jobs' parameter of LateFusionClassifier must be None or an "
                               r"instance of 'int'. Got 1.5 instead."),
    (lambda: late(final_estimator="lr"), r"The 'final_estimator' parameter of LateFusionClassifier "
                                         r"must be None or an object implementing 'fit'. Got 'lr'"),
    (lambda: late(random_state="seed"), r"The 'random_state' parameter of LateFusionClassifier "
                                        r"must be an int in the range \[0, 4294967295\], an "
                                        r"instance of 'numpy.random.mtrand.RandomState' or None"),
    (lambda: LateFusionClassifier(["image"]), r"The 'modalities' parameter of LateFusionClassifier "
                                              r"must be an instance of 'dict'. Got \['image'\]"),
    (lambda: LateFusionRegressor(modalities(), rule="product"),
     r"The 'rule' parameter of LateFusionRegressor must be a str among \{'.*'\}. Got 'product'"),
    (lambda: ModalityBlock("hist"), r"The 'extractor' parameter of ModalityBlock must be an object "
                                    r"implementing 'fit' and 'transform'. Got 'hist' instead."),
    (lambda: ModalityBlock(StandardScaler(), weight=float("nan")),
     r"The 'weight' parameter of ModalityBlock must be a float in the range \[0.0, inf\). Got nan"),
    (lambda: ModalityBlock(StandardScaler(), handle_missing=1),
     r"The 'handle_missing' parameter of ModalityBlock must be an instance of 'bool'"),
])
def test_parameters_are_validated_with_scikit_learns_messages(data, make, message):
    with pytest.raises(sklearn.utils._param_validation.InvalidParameterError, match=message):
        make().fit(data, data["label"])


def test_make_early_fusion_validates_its_arguments():
    with pytest.raises(ValueError, match=r"The 'handle_missing' parameter of make_early_fusion "
                                         r"must be an instance of 'bool'.*Got 'yes' instead."):
        make_early_fusion(image=("image", ColorHistogram()), handle_missing="yes")
    with pytest.raises(ValueError, match=r"The 'image' parameter of make_early_fusion must be an "
                                         r"instance of 'tuple', an instance of 'list' or None. "
                                         r"Got 'image' instead."):
        make_early_fusion(image="image")
    with pytest.raises(ValueError,
                       match=r"The 'estimator' parameter of make_early_fusion must be "):
        make_early_fusion(image=("image", ColorHistogram()), estimator="svm")


# ---------------------------------------------------------------------------- repr and names


def test_html_repr_shows_each_modality(data):
    html = estimator_html_repr(late())
    for text in ("image", "audio", "ColorHistogram", "MFCCStats", "StandardScaler",
                 "LogisticRegression", "final_estimator"):
        assert text in html, text
    fitted = late(rule="product").fit(data, data["label"])
    html = estimator_html_repr(fitted)
    assert "rule=&#x27;product&#x27;" in html
    assert html.count("ColorHistogram") >= 1 and "MFCCStats" in html


def test_modality_block_checks_input_features(data):
    block = ModalityBlock(ColorHistogram(bins=(4, 2, 2))).fit(data[["image"]])
    assert block.get_feature_names_out(["image"])[0] == "hsv_h0_s0_v0"
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        block.get_feature_names_out(["picture"])
    series_block = ModalityBlock(ColorHistogram(bins=(4, 2, 2))).fit(data["image"])
    with pytest.raises(ValueError, match="input_features should have length equal to number of "
                                         "features \\(1\\), got 2"):
        series_block.get_feature_names_out(["image", "audio"])
    union = make_early_fusion(image=("image", ColorHistogram(bins=(4, 2, 2)))).fit(data)
    assert union.get_feature_names_out()[0] == "image__hsv_h0_s0_v0"
