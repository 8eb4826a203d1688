"""Video extractors on clips written by the tests themselves: OpenCV's VideoWriter (MPEG-4 Part 2
and Motion JPEG in MP4, AVI and MKV) and PyAV (H.264, VP9, and AAC or PCM sound tracks),
plus each kind of bad file. The shared contract checks of tests/test_contract.py run over
every video extractor."""

from __future__ import annotations

import fractions
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from test_contract import (  # noqa: F401  the shared suite, run here on video extractors
    test_cache_hits_after_clone_and_pickle_and_misses_after_a_change,
    test_fit_transform_equals_fit_then_transform,
    test_global_pandas_output,
    test_grid_search_with_two_processes,
    test_one_item_or_an_iterator_is_refused_never_misread,
    test_output_is_float32_named_and_finite,
    test_pandas_input_and_output,
    test_pickle_is_small_and_gives_the_same_features,
)

from mmfeat import ExtractionError, ExtractionWarning
from mmfeat.audio import MFCCStats
from mmfeat.cache import FeatureCache
from mmfeat.image import CNNEmbedder, ColorHistogram, ORBBagOfWords
from mmfeat.video import MotionStats, PartialDecodeWarning, VideoAudio, VideoFrames

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models

SIZE, FPS, SR = 64, 15, 16_000
BACKGROUNDS = [(200, 40, 40), (180, 60, 30), (220, 30, 70), (40, 50, 200), (30, 80, 180),
               (60, 40, 220)]


# ---------------------------------------------------------------------- writing clips


def scene(t, background=(200, 40, 40), motion="right", size=SIZE):
    """Frame ``t`` (RGB) of a white disc moving over a plain background."""
    import cv2

    frame = np.empty((size, size, 3), np.uint8)
    frame[:] = background
    c, r = size // 2, size // 8
    x, y = {"right": (8 + 2 * t, c), "down": (c, 8 + 2 * t), "still": (c, c)}[motion]
    cv2.circle(frame, (int(x * size / SIZE) % size, int(y * size / SIZE) % size), r,
               (255, 255, 255), -1)
    return frame


def write_cv2(path, frames, fourcc="mp4v", fps=FPS):
    import cv2

    frames = list(frames)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), path
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)


def tone(freq, seconds, sr=SR):
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def write_av(path, frames, *, vcodec="mpeg4", sound=None, acodec="aac", sr=SR, fps=FPS,
             times_ms=None):
    """A video through PyAV, with ``sound`` (mono float32 at ``sr``) as its sound track;
    ``times_ms`` gives each frame its own time (a variable frame rate)."""
    av = pytest.importorskip("av")
    frames = list(frames)
    with av.open(str(path), "w") as container:
        video = container.add_stream(vcodec, rate=fps)
        video.width, video.height = frames[0].shape[1], frames[0].shape[0]
        video.pix_fmt = "yuv420p"
        if times_ms is not None:
            video.codec_context.time_base = fractions.Fraction(1, 1000)
        audio = container.add_stream(acodec, rate=sr, layout="mono") if sound is not None else None
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], fractions.Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None:
            planar = audio.codec_context.format.name  # "fltp" for AAC, "s16" for PCM
            for start in range(0, len(sound), 1024):
                block = sound[start : start + 1024][None]
                if planar == "s16":
                    block = (block * 32767).astype(np.int16)
                frame = av.AudioFrame.from_ndarray(block, format=planar, layout="mono")
                frame.sample_rate, frame.pts = sr, start
                container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return str(path)


def clip(t_max, **kw):
    return [scene(t, **kw) for t in range(t_max)]


