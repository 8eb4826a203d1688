"""Early and late fusion on the demo data: three noisy views (image, text, audio) of one label."""

from __future__ import annotations

import collections
import pickle
import re
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from checks import parametrize_with_checks_marked
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    cross_val_predict,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from mmfeat import ExtractionError, ExtractionWarning
from mmfeat.audio import MFCCStats
from mmfeat.base import Extractor
from mmfeat.datasets import demo_extractors, make_multimodal
from mmfeat.fusion import (
    LateFusionClassifier,
    LateFusionRegressor,
    ModalityBlock,
    make_early_fusion,
)
from mmfeat.image import ColorHistogram
from mmfeat.io import load_text

N_SAMPLES = 160
MODALITIES = ("image", "text", "audio")

# Items featurised in this process, by modality: proof that late fusion extracts once.
FEATURISED: collections.Counter = collections.Counter()


class WordCounts(Extractor):
    """Hashed bag of words: a light, real text extractor that counts the texts it featurises."""

    modality = "text"
    feature_prefix = "bow"

    def __init__(self, n_buckets=64, *, batch_size=64, cache=None, on_error="raise", verbose=False):
        self.n_buckets = n_buckets
        self.batch_size = batch_size
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _load_item(self, item):
        return load_text(item)

    def _features(self, loaded):
        FEATURISED["text"] += len(loaded)
        out = np.zeros((len(loaded), self.n_buckets), np.float32)
        for i, text in enumerate(loaded):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.n_buckets] += 1
        return out

    def _feature_suffixes(self):
        return [f"{i:03d}" for i in range(self.n_buckets)]


class CountingColor(ColorHistogram):
    """ColorHistogram that counts the images it featurises."""

    def _features(self, loaded):
        FEATURISED["image"] += len(loaded)
        return super()._features(loaded)


def image():
    return ColorHistogram(bins=(12, 2, 2))


def audio():
    return MFCCStats(n_mfcc=13, deltas=0)


def classifier(C=0.1):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))


def late(**params):
    modalities = {"image": ("image", image(), classifier()),
                  "text": ("text", WordCounts(), classifier()),
                  "audio": ("audio", audio(), classifier())}
    return LateFusionClassifier(modalities, **{"cv": 4, **params})


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo data, plus a numeric column that carries a little of the label."""
    df = make_multimodal(n_samples=N_SAMPLES, random_state=0,
                         data_dir=tmp_path_factory.mktemp("demo"))
    rng = np.random.default_rng(0)
    codes = pd.factorize(df["label"], sort=True)[0]
    return df.assign(score=codes + rng.normal(0, 2.0, len(df)))


@pytest.fixture(scope="module")
def demo_missing(demo):
    """20 % of the rows miss one modality (None), as ``make_multimodal(missing_rate=0.2)`` does."""
    rng = np.random.default_rng(1)
    df = demo.copy()
    rows = rng.choice(len(df), size=len(df) // 5, replace=False)
    for row, modality in zip(rows, rng.choice(MODALITIES, size=len(rows))):
        df.loc[row, modality] = None
    return df


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Many tiny LogisticRegression fits: OpenBLAS threads spinning on a busy machine make each
    one 50 times slower, so keep BLAS to one thread here (results are the same)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(autouse=True)
def _quiet_missing():
    """Items that fail under on_error="nan" warn with a count; the bad-input tests check it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtractionWarning)
        yield


# ---------------------------------------------------------------------------- early fusion


