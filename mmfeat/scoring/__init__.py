"""Streaming batch scoring: a fitted model over a CSV/Parquet table of any size, in chunks,
resumable, on one process, several processes, or a Dask cluster.

Output: a folder of Parquet parts ``part-00000.parquet`` ... with the input's id column(s) (or
the row number as ``row``), ``prediction``, optionally ``proba_<class>``, ``error`` (null when
the row scored) and ``missing`` (the modalities the model imputed for the row, and why), all
parts with one schema. A ``_job.json`` records what the folder holds so that rerunning the same
job after a crash only does the parts that are missing.

The package, by concern: ``_input`` (reading chunks), ``_scorer`` (scoring one chunk, writing
one part), ``_output`` (the folder: parts, job record, lock), ``_job`` (checks and the frozen
``Job``), ``_engines`` (local, worker processes, Dask), and this module (the API and the CLI).
"""

from __future__ import annotations

import dataclasses
import sys
import time

from ..errors import UntrustedTypesError
from ._common import MODEL_COPY, ScoringError, _fmt_id
from ._engines import run_dask, run_local, run_pool
from ._job import Tracker, plan
from ._output import _lock_output, _open_output, _part_stats, _write_json_atomic

__all__ = ["ScoringError", "cli_score", "format_summary", "score"]


def score(model, input, output, *, id_cols=None, chunk_size=10_000, proba=False,
          max_error_rate=1.0, workers=1, dask=None, overwrite=False, progress=True,
          trusted=None, all_missing="error", trust_model_settings=False) -> dict:
    """Score a table of any size with a fitted model, in chunks, resumably.

    Parameters
    ----------
    model : str, path-like or estimator
        A model file (:func:`mmfeat.save_model` or a joblib dump) or a fitted estimator.
        Every mmfeat extractor inside is switched to ``on_error="nan"`` (on a copy) so that a bad
        item costs its row only.
    input : str or path-like
        A CSV file (``.tsv`` for tabs), a Parquet file, or a folder of Parquet files (read in
        natural file-name order; names starting with ``_`` or ``.`` are skipped). Relative file
        paths in it are read from its folder (as :func:`mmfeat.read_manifest` does).
    output : str or path-like
        Folder of Parquet parts ``part-00000.parquet``... plus ``_job.json``.
    id_cols : str or list of str, optional
        Input columns copied to the output. Default: ``id`` when the input has it, else the
        row number (0-based, over the whole input) as ``row``. A CSV's ids are copied as the
        text they are (``"00001"`` stays so); a Parquet file's keep their type, nulls included.
    chunk_size : int, default=10_000
        Rows per chunk and per part: bounds memory whatever the input size.
    proba : bool, default=False
        Add ``proba_<class>`` columns (``predict_proba``).
    max_error_rate : float, default=1.0
        Fail (``ScoringError``) when more than this fraction of the rows failed.
    workers : int, default=1
        Local processes, each loading the model once.
    dask : str or distributed.Client, optional
        ``"local"`` (a 2-worker ``LocalCluster``), a scheduler address, or a client: score the
        partitions of a Dask DataFrame on the cluster (each worker loads the model once).
        Input, output and model file must be reachable from the workers under the same paths.
        The parts then follow Dask's partitions, so a job started with Dask resumes with Dask.
    overwrite : bool, default=False
        Start over when ``output`` holds another job (otherwise that is an error).
    progress : bool, default=True
        A progress bar (rows/s, ETA) on stderr and a summary on stdout at the end.
    trusted : list of str, optional
        For ``.skops`` model files: further type names the file may hold
        (see :func:`mmfeat.load_model`).
    all_missing : {"error", "prior"}, default="error"
        A row whose every modality is missing or failed, that a model which imputes (late
        fusion, early fusion with ``handle_missing=True``) would predict from nothing (the
        training class prior or mean): "error" gives it no prediction and
        ``error = "no modality to predict from: <causes>"``; "prior" keeps that prediction, with
        the causes in ``missing``.
    trust_model_settings : bool, default=False
        Keep a model file's extractor settings as they are. By default they are held to this
        job's limits (``max_pixels``, ``timeout``, ``batch_size``, ``n_jobs``; see
        :func:`mmfeat.load_model`), with a warning naming each one replaced.

    Returns
    -------
    dict
        ``output, rows, scored, failed, imputed, error_rate, parts, parts_resumed,
        rows_this_run, seconds, rows_per_s, first_errors``.

    Raises
    ------
    ScoringError
        When the job itself fails (also when every row failed, or another job is running in
        ``output``); single rows never raise (see the ``error`` column).

    Notes
    -----
    Resuming: each part is written to a temporary file and renamed, so a part exists whole or
    not at all. Rerunning the same job (same input files, model, chunk size, id columns,
    ``proba`` and engine) in the same folder skips the parts that exist: after a crash every
    input row ends up in exactly one part. The feature cache makes recomputing the rows of the
    unfinished chunks cheap.
    """
    start = time.perf_counter()
    job, src = plan(model, input, output, id_cols=id_cols, chunk_size=chunk_size, proba=proba,
                    max_error_rate=max_error_rate, workers=workers, dask=dask,
                    overwrite=overwrite, progress=progress, trusted=trusted,
                    all_missing=all_missing, trust_settings=trust_model_settings)
    lock = _lock_output(job.out)
    try:
        summary = _run(job, src)
    finally:
        lock.close()
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["rows_per_s"] = (summary["rows_this_run"] / summary["seconds"]
                             if summary["seconds"] else 0.0)
    _write_json_atomic(job.out / "_summary.json", summary)
    if progress:
        print(format_summary(summary))
    _check_failures(summary, job)
    return summary


