"""The shared tier of the feature cache: one Redis (or Valkey) server, or Redis Cluster, that
every machine of a cluster reads and writes, behind the same protocol as the local tier.

Keys are the local store's keys (fingerprint digest + item digest) under a namespace naming
the value format and mmfeat's version, ``mmfeat:<format>:<version>:<key>``, so an entry
written by another mmfeat is never read as this one's. A value is the local tier's bytes with
a header: ``<dim uint32><checksum uint32><float32 little-endian ...>``; a value whose checksum
fails is deleted and recomputed. Every batch is one pipeline (``MGET``, ``SET`` ...), never a
round trip per item. Eviction is the server's (``maxmemory-policy allkeys-lru``); an optional
TTL bounds each entry's life.

Claims across machines are ``SET claim-key owner NX PX lease``: the owner (host, pid and a
random id) renews its lease from a background thread while it computes, and a claim whose
lease lapsed (a dead worker) is simply gone, so another worker takes it over.

The server down, slow or full never fails a job: the first error warns once, the tier is then
skipped for ``retry_after_s`` seconds and tried again, so it comes back by itself.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
import uuid
import warnings

from .errors import CacheWarning
from .vectors import decode

FORMAT = 1  # of the values below; part of every key
_HEADER = struct.Struct("<II")  # dim, checksum
_CHUNK = 1000  # keys per MGET / pipeline
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0"""
_RENEW = """if redis.call('get', KEYS[1]) == ARGV[1] then
return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"""


def _version() -> str:
    from . import __version__

    return __version__


