"""Reading late fusion's input: the table, each modality's column selection (with
``ColumnTransformer`` semantics), the passthrough columns, and the check that the columns a
fitted model reads are there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.utils.validation import validate_data

from .._sklearn_compat import _safe_indexing
from .blocks import as_feature_matrix


def as_table(X):
    """A DataFrame as it is; anything else as a 2-D ndarray."""
    if hasattr(X, "columns"):
        return X
    if sp.issparse(X):
        raise TypeError("Sparse input is not supported: pass a DataFrame (or a dense 2-D array) "
                        "with one column per modality.")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D input (a DataFrame with one column per modality), got an array of "
            f"shape {X.shape}. Reshape your data with X.reshape(-1, 1) if it is one column."
        )
    return X


def select(X, column):
    """A modality's column(s) of ``X``, with ``ColumnTransformer`` semantics (a name gives a
    Series)."""
    if callable(column):
        column = column(X)
    return _safe_indexing(X, column, axis=1)


def column_names(column):
    """The column names a selection reads, or None when it selects by position, mask or callable."""
    if isinstance(column, str):
        return [column]
    if isinstance(column, (list, tuple, np.ndarray, pd.Index)) and len(column) \
            and all(isinstance(c, str) for c in column):
        return list(column)
    return None


def show_columns(columns, limit=20):
    columns = [str(c) for c in columns]
    more = f" ... ({len(columns) - limit} more)" if len(columns) > limit else ""
    return f"{columns[:limit]}{more}"


def as_numbers(values, what):
    """``values`` (a column or table the user says is numeric) as a float matrix; the error names
    the first column that is not numeric."""
    try:
        return as_feature_matrix(values, accept_sparse=True)
    except ValueError as exc:
        if hasattr(values, "columns"):
            for name in values.columns:
                try:
                    as_feature_matrix(values[[name]])
                except ValueError as column_exc:
                    raise ValueError(
                        f"{what}: column {name!r} is not numeric ({column_exc})") from None
        elif hasattr(values, "name"):
            raise ValueError(f"{what}: column {values.name!r} is not numeric ({exc})") from None
        raise ValueError(f"{what}: {exc}") from None


def passthrough_columns(passthrough):
    """The ``passthrough`` parameter as a list of columns (empty for False or None)."""
    if passthrough is None or passthrough is False:
        return []
    return [passthrough] if isinstance(passthrough, str) else list(passthrough)


def check_input(estimator, X, selections, reset):
    """Check ``X`` and record (``reset=True``) or compare its columns, as ``ColumnTransformer``
    does: when every selection names its columns and ``X`` is a DataFrame, only those columns
    must be there, in any order, beside any others (an id, the label); a selection by position,
    mask or callable needs the columns of ``fit`` in the same order.

    ``selections`` is ``[(what, column)]``, ``what`` naming the selection in errors.
    """
    X = as_table(X)
    if reset:
        X = validate_data(estimator, X, skip_check_array=True)
        estimator._by_name = hasattr(X, "columns") and all(
            column_names(column) is not None for _, column in selections)
    # Models saved before columns were read by name check every column, as they did.
    elif not (getattr(estimator, "_by_name", False) and hasattr(X, "columns")):
        if getattr(estimator, "_by_name", False):
            used = [c for _, column in selections for c in (column_names(column) or [])]
            raise ValueError(
                f"{type(estimator).__name__} was fitted on a DataFrame and reads its columns by "
                f"name; got a {type(X).__name__}: pass a DataFrame with the columns "
                f"{show_columns(used)}.")
        X = validate_data(estimator, X, skip_check_array=True, reset=False)
    for what, column in selections:
        names = column_names(column)
        if names is None:
            continue
        if not hasattr(X, "columns"):
            raise ValueError(f"{what} reads column(s) {names} by name, which needs a "
                             f"DataFrame; got a {type(X).__name__}.")
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise ValueError(f"{what} reads column(s) {missing}, which the input does not "
                             f"have; its columns are {show_columns(X.columns)}.")
    if X.shape[0] < 1:
        raise ValueError(f"Found 0 samples (shape={X.shape}), while at least 1 is required.")
    return X
