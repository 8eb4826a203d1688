"""What a newcomer meets when the data is not what the estimators need: every refusal names
the thing to change (the target and its rows, the ``cv`` that fits, the block, the folder)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import mmfeat
from mmfeat.audio import MFCCStats
from mmfeat.datasets import make_multimodal
from mmfeat.fusion import LateFusionClassifier, LateFusionRegressor, make_early_fusion
from mmfeat.image import ColorHistogram


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messages")
    return make_multimodal(n_samples=40, random_state=0, data_dir=folder)


def modalities():
    return {"image": ("image", ColorHistogram(bins=(4, 2, 2))),
            "audio": ("audio", MFCCStats(n_mfcc=8))}


FITS = {
    "early fusion": lambda X, y: make_early_fusion(**modalities(),
                                                   estimator=LogisticRegression()).fit(X, y),
    "late fusion": lambda X, y: LateFusionClassifier(modalities(), cv=2).fit(X, y),
    "compare": lambda X, y: mmfeat.compare(X, y, modalities=modalities(), cv=2),
}


@pytest.mark.parametrize("fit", list(FITS))
def test_a_missing_target_is_named_with_its_rows(data, fit):
    y = data["label"].astype(object)
    y.iloc[[3, 7]] = np.nan
    with pytest.raises(ValueError, match=r"^The target 'label' is missing \(NaN or None\) in 2 "
                                         r"of 40 rows \(rows 3, 7\): drop those rows"):
        FITS[fit](data, y)


def test_a_missing_number_in_a_regression_target_is_named_too(data):
    y = np.arange(len(data), dtype=float)
    y[[0, 5, 6, 7, 8, 9]] = np.nan
    with pytest.raises(ValueError, match=r"The target \(y\) is missing .* 6 of 40 rows "
                                         r"\(rows 0, 5, 6, 7, 8, \.\.\.\)"):
        LateFusionRegressor(modalities(), cv=2).fit(data, y)


@pytest.mark.parametrize("fit", ["late fusion", "compare"])
def test_too_few_rows_for_cv_say_which_cv_fits(data, fit):
    small = data.groupby("label").head(3).iloc[:10]  # 3, 3, 3 and 1 rows of the four classes
    model = {"late fusion": lambda: LateFusionClassifier(modalities()).fit(small, small["label"]),
             "compare": lambda: mmfeat.compare(small, target="label", modalities=modalities())}[fit]
    with pytest.raises(ValueError, match=r"^cv=5 stratified folds need a class with at least 5 "
                                         r"rows; the largest has 3 \(n_samples=10\): "
                                         r"pass cv=2 or fewer"):
        model()


def test_a_block_pca_larger_than_the_rows_names_the_block(data):
    small = data.iloc[:10]
    model = make_early_fusion(**modalities(), pca=64, estimator=LogisticRegression())
    with pytest.raises(ValueError, match=r"^The block of column 'image' \(ColorHistogram\): pca=64 "
                                         r"components need .* it has 10 rows and 16 features: pass "
                                         r"pca=10 or fewer"):
        model.fit(small, small["label"])


def test_early_fusion_refuses_a_modality_missing_on_every_row(data):
    """As late fusion does: imputed, such a block is a constant made from nothing."""
    blank = data.assign(image=None)
    with pytest.raises(ValueError, match=r"^The block of column 'image' \(ColorHistogram\) has no "
                                         r"usable row: all 40 items are missing"):
        make_early_fusion(**modalities(), handle_missing=True,
                          estimator=LogisticRegression()).fit(blank, blank["label"])
    with pytest.raises(ValueError, match=r"Modality 'image' has no usable row: all 40 items"):
        LateFusionClassifier(modalities(), cv=2).fit(blank, blank["label"])
    with warnings.catch_warnings():  # a modality missing on some rows is what handle_missing is for
        warnings.simplefilter("ignore")
        some = data.assign(image=data["image"].where(data.index % 2 == 0))
        make_early_fusion(**modalities(), handle_missing=True,
                          estimator=LogisticRegression()).fit(some, some["label"])


def test_a_path_that_is_not_there_says_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    extractor = ColorHistogram(cache=False)
    cases = {"photo.png": f"file not found (looked in {tmp_path})",
             "images/photo.png": f"file not found (no folder {tmp_path / 'images'})",
             str(tmp_path / "photo.png"): "file not found"}
    for path, cause in cases.items():
        with pytest.raises(mmfeat.ExtractionError) as info:
            extractor.fit_transform([path])
        assert info.value.cause == cause


def test_polars_frames_are_read_like_pandas_ones(data):
    pl = pytest.importorskip("polars")
    extractor = ColorHistogram(bins=(4, 2, 2), cache=False)
    expected = extractor.fit_transform(data[["image"]])
    polars_column = pl.from_pandas(data[["image"]])
    np.testing.assert_array_equal(extractor.fit_transform(polars_column), expected)
    assert list(extractor.feature_names_in_) == ["image"]
    with pytest.raises(ValueError, match=r"got a DataFrame with 2 columns \['image', 'text'\]"):
        extractor.fit(pl.from_pandas(data[["image", "text"]]))
    # compare takes it too: its refusal of a wrong target is about the target, in one line
    with pytest.raises(ValueError) as info:
        mmfeat.compare(pl.from_pandas(data), target="nope", modalities=modalities())
    assert "nope" in str(info.value) and len(str(info.value)) < 400


def test_broken_files_leave_stderr_to_the_rows_errors(bad_files, tmp_path):
    """libpng, OpenCV and FFmpeg print their own lines for each broken file (from C): only the
    row's error should say what was wrong. In a child process: FFmpeg reads its log level once."""
    import subprocess
    import sys

    corrupt = bytearray(open(bad_files["truncated_png"].replace("truncated", "good"), "rb").read())
    corrupt[60:70] = b"\x00" * 10  # inside IDAT: its checksum fails
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    (tmp_path / "text.mp4").write_text("not a video")
    images = [bad_files["truncated_png"], str(tmp_path / "corrupt.png")]
    videos = [str(tmp_path / "text.mp4")]
    script = f"""
import warnings
from mmfeat import ExtractionWarning
from mmfeat.errors import collect_errors
from mmfeat.image import ColorHistogram
from mmfeat.video import VideoFrames
warnings.simplefilter("ignore", ExtractionWarning)
with collect_errors() as errors:
    ColorHistogram(cache=False, on_error="nan").fit_transform({images!r})
    VideoFrames(ColorHistogram(), cache=False, on_error="nan").fit_transform({videos!r})
print("|".join(e.cause for e in errors))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0].split("|") == [
        "truncated PNG (cut inside its 'IDAT' chunk)",
        "corrupt PNG (its 'IDAT' chunk fails its checksum)",
        "not a readable video (Invalid data found when processing input)"]
    assert result.stderr == ""
