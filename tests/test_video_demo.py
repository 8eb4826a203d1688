"""The demo data with video (``make_multimodal(video=True)``): clips that decode, columns that
stay byte-identical to the table without video, video frames + motion + sound track + text fused
early and late, batch scoring of a video manifest, and ``mmfeat demo --video``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

from mmfeat.datasets import demo_extractors, load_manifest, make_multimodal

av = pytest.importorskip("av")

N = 40
VIDEO_MODALITIES = ("video_frames", "video_motion", "video_audio")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The same 40 rows made with and without video, and the time taken per clip."""
    root = tmp_path_factory.mktemp("video_demo")
    start = time.perf_counter()
    plain = make_multimodal(N, data_dir=root / "plain")
    plain_s = time.perf_counter() - start
    start = time.perf_counter()
    with_video = make_multimodal(N, data_dir=root / "video", video=True)
    per_clip = (time.perf_counter() - start - plain_s) / N
    return {"plain": plain, "video": with_video, "root": root, "per_clip_s": per_clip}


def _bytes(paths):
    return [None if p is None else Path(p).read_bytes() for p in paths]


def test_video_adds_a_column_and_leaves_every_other_cell_and_file_unchanged(demo):
    plain, with_video = demo["plain"], demo["video"]
    assert with_video.columns.tolist() == ["id", "image", "text", "audio", "video", "label"]
    assert with_video.drop(columns="video").columns.tolist() == plain.columns.tolist()
    for column in ("id", "text", "label"):
        assert with_video[column].tolist() == plain[column].tolist()
    for column in ("image", "audio"):
        assert _bytes(with_video[column]) == _bytes(plain[column])
    assert all(Path(p).name == f"{i:05d}.mp4" and Path(p).parent.name == "videos"
               for i, p in zip(with_video["id"], with_video["video"]))
    # The option is recorded only when set, so that folders made before it stay valid.
    params = json.loads((demo["root"] / "video" / "manifest.json").read_text())
    assert params["video"] is True
    assert "video" not in json.loads((demo["root"] / "plain" / "manifest.json").read_text())
    pd.testing.assert_frame_equal(load_manifest(demo["root"] / "video"), with_video)


def test_clips_are_short_small_mp4s_with_a_sound_track(demo):
    for path in demo["video"]["video"]:
        with av.open(path) as container:
            video, audio = container.streams.video[0], container.streams.audio[0]
            assert (video.codec_context.width, video.codec_context.height) == (64, 64)
            assert int(video.average_rate) in (10, 12, 15)
            assert 1.0 <= video.frames / video.average_rate <= 2.0
            assert audio.codec_context.name == "aac" and audio.rate == 16_000
    assert demo["per_clip_s"] < 0.5, demo["per_clip_s"]


def test_the_same_seed_gives_byte_identical_clips(demo, tmp_path):
    again = make_multimodal(N, data_dir=tmp_path, video=True)
    assert _bytes(again["video"]) == _bytes(demo["video"]["video"])


def test_video_extractors_give_finite_features_for_every_clip(demo):
    from mmfeat.audio import MFCCStats
    from mmfeat.image import ColorHistogram
    from mmfeat.video import MotionStats, VideoAudio, VideoFrames

    videos = demo["video"]["video"]
    for extractor in (VideoFrames(ColorHistogram(bins=(4, 2, 2)), n_frames=4),
                      MotionStats(n_pairs=4, size=64), VideoAudio(MFCCStats(n_mfcc=13))):
        out = extractor.set_params(cache=False).fit(videos).transform(videos)
        assert out.shape[0] == N and np.isfinite(out).all(), type(extractor).__name__


def test_missing_videos_come_in_rows_of_their_own_and_the_rest_is_unchanged(tmp_path):
    with_video = make_multimodal(N, data_dir=tmp_path / "v", video=True, missing_rate=0.3)
    plain = make_multimodal(N, data_dir=tmp_path / "p", missing_rate=0.3)
    for column in ("image", "text", "audio"):
        assert with_video[column].isna().tolist() == plain[column].isna().tolist()
    assert plain[["image", "text", "audio"]].isna().sum().sum() == 12
    # As many missing videos as each other modality has on average: 0.3 * 40 / 3.
    assert with_video["video"].isna().sum() == 4
    assert len(list((tmp_path / "v" / "videos").iterdir())) == N - 4

    # A complete folder is reused as it is; asked without video, the clips are removed.
    clip = Path(with_video["video"].dropna().iloc[0])
    written = clip.stat().st_mtime_ns
    again = make_multimodal(N, data_dir=tmp_path / "v", video=True, missing_rate=0.3)
    pd.testing.assert_frame_equal(again, with_video)
    assert clip.stat().st_mtime_ns == written
    without = make_multimodal(N, data_dir=tmp_path / "v", missing_rate=0.3)
    assert "video" not in without.columns and not list((tmp_path / "v" / "videos").iterdir())
    assert _bytes(without["image"]) == _bytes(plain["image"])


def _coloured(path) -> bool:
    """Whether the middle frame of a clip shows a saturated (class-coloured) disc."""
    import cv2

    cap = cv2.VideoCapture(path)
    cap.set(cv2.CAP_PROP_POS_FRAMES, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) // 2)
    ok, frame = cap.read()
    cap.release()
    assert ok, path
    return (cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)[..., 1] > 100).sum() > 50


def test_the_video_shows_its_cue_in_most_rows_and_none_with_interaction(demo, tmp_path):
    shown = [_coloured(p) for p in demo["video"]["video"]]
    assert 0.4 <= np.mean(shown) <= 0.8  # the cue's probability is 0.6
    df = make_multimodal(24, data_dir=tmp_path, video=True, interaction=True)
    assert not any(_coloured(p) for p in df["video"])


