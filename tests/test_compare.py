"""mmfeat.compare: every modality alone and every fusion under the same folds, features once."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from counting import CountingText, count_lines
from sklearn.base import clone

from mmfeat import compare, load_model
from mmfeat.audio import MFCCStats
from mmfeat.cache import FeatureCache
from mmfeat.comparison.run import fit, make_splits
from mmfeat.datasets import make_multimodal
from mmfeat.image import ColorHistogram
from mmfeat.text import SentenceEmbedder

PNG = b"\x89PNG\r\n\x1a\n"


def _modalities(tmp_path, cache=None):
    # Text twice: embedded, and as character counts that log every text they featurise.
    return {"image": ("image", ColorHistogram(bins=(12, 4, 4), cache=cache)),
            "text": ("text", SentenceEmbedder(cache=cache)),
            "audio": ("audio", MFCCStats(n_mfcc=20, cache=cache)),
            "text_stats": ("text", CountingText(log_path=str(tmp_path / "text.log"), cache=cache))}


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    df = make_multimodal(160, n_groups=4, data_dir=root / "data")
    cache = FeatureCache(root / "cache")
    result = compare(df, target="label", modalities=_modalities(root, cache), groups="group",
                     cv=4, report_dir=root / "report", refit=True)
    return root, df, result


@pytest.mark.slow  # the real text model, ten candidates under four folds
def test_every_candidate_is_scored_under_the_same_group_folds(grouped):
    root, df, result = grouped
    table = result.table
    names = set(table["model"])
    assert {"image only", "text only", "audio only", "early fusion",
            "early fusion + interactions", "late fusion (stacking)", "late fusion (mean)",
            "late fusion (product)"} <= names
    assert (table["status"] == "ok").all()
    for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert table[metric].between(0, 1).all() and (table[f"{metric}_std"] >= 0).all()
    # Ranked by balanced accuracy, best first, and the best is a fusion. (Across groups the
    # audio misleads, by design of the data: each group has its own voice.)
    assert table["balanced_accuracy"].is_monotonic_decreasing
    assert result.best == table["model"].iloc[0] and table["kind"].iloc[0] != "single"
    best_single = table[table["kind"] == "single"]["balanced_accuracy"].max()
    assert table["balanced_accuracy"].iloc[0] > best_single + 0.05  # measured 0.84 vs 0.73
    # Four folds of four groups: each test fold is exactly one group, unseen in training.
    groups = df["group"].to_numpy()
    for train, test in result.splits:
        assert len(set(groups[test])) == 1 and not set(groups[test]) & set(groups[train])
    assert result.folds.groupby("model").size().eq(4).all()
    # Out-of-fold predictions for every row reproduce the per-fold accuracy.
    oof = result.predictions[result.best]
    per_fold = result.folds[result.folds["model"] == result.best]["accuracy"]
    assert np.isclose(np.mean([np.mean(oof[t] == df["label"].to_numpy()[t])
                               for _, t in result.splits]), per_fold.mean())


@pytest.mark.slow  # the real text model, ten candidates under four folds
def test_features_are_extracted_once_for_the_whole_comparison(grouped):
    root, df, result = grouped
    # 10 models x 4 folds x (fit + predict), and the refit: each distinct text once.
    assert count_lines(root / "text.log") == df["text"].nunique()
    # Each modality's items are computed once, by the first model that uses it (the models
    # with one modality run first); every fusion is served by the cache alone.
    table = result.table.set_index("model")
    single = table["kind"] == "single"
    assert table.loc[single, "cache_misses"].eq(df["text"].nunique()).all()
    assert table.loc[~single, "cache_misses"].eq(0).all()
    assert table.loc[single | (table["kind"] == "early"), "cache_hits"].gt(0).all()


@pytest.mark.slow  # the real text model, ten candidates under four folds
def test_report_files_and_refit(grouped):
    root, df, result = grouped
    report = root / "report"
    for name in ("scores.png", "contributions.png", "confusion.png"):
        assert (report / name).read_bytes()[:8] == PNG
    written = pd.read_csv(report / "results.csv")
    assert list(written["model"]) == list(result.table["model"])
    assert np.allclose(written["accuracy"], result.table["accuracy"])
    assert "| model |" in (report / "results.md").read_text()
    assert len(pd.read_csv(report / "folds.csv")) == len(result.folds)
    # The winner, refitted on every row, predicts as the winning candidate fitted again by
    # hand on every row (with the same groups) does.
    by_hand = fit(clone(result.best_estimator), df, df["label"].to_numpy(), df["group"].to_numpy())
    refitted = result.best_estimator.predict(df)
    assert refitted.shape == (len(df),)
    assert (refitted == by_hand.predict(df)).all()
    assert np.allclose(result.best_estimator.predict_proba(df), by_hand.predict_proba(df))
    assert result.robustness is None and not (report / "robustness.png").exists()


@pytest.mark.slow  # every candidate, then the winner perturbed
def test_robustness_of_the_winner(tmp_path):
    df = make_multimodal(60, data_dir=tmp_path / "data")
    modalities = {"image": ("image", ColorHistogram(bins=(12, 4, 4))),
                  "audio": ("audio", MFCCStats(n_mfcc=20))}
    result = compare(df, target="label", modalities=modalities, cv=3, interactions=False,
                     robustness=True, report_dir=tmp_path / "report")
    report = result.robustness
    test = result.splits[0][1]
    clean = report[report["perturbation"] == "none"]["score"].iloc[0]
    folds = result.folds
    first = folds[(folds["model"] == result.best) & (folds["fold"] == 0)]
    assert clean == pytest.approx(first["balanced_accuracy"].iloc[0])
    assert set(report["perturbation"]) >= {"none", "missing", "blur", "snr"}
    assert set(report["modality"].dropna()) == {"image", "audio"}  # every modality compared
    assert report[report["perturbation"] != "none"]["n_changed"].max() == len(test)
    assert (tmp_path / "report" / "robustness.png").read_bytes()[:8] == PNG
    assert len(pd.read_csv(tmp_path / "report" / "robustness.csv")) == len(report)


def test_regression_and_a_failing_candidate(tmp_path):
    df = make_multimodal(90, n_classes=3, data_dir=tmp_path / "data")
    y = df["label"].map({"fire": 0.0, "forest": 1.0, "ocean": 2.0}).to_numpy()
    y = y + np.random.default_rng(0).normal(0, 0.1, len(y))
    # Two colour bins and a missing-indicator: fewer features than the interactions' rank of 4.
    modalities = {"image": ("image", ColorHistogram(bins=(1, 1, 2))),
                  "audio": ("audio", MFCCStats(n_mfcc=13))}
    result = compare(df, y, modalities=modalities, cv=3)
    assert result.task == "regression" and result.rank_by == "r2"
    table = result.table.set_index("model")
    assert {"r2", "r2_std", "mae", "mae_std"} <= set(table.columns)
    assert "late fusion (product)" not in table.index
    failed = table.loc["early fusion + interactions", "status"]
    assert failed.startswith("failed: ValueError: Modality 'image' has 3 features, "
                             "fewer than rank=4")
    assert table.drop("early fusion + interactions")["status"].eq("ok").all()
    assert table.loc["audio only", "r2"] > 0.3 and result.best != "early fusion + interactions"


def test_balanced_class_weight_helps_the_minority(tmp_path):
    df = make_multimodal(220, n_classes=2, weights=[10, 1], data_dir=tmp_path / "data")
    audio = {"audio": ("audio", MFCCStats(n_mfcc=20))}
    plain = compare(df, target="label", modalities=audio, cv=3)
    weighted = compare(df, target="label", modalities=audio, cv=3, class_weight="balanced")
    assert plain.chance["accuracy"] == pytest.approx(200 / 220)
    assert (weighted.table["balanced_accuracy"].iloc[0]
            > plain.table["balanced_accuracy"].iloc[0] + 0.03)


def test_splits_without_groups_are_stratified():
    y = np.array(["a"] * 30 + ["b"] * 10)
    splits = make_splits(pd.DataFrame({"x": range(40)}), y, None, 5, "classification", 0)
    assert len(splits) == 5
    assert all((y[test] == "b").sum() == 2 for _, test in splits)


@pytest.mark.parametrize("kwargs, message", [
    ({"target": "label", "y": [0] * 40}, "as y .* or as target="),
    ({"target": "nope"}, "Target column 'nope' is not among the columns"),
    ({"target": "label", "rank_by": "r2"}, "rank_by='r2' is not a classification metric"),
    ({"target": "label", "groups": "speaker"}, "Groups column 'speaker' is not among"),
    ({"target": "label", "modalities": {"image": ("image",)}}, r"must be \(column, extractor\)"),
    ({"target": "label", "cv": "five"}, "The 'cv' parameter of compare must be"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    df = pd.DataFrame({"image": ["a.png"] * 40, "label": ["x", "y"] * 20})
    kwargs = {"modalities": {"image": ("image", ColorHistogram())}, **kwargs}
    with pytest.raises(ValueError, match=message):
        compare(df, **kwargs)


@pytest.mark.slow  # a whole comparison in a new process
def test_command_line_writes_the_report_and_the_refitted_model(tmp_path, capsys):
    from mmfeat.cli import main

    make_multimodal(100, data_dir=tmp_path / "data")
    model = tmp_path / "best.skops"
    run = subprocess.run(
        [sys.executable, "-m", "mmfeat.cli", "compare", str(tmp_path / "data" / "manifest.csv"),
         "--target", "label", "--image", "image:color", "--audio", "audio", "--cv", "2",
         "--no-interactions", "--report-dir", str(tmp_path / "report"), "--refit", str(model)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "late fusion (stacking)" in run.stdout and "best model" in run.stdout
    assert "early fusion + interactions" not in run.stdout
    assert (tmp_path / "report" / "scores.png").read_bytes()[:8] == PNG
    df = pd.read_csv(tmp_path / "data" / "manifest.csv")
    assert len(load_model(model).predict(df.assign(
        image=[str(tmp_path / "data" / p) for p in df["image"]],
        audio=[str(tmp_path / "data" / p) for p in df["audio"]]))) == len(df)
    # a mistake is one line and exit code 2 (in this process: the first run was a user's)
    bad = main(["compare", str(tmp_path / "data" / "manifest.csv"), "--target", "label",
                "--image", "picture"])
    assert bad == 2 and "has no column 'picture'" in capsys.readouterr().err


def test_late_fusions_share_modality_fits_only_when_everything_is_equal():
    from sklearn.datasets import make_classification

    from mmfeat.fusion import LateFusionClassifier
    from mmfeat.fusion.modality_fit import shared_modality_fits

    X, y = make_classification(200, n_features=6, n_informative=6, n_redundant=0, random_state=0)
    df = pd.DataFrame(X, columns=["a0", "a1", "a2", "b0", "b1", "b2"])
    spec = {"a": (["a0", "a1", "a2"], "passthrough"), "b": (["b0", "b1", "b2"], "passthrough")}
    kinds = [{}, {"rule": "mean"}, {"trust": "margin"}]
    flipped = np.where(np.arange(200) < 20, 1 - y, y)  # other labels: no fit may be reused

    def fit_all():
        models = [LateFusionClassifier(spec, cv=3, random_state=0, **kw).fit(df, y) for kw in kinds]
        return models + [LateFusionClassifier(spec, cv=3, random_state=0).fit(df, flipped)]

    alone = fit_all()
    with shared_modality_fits():
        shared = fit_all()
    for a, b in zip(alone, shared):
        np.testing.assert_array_equal(a.predict_proba(df), b.predict_proba(df))
    # Each reuse is a copy of its own.
    assert shared[1].estimators_["a"] is not shared[0].estimators_["a"]
