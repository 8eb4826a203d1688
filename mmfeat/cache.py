"""Per-item, content-addressed feature cache: its protocol.

Every featurised item is stored under ``make_key(fingerprint, item_digest(item))``: the
extractor's fingerprint (class, version, parameters, model) and a digest of the item's
content. A grid search then embeds each item once whatever the fold, and a scoring job that
crashed resumes without recomputing what it had done.

The protocol is one call, :meth:`FeatureCache.fetch_or_compute`: look the keys up, claim the
misses nobody else is computing, compute those, store them, and wait for the ones another
process is computing. Callers never sequence those steps themselves. Where the entries live
is the store's business: the local SQLite file (``sqlite_store.py``) holds, per entry, a key,
the vector, its size, a checksum and the last access time; never the raw content of an item,
its path or its text. What the instances of a process share (one per store, their memory,
their totals at exit, one connection per shared tier) is the upkeep's (``cache_upkeep.py``).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from . import cache_upkeep as upkeep
from .cache_upkeep import _INSTANCES, _LIVE
from .config import cache_settings, shared_cache_url
from .keys import FINGERPRINT_HEX, item_digests
from .memo import VectorMemo

# STORE_NAME for the CLI; _OWNER_WARNED (the stores already checked for who may write them)
# for the tests that reset it
from .sqlite_schema import _OWNER_WARNED  # noqa: F401
from .sqlite_store import STORE_NAME, SQLiteStore  # noqa: F401
from .vectors import encode


class FeatureCache:
    """Feature vectors of single items, keyed by content, in ``<path>/features.sqlite``.

    Parameters
    ----------
    path : str or PathLike
        Directory of the store; it and its parents are created on first use.
    shared : str, False or None, default=None
        The shared second tier, a Redis URL (``redis://host:port/db``, ``rediss://`` for TLS,
        ``?ttl=SECONDS`` for a life per entry; see :mod:`mmfeat.redis_store`): a local miss is
        looked up there (and the local store filled), and what is computed goes to both.
        None takes the global setting (``set_config(shared_cache=...)``, else
        ``MMFEAT_SHARED_CACHE``); False: local only.

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
    memo_bytes : int
        How many bytes of vectors this process keeps in memory (default 128 MiB), least
        recently used first out: a grid search then reads each row from the store once per
        process, not once per fit. A vector held longer than ``access_resolution_s`` is
        looked up in the store again. 0 turns this off.

    Notes
    -----
    Each process opens its own connection (checked with ``os.getpid()``), so an instance can
    be pickled to joblib/loky or Dask workers; the pickle holds only the path. Any SQLite or
    file-system error is turned into one :class:`~mmfeat.errors.CacheWarning` per instance,
    after which the call behaves as on an empty cache: features get computed, never wrong.
    """

    access_resolution_s = 60.0
    memo_bytes = 128 << 20

    def __init__(self, path, *, shared=None):
        self.path = Path(path).expanduser().resolve()
        self.session_hits = self.session_misses = 0
        self._store = SQLiteStore(self.path)
        self._memo = VectorMemo(self.memo_bytes)
        # served from memory by this process, not yet added to the store's totals
        self._memo_hits, self._memo_pid = 0, os.getpid()
        _LIVE.add(self)
        self._counts_lock = threading.Lock()
        self._shared_arg = shared
        url = shared_cache_url() if shared is None else (shared or None)
        self.shared = upkeep.shared_store(url) if url else None

    @property
    def read_only(self) -> bool:
        """Whether this process opened the store read-only (it cannot write there): hits are
        served, nothing is stored or counted."""
        return self._store.read_only

    @property
    def file(self) -> Path:
        return self._store.file

    # The store's connection and its stuck-writer clock, for tests that look at them.
    _conn = property(lambda self: self._store._conn)
    _stuck_until = property(lambda self: self._store._stuck_until,
                            lambda self, value: setattr(self._store, "_stuck_until", value))

    def __repr__(self):
        shared = "" if self._shared_arg is None else f", shared={self._shared_arg!r}"
        return f"FeatureCache({str(self.path)!r}{shared})"

    def __reduce__(self):
        # The pickle holds the path and an explicit shared tier (the global one is each
        # process's own setting). Unpickled, it is the process's one instance on that store,
        # so that a worker's tasks (each unpickles its estimator) share one connection and
        # the vectors it keeps in memory.
        return (_reopen, (str(self.path), self._shared_arg))

    def __deepcopy__(self, memo):
        # clone() deep-copies an extractor's parameters: its clones share this process's one
        # store object (one connection, one set of session counters) as resolve_cache does.
        return _INSTANCES.setdefault(self._instance_key(), self)

    def _instance_key(self):
        return (str(self.path), self.shared.url if self.shared else None, os.getpid())

    # ------------------------------------------------------------------ the protocol

    def fetch_or_compute(self, keys, compute, *, dim=None, extractor=None, on_found=None) -> dict:
        """Return ``{key: vector}`` for ``keys``, from the store or computed, each at most once.

        Parameters
        ----------
        keys : sequence of str
            Distinct keys.
        compute : callable
            ``compute(keys) -> {key: vector}`` for the keys it could compute; a key it leaves
            out failed (the caller records why) and is neither stored nor retried.
        dim : int, optional
            Stored vectors of another length are misses.
        extractor : str or callable, optional
            A readable name of the extractor whose keys these are, for ``mmfeat cache info``
            (or a function giving it, called only when something is stored).
        on_found : callable, optional
            Called with the number of vectors that came from the store (once for the hits,
            again for those another process computed meanwhile), for a progress bar.

        Notes
        -----
        Two workers of one grid search often miss the same items at the same moment. The
        misses nobody else is computing are claimed, computed and stored (the claims released
        in the same write); those another live process claimed are waited for, and computed
        here only if that process ends without storing them. Disjoint work still runs in
        parallel.
        """
        keys = list(keys)
        found = self._usable(self.get_many(keys), dim)
        if on_found is not None and found:
            on_found(len(found))
        misses = [k for k in keys if k not in found]
        if not misses:
            return found
        claimed, busy = self.claim_many(misses)
        remote = []  # claimed here, but computed on another machine: waited for
        if self.shared is not None and claimed:
            claimed, remote = self.shared.claim(claimed)
        try:
            found.update(self._compute_and_store(claimed, compute, extractor, release=claimed))
            claimed = []
            if busy or remote:
                arrived = self._usable(self.wait_for(busy + remote), dim)
                if on_found is not None and arrived:
                    on_found(len(arrived))
                found.update(arrived)
                found.update(self._compute_and_store(
                    [k for k in busy + remote if k not in arrived], compute, extractor))
        finally:
            # claimed: only after a failure (else released by the write); remote: ours locally
            self.release(claimed + remote)
        return found

    def _compute_and_store(self, keys, compute, extractor, release=()):
        fresh = compute(keys) if keys else {}
        self.put_many(fresh, extractor=extractor, release=release)
        return fresh

    @staticmethod
    def _usable(vectors, dim):
        return vectors if dim is None else {k: v for k, v in vectors.items() if v.shape == (dim,)}

    # ------------------------------------------------------------------ entries

    def get_many(self, keys) -> dict:
        """Return ``{key: float32 1-D array}`` for the keys present; absent keys are left out.

        Entries whose checksum fails are misses and are deleted. One write per call records
        the access time of the hits (for :meth:`prune`) and the hit/miss totals. With a shared
        tier, the local misses are looked up there in one batch and copied to the local tier.
        """
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        self._memo.max_bytes = self.memo_bytes
        found = self._memo.take(keys, self.access_resolution_s)
        rest = [k for k in keys if k not in found] if found else keys
        if rest:
            with self._counts_lock:
                extra = self._take_memo_hits() + len(found)
            stored = self._store.read(rest, refresh_before_ns=self._refresh_before(),
                                      extra_hits=extra) or {}
            if self.shared is not None and len(stored) < len(rest):
                # a local miss is looked up in the shared tier, and the local tier filled with it
                from_shared = self.shared.read([k for k in rest if k not in stored])
                if from_shared:
                    self._store.write([(k, *encode(k, v)) for k, v in from_shared.items()])
                    stored.update(from_shared)
            self._memo.add(stored)
            found.update(stored)
        with self._counts_lock:
            if not rest:  # counted in the store's totals with its next lookup, or stats()
                self._memo_hits = self._take_memo_hits() + len(found)
            self.session_hits += len(found)
            self.session_misses += len(keys) - len(found)
        return found

    def put_many(self, entries, *, extractor: str | None = None, release=()) -> None:
        """Store ``{key: 1-D vector}`` as float32, in one transaction: all entries or none.

        ``extractor``, a readable name of the extractor whose keys these are (its ``repr``),
        is recorded for ``mmfeat cache info``; the claims on ``release`` are dropped in the
        same transaction."""
        rows = [(key, *encode(key, vector)) for key, vector in entries.items()]
        if rows and callable(extractor):  # named only when something is stored
            extractor = extractor()
        named = (rows[0][0][:FINGERPRINT_HEX], str(extractor)) if rows and extractor else None
        self._store.write(rows, named=named, release=list(release))
        self._memo.add(entries)
        if self.shared is not None:
            self.shared.write(rows)
            if release:
                self.shared.release(list(release))

    def _refresh_before(self) -> int:
        return time.time_ns() - int(self.access_resolution_s * 1e9)

    def entries_by_extractor(self) -> list:
        """``[(extractor name, entries, bytes)]``, largest first; keys written without a name
        (or by another mmfeat) are grouped as ``"unnamed <fingerprint digest>"``."""
        return self._store.by_extractor()

    # ------------------------------------------------------------------ claims

    def claim_many(self, keys, *, stale_after: float = 3600.0):
        """Claim the keys that no live process is computing.

        Returns ``(claimed, busy)``: compute ``claimed`` then :meth:`release` them; wait for
        ``busy`` with :meth:`wait_for`. A key stored since it was looked up is busy, not
        claimed (:meth:`wait_for` returns it at once). A claim whose process is gone (same
        host, pid not alive) or older than ``stale_after`` seconds is taken over. On a store
        error every key is returned as claimed, so the caller simply computes everything.
        """
        keys = list(dict.fromkeys(keys))
        return self._store.claim(keys, stale_after) if keys else ([], [])

    def release(self, keys) -> None:
        """Drop this process's claims on ``keys`` (after storing their features, or failing)."""
        keys = list(keys)
        if keys:
            self._store.release(keys)
            if self.shared is not None:
                self.shared.release(keys)

    def wait_for(self, keys, *, poll: float = 0.05, timeout: float = 3600.0,
                 stale_after: float = 3600.0) -> dict:
        """Wait until other processes finish the claimed ``keys``; return ``{key: vector}`` for
        those that arrived. Keys whose claim ended without a result (the item failed) or whose
        owner died meanwhile (same liveness rule as :meth:`claim_many`; in the shared tier, a
        lease not renewed) are left out at once for the caller to compute."""
        return upkeep.wait_for(self._store, self.shared, keys, poll, timeout, stale_after)

    # ------------------------------------------------------------------ maintenance

    def stats(self) -> dict:
        """Return ``path``, ``entries``, ``bytes`` (of vectors), ``hits`` and ``misses`` (totals
        of every process that used the store) and ``session_hits``/``session_misses``."""
        self._flush_hits()
        return {"path": str(self.path), **self._store.count(),
                "session_hits": self.session_hits, "session_misses": self.session_misses}

    def check(self) -> dict:
        """Like :meth:`stats`, but raise :class:`~mmfeat.errors.CacheError` when the store
        cannot be used, instead of warning and reporting an empty store."""
        self._flush_hits()
        counts = self._store.count(strict=True)
        return {"path": str(self.path), **counts, "read_only": self._store._read_only,
                "session_hits": self.session_hits, "session_misses": self.session_misses}

    def prune(self, max_bytes: int | None = None, *, older_than: float | None = None) -> int:
        """Delete entries not used for ``older_than`` seconds, then least-recently-used ones
        until the vectors take at most ``max_bytes``; return how many were removed.

        Access times are recorded to the minute (see ``access_resolution_s``). ``older_than``
        reaches the shared tier too (its server's idle clock); its size is bounded by the
        server's ``maxmemory`` instead of ``max_bytes``.
        """
        upkeep.check_prune_args(max_bytes, older_than)
        upkeep.forget_in_memory(self.path)
        removed = self._store.prune(max_bytes, older_than)
        if self.shared is not None and older_than is not None:
            removed += self.shared.prune(older_than)
        return removed

    def forget(self, items) -> int:
        """Delete the entries of ``items`` under every extractor; return how many were removed.

        An item is what an extractor takes (a path, a text, bytes, an array, ``(waveform,
        sr)``). A string is forgotten both as a text and, when it names a file, as that file's
        content (under both ``file_keys`` settings). Items that cannot be read are skipped.
        The shared tier's entries are deleted too.
        """
        digests = sorted(set().union(*map(item_digests, items)))
        upkeep.forget_in_memory(self.path)
        removed = self._store.forget(digests)
        if self.shared is not None:  # forgetting an item forgets it on every machine
            removed += self.shared.forget(digests)
        return removed

    def shared_info(self) -> dict | None:
        """The shared tier's ``url`` (no password), ``entries`` (this mmfeat version's),
        ``bytes`` (the server's memory in use), ``maxmemory`` and ``policy``; None without one.

        Raises
        ------
        CacheError
            The shared tier is configured but cannot be reached.
        """
        return None if self.shared is None else self.shared.info()

    def clear(self) -> None:
        """Remove every entry and reset the totals; a damaged store is deleted and recreated.

        Raises
        ------
        CacheError
            The store could not be reset (a read-only store, or a path that cannot be removed).
        """
        upkeep.forget_in_memory(self.path)
        self._memo_hits = 0
        self._store.clear()

    def close(self) -> None:
        """Close this process's connection (the next call reopens it) and drop the vectors
        kept in memory."""
        self._flush_hits()
        self._memo.clear()
        self._store.close()

    def _take_memo_hits(self) -> int:
        """The hits served from memory since the last count, and none counted yet (call with
        ``_counts_lock`` held). A forked child's are its own: its parent counts the parent's."""
        hits = self._memo_hits if self._memo_pid == os.getpid() else 0
        self._memo_hits, self._memo_pid = 0, os.getpid()
        return hits

    _flush_hits = upkeep.flush_hits  # add the hits served from memory to the store's totals


