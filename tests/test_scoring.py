"""Batch scoring: equality with in-memory predict, bad rows in place, ids, exit codes, resume
after kill -9, several processes and a real Dask cluster on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mmfeat.cli import main
from mmfeat.image.color import ColorHistogram
from mmfeat.modelfile import save_model
from mmfeat.scoring import ScoringError, score

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models

ROOT = Path(__file__).resolve().parents[1]

try:
    from mmfeat.audio import MFCCStats
except ImportError:  # audio extractors not there: image-only model
    MFCCStats = None

def _env(*extra_paths):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, extra_paths), str(ROOT),
                                         env.get("PYTHONPATH", "")])
    return env


def _features(audio=True):
    blocks = [("image", ColorHistogram(bins=(4, 4, 4)), "image")]
    if audio and MFCCStats is not None:
        blocks.append(("audio", MFCCStats(n_mfcc=8, n_mels=20, stats=("mean",)), "audio"))
    return ColumnTransformer(blocks)


@pytest.fixture(scope="module")
def data(tmp_path_factory, image_paths, audio_paths, bad_files):
    """Fitted model files and a 40-row table: 36 good rows and 4 bad ones at known places.

    ``model`` uses images and audio; ``model_img`` images only, for the tests that start
    processes (no librosa import in each of them)."""
    d = tmp_path_factory.mktemp("scoring")
    n = 36
    good = pd.DataFrame({
        "id": np.arange(1000, 1000 + n),
        "key": [f"k{i:03d}" for i in range(n)],
        "image": [image_paths[i % 6] for i in range(n)],
        "audio": [audio_paths[(i * 5) % 6] for i in range(n)],
        "label": ["red" if i % 6 < 3 else "blue" for i in range(n)],
    })
    pipe = Pipeline([("features", _features()), ("clf", LogisticRegression(max_iter=1000))])
    pipe.fit(good, good["label"])
    pipe_img = Pipeline([("features", _features(audio=False)),
                         ("clf", LogisticRegression(max_iter=1000))])
    pipe_img.fit(good, good["label"])
    table = good.copy()
    bad = {5: ("image", bad_files["missing"]), 11: ("image", bad_files["wrong_extension"]),
           17: ("image", None)}
    if MFCCStats is not None:
        bad[23] = ("audio", bad_files["zero_samples_wav"])
    for pos, (col, item) in sorted(bad.items()):
        row = table.iloc[[pos]].copy()
        row[col] = item
        row["id"] = 2000 + pos
        row["key"] = f"bad{pos}"
        table = pd.concat([table.iloc[:pos], row, table.iloc[pos:]], ignore_index=True)
    bad_ids = {2000 + pos for pos in bad}
    bad_ids_img = {2000 + pos for pos, (col, _) in bad.items() if col == "image"}
    model_path = save_model(pipe, d / "model.joblib")
    model_img = save_model(pipe_img, d / "model_img.joblib")
    csv = d / "table.csv"
    table.to_csv(csv, index=False)
    parquet = d / "table.parquet"
    table.to_parquet(parquet, index=False)
    folder = d / "folder"  # no id column; natural order part-2 < part-10
    folder.mkdir()
    no_id = table.drop(columns=["id"])
    for name, lo, hi in (("part-1", 0, 9), ("part-2", 9, 22), ("part-10", 22, len(table))):
        no_id.iloc[lo:hi].to_parquet(folder / f"{name}.parquet", index=False)
    return {"dir": d, "pipe": pipe, "model": model_path, "pipe_img": pipe_img,
            "model_img": model_img, "table": table, "bad_ids": bad_ids, "bad_ids_img": bad_ids_img,
            "csv": csv, "parquet": parquet, "folder": folder}


def _expected(data, proba=False, img=False):
    """In-memory predictions of the good rows, by id."""
    table, pipe = data["table"], data["pipe_img" if img else "pipe"]
    good = table[~table["id"].isin(data["bad_ids_img" if img else "bad_ids"])]
    exp = pd.DataFrame({"id": good["id"].to_numpy(), "prediction": pipe.predict(good)})
    if proba:
        for j, c in enumerate(pipe.classes_):
            exp[f"proba_{c}"] = pipe.predict_proba(good)[:, j]
    return exp.set_index("id")


def _check(out, data, key="id", proba=False, img=False):
    """The output folder holds every row once, in input order; bad rows have an error and no
    prediction; the others the in-memory model's (``img``: the image-only model's)."""
    res = pd.read_parquet(out)
    table = data["table"]
    ids = table[key] if key in ("id", "key") else pd.Series(range(len(table)))
    assert res[key].tolist() == ids.tolist()  # every row, once, in input order
    if key != "id":
        res["id"] = table["id"].to_numpy()
    bad = res["id"].isin(data["bad_ids_img" if img else "bad_ids"])
    assert res.loc[bad, "error"].notna().all() and res.loc[bad, "prediction"].isna().all()
    assert res.loc[~bad, "error"].isna().all()
    exp = _expected(data, proba, img)
    got = res.loc[~bad].set_index("id")
    assert got["prediction"].tolist() == exp["prediction"].tolist()
    if proba:
        cols = [c for c in exp.columns if c.startswith("proba_")]
        assert [c for c in res.columns if c.startswith("proba_")] == cols
        # float32 features
        np.testing.assert_allclose(got[cols].to_numpy(), exp[cols].to_numpy(), rtol=1e-5, atol=1e-6)
        assert res.loc[bad, cols].isna().all().all()
    return res


def test_csv_equals_in_memory_predict(data, tmp_path):
    out = tmp_path / "out"
    summary = score(data["model"], data["csv"], out, chunk_size=7, proba=True, progress=False)
    res = _check(out, data, proba=True)
    assert list(res.columns) == ["id", "prediction", "proba_blue", "proba_red", "error", "missing"]
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    assert parts == [f"part-{i:05d}.parquet" for i in range(6)]
    n_bad = len(data["bad_ids"])
    assert summary["rows"] == 40 and summary["failed"] == n_bad and summary["scored"] == 40 - n_bad
    assert summary["parts"] == 6 and summary["parts_resumed"] == 0 and summary["rows_per_s"] > 0
    assert len(summary["first_errors"]) == n_bad
    assert json.loads((out / "_job.json").read_text())["job"]["chunk_size"] == 7


def test_skops_model_file_scores_like_the_joblib_one(data, tmp_path):
    pytest.importorskip("skops")
    path = save_model(data["pipe"], tmp_path / "model.skops")
    assert main(["score", str(path), str(data["csv"]), str(tmp_path / "out"), "--proba", "-q"]) == 0
    _check(tmp_path / "out", data, proba=True)


def test_bad_rows_keep_their_place_and_cause(data, tmp_path):
    out = tmp_path / "out"
    score(data["model"], data["parquet"], out, chunk_size=10, progress=False)
    res = pd.read_parquet(out).set_index("id")
    assert "file not found" in res.loc[2005, "error"] and "ColorHistogram" in res.loc[2005, "error"]
    assert "not a decodable image" in res.loc[2011, "error"]
    assert "missing value" in res.loc[2017, "error"]
    if MFCCStats is not None:
        assert "MFCCStats" in res.loc[2023, "error"] and "0 samples" in res.loc[2023, "error"]


def test_parquet_folder_gets_row_numbers(data, tmp_path):
    out = tmp_path / "out"
    score(data["model"], data["folder"], out, chunk_size=8, proba=True, progress=False)
    res = _check(out, data, key="row", proba=True)
    assert list(res.columns)[0] == "row" and res["row"].dtype == np.int64


def test_id_columns_are_kept(data, tmp_path):
    out = tmp_path / "out"
    score(data["model"], data["parquet"], out, id_cols=["key", "id"], chunk_size=16, progress=False)
    res = _check(out, data, key="key")
    assert list(res.columns) == ["key", "id", "prediction", "error", "missing"]
    with pytest.raises(ScoringError, match="nope"):
        score(data["model"], data["parquet"], tmp_path / "o2", id_cols=["nope"], progress=False)


def test_in_memory_model_is_not_changed(data, tmp_path):
    pipe = data["pipe"]
    score(pipe, data["parquet"], tmp_path / "out", progress=False)
    _check(tmp_path / "out", data)
    assert pipe.named_steps["features"].named_transformers_["image"].on_error == "raise"


def test_cli_exit_codes_and_summary(data, tmp_path, capsys):
    args = ["score", str(data["model"]), str(data["csv"]), str(tmp_path / "out"), "--chunk-size",
            "9"]
    assert main(args + ["--max-error-rate", "0.5"]) == 0
    printed = capsys.readouterr()
    assert "40 rows" in printed.out and f"{len(data['bad_ids'])} failed" in printed.out
    assert "file not found" in printed.out  # first errors
    assert main(args + ["--max-error-rate", "0.01", "-q"]) == 2
    assert "--max-error-rate" in capsys.readouterr().err
    assert main(["score", str(tmp_path / "missing.joblib"), str(data["csv"]),
                 str(tmp_path / "o2")]) == 2
    assert "model file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    assert main(["score", str(data["model"]), str(broken), str(tmp_path / "o3"), "-q"]) == 2
    assert "cannot read input" in capsys.readouterr().err


def test_another_job_in_the_folder_needs_overwrite(data, tmp_path):
    out = tmp_path / "out"
    score(data["model"], data["parquet"], out, chunk_size=10, progress=False)
    again = score(data["model"], data["parquet"], out, chunk_size=10, progress=False)
    assert again["parts_resumed"] == 4 and again["rows_this_run"] == 0 and again["rows"] == 40
    with pytest.raises(ScoringError, match="chunk_size.*--overwrite"):
        score(data["model"], data["parquet"], out, chunk_size=20, progress=False)
    summary = score(data["model"], data["parquet"], out, chunk_size=20, overwrite=True,
                    progress=False)
    assert summary["parts"] == 2 and sorted(p.name for p in out.glob("part-*")) == [
        "part-00000.parquet", "part-00001.parquet"]
    _check(out, data)


def test_models_handling_missing_modalities_just_predict(data, tmp_path):
    fusion = pytest.importorskip("mmfeat.fusion")
    good = data["table"][~data["table"]["id"].isin(data["bad_ids"])]
    model = fusion.LateFusionClassifier(
        {"image": ("image", ColorHistogram(bins=(4, 4, 4)))}, cv=3).fit(good, good["label"])
    out = tmp_path / "out"
    summary = score(model, data["parquet"], out, chunk_size=16, progress=False, all_missing="prior")
    res = pd.read_parquet(out)
    assert res["error"].isna().all()
    # ... but the rows whose image was imputed say so, and why, and the summary counts them
    imputed = res["id"].isin(data["bad_ids_img"])
    assert res.loc[imputed, "missing"].str.contains("ColorHistogram").all()
    assert res.loc[~imputed, "missing"].isna().all()
    assert "file not found" in res.loc[res["id"] == 2005, "missing"].item()
    assert "missing value" in res.loc[res["id"] == 2017, "missing"].item()
    assert summary["imputed"] == len(data["bad_ids_img"])
    with pytest.warns(UserWarning, match="rows failed"):
        expected = model.predict(data["table"])
    assert res["prediction"].tolist() == expected.tolist()
    # predict and predict_proba both read the rows: each cause is still written once
    score(model, data["parquet"], tmp_path / "proba", chunk_size=16, proba=True, progress=False,
          all_missing="prior")
    pd.testing.assert_series_equal(pd.read_parquet(tmp_path / "proba")["missing"], res["missing"])


@pytest.mark.skipif(MFCCStats is None, reason="needs the audio extractors")
@pytest.mark.parametrize("proba", [False, True])
def test_a_row_with_no_modality_gets_no_prediction_unless_asked(data, tmp_path, proba):
    """Late fusion would answer such a row from the class prior: from nothing."""
    from mmfeat.fusion import LateFusionClassifier

    good = data["table"][~data["table"]["id"].isin(data["bad_ids"])]
    model = LateFusionClassifier({"image": ("image", ColorHistogram(bins=(4, 4, 4))),
                                  "audio": ("audio", MFCCStats(n_mfcc=8, stats=("mean",)))},
                                 cv=3).fit(good, good["label"])
    table = data["table"].copy()
    table.loc[table["id"] == 2005, "audio"] = None  # its image file is not there either
    table.to_parquet(tmp_path / "table.parquet")
    both = {}
    for choice in ("error", "prior"):
        score(model, tmp_path / "table.parquet", tmp_path / choice, chunk_size=16, proba=proba,
              progress=False, all_missing=choice)
        both[choice] = pd.read_parquet(tmp_path / choice).set_index("id")
    refused, prior = both["error"].loc[2005], both["prior"].loc[2005]
    assert refused["error"].startswith("no modality to predict from: ColorHistogram: ")
    assert "file not found" in refused["error"]
    assert refused["error"].endswith("MFCCStats: missing value")
    assert pd.isna(refused["prediction"]) and pd.isna(refused["missing"])
    assert prior["prediction"] in model.classes_ and pd.isna(prior["error"])
    assert prior["missing"] == refused["error"].removeprefix("no modality to predict from: ")
    # a row with one modality left is predicted from it under both choices
    for res in both.values():
        assert res.loc[2011, "prediction"] in model.classes_ and pd.isna(res.loc[2011, "error"])
        assert res.loc[2011, "missing"].count("ColorHistogram") == 1
    if proba:
        assert pd.isna(both["error"].loc[2005, "proba_blue"]) and prior["proba_blue"] > 0


def test_resume_after_kill_9(data, tmp_path):
    """Kill the scoring process once a part exists; the same command then finishes the job:
    every id exactly once, predictions equal to the in-memory model's."""
    helper = Path(__file__).parent  # tests/slowstep.py, importable by the scoring processes
    import slowstep

    good = data["table"][~data["table"]["id"].isin(data["bad_ids"])]
    pipe = Pipeline([("features", _features(audio=False)), ("sleep", slowstep.Sleep(0.1)),
                     ("clf", LogisticRegression(max_iter=1000))]).fit(good, good["label"])
    model = save_model(pipe, tmp_path / "slow.joblib")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmfeat.cli", "score", str(model), str(data["parquet"]), str(out),
           "--chunk-size", "2", "--proba"]
    proc = subprocess.Popen(cmd, env=_env(helper), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("part-*.parquet")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no part written in 90 s"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    finished = sorted(out.glob("part-*.parquet"))
    assert 1 <= len(finished) < 20
    for part in finished:  # whole parts only
        assert len(pd.read_parquet(part)) == 2
    rerun = subprocess.run(cmd, env=_env(helper), cwd=tmp_path, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "from an earlier run" in rerun.stdout
    assert not [p for p in out.iterdir() if p.name.startswith(".mmfeat-tmp-")]
    res = pd.read_parquet(out)
    assert res["id"].tolist() == data["table"]["id"].tolist()
    ok = ~res["id"].isin(data["bad_ids_img"])
    scorable = data["table"][ok.to_numpy()]
    assert res.loc[ok, "prediction"].tolist() == pipe.predict(scorable).tolist()
    np.testing.assert_allclose(res.loc[ok, ["proba_blue", "proba_red"]].to_numpy(),
                               pipe.predict_proba(scorable), rtol=1e-5, atol=1e-6)
    assert res.loc[~ok, "error"].notna().all()


def test_two_worker_processes_give_the_same_output(data, tmp_path):
    score(data["model_img"], data["csv"], tmp_path / "one", chunk_size=5, proba=True,
          progress=False)
    summary = score(data["model_img"], data["csv"], tmp_path / "two", chunk_size=5, proba=True,
                    workers=2, progress=False)
    assert summary["parts"] == 8 and summary["failed"] == 3
    two = _check(tmp_path / "two", data, proba=True, img=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "one"), two)


def test_dask_local_cluster_gives_the_same_output_and_resumes(data, tmp_path):
    pytest.importorskip("distributed")
    model = data["model_img"]
    local = tmp_path / "local"
    score(model, data["folder"], local, chunk_size=6, proba=True, progress=False)
    out = tmp_path / "dask"
    taken = socket.socket()  # a dashboard (or anything) on Dask's default port is no concern here
    try:
        taken.bind(("", 8787))
        taken.listen()
    except OSError:
        pass  # already taken
    with taken, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = score(model, data["folder"], out, chunk_size=6, proba=True, dask="local",
                        progress=False)
    assert not [w for w in caught if "8787" in str(w.message)]
    assert summary["rows"] == 40 and summary["failed"] == 3
    expect = _check(local, data, key="row", proba=True, img=True).drop(columns="id")
    got = pd.read_parquet(out).sort_values("row").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expect)
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == summary["parts"] >= 3
    with pytest.raises(ScoringError, match="layout"):  # a Dask job is resumed with Dask
        score(model, data["folder"], out, chunk_size=6, proba=True, progress=False)
    parts[1].unlink()
    again = score(model, data["folder"], out, chunk_size=6, proba=True, dask="local",
                  progress=False)
    assert again["parts_resumed"] == len(parts) - 1 and again["rows"] == 40
    got = pd.read_parquet(out).sort_values("row").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expect)


