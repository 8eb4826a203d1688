"""Planning a scoring job: the model and input checked, the columns to read, the id types, and
the frozen :class:`Job` every engine runs; the :class:`Tracker` that counts its progress."""

from __future__ import annotations

import copy
import datetime as _dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..keys import file_digest
from ._common import (
    JOB_FORMAT,
    JOB_VERSION,
    N_FIRST_ERRORS,
    OUTPUT_NAMES,
    ScoringError,
    _exc_text,
    _fmt_id,
)
from ._input import _Input
from ._scorer import _Scorer


@dataclass(frozen=True)
class Job:
    """Everything an engine needs to score the chunks of one input into one output folder.

    ``scorer`` is the model made ready in this process (the local engine uses it); worker
    processes load the model from ``model_path`` instead.
    """

    out: Path
    scorer: _Scorer = field(repr=False, compare=False)
    model_path: str | None
    model_desc: dict
    digest: str
    proba: bool
    all_missing: str
    trusted: tuple
    trust_settings: bool
    chunk_size: int
    read_cols: list | None
    id_types: dict
    max_error_rate: float
    workers: int
    dask: object
    overwrite: bool
    progress: bool

    @property
    def id_cols(self) -> list:
        return list(self.id_types)

    def record(self, src: _Input) -> dict:
        """What ``_job.json`` holds to recognise this job on a rerun (resume) or refuse another."""
        if self.dask is not None:
            import dask

            layout = {"engine": "dask", "dask_version": dask.__version__}
        else:
            layout = {"engine": "chunks"}
        return {"format": JOB_FORMAT, "version": JOB_VERSION, "input": src.identity(),
                "model": self.digest, "chunk_size": self.chunk_size,
                "id_cols": self.id_cols or ["row"], "proba": self.proba,
                "all_missing": self.all_missing, "layout": layout}

    def info(self) -> dict:
        """What ``_job.json`` holds beside the record, for people."""
        return {"model": self.model_desc,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "options": {"workers": self.workers,
                            "dask": None if self.dask is None else str(self.dask),
                            "max_error_rate": self.max_error_rate}}


def check_arguments(chunk_size, workers, max_error_rate, dask):
    """The numeric options, checked and made plain: ``(chunk_size, workers, max_error_rate)``."""
    import numpy as np

    if (not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool)
            or chunk_size < 1):
        raise ScoringError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(workers, (int, np.integer)) or isinstance(workers, bool) or workers < 1:
        raise ScoringError(f"workers must be a positive integer, got {workers!r}")
    if not 0.0 <= float(max_error_rate) <= 1.0:
        raise ScoringError(f"max_error_rate must be between 0 and 1, got {max_error_rate!r}")
    if workers > 1 and dask is not None:
        raise ScoringError("choose --workers or --dask, not both (Dask has its own workers)")
    return int(chunk_size), int(workers), float(max_error_rate)


def plan(model, input, output, *, id_cols, chunk_size, proba, max_error_rate, workers, dask,
         overwrite, progress, trusted, all_missing="error", trust_settings=False) -> tuple:
    """Check everything that can be checked before scoring a row: ``(job, input)``."""
    chunk_size, workers, max_error_rate = check_arguments(chunk_size, workers, max_error_rate, dask)
    out = Path(output).expanduser().absolute()
    src = _Input(input)
    if out == src.path or out in src.path.parents:
        raise ScoringError(f"the output folder {out} must not be the input or contain it")
    model_obj, model_desc, digest, model_path = _resolve_model(model, trusted, trust_settings)
    scorer = _Scorer(model_obj, proba, all_missing)
    id_cols = src.id_cols = _resolve_id_cols(id_cols, src.columns)
    clash = [c for c in id_cols if c in OUTPUT_NAMES or c.startswith("proba_")]
    if clash:
        raise ScoringError(f"id column(s) {clash} clash with the output columns; rename them")
    read_cols, needed = _required_columns(scorer.model, src.columns)
    missing = sorted(needed - set(src.columns))
    if missing:
        raise ScoringError(f"the input lacks column(s) {missing} that the model needs; "
                           f"its columns are {src.columns[:20]}")
    if read_cols is not None:
        read_cols = list(dict.fromkeys([*id_cols, *read_cols]))
        src.find_path_columns(read_cols)
    job = Job(out=out, scorer=scorer, model_path=None if model_path is None else str(model_path),
              model_desc=model_desc, digest=digest, proba=bool(proba), all_missing=all_missing,
              trusted=tuple(trusted or ()), trust_settings=bool(trust_settings),
              chunk_size=chunk_size, read_cols=read_cols, id_types=src.id_types(id_cols),
              max_error_rate=max_error_rate, workers=workers, dask=dask, overwrite=overwrite,
              progress=progress)
    return job, src


