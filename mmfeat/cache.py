"""Per-item, content-addressed feature store.

Every featurised item is stored under ``make_key(fingerprint, item_digest(item))``: the
extractor's fingerprint (class, version, parameters, model) and a digest of the item's
content. A grid search then embeds each item once whatever the fold, and a scoring job that
crashed resumes without recomputing what it had done.

The store is one SQLite file in WAL mode: nothing to start, readers never block the writer,
several processes may write at once, and every write is one transaction, so a crash leaves
whole entries or none. A damaged store never fails the user's job: it warns once and acts
as an empty cache. Lookups never wait for another process's write: a store whose write lock
is held (a paused writer) still serves its hits, and writes give up after a few seconds, so
the features are computed and simply not stored.

What the store holds: per entry, a key (a digest of the extractor's fingerprint followed by
the item's content digest), the vector, its size, a checksum and the last access time; never
the raw content of an item, its path or its text. Directories mmfeat creates are private
(0700) and the store's files owner-only (0600); to share a store, make its directory yourself
and group-writable (e.g. ``chmod 2770``): the files are then made 0660.
"""

from __future__ import annotations

import numbers
import os
import socket
import sqlite3
import stat
import threading
import time
import warnings
import zlib
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np

from .config import get_config
from .errors import CacheError, CacheWarning, ItemError
from .keys import FINGERPRINT_HEX, item_digest
from .permissions import others_may_write

