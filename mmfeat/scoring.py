"""Streaming batch scoring: a fitted model over a CSV/Parquet table of any size, in chunks,
resumable, on one process, several processes, or a Dask cluster.

Output: a folder of Parquet parts ``part-00000.parquet`` ... with the input's id column(s) (or
the row number as ``row``), ``prediction``, optionally ``proba_<class>``, ``error`` (null when
the row scored) and ``missing`` (the modalities the model imputed for the row, and why), all
parts with one schema. A ``_job.json`` records what the folder holds so that rerunning the same job
after a crash only does the parts that are missing.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import re
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .manifest import path_columns, resolve_paths

__all__ = ["ScoringError", "cli_score", "score"]

JOB_FILE = "_job.json"
MODEL_COPY = "_model.joblib"
JOB_FORMAT = "mmfeat-score-job"
_PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")
_N_FIRST_ERRORS = 5
_OUTPUT_NAMES = ("row", "prediction", "error", "missing")
_TMP_PREFIX = ".mmfeat-tmp-"  # only files named so are ever removed from an output folder
LOCK_FILE = ".mmfeat-lock"


class ScoringError(RuntimeError):
    """The scoring job itself failed (bad model, unreadable input, a different job in the output
    folder, too many failed rows). Failures of single rows never raise: they land in ``error``.

    Attributes
    ----------
    summary : dict or None
        The job summary when the job ran to the end (e.g. the error rate was too high).
    """

    def __init__(self, message, summary=None):
        super().__init__(message)
        self.summary = summary


class _Systematic(Exception):
    """Every row of a chunk fails the same way: a problem of the job, not of the rows."""


# --------------------------------------------------------------------------- small helpers


def _natural_key(path) -> list:
    """Sort key putting ``part-2`` before ``part-10`` (the order Dask reads files in)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _exc_text(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cause(error) -> str:
    """The text of a collected ExtractionError, without its chunk-relative row number."""
    cause = getattr(error, "cause", None)
    if cause is None:
        return str(error)
    who = getattr(error, "extractor", "")
    what = "" if cause == "missing value" else f"{error.item}: "
    return f"{who + ': ' if who else ''}{what}{cause}"


def _tmp_path(final: Path) -> Path:
    return final.with_name(f"{_TMP_PREFIX}{final.name}.{os.getpid()}")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- the input


class _Input:
    """A CSV file, a Parquet file, or a folder of Parquet files, read in bounded chunks."""

    def __init__(self, path):
        self.path = Path(path).expanduser().absolute()
        self.id_cols, self.path_cols = [], []
        # Relative paths in a table mean "relative to the table's folder" (mmfeat.read_manifest).
        self.base_dir = self.path if self.path.is_dir() else self.path.parent
        p = self.path
        if not p.exists():
            raise ScoringError(f"input not found: {p}")
        try:
            if p.is_dir():
                self.kind = "parquet"
                files = [
                    f for f in p.rglob("*")
                    if f.is_file() and f.suffix in (".parquet", ".pq")
                    and not any(part.startswith(("_", ".")) for part in f.relative_to(p).parts)
                ]
                self.files = sorted(files, key=_natural_key)
                if not self.files:
                    raise ScoringError(f"input folder {p} holds no Parquet files (*.parquet, *.pq)")
            elif p.suffix in (".parquet", ".pq"):
                self.kind, self.files = "parquet", [p]
            else:
                self.kind, self.files = "csv", [p]
            self._inspect()
        except ScoringError:
            raise
        except Exception as exc:
            raise ScoringError(f"cannot read input {p}: {_exc_text(exc)}") from exc

    def _inspect(self):
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            total, names, nbytes = 0, None, 0
            for f in self.files:
                meta = pq.ParquetFile(f).metadata
                total += meta.num_rows
                nbytes += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
                if names is None:
                    names = [n for n in pq.read_schema(f).names if not n.startswith("__index_level_")]
            self.columns, self.total, self.total_exact = names, total, True
            self.bytes_per_row = nbytes / total if total else 100.0
        else:
            import pandas as pd

            self.sep = "\t" if self.path.suffix in (".tsv", ".tab") else ","
            self.columns = list(pd.read_csv(self.path, nrows=0, sep=self.sep).columns)
            self.total, self.total_exact = self._count_lines(), False
            size = self.path.stat().st_size
            self.bytes_per_row = size / self.total if self.total else 100.0
        self.path_cols = path_columns(self._head(), self.base_dir)

    def _head(self, n=1000):
        import pandas as pd

        if self.kind == "csv":
            return pd.read_csv(self.path, sep=self.sep, nrows=n)
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(self.files[0]).iter_batches(batch_size=n):
            return batch.to_pandas()
        return pd.DataFrame(columns=self.columns)

    def id_types(self, id_cols) -> dict:
        """The Arrow type of each id column, the same for every part. A Parquet file's ids
        keep the type of its schema. A CSV's id column is read whole, as text, once: it is
        an integer column when every value is a plain integer (nulls allowed), else text as
        written (``"00001"`` stays ``"00001"``)."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.kind != "csv":
            schema = pq.read_schema(self.files[0])
            return {c: schema.field(c).type for c in id_cols}
        if not id_cols:
            return {}
        plain = dict.fromkeys(id_cols, True)
        reader = pd.read_csv(self.path, sep=self.sep, usecols=id_cols, dtype="string",
                             chunksize=200_000)
        with reader:
            for frame in reader:
                for c in id_cols:
                    if plain[c]:
                        values = frame[c].dropna()
                        plain[c] = bool(values.str.fullmatch(r"[+-]?(0|[1-9][0-9]{0,17})").all())
        return {c: pa.int64() if plain[c] else pa.string() for c in id_cols}

    def prepare(self, frame):
        """A chunk as the model sees it: relative paths joined to the input's folder."""
        return resolve_paths(frame, self.base_dir, self.path_cols)

    def _count_lines(self):
        """Data rows of a CSV, counted as lines (exact unless quoted fields hold newlines)."""
        if self.path.suffix in (".gz", ".bz2", ".xz", ".zst", ".zip"):
            return None
        n, last = 0, b"\n"
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                n += block.count(b"\n")
                last = block[-1:]
        n += last != b"\n"
        return max(n - 1, 0)

    def identity(self) -> dict:
        files = []
        for f in self.files:
            st = f.stat()
            files.append([str(f.relative_to(self.path)) if f != self.path else f.name,
                          st.st_size, st.st_mtime_ns])
        return {"path": str(self.path), "kind": self.kind, "files": files}

    def chunks(self, chunk_size: int, columns=None):
        """Yield ``(index, DataFrame)`` of ``chunk_size`` rows (the last may be shorter)."""
        index = 0
        try:
            if self.kind == "csv":
                import pandas as pd

                reader = pd.read_csv(self.path, sep=self.sep, chunksize=chunk_size, usecols=columns,
                                     dtype={c: "string" for c in self.id_cols})
                with reader:
                    for frame in reader:
                        yield index, self.prepare(frame)
                        index += 1
            else:
                for index, frame in self._parquet_chunks(chunk_size, columns):
                    yield index, self.prepare(frame)
        except ScoringError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            raise ScoringError(
                f"cannot read input {self.path} after {index} chunks of {chunk_size} rows: "
                f"{_exc_text(exc)}"
            ) from exc

    def _parquet_chunks(self, chunk_size, columns):
        import pandas as pd
        import pyarrow.parquet as pq

        pending, buffered, index = [], 0, 0

        def emit(n):
            nonlocal pending, buffered
            take, rest, got = [], [], 0
            for batch in pending:
                if got >= n:
                    rest.append(batch)
                elif got + batch.num_rows <= n:
                    take.append(batch)
                    got += batch.num_rows
                else:
                    k = n - got
                    take.append(batch.slice(0, k))
                    rest.append(batch.slice(k))
                    got = n
            pending, buffered = rest, buffered - got
            frames = [b.to_pandas() for b in take]
            return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

        for f in self.files:
            pf = pq.ParquetFile(f)
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=chunk_size, columns=cols):
                pending.append(batch)
                buffered += batch.num_rows
                while buffered >= chunk_size:
                    yield index, emit(chunk_size)
                    index += 1
        if buffered:
            yield index, emit(buffered)


