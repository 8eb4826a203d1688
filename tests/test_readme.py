"""The README's quick start runs verbatim on the demo's own manifest file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _quick_start() -> str:
    section = README.read_text().split("## Quick start", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_quick_start_runs_verbatim_on_the_demo_manifest(tmp_path, monkeypatch):
    from mmfeat.datasets import make_multimodal

    make_multimodal(n_samples=48, data_dir=tmp_path / "data" / "demo")
    elsewhere = tmp_path / "elsewhere"  # the manifest's relative paths must not need its folder
    elsewhere.mkdir()
    (elsewhere / "data").symlink_to(tmp_path / "data")
    monkeypatch.chdir(elsewhere)
    namespace: dict = {}
    exec(compile(_quick_start(), str(README), "exec"), namespace)
    model, df = namespace["model"], namespace["df"]
    assert len(df) == 48 and {"image", "text", "audio", "label"} <= set(df.columns)
    predictions = model.predict(df)
    assert predictions.shape == (48,)
    assert np.mean(predictions == df["label"].to_numpy()) > 0.5  # it learned something
