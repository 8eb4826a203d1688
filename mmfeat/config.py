"""Global settings: where the feature cache lives and how files are keyed.

The cache location is mirrored into the ``MMFEAT_CACHE_DIR`` environment variable so that
worker processes started afterwards (GridSearchCV ``n_jobs``, loky, Dask local workers)
see the same store as the parent process.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

ENV_CACHE_DIR = "MMFEAT_CACHE_DIR"
ENV_FILE_KEYS = "MMFEAT_FILE_KEYS"
_OFF = {"", "0", "off", "false", "none", "no"}
_FILE_KEY_MODES = ("content", "stat")


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mmfeat"


def get_config() -> dict:
    """Return the current settings.

    ``cache_dir`` is a :class:`~pathlib.Path`, or ``None`` when caching is switched off.
    ``file_keys`` is ``"content"`` (hash the file's bytes) or ``"stat"`` (path, size, mtime).
    """
    raw = os.environ.get(ENV_CACHE_DIR)
    if raw is None:
        cache_dir = default_cache_dir()
    elif raw.strip().lower() in _OFF:
        cache_dir = None
    else:
        cache_dir = Path(raw).expanduser()
    file_keys = os.environ.get(ENV_FILE_KEYS, "content")
    if file_keys not in _FILE_KEY_MODES:
        file_keys = "content"
    return {"cache_dir": cache_dir, "file_keys": file_keys}


def set_config(*, cache_dir=None, file_keys=None) -> None:
    """Change settings for this process and the worker processes it starts later.

    Parameters
    ----------
    cache_dir : str, Path or False, optional
        Directory of the default feature cache. ``False`` switches the default cache off.
        Extractors built with ``cache=...`` ignore this.
    file_keys : {"content", "stat"}, optional
        How items given as file paths are keyed: by a digest of their bytes (default, safe),
        or by ``(path, size, mtime)`` (fast for very large files; trusts the file system).
    """
    if cache_dir is not None:
        os.environ[ENV_CACHE_DIR] = "off" if cache_dir is False else str(cache_dir)
    if file_keys is not None:
        if file_keys not in _FILE_KEY_MODES:
            raise ValueError(f"Got file_keys={file_keys!r}, expected one of {_FILE_KEY_MODES}.")
        os.environ[ENV_FILE_KEYS] = file_keys


@contextmanager
def config_context(*, cache_dir=None, file_keys=None):
    """Temporarily change settings inside a ``with`` block (see :func:`set_config`)."""
    saved = {k: os.environ.get(k) for k in (ENV_CACHE_DIR, ENV_FILE_KEYS)}
    try:
        set_config(cache_dir=cache_dir, file_keys=file_keys)
        yield get_config()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
