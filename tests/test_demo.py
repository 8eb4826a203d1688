"""``mmfeat demo`` with its real models (CNN, MiniLM and MFCCs), run as users run it, at half
its default size and with 3 folds instead of 5: the suite's longest test. (On 300 samples,
seed 0, 3 folds: early fusion 0.883 and stacking 0.903 against audio alone, the best single
modality, 0.753.)"""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from mmfeat.cache import FeatureCache

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")

SINGLE = ["image only", "text only", "audio only"]
FUSED = ["early fusion", "early fusion + interactions", "late fusion (stacking)",
         "late fusion (gated stacking)", "late fusion (mean)", "late fusion (product)"]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory, seed_graphs):
    """The demo twice on one fresh cache (holding the models' exported graphs): the results of
    each run and the store's miss totals."""
    root = tmp_path_factory.mktemp("demo")
    seed_graphs(root / "cache")
    env = {**os.environ, "MMFEAT_CACHE_DIR": str(root / "cache"), "HF_HUB_OFFLINE": "1"}
    runs = []
    for k in range(2):
        report = root / f"report{k}"
        cmd = [sys.executable, "-m", "mmfeat.cli", "demo", "--data-dir", str(root / "data"),
               "--report-dir", str(report), "--cv", "3", "--n-samples", "300"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        misses = FeatureCache(root / "cache").stats()["misses"]
        runs.append((pd.read_csv(report / "results.csv"), report, done.stdout, misses, done.stderr))
    return runs


def test_early_and_late_fusion_beat_the_best_single_modality_by_5_points(demo_runs):
    results = demo_runs[0][0].set_index("model")["accuracy"]
    best_single = results[SINGLE].max()
    assert results["early fusion"] >= best_single + 0.05, results
    assert results["late fusion (stacking)"] >= best_single + 0.05, results
    assert results[SINGLE].min() > 0.45  # each modality carries signal: chance is 1/3


def test_report_files_and_table(demo_runs):
    results, report, stdout, _, _ = demo_runs[0]
    assert sorted(results["model"]) == sorted(SINGLE + FUSED)
    assert results["balanced_accuracy"].is_monotonic_decreasing  # best first
    assert set(results.columns) >= {"accuracy", "balanced_accuracy", "macro_f1", "accuracy_std",
                                    "fit_s", "predict_s", "cache_hits"}
    for name in ["results.csv", "folds.csv", "results.md", "scores.png", "confusion.png",
                 "contributions.png", "modality_report.csv"]:
        path = report / name
        assert path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(report.resolve()) in stdout
    modalities = pd.read_csv(report / "modality_report.csv")
    assert sorted(modalities["modality"]) == ["audio", "image", "text"]
    assert (modalities["oof_score"] > 0.45).all()


def test_second_run_computes_nothing_and_gives_the_same_results(demo_runs):
    (first, _, _, misses_first, _), (second, _, _, misses_second, _) = demo_runs
    assert misses_first > 0 and misses_second == misses_first  # every feature came from the cache
    assert (second["cache_hits"] > 0).all()
    pd.testing.assert_series_equal(first["accuracy"], second["accuracy"])


def test_a_log_file_gets_no_progress_bars(demo_runs):
    """stderr is not a terminal here, as in a log file: no bars and their carriage returns."""
    for *_, stderr in demo_runs:
        assert "\r" not in stderr and "it/s" not in stderr, stderr[-500:]
