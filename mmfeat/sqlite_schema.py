"""How the local store's SQLite file is opened: who may write its folder, private directories
and file modes, WAL mode, the schema and its migration, read-only stores; and the checks and
upkeep of the file itself (its format, giving freed pages back)."""

from __future__ import annotations

import os
import sqlite3
import stat
import warnings
from contextlib import suppress
from pathlib import Path

from .errors import CacheWarning
from .permissions import others_may_write

FORMAT_VERSION = 2
# 2: keys are <fingerprint digest><item digest>, so that an item can be forgotten under every
# extractor. A version-1 store's entries can never be looked up again and are dropped on open.
#: The tables of a store of this format and their columns, as ``_SCHEMA`` makes them.
COLUMNS = {"features": ["key", "dim", "vec", "checksum", "size", "last_access"],
           "meta": ["name", "value"], "claims": ["key", "host", "pid", "since"],
           "extractors": ["prefix", "name"]}
_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS features (
    key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL,
    checksum INTEGER NOT NULL, size INTEGER NOT NULL, last_access INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS features_by_access ON features (last_access);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
    since INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS extractors (prefix TEXT PRIMARY KEY, name TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('hits', 0), ('misses', 0);
PRAGMA user_version = 2;
COMMIT;
"""
_MIGRATE_FROM_1 = """
BEGIN IMMEDIATE;
DELETE FROM features;
DELETE FROM claims;
CREATE TABLE IF NOT EXISTS extractors (prefix TEXT PRIMARY KEY, name TEXT NOT NULL);
PRAGMA user_version = 2;
COMMIT;
"""
_OWNER_WARNED: set = set()  # stores already checked for who may write them, per process


def connect(path: Path, file: Path, wait_ms: int) -> tuple:
    """``(connection, read_only)`` to the store ``file`` in ``path``: read-only when this
    process cannot write the file, else writable (created if need be, see :func:`open_store`).
    The first time per store and process, warns when others may write its folder."""
    _check_owner(path)
    if file.is_file() and not writable(file):
        return open_read_only(file), True
    return open_store(path, file, wait_ms), False


def _check_owner(path: Path):
    """Warn once per store and process when others may write its folder: its vectors (with
    valid checksums) could be anyone's."""
    if path in _OWNER_WARNED:
        return
    _OWNER_WARNED.add(path)
    with suppress(OSError):
        cause = others_may_write(path)
        if cause is not None:
            warnings.warn(f"The feature cache {path} {cause}: the features it serves "
                          "could have been written by anyone. Use a cache directory of your "
                          "own, or one shared with your group only.", CacheWarning,
                          stacklevel=7)


def open_store(path: Path, file: Path, wait_ms: int):
    """A writable connection to ``file`` in ``path`` (both created private when missing), in
    WAL mode, with its tables (created on a new file, migrated from an older format)."""
    _make_private_dir(path)
    _create_file(file, _file_mode(path))
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) and short.
    conn = sqlite3.connect(file, timeout=wait_ms / 1000, isolation_level=None,
                           check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {wait_ms}")
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a new file
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL + NORMAL: crash-safe, fewer fsyncs
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > FORMAT_VERSION:
            raise sqlite3.DatabaseError(f"written by a newer mmfeat (format {version})")
        if version == 0:  # a new file: its tables, in one transaction
            conn.executescript(_SCHEMA)
        elif version == 1:
            conn.executescript(_MIGRATE_FROM_1)
    except BaseException:
        conn.close()
        raise
    return conn


def writable(path) -> bool:
    return os.access(path, os.W_OK) and os.access(os.path.dirname(path), os.W_OK)


def open_read_only(file):
    """A connection that never writes: ``mode=ro`` needs the write-ahead log's index file to
    exist or be creatable; a store on a read-only mount may have neither, and then nobody
    can be writing it, so it is opened as immutable."""
    from urllib.parse import quote

    uri = f"file:{quote(os.fspath(file))}"
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None,
                               check_same_thread=False)
        conn.execute("SELECT COUNT(*) FROM meta").fetchone()
    except sqlite3.Error:
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                               check_same_thread=False)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != FORMAT_VERSION:
        conn.close()
        raise sqlite3.DatabaseError(
            f"a read-only store of format {version}, expected {FORMAT_VERSION}")
    return conn


def _make_private_dir(path: Path):
    """Create ``path`` (and missing parents) owner-only: the cache reveals which items were
    featurised. An existing directory keeps the permissions its owner chose."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _file_mode(directory: Path) -> int:
    """0600, or 0660 in a directory its owner made group-writable to share the store."""
    return 0o600 | (0o060 if directory.stat().st_mode & stat.S_IWGRP else 0)


def _create_file(file: Path, mode: int):
    """Create the store file with ``mode`` before SQLite opens it (SQLite would use 0644 and
    gives its -wal and -shm files the mode of the main file)."""
    with suppress(FileExistsError):
        os.close(os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))
        os.chmod(file, mode)  # the umask may have taken bits away; never add beyond ``mode``


def check_format(db):
    """Raise :class:`sqlite3.DatabaseError` unless the file is whole (a broken page list) and a
    store of this format (every table there, with its columns)."""
    if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        raise sqlite3.DatabaseError("the emptied store failed its integrity check")
    for table, columns in COLUMNS.items():
        found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        if found != columns:
            raise sqlite3.DatabaseError(f"the store's {table} table is not of this format")


def shrink(db):
    """Give freed pages back to the file system. executescript() runs the vacuum pragma to the
    end (execute() would free one page); the checkpoint truncates the write-ahead log."""
    db.executescript("PRAGMA incremental_vacuum")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