def test_early_fusion_is_a_named_column_transformer(demo):
    union = make_early_fusion(image=("image", image()), text=("text", WordCounts(), {"pca": 5}),
                              audio=("audio", audio(), {"weight": 0.5}), passthrough=["score"])
    assert isinstance(union, ColumnTransformer)
    assert [name for name, *_ in union.transformers] == ["image", "text", "audio", "numeric"]
    out = union.fit_transform(demo)
    names = union.get_feature_names_out()
    assert out.shape == (N_SAMPLES, 48 + 5 + 26 + 1) == (N_SAMPLES, len(names))
    assert names[0] == "image__hsv_h0_s0_v0"
    assert [n for n in names if n.startswith("text__")] == [f"text__bow_pca{i}" for i in range(5)]
    assert names[53] == "audio__mfcc_00_mean" and names[-1] == "numeric__score"
    # Scaled blocks; the audio block is scaled, then halved.
    assert np.allclose(out[:, :48].std(axis=0)[out[:, :48].std(axis=0) > 0], 1, atol=1e-3)
    assert np.allclose(out[:, 53:79].std(axis=0), 0.5, atol=1e-3)

    frame = union.set_output(transform="pandas").fit_transform(demo)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == list(names)
    assert np.allclose(frame.to_numpy(), out, atol=1e-5)

    pipe = make_early_fusion(image=("image", image()), estimator=LogisticRegression())
    assert isinstance(pipe, Pipeline) and list(pipe.named_steps) == ["features", "model"]
    assert pipe.get_params()["features__image__extractor__bins"] == (12, 2, 2)


def test_early_fusion_beats_each_single_modality(demo):
    y, cv = demo["label"], StratifiedKFold(5, shuffle=True, random_state=0)
    specs = {"image": ("image", image()), "text": ("text", WordCounts()),
             "audio": ("audio", audio())}

    def accuracy(**modalities):
        model = make_early_fusion(**modalities, estimator=LogisticRegression(C=0.01, max_iter=1000))
        return cross_val_score(model, demo, y, cv=cv).mean()

    single = {name: accuracy(**{name: spec}) for name, spec in specs.items()}
    fused = accuracy(**specs)
    assert all(0.4 < score < 0.8 for score in single.values()), single  # each view is noisy
    assert fused >= max(single.values()) + 0.02, (fused, single)


def test_early_fusion_handles_missing_modalities(demo_missing):
    y = demo_missing["label"]
    strict = make_early_fusion(image=("image", image()), text=("text", WordCounts()),
                               audio=("audio", audio()), estimator=LogisticRegression(C=0.1))
    with pytest.raises(ExtractionError, match="missing value"):
        strict.fit(demo_missing, y)

    model = clone(strict).set_params(**{f"features__{m}__handle_missing": True for m in MODALITIES})
    missing = demo_missing[list(MODALITIES)].isna().any(axis=1).to_numpy()
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    predicted = cross_val_predict(model, demo_missing, y, cv=cv)  # missing rows in fit and predict
    accuracy = (predicted[missing] == y[missing]).mean()
    assert accuracy > 0.45, accuracy  # chance is 0.25
    model.fit(demo_missing, y)
    names = list(model[:-1].get_feature_names_out())
    indicators = ["image__hsv_missing", "text__bow_missing", "audio__mfcc_missing"]
    assert [n for n in names if n.endswith("missing")] == indicators
    features = model[:-1].set_output(transform="pandas").transform(demo_missing)
    for modality, column in zip(MODALITIES, indicators):
        assert (features[column] == demo_missing[modality].isna()).all()
    assert not features.isna().any().any()

    # The make_early_fusion argument sets every block, and the passthrough block imputes.
    union = make_early_fusion(text=("text", WordCounts()), passthrough=["score"],
                              handle_missing=True)
    with_nan = demo_missing.assign(score=demo_missing["score"].where(demo_missing.index % 7 > 0))
    out = union.set_output(transform="pandas").fit_transform(with_nan)
    assert list(out.columns[-3:]) == ["text__bow_missing", "numeric__score",
                                      "numeric__missingindicator_score"]
    assert not out.isna().any().any()


