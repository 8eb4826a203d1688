"""The three ways a job's chunks get scored: in this process, in local worker processes, or on
a Dask cluster. Each takes ``(job, source, tracker)`` and hands every finished part's stats to
the tracker; parts already in the tracker (an earlier run's) are skipped.

Local workers run in a bounded window of :class:`concurrent.futures.ProcessPoolExecutor`
futures (at most two chunks per worker in memory) rather than ``joblib.Parallel``: its workers
need an initializer (load the model once, watch the parent) that joblib does not offer, and
loky's reusable executor would keep them, each holding a model, alive after the job.
"""

from __future__ import annotations

import json
import os
import time
import warnings

import numpy as np

from ..config import config_context, get_config, shared_cache_url
from ..manifest import resolve_paths
from ..optional import import_optional
from ._common import ScoringError, _exc_text
from ._output import _existing_parts
from ._scorer import _Scorer

_MEMO: dict = {}  # (model path, digest, proba, all_missing) -> _Scorer; each worker loads once


def _scorer_for(model_path: str, digest: str, proba: bool, trusted=(), all_missing="error",
                trust_settings=False) -> _Scorer:
    key = (model_path, digest, proba, all_missing)
    scorer = _MEMO.get(key)
    if scorer is None:
        from ..modelfile import load_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the parent process has shown them already
            model = load_model(model_path, trusted=list(trusted) or None,
                               trust_settings=trust_settings)
        _MEMO.clear()
        scorer = _MEMO[key] = _Scorer(model, proba, all_missing)
    return scorer


def _exit_with_parent(parent_pid: int, poll: float = 0.5):
    """End this worker process as soon as the job's process is gone (``kill -9`` included):
    a pool worker otherwise keeps scoring queued chunks and writing parts for nobody."""
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(poll)
        os._exit(3)

    threading.Thread(target=watch, name="mmfeat-parent-watch", daemon=True).start()



def _job_config() -> dict:
    """The settings every worker of the job uses: the cache directory (a relative one is each
    worker's own, under its working directory), how files are keyed, the shared tier."""
    return {**get_config(), "shared_cache": shared_cache_url()}


def _pool_init(model_path, digest, proba, trusted, all_missing, trust_settings, parent_pid, config):
    from ..config import set_config

    _exit_with_parent(parent_pid)
    # mmfeat's settings are per thread, not in the environment: the job's travel with it
    set_config(cache_dir=config["cache_dir"] or False, file_keys=config["file_keys"],
               shared_cache=config.get("shared_cache") or False)
    _scorer_for(model_path, digest, proba, trusted, all_missing, trust_settings)


def _pool_task(job, df, index):
    scorer = _scorer_for(job.model_path, job.digest, job.proba, job.trusted, job.all_missing,
                         job.trust_settings)
    return scorer.score_part(df, index, index * job.chunk_size, job.out, job.id_types)


def run_local(job, src, tracker):
    for index, df in src.chunks(job.chunk_size, job.read_cols):
        if index not in tracker.stats:
            tracker.add(job.scorer.score_part(df, index, index * job.chunk_size, job.out,
                                              job.id_types))


def run_pool(job, src, tracker):
    import dataclasses
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads or torch
    pool = ProcessPoolExecutor(max_workers=job.workers, mp_context=ctx, initializer=_pool_init,
                               initargs=(job.model_path, job.digest, job.proba, job.trusted,
                                         job.all_missing, job.trust_settings, os.getpid(),
                                         _job_config()))
    light = dataclasses.replace(job, scorer=None)  # workers load the model from its file
    done, pending = set(tracker.stats), set()

    def collect(return_when):
        nonlocal pending
        finished, pending = wait(pending, return_when=return_when)
        for fut in finished:
            tracker.add(fut.result())

    try:
        for index, df in src.chunks(job.chunk_size, job.read_cols):
            if index in done:
                continue
            while len(pending) >= 2 * job.workers:  # bounded memory: at most 2 chunks per worker
                collect(FIRST_COMPLETED)
            pending.add(pool.submit(_pool_task, light, df, index))
        while pending:
            collect(FIRST_COMPLETED)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_dask(job, src, tracker):
    client, to_close = _dask_client(job.dask)
    try:
        _run_dask(client, job, src, tracker)
    finally:
        for thing in to_close:
            thing.close()


