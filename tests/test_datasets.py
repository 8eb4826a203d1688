import json
import os

import cv2
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from mmfeat.datasets import load_manifest, make_multimodal

N = 60


def _files(df):
    return [p for col in ("image", "audio") for p in df[col] if p is not None]


def _mtimes(df):
    return {p: os.stat(p).st_mtime_ns for p in _files(df)}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return root, make_multimodal(N, data_dir=root)


def test_columns_dtypes_and_labels(demo):
    root, df = demo
    assert list(df.columns) == ["id", "image", "text", "audio", "label"]
    assert df["id"].dtype == np.int64 and df["id"].tolist() == list(range(N))
    for col in ("image", "text", "audio", "label"):
        assert df[col].map(type).eq(str).all(), col
    assert set(df["label"]) == {"fire", "forest", "ocean", "desert"}
    counts = df["label"].value_counts()
    assert counts.max() - counts.min() <= 1
    assert df["text"].str.len().between(10, 200).all()
    assert df["text"].nunique() > N // 2  # not a handful of repeated sentences


def test_files_exist_and_decode(demo):
    root, df = demo
    for p in df["image"]:
        assert os.path.isabs(p) and p.endswith(".png")
        img = cv2.imread(p)
        assert img is not None and img.shape == (128, 128, 3)
    for p in df["audio"]:
        wave, sr = sf.read(p)
        assert sr == 16_000 and wave.ndim == 1 and len(wave) == 16_000
        assert 0 < np.abs(wave).max() <= 1
    assert (root / "manifest.csv").is_file() and (root / "manifest.json").is_file()


def test_manifest_csv_round_trip(demo):
    root, df = demo
    on_disk = pd.read_csv(root / "manifest.csv")
    assert on_disk["image"].iloc[0] == "images/00000.png"  # relative: the folder can move
    pd.testing.assert_frame_equal(load_manifest(root), df)


def test_same_seed_same_data(demo, tmp_path):
    root, df = demo
    other = make_multimodal(N, data_dir=tmp_path)
    for col in ("image", "audio"):
        assert [os.path.relpath(p, root) for p in df[col]] == [
            os.path.relpath(p, tmp_path) for p in other[col]]
    pd.testing.assert_frame_equal(df[["id", "text", "label"]], other[["id", "text", "label"]])
    for a, b in zip(_files(df), _files(other)):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read(), a


def test_different_seed_different_data(demo, tmp_path):
    root, df = demo
    other = make_multimodal(N, data_dir=tmp_path, random_state=1)
    assert df["text"].tolist() != other["text"].tolist()
    assert df["label"].tolist() != other["label"].tolist()
    with open(df["image"][0], "rb") as fa, open(other["image"][0], "rb") as fb:
        assert fa.read() != fb.read()


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_missing_rate(demo, tmp_path, rate):
    root, full = demo
    df = make_multimodal(N, data_dir=tmp_path, missing_rate=rate)
    n_missing = df[["image", "text", "audio"]].isna().sum(axis=1)
    assert n_missing.max() == 1
    assert (n_missing == 1).sum() == round(rate * N)
    # Missing cells are None, no file is written for them, and the rest is unchanged.
    for col in ("image", "text", "audio"):
        gone = df[col].isna()
        assert df.loc[gone, col].map(lambda v: v is None).all()
        if col != "text":
            assert not any((tmp_path / os.path.relpath(p, root)).exists()
                           for p in full.loc[gone, col])
    kept = df["text"].notna()
    assert df.loc[kept, "text"].tolist() == full.loc[kept, "text"].tolist()
    assert df["label"].tolist() == full["label"].tolist()


def _age(paths):
    # Back-date the files: a rewrite then shows even on a coarse file-system clock.
    for p in paths:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))