def test_modality_block_options():
    X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 6.0], [5.0, 4.0]])
    identity = FunctionTransformer(feature_names_out="one-to-one")
    plain = ModalityBlock(identity, handle_missing=True).fit_transform(X)
    assert np.allclose(plain[1], [0, 0, 1])  # imputed with the mean, then centred; flagged
    doubled = ModalityBlock(identity, weight=2.0, handle_missing=True).fit_transform(X)
    assert np.allclose(doubled, 2 * plain)
    reduced = ModalityBlock(identity, pca=1, handle_missing=True).fit(X)
    assert reduced.transform(X).shape == (4, 2)
    assert reduced.get_feature_names_out().tolist() == ["pca0", "missing"]
    unscaled = ModalityBlock(identity, scale=False).fit_transform(X[[0, 2, 3]])
    assert np.allclose(unscaled, X[[0, 2, 3]])
    with pytest.raises(ValueError, match=r"'weight' parameter of ModalityBlock must be a float in "
                                         r"the range \[0.0, inf\). Got 'heavy'"):
        ModalityBlock(identity, weight="heavy").fit(X)
    with pytest.raises(ValueError, match=r"'pca' parameter of ModalityBlock must be None, an int "
                                         r"in the range \[1, inf\) or a float in the range "
                                         r"\(0.0, 1.0\)\. Got 0"):
        ModalityBlock(identity, pca=0).fit(X)
    with pytest.raises(ValueError, match="options \\['wieght'\\]"):
        make_early_fusion(text=("text", WordCounts(), {"wieght": 2}))
    with pytest.raises(ValueError, match="No modality"):
        make_early_fusion()


@pytest.mark.slow
def test_grid_search_tunes_blocks_in_parallel(demo):
    # Library extractors only: the worker processes need not import this test module.
    model = make_early_fusion(image=("image", image()), audio=("audio", audio()),
                              estimator=LogisticRegression(C=0.05, max_iter=1000))
    grid = {"features__audio__weight": [0.5, 2.0],
            "features__image__extractor__bins": [(12, 2, 2), (6, 2, 2)]}
    search = GridSearchCV(model, grid, cv=3, n_jobs=2, error_score="raise").fit(demo, demo["label"])
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and len(set(scores)) > 1  # every setting ran and mattered
    best = search.best_estimator_.named_steps["features"].named_transformers_
    assert best["audio"].weight == search.best_params_["features__audio__weight"]
    assert best["image"].extractor_.bins == search.best_params_["features__image__extractor__bins"]
    assert search.best_score_ > 0.6


# ---------------------------------------------------------------------------- late fusion


def test_late_fusion_fits_predicts_and_reports(demo):
    y = demo["label"]
    model = late(passthrough=["score"]).fit(demo, y)
    assert model.classes_.tolist() == sorted(y.unique())
    assert list(model.estimators_) == list(MODALITIES)
    assert all(isinstance(p, Pipeline) and list(p.named_steps) == ["extractor", "estimator"]
               for p in model.estimators_.values())
    assert model.stack_method_ == dict.fromkeys(MODALITIES, "predict_proba")
    assert model.meta_feature_names_[:5] == ["image_desert", "image_fire", "image_forest",
                                             "image_ocean", "image_available"]
    assert model.meta_feature_names_[-1] == "score"
    proba = model.predict_proba(demo)
    assert proba.shape == (N_SAMPLES, 4) and np.allclose(proba.sum(axis=1), 1)
    assert (model.classes_[proba.argmax(axis=1)] == model.predict(demo)).all()
    assert model.decision_function(demo).shape == (N_SAMPLES, 4)
    assert model.score(demo, y) > 0.6

    report = model.modality_report_
    assert list(report.columns) == ["modality", "n_available", "model", "oof_score", "log_loss",
                                    "ece", "calibration", "calibrated_log_loss",
                                    "calibrated_ece", "weight"]
    assert (report["model"] == "LogisticRegression").all()
    assert (report["calibration"] == "none").all()
    assert report["modality"].tolist() == list(MODALITIES)
    assert (report["n_available"] == N_SAMPLES).all()
    assert report["oof_score"].between(0.4, 0.85).all()  # each view alone is noisy
    assert np.isclose(report["weight"].sum(), 1) and (report["weight"] > 0.1).all()

    # Out of sample, stacking the three views beats the best single view.
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    fused = cross_val_score(late(), demo, y, cv=cv).mean()
    assert fused > report["oof_score"].max(), (fused, report)