def _video_and_text():
    extractors = demo_extractors(quick=True, video=True)
    return {name: extractors[name] for name in (*VIDEO_MODALITIES, "text")}


@pytest.fixture(scope="module")
def fitted(demo):
    """Early and late fusion of video frames, motion, sound track and text, fitted on half the
    rows; the other half held out."""
    from mmfeat.fusion import LateFusionClassifier, make_early_fusion

    data = demo["video"]
    train, test = train_test_split(data, test_size=0.5, stratify=data["label"], random_state=0)
    early = make_early_fusion(**_video_and_text(),
                              estimator=LogisticRegression(C=0.1, max_iter=2000))
    late = LateFusionClassifier(_video_and_text(), cv=3, random_state=0)
    return {"early": early.fit(train, train["label"]), "late": late.fit(train, train["label"]),
            "test": test}


def test_demo_extractors_read_three_video_modalities_from_one_column():
    extractors = demo_extractors(quick=True, video=True)
    assert list(extractors) == ["image", "text", "audio", *VIDEO_MODALITIES]
    assert {extractors[m][0] for m in VIDEO_MODALITIES} == {"video"}
    assert list(demo_extractors(quick=True)) == ["image", "text", "audio"]


@pytest.mark.parametrize("how", ["early", "late"])
def test_video_and_text_fused_are_well_above_chance(fitted, how):
    test = fitted["test"]
    accuracy = accuracy_score(test["label"], fitted[how].predict(test))
    # 4 classes: chance is 0.25, and 10 or more right of 20 by chance has p = 0.014.
    assert accuracy >= 0.5, accuracy
    if how == "late":
        report = fitted["late"].modality_report_.set_index("modality")
        assert set(report.index) == {*VIDEO_MODALITIES, "text"}


def test_batch_scoring_of_a_video_manifest_keeps_rows_in_place_and_fails_only_the_corrupt_one(
        fitted, tmp_path):
    import mmfeat
    from mmfeat.scoring import score

    mmfeat.save_model(fitted["early"], tmp_path / "model.joblib")
    rows = fitted["test"].head(6).drop(columns="label").copy()
    good = Path(rows["video"].iloc[2]).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good[: len(good) // 2])  # a copy cut short
    rows.iloc[2, rows.columns.get_loc("video")] = str(cut)
    rows.to_csv(tmp_path / "manifest.csv", index=False)
    score(tmp_path / "model.joblib", tmp_path / "manifest.csv", tmp_path / "scores", progress=False)
    out = pd.read_parquet(tmp_path / "scores")
    assert out["id"].tolist() == rows["id"].tolist()
    assert out["prediction"].isna().tolist() == [False, False, True, False, False, False]
    assert "truncated MP4/MOV file" in out["error"].iloc[2]
    assert out["error"].drop(index=2).isna().all()
    expected = fitted["early"].predict(rows.drop(index=rows.index[2]))
    assert out["prediction"].drop(index=2).tolist() == expected.tolist()


def _without_sound(src, dst):
    """A copy of a clip with its video stream only (remuxed, not re-encoded)."""
    with av.open(src) as source, av.open(str(dst), "w") as copy:
        stream = copy.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                copy.mux(packet)
    return str(dst)


def test_a_video_without_sound_or_missing_is_a_missing_value_for_late_fusion(fitted, tmp_path):
    from mmfeat import ExtractionError, ExtractionWarning
    from mmfeat.video import VideoAudio

    rows = fitted["test"].head(3).copy()
    mute = _without_sound(rows["video"].iloc[0], tmp_path / "mute.mp4")
    with pytest.raises(ExtractionError, match=r"row 0 \(.*\): no sound track"):
        VideoAudio(cache=False).fit([]).transform([mute])
    rows.iloc[0, rows.columns.get_loc("video")] = mute
    rows.iloc[1, rows.columns.get_loc("video")] = None
    # The late fusion's handle_missing (on by default) leaves a modality out of a row that
    # lacks it; the mute video's frames and motion still count.
    with pytest.warns(ExtractionWarning, match="no sound track"):
        proba = fitted["late"].predict_proba(rows)
    assert proba.shape == (3, 4) and np.isfinite(proba).all()
    # The untouched row scores as it does alone (to float32 rounding of a batched product).
    alone = fitted["late"].predict_proba(fitted["test"].iloc[[2]])[0]
    np.testing.assert_allclose(proba[2], alone, rtol=1e-5)


def test_demo_takes_a_video_flag():
    from mmfeat.cli import build_parser
    from mmfeat.demo import demo_modalities

    assert build_parser().parse_args(["demo", "--video"]).video is True
    assert build_parser().parse_args(["demo"]).video is False
    assert list(demo_modalities(quick=True, video=True)) == ["image", "text", "audio",
                                                             *VIDEO_MODALITIES]


@pytest.mark.slow
def test_demo_with_video_runs_end_to_end(tmp_path, seed_graphs):
    seed_graphs(tmp_path / "cache")
    env = {**os.environ, "MMFEAT_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "mmfeat.cli", "demo", "--quick", "--video", "--n-samples", "100",
           "--cv", "2", "--data-dir", str(tmp_path / "data"),
           "--report-dir", str(tmp_path / "report")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "video MP4" in done.stdout
    results = pd.read_csv(tmp_path / "report" / "results.csv").set_index("model")
    assert {f"{m} only" for m in VIDEO_MODALITIES} <= set(results.index)
    assert results.loc["late fusion (stacking)", "accuracy"] > 0.5
    assert len(list((tmp_path / "data" / "videos").glob("*.mp4"))) == 100
