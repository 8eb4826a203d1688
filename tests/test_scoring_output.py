"""Batch scoring output under the conditions users meet: ids as they are, one schema for every
part, empty input, relative paths, other files in the output folder, a second job, every row
failing, a killed parent with workers. Real files and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mmfeat.image.color import ColorHistogram
from mmfeat.modelfile import save_model
from mmfeat.scoring import ScoringError, score

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model(tmp_path_factory, image_paths):
    d = tmp_path_factory.mktemp("model")
    train = pd.DataFrame({"image": image_paths, "label": ["red"] * 3 + ["blue"] * 3})
    pipe = Pipeline([("features",
                      ColumnTransformer([("image", ColorHistogram(bins=(4, 4, 4)), "image")])),
                     ("clf", LogisticRegression(max_iter=500))]).fit(train, train["label"])
    return {"pipe": pipe, "path": save_model(pipe, d / "model.joblib"), "images": image_paths}


def _parts_share_one_schema(out):
    schemas = {str(pq.read_schema(p)) for p in sorted(out.glob("part-*.parquet"))}
    assert len(schemas) == 1, schemas


def test_csv_ids_come_back_as_written(model, tmp_path):
    ids = ["00001", "00002", "7", "00010", "abc", "00012"]  # chunks of 2: some look numeric
    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": ids, "image": model["images"]}).to_csv(csv, index=False)
    score(model["path"], csv, tmp_path / "out", chunk_size=2, progress=False)
    _parts_share_one_schema(tmp_path / "out")
    assert pd.read_parquet(tmp_path / "out")["id"].tolist() == ids


def test_csv_integer_ids_with_a_null_stay_integers(model, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("id,image\n" + "\n".join(
        f"{'' if i == 3 else i},{p}" for i, p in enumerate(model["images"])) + "\n")
    score(model["path"], csv, tmp_path / "out", chunk_size=2, progress=False)
    _parts_share_one_schema(tmp_path / "out")
    got = pq.read_table(tmp_path / "out").column("id")
    assert str(got.type) == "int64" and got.to_pylist() == [0, 1, 2, None, 4, 5]


def test_parquet_ids_keep_their_type_nulls_included(model, tmp_path):
    table = pd.DataFrame({"id": pd.array([10, None, 12, 13, None, 15], dtype="Int64"),
                          "image": model["images"]})
    table.to_parquet(tmp_path / "t.parquet", index=False)
    score(model["path"], tmp_path / "t.parquet", tmp_path / "out", chunk_size=2, progress=False)
    _parts_share_one_schema(tmp_path / "out")
    got = pq.read_table(tmp_path / "out").column("id")
    assert str(got.type) == "int64" and got.to_pylist() == [10, None, 12, 13, None, 15]


def test_parts_share_one_schema_when_a_chunk_fails_entirely(model, tmp_path):
    images = model["images"][:2] + ["gone-1.png", "gone-2.png"] + model["images"][2:4]
    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": range(6), "image": images}).to_csv(csv, index=False)
    score(model["path"], csv, tmp_path / "out", chunk_size=2, progress=False)
    _parts_share_one_schema(tmp_path / "out")
    res = pd.read_parquet(tmp_path / "out")
    assert res["prediction"].isna().tolist() == [False, False, True, True, False, False]


def test_empty_input_writes_a_valid_empty_part(model, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("id,image\n")
    summary = score(model["path"], csv, tmp_path / "out", proba=True, progress=False)
    assert summary["rows"] == 0 and summary["parts"] == 1
    res = pd.read_parquet(tmp_path / "out")
    assert len(res) == 0
    assert list(res.columns) == ["id", "prediction", "proba_blue", "proba_red", "error", "missing"]


def test_relative_paths_are_read_from_the_input_folder(model, tmp_path, monkeypatch):
    import shutil

    data = tmp_path / "data"
    (data / "img").mkdir(parents=True)
    for i, p in enumerate(model["images"]):
        shutil.copy(p, data / "img" / f"{i}.png")
    pd.DataFrame({"id": range(6), "image": [f"img/{i}.png" for i in range(6)]}
                 ).to_csv(data / "m.csv", index=False)
    monkeypatch.chdir(tmp_path)
    summary = score(model["path"], data / "m.csv", tmp_path / "out", progress=False)
    assert summary["failed"] == 0
    expected = model["pipe"].predict(pd.DataFrame({"image": model["images"]}))
    assert pd.read_parquet(tmp_path / "out")["prediction"].tolist() == expected.tolist()


def test_files_mmfeat_did_not_create_are_left_alone(model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".notes.tmp").write_text("mine")
    (out / ".part-00000.parquet.123.tmp").write_text("mine too")
    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": range(6), "image": model["images"]}).to_csv(csv, index=False)
    score(model["path"], csv, out, progress=False)
    assert (out / ".notes.tmp").read_text() == "mine"
    assert (out / ".part-00000.parquet.123.tmp").exists()


def test_a_job_where_every_row_fails_exits_non_zero(model, tmp_path, capsys):
    from mmfeat.cli import main

    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": [1, 2], "image": ["gone-1.png", "gone-2.png"]}).to_csv(csv, index=False)
    with pytest.raises(ScoringError, match="every one of the 2 rows failed"):
        score(model["path"], csv, tmp_path / "out", progress=False)
    code = main(["score", str(model["path"]), str(csv), str(tmp_path / "out2"), "-q"])
    assert code == 2 and "every one of the 2 rows failed" in capsys.readouterr().err


@pytest.fixture
def slow_job(model, tmp_path):
    """A model that sleeps 0.3 s a chunk (``tests/slowstep.py``, importable by the workers), and
    a 60-row table in chunks of 2: a job of about 9 s that a test can interrupt."""
    from slowstep import Sleep

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(ROOT)]))
    train = pd.DataFrame({"image": model["images"], "label": ["red"] * 3 + ["blue"] * 3})
    pipe = Pipeline([("features",
                      ColumnTransformer([("image", ColorHistogram(bins=(2, 2, 2)), "image")])),
                     ("sleep", Sleep(0.3)), ("clf", LogisticRegression())])
    pipe.fit(train, train["label"])
    path = save_model(pipe, tmp_path / "slow.joblib")
    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": range(60), "image": model["images"] * 10}).to_csv(csv, index=False)
    return {"model": path, "csv": csv, "env": env}


def _start(job, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "mmfeat.cli", "score", str(job["model"]),
                             str(job["csv"]), str(out), "--chunk-size", "2", "-q", *extra],
                            env=job["env"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_a_part(proc, out, timeout=90):
    deadline = time.monotonic() + timeout
    while not list(out.glob("part-*.parquet")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no part written"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_job_on_the_same_folder_is_refused(slow_job, tmp_path):
    out = tmp_path / "out"
    first = _start(slow_job, out)
    try:
        _wait_for_a_part(first, out)
        second = subprocess.run([sys.executable, "-m", "mmfeat.cli", "score",
                                 str(slow_job["model"]), str(slow_job["csv"]), str(out),
                                 "--chunk-size", "2", "-q"],
                                env=slow_job["env"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "another mmfeat score job is running" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
        first.stderr.close()
    assert pd.read_parquet(out)["id"].tolist() == list(range(60))


@pytest.mark.slow
def test_workers_exit_when_the_job_is_killed(slow_job, tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    parent = _start(slow_job, out, "--workers", "2")
    try:
        _wait_for_a_part(parent, out)
        workers = [c for c in psutil.Process(parent.pid).children(recursive=True)
                   if "python" in c.name().lower()]
        assert workers, "no worker processes found"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=20)
        assert not alive, f"{len(alive)} worker(s) outlived the job"
        parts = len(list(out.glob("part-*.parquet")))
        time.sleep(1.0)
        assert len(list(out.glob("part-*.parquet"))) == parts  # nobody writes for a dead job
    finally:
        parent.kill()
        parent.stderr.close()


@pytest.mark.slow
def test_worker_processes_use_the_jobs_cache_settings(model, tmp_path):
    """Settings are per thread, not in the environment: a job's cache_dir reaches its workers."""
    from mmfeat import config_context
    from mmfeat.cache import FeatureCache

    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": range(6), "image": model["images"]}).to_csv(csv, index=False)
    store = tmp_path / "job-cache"
    with config_context(cache_dir=store):
        score(model["path"], csv, tmp_path / "out", chunk_size=3, workers=2, progress=False)
    assert FeatureCache(store).stats()["entries"] == len(set(model["images"]))