def test_late_fusion_extracts_each_item_once(demo):
    FEATURISED.clear()
    model = LateFusionClassifier({"image": ("image", CountingColor(bins=(12, 2, 2), cache=False)),
                                  "text": ("text", WordCounts(cache=False))}, cv=5)
    model.fit(demo, demo["label"])
    # sklearn's StackingClassifier would featurise every item cv + 1 = 6 times.
    assert FEATURISED == {"image": N_SAMPLES, "text": N_SAMPLES}
    model.predict(demo.iloc[:10])
    assert FEATURISED == {"image": N_SAMPLES + 10, "text": N_SAMPLES + 10}


@pytest.mark.slow  # starts worker processes
def test_late_fusion_fits_modalities_in_parallel(demo):
    modalities = {"image": ("image", image(), classifier()),
                  "audio": ("audio", audio(), classifier())}
    serial = LateFusionClassifier(modalities, cv=3).fit(demo, demo["label"])
    parallel = LateFusionClassifier(modalities, cv=3, n_jobs=2).fit(demo, demo["label"])
    assert np.allclose(serial.predict_proba(demo), parallel.predict_proba(demo))


def test_late_fusion_predicts_rows_missing_a_modality(demo_missing):
    y = demo_missing["label"]
    missing = demo_missing[list(MODALITIES)].isna().any(axis=1).to_numpy()
    assert missing.sum() == N_SAMPLES // 5
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    predicted = cross_val_predict(late(), demo_missing, y, cv=cv)  # missing rows in fit and predict
    assert pd.notna(predicted).all()
    accuracy = (predicted[missing] == y[missing]).mean()
    assert accuracy > 0.45, accuracy  # chance is 0.25

    model = late().fit(demo_missing, y)
    report = model.modality_report_.set_index("modality")
    assert (report["n_available"] == N_SAMPLES - demo_missing[list(MODALITIES)].isna().sum()).all()
    # Each modality's estimator saw only the rows it has.
    for modality in MODALITIES:
        width = model.estimators_[modality][-1][-1].n_features_in_
        some = demo_missing[modality].dropna().iloc[:2]
        assert width == model.estimators_[modality][0].transform(some).shape[1]
        n_seen = model.estimators_[modality][-1][0].n_samples_seen_
        assert np.all(n_seen == report.loc[modality, "n_available"])
    # A row with no modality at all still gets a prediction: the meta-learner's view of priors.
    empty = demo_missing.iloc[:3].assign(image=None, text=None, audio=None)
    assert np.allclose(model.predict_proba(empty), model.predict_proba(empty)[0])

    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtractionWarning)  # missing values are expected: no warning
        late().fit(demo_missing, y)
    with pytest.raises(ExtractionError, match="missing value"):
        late(handle_missing=False).fit(demo_missing, y)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("stack_method", ["auto", "decision_function", "predict"])
def test_late_fusion_stack_methods(n_classes, stack_method):
    """Two views of a numeric table, one missing in a fifth of the rows, splits given as indices."""
    X, y = make_classification(150, n_features=6, n_informative=6, n_redundant=0,
                               n_classes=n_classes, random_state=0)
    df = pd.DataFrame(X, columns=["a0", "a1", "a2", "b0", "b1", "b2"])
    df.loc[:29, ["b0", "b1", "b2"]] = np.nan
    modalities = {"a": (["a0", "a1", "a2"], "passthrough"),
                  "b": (["b0", "b1", "b2"], StandardScaler(), LinearSVC())}
    splits = list(StratifiedKFold(3).split(df, y))
    model = LateFusionClassifier(modalities, cv=splits, stack_method=stack_method).fit(df, y)
    methods = {"a": "predict_proba", "b": "decision_function"} if stack_method == "auto" \
        else {"a": stack_method, "b": stack_method}
    assert model.stack_method_ == methods

    def columns(name):
        if n_classes == 3:
            return [f"{name}_{c}" for c in range(3)]
        return [f"{name}_decision" if methods[name] == "decision_function" else f"{name}_1"]

    assert model.meta_feature_names_ == (columns("a") + ["a_available"]
                                         + columns("b") + ["b_available"])
    assert model.modality_report_["n_available"].tolist() == [150, 120]
    assert model.score(df, y) > 0.6
    if stack_method == "auto":
        with pytest.raises(ValueError, match="modality 'b' \\(LinearSVC\\) has no predict_proba"):
            clone(model).set_params(stack_method="predict_proba").fit(df, y)


