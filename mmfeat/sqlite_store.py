"""The local tier of the feature cache: one SQLite file per directory.

Everything SQLite-specific lives here, apart from the cache's protocol (``cache.py``), as
joblib keeps ``memory.py`` apart from ``_store_backends.py``: the connection (one per process,
never used across a fork), a writer stuck on the lock, and turning store errors into one
warning; how the file is opened (who may write its folder, WAL mode, the schema and its
migration, read-only stores) and checked is in ``sqlite_schema.py``.

The store is one file in WAL mode: nothing to start, readers never block the writer, several
processes may write at once, and every write is one transaction, so a crash leaves whole
entries or none. A damaged store never fails the user's job: it warns once and acts as an
empty store. Lookups never wait for another process's write: a store whose write lock is held
(a paused writer) still serves its hits, and writes give up after a few seconds.

Directories mmfeat creates are private (0700) and the store's files owner-only (0600); to
share a store, make its directory yourself and group-writable (e.g. ``chmod 2770``): the files
are then made 0660.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

from .errors import CacheError, CacheWarning
from .keys import FINGERPRINT_HEX
from .sqlite_schema import check_format, connect, open_store, shrink
from .vectors import decode

STORE_NAME = "features.sqlite"
_WRITE_WAIT_MS = 10_000  # how long a write waits for another process's write lock
# After one write gave up, the lock's holder is likely stuck (a paused process): later writes
# of this process try without waiting for a while, so that a stuck writer costs one wait, not
# one per batch.
_STUCK_BACKOFF_S = 60.0
_STUCK_WAIT_MS = 50
_BOOKKEEPING_WAIT_MS = 100  # access times and hit counts: skipped rather than waited for
_CHUNK = 500  # keys per statement: well under SQLite's limit on bound parameters
_STORE_ERRORS = (sqlite3.Error, OSError)
# A connection inherited through fork() belongs to the parent; closing it in the child can
# disturb SQLite's lock bookkeeping, so it is parked here and never used or closed.
_INHERITED = []


class SQLiteStore:
    """The SQLite file ``<path>/features.sqlite``: the primitives the cache's protocol is
    written with (read, write, claim, release, count, prune, forget, clear).

    Every primitive goes through :meth:`run`, which turns a store error into one warning and
    a fallback answer (or, for explicit requests, a :class:`~mmfeat.errors.CacheError`).
    """

    def __init__(self, path: Path):
        self.path = path
        self.file = path / STORE_NAME
        self._conn, self._pid, self._lock = None, os.getpid(), threading.RLock()
        self._read_only = self._warned = self._busy_warned = False
        self._stuck_until = 0.0

    @property
    def read_only(self) -> bool:
        self.run(lambda db: None, None)
        return self._read_only

    # ------------------------------------------------------------------ primitives

    def read(self, keys, *, refresh_before_ns: int, count: bool = True, extra_hits: int = 0):
        """``{key: vector}`` of the keys present (damaged entries deleted), or None when the
        store cannot be read. Hits older than ``refresh_before_ns`` get their access time
        rewritten; ``count`` adds to the hit/miss totals, with ``extra_hits`` served from
        memory since the last count."""
        return self.run(lambda db: self._read(db, keys, refresh_before_ns, count, extra_hits),
                        None)

    def write(self, rows, *, named=None, release=()):
        """Store ``[(key, dim, blob, checksum)]`` and drop this process's claims on
        ``release``, in one transaction; ``named`` is ``(fingerprint digest, extractor name)``."""
        if rows or release:
            self.run(lambda db: None if self._read_only else self._write(db, rows, named, release),
                     None)

    def claim(self, keys, stale_after: float):
        """``(claimed, busy)``: see :meth:`FeatureCache.claim_many`."""
        return self.run(
            lambda db: (keys, []) if self._read_only else self._claim(db, keys, stale_after),
            (keys, []))

    def live_claims(self, keys, stale_after: float):
        return self.run(lambda db: _live_claims(db, keys, stale_after), set())

    def release(self, keys):
        self.write([], release=keys)

    def count(self, *, strict=False):
        return self.run(self._count, {"entries": 0, "bytes": 0, "hits": 0, "misses": 0},
                        strict=strict)

    def by_extractor(self):
        def query(db):
            names = dict(db.execute("SELECT prefix, name FROM extractors"))
            groups = db.execute(
                f"SELECT substr(key, 1, {FINGERPRINT_HEX}), COUNT(*), SUM(size) FROM features "
                "GROUP BY 1 ORDER BY 3 DESC").fetchall()
            return [(names.get(p, f"unnamed {p[:12]}"), n, b) for p, n, b in groups]
        return self.run(query, strict=True)

    def prune(self, max_bytes, older_than):
        return self.run(lambda db: self._prune(db, max_bytes, older_than), strict=True)

    def forget(self, digests):
        return self.run(lambda db: self._forget(db, digests), strict=True)

    def clear(self) -> None:
        """Remove every entry and reset the totals; a damaged store is deleted and recreated."""
        self._check_process()
        with self._lock:
            try:
                if self._conn is None:
                    self._conn, self._read_only = connect(self.path, self.file, _WRITE_WAIT_MS)
                if not self._read_only:
                    return _wipe(self._conn)
            except _STORE_ERRORS as exc:
                self._disconnect()
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    # in use, not damaged: never delete files another process has open
                    raise CacheError(
                        f"The feature cache {self.file} is busy (another process holds its "
                        "write lock): nothing was cleared; try again.") from exc
            if self._read_only:
                raise CacheError(
                    f"The feature cache {self.file} is read-only: it cannot be cleared.")
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
        self._check_process()
        with self._lock:
            self._disconnect()

    # ------------------------------------------------------------------ statements

    def _read(self, db, keys, refresh_before_ns, count, extra_hits=0):
        found, damaged, stale = {}, [], []
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            query = ("SELECT key, dim, vec, checksum, last_access FROM features "
                     f"WHERE key IN ({marks})")
            for key, dim, blob, check, last_access in db.execute(query, chunk):
                vector = decode(key, dim, blob, check)
                if vector is None:
                    damaged.append(key)
                    continue
                found[key] = vector
                if last_access < refresh_before_ns:
                    stale.append(key)
        if self._read_only or (not count and not damaged):
            return found
        # Bookkeeping only: when another process holds the write lock, skip it rather than
        # wait; the hits already read are served either way.
        try:
            with _transaction(db, wait_ms=_BOOKKEEPING_WAIT_MS):
                now = time.time_ns()
                for chunk in _chunks(stale):
                    marks = ",".join("?" * len(chunk))
                    db.execute(f"UPDATE features SET last_access = ? WHERE key IN ({marks})",
                               [now, *chunk])
                _delete(db, damaged)
                if count:
                    db.executemany("UPDATE meta SET value = value + ? WHERE name = ?",
                                   [(len(found) + extra_hits, "hits"),
                                     (len(keys) - len(found), "misses")])
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        return found

    def _write_wait_ms(self) -> int:
        return _STUCK_WAIT_MS if time.monotonic() < self._stuck_until else _WRITE_WAIT_MS

    def _write(self, db, rows, named, release):
        now = time.time_ns()
        with _transaction(db, wait_ms=self._write_wait_ms()):
            db.executemany("INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)",
                           [(key, dim, blob, check, len(blob), now)
                            for key, dim, blob, check in rows])
            if named and rows:
                db.execute("INSERT OR REPLACE INTO extractors VALUES (?, ?)", named)
            for chunk in _chunks(list(release)):
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM claims WHERE pid = ? AND host = ? AND key IN ({marks})",
                           [os.getpid(), socket.gethostname(), *chunk])

    def _claim(self, db, keys, stale_after):
        host, pid = socket.gethostname(), os.getpid()
        now = time.time_ns()
        with _transaction(db, wait_ms=self._write_wait_ms()):
            # A key stored since the caller looked it up (another process computed it in
            # between) is not claimed again: it comes back busy, and wait_for reads it at once.
            busy = _live_claims(db, keys, stale_after) | _stored(db, keys)
            claimed = [k for k in keys if k not in busy]
            db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                           [(k, host, pid, now) for k in claimed])
        return claimed, [k for k in keys if k in busy]

    def _count(self, db):
        entries, nbytes = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM features").fetchone()
        totals = dict(db.execute("SELECT name, value FROM meta"))
        return {"entries": entries, "bytes": nbytes,
                "hits": totals.get("hits", 0), "misses": totals.get("misses", 0)}

    def _prune(self, db, max_bytes, older_than):
        self._refuse_read_only("pruned")
        with _transaction(db):
            removed = 0
            if older_than is not None:
                before = time.time_ns() - int(older_than * 1e9)
                removed += db.execute("DELETE FROM features WHERE last_access < ?",
                                      (before,)).rowcount
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
        shrink(db)
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
        shrink(db)
        return removed

    def _refuse_read_only(self, what):
        if self._read_only:
            raise CacheError(f"The feature cache {self.file} is read-only: it cannot be {what}.")

    # ------------------------------------------------------------------ connection

    def run(self, operation, fallback=None, *, strict=False):
        """Run ``operation(connection)``; on any store error warn once and return ``fallback``.

        A write lock held by another process for longer than ``_WRITE_WAIT_MS`` is not an
        error of the store: the connection is kept and one warning says so. ``strict`` is for
        a user's explicit request (info, prune, forget): errors are raised as
        :class:`~mmfeat.errors.CacheError`, never turned into an empty answer."""
        self._check_process()
        with self._lock:
            try:
                if self._conn is None:
                    self._conn, self._read_only = connect(self.path, self.file, _WRITE_WAIT_MS)
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

    def _connect(self):
        if self._conn is None:
            self._conn, self._read_only = open_store(self.path, self.file, _WRITE_WAIT_MS), False
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
                CacheWarning, stacklevel=6)

    def _warn(self, exc):
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"The feature cache {self.file} cannot be used ({type(exc).__name__}: {exc}); "
                f"features are computed without it. FeatureCache({str(self.path)!r}).clear() "
                "starts it afresh.", CacheWarning, stacklevel=6)


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


def _wipe(db):
    with _transaction(db):
        db.execute("DELETE FROM features")
        db.execute("UPDATE meta SET value = 0")
    shrink(db)
    # An emptied file can still be damaged: then clear() recreates it.
    check_format(db)


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


def _stored(db, keys):
    stored = set()
    for chunk in _chunks(keys):
        marks = ",".join("?" * len(chunk))
        stored.update(k for (k,) in db.execute(
            f"SELECT key FROM features WHERE key IN ({marks})", chunk))
    return stored


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