@pytest.mark.slow
def test_score_trusted_names_a_further_type_of_a_skops_file(model, tmp_path):
    pytest.importorskip("skops")
    from slowstep import Sleep

    train = pd.DataFrame({"image": model["images"], "label": ["red"] * 3 + ["blue"] * 3})
    pipe = Pipeline([("features",
                      ColumnTransformer([("image", ColorHistogram(bins=(2, 2, 2)), "image")])),
                     ("sleep", Sleep(0.0)), ("clf", LogisticRegression())])
    pipe.fit(train, train["label"])
    path = save_model(pipe, tmp_path / "custom.skops")
    csv = tmp_path / "t.csv"
    pd.DataFrame({"id": range(6), "image": model["images"]}).to_csv(csv, index=False)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), str(ROOT)]))
    cmd = [sys.executable, "-m", "mmfeat.cli", "score", str(path), str(csv)]
    refused = subprocess.run([*cmd, str(tmp_path / "a"), "-q"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "slowstep.Sleep" in refused.stderr
    trusted = subprocess.run([*cmd, str(tmp_path / "b"), "-q", "--trusted", "slowstep.Sleep"],
                             env=env, capture_output=True, text=True, timeout=120)
    assert trusted.returncode == 0, trusted.stderr
    assert pd.read_parquet(tmp_path / "b")["prediction"].tolist() == pipe.predict(train).tolist()