STORE_NAME = "features.sqlite"
# 2: keys are <fingerprint digest><item digest>, so that an item can be forgotten under every
# extractor. A version-1 store's entries can never be looked up again and are dropped on open.
FORMAT_VERSION = 2
_WRITE_WAIT_MS = 10_000  # how long a write waits for another process's write lock
# After one write gave up, the lock's holder is likely stuck (a paused process): later writes
# of this process try without waiting for a while, so that a stuck writer costs one wait, not
# one per batch.
_STUCK_BACKOFF_S = 60.0
_STUCK_WAIT_MS = 50
_BOOKKEEPING_WAIT_MS = 100  # access times and hit counts: skipped rather than waited for
_CHUNK = 500  # keys per statement: well under SQLite's limit on bound parameters
_DISK_DTYPE = np.dtype("<f4")  # fixed byte order, so a store can move between machines
_STORE_ERRORS = (sqlite3.Error, OSError)
#: The tables of a store of this format and their columns, as ``_SCHEMA`` makes them.
_COLUMNS = {"features": ["key", "dim", "vec", "checksum", "size", "last_access"],
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
# A connection inherited through fork() belongs to the parent; closing it in the child can
# disturb SQLite's lock bookkeeping, so it is parked here and never used or closed.
_INHERITED = []
_INSTANCES = {}  # (directory, pid) -> FeatureCache, for resolve_cache

_OWNER_WARNED: set = set()  # stores already checked for who may write them, per process


class FeatureCache:
    """Feature vectors of single items, keyed by content, in ``<path>/features.sqlite``.

    Parameters
    ----------
    path : str or PathLike
        Directory of the store; it and its parents are created on first use.

    Attributes
    ----------
    path : pathlib.Path
        The directory, absolute.
    session_hits, session_misses : int
        Lookups answered by this instance (the store also keeps totals across processes).
    access_resolution_s : float
        A hit records its access time for :meth:`prune` only when the recorded one is older
        than this (default 60 s). Rewriting a row rewrites its whole vector, so refreshing
        every hit would make warm lookups several times slower; minute resolution is plenty
        for least-recently-used pruning.

    Notes
    -----
    Each process opens its own connection (checked with ``os.getpid()``), so an instance can
    be pickled to joblib/loky or Dask workers; the pickle holds only the path. Any SQLite or
    file-system error is turned into one :class:`~mmfeat.errors.CacheWarning` per instance,
    after which the call behaves as on an empty cache: features get computed, never wrong.
    """

    access_resolution_s = 60.0

    def __init__(self, path):
        self.path = Path(path).expanduser().resolve()
        self.session_hits = self.session_misses = 0
        self._conn, self._pid, self._lock, self._warned = None, os.getpid(), threading.RLock(), False
        self._read_only = self._busy_warned = False
        self._stuck_until = 0.0

    @property
    def read_only(self) -> bool:
        """Whether this process opened the store read-only (it cannot write there): hits are
        served, nothing is stored or counted."""
        self._check_process()
        with self._lock:
            self._run(lambda db: None, None)
            return self._read_only

    @property
    def file(self) -> Path:
        return self.path / STORE_NAME

    def __repr__(self):
        return f"FeatureCache({str(self.path)!r})"

    def __getstate__(self):
        return {"path": str(self.path)}

    def __setstate__(self, state):
        self.__init__(state["path"])

    def __deepcopy__(self, memo):
        # clone() deep-copies an extractor's parameters: its clones share this process's one
        # store object (one connection, one set of session counters) as resolve_cache does.
        return _INSTANCES.setdefault((str(self.path), os.getpid()), self)

    # ------------------------------------------------------------------ public operations

    def get_many(self, keys) -> dict:
        """Return ``{key: float32 1-D array}`` for the keys present; absent keys are left out.

        Entries whose checksum fails are misses and are deleted. One write per call records
        the access time of the hits (for :meth:`prune`) and the hit/miss totals.
        """
        keys = list(dict.fromkeys(keys))
        return self._run(lambda db: self._read(db, keys), {}) if keys else {}

    def put_many(self, entries, *, extractor: str | None = None) -> None:
        """Store ``{key: 1-D vector}`` as float32, in one transaction: all entries or none.

        ``extractor``, a readable name of the extractor whose keys these are (its ``repr``),
        is recorded for ``mmfeat cache info``."""
        now, rows = time.time_ns(), []
        for key, vector in entries.items():
            vector = np.asarray(vector)
            if vector.ndim != 1:
                raise ValueError(f"Got a vector of shape {vector.shape} for {key!r}, expected 1-D.")
            blob = vector.astype(_DISK_DTYPE).tobytes()
            rows.append((key, vector.size, blob, _checksum(key, blob), len(blob), now))
        if rows:
            named = (rows[0][0][:FINGERPRINT_HEX], str(extractor)) if extractor else None
            self._run(lambda db: None if self._read_only else self._write(db, rows, named), None)

    def entries_by_extractor(self) -> list:
        """``[(extractor name, entries, bytes)]``, largest first; keys written without a name
        (or by another mmfeat) are grouped as ``"unnamed <fingerprint digest>"``."""
        def query(db):
            names = dict(db.execute("SELECT prefix, name FROM extractors"))
            groups = db.execute(
                f"SELECT substr(key, 1, {FINGERPRINT_HEX}), COUNT(*), SUM(size) FROM features "
                "GROUP BY 1 ORDER BY 3 DESC").fetchall()
            return [(names.get(p, f"unnamed {p[:12]}"), n, b) for p, n, b in groups]
        return self._run(query, strict=True)

    # ------------------------------------------------------------------ claims
    # Two workers of one grid search often miss on the same items at the same moment. A worker
    # first claims the misses nobody else is computing, computes only those, and waits for the
    # others' results: each item is computed once, and disjoint work still runs in parallel.

    def claim_many(self, keys, *, stale_after: float = 3600.0):
        """Claim the keys that no live process is computing.

        Returns ``(claimed, busy)``: compute ``claimed`` then :meth:`release` them; wait for
        ``busy`` with :meth:`wait_for`. A claim whose process is gone (same host, pid not
        alive) or older than ``stale_after`` seconds is taken over. On a store error every key
        is returned as claimed, so the caller simply computes everything.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return [], []
        return self._run(
            lambda db: (keys, []) if self._read_only else self._claim(db, keys, stale_after),
            (keys, []))

    def release(self, keys) -> None:
        """Drop this process's claims on ``keys`` (after storing their features, or failing)."""
        keys = list(keys)
        if keys:
            self._run(lambda db: None if self._read_only else self._release(db, keys), None)

    def wait_for(self, keys, *, poll: float = 0.05, timeout: float = 3600.0,
                 stale_after: float = 3600.0) -> dict:
        """Wait until other processes finish the claimed ``keys``; return ``{key: vector}`` for
        those that arrived. Keys whose claim ended without a result (the item failed) or whose
        owner died meanwhile (same liveness rule as :meth:`claim_many`) are left out at once
        for the caller to compute."""
        pending, found = list(keys), {}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            arrived = self._run(lambda db: self._read(db, pending, count=False), None)
            if arrived is None:
                break
            found.update(arrived)
            rest = [k for k in pending if k not in arrived]
            live = self._run(lambda db: _live_claims(db, rest, stale_after), set())
            pending = [k for k in rest if k in live]
            if pending:
                time.sleep(poll)
        return found

    def _claim(self, db, keys, stale_after):
        host, pid = socket.gethostname(), os.getpid()
        now = time.time_ns()
        with _transaction(db, wait_ms=self._write_wait_ms()):
            busy = _live_claims(db, keys, stale_after)
            claimed = [k for k in keys if k not in busy]
            db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                           [(k, host, pid, now) for k in claimed])
        return claimed, [k for k in keys if k in busy]

    def _release(self, db, keys):
        with _transaction(db, wait_ms=self._write_wait_ms()):
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM claims WHERE pid = ? AND host = ? AND key IN ({marks})",
                           [os.getpid(), socket.gethostname(), *chunk])

    def stats(self) -> dict:
        """Return ``path``, ``entries``, ``bytes`` (of vectors), ``hits`` and ``misses`` (totals
        of every process that used the store) and ``session_hits``/``session_misses``."""
        counts = self._run(self._count, {"entries": 0, "bytes": 0, "hits": 0, "misses": 0})
        return {"path": str(self.path), **counts,
                "session_hits": self.session_hits, "session_misses": self.session_misses}

    def prune(self, max_bytes: int | None = None, *, older_than: float | None = None) -> int:
        """Delete entries not used for ``older_than`` seconds, then least-recently-used ones
        until the vectors take at most ``max_bytes``; return how many were removed.

        Access times are recorded to the minute (see ``access_resolution_s``).
        """
        if max_bytes is not None and (
                not isinstance(max_bytes, numbers.Integral) or isinstance(max_bytes, bool)
                or max_bytes < 0):
            raise ValueError(f"Got max_bytes={max_bytes!r}, expected a non-negative integer.")
        if older_than is not None and (
                not isinstance(older_than, numbers.Real) or isinstance(older_than, bool)
                or not older_than >= 0):
            raise ValueError(f"Got older_than={older_than!r}, expected a non-negative number of seconds.")
        if max_bytes is None and older_than is None:
            raise ValueError("Give max_bytes, older_than or both.")
        return self._run(lambda db: self._prune(db, max_bytes, older_than), strict=True)

    def forget(self, items) -> int:
        """Delete the entries of ``items`` under every extractor; return how many were removed.

        An item is what an extractor takes (a path, a text, bytes, an array, ``(waveform,
        sr)``). A string is forgotten both as a text and, when it names a file, as that file's
        content (under both ``file_keys`` settings). Items that cannot be read are skipped.
        """
        digests = set()
        for item in items:
            for modality, file_keys in (("text", "content"), ("image", "content"), ("image", "stat")):
                with suppress(ItemError, ValueError):
                    digests.add(item_digest(item, modality, file_keys))
        return self._run(lambda db: self._forget(db, sorted(digests)), strict=True)

    def check(self) -> dict:
        """Like :meth:`stats`, but raise :class:`~mmfeat.errors.CacheError` when the store
        cannot be used, instead of warning and reporting an empty store."""
        return {"path": str(self.path), **self._run(self._count, strict=True),
                "read_only": self._read_only,
                "session_hits": self.session_hits, "session_misses": self.session_misses}

    def clear(self) -> None:
        """Remove every entry and reset the totals; a damaged store is deleted and recreated.

        Raises
        ------
        CacheError
            The store could not be reset (a read-only store, or a path that cannot be removed).
        """
        self._check_process()
        with self._lock:
            try:
                if not self._connect_read_only_aware():
                    return _wipe(self._conn)
            except _STORE_ERRORS as exc:
                self._disconnect()
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    # in use, not damaged: never delete files another process has open
                    raise CacheError(f"The feature cache {self.file} is busy (another process "
                                     "holds its write lock): nothing was cleared; try again.") from exc
            if self._read_only:
                raise CacheError(f"The feature cache {self.file} is read-only: it cannot be cleared.")
            try:  # damaged: start afresh, so the user always has a way out
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{self.file}{suffix}").unlink(missing_ok=True)
                self._connect()
                _wipe(self._conn)
                self._warned = False  # a later problem deserves its own warning
            except _STORE_ERRORS as exc:
                self._disconnect()
                raise CacheError(f"The feature cache {self.file} could not be reset: "
                                 f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        """Close this process's connection (the next call reopens it)."""
        self._check_process()
        with self._lock:
            self._disconnect()

    # ------------------------------------------------------------------ internals

    def _read(self, db, keys, count=True):
        found, damaged, stale = {}, [], []
        now = time.time_ns()
        stale_before = now - int(self.access_resolution_s * 1e9)
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, dim, vec, checksum, last_access FROM features WHERE key IN ({marks})"
            for key, dim, blob, checksum, last_access in db.execute(query, chunk):
                if isinstance(blob, bytes) and len(blob) == 4 * dim and _checksum(key, blob) == checksum:
                    found[key] = np.frombuffer(blob, dtype=_DISK_DTYPE).astype(np.float32)
                    if last_access < stale_before:
                        stale.append(key)
                else:
                    damaged.append(key)
        hits, misses = len(found), len(keys) - len(found)
        if count:
            self.session_hits += hits
            self.session_misses += misses
        if self._read_only or (not count and not damaged):
            return found
        # Bookkeeping only: when another process holds the write lock, skip it rather than
        # wait; the hits already read are served either way.
        try:
            with _transaction(db, wait_ms=_BOOKKEEPING_WAIT_MS):
                for chunk in _chunks(stale):
                    marks = ",".join("?" * len(chunk))
                    db.execute(f"UPDATE features SET last_access = ? WHERE key IN ({marks})",
                               [now, *chunk])
                _delete(db, damaged)
                if count:
                    db.executemany("UPDATE meta SET value = value + ? WHERE name = ?",
                                   [(hits, "hits"), (misses, "misses")])
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        return found

    def _write_wait_ms(self) -> int:
        return _STUCK_WAIT_MS if time.monotonic() < self._stuck_until else _WRITE_WAIT_MS

    def _write(self, db, rows, named=None):
        with _transaction(db, wait_ms=self._write_wait_ms()):
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)", rows)
            if named:
                db.execute("INSERT OR REPLACE INTO extractors VALUES (?, ?)", named)

    def _count(self, db):
        entries, nbytes = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM features").fetchone()
        totals = dict(db.execute("SELECT name, value FROM meta"))
        return {"entries": entries, "bytes": nbytes,
                "hits": totals.get("hits", 0), "misses": totals.get("misses", 0)}

    def _prune(self, db, max_bytes, older_than):
        self._refuse_read_only("pruned")
        with _transaction(db):
            removed = 0
            if older_than is not None:
                before = time.time_ns() - int(older_than * 1e9)
                removed += db.execute("DELETE FROM features WHERE last_access < ?", (before,)).rowcount
            if max_bytes is not None:
                total = db.execute("SELECT COALESCE(SUM(size), 0) FROM features").fetchone()[0]
                victims = []
                for key, size in db.execute("SELECT key, size FROM features ORDER BY last_access"):
                    if total <= max_bytes:
                        break
                    victims.append(key)
                    total -= size
                _delete(db, victims)
                removed += len(victims)
        _shrink(db)
        return removed

    def _forget(self, db, digests):
        self._refuse_read_only("changed")
        removed = 0
        with _transaction(db):
            for chunk in _chunks(digests):
                marks = ",".join("?" * len(chunk))
                removed += db.execute(
                    f"DELETE FROM features WHERE substr(key, {FINGERPRINT_HEX + 1}) IN ({marks})",
                    chunk).rowcount
        _shrink(db)
        return removed

    def _refuse_read_only(self, what):
        if self._read_only:
            raise CacheError(f"The feature cache {self.file} is read-only: it cannot be {what}.")

    def _run(self, operation, fallback=None, *, strict=False):
        """Run ``operation(connection)``; on any store error warn once and return ``fallback``.

        A write lock held by another process for longer than ``_WRITE_WAIT_MS`` is not an
        error of the store: the connection is kept and one warning says so. ``strict`` is for
        a user's explicit request (info, prune, forget): errors are raised as
        :class:`~mmfeat.errors.CacheError`, never turned into an empty answer."""
        self._check_process()
        with self._lock:
            try:
                self._connect_read_only_aware()
                return operation(self._conn)
            except _STORE_ERRORS as exc:
                busy = isinstance(exc, sqlite3.OperationalError) and _is_busy(exc)
                if busy and self._conn is not None and not strict:
                    self._warn_busy()
                    return fallback
                self._disconnect()  # the next call starts from a fresh connection
                if strict:
                    raise CacheError(f"The feature cache {self.file} cannot be used: "
                                     f"{type(exc).__name__}: {exc}") from exc
                self._warn(exc)
                return fallback

    def _check_process(self):
        if self._pid != os.getpid():  # forked: the connection and the lock are the parent's
            if self._conn is not None:
                _INHERITED.append(self._conn)
            self._conn, self._pid, self._lock = None, os.getpid(), threading.RLock()

    def _check_owner(self):
        """Warn once per store and process when others may write its folder: its vectors (with
        valid checksums) could be anyone's."""
        if self.path in _OWNER_WARNED:
            return
        _OWNER_WARNED.add(self.path)
        with suppress(OSError):
            cause = others_may_write(self.path)
            if cause is not None:
                warnings.warn(f"The feature cache {self.path} {cause}: the features it serves could "
                              "have been written by anyone. Use a cache directory of your own, or "
                              "one shared with your group only.", CacheWarning, stacklevel=5)

    def _connect_read_only_aware(self) -> bool:
        """Open the store (writable, or read-only when this process cannot write it); return
        whether it is read-only."""
        if self._conn is None:
            self._check_owner()
            if self.file.is_file() and not _writable(self.file):
                self._conn, self._read_only = _open_read_only(self.file), True
            else:
                self._connect()
        return self._read_only

    def _connect(self):
        if self._conn is None:
            _make_private_dir(self.path)
            _create_file(self.file, _file_mode(self.path))
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) and short.
            conn = sqlite3.connect(self.file, timeout=_WRITE_WAIT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute(f"PRAGMA busy_timeout = {_WRITE_WAIT_MS}")
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a new file
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: crash-safe, fewer fsyncs
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
            self._conn, self._read_only = conn, False
        return self._conn

    def _disconnect(self):
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _warn_busy(self):
        self._stuck_until = time.monotonic() + _STUCK_BACKOFF_S
        if not self._busy_warned:
            self._busy_warned = True
            warnings.warn(
                f"The feature cache {self.file} is busy: another process has held its write lock "
                f"for over {_WRITE_WAIT_MS / 1000:g} s. Features are computed and served; those "
                "that could not be stored will be computed again next time (for the next "
                f"{_STUCK_BACKOFF_S:g} s, writes do not wait for the lock).",
                CacheWarning, stacklevel=5)

    def _warn(self, exc, stacklevel=4):
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"The feature cache {self.file} cannot be used ({type(exc).__name__}: {exc}); "
                f"features are computed without it. {self!r}.clear() starts it afresh.",
                CacheWarning, stacklevel=stacklevel)


