"""Robustness report: the corruptions on real files of the demo data, and fitted fusion models
scored with each modality removed or corrupted."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mmfeat import ExtractionWarning
from mmfeat.datasets import demo_extractors, make_multimodal
from mmfeat.fusion import LateFusionClassifier, LateFusionRegressor, make_early_fusion
from mmfeat.robustness import (
    DEFAULT_CORRUPTIONS,
    corrupt_audio,
    corrupt_image,
    corrupt_text,
    plot_robustness,
    robustness_report,
)

MODALITIES = ("image", "text", "audio")
LEVELS = (0.25, 0.5, 0.75)
CHANCE = 0.25  # 4 balanced classes, and a stratified test set


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """Many small LogisticRegression fits on a shared machine: one BLAS thread is much faster."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """The demo data (200 rows), 120 to fit on and 80 held out (20 per class)."""
    df = make_multimodal(200, random_state=0, data_dir=tmp_path_factory.mktemp("demo"))
    return train_test_split(df, test_size=80, stratify=df["label"], random_state=0)


@pytest.fixture(scope="module")
def originals(split):
    """The digests of the held-out files before any corruption, to check they stay untouched."""
    _, test = split
    return {p: _digest(p) for m in ("image", "audio") for p in test[m]}


@pytest.fixture(scope="module")
def late(split):
    train, _ = split
    specs = {m: (column, extractor, _classifier())
             for m, (column, extractor) in demo_extractors(quick=True).items()}
    return LateFusionClassifier(specs, cv=3).fit(train, train["label"])


@pytest.fixture(scope="module")
def early_strict(split):
    """Early fusion without handle_missing: its extractors raise on a missing item."""
    train, _ = split
    model = make_early_fusion(**demo_extractors(quick=True),
                              estimator=LogisticRegression(C=0.05, max_iter=2000))
    return model.fit(train, train["label"])


@pytest.fixture(scope="module")
def image_only(split):
    train, _ = split
    model = make_early_fusion(image=demo_extractors(quick=True)["image"], handle_missing=True,
                              estimator=LogisticRegression(C=0.05, max_iter=2000))
    return model.fit(train, train["label"])


@pytest.fixture(scope="module")
def late_report(late, split, originals, tmp_path_factory):
    _, test = split
    work = tmp_path_factory.mktemp("corrupted")
    return robustness_report(late, test, test["label"], work_dir=work), work


def test_import_loads_neither_matplotlib_nor_heavy_libraries():
    heavy = {"matplotlib", "torch", "sentence_transformers", "librosa", "cv2", "soundfile", "av"}
    code = "import sys, mmfeat.robustness; print(' '.join(sorted(set(sys.modules) & %r)))" % heavy
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []


# ----------------------------------------------------------------------------- corruptions


def _psnr(a, b) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize("kind", ["blur", "noise", "occlusion"])
def test_a_stronger_image_corruption_changes_the_image_more(kind, split, tmp_path):
    import cv2

    path = split[1]["image"].iloc[0]
    before = _digest(path)
    original = cv2.imread(path)
    psnr = []
    for level in LEVELS:
        out = corrupt_image(path, tmp_path / f"{kind}-{level}.png", kind=kind, level=level, rng=0)
        corrupted = cv2.imread(out)
        assert corrupted.shape == original.shape
        psnr.append(_psnr(original, corrupted))
        if kind == "occlusion":  # one black block of that share of the area
            black = np.all(corrupted == 0, axis=2).mean()
            assert black == pytest.approx(level, abs=0.02)
    assert psnr[0] < 40, psnr  # visibly changed
    assert psnr == sorted(psnr, reverse=True) and len(set(psnr)) == 3, psnr
    assert _digest(path) == before
    unchanged = cv2.imread(corrupt_image(path, tmp_path / "zero.png", kind=kind, level=0, rng=0))
    np.testing.assert_array_equal(unchanged, original)


def test_image_corruptions_are_deterministic_given_their_rng(split, tmp_path):
    path = split[1]["image"].iloc[1]
    for kind in ("noise", "occlusion"):
        a, b, c = (corrupt_image(path, tmp_path / f"{kind}{i}.png", kind=kind, level=0.5, rng=seed)
                   for i, seed in enumerate((7, 7, 8)))
        assert _digest(a) == _digest(b) != _digest(c)


def test_audio_noise_is_at_the_requested_snr(split, tmp_path):
    import soundfile as sf

    path = split[1]["audio"].iloc[0]
    before = _digest(path)
    clean, sr = sf.read(path, dtype="float64")
    for snr_db in (20, 10, 0, -5):
        out = corrupt_audio(path, tmp_path / f"snr{snr_db}.wav", snr_db=snr_db, rng=1)
        noisy, noisy_sr = sf.read(out, dtype="float64")
        assert noisy_sr == sr and noisy.shape == clean.shape
        assert sf.info(out).subtype == "FLOAT"
        measured = 10 * np.log10(np.mean(clean ** 2) / np.mean((noisy - clean) ** 2))
        assert measured == pytest.approx(snr_db, abs=0.2)
    assert _digest(path) == before


def test_audio_noise_keeps_channels_and_reads_waveform_items(tmp_path):
    import soundfile as sf

    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 660 * t)])  # (2, n)
    out = corrupt_audio((stereo.astype(np.float32), 8000), tmp_path / "stereo.wav", snr_db=10,
                        rng=0)
    noisy, sr = sf.read(out)
    assert sr == 8000 and noisy.shape == (8000, 2)
    assert not np.allclose(noisy, stereo.T)


@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.75])
def test_word_dropout_drops_that_share_of_the_words_and_keeps_their_order(rate):
    words = [f"w{i}" for i in range(40)]
    kept = corrupt_text("  ".join(words), rate=rate, rng=3).split()
    assert len(kept) == 40 - round(rate * 40)
    assert kept == [w for w in words if w in kept]  # the survivors, in their order
    assert corrupt_text(" ".join(words), rate=rate, rng=3).split() == kept


def test_word_dropout_keeps_a_word_so_the_text_stays_a_text():
    assert corrupt_text("only three words", rate=1.0, rng=0) in ("only", "three", "words")
    assert corrupt_text("one", rate=0.9, rng=0) == "one"


def test_a_corruption_never_overwrites_its_original(split):
    path = split[1]["image"].iloc[2]
    before = _digest(path)
    with pytest.raises(ValueError, match="never overwrites"):
        corrupt_image(path, path, kind="blur", level=0.5)
    with pytest.raises(ValueError, match="never overwrites"):
        corrupt_audio(split[1]["audio"].iloc[2], split[1]["audio"].iloc[2], snr_db=10)
    assert _digest(path) == before


@pytest.mark.parametrize("call, match", [
    (lambda p, d: corrupt_image(p, d / "x.png", kind="sharpen", level=0.5), "kind='sharpen'"),
    (lambda p, d: corrupt_image(p, d / "x.png", kind="blur", level=1.5), "level=1.5"),
    (lambda p, d: corrupt_image(p, d / "x.png", kind="blur", level=True), "level=True"),
    (lambda p, d: corrupt_audio(p, d / "x.wav", snr_db="loud"), "snr_db='loud'"),
    (lambda p, d: corrupt_audio(p, d / "x.wav", snr_db=float("inf")), "snr_db=inf"),
    (lambda p, d: corrupt_text("a b c", rate=-0.1), r"rate=-0\.1"),
])
def test_bad_corruption_parameters_are_named(call, match, split, tmp_path):
    with pytest.raises(ValueError, match=match):
        call(split[1]["image"].iloc[0], tmp_path)


# ----------------------------------------------------------------------------- the report


@pytest.mark.slow
def test_late_fusion_report_covers_every_modality_and_level(late_report, split, originals):
    report, work = late_report
    _, test = split
    expected = [("none", None)]
    for kind in MODALITIES:
        expected.append(("missing", None))
        expected += [(p, level) for p, levels in DEFAULT_CORRUPTIONS[kind].items()
                     for level in levels]
    got = [(p, None if np.isnan(level) else level)
           for p, level in zip(report["perturbation"], report["level"])]
    assert got == expected
    rows_per_modality = {m: 1 + sum(map(len, DEFAULT_CORRUPTIONS[m].values())) for m in MODALITIES}
    assert report["modality"].iloc[1:].tolist() == [m for m in MODALITIES
                                                    for _ in range(rows_per_modality[m])]
    assert (report["status"] == "ok").all(), report["status"].tolist()  # handle_missing: every row
    assert report["score"].notna().all()
    np.testing.assert_allclose(report["delta"], report["score"] - report["score"].iloc[0])
    assert (report["n_changed"].iloc[1:] == len(test)).all()
    # Without a modality the others still carry the label: well above chance, below clean + noise.
    removed = report[report["perturbation"] == "missing"].set_index("modality")["score"]
    assert (removed > 0.6).all() and (removed < report["score"].iloc[0] + 0.05).all(), removed
    # Corrupted files are real new files, one per held-out item and condition; originals untouched.
    noisy = sorted((work / "image" / "noise-0.75").glob("*.png"))
    assert len(noisy) == len(test)
    assert _digest(noisy[0]) != originals[test["image"].iloc[0]]
    assert len(list((work / "audio" / "snr-0").glob("*.wav"))) == len(test)
    assert all(_digest(p) == d for p, d in originals.items())


@pytest.mark.slow  # fitted demo models with the real text model
def test_the_clean_score_is_the_models_own_and_scoring_can_be_named(late, split):
    _, test = split
    report = robustness_report(late, test, test["label"], corruptions=None)
    assert report["score"].iloc[0] == pytest.approx(late.score(test, test["label"]))
    assert report["perturbation"].tolist() == ["none", "missing", "missing", "missing"]
    report = robustness_report(late, test, test["label"], corruptions=None,
                               scoring="balanced_accuracy")
    clean = balanced_accuracy_score(test["label"], late.predict(test))
    assert report["score"].iloc[0] == pytest.approx(clean)
    assert report.attrs["scoring"] == "balanced_accuracy"


@pytest.mark.slow  # fitted demo models with the real text model
def test_a_model_of_the_image_alone_falls_to_chance_without_it_and_ignores_the_rest(image_only,
                                                                                    split):
    _, test = split
    report = robustness_report(image_only, test, test["label"], modalities=list(MODALITIES),
                               corruptions={"image": {"noise": [0.75], "occlusion": [0.75]},
                                            "text": {"word_dropout": [0.75]},
                                            "audio": {"snr": [0]}})
    clean = report["score"].iloc[0]
    assert clean > 0.5
    score = report.set_index(["modality", "perturbation"])["score"]
    assert score["image", "missing"] == pytest.approx(CHANCE)  # one constant prediction
    assert score["image", "occlusion"] < CHANCE + 0.1
    assert score["image", "noise"] < clean - 0.2
    for modality in ("text", "audio"):  # the model never reads them
        assert (score[modality] == clean).all()


@pytest.mark.slow  # fitted demo models with the real text model
def test_a_model_that_cannot_take_a_missing_modality_is_reported_and_the_rest_measured(
        early_strict, split):
    _, test = split
    report = robustness_report(early_strict, test, test["label"],
                               corruptions={"image": {"blur": [0.5]},
                                            "text": {"word_dropout": [0.5]}})
    missing = report[report["perturbation"] == "missing"]
    assert missing["score"].isna().all()
    for modality, status in zip(missing["modality"], missing["status"]):
        assert re.match(r"cannot handle missing: \w+: row 0 .*missing value", status), status
        assert "\n" not in status
    others = report[report["perturbation"] != "missing"]
    assert (others["status"] == "ok").all() and others["score"].notna().all()
    assert others["perturbation"].tolist() == ["none", "blur", "word_dropout"]


@pytest.mark.slow  # fitted demo models with the real text model
def test_missing_and_unreadable_items_stay_as_they_are(late, split, tmp_path):
    _, test = split
    test = test.copy()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"")
    test.iloc[0, test.columns.get_loc("image")] = str(broken)
    test.iloc[1, test.columns.get_loc("image")] = None
    test.iloc[2, test.columns.get_loc("text")] = None
    work = tmp_path / "work"
    with pytest.warns(ExtractionWarning, match="empty file"):  # the model's own, as when clean
        report = robustness_report(late, test, test["label"], work_dir=work, random_state=5,
                                   corruptions={"image": {"blur": [0.5]},
                                                "text": {"word_dropout": [0.5]}})
    assert (report["status"] == "ok").all(), report["status"].tolist()
    changed = report.set_index(["modality", "perturbation"])["n_changed"]
    assert changed["image", "missing"] == len(test) - 1  # the broken file is removed too
    assert changed["image", "blur"] == len(test) - 2  # but it cannot be blurred
    assert changed["text", "word_dropout"] == len(test) - 1
    written = sorted(p.name for p in (work / "image" / "blur-0.5").iterdir())
    assert len(written) == len(test) - 2
    assert "000000.png" not in written and "000001.png" not in written
    assert broken.read_bytes() == b""


@pytest.mark.slow  # fitted demo models with the real text model
def test_the_same_random_state_gives_the_same_files_and_scores(late, split, tmp_path):
    _, test = split
    plan = {"image": {"noise": [0.5]}, "text": {"word_dropout": [0.5]}}
    a, b, c = (robustness_report(late, test, test["label"],
                                 modalities={"image": "image", "text": "text"},
                                 corruptions=plan, random_state=seed, work_dir=tmp_path / name)
               for name, seed in (("a", 1), ("b", 1), ("c", 2)))
    pd.testing.assert_frame_equal(a, b)
    files = [tmp_path / name / "image" / "noise-0.5" / "000003.png" for name in "abc"]
    assert _digest(files[0]) == _digest(files[1]) != _digest(files[2])


@pytest.mark.slow  # a fitted demo model with the real text model
def test_a_regressor_is_scored_by_its_own_r2(split):
    train, test = split
    codes = {label: i for i, label in enumerate(sorted(train["label"].unique()))}
    model = LateFusionRegressor(demo_extractors(quick=True), cv=3)
    model.fit(train, train["label"].map(codes))
    y = test["label"].map(codes)
    report = robustness_report(model, test, y, corruptions={"audio": {"snr": [0]}})
    assert report["score"].iloc[0] == pytest.approx(r2_score(y, model.predict(test)))
    assert report.attrs["scoring"] == "score"
    assert (report["status"] == "ok").all()
    assert report.set_index("perturbation").loc["missing", "score"].max() < report["score"].iloc[0]


@pytest.mark.slow  # fitted demo models with the real text model
def test_modalities_are_read_from_fusion_models(late, early_strict, split):
    _, test = split
    for model in (late, early_strict):
        report = robustness_report(model, test.head(8), test["label"].head(8), corruptions=None)
        assert report["modality"].iloc[1:].tolist() == list(MODALITIES)
        assert report["kind"].iloc[1:].tolist() == list(MODALITIES)


@pytest.mark.parametrize("params, match", [
    ({"modalities": {"image": "image_col"}}, r"\[.image_col.\] that X does not have"),
    ({"modalities": {"photo": "image"}, "corruptions": {"video": {}}}, "kind 'video'"),
    ({"modalities": {"m": ("image", "picture")}}, r"modalities\['m'\]"),
    ({"modalities": {"m": "id"}}, "cannot tell its kind"),
    ({"corruptions": {"image": {"sharpen": [0.5]}}}, "perturbation 'sharpen'"),
    ({"corruptions": {"text": {"snr": [10]}}}, "perturbation 'snr' for kind 'text'"),
    ({"corruptions": {"image": {"blur": [0.5, 2]}}}, "level=2"),
    ({"corruptions": "all"}, "corruptions='all'"),
    ({"random_state": -1}, "random_state=-1"),
    ({"scoring": "accuracy_typo"}, "accuracy_typo"),
])
@pytest.mark.slow  # fitted demo models with the real text model
def test_bad_report_parameters_are_named(params, match, late, split):
    _, test = split
    with pytest.raises(ValueError, match=match):
        robustness_report(late, test.head(4), test["label"].head(4), **params)


def test_a_model_of_unknown_shape_or_unfitted_is_refused(split):
    from sklearn.exceptions import NotFittedError

    _, test = split
    fitted = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="pass modalities="):
        robustness_report(fitted, test, test["label"])
    with pytest.raises(NotFittedError):
        robustness_report(LogisticRegression(), test, test["label"], modalities=["image"])
    with pytest.raises(TypeError, match="expected a pandas DataFrame"):
        robustness_report(fitted, test.to_numpy(), test["label"], modalities=["image"])


# ----------------------------------------------------------------------------- the plot


@pytest.mark.slow
def test_the_plot_is_a_png_with_a_panel_per_corruption(late_report, tmp_path):
    import cv2

    report, _ = late_report
    path = plot_robustness(report, tmp_path / "plots" / "late.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = cv2.imread(str(path)).shape[:2]
    assert width > 1000 and height > 600  # 1 + 5 panels, 3 a row, readable


@pytest.mark.slow  # fitted demo models with the real text model
def test_the_plot_marks_what_the_model_cannot_take(early_strict, split, tmp_path):
    import cv2

    _, test = split
    report = robustness_report(early_strict, test.head(20), test["label"].head(20),
                               corruptions={"audio": {"snr": [10, 0]}})
    path = plot_robustness(report, tmp_path / "strict.png", title="strict")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = cv2.imread(str(path)).shape[:2]
    assert width > 600 and height > 300  # two panels side by side
    with pytest.raises(ValueError, match="clean row"):
        plot_robustness(report[report["perturbation"] != "none"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="without the columns"):
        plot_robustness(report.drop(columns="delta"), tmp_path / "x.png")
    with pytest.raises(ValueError, match="dpi=0"):
        plot_robustness(report, tmp_path / "x.png", dpi=0)