# --------------------------------------------------------------------------- the model


def _finite_rows(X) -> np.ndarray:
    """True for rows whose (numeric) features are all finite."""
    n = X.shape[0]
    try:
        import scipy.sparse as sp

        if sp.issparse(X):
            X = X.tocsr()
            bad = ~np.isfinite(X.data)
            rows = np.repeat(np.arange(n), np.diff(X.indptr))
            return np.bincount(rows[bad], minlength=n) == 0
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        pass
    if hasattr(X, "select_dtypes"):  # a DataFrame from set_output(transform="pandas")
        X = X.select_dtypes("number").to_numpy(dtype=np.float64, na_value=np.nan)
    X = np.asarray(X)
    if X.dtype.kind not in "fc":
        return np.ones(n, bool)
    return np.isfinite(X.reshape(n, -1)).all(axis=1)


def _take(X, mask):
    return X.iloc[mask] if hasattr(X, "iloc") else X[mask]


class _Scorer:
    """A fitted model made ready for scoring: every extractor set to ``on_error="nan"``."""

    def __init__(self, model, proba=False):
        from sklearn.exceptions import NotFittedError
        from sklearn.pipeline import Pipeline
        from sklearn.utils.validation import check_is_fitted

        from .base import Extractor
        from .modelfile import find_extractors

        if not hasattr(model, "predict"):
            raise ScoringError(f"the model ({type(model).__name__}) has no predict method")
        try:
            check_is_fitted(model)
        except NotFittedError as exc:
            raise ScoringError(f"the model is not fitted: {exc}") from None
        except TypeError:
            pass
        if proba and not hasattr(model, "predict_proba"):
            raise ScoringError(f"--proba: the model ({type(model).__name__}) has no predict_proba")
        # Failed rows must become NaN rows, not a failed chunk: through the deep parameter names
        # (the estimators as given) and on every fitted clone (ColumnTransformer.transformers_).
        try:
            deep = {k: v for k, v in model.get_params(deep=True).items() if isinstance(v, Extractor)}
        except Exception:
            deep = {}
        if deep:
            model.set_params(**{f"{k}__on_error": "nan" for k in deep})
        for extractor in find_extractors(model).values():
            params = extractor.get_params(deep=False)
            extractor.set_params(**{k: v for k, v in (("on_error", "nan"), ("verbose", False)) if k in params})

        self.model, self.proba = model, bool(proba)
        self.is_pipeline = isinstance(model, Pipeline) and len(model.steps) > 1
        if self.is_pipeline:
            self.steps = [s for _, s in model.steps[:-1] if s is not None and s != "passthrough"]
            self.final = model.steps[-1][1]
        else:
            self.steps, self.final = [], model
        try:
            from sklearn.utils import get_tags

            self.allow_nan = bool(get_tags(self.final).input_tags.allow_nan)
        except Exception:
            self.allow_nan = False
        try:
            classes = getattr(model, "classes_", None)
        except Exception:
            classes = None
        self.classes = None if classes is None else np.asarray(classes)
        if self.proba and self.classes is None:
            raise ScoringError(f"--proba: the model ({type(model).__name__}) has no classes_")
        self.pred_type = self._arrow_type(self.classes)

    @staticmethod
    def _arrow_type(classes):
        import pyarrow as pa

        if classes is None:
            return None
        if classes.dtype.kind in "biuf":
            return pa.from_numpy_dtype(classes.dtype)
        if all(isinstance(c, str) for c in classes.tolist()):
            return pa.string()
        return None

    def proba_columns(self) -> list:
        return [f"proba_{c}" for c in self.classes.tolist()] if self.proba else []

    def schema(self, id_types: dict):
        """The one schema of every part of a job."""
        import pyarrow as pa

        ids = list(id_types.items()) or [("row", pa.int64())]
        pred = self.pred_type or (pa.float64() if self.classes is None else pa.string())
        return pa.schema([*ids, ("prediction", pred),
                          *[(c, pa.float64()) for c in self.proba_columns()],
                          ("error", pa.string()), ("missing", pa.string())])

    # -------------------------------------------------------------- scoring one frame

    def score_frame(self, df, imputed=None):
        """Score a DataFrame: ``(rows, predictions, probabilities, {row: error})``, where
        ``rows`` are the positions that scored; every other position has an error. Rows that
        scored although an item of theirs failed or was missing (a model that imputes) get
        their causes in ``imputed`` ``{row: [cause, ...]}``."""
        from .errors import ExtractionWarning

        n = len(df)
        imputed = {} if imputed is None else imputed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtractionWarning)
            errors: dict = {}
            try:
                rows, pred, proba = self._block(df, np.arange(n), errors, imputed)
                return rows, pred, proba, errors
            except Exception as exc:
                if n <= 1:
                    return np.arange(0), None, None, {0: _exc_text(exc)} if n else {}
                first = _exc_text(exc)
            # One row spoils the whole block: score row by row so only the bad ones fail.
            parts, errors, raised = [], {}, []
            for i in range(n):
                try:
                    parts.append(self._block(df.iloc[[i]], np.array([i]), errors, imputed))
                except Exception as exc:
                    errors[i] = _exc_text(exc)
                    raised.append(errors[i])
            parts = [p for p in parts if len(p[0])]
            if not parts and len(raised) >= 2 and all(e == first for e in raised):
                raise _Systematic(first)  # no row scores, all for the same reason: the job's fault
            if not parts:
                return np.arange(0), None, None, errors
            rows = np.concatenate([p[0] for p in parts])
            pred = np.concatenate([p[1] for p in parts])
            proba = np.concatenate([p[2] for p in parts]) if self.proba else None
            return rows, pred, proba, errors

    def _block(self, df, rows, errors, imputed):
        from .errors import collect_errors

        if not self.is_pipeline:  # the model handles failed or missing modalities itself
            with collect_errors() as found:
                result = self._predict(self.model, df)
            _add_causes(imputed, found, rows)
            return rows, *result
        X, causes = df, {}
        for step in self.steps:
            with collect_errors() as found:
                X = step.transform(X)
            _add_causes(causes, found, rows)
            if causes:
                drop = ~_finite_rows(X) & np.isin(rows, list(causes))
                if drop.any():
                    for r in rows[drop]:
                        errors[int(r)] = "; ".join(causes[int(r)])
                    X, rows = _take(X, ~drop), rows[~drop]
                    if not len(rows):
                        return rows, None, None
        if not self.allow_nan:
            bad = ~_finite_rows(X)
            if bad.any():
                for r in rows[bad]:
                    errors[int(r)] = "; ".join(causes.get(int(r), [])) or (
                        "features are not finite (NaN or inf) and the final estimator "
                        f"{type(self.final).__name__} does not accept missing values"
                    )
                X, rows = _take(X, ~bad), rows[~bad]
                if not len(rows):
                    return rows, None, None
        for r in rows.tolist():  # scored: whatever failed was imputed by the model
            if r in causes:
                imputed[r] = causes[r]
        return rows, *self._predict(self.final, X)

    def _predict(self, estimator, X):
        pred = np.asarray(estimator.predict(X))
        if pred.ndim != 1:
            raise ScoringError(f"the model predicts an array of shape {pred.shape}; "
                               "only one prediction per row is supported")
        proba = np.asarray(estimator.predict_proba(X), dtype=np.float64) if self.proba else None
        return pred, proba

    # -------------------------------------------------------------- one part

    def score_part(self, df, index, offset, out_dir, id_types):
        """Score one chunk and write ``part-<index>.parquet`` atomically; return its stats."""
        import pyarrow as pa

        df = df.reset_index(drop=True)
        n = len(df)
        id_cols = list(id_types)
        imputed: dict = {}
        try:
            rows, pred, proba, errors = self.score_frame(df, imputed) if n else (
                np.arange(0), None, None, {})
        except _Systematic as exc:
            raise ScoringError(
                f"the model fails on every row of part {index} (rows {offset}-{offset + n - 1}) "
                f"with the same error, so the job is stopped: {exc}"
            ) from None
        failed = np.ones(n, bool)
        failed[rows] = False
        for i in np.flatnonzero(failed):
            errors.setdefault(int(i), "not scored")
        columns = {}
        if id_cols:
            for col in id_cols:
                columns[col] = pa.Array.from_pandas(df[col]).cast(id_types[col])
        else:
            columns["row"] = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        values = [None] * n
        if len(rows) == n > 0:  # the usual chunk: every row scored, in order
            values = pred.tolist()
        elif len(rows):
            for r, v in zip(rows.tolist(), pred.tolist()):
                values[r] = v
        pred_type = self.pred_type
        if pred_type is None and self.classes is None:
            pred_type = pa.float64() if pred is None or pred.dtype.kind in "biuf" else None
        columns["prediction"] = pa.array(values, type=pred_type)
        if self.proba:
            full = np.zeros((n, len(self.classes)))
            if len(rows):
                full[rows] = proba
            for j, name in enumerate(self.proba_columns()):
                columns[name] = pa.array(full[:, j], mask=failed, type=pa.float64())
        columns["error"] = (pa.array([errors.get(i) for i in range(n)], type=pa.string()) if errors
                            else pa.nulls(n, type=pa.string()))
        columns["missing"] = (
            pa.array(["; ".join(imputed[i]) if i in imputed else None for i in range(n)],
                     type=pa.string()) if imputed else pa.nulls(n, type=pa.string()))
        schema = self.schema(id_types)
        table = pa.table({f.name: _as_type(columns[f.name], f.type) for f in schema}, schema=schema)
        _write_part(table, Path(out_dir), index)
        first = []
        for i in sorted(errors)[:_N_FIRST_ERRORS]:
            ident = {c: _plain(df[c].iat[i]) for c in id_cols} if id_cols else {"row": offset + i}
            first.append({"id": ident, "error": errors[i]})
        return {"part": index, "rows": n, "failed": int(failed.sum()), "imputed": len(imputed),
                "errors": first}


