"""The quick start runs verbatim on the demo's own manifest file, and the README shows the
same block as the docs' quick start page."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUICKSTART = ROOT / "docs" / "quickstart.md"


def _quick_start(page: Path) -> str:
    section = page.read_text().split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_shows_the_docs_quick_start():
    assert _quick_start(README) == _quick_start(QUICKSTART)


def test_quick_start_runs_verbatim_on_the_demo_manifest(tmp_path, monkeypatch):
    from mmfeat.datasets import make_multimodal

    make_multimodal(n_samples=48, data_dir=tmp_path / "data" / "demo")
    elsewhere = tmp_path / "elsewhere"  # the manifest's relative paths must not need its folder
    elsewhere.mkdir()
    (elsewhere / "data").symlink_to(tmp_path / "data")
    monkeypatch.chdir(elsewhere)
    namespace: dict = {}
    exec(compile(_quick_start(QUICKSTART), str(QUICKSTART), "exec"), namespace)
    model, df = namespace["model"], namespace["df"]
    assert len(df) == 48 and {"image", "text", "audio", "label"} <= set(df.columns)
    predictions = model.predict(df)
    assert predictions.shape == (48,)
    assert np.mean(predictions == df["label"].to_numpy()) > 0.5  # it learned something
    # The first example is the fast one: scaled columns, so the solver converges quickly.
    assert model[-1].n_iter_.max() < 200
