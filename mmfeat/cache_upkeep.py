"""The feature cache's upkeep, apart from its protocol (``cache.py``).

What the stores of this process share: the :class:`~mmfeat.cache.FeatureCache` instances it
holds (one per store, so that pickles and clones share a connection; the memory of all of them
on one store emptied by a clear, prune or forget through any; their hits served from memory
added to the store's totals at exit) and one connection per shared tier. And two pieces of
the methods' work kept off the class: the checks of ``prune``'s arguments, and the wait for
keys another process claimed. ``FeatureCache`` keeps every public method (the API reference
lists them) as a call to these; nothing here is on a cache hit's path.
"""

from __future__ import annotations

import atexit
import numbers
import os
import time
import weakref

_INSTANCES = {}  # (directory, shared url, pid) -> FeatureCache, for resolve_cache
_LIVE = weakref.WeakSet()  # every instance, for the hit counts kept in memory at exit
_SHARED: dict = {}  # (url, pid) -> RedisStore: one connection and one warning per process


def forget_in_memory(path) -> None:
    """Empty the memory of every instance of this process on the store at ``path``: after a
    clear, prune or forget through one, none serves what the user meant to drop."""
    for cache in list(_LIVE):
        if cache.path == path:
            cache._memo.clear()


@atexit.register
def _flush_all_hits():
    for cache in list(_LIVE):
        if cache._store._pid == os.getpid():
            cache._flush_hits()


def flush_hits(cache) -> None:
    """Add the hits ``cache`` served from memory to its store's totals."""
    with cache._counts_lock:
        extra = cache._take_memo_hits()
    if extra:
        cache._store.read([], refresh_before_ns=0, extra_hits=extra)


def shared_store(url):
    """This process's one :class:`~mmfeat.redis_store.RedisStore` for ``url``."""
    from .redis_store import RedisStore

    key = (url, os.getpid())
    if key not in _SHARED:
        _SHARED[key] = RedisStore.from_url(url)
    return _SHARED[key]


def check_prune_args(max_bytes, older_than) -> None:
    """Raise ValueError unless ``prune`` got a non-negative integer ``max_bytes``, a
    non-negative number of seconds ``older_than``, or both (None for the one not given)."""
    if max_bytes is not None and (
            not isinstance(max_bytes, numbers.Integral) or isinstance(max_bytes, bool)
            or max_bytes < 0):
        raise ValueError(f"Got max_bytes={max_bytes!r}, expected a non-negative integer.")
    if older_than is not None and (
            not isinstance(older_than, numbers.Real) or isinstance(older_than, bool)
            or not older_than >= 0):
        raise ValueError(f"Got older_than={older_than!r}, "
                         "expected a non-negative number of seconds.")
    if max_bytes is None and older_than is None:
        raise ValueError("Give max_bytes, older_than or both.")


def wait_for(store, shared, keys, poll, timeout, stale_after) -> dict:
    """:meth:`mmfeat.cache.FeatureCache.wait_for` on the local ``store`` and the ``shared``
    tier (or None): poll until each key arrived or has no live claim left."""
    pending, found = list(keys), {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        arrived = store.read(pending, refresh_before_ns=0, count=False)
        if arrived is None:
            break
        if shared is not None:
            arrived.update(shared.read([k for k in pending if k not in arrived]))
        found.update(arrived)
        rest = [k for k in pending if k not in arrived]
        live = store.live_claims(rest, stale_after)
        if shared is not None:
            live |= shared.live_claims([k for k in rest if k not in live])
        pending = [k for k in rest if k in live]
        if pending:
            time.sleep(poll)
    return found