def _as_type(array, type_):
    import pyarrow as pa

    if array.type == type_:
        return array
    if pa.types.is_string(type_) and not pa.types.is_string(array.type):
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], type=type_)
    return array.cast(type_)


def _add_causes(causes: dict, found, rows):
    """File the collected extraction errors under the rows (positions in ``rows``) they hit."""
    for error in found:
        r = getattr(error, "row", None)
        if isinstance(r, (int, np.integer)) and 0 <= r < len(rows):
            causes.setdefault(int(rows[r]), []).append(_cause(error))


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _write_part(table, out_dir: Path, index: int) -> None:
    import pyarrow.parquet as pq

    final = out_dir / part_name(index)
    tmp = _tmp_path(final)
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------- per-process models

_MEMO: dict = {}  # (model path, digest, proba) -> _Scorer; each worker process loads once


def _scorer_for(model_path: str, digest: str, proba: bool, trusted=()) -> _Scorer:
    key = (model_path, digest, proba)
    scorer = _MEMO.get(key)
    if scorer is None:
        from .modelfile import load_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the parent process has shown them already
            model = load_model(model_path, trusted=list(trusted) or None)
        _MEMO.clear()
        scorer = _MEMO[key] = _Scorer(model, proba)
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


def _pool_init(model_path, digest, proba, trusted, parent_pid):
    _exit_with_parent(parent_pid)
    _scorer_for(model_path, digest, proba, trusted)


