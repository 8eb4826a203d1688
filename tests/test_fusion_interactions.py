"""Interaction (tensor) fusion: products of two modalities' reduced features in early fusion."""

import numpy as np
import pandas as pd
import pytest
from counting import CountingText, count_lines
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score

from mmfeat.audio import MFCCStats
from mmfeat.cache import FeatureCache
from mmfeat.datasets import make_multimodal
from mmfeat.fusion import make_early_fusion
from mmfeat.fusion.interactions import ModalityInteractions
from mmfeat.image import ColorHistogram
from mmfeat.modelfile import load_model, save_model


@pytest.fixture(scope="module")
def xor_data(tmp_path_factory):
    # Two classes: the label is the XOR of the image's and the audio's cue.
    return make_multimodal(200, n_classes=2, interaction=True,
                           data_dir=tmp_path_factory.mktemp("xor"))


def _specs():
    return {"image": ("image", ColorHistogram(bins=(12, 4, 4))),
            "audio": ("audio", MFCCStats(n_mfcc=20))}


@pytest.mark.slow  # two tuned models under 5 folds
def test_interactions_learn_what_concatenation_cannot(xor_data):
    df = xor_data
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    concat = cross_val_score(make_early_fusion(**_specs(), estimator="auto"), df, df["label"],
                             cv=cv)
    tensor = cross_val_score(make_early_fusion(**_specs(), estimator="auto", interactions="all"),
                             df, df["label"], cv=cv)
    # Measured: 0.44 for concatenation (chance 0.5), 0.86 with interactions (rank 4).
    assert concat.mean() < 0.6
    assert tensor.mean() > concat.mean() + 0.25


def test_named_columns_and_pipeline_layout(xor_data):
    df = xor_data.iloc[:60]
    model = make_early_fusion(**_specs(), interactions=[("audio", "image")], rank=3)
    assert [name for name, _ in model.steps] == ["features", "interactions"]
    out = model.set_output(transform="pandas").fit_transform(df)
    names = model.get_feature_names_out()
    assert list(out.columns) == list(names)
    products = [n for n in names if "_x_" in n]
    assert products == [f"audio_x_image__{i}_{j}" for i in range(3) for j in range(3)]
    assert len(names) == len(products) + model.named_steps["features"].transform(df).shape[1]
    # Standardised products, each a product of whitened components of the two blocks.
    assert np.allclose(out[products].mean(), 0, atol=1e-8)
    assert np.allclose(out[products].std(ddof=0), 1, atol=1e-6)
    # Without pandas output for the whole model the same numbers come out, as an array.
    plain = make_early_fusion(**_specs(), interactions=[("audio", "image")], rank=3)
    plain = plain.fit_transform(df)
    assert isinstance(plain, np.ndarray) and np.allclose(plain, out.to_numpy())
    # Setting the union's output to arrays by hand takes the block names away: said plainly.
    with pytest.raises(TypeError, match="set_output"):
        clone(model).set_output(transform="default").fit_transform(df)


@pytest.mark.slow
def test_grid_search_tunes_rank_and_on_off_without_re_extracting(xor_data, tmp_path):
    df = xor_data.iloc[:100].copy()
    log = tmp_path / "log"
    cache = FeatureCache(tmp_path / "cache")
    model = make_early_fusion(image=("image", ColorHistogram(bins=(12, 4, 4), cache=cache)),
                              audio=("audio", MFCCStats(n_mfcc=20, cache=cache)),
                              text=("text", CountingText(log_path=str(log), cache=cache)),
                              interactions=[("image", "audio")],
                              estimator=LogisticRegression(max_iter=2000))
    grid = {"interactions__rank": [2, 4], "interactions__pairs": [None, [("image", "audio")]]}
    search = GridSearchCV(model, grid, cv=3, n_jobs=2).fit(df, df["label"])
    assert search.best_params_["interactions__pairs"] == [("image", "audio")]
    off = search.cv_results_["param_interactions__pairs"].data == None  # noqa: E711
    scores = search.cv_results_["mean_test_score"]
    assert scores[~off].max() > scores[off].max() + 0.05  # 100 rows, untuned C: measured +0.13
    # 4 candidates x 3 folds + refit, and each distinct text featurised once.
    assert count_lines(log) == df["text"].nunique()


def test_model_file_round_trip(xor_data, tmp_path):
    df = xor_data.iloc[:80]
    model = make_early_fusion(**_specs(), interactions="all", rank=2,
                              estimator=LogisticRegression()).fit(df, df["label"])
    for name in ("model.skops", "model.joblib"):
        save_model(model, tmp_path / name)
        loaded = load_model(tmp_path / name)
        assert np.array_equal(loaded.predict_proba(df), model.predict_proba(df))


@pytest.mark.parametrize("kwargs, message", [
    ({"interactions": [("image", "video")]},
     r"names \['video'\], not among the modalities \['image', 'audio'\]"),
    ({"interactions": [("image", "image")]}, "a pair of two modality names"),
    ({"interactions": "all", "rank": 400},
     "Modality .image. has 192 features, fewer than rank=400"),
    ({"interactions": "some"}, "The 'interactions' parameter of make_early_fusion must be"),
    ({"interactions": "all", "rank": 0}, "The 'rank' parameter of make_early_fusion must be"),
])
def test_bad_interactions_are_named(xor_data, kwargs, message):
    df = xor_data.iloc[:40]
    with pytest.raises((ValueError, TypeError), match=message):
        make_early_fusion(**_specs(), **kwargs).fit(df)


def test_missing_values_and_plain_arrays_are_refused(xor_data):
    df = xor_data.iloc[:40].copy()
    df.loc[3, "image"] = None
    model = make_early_fusion(**_specs(), interactions="all", handle_missing=False)
    with pytest.raises(ValueError, match="Modality 'image' has missing values"):
        model.named_steps["interactions"].fit(pd.DataFrame(
            {"image__a": [np.nan, 1.0, 2.0], "audio__a": [1.0, 2.0, 3.0]}))
    # With handle_missing the block imputes, and the row keeps its place.
    model = make_early_fusion(**_specs(), interactions="all", handle_missing=True)
    assert model.fit_transform(df).shape[0] == len(df)
    with pytest.raises(TypeError, match="takes the DataFrame of an early-fusion"):
        ModalityInteractions().fit(np.zeros((5, 4)))