def _dask_client(dask):
    """(client, things to close) for ``"local"``, an address, or a ``distributed.Client``."""
    try:
        distributed = import_optional("distributed", who="--dask", extra="dask")
    except ImportError as exc:
        raise ScoringError(str(exc)) from None
    Client, LocalCluster = distributed.Client, distributed.LocalCluster
    if not isinstance(dask, str):
        return dask, []
    if dask == "local":
        import logging

        # The scheduler serves HTTP (health, metrics) even without a dashboard, on 8787 unless
        # told otherwise, and warns when that port is taken: a free loopback port instead.
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
        return client, [client, cluster]
    try:
        client = Client(dask, timeout="20s")
    except Exception as exc:
        raise ScoringError(f"cannot connect to the Dask scheduler at {dask}: "
                           f"{_exc_text(exc)}") from exc
    return client, [client]


def _dask_frame(src, chunk_size, read_cols):
    import dask.dataframe as dd

    blocksize = max(1024, int(src.bytes_per_row * chunk_size))
    if src.kind == "csv":
        return dd.read_csv(str(src.path), sep=src.sep, usecols=read_cols, blocksize=blocksize,
                           dtype={c: "string" for c in src.id_cols})
    # All columns: a column projection lets Dask fuse files into fewer partitions at compute
    # time, which would break the partition -> part mapping that resuming relies on.
    ddf = dd.read_parquet([str(f) for f in src.files], blocksize=blocksize)
    # A row group is Dask's smallest unit of reading: split big ones so that the work spreads
    # over the workers in pieces of about chunk_size rows (deterministic, so resumable).
    target = -(-src.total // chunk_size) if src.total else 1
    if target > ddf.npartitions:
        ddf = ddf.repartition(npartitions=target)
    return ddf



def _run_dask(client, job, src, tracker):
    import dask
    import pandas as pd
    from distributed import as_completed

    ddf = _dask_frame(src, job.chunk_size, job.read_cols)
    offsets_all = None
    if not job.id_cols:  # row numbers: the length of every partition, one quick pass
        lengths = np.asarray(ddf.map_partitions(len).compute(), dtype=np.int64)
        offsets_all = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
        tracker.set_total(int(lengths.sum()))
    done = _existing_parts(job.out)
    todo = [i for i in range(ddf.npartitions) if i not in done]
    if not todo:
        return
    spec = dask.delayed({
        "todo": todo, "offsets": None if offsets_all is None else [offsets_all[i] for i in todo],
        "model_path": job.model_path, "digest": job.digest, "proba": job.proba,
        "trusted": job.trusted, "all_missing": job.all_missing,
        "trust_settings": job.trust_settings, "out": str(job.out), "id_types": job.id_types,
        "columns": job.read_cols, "base_dir": str(src.base_dir), "path_cols": src.path_cols,
        "config": _job_config(),
    }, pure=True)
    meta = pd.DataFrame({"part": pd.Series([], dtype="int64"), "rows": pd.Series([], dtype="int64"),
                         "failed": pd.Series([], dtype="int64"),
                         "imputed": pd.Series([], dtype="int64"),
                         "errors": pd.Series([], dtype="object")})
    result = ddf.partitions[todo].map_partitions(_dask_partition, spec, meta=meta)
    futures = client.compute(result.to_delayed())
    try:
        for _, frame in as_completed(futures, with_results=True):
            for r in frame.to_dict("records"):
                tracker.add({"part": int(r["part"]), "rows": int(r["rows"]),
                             "failed": int(r["failed"]), "imputed": int(r["imputed"]),
                             "errors": json.loads(r["errors"])})
    except BaseException:
        client.cancel(futures)
        raise


def _dask_partition(df, spec, partition_info=None):
    import pandas as pd

    if partition_info is None:
        raise RuntimeError("mmfeat scoring needs Dask's partition_info")
    k = partition_info["number"]
    index = spec["todo"][k]
    offset = spec["offsets"][k] if spec["offsets"] is not None else 0
    if spec["columns"] is not None:
        df = df[[c for c in spec["columns"] if c in df.columns]]
    df = resolve_paths(df, spec["base_dir"], spec["path_cols"])
    config = spec["config"]
    with config_context(cache_dir=config["cache_dir"] or False, file_keys=config["file_keys"],
                        shared_cache=config.get("shared_cache") or False):
        scorer = _scorer_for(spec["model_path"], spec["digest"], spec["proba"], spec["trusted"],
                             spec["all_missing"], spec["trust_settings"])
        stats = scorer.score_part(df, index, offset, spec["out"], spec["id_types"])
    return pd.DataFrame({"part": [index], "rows": [stats["rows"]], "failed": [stats["failed"]],
                         "imputed": [stats["imputed"]],
                         "errors": [json.dumps(stats["errors"], default=str)]})