def test_reuse_and_rewrite(tmp_path):
    df = make_multimodal(N, data_dir=tmp_path, missing_rate=0.1)
    _age(_files(df))
    before = _mtimes(df)
    again = make_multimodal(N, data_dir=tmp_path, missing_rate=0.1)
    pd.testing.assert_frame_equal(again, df)
    assert _mtimes(again) == before  # reused, not rewritten

    forced = make_multimodal(N, data_dir=tmp_path, missing_rate=0.1, overwrite=True)
    assert all(t > 1_000_000_000 for t in _mtimes(forced).values())
    _age(_files(forced))
    other_rate = make_multimodal(N, data_dir=tmp_path, missing_rate=0.2)
    assert all(t > 1_000_000_000 for t in _mtimes(other_rate).values())

    changed = make_multimodal(N // 2, data_dir=tmp_path, random_state=3)
    assert len(changed) == N // 2
    assert json.loads((tmp_path / "manifest.json").read_text())["random_state"] == 3
    # Files of the larger, earlier dataset are removed.
    assert len(list((tmp_path / "images").iterdir())) == N // 2
    assert len(list((tmp_path / "audio").iterdir())) == N // 2


def test_rewrite_when_a_file_is_gone(tmp_path):
    df = make_multimodal(N, data_dir=tmp_path)
    os.remove(df["audio"][5])
    again = make_multimodal(N, data_dir=tmp_path)
    assert os.path.isfile(again["audio"][5])


@pytest.mark.parametrize("kwargs, message", [
    ({"n_classes": 1}, "n_classes must be between 2"),
    ({"n_classes": 9}, "n_classes must be between 2"),
    ({"missing_rate": 1.5}, "missing_rate must be between 0 and 1"),
    ({"n_samples": 0}, "n_samples must be at least 1")])
def test_bad_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_multimodal(**{"n_samples": N, **kwargs}, data_dir=tmp_path)


def test_groups_change_only_the_audio(demo, tmp_path):
    root, df = demo
    grouped = make_multimodal(N, n_groups=6, data_dir=tmp_path)
    assert list(grouped.columns) == ["id", "image", "text", "audio", "label", "group"]
    assert sorted(grouped["group"].value_counts()) == [10] * 6
    pd.testing.assert_frame_equal(grouped[["id", "text", "label"]], df[["id", "text", "label"]])
    same = [open(a, "rb").read() == open(b, "rb").read()
            for col in ("image", "audio") for a, b in zip(df[col], grouped[col])]
    assert all(same[:N]) and not all(same[N:])  # images as without groups; audio pitched per group
    pd.testing.assert_frame_equal(load_manifest(tmp_path), grouped)
    with pytest.raises(ValueError,
                       match="n_groups must be None or between 2 and n_samples=60, got 1"):
        make_multimodal(N, n_groups=1, data_dir=tmp_path)


def test_weights_set_the_class_counts(tmp_path):
    df = make_multimodal(110, n_classes=2, weights=[10, 1], data_dir=tmp_path)
    assert df["label"].value_counts().to_dict() == {"fire": 100, "forest": 10}
    assert json.loads((tmp_path / "manifest.json").read_text())["weights"] == [10.0, 1.0]
    with pytest.raises(ValueError, match=r"weights must be 2 non-negative numbers .* got \[1.0\]"):
        make_multimodal(20, n_classes=2, weights=[1], data_dir=tmp_path)


def test_interaction_hides_the_class_from_each_modality_alone():
    from mmfeat.datasets import _plan

    labels, shown, missing, degraded = _plan(np.random.SeedSequence(0), 2000, 3, 0.0,
                                             interaction=True)
    image, audio = np.array(shown["image"]), np.array(shown["audio"])
    assert ((image + audio) % 3 == labels).all() and shown["text"] == [None] * 2000
    # Each cue alone: the class is uniform given the cue (about 1/3 each), so it tells nothing.
    for cue in (image, audio):
        table = pd.crosstab(cue, labels, normalize="index").to_numpy()
        assert np.abs(table - 1 / 3).max() < 0.06


def test_corruption_misleads_only_the_corrupted_cells(demo, tmp_path):
    from mmfeat.datasets import _plan

    root, df = demo
    labels, shown, _, degraded = _plan(np.random.SeedSequence(0).spawn(3)[0], N, 4, 0.0,
                                       corruption=0.25)
    assert len(degraded) == 15 and len({r for r, _ in degraded}) == 15  # one modality per row
    assert all(shown[m][r] not in (None, labels[r]) for r, m in degraded)
    corrupted = make_multimodal(N, corruption=0.25, data_dir=tmp_path)
    pd.testing.assert_series_equal(corrupted["label"], df["label"])
    rows = {r for r, _ in degraded}
    changed = {i for i in range(N) for col in ("image", "audio")
               if open(df[col][i], "rb").read() != open(corrupted[col][i], "rb").read()}
    changed |= {i for i in range(N) if df["text"][i] != corrupted["text"][i]}
    assert changed == rows  # the other rows are byte-identical
    with pytest.raises(ValueError, match="corruption must be between 0 and 1, got -0.1"):
        make_multimodal(N, corruption=-0.1, data_dir=tmp_path)