def _reopen(path, shared):
    cache = FeatureCache(path, shared=shared)
    return _INSTANCES.setdefault(cache._instance_key(), cache)


def resolve_cache(cache, settings=None):
    """Turn an estimator's ``cache=`` argument into a :class:`FeatureCache` or ``None`` (off).

    ``None`` means the global default, ``False`` off, a path the store in that directory;
    ``settings`` are :func:`mmfeat.config.cache_settings` read for this ``cache`` (read now when
    not given). Instances are shared per directory and process, so that repeated
    ``transform`` calls reuse one connection.
    """
    if isinstance(cache, FeatureCache):
        return cache
    settings = settings or cache_settings(cache)
    cache = settings["location"]
    if cache is None or isinstance(cache, FeatureCache):
        return cache
    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"Got cache={cache!r}, expected None (the global default), "
                        "False (off), a directory path or a FeatureCache.")
    path = Path(cache).expanduser().resolve()
    key = (str(path), settings["shared_cache"] or None, os.getpid())
    if key not in _INSTANCES:
        _INSTANCES.setdefault(key, FeatureCache(path))
    return _INSTANCES[key]


def fetch_or_compute(cache, settings, keys, compute, **options) -> dict:
    """``resolve_cache(cache, settings).fetch_or_compute(keys, compute, **options)``, for a
    cache that ``settings["location"]`` says is on: what a transform calls, once."""
    return resolve_cache(cache, settings).fetch_or_compute(keys, compute, **options)
