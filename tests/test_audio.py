"""MFCCStats and SpectralStats on real sine-wave files written by the tests."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
from conftest import SR, sine, write_wav

from mmfeat.audio import MFCCStats, SpectralStats
from mmfeat.errors import ExtractionError, ExtractionWarning, collect_errors

AUDIO_BAD = ["missing", "zero_bytes", "zero_samples_wav", "nan_wav", "wrong_extension_wav"]


@pytest.fixture(scope="module", autouse=True)
def warm_librosa():
    """librosa's numba kernels compile (or load from numba's cache) on first call: pay it once."""
    tone = [(sine(440), SR)]
    MFCCStats(deltas=2, cache=False).fit_transform(tone)
    SpectralStats(cache=False).fit_transform(tone)


def nearest_is_same_group(features, groups):
    z = (features - features.mean(0)) / (features.std(0) + 1e-9)
    distance = np.linalg.norm(z[:, None] - z[None], axis=2)
    np.fill_diagonal(distance, np.inf)
    return all(groups[i] == groups[j] for i, j in enumerate(distance.argmin(1)))


def test_mfcc_separates_low_from_high_tones(audio_paths):
    features = MFCCStats(cache=False).fit_transform(audio_paths)
    assert features.shape == (6, 20 * 2 * 2) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert nearest_is_same_group(features, [0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("n_mfcc, deltas, stats", [
    (13, 0, ("mean",)), (20, 1, ("mean", "std")), (8, 2, ("min", "max", "median", "p10", "p90")),
])
def test_feature_names_follow_the_parameters(audio_paths, n_mfcc, deltas, stats):
    mfcc = MFCCStats(n_mfcc, deltas=deltas, stats=stats, cache=False)
    out = mfcc.fit_transform(audio_paths[:2])
    names = list(mfcc.get_feature_names_out())
    assert out.shape[1] == len(names) == len(set(names)) == n_mfcc * (1 + deltas) * len(stats)
    assert names[:len(stats)] == [f"mfcc_00_{s}" for s in stats]
    assert f"mfcc_{n_mfcc - 1:02d}_{stats[-1]}" in names
    for order in (1, 2):
        assert (f"mfcc_d{order}_03_{stats[0]}" in names) == (deltas >= order)


def test_statistics_match_numpy_on_librosa_mfccs(audio_paths):
    import librosa

    stats = ("mean", "std", "min", "p10", "median", "p90", "max")
    out = MFCCStats(13, deltas=0, stats=stats, cache=False).fit_transform(audio_paths[:1])[0]
    wave, _ = librosa.load(audio_paths[0], sr=SR)
    frames = librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40)
    expected = np.stack([frames.mean(1), frames.std(1), frames.min(1),
                         *np.percentile(frames, [10, 50, 90], axis=1), frames.max(1)], axis=1)
    np.testing.assert_allclose(out, expected.ravel(), rtol=1e-4, atol=1e-3)
    per_coefficient = out.reshape(13, len(stats))
    # min <= p10 <= median <= p90 <= max
    assert np.all(np.diff(per_coefficient[:, 2:], axis=1) >= 0)


def _clips_of_many_lengths():
    """Noisy tones of lengths from one window to three seconds, the 8- and 9-frame edges of
    the delta fit, and silence (every value on the 80 dB floor)."""
    rng = np.random.default_rng(0)
    lengths = [512, 700, 160 * 8, 160 * 9, 8000, 16000, 23456, 48000]
    waves = [(0.4 * np.sin(2 * np.pi * rng.uniform(100, 4000) * np.arange(n) / SR)
              + 0.05 * rng.standard_normal(n)).astype(np.float32) for n in lengths]
    return waves + [np.zeros(SR, np.float32)]


def _librosa_mfcc(wave, deltas):
    import librosa

    mfcc = librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=20, n_fft=512, hop_length=160, n_mels=40)
    mode = "interp" if mfcc.shape[1] >= 9 else "nearest"
    frames = np.concatenate([mfcc] + [librosa.feature.delta(mfcc, order=o, mode=mode)
                                      for o in range(1, deltas + 1)])
    return np.stack([frames.mean(1), frames.std(1)], axis=1).ravel()


def _librosa_spectral(wave):
    from librosa import feature, stft

    S = np.abs(stft(wave, n_fft=512, hop_length=160))
    rows = [feature.spectral_centroid(S=S, sr=SR, n_fft=512),
            feature.spectral_bandwidth(S=S, sr=SR, n_fft=512),
            feature.spectral_rolloff(S=S, sr=SR, n_fft=512),
            feature.zero_crossing_rate(wave, frame_length=512, hop_length=160),
            feature.rms(S=S, frame_length=512),
            feature.spectral_contrast(S=S, sr=SR, n_fft=512, fmin=200.0, n_bands=6),
            feature.chroma_stft(S=S**2, sr=SR, n_fft=512, tuning=0.0),
            feature.spectral_flatness(S=S)]
    frames = np.concatenate(rows).astype(np.float64)
    return np.stack([frames.mean(1), frames.std(1)], axis=1).ravel()


@pytest.mark.parametrize("extractor, reference", [
    (MFCCStats(deltas=2, cache=False), lambda w: _librosa_mfcc(w, deltas=2)),
    (SpectralStats(cache=False), _librosa_spectral),
], ids=["mfcc", "spectral"])
def test_batched_features_are_librosas_clip_by_clip(extractor, reference, monkeypatch):
    """The batched STFT, filterbanks, DCT, deltas and per-clip dB floors give librosa's numbers:
    measured, the largest difference is 1.4e-5 of each column's scale (float32 rounding)."""
    from mmfeat.audio import _frames

    waves = _clips_of_many_lengths()
    expected = np.stack([reference(w) for w in waves])
    scale = np.abs(expected).max(axis=0) + 1e-6
    one_batch = extractor.fit_transform([(w, SR) for w in waves])
    assert (np.abs(one_batch - expected) / scale).max() < 1e-4
    monkeypatch.setattr(_frames, "MAX_FRAMES", 150)  # runs of a clip or two: same numbers
    runs = extractor.transform([(w, SR) for w in waves])
    assert (np.abs(runs - expected) / scale).max() < 1e-4