TONES = [300, 330, 360, 2000, 2200, 2400]


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Six silent 2-second clips (three red with a disc moving right, three blue with a disc
    moving down) in MP4, AVI and MKV, written by OpenCV."""
    d = tmp_path_factory.mktemp("clips")
    containers = [("mp4", "mp4v"), ("avi", "MJPG"), ("mkv", "mp4v")]
    silent = []
    for i, background in enumerate(BACKGROUNDS):
        ext, fourcc = containers[i % 3]
        motion = "right" if i < 3 else "down"
        silent.append(write_cv2(d / f"silent{i}.{ext}",
                                clip(2 * FPS, background=background, motion=motion), fourcc))
    return {"silent": silent, "y": [0, 0, 0, 1, 1, 1], "dir": d}


@pytest.fixture(scope="session")
def sound_clips(tmp_path_factory):
    """Six 1-second clips with a sound track (three low tones, three high) in MP4 with AAC
    sound, MKV and AVI with PCM sound, written by PyAV."""
    d = tmp_path_factory.mktemp("sound_clips")
    sounding = []
    for i, background in enumerate(BACKGROUNDS):
        ext, acodec = [("mp4", "aac"), ("mkv", "pcm_s16le"), ("avi", "pcm_s16le")][i % 3]
        frames = clip(FPS, background=background, motion="right" if i < 3 else "down")
        sounding.append(write_av(d / f"sound{i}.{ext}", frames, sound=tone(TONES[i], 1.0),
                                 acodec=acodec))
    return sounding


@pytest.fixture(scope="session")
def codec_clips(clips):
    """The same scene as H.264 in MP4, VP9 in WebM, and at a variable frame rate, by PyAV."""
    d, frames = clips["dir"], clip(2 * FPS, background=(30, 160, 60))
    return {
        "h264_mp4": write_av(d / "same_h264.mp4", frames, vcodec="libx264"),
        "vp9_webm": write_av(d / "same_vp9.webm", frames, vcodec="libvpx-vp9"),
        "vfr_mkv": write_av(d / "vfr.mkv", frames,
                            times_ms=np.cumsum([0] + [40, 90] * 15)[:30].tolist()),
    }


@pytest.fixture(scope="session")
def odd_clips(clips):
    """Valid but unusual files, and every kind of bad one."""
    import cv2

    d = clips["dir"]
    frames = clip(2 * FPS, background=(30, 160, 60))
    files = {
        "mp4v_mp4": write_cv2(d / "same.mp4", frames, "mp4v"),
        "mjpg_avi": write_cv2(d / "same.avi", frames, "MJPG"),
        "mjpg_mkv": write_cv2(d / "same.mkv", frames, "MJPG"),
        "mute_mp4": write_cv2(d / "mute.mp4", frames),
        "red_then_blue": write_cv2(d / "red_then_blue.avi", [np.full((SIZE, SIZE, 3), c, np.uint8)
                                   for c in [(220, 20, 20)] * 30 + [(20, 20, 220)] * 30], "MJPG"),
        "long": write_cv2(d / "long.mp4", (scene(t % 60) for t in range(10 * 60 * FPS))),
    }
    data = (d / "same.avi").read_bytes()
    (d / "avi_named.mp4").write_bytes(data)  # the container is not what the name says
    files["avi_named_mp4"] = str(d / "avi_named.mp4")
    files["missing"] = str(d / "does_not_exist.mp4")
    (d / "zero.mp4").write_bytes(b"")
    files["zero_bytes"] = str(d / "zero.mp4")
    whole = (d / "same.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    files["truncated_mp4"] = str(d / "truncated.mp4")
    cv2.imwrite(str(d / "still.png"), frames[0])
    (d / "still.mp4").write_bytes((d / "still.png").read_bytes())
    files["still_image"] = str(d / "still.mp4")
    (d / "notes.mp4").write_text("a text file named like a video")
    files["not_a_video"] = str(d / "notes.mp4")
    import soundfile as sf

    sf.write(str(d / "speech.wav"), tone(440, 1.0), SR)
    (d / "sound_only.mp4").write_bytes((d / "speech.wav").read_bytes())
    files["sound_only"] = str(d / "sound_only.mp4")
    # every frame of a Motion JPEG AVI zeroed: the container opens, no frame decodes
    broken = bytearray(data)
    for start, end in _avi_frames(data):
        broken[start:end] = bytes(end - start)
    (d / "no_frames.avi").write_bytes(bytes(broken))
    files["no_decodable_frames"] = str(d / "no_frames.avi")
    # a file cut in the middle of its frames, and one with a corrupt frame in the middle
    (d / "cut.avi").write_bytes(data[: len(data) // 2])
    files["cut_avi"] = str(d / "cut.avi")
    corrupt = bytearray(data)
    start, end = _avi_frames(data)[16]  # one of the 8 frames VideoFrames(n_frames=8) samples
    corrupt[start:end] = bytes(end - start)
    (d / "corrupt_frame.avi").write_bytes(bytes(corrupt))
    files["corrupt_frame"] = str(d / "corrupt_frame.avi")
    return files


def _avi_frames(data: bytes) -> list:
    """(start, end) of the data of each video chunk ('00dc') of an AVI file."""
    import struct

    spans = []
    for m in re.finditer(b"00dc", data):
        size = struct.unpack("<I", data[m.end() : m.end() + 4])[0]
        if 0 < size < len(data):
            spans.append((m.end() + 4, m.end() + 4 + size))
    return spans


BAD = ["missing", "zero_bytes", "truncated_mp4", "still_image", "not_a_video",
       "no_decodable_frames"]
CAUSES = {
    "missing": "file not found",
    "zero_bytes": r"empty file \(0 bytes\)",
    "truncated_mp4": r"truncated MP4/MOV file \(its 'mdat' box runs past the end of the file\)",
    "still_image": r"a still image \(PNG\), not a video",
    "not_a_video": r"not a readable video \(",  # FFmpeg's words through PyAV, or ours without it
    "no_decodable_frames": r"no decodable frames \(of the 30 its header lists",
    "sound_only": r"no video stream \(it holds only audio\)",
}


# ---------------------------------------------------------------------- the shared contract


CASES = {
    "frames": (lambda: VideoFrames(ColorHistogram(bins=(4, 4, 2)), n_frames=4), "silent",
               ("extractor__bins", (2, 2, 2))),
    "motion": (lambda: MotionStats(n_pairs=6, orientation_bins=4), "silent",
               ("orientation_bins", 8)),
    "sound": (lambda: VideoAudio(MFCCStats(n_mfcc=13)), "sound_clips", ("extractor__n_mfcc", 8)),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, clips, tmp_path_factory):
    """What tests/test_contract.py expects: a fitted extractor, items, labels, clean output."""
    make, kind, changer = CASES[request.param]
    ext = make().set_params(cache=str(tmp_path_factory.mktemp(f"cache-{request.param}")))
    items = clips[kind] if kind in clips else request.getfixturevalue(kind)
    out = ext.fit(items).transform(items)
    return request.param, ext, "video", items, clips["y"], out, changer


def test_clone_params_and_fingerprint(case):
    """As the shared check, comparing nested extractors by their parameters (a clone holds a
    new instance, which is never ``==`` the original)."""
    _, ext, _, items, _, _, (key, value) = case
    twin = clone(ext)
    assert not hasattr(twin, "n_features_out_")

    def flat(e):
        return {k: (v.get_params() if hasattr(v, "get_params") else v)
                for k, v in e.get_params().items()}

    assert flat(twin) == flat(ext)
    assert clone(ext).set_params(**{key: value}).fingerprint() != ext.fingerprint()
    runtime_only = clone(ext).set_params(batch_size=3, verbose=True).fit(items)
    assert runtime_only.fingerprint() == ext.fingerprint()
    if "extractor" in ext.get_params(deep=False):  # the inner extractor's runtime parameters too
        batched = clone(ext).set_params(extractor__batch_size=2).fit(items)
        assert batched.fingerprint() == ext.fingerprint()


@pytest.mark.parametrize("name", list(CASES))
def test_every_parameter_has_a_sklearn_constraint(name):
    ext = CASES[name][0]()
    missing = set(ext.get_params(deep=False)) - set(ext._parameter_constraints)
    assert not missing, f"{type(ext).__name__} parameters without a constraint: {sorted(missing)}"


def test_bad_rows_raise_naming_the_row_and_cause(case, odd_clips):
    name, ext, _, items, _, _, _ = case
    for bad in BAD + [None, float("nan")]:
        item = odd_clips[bad] if isinstance(bad, str) else bad
        with pytest.raises(ExtractionError, match=r"row 2 \(") as info:
            ext.transform([items[0], items[1], item, items[2]])
        assert info.value.row == 2
        if isinstance(item, str):
            assert item in str(info.value)
            cause = CAUSES[bad]
            if name == "sound" and bad == "no_decodable_frames":
                cause = "no sound track"
            assert re.search(cause, info.value.cause), info.value.cause


def test_bad_rows_become_nan_in_place_under_nan_policy(case, odd_clips):
    _, ext, _, items, _, out, _ = case
    bad = [odd_clips[b] for b in BAD] + [None, float("nan")]
    mixed = [x for pair in zip(items, bad) for x in pair] + bad[len(items):]  # good, bad, good ...
    where = [i for i in range(len(mixed)) if i % 2 or i >= 2 * len(items)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = clone(ext).set_params(on_error="nan").fit(items).transform(mixed)
    assert np.isnan(result[where]).all()
    np.testing.assert_allclose(np.delete(result, where, axis=0), out, rtol=1e-5, atol=1e-6)
    counted = [w for w in caught if issubclass(w.category, ExtractionWarning)]
    assert len(counted) == 1
    assert (f"{len(BAD)} of {len(mixed)} rows failed and were given NaN features "
            "(2 more were missing values)" in str(counted[0].message))


# ------------------------------------------------------------------ containers, codecs, odd files


def test_same_content_in_every_container_and_codec_gives_the_same_frames(odd_clips, codec_clips,
                                                                         clips):
    frames = VideoFrames(ColorHistogram(bins=(8, 4, 4)), n_frames=4, cache=False)
    kinds = ["mp4v_mp4", "mjpg_avi", "mjpg_mkv", "h264_mp4", "vp9_webm", "vfr_mkv", "avi_named_mp4"]
    files = {**odd_clips, **codec_clips}
    out = frames.fit([]).transform([files[k] for k in kinds] + clips["silent"][:1])
    same, other = out[: len(kinds)], out[-1]
    spread = np.abs(same - same[1]).sum(axis=1).max()   # lossy codecs: close, not equal
    assert spread < 0.25, spread
    assert np.abs(other - same[1]).sum() > 4 * spread   # a different scene is far
    np.testing.assert_array_equal(out[kinds.index("avi_named_mp4")], out[kinds.index("mjpg_avi")])


def test_corrupt_or_cut_files_give_features_from_the_frames_that_decode(odd_clips):
    frames = VideoFrames(ColorHistogram(bins=(4, 4, 2)), n_frames=8, cache=False).fit([])
    whole = frames.transform([odd_clips["mjpg_avi"]])
    for name, got in (("cut_avi", "3 of 8 frames decoded"),
                      ("corrupt_frame", "7 of 8 frames decoded")):
        with pytest.warns(PartialDecodeWarning, match=re.escape(got)):
            part = frames.transform([odd_clips[name]])
        assert np.isfinite(part).all()
        assert np.abs(part - whole).sum() < 0.5  # the same scene, from fewer frames
    motion = MotionStats(n_pairs=8, cache=False).fit([])
    with pytest.warns(PartialDecodeWarning, match=r"\d of 8 frame pairs decoded"):
        assert np.isfinite(motion.transform([odd_clips["cut_avi"]])).all()


def test_a_file_with_only_sound_is_not_a_video_but_has_a_sound_track(odd_clips):
    pytest.importorskip("av")
    with pytest.raises(ExtractionError, match=CAUSES["sound_only"]):
        MotionStats(cache=False).fit([]).transform([odd_clips["sound_only"]])
    sound = VideoAudio(MFCCStats(n_mfcc=13), cache=False).fit([])
    sound = sound.transform([odd_clips["sound_only"]])
    assert np.isfinite(sound).all()


def test_bytes_and_arrays_are_refused_with_a_video_message(clips):
    frames = VideoFrames(ColorHistogram(), cache=False).fit([])
    data = open(clips["silent"][0], "rb").read()
    with pytest.raises(ExtractionError, match="video bytes are not read: write them to a file"):
        frames.transform([data])
    with pytest.raises(ExtractionError, match=r"an array of shape \(4, 8, 8, 3\) is not a video"):
        frames.transform(pd.Series([np.zeros((4, 8, 8, 3), np.uint8)]))


# ---------------------------------------------------------------------- frames: sampling and bounds


def test_bounds_and_sampling_choose_the_frames(odd_clips):
    """The clip is red for 2 s, then blue for 2 s."""
    path = odd_clips["red_then_blue"]
    hist = ColorHistogram(bins=(4, 1, 1))
    red_only = VideoFrames(hist, n_frames=1, sampling=10.0, cache=False).fit([]).transform([path])
    assert red_only[0, 0] > 0.99  # hue bin 0 (red), the only frame sampled is the first
    for bound in ({"max_duration": 2.0}, {"max_frames": 30}):
        bounded = VideoFrames(hist, n_frames=8, cache=False, **bound).fit([]).transform([path])
        np.testing.assert_allclose(bounded[:, ::2], red_only[:, ::2], atol=1e-6)  # means
        assert (bounded[:, 1::2] < 1e-6).all()  # std over time: every frame the same red
    whole = VideoFrames(hist, n_frames=8, cache=False).fit([]).transform([path])
    names = list(VideoFrames(hist).fit([]).get_feature_names_out())
    assert names[:2] == ["frames_hsv_h0_s0_v0_mean", "frames_hsv_h0_s0_v0_std"]
    # half red, half blue
    assert abs(whole[0, names.index("frames_hsv_h0_s0_v0_mean")] - 0.5) < 0.01
    every_second = VideoFrames(hist, n_frames=8, sampling=1.0, stats=("mean",), cache=False).fit([])
    assert abs(every_second.transform([path])[0, 0] - 0.5) < 0.01  # frames at 0, 1, 2, 3 s


def test_a_long_file_is_sought_never_decoded_whole(odd_clips, monkeypatch):
    """A 10-minute clip: both extractors decode a small share of its frames (counted, not timed)."""
    from mmfeat.video._decode import VideoReader

    path = odd_clips["long"]  # 10 minutes
    decoded = []
    original = VideoReader._decoded

    def counting(self):
        for item in original(self):
            decoded.append(item[0])
            yield item

    monkeypatch.setattr(VideoReader, "_decoded", counting)
    frames = VideoFrames(ColorHistogram(), n_frames=8, cache=False).fit([])
    motion = MotionStats(n_pairs=8, cache=False).fit([])
    for ext in (frames, motion):
        decoded.clear()
        assert np.isfinite(ext.transform([path])).all()
        assert 0 < len(decoded) < 10 * 60 * FPS / 4, (type(ext).__name__, len(decoded))


def _read_eight_counting(path):
    """Read 8 uniformly sampled frames of ``path``: ``(reader, indices, frames, the index of
    every frame the reader decoded on the way)``."""
    from mmfeat.video._decode import VideoReader, sample_indices

    decoded = []

    class Counting(VideoReader):
        def _decoded(self):
            for item in super()._decoded():
                decoded.append(item[0])
                yield item

    with Counting(path) as video:
        wanted = sample_indices(video.n_frames, video.fps, 8, "uniform")
        frames = video.read(wanted)
    return video, wanted, frames, decoded


def test_sparse_frames_are_sought_from_the_keyframe_before_and_exact(tmp_path):
    """8 frames of 250 (OpenCV's MPEG-4 writes a keyframe every 12 frames): each frame is the
    one a full decode gives at its index, decoded forward from the keyframe before it."""
    import av

    rng = np.random.default_rng(0)
    path = write_cv2(tmp_path / "gop.mp4", [np.clip(scene(t) + rng.integers(0, 40, (SIZE, SIZE, 3)),
                                                    0, 255).astype(np.uint8) for t in range(250)])
    with av.open(path) as container:
        every = [(f.to_ndarray(format="rgb24"), f.key_frame) for f in container.decode(video=0)]
    keys = [i for i, (_, key) in enumerate(every) if key]
    _, wanted, frames, decoded = _read_eight_counting(path)
    assert sorted(frames) == wanted == [15, 46, 78, 109, 140, 171, 203, 234]
    for index in wanted:
        np.testing.assert_array_equal(frames[index], every[index][0])
    # each decoded from the keyframe before it (the first one too), not all 250
    before = [max(k for k in keys if k <= index) for index in wanted]
    assert sorted(decoded) == sorted(i for k, index in zip(before, wanted)
                                     for i in range(k, index + 1))
    assert len(decoded) < 100


def test_a_seek_landing_behind_teaches_the_keyframe_spacing(tmp_path):
    """One keyframe in 250 frames: the second seek lands back on frame 0, shows the keyframes
    are further apart than that, and the later gaps are decoded through, not sought again
    (250 frames decoded in all, about once each, not from frame 0 for every index)."""
    import av

    path = str(tmp_path / "one_key.mp4")
    base = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = 250
        for t in range(250):
            image = av.VideoFrame.from_ndarray(np.roll(base, t, axis=1), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())
    with av.open(path) as container:
        every = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    video, wanted, frames, decoded = _read_eight_counting(path)
    for index in wanted:
        np.testing.assert_array_equal(frames[index], every[index])
    assert video._key_gap == wanted[1] + 1 and len(decoded) == wanted[0] + 1 + wanted[-1] + 1


def test_stateful_image_extractor_learns_from_sampled_frames(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    texture = cv2.resize(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), (160, 160),
                         interpolation=cv2.INTER_NEAREST)  # corners for ORB to find
    paths = [write_cv2(tmp_path / f"textured{i}.avi",
                       [np.roll(texture, 3 * t + i, axis=1) for t in range(10)],
                       "MJPG") for i in range(2)]
    frames = VideoFrames(ORBBagOfWords(n_words=4, random_state=0), n_frames=3, cache=False)
    out = frames.fit(paths).transform(paths)
    assert frames.extractor_.codebook_.shape[0] == 4 and out.shape == (2, 8)
    assert frames.extractor is not frames.extractor_ and not hasattr(frames.extractor, "codebook_")


def test_parallel_decoding_gives_the_same_features(clips):
    frames = VideoFrames(ColorHistogram(bins=(4, 4, 2)), n_frames=4, batch_size=2,
                         cache=False).fit([])
    np.testing.assert_array_equal(frames.set_params(n_jobs=2).transform(clips["silent"]),
                                  frames.set_params(n_jobs=None).transform(clips["silent"]))


# ---------------------------------------------------------------------- frames through a CNN


SEEN_BATCHES: list = []


def _counting_net():
    import torch

    class CountingNet(torch.nn.Module):
        """A small real convolutional network that records the batch sizes it is given."""

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 4, 3)

        def forward(self, x):
            SEEN_BATCHES.append(x.shape[0])
            return self.conv(x).mean((2, 3))

    return CountingNet()


def _to_tensor(image):
    import torch

    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def test_frames_of_many_videos_go_through_the_model_together(clips):
    import cv2

    inner = CNNEmbedder(_counting_net(), preprocess=_to_tensor, batch_size=32)
    frames = VideoFrames(inner, n_frames=2, stats=("mean",), cache=False).fit([])
    SEEN_BATCHES.clear()
    out = frames.transform(clips["silent"])
    assert SEEN_BATCHES == [12]  # 6 videos x 2 frames in one forward pass
    # the same as the model on those frames (the middle of each half of the clip), averaged
    decoded = []
    for path in clips["silent"]:
        capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        video = [cv2.cvtColor(capture.read()[1], cv2.COLOR_BGR2RGB) for _ in range(2 * FPS)]
        decoded += [video[7], video[22]]
    per_frame = clone(inner).set_params(cache=False).fit(decoded).transform(decoded)
    np.testing.assert_allclose(out, per_frame.reshape(6, 2, -1).mean(axis=1), rtol=1e-4, atol=1e-6)


def test_efficientnet_frames_named_tunable_and_keyed(clips, tmp_path):
    store = FeatureCache(tmp_path / "store")
    frames = VideoFrames(CNNEmbedder(image_size=64), n_frames=2, cache=store)
    out = frames.fit(clips["silent"][:3]).transform(clips["silent"][:3])
    assert out.shape == (3, 2560) and frames.uses_model
    assert frames.get_feature_names_out()[84] == "frames_cnn_0042_mean"
    assert store.stats()["entries"] == 3  # one vector per video, not per frame
    assert (store.entries_by_extractor()[0][0]
            == "VideoFrames(n_frames=2, extractor=CNNEmbedder(image_size=64))")
    bigger = clone(frames).set_params(extractor__image_size=96).fit([])
    assert bigger.extractor.image_size == 96 and bigger.fingerprint() != frames.fingerprint()
    assert not np.allclose(bigger.transform(clips["silent"][:1]), out[:1])
    assert store.stats()["entries"] == 4


# ---------------------------------------------------------------------- motion


def test_motion_says_which_way_and_how_fast_things_move(clips, odd_clips, tmp_path):
    names = list(MotionStats().fit([]).get_feature_names_out())
    col = {n: i for i, n in enumerate(names)}
    still = write_cv2(tmp_path / "still.avi", clip(30, motion="still"), "MJPG")
    # the same motion at two resolutions, both above the working size of 96 pixels
    small, big = (write_cv2(tmp_path / f"{n}.avi", clip(30, size=n), "MJPG") for n in (128, 256))
    for method in ("farneback", "dis"):
        motion = MotionStats(method=method, cache=False).fit([])
        right, down, nothing, lower, higher = motion.transform([clips["silent"][1],
                                                                clips["silent"][4], still,
                                                                small, big])
        assert right[col["motion_dx_mean"]] > 0.05 and abs(right[col["motion_dy_mean"]]) < 0.02
        assert down[col["motion_dy_mean"]] > 0.05 and abs(down[col["motion_dx_mean"]]) < 0.02
        assert right[col["motion_orient_000_mean"]] > 0.6
        assert down[col["motion_orient_090_mean"]] > 0.6
        assert nothing[col["motion_moving_max"]] < 0.01 and nothing[col["motion_speed_mean"]] < 0.01
        # speeds in frame sides per second: the same on a clip of twice the resolution
        assert abs(higher[col["motion_speed_mean"]] / lower[col["motion_speed_mean"]] - 1) < 0.15
        assert abs(higher[col["motion_dx_mean"]] / lower[col["motion_dx_mean"]] - 1) < 0.15


def test_motion_needs_two_frames(tmp_path):
    one = write_cv2(tmp_path / "one.avi", clip(1), "MJPG")
    with pytest.raises(ExtractionError, match="1 frame: motion needs two frames 1 apart"):
        MotionStats(cache=False).fit([]).transform([one])


# ---------------------------------------------------------------------- sound track


def test_sound_track_is_the_audio_extractor_on_the_decoded_wave(sound_clips):
    mfcc = MFCCStats(n_mfcc=13, cache=False)
    sound = VideoAudio(mfcc, cache=False).fit([])
    out = sound.transform(sound_clips)
    direct = clone(mfcc).fit([]).transform([(tone(f, 1.0), SR) for f in TONES])
    pcm = [1, 2, 4, 5]  # lossless sound tracks: the same numbers, to 16-bit rounding
    np.testing.assert_allclose(out[pcm], direct[pcm], rtol=1e-2, atol=0.05)
    for aac in (0, 3):  # lossy: nearer its own tone than the other class's
        assert np.abs(out[aac] - direct[aac]).sum() < np.abs(out[aac] - direct[3 - aac]).sum() / 4
    assert sound.get_feature_names_out()[0] == "sound_mfcc_00_mean"


def test_sound_track_at_another_rate_and_bounded(sound_clips):
    sound = VideoAudio(MFCCStats(n_mfcc=13, sr=8000), max_duration=0.5, cache=False).fit([])
    out = sound.transform(sound_clips[:2])
    direct = MFCCStats(n_mfcc=13, sr=8000, cache=False).fit([])
    direct = direct.transform([(tone(300, 0.5), SR), (tone(330, 0.5), SR)])
    assert out.shape == (2, 52) and np.isfinite(out).all()
    for i in (0, 1):  # resampled by FFmpeg, not librosa: near, not equal, to the clip's own tone
        assert np.abs(out[i] - direct[i]).sum() < np.abs(out[i] - direct[1 - i]).sum()
    assert np.abs(out[1] - direct[1]).sum() / np.abs(direct[1]).sum() < 0.05


def test_no_sound_track_is_a_missing_value_for_fusion(sound_clips, odd_clips):
    from mmfeat.fusion import make_early_fusion

    mute = odd_clips["mute_mp4"]
    with pytest.raises(ExtractionError, match=r"row 1 \(.*mute\.mp4'?\): no sound track"):
        VideoAudio(cache=False).fit([]).transform([sound_clips[0], mute])
    frame = pd.DataFrame({"video": sound_clips + [mute]})
    union = make_early_fusion(sound=("video", VideoAudio(MFCCStats(n_mfcc=13))),
                              frames=("video",
                                      VideoFrames(ColorHistogram(bins=(4, 2, 2)), n_frames=2)),
                              handle_missing=True).set_output(transform="pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtractionWarning)
        out = union.fit_transform(frame)
    assert out["sound__sound_missing"].tolist() == [0] * 6 + [1]
    assert np.isfinite(out.to_numpy()).all()


# ---------------------------------------------------------------------- parameters, import cost


BAD_PARAMS = [
    (VideoFrames, {"n_frames": 0},
     r"'n_frames' parameter of VideoFrames must be an int in the range \[1, inf\)"),
    (VideoFrames, {"sampling": "keyframes"},
     r"'sampling' parameter of VideoFrames must be a str among \{'uniform'\} or a float in the "
     r"range \(0.0, inf\)"),
    (VideoFrames, {"stats": ("mean", "avg")},
     r"'stats' parameter of VideoFrames must be a non-empty sequence"),
    (VideoFrames, {"extractor": MFCCStats()},
     r"'extractor' parameter of VideoFrames must be an mmfeat image extractor"),
    (VideoFrames, {"extractor": "cnn"},
     r"'extractor' parameter of VideoFrames must be an object implementing"),
    (VideoFrames, {"max_duration": -1.0},
     r"'max_duration' parameter of VideoFrames must be a float in the range \(0.0, inf\) or None"),
    (VideoFrames, {"max_frames": 0},
     r"'max_frames' parameter of VideoFrames must be an int in the range \[1, inf\) or None"),
    (VideoFrames, {"extractor": ColorHistogram(bins=(0, 2, 2))},
     r"'bins' parameter of ColorHistogram must be a tuple of 3 ints"),
    (MotionStats, {"speed_edges": (0.5, 0.1)},
     r"'speed_edges' parameter of MotionStats must be a non-empty tuple of increasing"),
    (MotionStats, {"method": "lucas-kanade"},
     r"'method' parameter of MotionStats must be a str among"),
    (MotionStats, {"size": 8},
     r"'size' parameter of MotionStats must be an int in the range \[16, inf\)"),
    (MotionStats, {"orientation_bins": 0},
     r"'orientation_bins' parameter of MotionStats must be an int in the range \[1, 360\]"),
    (VideoAudio, {"extractor": ColorHistogram()},
     r"'extractor' parameter of VideoAudio must be an mmfeat audio extractor"),
    (VideoAudio, {"extractor": MFCCStats(n_fft=100_000)},
     r"'n_fft' parameter of MFCCStats must be at most sr=16000"),
    (VideoAudio, {"max_duration": 0},
     r"'max_duration' parameter of VideoAudio must be a float in the range \(0.0, inf\) or None"),
]


@pytest.mark.parametrize("cls, params, match", BAD_PARAMS,
                         ids=lambda v: str(v)[:24] if isinstance(v, dict) else None)
def test_bad_parameters_are_refused_in_fit(cls, params, match, clips):
    if cls is VideoAudio:
        pytest.importorskip("av")
    ext = cls(cache=False, **params)
    with pytest.raises(ValueError, match=match):
        ext.fit(clips["silent"][:1])
    assert not hasattr(ext, "n_features_out_")


def test_grid_search_tunes_the_inner_extractor(clips):
    pipe = make_pipeline(VideoFrames(ColorHistogram(), n_frames=2), LogisticRegression())
    search = GridSearchCV(pipe, {"videoframes__extractor__bins": [(2, 2, 2), (4, 2, 2)]}, cv=2)
    search.fit(pd.Series(clips["silent"]), clips["y"])
    assert search.best_estimator_[0].extractor_.bins in [(2, 2, 2), (4, 2, 2)]
    assert search.score(pd.Series(clips["silent"]), clips["y"]) == 1.0




def test_batch_scoring_of_a_video_manifest_keeps_every_row_in_place(clips, odd_clips, tmp_path):
    import mmfeat
    from mmfeat.fusion import make_early_fusion
    from mmfeat.scoring import score

    train = pd.DataFrame({"video": clips["silent"], "label": clips["y"]})
    frames = VideoFrames(ColorHistogram(bins=(4, 2, 2)), n_frames=2)
    model = make_early_fusion(frames=("video", frames), motion=("video", MotionStats(n_pairs=4)),
                              estimator=LogisticRegression())
    mmfeat.save_model(model.fit(train, train.label), tmp_path / "model.joblib")
    videos = [clips["silent"][0], odd_clips["truncated_mp4"], odd_clips["still_image"],
              clips["silent"][4]]
    manifest = pd.DataFrame({"id": [10, 11, 12, 13], "video": videos})
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    score(tmp_path / "model.joblib", tmp_path / "manifest.csv", tmp_path / "scores", progress=False)
    out = pd.read_parquet(tmp_path / "scores").sort_values("id")
    assert out["id"].tolist() == [10, 11, 12, 13]
    assert out["prediction"].tolist()[::3] == [0, 1] and out["prediction"].iloc[1:3].isna().all()
    assert "truncated MP4/MOV file" in out["error"].iloc[1]
    assert "a still image (PNG)" in out["error"].iloc[2]


def test_a_stream_without_an_index_is_counted_and_read_without_seeking(tmp_path):
    """A raw H.264 stream has no frame count and cannot seek: frames i = 0..44 get brighter."""
    frames = [np.full((SIZE, SIZE, 3), (5 * i, 0, 0), np.uint8) for i in range(45)]
    path = write_av(tmp_path / "raw.h264", frames, vcodec="libx264")
    brightness = ColorHistogram(bins=(1, 1, 4))  # value bands of 64 levels
    whole = VideoFrames(brightness, n_frames=3, stats=("mean",),
                        cache=False).fit([]).transform([path])
    # frames 7, 22, 37: one per band
    np.testing.assert_allclose(whole[0, :3], [1 / 3] * 3, atol=1e-6)
    start = VideoFrames(brightness, n_frames=3, stats=("mean",), max_frames=10, cache=False).fit([])
    # frames 1, 5, 8
    np.testing.assert_allclose(start.transform([path])[0], [1, 0, 0, 0], atol=1e-6)


def test_keyframes_only_gives_the_keyframe_before_each_sampled_frame(tmp_path):
    """seek="keyframes": the keyframe at or before each sampled index, as a full decode gives
    it, each once, with only keyframes decoded; a key of its own in the cache."""
    import av

    from mmfeat.video._decode import VideoReader, sample_indices

    rng = np.random.default_rng(1)
    path = write_cv2(tmp_path / "gop.mp4", [np.clip(scene(t) + rng.integers(0, 40, (SIZE, SIZE, 3)),
                                                    0, 255).astype(np.uint8) for t in range(100)])
    with av.open(path) as container:
        every = [(f.key_frame, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    keys = [i for i, (key, _) in enumerate(every) if key]
    assert keys[:3] == [0, 12, 24]  # OpenCV's MPEG-4: a keyframe every 12 frames
    with VideoReader(path) as video:
        wanted = sample_indices(video.n_frames, video.fps, 16, "uniform")
        frames = video.read_keyframes(wanted)
    expected = sorted({max(k for k in keys if k <= i) for i in wanted})
    assert sorted(frames) == expected and len(expected) < len(wanted)
    for index in expected:
        np.testing.assert_array_equal(frames[index], every[index][1])

    hist = ColorHistogram(bins=(4, 2, 2))
    exact = VideoFrames(hist, n_frames=4, cache=False).fit([])
    approx = VideoFrames(hist, n_frames=4, seek="keyframes", cache=False).fit([])
    assert exact.fingerprint() != approx.fingerprint()
    assert approx.transform([path]).shape == exact.transform([path]).shape
    with pytest.raises(ValueError, match="'seek' parameter"):
        VideoFrames(hist, seek="nearest").fit([])