def _pool_task(model_path, digest, proba, trusted, df, index, offset, out_dir, id_types):
    scorer = _scorer_for(model_path, digest, proba, trusted)
    return scorer.score_part(df, index, offset, out_dir, id_types)


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
    scorer = _scorer_for(spec["model_path"], spec["digest"], spec["proba"], spec["trusted"])
    stats = scorer.score_part(df, index, offset, spec["out"], spec["id_types"])
    return pd.DataFrame({"part": [index], "rows": [stats["rows"]], "failed": [stats["failed"]],
                         "imputed": [stats["imputed"]],
                         "errors": [json.dumps(stats["errors"], default=str)]})


# --------------------------------------------------------------------------- the job


def _resolve_model(model, trusted=None):
    """(model object, description for the job file, digest, path or None)."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model).expanduser().absolute()
        if not path.is_file():
            raise ScoringError(f"model file not found: {path}")
        from .modelfile import load_model

        try:
            obj = load_model(path, trusted=trusted)
        except Exception as exc:
            raise ScoringError(f"cannot load the model from {path}: {_exc_text(exc)}") from exc
        digest = _file_digest(path)
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
        raise ScoringError(f"id column(s) {missing} not in the input; its columns are {columns[:20]}")
    return id_cols


def _existing_parts(out: Path) -> dict:
    found = {}
    for f in out.iterdir():
        m = _PART_RE.match(f.name)
        if m:
            found[int(m.group(1))] = f
    return found


def _open_output(out: Path, job: dict, info: dict, overwrite: bool) -> dict:
    """Create or check the output folder; return the finished parts {index: path}."""
    if out.exists() and not out.is_dir():
        raise ScoringError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():  # leftovers of a run that was killed while writing
        if f.name.startswith(_TMP_PREFIX):
            f.unlink(missing_ok=True)
    job_file = out / JOB_FILE
    parts = _existing_parts(out)
    job = json.loads(json.dumps(job, default=str))
    if not overwrite:
        if job_file.exists():
            try:
                old = json.loads(job_file.read_text()).get("job")
            except (OSError, ValueError) as exc:
                raise ScoringError(f"cannot read {job_file}: {exc}; use --overwrite to start over") from None
            if old == job:
                return parts
            differ = sorted(k for k in set(old or {}) | set(job) if (old or {}).get(k) != job.get(k))
            raise ScoringError(
                f"the output folder {out} holds another scoring job (it differs in: "
                f"{', '.join(differ)}). Use --overwrite to replace it, or choose another folder."
            )
        if parts:
            raise ScoringError(
                f"the output folder {out} holds part files but no {JOB_FILE}; use --overwrite "
                "to replace them, or choose another folder."
            )
    for f in parts.values():
        f.unlink(missing_ok=True)
    for name in (JOB_FILE, MODEL_COPY, "_summary.json"):
        (out / name).unlink(missing_ok=True)
    _write_json_atomic(job_file, {"job": job, **info})
    return {}


def _part_stats(path: Path, id_cols) -> dict:
    """Stats of a part finished by an earlier run."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["error", "missing"])
    err = table.column("error")
    failed = len(err) - err.null_count
    imputed = len(err) - table.column("missing").null_count
    first = []
    if failed:
        table = pq.read_table(path, columns=[*(id_cols or ["row"]), "error"])
        bad = table.filter(pc.is_valid(table.column("error"))).slice(0, _N_FIRST_ERRORS).to_pylist()
        first = [{"id": {k: v for k, v in r.items() if k != "error"}, "error": r["error"]} for r in bad]
    return {"part": int(_PART_RE.match(path.name).group(1)), "rows": len(err), "failed": failed,
            "imputed": imputed, "errors": first}


