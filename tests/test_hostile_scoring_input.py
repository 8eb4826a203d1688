"""`mmfeat score` on hostile inputs: FIFOs given as the manifest or the model file, a CSV of a
million columns, and numbers that overflow. Each runs in a child with a time limit."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from mmfeat.image import ColorHistogram
from mmfeat.modelfile import save_model


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    import cv2

    d = tmp_path_factory.mktemp("scoring_input")
    for i in range(4):
        cv2.imwrite(str(d / f"{i}.png"), np.full((16, 16, 3), 60 * i, np.uint8))
    train = pd.DataFrame({"image": [str(d / f"{i}.png") for i in range(4)]})
    features = ColumnTransformer([("image", ColorHistogram(bins=(2, 2, 2), cache=False), "image")])
    model = make_pipeline(features, LogisticRegression()).fit(train, [0, 1, 0, 1])
    return {"dir": d, "model": save_model(model, d / "model.joblib")}


def score(*args, timeout=60):
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "mmfeat", "score", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": path, "MMFEAT_CACHE_DIR": "off"})


def test_a_fifo_as_the_manifest_or_the_model_is_refused_at_once(job, tmp_path):
    fifo = tmp_path / "manifest.csv"
    os.mkfifo(fifo)
    done = score(job["model"], fifo, tmp_path / "out")
    assert done.returncode == 2
    assert "is not a regular file or a folder (a FIFO, device or socket)" in done.stderr
    model_fifo = tmp_path / "model.joblib"
    os.mkfifo(model_fifo)
    manifest = tmp_path / "rows.csv"
    pd.DataFrame({"image": ["0.png"]}).to_csv(manifest, index=False)
    done = score(model_fifo, manifest, tmp_path / "out2")
    assert done.returncode == 2
    assert "is not a regular file (a FIFO, device or socket)" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_csv_of_a_million_columns_reads_only_those_the_model_needs(job, tmp_path):
    """13 MB: the job's two columns and 999,998 others (300 s and 3.2 GB once)."""
    wide = tmp_path / "wide.csv"
    others = 999_998
    header = "id,image," + ",".join(f"c{i}" for i in range(others))
    rows = [f"{i},{job['dir'] / f'{i}.png'}," + ",".join("0" * others) for i in range(2)]
    wide.write_text(header + "\n" + "\n".join(rows) + "\n")
    done = score(job["model"], wide, tmp_path / "out", "-q", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = pd.read_parquet(tmp_path / "out")
    assert out["prediction"].notna().all() and len(out) == 2


@pytest.mark.parametrize("value", ["1e400", "inf", "nan", "-1", "2.5"])
def test_an_overflowing_chunk_size_is_a_usage_error(job, tmp_path, value):
    manifest = tmp_path / "rows.csv"
    pd.DataFrame({"image": [str(job["dir"] / "0.png")]}).to_csv(manifest, index=False)
    done = score(job["model"], manifest, tmp_path / "out", "--chunk-size", value)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"expected a positive integer, got {value!r}" in done.stderr, done.stderr