def test_gridsearch_dask_pipeline_runs(tmp_path):
    pytest.importorskip("distributed")
    script = ROOT / "pipelines" / "gridsearch_dask.py"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--data-dir",
                           str(tmp_path / "data")], env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best params" in proc.stdout


def _always_fails(X):
    raise RuntimeError("this step is broken")


def test_a_model_failing_on_every_row_fails_the_job(data, tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    good = data["table"][~data["table"]["id"].isin(data["bad_ids"])]
    pipe = Pipeline([("features", _features(audio=False)), ("clf", LogisticRegression())])
    pipe.fit(good, good["label"])
    broken = Pipeline([("features", pipe.steps[0][1]), ("boom", FunctionTransformer(_always_fails)),
                       ("clf", pipe.steps[1][1])])
    with pytest.raises(ScoringError, match="every row.*this step is broken"):
        score(broken, data["parquet"], tmp_path / "out", chunk_size=8, progress=False)


def test_regressors_score_without_proba(data, tmp_path):
    from sklearn.linear_model import Ridge

    good = data["table"][~data["table"]["id"].isin(data["bad_ids"])]
    target = (good["label"] == "red").astype(float) + good["id"] / 1e4
    reg = Pipeline([("features", _features(audio=False)), ("ridge", Ridge())]).fit(good, target)
    with pytest.raises(ScoringError, match="predict_proba"):
        score(reg, data["parquet"], tmp_path / "o1", proba=True, progress=False)
    score(reg, data["parquet"], tmp_path / "o2", chunk_size=16, progress=False)
    res = pd.read_parquet(tmp_path / "o2")
    assert res["prediction"].dtype == np.float64
    ok = ~res["id"].isin(data["bad_ids_img"])
    np.testing.assert_allclose(res.loc[ok, "prediction"], reg.predict(data["table"][ok.to_numpy()]),
                               rtol=1e-6)