# --------------------------------------------------------------------------- runners


class _Tracker:
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
            if len(out) >= _N_FIRST_ERRORS:
                break
        return out[:_N_FIRST_ERRORS]

    def close(self):
        self.bar.close()


def _run_local(scorer, src, out, chunk_size, read_cols, id_types, done, tracker):
    for index, df in src.chunks(chunk_size, read_cols):
        if index in done:
            continue
        tracker.add(scorer.score_part(df, index, index * chunk_size, out, id_types))


def _run_pool(model_path, digest, proba, trusted, workers, src, out, chunk_size, read_cols,
              id_types, done, tracker):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding threads or torch
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_pool_init,
                               initargs=(model_path, digest, proba, trusted, os.getpid()))
    pending = set()
    try:
        for index, df in src.chunks(chunk_size, read_cols):
            if index in done:
                continue
            while len(pending) >= 2 * workers:  # bounded memory: at most 2 chunks per worker
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    tracker.add(fut.result())
            pending.add(pool.submit(_pool_task, model_path, digest, proba, trusted, df, index,
                                    index * chunk_size, str(out), id_types))
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                tracker.add(fut.result())
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _dask_client(dask):
    """(client, things to close) for ``"local"``, an address, or a ``distributed.Client``."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ScoringError("--dask needs dask.distributed: pip install 'mmfeat[dask]'") from exc
    if not isinstance(dask, str):
        return dask, []
    if dask == "local":
        import logging

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        return client, [client, cluster]
    try:
        client = Client(dask, timeout="20s")
    except Exception as exc:
        raise ScoringError(f"cannot connect to the Dask scheduler at {dask}: {_exc_text(exc)}") from exc
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


def _run_dask(client, model_path, digest, proba, trusted, src, out, chunk_size, read_cols,
              id_types, tracker, need_offsets):
    import dask
    import pandas as pd
    from distributed import as_completed

    ddf = _dask_frame(src, chunk_size, read_cols)
    nparts = ddf.npartitions
    offsets_all = None
    if need_offsets:  # row numbers: the length of every partition, one quick pass
        lengths = np.asarray(ddf.map_partitions(len).compute(), dtype=np.int64)
        offsets_all = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
        tracker.set_total(int(lengths.sum()))
    done = _existing_parts(out)
    todo = [i for i in range(nparts) if i not in done]
    if not todo:
        return
    spec = dask.delayed({
        "todo": todo, "offsets": None if offsets_all is None else [offsets_all[i] for i in todo],
        "model_path": str(model_path), "digest": digest, "proba": proba, "trusted": trusted,
        "out": str(out), "id_types": id_types, "columns": read_cols,
        "base_dir": str(src.base_dir), "path_cols": src.path_cols,
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


# --------------------------------------------------------------------------- the API


def score(model, input, output, *, id_cols=None, chunk_size=10_000, proba=False,
          max_error_rate=1.0, workers=1, dask=None, overwrite=False, progress=True,
          trusted=None) -> dict:
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
    if not isinstance(chunk_size, (int, np.integer)) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ScoringError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ScoringError(f"workers must be a positive integer, got {workers!r}")
    if not 0.0 <= float(max_error_rate) <= 1.0:
        raise ScoringError(f"max_error_rate must be between 0 and 1, got {max_error_rate!r}")
    chunk_size, workers, max_error_rate = int(chunk_size), int(workers), float(max_error_rate)
    if workers > 1 and dask is not None:
        raise ScoringError("choose --workers or --dask, not both (Dask has its own workers)")

    out = Path(output).expanduser().absolute()
    src = _Input(input)
    if out == src.path or out in src.path.parents:
        raise ScoringError(f"the output folder {out} must not be the input or contain it")
    model_obj, model_desc, digest, model_path = _resolve_model(model, trusted)
    trusted = list(trusted or ())
    scorer = _Scorer(model_obj, proba)
    id_cols = src.id_cols = _resolve_id_cols(id_cols, src.columns)
    id_types = src.id_types(id_cols)
    clash = [c for c in id_cols if c in _OUTPUT_NAMES or c.startswith("proba_")]
    if clash:
        raise ScoringError(f"id column(s) {clash} clash with the output columns; rename them")
    read_cols, needed = _required_columns(scorer.model, src.columns)
    missing = sorted(needed - set(src.columns))
    if missing:
        raise ScoringError(f"the input lacks column(s) {missing} that the model needs; "
                           f"its columns are {src.columns[:20]}")
    if read_cols is not None:
        read_cols = list(dict.fromkeys([*id_cols, *read_cols]))

    if dask is not None:
        import dask as _dask_mod

        layout = {"engine": "dask", "dask_version": _dask_mod.__version__}
    else:
        layout = {"engine": "chunks"}
    job = {"format": JOB_FORMAT, "version": 2, "input": src.identity(), "model": digest,
           "chunk_size": chunk_size, "id_cols": id_cols or ["row"], "proba": bool(proba),
           "layout": layout}
    info = {"model": model_desc, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "options": {"workers": workers, "dask": None if dask is None else str(dask),
                        "max_error_rate": max_error_rate}}
    lock = _lock_output(out)
    try:
        summary = _run_job(scorer, src, out, job, info, overwrite, dask, workers, model_obj,
                           model_path, digest, proba, trusted, chunk_size, read_cols, id_types,
                           max_error_rate, progress)
    finally:
        lock.close()
    summary["seconds"] = round(time.perf_counter() - start, 3)
    summary["rows_per_s"] = summary["rows_this_run"] / summary["seconds"] if summary["seconds"] else 0.0
    _write_json_atomic(out / "_summary.json", summary)
    if progress:
        print(format_summary(summary))
    rows, failed = summary["rows"], summary["failed"]
    if rows and failed == rows:
        raise ScoringError(
            f"every one of the {rows} rows failed. The parts are in {out}; first errors: "
            + "; ".join(f"{_fmt_id(e['id'])}: {e['error']}" for e in summary["first_errors"]),
            summary,
        )
    if failed > max_error_rate * rows:
        raise ScoringError(
            f"{failed} of {rows} rows failed ({summary['error_rate']:.1%}), more than "
            f"--max-error-rate {max_error_rate:g} allows. The parts are in {out}; first errors: "
            + "; ".join(f"{_fmt_id(e['id'])}: {e['error']}" for e in summary["first_errors"]),
            summary,
        )
    return summary


def _lock_output(out: Path):
    """Hold an exclusive lock on the output folder for the whole job: a second job started on
    the same folder is refused at once instead of racing the first one's files. The lock goes
    with the process, even after ``kill -9``."""
    import fcntl

    if out.exists() and not out.is_dir():
        raise ScoringError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ScoringError(f"another mmfeat score job is running in {out}; wait for it to end, "
                           "or choose another folder") from None
    return handle


def _run_job(scorer, src, out, job, info, overwrite, dask, workers, model_obj, model_path,
             digest, proba, trusted, chunk_size, read_cols, id_types, max_error_rate, progress):
    id_cols = list(id_types)
    done = _open_output(out, job, info, overwrite)
    resumed = [_part_stats(p, id_cols) for _, p in sorted(done.items())]

    if (workers > 1 or dask is not None) and model_path is None:
        from .modelfile import save_model

        model_path = save_model(model_obj, out / MODEL_COPY)  # workers load it from here
    tracker = _Tracker(src.total, src.total_exact, max_error_rate, progress, resumed)
    try:
        if dask is not None:
            client, to_close = _dask_client(dask)
            try:
                _run_dask(client, model_path, digest, bool(proba), trusted, src, out, chunk_size,
                          read_cols, id_types, tracker, need_offsets=not id_cols)
            finally:
                for thing in to_close:
                    thing.close()
        elif workers > 1:
            _run_pool(str(model_path), digest, bool(proba), trusted, workers, src, out,
                      chunk_size, read_cols, id_types, set(done), tracker)
        else:
            _run_local(scorer, src, out, chunk_size, read_cols, id_types, set(done), tracker)
        if not tracker.stats:  # an input of 0 rows: one valid, empty part with the schema
            import pandas as pd

            empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in src.columns})
            tracker.add(scorer.score_part(empty, 0, 0, out, id_types))
    finally:
        tracker.close()

    rows = sum(s["rows"] for s in tracker.stats.values())
    failed = sum(s["failed"] for s in tracker.stats.values())
    return {
        "output": str(out), "rows": rows, "scored": rows - failed, "failed": failed,
        "imputed": sum(s.get("imputed", 0) for s in tracker.stats.values()),
        "error_rate": failed / rows if rows else 0.0, "parts": len(tracker.stats),
        "parts_resumed": len(resumed), "rows_this_run": tracker.new_rows,
        "first_errors": tracker.first_errors(),
    }


def _fmt_id(ident: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in ident.items())


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
              trusted=getattr(args, "trusted", None) or None)
    except ScoringError as exc:
        print(f"mmfeat score: error: {exc}", file=sys.stderr)
        return 2
    return 0
