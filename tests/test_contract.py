"""The compatibility suite every extractor passes: the scikit-learn contract and the bad-input
policy, on real files and real models.

sklearn's own ``parametrize_with_checks`` does not apply here: those checks feed 2-D numeric
arrays, and an extractor's input is a 1-D sequence of paths, texts or waveforms. They run on
the fusion estimators instead (tests/test_fusion.py)."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline

from mmfeat import CacheWarning, ExtractionError, ExtractionWarning
from mmfeat.cache import FeatureCache
from mmfeat.registry import make_extractor

# name -> (parameters kept small for speed, modality, a parameter that changes the output)
CASES = {
    "color": ({"bins": (4, 4, 4)}, "image", ("bins", (2, 2, 2))),
    "gradient": ({}, "image", None),
    "orb": ({"n_words": 8, "random_state": 0}, "image", None),
    "cnn": ({}, "image", None),
    "sentence": ({}, "text", ("normalize", False)),
    "mfcc": ({"n_mfcc": 13}, "audio", ("n_mfcc", 8)),
    "spectral": ({}, "audio", None),
}
# The model extractors load whole models: their cases are in the slow tier.
MODELS = [pytest.param(n, marks=pytest.mark.slow) for n in CASES if make_extractor(n).uses_model]
NAMES = [next((p for p in MODELS if p.values == (n,)), n) for n in CASES]
BAD = {
    "image": ["missing", "zero_bytes", "truncated_jpeg", "truncated_png", "wrong_extension"],
    "audio": ["missing", "zero_bytes", "zero_samples_wav", "nan_wav", "wrong_extension_wav"],
    "text": [],
}


@pytest.fixture(scope="module")
def data(image_paths, audio_paths, texts):
    return {
        "image": (image_paths, [0, 0, 0, 1, 1, 1]),
        "audio": (audio_paths, [0, 0, 0, 1, 1, 1]),
        "text": (texts, [0, 0, 1, 1, 2, 2]),
    }


@pytest.fixture(scope="module", params=NAMES)
def case(request, data, tmp_path_factory):
    """A fitted extractor, its items and labels, and its clean output."""
    params, modality, changer = CASES[request.param]
    cache = str(tmp_path_factory.mktemp(f"cache-{request.param}"))
    ext = make_extractor(request.param, cache=cache, **params)
    items, y = data[modality]
    out = ext.fit(items).transform(items)
    return request.param, ext, modality, items, y, out, changer


def test_output_is_float32_named_and_finite(case):
    name, ext, _, items, _, out, _ = case
    assert out.dtype == np.float32 and out.shape == (len(items), ext.n_features_out_)
    assert np.isfinite(out).all()
    names = ext.get_feature_names_out()
    assert len(names) == out.shape[1] and len(set(names)) == len(names)
    assert all(n.startswith(ext.feature_prefix + "_") for n in names)


def test_fit_transform_equals_fit_then_transform(case):
    _, ext, _, items, _, out, _ = case
    np.testing.assert_allclose(clone(ext).fit_transform(items), out, rtol=1e-5, atol=1e-6)


def test_clone_and_params_round_trip(case):
    _, ext, _, items, _, _, changer = case
    twin = clone(ext)
    assert twin.get_params() == ext.get_params()
    assert not hasattr(twin, "n_features_out_")
    twin.set_params(**twin.get_params())
    assert twin.get_params() == ext.get_params()
    if changer:
        key, value = changer
        assert twin.set_params(**{key: value}).fingerprint() != ext.fingerprint()
    runtime_only = clone(ext).set_params(batch_size=3, verbose=True).fit(items)
    assert runtime_only.fingerprint() == ext.fingerprint()


def test_pickle_is_small_and_gives_the_same_features(case):
    _, ext, _, items, _, out, _ = case
    blob = pickle.dumps(ext)
    assert len(blob) < 100_000, f"pickle of {len(blob)} bytes: model weights inside?"
    restored = pickle.loads(blob)
    np.testing.assert_allclose(restored.transform(items), out, rtol=1e-5, atol=1e-6)


def test_cache_hits_after_clone_and_pickle_and_misses_after_a_change(case, tmp_path):
    name, ext, _, items, _, out, changer = case
    store = FeatureCache(tmp_path / "store")
    first = clone(ext).set_params(cache=store).fit(items)
    np.testing.assert_allclose(first.transform(items), out, rtol=1e-5, atol=1e-6)
    n_unique = store.stats()["entries"]
    assert n_unique == len(set(map(str, items)))
    def totals():  # of every FeatureCache instance on the store (clones and unpickled copies)
        stats = store.stats()
        return np.array([stats["hits"], stats["misses"]])

    for twin in (clone(first).fit(items), pickle.loads(pickle.dumps(first))):
        before = totals()
        np.testing.assert_allclose(twin.transform(items), out, rtol=1e-5, atol=1e-6)
        assert list(totals() - before) == [n_unique, 0]
    if changer:
        changed = clone(first).set_params(**{changer[0]: changer[1]}).fit(items)
        before = totals()
        changed.transform(items)
        assert list(totals() - before) == [0, n_unique]  # never a stale vector
        assert store.stats()["entries"] == 2 * n_unique

    store.close()  # then damage the file: a warning, and the same features computed afresh
    (tmp_path / "store" / "features.sqlite").write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        (tmp_path / "store" / f"features.sqlite{suffix}").unlink(missing_ok=True)
    damaged = clone(ext).set_params(cache=FeatureCache(tmp_path / "store")).fit(items)
    with pytest.warns(CacheWarning):
        np.testing.assert_allclose(damaged.transform(items), out, rtol=1e-5, atol=1e-6)


def test_pandas_input_and_output(case):
    _, ext, _, items, _, out, _ = case
    frame = pd.DataFrame({"col": items}, index=[f"r{i}" for i in range(len(items))])
    fitted = clone(ext).fit(frame).set_output(transform="pandas")
    result = fitted.transform(frame)
    assert list(result.columns) == list(ext.get_feature_names_out())
    assert list(result.index) == list(frame.index)
    np.testing.assert_allclose(result.to_numpy(), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ext.transform(frame["col"]), out, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_grid_search_with_two_processes(case):
    _, ext, _, items, y, _, _ = case
    pipe = make_pipeline(clone(ext), LogisticRegression(max_iter=500))
    search = GridSearchCV(pipe, {"logisticregression__C": [0.1, 10.0]}, cv=2, n_jobs=2)
    search.fit(pd.Series(items), y)
    assert search.predict(pd.Series(items)).shape == (len(items),)
    scores = cross_val_score(pipe, pd.Series(items), y, cv=2)
    assert np.isfinite(scores).all()


def bad_items(modality, bad_files):
    return [bad_files[k] for k in BAD[modality]] + [None, float("nan")] + (
        ["", "   "] if modality == "text" else []
    )


def test_bad_rows_raise_naming_the_row(case, bad_files):
    _, ext, modality, items, _, _, _ = case
    for bad in bad_items(modality, bad_files):
        with pytest.raises(ExtractionError) as info:
            ext.transform([items[0], items[1], bad, items[2]])
        assert info.value.row == 2, str(info.value)
        assert "row 2" in str(info.value)
        if isinstance(bad, str) and bad.strip():
            assert bad in str(info.value)


def test_bad_rows_become_nan_in_place_under_nan_policy(case, bad_files):
    _, ext, modality, items, _, out, _ = case
    bad = bad_items(modality, bad_files)
    mixed, where = [], []
    for i, item in enumerate(items):  # interleave: good, bad, good, bad ...
        mixed.append(item)
        if i < len(bad):
            where.append(len(mixed))
            mixed.append(bad[i])
    mixed += bad[len(items):]
    where += list(range(len(mixed) - len(bad[len(items):]), len(mixed)))
    tolerant = clone(ext).set_params(on_error="nan")
    tolerant.fit(items)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tolerant.transform(mixed)
    good = [i for i in range(len(mixed)) if i not in where]
    assert np.isnan(result[where]).all()
    np.testing.assert_allclose(result[good], out, rtol=1e-5, atol=1e-6)
    counted = [w for w in caught if issubclass(w.category, ExtractionWarning)]
    broken = len(where) - 2  # None and NaN are missing values: NaN rows, not counted as failures
    assert len(counted) == 1
    assert (f"{broken} of {len(mixed)} rows failed and were given NaN features "
            "(2 more were missing values)" in str(counted[0].message))


# ---------------------------------------------------------------------- parameters, every class

# name -> [(parameters, what sklearn's validation says)]: each must fail in fit, before any work
BAD_PARAMS = {
    "color": [
        ({"size": -5},
         r"'size' parameter of ColorHistogram must be an int in the range \[1, inf\) or None. "
         r"Got -5"),
        ({"size": 0}, r"'size' parameter of ColorHistogram .* Got 0 instead"),
        ({"bins": (2.5, 2, 2)},
         r"'bins' parameter of ColorHistogram must be a tuple of 3 ints in the range \[1, 256\]"),
        ({"bins": 8}, r"'bins' parameter of ColorHistogram must be an instance of 'tuple' or an "
                      r"instance of 'list'. Got 8"),
        ({"max_pixels": -1}, r"'max_pixels' parameter of ColorHistogram must be an int in the "
                             r"range \[1, inf\) or None. Got -1"),
        ({"verbose": "yes"}, r"'verbose' parameter of ColorHistogram .* Got 'yes' instead"),
    ],
    "gradient": [
        ({"size": (64, 0)}, r"'size' parameter of GradientHistogram must be a tuple of 2 ints"),
        ({"cell_size": 0},
         r"'cell_size' parameter of GradientHistogram must be an int in the range \[1, inf\)"),
        ({"block_size": 2.0}, r"'block_size' parameter of GradientHistogram .* Got 2.0 instead"),
        ({"norm": "l1"}, r"'norm' parameter of GradientHistogram must be a str among"),
        ({"size": 12, "block_size": 2}, "at least one block"),
    ],
    "orb": [
        ({"n_words": 0}, r"'n_words' parameter of ORBBagOfWords .* Got 0 instead"),
        ({"size": 16},
         r"'size' parameter of ORBBagOfWords must be an int in the range \[32, inf\) or None"),
        ({"random_state": "seed"},
         r"'random_state' parameter of ORBBagOfWords .* Got 'seed' instead"),
        ({"n_jobs": 0}, r"'n_jobs' parameter of ORBBagOfWords must be an int in the range "
                        r"\(-inf, -1\], an int in the range \[1, inf\) or None"),
    ],
    "cnn": [
        ({"model": "resnet"},
         r"'model' parameter of CNNEmbedder must be a str among .* Got 'resnet' instead"),
        ({"image_size": 16},
         r"'image_size' parameter of CNNEmbedder must be an int in the range \[32, inf\) or None"),
        ({"half": "yes"}, r"'half' parameter of CNNEmbedder .* Got 'yes' instead"),
        ({"preprocess": "center"},
         r"'preprocess' parameter of CNNEmbedder must be a callable or None"),
        ({"device": 0}, r"'device' parameter of CNNEmbedder must be an instance of 'str'"),
        ({"backend": "tensorrt"},
         r"'backend' parameter of CNNEmbedder must be a str among .* Got 'tensorrt'"),
    ],
    "sentence": [
        ({"normalize": "yes"}, r"'normalize' parameter of SentenceEmbedder .* Got 'yes' instead"),
        ({"max_length": 0}, r"'max_length' parameter of SentenceEmbedder must be an int in the "
                            r"range \[1, inf\) or None"),
        ({"model": 3}, r"'model' parameter of SentenceEmbedder .* Got 3 instead"),
        ({"batch_size": 2.5}, r"'batch_size' parameter of SentenceEmbedder must be an int in "
                              r"the range \[1, inf\). Got 2.5"),
        ({"backend": "tensorrt"},
         r"'backend' parameter of SentenceEmbedder must be a str among .* Got 'tensorrt'"),
        ({"precision": "int4"},
         r"'precision' parameter of SentenceEmbedder must be a str among .* Got 'int4'"),
        ({"precision": "int8", "backend": "torch"}, r"precision='int8'\) runs in ONNX Runtime"),
    ],
    "mfcc": [
        ({"n_fft": 100_000}, r"'n_fft' parameter of MFCCStats must be at most sr=16000 samples "
                             r"\(a window of 1 s\). Got 100000"),
        ({"deltas": 3},
         r"'deltas' parameter of MFCCStats must be an int in the range \[0, 2\]. Got 3"),
        ({"offset": -1},
         r"'offset' parameter of MFCCStats must be a float in the range \[0.0, inf\). Got -1"),
        ({"max_duration": float("inf")},
         r"'max_duration' parameter of MFCCStats .* Got inf instead"),
        ({"on_error": "skip"},
         r"'on_error' parameter of MFCCStats must be a str among \{.*\}. Got 'skip'"),
        ({"cache": 3}, r"'cache' parameter of MFCCStats must be None, .* Got 3 instead"),
    ],
    "spectral": [
        ({"features": ("centroid", "loudness")},
         r"'features' parameter of SpectralStats must be a non-empty sequence"),
        ({"stats": ("mean", "p101")},
         r"'stats' parameter of SpectralStats must be a non-empty sequence"),
        ({"sr": 16000.0},
         r"'sr' parameter of SpectralStats must be an int in the range \[1, inf\). Got 16000.0"),
        ({"hop_length": 1024},
         r"'hop_length' parameter of SpectralStats must be at most n_fft=512"),
    ],
}


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_has_a_sklearn_constraint(name):
    ext = make_extractor(name)
    missing = set(ext.get_params(deep=False)) - set(ext._parameter_constraints)
    assert not missing, f"{type(ext).__name__} parameters without a constraint: {sorted(missing)}"


@pytest.mark.parametrize("name, params, match",
                         [(name, params, match) for name, rows in BAD_PARAMS.items()
                          for params, match in rows],
                         ids=lambda v: v if isinstance(v, str) and len(v) < 12 else None)
def test_bad_parameters_are_refused_in_fit_with_sklearn_messages(name, params, match, data):
    ext = make_extractor(name, **{"cache": False, **params})  # __init__ stores; fit validates
    items = data[CASES[name][1]][0]
    with pytest.raises(ValueError, match=match):
        ext.fit(items)
    assert not hasattr(ext, "n_features_out_")


@pytest.mark.parametrize("name", MODELS)
def test_a_device_that_is_not_here_is_refused_in_fit_naming_the_devices(name, data):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    items = data[CASES[name][1]][0]
    for device in ("cuda", "cuda:1", "tpu"):
        with pytest.raises(ValueError, match=rf"device='{device}' .*not available on this "
                                             r"machine.* Devices here: 'cpu'"):
            make_extractor(name, device=device, cache=False).fit(items)


# ---------------------------------------------------------------------- input forms, every class


def test_one_item_or_an_iterator_is_refused_never_misread(case):
    _, ext, modality, items, _, out, _ = case
    with pytest.raises(TypeError, match="read only once"):
        clone(ext).fit_transform(item for item in items)
    with pytest.raises(TypeError, match="read only once"):
        ext.transform(iter(items))
    if modality == "image":
        image = np.full((224, 224, 3), 120, np.uint8)
        for single in (image, image[:, :, 0]):
            with pytest.raises(TypeError, match=r"Wrap a single image in a list \(\[image\]\)"):
                clone(ext).fit_transform(single)
        stacked = ext.transform(np.stack([image, image[::-1]]))  # an explicit 4-D stack: 2 rows
        np.testing.assert_allclose(stacked, ext.transform([image, image[::-1]]), rtol=1e-5,
                                   atol=1e-6)
    if modality == "audio":
        wave = np.zeros(16000, np.float32)
        with pytest.raises(TypeError, match=r"Wrap it in a list: \[\(waveform, sr\)\]"):
            ext.transform((wave, 16000))
        with pytest.raises(TypeError, match=r"numeric array of shape \(16000,\)"):
            ext.transform(wave)


def test_global_pandas_output(case):
    import sklearn

    _, ext, _, items, _, out, _ = case
    with sklearn.config_context(transform_output="pandas"):
        frame = clone(ext).fit_transform(pd.Series(items, index=range(10, 10 + len(items))))
        again = ext.transform(items)
    assert isinstance(frame, pd.DataFrame) and isinstance(again, pd.DataFrame)
    assert list(frame.columns) == list(ext.get_feature_names_out())
    assert list(frame.index) == list(range(10, 10 + len(items)))
    np.testing.assert_allclose(frame.to_numpy(), out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again.to_numpy(), out, rtol=1e-5, atol=1e-6)
