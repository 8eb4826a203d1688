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


@pytest.fixture(scope="module", params=list(CASES))
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
        assert f"row 2" in str(info.value)
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
    assert f"{broken} of {len(mixed)} rows failed and were given NaN features (2 more were missing values)" in str(counted[0].message)