class Tracker:
    """Counts rows, failures and first errors; drives the progress bar; stops early when the
    error rate can no longer end below the limit."""

    def __init__(self, total, total_exact, max_error_rate, progress, resumed):
        from tqdm.auto import tqdm

        self.total, self.total_exact, self.max_error_rate = total, total_exact, max_error_rate
        self.stats = {s["part"]: s for s in resumed}
        self.new_rows = 0
        initial = sum(s["rows"] for s in resumed)
        self.bar = tqdm(total=total, initial=initial, desc="scoring", unit=" rows",
                        disable=not progress, file=sys.stderr, mininterval=0.5, smoothing=0.05,
                        dynamic_ncols=True)

    def set_total(self, total: int):
        """The exact row count, once an engine knows it (Dask counts its partitions)."""
        self.total, self.total_exact = total, True
        self.bar.total = total
        self.bar.refresh()

    def add(self, stats):
        self.stats[stats["part"]] = stats
        self.new_rows += stats["rows"]
        self.bar.update(stats["rows"])
        failed = sum(s["failed"] for s in self.stats.values())
        if self.total_exact and self.total and failed > self.max_error_rate * self.total:
            raise ScoringError(
                f"{failed} of {self.total} rows have failed already, more than "
                f"--max-error-rate {self.max_error_rate:g} allows; stopped. First errors: "
                + "; ".join(f"{_fmt_id(e['id'])}: {e['error']}" for e in self.first_errors())
            )

    def first_errors(self):
        out = []
        for part in sorted(self.stats):
            out.extend(self.stats[part]["errors"])
            if len(out) >= N_FIRST_ERRORS:
                break
        return out[:N_FIRST_ERRORS]

    def close(self):
        self.bar.close()


def _resolve_model(model, trusted=None, trust_settings=False):
    """(model object, description for the job file, digest, path or None)."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser().absolute()
        if path.exists() and not path.is_file():
            what = "a folder" if path.is_dir() else "a FIFO, device or socket"
            raise ScoringError(f"the model file {path} is not a regular file ({what})")
        if not path.is_file():
            raise ScoringError(f"model file not found: {path}")
        from ..modelfile import load_model

        try:
            obj = load_model(path, trusted=trusted, trust_settings=trust_settings)
        except Exception as exc:
            raise ScoringError(f"cannot load the model from {path}: {_exc_text(exc)}") from exc
        digest = "blake2b:" + file_digest(path)
        return obj, {"path": str(path), "digest": digest}, digest, path
    import joblib

    try:
        digest = "joblib:" + joblib.hash(model)
    except Exception as exc:
        raise ScoringError(f"cannot fingerprint the model object: {_exc_text(exc)}") from exc
    return copy.deepcopy(model), {"object": type(model).__name__, "digest": digest}, digest, None


def _required_columns(model, available):
    """(columns to read, columns that must be there) from what the model was fitted on."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    names = getattr(first, "feature_names_in_", None)
    if names is None:
        return None, set()
    names = [str(c) for c in names]
    needed = set()
    if isinstance(first, ColumnTransformer):
        try:
            fitted = dict(first.named_transformers_)
            for name, indices in first._transformer_to_input_indices.items():
                if fitted.get(name, "drop") != "drop":
                    needed.update(names[i] for i in indices)
        except Exception:
            needed = set(names)
    return [c for c in names if c in available], needed


def _resolve_id_cols(id_cols, columns):
    if id_cols is None:
        return ["id"] if "id" in columns else []
    if isinstance(id_cols, str):
        id_cols = [id_cols]
    id_cols = list(dict.fromkeys(id_cols))
    missing = [c for c in id_cols if c not in columns]
    if missing:
        raise ScoringError(f"id column(s) {missing} not in the input; "
                           f"its columns are {columns[:20]}")
    return id_cols
