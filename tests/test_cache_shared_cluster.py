"""A cluster computes each item once: a Dask scheduler with 2 worker processes, each in a
directory of its own (its local cache, standing in for a machine's disk), one Redis server as
the shared tier. `mmfeat score --dask` and a GridSearchCV through joblib's Dask backend are
counted item by item (a log line per computation), not timed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import redis_server

from mmfeat.cache import FeatureCache

REDIS = redis_server.REDIS
server, url = redis_server.server, redis_server.url  # the session's Redis server
pytest.importorskip("distributed")
pytest.importorskip("redis")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")]

TESTS = Path(__file__).parent
ROOT = TESTS.parent
TEXTS = [f"item {i % 24} " + "word " * (i % 24 % 5) for i in range(60)]  # 24 distinct, repeated


def _env(**extra):
    path = os.pathsep.join([str(ROOT), str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", **extra}


def _count(log) -> int:
    return sum(1 for _ in open(log)) if os.path.exists(log) else 0


@pytest.fixture
def cluster(tmp_path, url):
    """A scheduler and two worker processes, each in its own directory (MMFEAT_CACHE_DIR=cache,
    relative: each worker's own local store), all with the shared tier."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=0, processes=True, dashboard_address=None)
    workers = []
    for name in ("machine1", "machine2"):
        (tmp_path / name).mkdir()
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
             "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name],
            cwd=tmp_path / name, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=_env(MMFEAT_CACHE_DIR="cache", MMFEAT_SHARED_CACHE=url)))
    client = Client(cluster)
    client.wait_for_workers(2, timeout=60)
    try:
        yield cluster.scheduler_address, client, workers
    finally:
        client.close()
        for worker in workers:
            worker.kill()
            worker.wait()
        cluster.close()


def _model(tmp_path, log, pause=0.0):
    """A saved model whose text extractor logs every item it computes (and the table it
    scores); ``pause``: seconds each chunk waits after its features, so a job can be hit."""
    from counting import CountingText
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from slowstep import Sleep

    from mmfeat.modelfile import save_model

    frame = pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS})
    features = ColumnTransformer([("text", CountingText(cache=False), "text")])
    pipe = Pipeline([("features", features), ("pause", Sleep(pause)),
                     ("clf", LogisticRegression(max_iter=500))])
    pipe.fit(frame, [i % 3 for i in range(len(TEXTS))])
    expected = pipe.predict(frame)
    # scored with the job's cache settings, logging every item it computes
    pipe.named_steps["features"].named_transformers_["text"].set_params(cache=None,
                                                                        log_path=str(log))
    frame.to_csv(tmp_path / "table.csv", index=False)
    return save_model(pipe, tmp_path / "model.joblib"), expected


def test_score_on_a_cluster_computes_each_item_once_then_never_again(tmp_path, cluster, url):
    address = cluster[0]
    log = tmp_path / "computed.log"
    model, expected = _model(tmp_path, log, pause=0.3)  # both workers get chunks
    for out in ("out1", "out2"):
        proc = subprocess.run(
            [sys.executable, "-m", "mmfeat", "score", str(model), str(tmp_path / "table.csv"),
             str(tmp_path / out), "--chunk-size", "6", "--dask", address, "--shared-cache", url,
             "-q"], cwd=tmp_path, env=_env(MMFEAT_CACHE_DIR="cache"), capture_output=True,
            text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        scored = pd.read_parquet(tmp_path / out).sort_values("id")
        assert scored["error"].isna().all() and list(scored["prediction"]) == list(expected)
        assert _count(log) == len(set(TEXTS))  # once across the cluster; the re-run: nothing
    local = [FeatureCache(tmp_path / m / "cache", shared=False).stats()["entries"]
             for m in ("machine1", "machine2")]
    assert max(local) > 0  # each machine's own local tier, not one store for both


GRID = textwrap.dedent("""
    import sys
    import joblib
    import pandas as pd
    from distributed import Client
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from counting import CountingText

    address, log = sys.argv[1], sys.argv[2]
    texts = {texts!r}
    X, y = pd.DataFrame({{"text": texts}}), [i % 3 for i in range(len(texts))]
    # n_jobs=1: joblib's Dask backend is active inside the tasks too, and an extractor that
    # spread its batches over it would wait for the very workers running it
    features = ColumnTransformer([("text", CountingText(log_path=log, n_jobs=1), "text")])
    # scaled: unscaled counts (lengths, sums of code points) keep lbfgs at max_iter every fit
    pipe = Pipeline([("features", features), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=500))])
    search = GridSearchCV(pipe, {{"clf__C": [0.1, 1.0, 10.0]}}, cv=3, refit=False)
    with Client(address), joblib.parallel_backend("dask"):
        search.fit(X, y)
    print(search.best_score_)
""")


def test_grid_search_on_a_cluster_computes_each_item_once(tmp_path, cluster):
    address = cluster[0]
    log = tmp_path / "computed.log"
    code = GRID.format(texts=TEXTS)
    scores = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code, address, str(log)], cwd=tmp_path,
                              env=_env(MMFEAT_CACHE_DIR="off"), capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        scores.append(float(proc.stdout.split()[-1]))
        # 3 candidates x 3 folds x (fit + score) on two machines: each item once, then never
        assert _count(log) == len(set(TEXTS))
    assert scores[0] == scores[1]
    for machine in ("machine1", "machine2"):  # both machines fitted, each with its local tier
        assert FeatureCache(tmp_path / machine / "cache", shared=False).stats()["entries"] > 0


def test_a_killed_worker_or_a_stopped_server_loses_no_row(tmp_path, cluster, server):
    address, client, workers = cluster
    url, stop, start = server
    log = tmp_path / "computed.log"
    model, expected = _model(tmp_path, log, pause=0.5)
    env = _env(MMFEAT_CACHE_DIR="cache")
    job = subprocess.Popen(
        [sys.executable, "-m", "mmfeat", "score", str(model), str(tmp_path / "table.csv"),
         str(tmp_path / "out"), "--chunk-size", "6", "--dask", address, "--shared-cache", url,
         "-q"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while _count(log) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers[0].kill()  # a machine lost mid-job: its tasks go to the other
        stop()  # and the shared tier goes away: the job finishes on the local tiers
        _, stderr = job.communicate(timeout=300)
    finally:
        job.kill()
        start()
    assert job.returncode == 0, stderr[-2000:]
    scored = pd.read_parquet(tmp_path / "out").sort_values("id")
    assert list(scored["id"]) == list(range(len(TEXTS))) and scored["error"].isna().all()
    assert list(scored["prediction"]) == list(expected)  # and no wrong vector served
