"""Reading manifests: a CSV, TSV or Parquet table with one row per sample, whose relative file
paths mean "relative to the manifest's folder" (the way ``mmfeat demo`` and most data sets
write them), not relative to wherever the reading process happens to run.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["path_columns", "read_manifest", "resolve_paths", "table_kind"]

_PARQUET = (".parquet", ".pq")
_TSV = (".tsv", ".tab")
_SAMPLE = 20  # values looked at per column to decide whether it holds paths


def table_kind(path) -> str:
    """``"parquet"``, ``"tsv"`` or ``"csv"``, from the file name."""
    suffix = Path(path).suffix.lower()
    return "parquet" if suffix in _PARQUET else "tsv" if suffix in _TSV else "csv"


def _is_relative_path(value) -> bool:
    return (isinstance(value, str) and value != "" and "://" not in value
            and not os.path.isabs(value))


def path_columns(df, base_dir) -> list:
    """The text columns of ``df`` that hold file paths relative to ``base_dir``: those where
    one of the first non-empty values names an existing file under ``base_dir``."""
    base = Path(base_dir)
    found = []
    for col in df.columns:
        if df[col].dtype != object and str(df[col].dtype) not in ("string", "str"):
            continue
        sample = [v for v in df[col].head(1000) if _is_relative_path(v)][:_SAMPLE]
        if any((base / v).is_file() for v in sample):
            found.append(col)
    return found


def resolve_paths(df, base_dir, columns):
    """Return ``df`` with the relative paths in ``columns`` joined to ``base_dir`` (absolute
    paths, URLs, missing and empty values stay as they are)."""
    if not columns:
        return df
    base = str(Path(base_dir).absolute())
    df = df.copy()
    for col in columns:
        df[col] = [os.path.join(base, v) if _is_relative_path(v) else v for v in df[col]]
    return df


def read_manifest(path, *, resolve=True, dtype=None):
    """Read a manifest (CSV, TSV or Parquet) with its relative file paths made absolute.

    Parameters
    ----------
    path : str or path-like
        ``.csv``, ``.tsv``/``.tab`` (tab-separated) or ``.parquet``/``.pq``.
    resolve : bool, default=True
        Join relative paths to the manifest's folder, in every column where at least one of
        the first values names an existing file there (text columns never do).
    dtype : dict, optional
        Passed to :func:`pandas.read_csv` for CSV/TSV files (e.g. ``{"id": str}``).

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.

    Examples
    --------
    >>> import mmfeat
    >>> df = mmfeat.read_manifest("data/demo/manifest.csv")  # doctest: +SKIP
    >>> df["image"].iloc[0]  # doctest: +SKIP
    '/home/me/project/data/demo/images/00000.png'
    """
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    kind = table_kind(path)
    if kind == "parquet":
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=dtype)
    if resolve:
        df = resolve_paths(df, path.parent, path_columns(df, path.parent))
    return df