class RedisStore:
    """The shared tier at ``url`` (``redis://[user:password@]host:port/db``, ``rediss://`` for
    TLS).

    Parameters
    ----------
    url : str
    ttl_s : float or None
        Life of an entry in seconds (None: until the server evicts it).
    timeout_s : float
        Socket timeout of every call: a slower server is treated as down.
    lease_s : float
        Life of a claim unless its owner renews it (every third of it, while computing).
    retry_after_s : float
        After an error, the tier is skipped for this long, then tried again.
    """

    def __init__(self, url: str, *, ttl_s=None, timeout_s=2.0, lease_s=30.0, retry_after_s=30.0):
        self.url, self.ttl_s, self.timeout_s = url, ttl_s, timeout_s
        self.lease_s, self.retry_after_s = lease_s, retry_after_s
        self.namespace = f"mmfeat:{FORMAT}:{_version()}:"
        self._client, self._pid, self._down_until, self._warned = None, None, 0.0, False
        self._owner = None
        self._renewing: dict = {}  # claim key -> owner id, renewed by the lease thread
        self._lock = threading.Lock()
        self._renewer = None

    def __repr__(self):
        return f"RedisStore({_redacted(self.url)!r})"

    @classmethod
    def from_url(cls, url: str) -> "RedisStore":
        """The tier named by a setting's URL: ``?ttl=SECONDS`` sets ``ttl_s``; the rest of the
        URL goes to the Redis client as it is."""
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        ttl = query.pop("ttl", None)
        try:
            ttl_s = float(ttl) if ttl is not None else None
        except ValueError:
            ttl_s = -1.0
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"Got ttl={ttl!r} in the shared cache URL, expected a positive "
                             "number of seconds.")
        return cls(urlunsplit(parts._replace(query=urlencode(query))), ttl_s=ttl_s)

    # ------------------------------------------------------------------ primitives

    def read(self, keys) -> dict:
        """``{key: vector}`` for the keys present with a valid checksum ({} when down)."""
        def op(client):
            found, damaged = {}, []
            for chunk in _chunks(keys):
                for key, value in zip(chunk, client.mget([self.namespace + k for k in chunk])):
                    if value is None:
                        continue
                    vector = _unpack(key, value)
                    if vector is None:
                        damaged.append(self.namespace + key)
                    else:
                        found[key] = vector
            if damaged:
                client.delete(*damaged)
            return found
        return self._run(op, {}) if keys else {}

    def write(self, rows) -> None:
        """Store ``[(key, dim, blob, checksum)]`` (one pipeline per chunk)."""
        ttl_ms = int(self.ttl_s * 1000) if self.ttl_s else None

        def op(client):
            for chunk in _chunks(rows):
                pipe = client.pipeline(transaction=False)
                for key, dim, blob, check in chunk:
                    pipe.set(self.namespace + key, _HEADER.pack(dim, check) + blob, px=ttl_ms)
                pipe.execute()
        if rows:
            self._run(op, None)

    def claim(self, keys) -> tuple:
        """``(claimed, busy)``: the keys this process now owns, and those another live owner
        holds. When the tier is down every key is claimed (the local tier's claims still
        split the work between the processes of one machine)."""
        owner = self._owner_id()

        def op(client):
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.set(self._claim_key(key), owner, nx=True, px=int(self.lease_s * 1000))
            won = [k for k, ok in zip(keys, pipe.execute()) if ok]
            # A key stored since the caller looked it up (computed elsewhere in between) is not
            # computed again: the claim just won is dropped and the key comes back busy, which
            # wait_for reads at once.
            for key in won:
                pipe.exists(self.namespace + key)
            stored = {k for k, n in zip(won, pipe.execute()) if n}
            for key in stored:
                pipe.delete(self._claim_key(key))
            pipe.execute()
            claimed = [k for k in won if k not in stored]
            with self._lock:
                self._renewing.update({self._claim_key(k): owner for k in claimed})
            self._start_renewer()
            return claimed, [k for k in keys if k not in claimed]
        return self._run(op, (list(keys), [])) if keys else ([], [])

    def live_claims(self, keys) -> set:
        """The keys still claimed by someone (a lapsed lease is gone)."""
        def op(client):
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(self._claim_key(key))
            return {k for k, n in zip(keys, pipe.execute()) if n}
        return self._run(op, set()) if keys else set()

    def release(self, keys) -> None:
        owner = self._owner_id()
        names = [self._claim_key(k) for k in keys]
        with self._lock:
            for name in names:
                self._renewing.pop(name, None)

        def op(client):
            script = client.register_script(_RELEASE)
            pipe = client.pipeline(transaction=False)
            for name in names:
                script(keys=[name], args=[owner], client=pipe)
            pipe.execute()
        if names:
            self._run(op, None)

    def forget(self, digests) -> int:
        """Delete the entries of these item digests under every fingerprint (a scan of the
        namespace: an explicit, rare request)."""
        wanted = set(digests)

        def op(client):
            victims = [name for name in client.scan_iter(match=self.namespace + "*", count=1000)
                       if _text(name)[len(self.namespace):][32:] in wanted
                       and not _text(name).startswith(self.namespace + "claim:")]
            return _delete(client, victims)
        return self._run(op, 0, strict=True) if wanted else 0

    def prune(self, older_than: float) -> int:
        """Delete the entries not read or written for ``older_than`` seconds (the server's own
        idle clock, ``OBJECT IDLETIME``)."""
        def op(client):
            victims = []
            names = [n for n in client.scan_iter(match=self.namespace + "*", count=1000)]
            for chunk in _chunks(names):
                pipe = client.pipeline(transaction=False)
                for name in chunk:
                    pipe.object("idletime", name)
                victims += [n for n, idle in zip(chunk, pipe.execute())
                            if idle is not None and idle >= older_than]
            return _delete(client, victims)
        return self._run(op, 0, strict=True)

    def info(self) -> dict:
        """``entries`` (this version's), ``bytes`` (the server's used memory), ``maxmemory``,
        ``policy`` and ``url`` (without its password)."""
        def op(client):
            entries = sum(1 for name in client.scan_iter(match=self.namespace + "*", count=1000)
                          if not _text(name).startswith(self.namespace + "claim:"))
            memory = client.info("memory")
            policy = client.config_get("maxmemory-policy").get("maxmemory-policy", "")
            return {"url": _redacted(self.url), "entries": entries,
                    "bytes": memory.get("used_memory", 0),
                    "maxmemory": memory.get("maxmemory", 0), "policy": policy}
        return self._run(op, None, strict=True)

    def clear(self) -> int:
        """Delete every entry of this version's namespace."""
        def op(client):
            return _delete(client, list(client.scan_iter(match=self.namespace + "*", count=1000)))
        return self._run(op, 0, strict=True)

    # ------------------------------------------------------------------ connection

    def _run(self, operation, fallback, *, strict=False):
        """Run ``operation(client)``; an error (server down, slow, full, refusing) warns once
        and returns ``fallback``; the tier is skipped for ``retry_after_s`` seconds, then
        tried again. ``strict`` (explicit requests) raises :class:`~mmfeat.errors.CacheError`."""
        from .errors import CacheError

        if not strict and time.monotonic() < self._down_until:
            return fallback
        try:
            return operation(self._connection())
        except Exception as exc:  # redis' errors, OSError, a refused command: never fail a job
            self._client = None
            if strict:
                raise CacheError(f"The shared feature cache {_redacted(self.url)} cannot be "
                                 f"used: {type(exc).__name__}: {exc}") from exc
            self._down_until = time.monotonic() + self.retry_after_s
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"The shared feature cache {_redacted(self.url)} cannot be used "
                    f"({type(exc).__name__}: {exc}); features are served by the local cache and "
                    f"computed where missing. It is tried again every {self.retry_after_s:g} s.",
                    CacheWarning, stacklevel=6)
            return fallback

    def _connection(self):
        if self._client is None or self._pid != os.getpid():  # a forked child: its own socket
            import redis

            self._client = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s)
            if self._pid != os.getpid():  # a forked child: its own claims and lease thread
                self._owner, self._renewer, self._renewing = None, None, {}
            self._pid = os.getpid()
        return self._client

    def _owner_id(self) -> str:
        """Who holds this process's claims: fixed for the life of the process."""
        me = f"{socket.gethostname()}:{os.getpid()}:"
        if self._owner is None or not self._owner.startswith(me):
            self._owner = me + uuid.uuid4().hex[:12]
        return self._owner

    def _claim_key(self, key: str) -> str:
        return f"{self.namespace}claim:{key}"

    def _start_renewer(self):
        with self._lock:
            if self._renewer is not None and self._renewer.is_alive():
                return
            self._renewer = threading.Thread(target=self._renew_forever, daemon=True,
                                             name="mmfeat-claim-lease")
            self._renewer.start()

    def _renew_forever(self):
        """Renew this process's claims every third of the lease while it holds any."""
        while True:
            time.sleep(self.lease_s / 3)
            with self._lock:
                held = dict(self._renewing)
            if not held:
                return
            def op(client):
                script = client.register_script(_RENEW)
                pipe = client.pipeline(transaction=False)
                for name, owner in held.items():
                    script(keys=[name], args=[owner, int(self.lease_s * 1000)], client=pipe)
                pipe.execute()
            self._run(op, None)


def _unpack(key, value):
    if len(value) < _HEADER.size:
        return None
    dim, check = _HEADER.unpack_from(value)
    return decode(key, dim, bytes(value[_HEADER.size:]), check)


def _text(name) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _delete(client, names) -> int:
    removed = 0
    for chunk in _chunks(names):
        removed += client.delete(*chunk)
    return removed


def _chunks(items):
    items = list(items)
    return (items[i:i + _CHUNK] for i in range(0, len(items), _CHUNK))


def _redacted(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))