@contextmanager
def _transaction(db, wait_ms=_WRITE_WAIT_MS):
    # IMMEDIATE takes the write lock up front: a deferred transaction that later upgrades
    # can fail at once with "database is locked" instead of waiting for busy_timeout.
    db.execute(f"PRAGMA busy_timeout = {int(wait_ms)}")
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if db.in_transaction:  # SQLite rolls back by itself after some errors
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _is_busy(exc) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _writable(path) -> bool:
    return os.access(path, os.W_OK) and os.access(os.path.dirname(path), os.W_OK)


def _open_read_only(file):
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
        raise sqlite3.DatabaseError(f"a read-only store of format {version}, expected {FORMAT_VERSION}")
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


def _wipe(db):
    with _transaction(db):
        db.execute("DELETE FROM features")
        db.execute("UPDATE meta SET value = 0")
    _shrink(db)
    # An emptied file can still be damaged (a broken page list), or not be a store of this
    # format (tables missing or of other columns): then clear() recreates it.
    if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        raise sqlite3.DatabaseError("the emptied store failed its integrity check")
    for table, columns in _COLUMNS.items():
        found = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        if found != columns:
            raise sqlite3.DatabaseError(f"the store's {table} table is not of this format")


def _shrink(db):
    # Give freed pages back to the file system. executescript() runs the vacuum pragma to
    # the end (execute() would free one page); the checkpoint truncates the write-ahead log.
    db.executescript("PRAGMA incremental_vacuum")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _live_claims(db, keys, stale_after):
    """The keys claimed by a live process other than this one (a claim on another host is
    taken as live until ``stale_after`` seconds old)."""
    host, pid, now = socket.gethostname(), os.getpid(), time.time_ns()
    live = set()
    for chunk in _chunks(keys):
        marks = ",".join("?" * len(chunk))
        query = f"SELECT key, host, pid, since FROM claims WHERE key IN ({marks})"
        for key, c_host, c_pid, since in db.execute(query, chunk):
            alive = c_host != host or (c_pid != pid and _pid_alive(c_pid))
            if alive and now - since < stale_after * 1e9:
                live.add(key)
    return live


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _chunks(keys):
    return (keys[i:i + _CHUNK] for i in range(0, len(keys), _CHUNK))


def _delete(db, keys):
    for chunk in _chunks(keys):
        db.execute(f"DELETE FROM features WHERE key IN ({','.join('?' * len(chunk))})", chunk)


def _checksum(key, blob):
    # Covers the key too, so a vector can never be served for another key.
    return zlib.crc32(blob, zlib.crc32(key.encode()))


def resolve_cache(cache):
    """Turn an estimator's ``cache=`` argument into a :class:`FeatureCache` or ``None`` (off).

    ``None`` means the global default (``mmfeat.config``), ``False`` off, a path the store
    in that directory. Instances are shared per directory and process, so that repeated
    ``transform`` calls reuse one connection.
    """
    if isinstance(cache, FeatureCache):
        return cache
    if cache is False:
        return None
    if cache is None:
        cache = get_config()["cache_dir"]
        if cache is None:
            return None
    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"Got cache={cache!r}, expected None (the global default), "
                        "False (off), a directory path or a FeatureCache.")
    path = Path(cache).expanduser().resolve()
    key = (str(path), os.getpid())
    if key not in _INSTANCES:
        _INSTANCES.setdefault(key, FeatureCache(path))
    return _INSTANCES[key]
