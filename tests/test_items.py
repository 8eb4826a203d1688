"""Items are checked the same way whatever the cache holds, special files never hang a batch,
and cache keys follow what changes the output: no more, no less."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from conftest import SR, sine

from mmfeat import ExtractionError, ExtractionWarning
from mmfeat.audio import MFCCStats
from mmfeat.cache import FeatureCache
from mmfeat.image import CNNEmbedder, ColorHistogram


@pytest.fixture(scope="module")
def special_files(tmp_path_factory):
    fifo = tmp_path_factory.mktemp("special") / "a_fifo.png"
    os.mkfifo(fifo)
    return [str(fifo), "/dev/zero"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                    reason="POSIX only")
def test_a_fifo_or_a_device_is_a_row_error_never_a_hang(special_files, image_paths, audio_paths,
                                                        tmp_path):
    # run in a child with a timeout: a read of a FIFO with no writer would block this process
    code = textwrap.dedent(f"""
        import warnings
        import numpy as np
        from mmfeat import collect_errors
        from mmfeat.audio import MFCCStats
        from mmfeat.image import ColorHistogram
        special = {special_files!r}
        for make, good in ((ColorHistogram, {image_paths[0]!r}), (MFCCStats, {audio_paths[0]!r})):
            for cache in (False, {str(tmp_path / "store")!r}):
                ext = make(cache=cache, on_error="nan").fit([])
                with warnings.catch_warnings(), collect_errors() as errors:
                    warnings.simplefilter("ignore")
                    out = ext.transform([good] + special)
                assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()
                print(make.__name__, cache is not False,
                      sorted({{(e.row, e.cause) for e in errors}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().split("\n")
    assert len(lines) == 4
    for line in lines:
        assert "[(1, 'not a regular file (a FIFO, device or socket)'), " \
               "(2, 'not a regular file (a FIFO, device or socket)')]" in line, line


# ---------------------------------------------------------------------- checked before keying


@pytest.fixture(scope="module")
def mfcc():
    return MFCCStats(n_mfcc=13, cache=False).fit([])


def test_a_whole_float_rate_and_a_list_pair_are_the_int_rate_tuple(mfcc, tmp_path):
    wave = sine(440)
    expected = mfcc.transform([(wave, SR)])
    store = FeatureCache(tmp_path / "store")
    for cache in (False, store, store):  # off, cold, warm: always the same answer
        ext = MFCCStats(n_mfcc=13, cache=cache).fit([])
        out = ext.transform([(wave, float(SR)), [wave, SR], (wave, np.int64(SR)), (list(wave), SR)])
        np.testing.assert_allclose(out, np.repeat(expected, 4, axis=0), rtol=1e-5, atol=1e-5)
    assert store.stats()["entries"] == 1


@pytest.mark.parametrize("rate", [16000.5, -16000, 0, True, "16000", float("nan")])
def test_a_bad_rate_fails_even_when_a_valid_twin_is_cached(rate, tmp_path):
    wave = sine(440)
    store = FeatureCache(tmp_path / "store")
    MFCCStats(n_mfcc=13, cache=store).fit([]).transform([(wave, SR)])  # the int-rate twin, cached
    for cache in (store, False):
        with pytest.raises(ExtractionError,
                           match=r"row 0 .*sample rate .* is not a positive integer"):
            MFCCStats(n_mfcc=13, cache=cache).fit([]).transform([(wave, rate)])


def test_integer_pcm_is_keyed_by_the_samples_it_stands_for(mfcc, tmp_path):
    pcm = (sine(440) * 20000).astype(np.int16)
    same_numbers = pcm.astype(np.float32)  # 20000.0 is not 20000 / 32768
    store = FeatureCache(tmp_path / "store")
    ext = MFCCStats(n_mfcc=13, cache=store).fit([])
    cached = ext.transform([(pcm, SR), (same_numbers, SR)])
    np.testing.assert_allclose(cached, mfcc.transform([(pcm, SR), (same_numbers, SR)]), rtol=1e-5,
                               atol=1e-4)
    assert not np.allclose(cached[0], cached[1])
    assert store.stats()["entries"] == 2


@pytest.mark.parametrize("url", ["http://example.org/cat.png", "https://example.org/a.wav",
                                 "s3://bucket/key.jpg", "gs://bucket/x.flac"])
def test_an_url_is_said_to_be_not_read(url, tmp_path):
    for ext in (ColorHistogram(cache=False), MFCCStats(cache=tmp_path / "store")):
        with pytest.raises(ExtractionError, match=r"row 0 .*URLs are not read: download the file"):
            ext.fit([]).transform([url])


def test_raise_names_the_first_bad_file_in_row_order_and_counts_them_all(image_paths, bad_files,
                                                                         tmp_path):
    # the missing file (found while keying) comes after the truncated one (found while decoding)
    items = [image_paths[0], image_paths[1], bad_files["truncated_png"], image_paths[2],
             bad_files["missing"], 42, bad_files["zero_bytes"]]
    for cache in (False, tmp_path / "store"):
        with pytest.raises(ExtractionError) as info:
            ColorHistogram(cache=cache).fit([]).transform(items)
        assert info.value.row == 2, str(info.value)
        assert str(info.value).endswith("(3 more rows failed)"), str(info.value)


def test_the_nan_policy_reports_the_same_causes_with_the_cache_on_or_off(tmp_path):
    items = ["http://example.org/x.png", 3, np.zeros((4, 4, 7), np.uint8), np.array([object()])]
    causes = []
    for cache in (False, FeatureCache(tmp_path / "store")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ColorHistogram(cache=cache, on_error="nan").fit([]).transform(items)
        causes.append([str(w.message) for w in caught if issubclass(w.category, ExtractionWarning)])
    assert causes[0] == causes[1] and "4 of 4 rows failed" in causes[0][0]
    assert "cannot key" not in causes[0][0]


# ---------------------------------------------------------------------- keys


def test_max_pixels_and_whole_floats_do_not_change_keys(image_paths, tmp_path):
    assert (ColorHistogram(max_pixels=10**7).fingerprint()
            == ColorHistogram(max_pixels=None).fingerprint())
    assert CNNEmbedder(image_size=224).fingerprint() == CNNEmbedder(image_size=224.0).fingerprint()
    assert MFCCStats(offset=0).fingerprint() == MFCCStats(offset=0.0).fingerprint()
    assert MFCCStats(duration=1).fingerprint() == MFCCStats(duration=1.0).fingerprint()
    assert MFCCStats(duration=1).fingerprint() != MFCCStats(duration=1.5).fingerprint()
    store = FeatureCache(tmp_path / "store")
    ColorHistogram(cache=store).fit([]).transform(image_paths)
    before = store.stats()["hits"]
    ColorHistogram(cache=store, max_pixels=500_000).fit([]).transform(image_paths)
    assert store.stats()["hits"] - before == len(image_paths)


def test_in_place_weight_changes_of_a_user_module_give_new_vectors(tmp_path):
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())

    def to_tensor(image):
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255

    images = [np.full((32, 32, 3), v, np.uint8) for v in (50, 200)]
    for cache in (False, FeatureCache(tmp_path / "store")):
        ext = CNNEmbedder(net, preprocess=to_tensor, cache=cache).fit([])
        before = ext.transform(images)
        for param in net.parameters():
            param.data.mul_(2)  # through .data: autograd's version counter does not move
        after = ext.transform(images)
        np.testing.assert_allclose(after, 2 * before, rtol=1e-4, atol=1e-6)  # conv and bias doubled
        with torch.no_grad():
            for param in net.parameters():
                param.mul_(0.5)
        np.testing.assert_allclose(ext.transform(images), before, rtol=1e-5, atol=1e-7)


def test_a_module_trained_in_a_loop_keeps_one_loaded_copy():
    import torch

    from mmfeat.models import _MODELS

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())

    def to_tensor(image):
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255

    loaded_before = set(_MODELS)
    ext = CNNEmbedder(net, preprocess=to_tensor, cache=False).fit([])
    images = [np.full((16, 16, 3), 90, np.uint8)]
    results = []
    for _ in range(5):  # a training step between two uses, as in fine-tuning
        results.append(ext.transform(images))
        with torch.no_grad():
            net[0].weight.add_(0.1)
        assert len(set(_MODELS) - loaded_before) == 1  # the copy of the current weights only
    assert len({r.tobytes() for r in results}) == 5


def test_a_video_is_its_own_modality_and_keyed_as_its_file(tmp_path):
    """A video extractor says modality="video" (the robustness report removes it, never
    corrupts it as an image) and reads and keys its items as files (item_kind="image"): a
    clip's key is its file's digest under the extractor's fingerprint, as it always was."""
    from mmfeat.datasets._video import write_clip
    from mmfeat.keys import item_digest, make_key
    from mmfeat.robustness import corruption_kind
    from mmfeat.video import VideoFrames

    clip = str(tmp_path / "clip.mp4")
    write_clip(clip, np.random.default_rng(0))
    cache = FeatureCache(tmp_path / "cache")
    ext = VideoFrames(ColorHistogram(), n_frames=2, cache=cache).fit([clip])
    assert (ext.modality, ext.item_kind) == ("video", "image")
    assert (ColorHistogram.modality, ColorHistogram.item_kind) == ("image", "image")
    assert corruption_kind(ext) is None and corruption_kind(ColorHistogram()) == "image"
    out = ext.transform([clip])
    key = make_key(ext.fingerprint(), item_digest(clip, "image"))
    np.testing.assert_array_equal(cache.get_many([key])[key], out[0])
