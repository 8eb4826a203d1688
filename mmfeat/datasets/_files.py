"""The demo folder on disk: its manifest, absolute paths, reuse of a complete folder made
with the same arguments, and removal of files a new table no longer names."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._plan import MODALITIES

_MANIFEST = "manifest.csv"
_PARAMS = "manifest.json"
#: The file columns, each with its folder and file extension.
_FILES = {"image": ("images", "png"), "audio": ("audio", "wav"), "video": ("videos", "mp4")}


def load_manifest(data_dir="data/demo") -> pd.DataFrame:
    """Read the ``manifest.csv`` written by :func:`make_multimodal`, with absolute paths.

    Parameters
    ----------
    data_dir : str or path-like, default="data/demo"
        The folder given to :func:`make_multimodal`.

    Returns
    -------
    pandas.DataFrame
        The table :func:`make_multimodal` returned; missing cells are None.

    Examples
    --------
    >>> df = load_manifest("data/demo")  # doctest: +SKIP
    """
    root = Path(data_dir)
    # Read everything as text: no "NA"-like string may turn into a float by accident.
    df = pd.read_csv(root / _MANIFEST, dtype=str, keep_default_na=False)
    df = df.astype({"id": np.int64, "label": object,
                    **({"group": object} if "group" in df.columns else {})})
    for m in (*MODALITIES, "video"):
        if m in df.columns:
            df[m] = pd.Series([None if v == "" else v for v in df[m]], index=df.index, dtype=object)
    return _absolute(df, root)


def _absolute(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    # Absolute paths keep working in worker processes and after a change of directory.
    base = root.resolve()
    df = df.copy()
    for m in _FILES.keys() & set(df.columns):
        df[m] = pd.Series([None if p is None else os.fspath(base / p) for p in df[m]],
                          index=df.index, dtype=object)
    return df


def _reusable(root: Path, params: dict):
    """The existing manifest when it was made with ``params`` and all its files exist."""
    try:
        if json.loads((root / _PARAMS).read_text()) != params:
            return None
        df = load_manifest(root)
    except (OSError, ValueError, KeyError):
        return None
    if len(df) != params["n_samples"]:
        return None
    paths = [p for m in _FILES.keys() & set(df.columns) for p in df[m] if p is not None]
    return df if all(os.path.isfile(p) for p in paths) else None


def _remove_stale(root: Path, manifest: pd.DataFrame) -> None:
    # Files of an earlier, larger (or less sparse) dataset would otherwise linger.
    keep = {p for m in _FILES.keys() & set(manifest.columns) for p in manifest[m] if p is not None}
    for sub, ext in _FILES.values():
        if not (root / sub).is_dir():
            continue
        for f in (root / sub).iterdir():
            if re.fullmatch(rf"\d+\.{ext}", f.name) and f"{sub}/{f.name}" not in keep:
                f.unlink()

