"""Writing a file so that it exists whole or not at all: to a temporary file in the same
folder, synced, then renamed over the target. A crash (even ``kill -9``) leaves the old file
or the new one, never half of one, and at worst a temporary named ``.mmfeat-tmp-*`` that
mmfeat alone may remove.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".mmfeat-tmp-"


def tmp_path(final) -> Path:
    """The temporary file ``final`` is written to first (per process, so writers never mix)."""
    final = Path(final)
    return final.with_name(f"{TMP_PREFIX}{final.name}.{os.getpid()}")


@contextmanager
def atomic_write(path, *, mode: int | None = None):
    """Yield a binary file object; on a clean exit it is synced and renamed to ``path``.

    Parameters
    ----------
    path : str or path-like
    mode : int, optional
        Permission bits of the new file (e.g. ``0o600``); default: the process's umask.
    """
    path = Path(path)
    tmp = tmp_path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(tmp, flags, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # the umask may have taken bits away; never add beyond ``mode``
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, mode=mode) as f:
        f.write(data)