@pytest.mark.parametrize("rule", ["mean", "product", "vote"])
def test_late_fusion_rules(demo_missing, rule):
    y = demo_missing["label"]
    model = late(rule=rule).fit(demo_missing, y)
    assert model.final_estimator_ is None
    predicted = model.predict(demo_missing)
    assert set(predicted) <= set(model.classes_)
    assert (predicted == y).mean() > 0.6
    assert np.allclose(model.modality_report_["weight"], 1 / 3)
    if rule == "vote":
        assert not hasattr(model, "predict_proba")
        assert model.stack_method_ == dict.fromkeys(MODALITIES, "predict")
    else:
        proba = model.predict_proba(demo_missing)
        assert np.allclose(proba.sum(axis=1), 1) and (proba >= 0).all()
        assert (model.classes_[proba.argmax(axis=1)] == predicted).all()
    nothing = demo_missing.iloc[:2].assign(image=None, text=None, audio=None)
    assert (model.predict(nothing) == model.classes_[model.class_prior_.argmax()]).all()
    assert not hasattr(model, "decision_function")


def test_late_fusion_parameters(demo):
    model = late(final_estimator=LogisticRegression())
    params = model.get_params()
    assert params["text__extractor__n_buckets"] == 64
    assert params["image__estimator__logisticregression__C"] == 0.1
    assert params["final_estimator__C"] == 1.0
    model.set_params(text__extractor__n_buckets=32, audio__column="audio",
                     image__estimator__logisticregression__C=0.2, final_estimator__C=0.5, cv=3)
    assert model.modalities["text"][1].n_buckets == 32
    assert model.modalities["image"][2][-1].C == 0.2 and model.final_estimator.C == 0.5
    model.set_params(text=("text", WordCounts(16)))  # a whole modality, default estimator
    assert model.get_params()["text__estimator"] is None
    with pytest.raises(ValueError, match="no estimator of its own"):
        model.set_params(text__estimator__C=1.0)
    with pytest.raises(ValueError, match="Invalid parameter"):
        model.set_params(text__extractr=WordCounts())
    with pytest.raises(ValueError, match="also parameter names"):
        LateFusionClassifier({"cv": ("text", WordCounts())}).fit(demo, demo["label"])
    with pytest.raises(ValueError, match="The 'rule' parameter of LateFusionClassifier must be a "
                                         "str among .*'product'.*Got 'median' instead"):
        late(rule="median").fit(demo, demo["label"])
    with pytest.raises(ValueError, match="meta-learner"):
        late(rule="mean", passthrough=["score"]).fit(demo, demo["label"])
    with pytest.raises(ValueError, match="tuple \\(column, extractor\\)"):
        LateFusionClassifier({"text": "text"}).fit(demo, demo["label"])


@pytest.mark.slow
def test_grid_search_tunes_late_fusion_in_parallel(demo):
    model = LateFusionClassifier({"image": ("image", image(), classifier()),
                                  "audio": ("audio", audio())}, LogisticRegression())
    grid = {"final_estimator__C": [0.01, 1.0], "rule": ["stack", "mean"], "cv": [3],
            "image__estimator__logisticregression__C": [0.1]}
    search = GridSearchCV(model, grid, cv=3, n_jobs=2, error_score="raise").fit(demo, demo["label"])
    assert set(search.best_params_) == set(grid)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_score_ > 0.6


