"""The row scorer: a fitted model made ready for scoring (every extractor on ``on_error="nan"``),
scoring one chunk so that a bad row costs only itself, and writing it as one Parquet part."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..introspect import set_on_error
from ._common import N_FIRST_ERRORS, ScoringError, _exc_text, _Systematic
from ._output import _write_part


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


def _cause(error) -> str:
    """The text of a collected ExtractionError, without its chunk-relative row number."""
    cause = getattr(error, "cause", None)
    if cause is None:
        return str(error)
    who = getattr(error, "extractor", "")
    what = "" if cause == "missing value" else f"{error.item}: "
    return f"{who + ': ' if who else ''}{what}{cause}"


def _modality_count(model):
    """How many modalities a row of ``model`` can be predicted from: late fusion's fitted
    modalities, or the blocks of the column transformer an early-fusion pipeline starts with;
    None for other models."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    estimators = getattr(model, "estimators_", None)
    if isinstance(estimators, dict) and hasattr(model, "modalities"):
        return len(estimators)
    if isinstance(model, Pipeline) and isinstance(model.steps[0][1], ColumnTransformer):
        blocks = getattr(model.steps[0][1], "transformers_", [])
        kept = [step for _, step, _ in blocks if not (isinstance(step, str) and step == "drop")]
        return len(kept) or None
    return None


class _Scorer:
    """A fitted model made ready for scoring: every extractor set to ``on_error="nan"``.

    ``all_missing``: a row whose every modality is missing or failed, which a model that
    imputes (late fusion, early fusion with ``handle_missing``) would predict from nothing (the
    training prior or mean), gets no prediction and its causes in ``error`` ("error"), or that
    prediction and its causes in ``missing`` ("prior").
    """

    def __init__(self, model, proba=False, all_missing="error"):
        from sklearn.exceptions import NotFittedError
        from sklearn.pipeline import Pipeline
        from sklearn.utils.validation import check_is_fitted

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
        # Failed rows must become NaN rows, not a failed chunk.
        set_on_error(model, "nan", verbose=False)

        if all_missing not in ("error", "prior"):
            raise ScoringError(f"all_missing must be 'error' or 'prior', got {all_missing!r}")
        self.model, self.proba, self.all_missing = model, bool(proba), all_missing
        self.n_modalities = _modality_count(model)
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
        from ..errors import ExtractionWarning

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
        from ..errors import collect_errors

        if not self.is_pipeline:  # the model handles failed or missing modalities itself
            with collect_errors() as found:  # predict_proba reads the rows again: not collected
                pred = self._predict(self.model, df)
            _add_causes(imputed, found, rows)
            keep = self._keep_rows_with_data(rows, imputed, errors)
            if not keep.all():
                df, rows, pred = _take(df, keep), rows[keep], pred[keep]
                if not len(rows):
                    return rows, None, None
            return rows, pred, self._proba(self.model, df)
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
        keep = self._keep_rows_with_data(rows, imputed, errors)
        if not keep.all():
            X, rows = _take(X, keep), rows[keep]
            if not len(rows):
                return rows, None, None
        return rows, self._predict(self.final, X), self._proba(self.final, X)

    def _keep_rows_with_data(self, rows, imputed, errors):
        """Which of ``rows`` keep their prediction: under ``all_missing="error"``, not those
        with a cause for every modality (their causes move from ``imputed`` to ``errors``)."""
        keep = np.ones(len(rows), bool)
        if self.all_missing == "prior" or not self.n_modalities:
            return keep
        for i, r in enumerate(rows.tolist()):
            if len(imputed.get(r, ())) >= self.n_modalities:
                errors[r] = "no modality to predict from: " + "; ".join(imputed.pop(r))
                keep[i] = False
        return keep

    def _predict(self, estimator, X):
        pred = np.asarray(estimator.predict(X))
        if pred.ndim != 1:
            raise ScoringError(f"the model predicts an array of shape {pred.shape}; "
                               "only one prediction per row is supported")
        return pred

    def _proba(self, estimator, X):
        return np.asarray(estimator.predict_proba(X), dtype=np.float64) if self.proba else None

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
        for i in sorted(errors)[:N_FIRST_ERRORS]:
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