def test_path_and_waveform_tuple_give_the_same_features(audio_paths):
    wave, rate = sf.read(audio_paths[3], dtype="float32")
    mfcc = MFCCStats(cache=False).fit(audio_paths)
    np.testing.assert_allclose(mfcc.transform([(wave, rate)]), mfcc.transform(audio_paths[3:4]),
                               atol=1e-5)


def test_int16_waveform_is_scaled_like_the_file(audio_paths):
    wave, rate = sf.read(audio_paths[3], dtype="int16")
    mfcc = MFCCStats(cache=False).fit(audio_paths)
    np.testing.assert_allclose(mfcc.transform([(wave, rate)]), mfcc.transform(audio_paths[3:4]),
                               atol=1e-3)


def test_duration_crops_and_pads(audio_paths):
    wave, _ = sf.read(audio_paths[0], dtype="float32")
    half = MFCCStats(duration=0.5, cache=False).fit_transform(audio_paths[:1])
    np.testing.assert_allclose(half, MFCCStats(cache=False).fit_transform([(wave[: SR // 2], SR)]),
                               atol=1e-5)
    padded = MFCCStats(duration=2.0, cache=False).fit_transform(audio_paths[:1])
    silence = np.concatenate([wave, np.zeros(SR, np.float32)])
    np.testing.assert_allclose(padded, MFCCStats(cache=False).fit_transform([(silence, SR)]),
                               atol=1e-5)


@pytest.mark.parametrize("extractor",
                         [MFCCStats(deltas=2, cache=False), SpectralStats(cache=False)],
                         ids=["mfcc", "spectral"])
def test_odd_but_valid_audio(odd_but_valid, tmp_path, extractor):
    names = ["stereo_wav_44k", "flac", "ogg", "short_clip"]
    out = extractor.fit_transform([odd_but_valid[n] for n in names])
    assert np.isfinite(out).all()
    wav = extractor.transform([write_wav(tmp_path / "tone.wav", sine(330))])[0]
    assert np.corrcoef(out[1], wav)[0, 1] > 0.99 and np.corrcoef(out[2], wav)[0, 1] > 0.99


def test_flac_gives_the_mfccs_of_the_same_wav(odd_but_valid, tmp_path):
    mfcc = MFCCStats(cache=False).fit([])
    wav = write_wav(tmp_path / "tone.wav", sine(330))
    # both store 16-bit PCM; the encoders round a few samples differently (1 LSB)
    np.testing.assert_allclose(*mfcc.transform([odd_but_valid["flac"], wav]), rtol=1e-3, atol=1e-2)


def test_stereo_44k_is_mixed_down_and_resampled(odd_but_valid):
    import librosa

    stereo, rate = sf.read(odd_but_valid["stereo_wav_44k"], dtype="float32")
    mono = librosa.resample(stereo.mean(axis=1), orig_sr=rate, target_sr=SR)
    mfcc = MFCCStats(cache=False).fit([])
    np.testing.assert_allclose(mfcc.transform([odd_but_valid["stereo_wav_44k"]]),
                               mfcc.transform([(mono, SR)]), atol=1e-4)


@pytest.mark.parametrize("bad", AUDIO_BAD)
def test_bad_file_raises_naming_the_row(audio_paths, bad_files, bad):
    with pytest.raises(ExtractionError, match="row 1 ") as info:
        MFCCStats(cache=False).fit([]).transform([audio_paths[0], bad_files[bad], audio_paths[1]])
    assert info.value.row == 1 and bad_files[bad] in str(info.value)


def test_bad_files_give_nan_rows_in_place(audio_paths, bad_files):
    batch = [audio_paths[0]] + [bad_files[b] for b in AUDIO_BAD] + [audio_paths[4]]
    mfcc = MFCCStats(cache=False, on_error="nan", batch_size=3).fit([])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = mfcc.transform(batch)
    found = [w for w in caught if issubclass(w.category, ExtractionWarning)]
    assert len(found) == 1 and f"{len(AUDIO_BAD)} of {len(batch)} rows" in str(found[0].message)
    assert np.isnan(out[1:-1]).all()
    clean = MFCCStats(cache=False).fit([]).transform([audio_paths[0], audio_paths[4]])
    np.testing.assert_allclose(out[[0, -1]], clean, atol=1e-6)


@pytest.fixture(scope="module")
def not_audio(tmp_path_factory):
    """Files an audio extractor may be handed by mistake: text named .wav, an image, a CSV."""
    from conftest import solid_image, write_png

    d = tmp_path_factory.mktemp("not_audio")
    (d / "notes.wav").write_text("RIFF? no, just text")
    (d / "table.csv").write_text("a,b\n1,2\n")
    return [str(d / "notes.wav"), write_png(d / "photo.png", solid_image((200, 10, 10))),
            str(d / "table.csv")]


@pytest.mark.parametrize("cls", [MFCCStats, SpectralStats])
def test_a_file_that_is_not_audio_is_named_so(audio_paths, not_audio, cls):
    """libsndfile closes a descriptor it fails to open; closing it again was EBADF ("Bad file
    descriptor") instead of the cause, and could close a file another thread had just opened."""
    for path in not_audio:
        with pytest.raises(ExtractionError) as info:
            cls(cache=False).fit([]).transform([audio_paths[0], path])
        assert info.value.row == 1 and path in str(info.value)
        assert info.value.cause == "not a readable audio file: Format not recognised."
    # Good and bad rows interleaved, loaded a batch ahead on the loader thread: every bad row
    # has its own cause and every good row its features.
    batch = [p for pair in zip(audio_paths, not_audio * 2) for p in pair]
    with collect_errors() as errors, warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtractionWarning)
        out = cls(cache=False, on_error="nan", batch_size=2).fit([]).transform(batch)
    assert [e.row for e in errors] == list(range(1, len(batch), 2))
    assert {e.cause for e in errors} == {"not a readable audio file: Format not recognised."}
    np.testing.assert_allclose(out[::2], cls(cache=False).fit([]).transform(audio_paths), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [MFCCStats, SpectralStats])
def test_two_processes_give_the_same_numbers(audio_paths, cls):
    items = audio_paths * 2
    one = cls(cache=False, batch_size=3).fit(items).transform(items)
    two = cls(cache=False, batch_size=3, n_jobs=2).fit(items).transform(items)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)


def test_blas_runs_one_thread_inside_and_is_restored_after(audio_paths):
    from threadpoolctl import threadpool_info

    def blas_threads():
        # numpy's and scipy's BLAS, the ones librosa calls; others (OpenCV's) may load later
        return [p["num_threads"] for p in threadpool_info()
                if p["user_api"] == "blas"
                and ("numpy" in p["filepath"] or "scipy" in p["filepath"])]

    seen = []

    class Probe(MFCCStats):
        def _batch_features(self, waves):
            seen.append(max(blas_threads()))
            return super()._batch_features(waves)

    before = blas_threads()
    Probe(cache=False, batch_size=1).fit([]).transform(audio_paths[:2])
    assert seen == [1, 1] and blas_threads() == before


def test_spectral_centroid_of_high_tones_is_higher(audio_paths):
    spectral = SpectralStats(stats=("mean",), cache=False)
    frame = spectral.set_output(transform="pandas").fit_transform(audio_paths)
    centroid = frame["spectral_centroid_mean"].to_numpy()
    assert centroid[3:].min() > 2 * centroid[:3].max()
    assert nearest_is_same_group(frame.to_numpy(), [0, 0, 0, 1, 1, 1])


def test_spectral_names_and_chroma_of_an_a440():
    spectral = SpectralStats(stats=("mean", "p90"), cache=False)
    out = spectral.fit_transform([(sine(440), SR)])[0]
    names = list(spectral.get_feature_names_out())
    assert len(names) == out.size == (5 + 7 + 12 + 1) * 2
    assert {"spectral_centroid_mean", "spectral_contrast6_p90",
            "spectral_chroma11_mean"} <= set(names)
    chroma = [out[names.index(f"spectral_chroma{i:02d}_mean")] for i in range(12)]
    assert int(np.argmax(chroma)) == 9  # pitch class A, counting from C


def test_spectral_subset_and_low_sample_rate():
    tone = [(sine(300, sr=8000), 8000)]
    spectral = SpectralStats(sr=8000, features=("contrast", "zcr"), stats=("max",), cache=False)
    out = spectral.fit_transform(tone)
    assert spectral.get_feature_names_out()[-1] == "spectral_zcr_max"
    assert out.shape == (1, 6 + 1) and np.isfinite(out).all()  # 5 octave bands below 4 kHz


@pytest.mark.parametrize("cls, params, match", [
    (MFCCStats, {"n_mfcc": 50},
     "'n_mfcc' parameter of MFCCStats must be at most n_mels=40. Got 50"),
    (MFCCStats, {"deltas": 3},
     r"'deltas' parameter of MFCCStats must be an int in the range \[0, 2\]. Got 3"),
    (MFCCStats, {"stats": ("mean", "p101")}, r"'stats' parameter .* Got \('mean', 'p101'\)"),
    (MFCCStats, {"stats": ("mean", "mean")}, "each statistic once"),
    (MFCCStats, {"hop_length": 0}, "'hop_length' parameter .* Got 0 instead"),
    (MFCCStats, {"duration": -1.0}, "'duration' parameter .* Got -1.0 instead"),
    (MFCCStats, {"n_fft": 100_000},
     "'n_fft' parameter of MFCCStats must be at most sr=16000 samples"),
    (MFCCStats, {"duration": 0.01},
     r"'n_fft' parameter .* at most duration \* sr = 0.01 \* 16000 = 160"),
    (MFCCStats, {"hop_length": 1024}, "'hop_length' parameter .* at most n_fft=512"),
    (SpectralStats, {"features": ("centroid", "loudness")},
     "'features' parameter of SpectralStats"),
    (SpectralStats, {"sr": 0}, "'sr' parameter .* Got 0 instead"),
    (SpectralStats, {"sr": 400, "n_fft": 256},
     "'sr' parameter of SpectralStats must be above 400 Hz with 'contrast'"),
])
def test_bad_parameters(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(cache=False, **params).fit([])


