"""Every pipelines/ script runs on the demo data with its defaults and paths as arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import help_entries

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"


def run(script, *args, timeout=600):
    result = subprocess.run([sys.executable, str(PIPELINES / script), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pipelines-data")


def test_early_fusion_gridsearch_then_score_the_saved_model(demo_dir, tmp_path):
    model = tmp_path / "early.joblib"
    out = run("early_fusion_gridsearch.py", "--quick", "--n-samples", 120, "--cv", 3,
              "--data-dir", demo_dir, "--model-out", model)
    assert "best parameters" in out and model.exists()
    accuracy = float(out.split("held-out accuracy")[1].split()[0])
    assert accuracy > 0.4  # four classes: chance is 0.25

    scored_dir = tmp_path / "scored"
    out = run("score_manifest.py", model, demo_dir / "manifest.csv", scored_dir, "--proba",
              "--chunk-size", 50)
    scored = pd.read_parquet(scored_dir)
    manifest = pd.read_csv(demo_dir / "manifest.csv")
    assert sorted(scored["id"]) == sorted(manifest["id"])
    assert scored["error"].isna().all() and scored.filter(like="proba_").shape[1] == 4


def test_late_fusion_script_then_score_an_unlabeled_manifest(demo_dir, tmp_path):
    model = tmp_path / "late.joblib"
    out = run("late_fusion.py", "--quick", "--n-samples", 120, "--cv", 3,
              "--data-dir", demo_dir, "--model-out", model)
    assert "held-out accuracy" in out and model.exists()
    for modality in ("image", "text", "audio"):
        assert modality in out  # the modality report is printed

    # New data comes without a label, its columns in another order, with a column of its own.
    from mmfeat.datasets import load_manifest

    new = load_manifest(demo_dir).drop(columns=["label"])
    unlabeled = tmp_path / "unlabeled.csv"
    new[new.columns[::-1]].assign(source="upload").to_csv(unlabeled, index=False)
    run("score_manifest.py", model, unlabeled, tmp_path / "scored", "--proba")
    scored = pd.read_parquet(tmp_path / "scored")
    assert sorted(scored["id"]) == sorted(new["id"])
    assert scored["error"].isna().all() and scored.filter(like="proba_").shape[1] == 4


def test_late_fusion_script_holds_out_whole_groups(tmp_path):
    from mmfeat.datasets import make_multimodal

    manifest = tmp_path / "grouped.csv"
    make_multimodal(120, n_groups=4, data_dir=tmp_path / "data").to_csv(manifest, index=False)
    out = run("late_fusion.py", "--quick", "--manifest", manifest, "--group-col", "group",
              "--cv", 3, "--rule", "product")
    accuracy = float(out.split("held-out accuracy")[1].split()[0])
    assert accuracy > 0.4  # four classes: chance is 0.25
    assert "temperature" in out  # the product rule calibrates each modality


@pytest.mark.parametrize("script", sorted(p.name for p in PIPELINES.glob("[a-z]*.py")))
def test_every_argument_of_a_script_has_help(script):
    entries = help_entries(run(script, "--help", timeout=120))
    assert len(entries) > 2, entries
    assert all(entries.values()), [name for name, text in entries.items() if not text]