def _run(job, src) -> dict:
    """Open the output folder (resuming what an earlier run finished), score the rest with the
    job's engine, and return the summary counts."""
    done = _open_output(job.out, job.record(src), job.info(), job.overwrite)
    resumed = [_part_stats(p, job.id_cols) for _, p in sorted(done.items())]
    if (job.workers > 1 or job.dask is not None) and job.model_path is None:
        from ..modelfile import save_model

        # Workers load the model from a file: an in-memory model is saved in the folder.
        copy = save_model(job.scorer.model, job.out / MODEL_COPY)
        job = dataclasses.replace(job, model_path=str(copy))
    tracker = Tracker(src.total, src.total_exact, job.max_error_rate, job.progress, resumed)
    try:
        engine = run_dask if job.dask is not None else run_pool if job.workers > 1 else run_local
        engine(job, src, tracker)
        if not tracker.stats:  # an input of 0 rows: one valid, empty part with the schema
            import pandas as pd

            empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in src.columns})
            tracker.add(job.scorer.score_part(empty, 0, 0, job.out, job.id_types))
    finally:
        tracker.close()
    rows = sum(s["rows"] for s in tracker.stats.values())
    failed = sum(s["failed"] for s in tracker.stats.values())
    return {
        "output": str(job.out), "rows": rows, "scored": rows - failed, "failed": failed,
        "imputed": sum(s.get("imputed", 0) for s in tracker.stats.values()),
        "error_rate": failed / rows if rows else 0.0, "parts": len(tracker.stats),
        "parts_resumed": len(resumed), "rows_this_run": tracker.new_rows,
        "first_errors": tracker.first_errors(),
    }


def _check_failures(summary, job):
    """A job in which every row failed, or more than ``max_error_rate`` did, is a failed job."""
    rows, failed = summary["rows"], summary["failed"]
    first = "; ".join(f"{_fmt_id(e['id'])}: {e['error']}" for e in summary["first_errors"])
    if rows and failed == rows:
        raise ScoringError(f"every one of the {rows} rows failed. The parts are in {job.out}; "
                           f"first errors: {first}", summary)
    if failed > job.max_error_rate * rows:
        raise ScoringError(
            f"{failed} of {rows} rows failed ({summary['error_rate']:.1%}), more than "
            f"--max-error-rate {job.max_error_rate:g} allows. The parts are in {job.out}; "
            f"first errors: {first}", summary)


def format_summary(summary: dict) -> str:
    """The summary printed at the end of a job."""
    lines = [
        f"{summary['rows']} rows: {summary['scored']} scored, {summary['failed']} failed "
        f"({summary['error_rate']:.1%}), {summary.get('imputed', 0)} scored with a modality "
        f"imputed; {summary['parts']} parts "
        f"({summary['parts_resumed']} from an earlier run) in {summary['output']}",
        f"this run: {summary['rows_this_run']} rows in {summary['seconds']:.1f} s "
        f"({summary['rows_per_s']:.0f} rows/s)",
    ]
    if summary["first_errors"]:
        lines.append("first errors:")
        lines.extend(f"  {_fmt_id(e['id'])}: {e['error']}" for e in summary["first_errors"])
    return "\n".join(lines)


def cli_score(args) -> int:
    """``mmfeat score MODEL INPUT OUTPUT``: exit 0 when the job ran (even with failed rows under
    ``--max-error-rate``), 2 when the job itself failed."""
    try:
        score(args.model, args.input, args.output, id_cols=args.id_col, chunk_size=args.chunk_size,
              proba=args.proba, max_error_rate=args.max_error_rate, workers=args.workers,
              dask=args.dask, overwrite=args.overwrite, progress=not getattr(args, "quiet", False),
              trusted=getattr(args, "trusted", None) or None,
              all_missing=getattr(args, "all_missing", "error"),
              trust_model_settings=getattr(args, "trust_model_settings", False))
    except ScoringError as exc:
        cause = exc.__cause__
        if isinstance(cause, UntrustedTypesError):  # say how to trust them here, not from Python
            trust = " ".join(f"--trusted {name}" for name in cause.types)
            exc = f"cannot load the model: {UntrustedTypesError(cause.path, cause.types, trust)}"
        print(f"mmfeat score: error: {exc}", file=sys.stderr)
        return 2
    return 0
