"""Writing a file so that it exists whole or not at all: to a temporary file in the same
folder, synced, then renamed over the target. A crash (even ``kill -9``) leaves the old file
or the new one, never half of one, and at worst a temporary named ``.mmfeat-tmp-*`` that
mmfeat alone may remove.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path

TMP_PREFIX = ".mmfeat-tmp-"


def create_temporary(final, mode: int = 0o666) -> tuple[int, Path]:
    """Create the temporary file ``final`` is written to first, and return its descriptor.

    The name is random and the file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: a file
    or link planted in a folder others can write is never opened, truncated or followed (an
    existing name is a collision, and another random name is tried).
    """
    final = Path(final)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = final.with_name(f"{TMP_PREFIX}{final.name}.{os.getpid()}.{secrets.token_hex(8)}")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {final}")


@contextmanager
def atomic_write(path, *, mode: int | None = None):
    """Yield a binary file object; on a clean exit it is synced and renamed to ``path``.

    The rename replaces whatever ``path`` was (a symbolic link included) and never writes
    through it.

    Parameters
    ----------
    path : str or path-like
    mode : int, optional
        Permission bits of the new file (e.g. ``0o600``); default: the process's umask.
    """
    path = Path(path)
    fd, tmp = create_temporary(path, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)  # the umask may have taken bits away; never add beyond
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, mode=mode) as f:
        f.write(data)
