"""Global settings: where the feature cache lives and how files are keyed.

As scikit-learn's configuration, the settings are thread-local: :func:`set_config` and
:func:`config_context` change the calling thread's settings only, and every other thread
(a new one included) keeps the defaults. The defaults come from the environment variables
``MMFEAT_CACHE_DIR``, ``MMFEAT_FILE_KEYS`` and ``MMFEAT_SHARED_CACHE``, read when a setting is
needed, which is also how worker processes (GridSearchCV ``n_jobs``, Dask workers) are
configured: they do not see a parent's ``set_config``. Give an extractor ``cache=DIR`` to use one
store everywhere.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path

ENV_CACHE_DIR = "MMFEAT_CACHE_DIR"
ENV_FILE_KEYS = "MMFEAT_FILE_KEYS"
ENV_SHARED_CACHE = "MMFEAT_SHARED_CACHE"
_OFF = {"", "0", "off", "false", "none", "no"}
_FILE_KEY_MODES = ("content", "stat")

_local = threading.local()  # this thread's settings that differ from the defaults
_UNCHANGED = object()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mmfeat"


def _overrides() -> dict:
    if not hasattr(_local, "overrides"):
        _local.overrides = {}
    return _local.overrides


def _default_cache_dir():
    raw = os.environ.get(ENV_CACHE_DIR)
    if raw is None:
        return default_cache_dir()
    if raw.strip().lower() in _OFF:
        return None
    return Path(raw).expanduser()


def _default_file_keys() -> str:
    raw = os.environ.get(ENV_FILE_KEYS, "content")
    if raw not in _FILE_KEY_MODES:
        raise ValueError(f"Got {ENV_FILE_KEYS}={raw!r} in the environment, expected one of "
                         f"{_FILE_KEY_MODES} (or unset, for 'content').")
    return raw


def _default_shared_cache():
    raw = os.environ.get(ENV_SHARED_CACHE, "").strip()
    return None if raw.lower() in _OFF else raw


def _check_shared_url(url):
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"Got shared_cache={url!r}, expected a Redis URL "
                         "(redis://host:port/db, rediss:// for TLS), False (off) or None (the "
                         f"default: {ENV_SHARED_CACHE}).")
    return url


def get_config() -> dict:
    """Return the current thread's settings.

    Returns
    -------
    dict
        ``cache_dir``: a :class:`~pathlib.Path`, or ``None`` when caching is switched off.
        ``file_keys``: ``"content"`` (hash the file's bytes) or ``"stat"`` (path, size, mtime).

    Raises
    ------
    ValueError
        ``MMFEAT_FILE_KEYS`` holds something else than ``content`` or ``stat``.
    """
    overrides = _overrides()
    cache_dir = overrides["cache_dir"] if "cache_dir" in overrides else _default_cache_dir()
    file_keys = overrides["file_keys"] if "file_keys" in overrides else _default_file_keys()
    return {"cache_dir": cache_dir, "file_keys": file_keys}


def cache_settings(cache=None) -> dict:
    """:func:`get_config` and ``shared_cache`` (:func:`shared_cache_url`), read in one call, and
    ``location``: where an estimator given ``cache=cache`` keeps its features (``cache`` itself,
    a store or a directory; the ``cache_dir`` setting for None; None when off: False, or no
    default directory)."""
    settings = {**get_config(), "shared_cache": shared_cache_url()}
    settings["location"] = (None if cache is False else settings["cache_dir"] if cache is None
                            else cache)
    return settings


def shared_cache_url():
    """The current thread's shared cache tier: a Redis URL, or ``None`` when there is none
    (``set_config(shared_cache=...)``, else ``MMFEAT_SHARED_CACHE``)."""
    overrides = _overrides()
    return overrides["shared_cache"] if "shared_cache" in overrides else _default_shared_cache()


def set_config(*, cache_dir=_UNCHANGED, file_keys=_UNCHANGED, shared_cache=_UNCHANGED) -> None:
    """Change the settings of the calling thread.

    Parameters
    ----------
    cache_dir : str, Path, False or None, optional
        Directory of the default feature cache; ``False`` switches the default cache off and
        ``None`` restores the default (``MMFEAT_CACHE_DIR``, else ``~/.cache/mmfeat``).
        Extractors built with ``cache=...`` ignore this.
    file_keys : {"content", "stat"} or None, optional
        How items given as file paths are keyed: by a digest of their bytes (default, safe),
        or by ``(path, size, mtime)`` (fast for very large files; trusts the file system).
        ``None`` restores the default (``MMFEAT_FILE_KEYS``, else ``"content"``).
    shared_cache : str, False or None, optional
        The shared second tier of the cache, a Redis URL (``redis://host:port/db``,
        ``rediss://`` for TLS, ``?ttl=SECONDS`` for a life per entry); ``False`` switches it off
        and ``None`` restores the default (``MMFEAT_SHARED_CACHE``, else none). Worker
        processes read the environment variable, not this setting.

    Examples
    --------
    >>> import mmfeat
    >>> mmfeat.set_config(cache_dir=False)
    >>> mmfeat.get_config()["cache_dir"] is None
    True
    >>> mmfeat.set_config(cache_dir=None)  # back to the default
    """
    overrides = _overrides()
    if cache_dir is not _UNCHANGED:
        if cache_dir is None:
            overrides.pop("cache_dir", None)
        elif cache_dir is False:
            overrides["cache_dir"] = None
        elif isinstance(cache_dir, (str, os.PathLike)) and os.fspath(cache_dir):
            overrides["cache_dir"] = Path(cache_dir).expanduser()
        else:
            raise TypeError(f"Got cache_dir={cache_dir!r}, expected a directory path, False (no "
                            "cache) or None (the default).")
    if file_keys is not _UNCHANGED:
        if file_keys is None:
            overrides.pop("file_keys", None)
        elif file_keys in _FILE_KEY_MODES:
            overrides["file_keys"] = file_keys
        else:
            raise ValueError(f"Got file_keys={file_keys!r}, "
                             f"expected one of {_FILE_KEY_MODES} or None.")
    if shared_cache is not _UNCHANGED:
        if shared_cache is None:
            overrides.pop("shared_cache", None)
        else:
            overrides["shared_cache"] = (None if shared_cache is False
                                         else _check_shared_url(shared_cache))


@contextmanager
def config_context(*, cache_dir=_UNCHANGED, file_keys=_UNCHANGED, shared_cache=_UNCHANGED):
    """Change the calling thread's settings inside a ``with`` block (see :func:`set_config`).

    Yields
    ------
    dict
        The settings in effect inside the block.
    """
    saved = dict(_overrides())
    try:
        set_config(cache_dir=cache_dir, file_keys=file_keys, shared_cache=shared_cache)
        yield get_config()
    finally:
        _local.overrides = saved
