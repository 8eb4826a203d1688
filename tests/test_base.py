"""The Extractor base class: input forms, row order, the error policy, deduplication, the cache."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from counting import CountingText, count_lines
from sklearn.base import clone

import mmfeat
from mmfeat import ExtractionError, ExtractionWarning, collect_errors
from mmfeat.cache import FeatureCache

TEXTS = ["Hello world", "A cat sat", "Hello world", "Stocks fell today", "The end"]


def test_every_accepted_input_form_gives_the_same_features():
    ext = CountingText(cache=False).fit(TEXTS)
    expected = ext.transform(TEXTS)
    forms = [
        pd.Series(TEXTS, index=[10, 3, 7, 1, 0]),
        pd.DataFrame({"caption": TEXTS}),
        np.array(TEXTS, dtype=object),
        np.array(TEXTS, dtype=object).reshape(-1, 1),
        tuple(TEXTS),
    ]
    for X in forms:
        np.testing.assert_array_equal(ext.transform(X), expected)
    assert expected.dtype == np.float32 and expected.shape == (5, 4)


def test_wrong_inputs_and_parameters_are_named():
    with pytest.raises(TypeError, match="single str"):
        CountingText(cache=False).fit("just one string")
    with pytest.raises(ValueError, match="2 columns"):
        CountingText(cache=False).fit(pd.DataFrame({"a": TEXTS, "b": TEXTS}))
    with pytest.raises(ValueError, match=r"'batch_size' parameter of CountingText must be an int "
                                         r"in the range \[1, inf\)\. Got -1"):
        CountingText(batch_size=-1).fit(TEXTS)
    with pytest.raises(ValueError, match="'on_error' parameter of CountingText must be a str "
                                         "among .*Got 'skip'"):
        CountingText(on_error="skip").fit(TEXTS)


@pytest.mark.parametrize("method", ["fit", "fit_transform", "transform"])
def test_an_iterator_is_refused_never_read_as_zero_rows(method):
    ext = CountingText(cache=False)
    if method == "transform":
        ext.fit(TEXTS)
    for one_shot in ((t for t in TEXTS), iter(TEXTS), map(str, TEXTS)):
        with pytest.raises(TypeError, match="can be read only once.*list\\(X\\)"):
            getattr(ext, method)(one_shot)
    with pytest.raises(TypeError, match="no order"):
        getattr(ext, method)(set(TEXTS))
    with pytest.raises(TypeError, match="read as its keys"):
        getattr(ext, method)(dict.fromkeys(TEXTS))


def test_raise_reports_the_first_failing_row_in_row_order_with_the_true_count(tmp_path):
    # row 1 fails while loading, rows 3-7 fail before (an int, None): every row is counted
    items = ["fine", "BOOM", "ok", 7, None, None, 3.5, "", "end"]
    for cache in (False, FeatureCache(tmp_path / "store")):
        with pytest.raises(ExtractionError) as info:
            CountingText(cache=cache).fit(TEXTS).transform(items)
        assert info.value.row == 1, str(info.value)
        assert "exploded on purpose (5 more rows failed)" in str(info.value)


def test_a_bad_item_gets_the_same_message_with_the_cache_on_or_off(tmp_path):
    messages = set()
    for cache in (False, FeatureCache(tmp_path / "store")):
        with pytest.raises(ExtractionError) as info:
            CountingText(cache=cache).fit(TEXTS).transform(["a text", 42])
        messages.add(str(info.value))
    assert messages == {"CountingText: row 1 (<int>): expected a string, got int"}


def test_get_feature_names_out_checks_input_features_as_sklearn_does():
    ext = CountingText(cache=False).fit(pd.DataFrame({"caption": TEXTS}))
    names = list(ext.get_feature_names_out())
    assert list(ext.get_feature_names_out(["caption"])) == names
    with pytest.raises(ValueError, match="input_features is not equal to feature_names_in_"):
        ext.get_feature_names_out(["title"])
    unnamed = CountingText(cache=False).fit(TEXTS)
    assert list(unnamed.get_feature_names_out(["anything"])) == names
    with pytest.raises(ValueError, match="input_features should have length equal to number of "
                                         "features \\(1\\), got 2"):
        unnamed.get_feature_names_out(["a", "b"])


def test_verbose_on_a_warm_cache_shows_the_hits(tmp_path, capsys):
    store = FeatureCache(tmp_path / "store")
    CountingText(cache=store).fit(TEXTS).transform(TEXTS)
    capsys.readouterr()
    CountingText(cache=store, verbose=True).fit(TEXTS).transform(TEXTS)
    shown = capsys.readouterr().err
    assert "CountingText" in shown and "4/4" in shown and "4 from the cache" in shown, shown
    CountingText(cache=store, verbose=False).fit(TEXTS).transform(TEXTS)
    assert capsys.readouterr().err == ""


def test_raise_names_row_item_and_cause():
    ext = CountingText(cache=False).fit(TEXTS)
    with pytest.raises(ExtractionError) as info:
        ext.transform(["fine", "also fine", "BOOM", "ok", "BOOM"])
    err = info.value
    assert (err.row, err.item) == (2, "'BOOM'")
    assert "exploded on purpose" in err.cause and "1 more rows failed" in err.cause
    assert "row 2" in str(err) and "CountingText" in str(err)
    assert pickle.loads(pickle.dumps(err)).row == 2
    with pytest.raises(ExtractionError, match=r"row 1 \(None\): missing value"):
        ext.transform(["fine", None])


@pytest.mark.parametrize("batch_size", [1, 2, 16])
def test_nan_policy_keeps_every_other_row_in_place(batch_size):
    good = ["alpha", "Beta gamma", "delta", "Epsilon Zeta Eta"]
    mixed = [good[0], None, good[1], "BOOM", float("nan"), good[2], "", good[3]]
    ext = CountingText(cache=False, on_error="nan", batch_size=batch_size).fit(good)
    clean = ext.transform(good)
    with warnings.catch_warnings(record=True) as caught, collect_errors() as errors:
        warnings.simplefilter("always")
        out = ext.transform(mixed)
    bad_rows = [1, 3, 4, 6]
    assert np.isnan(out[bad_rows]).all()
    np.testing.assert_array_equal(out[[0, 2, 5, 7]], clean)
    messages = [w for w in caught if issubclass(w.category, ExtractionWarning)]
    assert len(messages) == 1
    assert ("2 of 8 rows failed and were given NaN features (2 more were missing values)"
            in str(messages[0].message))
    assert [e.row for e in errors] == bad_rows
    assert {e.cause for e in errors} == {"missing value", "ValueError: exploded on purpose",
                                         "empty text"}


def test_missing_values_alone_give_nan_rows_without_a_warning():
    ext = CountingText(cache=False, on_error="nan").fit(TEXTS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ext.transform(["some text", None, float("nan")])
    assert np.isnan(out[1:]).all() and np.isfinite(out[0]).all()


def test_duplicates_are_computed_once_without_a_cache(tmp_path):
    log = tmp_path / "log"
    ext = CountingText(cache=False, log_path=str(log)).fit(TEXTS)
    out = ext.transform(TEXTS)
    assert count_lines(log) == 4  # "Hello world" twice, computed once
    np.testing.assert_array_equal(out[0], out[2])


@pytest.mark.slow
def test_parallel_jobs_match_sequential(tmp_path):
    texts = [f"text number {i} " * (i % 7 + 1) for i in range(200)]
    one = CountingText(cache=False, batch_size=8).fit(texts).transform(texts)
    two = CountingText(cache=False, batch_size=8, n_jobs=2).fit(texts).transform(texts)
    np.testing.assert_array_equal(one, two)


def test_cache_hits_survive_clone_pickle_and_skip_runtime_params(tmp_path):
    log, store = tmp_path / "log", FeatureCache(tmp_path / "cache")
    ext = CountingText(cache=store, log_path=str(log)).fit(TEXTS)
    first = ext.transform(TEXTS)
    assert count_lines(log) == 4
    again = clone(ext).set_params(batch_size=1, verbose=False).fit(TEXTS).transform(TEXTS)
    restored = pickle.loads(pickle.dumps(ext)).transform(TEXTS)
    assert count_lines(log) == 4  # clone with other batch_size, and the unpickled copy: all hits
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, restored)
    changed = ext.set_params(scale=2.0).transform(TEXTS)  # an output parameter: new keys
    assert count_lines(log) == 8
    np.testing.assert_array_equal(changed, 2 * first)
    assert store.stats()["entries"] == 8


def test_failed_items_are_not_cached(tmp_path):
    log, store = tmp_path / "log", FeatureCache(tmp_path / "cache")
    ext = CountingText(cache=store, log_path=str(log), on_error="nan").fit(TEXTS)
    with pytest.warns(ExtractionWarning):
        ext.transform(["ok text", "BOOM"])
    assert store.stats()["entries"] == 1
    with pytest.warns(ExtractionWarning):
        ext.transform(["ok text", "BOOM"])
    assert count_lines(log) == 1  # "ok text" computed once, then a hit
    assert store.stats()["entries"] == 1  # "BOOM" failed again and is still not stored


def test_global_cache_setting_and_switch_off(tmp_path):
    log = tmp_path / "log"
    with mmfeat.config_context(cache_dir=tmp_path / "global"):
        CountingText(log_path=str(log)).fit(TEXTS).transform(TEXTS)
        CountingText(log_path=str(log)).fit(TEXTS).transform(TEXTS)
        assert mmfeat.get_config()["cache_dir"] == tmp_path / "global"
    assert count_lines(log) == 4
    assert FeatureCache(tmp_path / "global").stats()["entries"] == 4
    with mmfeat.config_context(cache_dir=False):
        CountingText(log_path=str(log)).fit(TEXTS).transform(TEXTS)
    assert count_lines(log) == 8


def test_damaged_store_warns_and_still_gives_correct_features(tmp_path):
    store_dir = tmp_path / "cache"
    ext = CountingText(cache=str(store_dir)).fit(TEXTS)
    expected = ext.transform(TEXTS)
    store = FeatureCache(store_dir)
    store.close()
    (store_dir / "features.sqlite").write_bytes(b"garbage" * 1000)
    for suffix in ("-wal", "-shm"):
        (store_dir / f"features.sqlite{suffix}").unlink(missing_ok=True)
    damaged = CountingText(cache=FeatureCache(store_dir)).fit(TEXTS)
    with pytest.warns(mmfeat.CacheWarning):
        out = damaged.transform(TEXTS)
    np.testing.assert_array_equal(out, expected)


def test_feature_names_and_pandas_output():
    ext = CountingText(cache=False).fit(pd.DataFrame({"caption": TEXTS}))
    assert list(ext.get_feature_names_out()) == ["count_length", "count_upper", "count_spaces",
                                                 "count_hash97"]
    frame = ext.set_output(transform="pandas").transform(pd.DataFrame({"caption": TEXTS},
                                                                      index=list("abcde")))
    assert list(frame.columns) == list(ext.get_feature_names_out())
    assert list(frame.index) == list("abcde")


HEAVY = ("torch", "sentence_transformers", "transformers", "librosa", "onnxruntime", "av", "dask")


LIGHT = ["mmfeat", "mmfeat.base", "mmfeat.cache", "mmfeat.io", "mmfeat.image", "mmfeat.text",
         "mmfeat.audio", "mmfeat.video", "mmfeat.fusion", "mmfeat.scoring", "mmfeat.cli"]


def _heavy_loaded_by(modules):
    """The heavy libraries in a fresh process once ``modules`` are imported."""
    code = (f"import sys, {', '.join(modules)}; "
            f"print(' '.join(sorted(set({HEAVY!r}) & set(sys.modules))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_import_stays_light():
    """Importing any part of mmfeat loads none of the heavy libraries: they load on first use.
    One process importing every part loads whatever any one of them would; only when it finds
    a heavy library is each part imported alone, to name the one that loads it."""
    loaded = _heavy_loaded_by(LIGHT)
    if loaded:
        culprits = {module: _heavy_loaded_by([module]) for module in LIGHT}
        pytest.fail(f"importing mmfeat loaded {loaded}: "
                    f"{ {m: found for m, found in culprits.items() if found} }")


class BrokenModelText(CountingText):
    """A model-backed extractor whose model cannot load (weights gone, out of memory ...)."""

    uses_model = True
    attempts = 0

    def _model_identity(self):
        return "broken"

    def _load_model(self, device):
        type(self).attempts += 1
        raise OSError("weights file is gone")

    def _features(self, loaded):
        self._get_model()
        return super()._features(loaded)


def test_a_model_that_cannot_load_fails_the_call_once_not_every_row():
    BrokenModelText.attempts = 0
    ext = BrokenModelText(cache=False, on_error="nan", batch_size=2).fit(TEXTS)
    with pytest.raises(OSError, match="weights file is gone"):
        ext.transform(TEXTS)
    assert BrokenModelText.attempts == 1


def test_a_cpu_device_is_checked_without_importing_torch():
    code = ("import sys; from counting import CountingText; "
            "from mmfeat.models import check_device; "
            "check_device('cpu', 'X'); check_device('auto', 'X'); "
            "CountingText(cache=False).fit(['a']).transform(['a']); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=str(Path(__file__).parent))
    assert result.returncode == 0, result.stdout + result.stderr