def test_clone_and_pickle_round_trip(demo_missing):
    y = demo_missing["label"]
    early = make_early_fusion(image=("image", image()), text=("text", WordCounts()),
                              audio=("audio", audio()), handle_missing=True,
                              estimator=LogisticRegression(C=0.1, max_iter=1000))
    for model in (early, late()):
        fitted = clone(model).fit(demo_missing, y)
        blob = pickle.dumps(fitted)
        assert len(blob) < 200_000
        restored = pickle.loads(blob)
        assert (restored.predict(demo_missing) == fitted.predict(demo_missing)).all()
        assert np.allclose(restored.predict_proba(demo_missing), fitted.predict_proba(demo_missing))
        refit = clone(fitted).fit(demo_missing, y)
        assert (refit.predict(demo_missing) == fitted.predict(demo_missing)).all()


def test_late_fusion_regressor(demo_missing):
    y = 10.0 * (demo_missing["label"] == "fire")  # a numeric target both views carry
    modalities = {"audio": ("audio", audio()), "text": ("text", WordCounts(), Ridge(10.0))}
    model = LateFusionRegressor(modalities, cv=3, passthrough=["score"]).fit(demo_missing, y)
    assert model.predict(demo_missing).shape == (N_SAMPLES,)
    assert model.score(demo_missing, y) > 0.2
    report = model.modality_report_
    assert report["modality"].tolist() == ["audio", "text"]
    assert np.isclose(report["weight"].sum(), 1)
    assert (report["oof_score"] > 0).all()  # out-of-fold R²
    mean = LateFusionRegressor(modalities, cv=3, rule="mean").fit(demo_missing, y)
    nothing = demo_missing.iloc[:2].assign(audio=None, text=None)
    assert np.allclose(mean.predict(nothing), y.mean())
    with pytest.raises(ValueError, match="The 'rule' parameter of LateFusionRegressor must be a "
                                         "str among .*Got 'vote' instead"):
        LateFusionRegressor(modalities, rule="vote").fit(demo_missing, y)


# ---------------------------------------------------------------------------- sklearn checks

def _imbalanced_views(seed, n=600):
    """Two numeric views of a 10:1 binary label (about 55 rows of the rare class)."""
    X, y = make_classification(n, n_features=8, n_informative=6, n_redundant=0,
                               weights=[0.91, 0.09], flip_y=0.02, class_sep=0.7, random_state=seed)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(8)])
    return df, y, {"a": ([f"x{i}" for i in range(4)], "passthrough"),
                   "b": ([f"x{i}" for i in range(4, 8)], "passthrough")}


@pytest.mark.parametrize("rule", ["stack", "mean"])
@pytest.mark.slow  # two seeds x 3 folds x two fusions
def test_balanced_class_weight_improves_balanced_accuracy_on_a_rare_class(rule):
    # Measured (600 rows, 5-fold balanced accuracy, seeds 0-4): stacking 0.581 -> 0.730, the
    # mean rule 0.562 -> 0.746; every seed up.
    gains = []
    for seed in range(2):
        df, y, modalities = _imbalanced_views(seed, n=450)
        cv = StratifiedKFold(3, shuffle=True, random_state=seed)
        plain, balanced = (
            cross_val_score(LateFusionClassifier(modalities, rule=rule, cv=3, random_state=0,
                                                 class_weight=weight),
                            df, y, cv=cv, scoring="balanced_accuracy").mean()
            for weight in (None, "balanced"))
        gains.append(balanced - plain)
    assert min(gains) > 0.05 and np.mean(gains) > 0.1, gains


def test_class_weight_is_row_weights_for_the_default_models_and_spares_given_ones():
    df, y, modalities = _imbalanced_views(0, n=300)
    as_classes = LateFusionClassifier(modalities, cv=3, class_weight={0: 1.0, 1: 8.0}).fit(df, y)
    as_rows = LateFusionClassifier(modalities, cv=3).fit(df, y,
                                                         sample_weight=np.where(y == 1, 8.0, 1.0))
    np.testing.assert_allclose(as_classes.predict_proba(df), as_rows.predict_proba(df), atol=1e-6)
    assert as_classes.final_estimator_.class_weight == {0: 1.0, 1: 8.0}
    # A given estimator keeps its own (no) class weights, and weights nothing it did not ask for.
    given = LogisticRegression()
    mixed = LateFusionClassifier({**modalities, "a": (*modalities["a"], given)}, cv=3,
                                 class_weight="balanced").fit(df, y)
    alone = LateFusionClassifier({"a": (*modalities["a"], given)}, cv=3).fit(df, y)
    assert mixed.estimators_["a"][-1].class_weight is None
    np.testing.assert_allclose(mixed.estimators_["a"][-1].coef_, alone.estimators_["a"][-1].coef_)
    with pytest.raises(ValueError, match="The 'class_weight' parameter of LateFusionClassifier "
                                         "must be a str among {'balanced'}, an instance of 'dict' "
                                         "or None. Got 'even' instead"):
        LateFusionClassifier(modalities, class_weight="even").fit(df, y)


@pytest.mark.slow
def test_balanced_class_weight_on_demo_data_with_a_rare_class(tmp_path):
    # make_multimodal(440, weights=[10, 1]) with the quick extractors, 5-fold, seeds 0-4:
    # balanced accuracy 0.832 -> 0.953 stacked, 0.802 -> 0.926 by the mean rule.
    df = make_multimodal(330, n_classes=2, weights=[10, 1], random_state=1,
                         data_dir=tmp_path / "demo")
    train, test = train_test_split(df, test_size=0.5, stratify=df["label"], random_state=0)
    scores = {weight: balanced_accuracy_score(test["label"], LateFusionClassifier(
        demo_extractors(quick=True), cv=3, random_state=0, class_weight=weight).fit(
            train, train["label"]).predict(test)) for weight in (None, "balanced")}
    assert scores["balanced"] > scores[None] + 0.05, scores


# On numeric input the fusion estimators are ordinary estimators: a modality is a set of columns
# (here all of them) with a numeric "extractor". They pass every check, so none is expected to
# fail; mmfeat's own extractors take 1-D columns of items and are checked in test_contract.py.
_ALL = slice(None)
_LATE_MODALITIES = {"raw": (_ALL, "passthrough", LogisticRegression()),
                    "scaled": (_ALL, StandardScaler())}


# Like StackingClassifier: weighting a row is not the same as repeating it, because repeated
# rows change the out-of-fold splits (and so the meta-learner's input).
_EXPECTED_FAILURES = {"check_sample_weight_equivalence_on_dense_data":
                      "the out-of-fold splits differ between repeated and weighted rows"}


def _slow_check(estimator, name):
    # The dtype checks fit every estimator four more times; the gated, class-weighted fusion's
    # checks repeat the plain one's with a costlier fit.
    return name == "check_estimators_dtypes" or getattr(estimator, "trust", None) is not None


@parametrize_with_checks_marked(
    [
        ModalityBlock(StandardScaler()),
        ModalityBlock(FunctionTransformer(feature_names_out="one-to-one"), pca=1, weight=2.0,
                      handle_missing=True),
        LateFusionClassifier(_LATE_MODALITIES, cv=3),
        LateFusionClassifier(_LATE_MODALITIES, cv=3, trust="margin", class_weight="balanced"),
        LateFusionClassifier({"raw": (_ALL, "passthrough", LogisticRegression()),
                              "scaled": (_ALL, StandardScaler(), LogisticRegression())},
                             cv=3, rule="mean"),
        LateFusionRegressor({"raw": (_ALL, "passthrough"), "scaled": (_ALL, StandardScaler())},
                            cv=3),
    ],
    expected_failed_checks=lambda estimator: {
        "stack": _EXPECTED_FAILURES,
        "mean": {"check_class_weight_classifiers": "class_weight is for the default models, and "
                                                   "this fusion has none (own estimators, a rule)"},
    }.get(getattr(estimator, "rule", None), {}),
    slow=_slow_check,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
