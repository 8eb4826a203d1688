"""Keys: the only place that decides what an item's content is, whether a file has changed,
and how an extractor's settings are written into its fingerprint.
``make_key(fingerprint, item_digest(item, modality))`` is the key of an item's features under
an extractor, in every cache tier and every process; :func:`file_digest` is the one hasher of
files (items, model weights, model files).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import stat
import threading
import time

import numpy as np

from .errors import ItemError
from .items import file_error, is_missing

FINGERPRINT_HEX = 32  # hex characters of the fingerprint part of a key
_MODALITIES = ("image", "audio", "text")
_FILE_BLOCK = 1 << 20


def item_digest(item, modality: str, file_keys: str = "content") -> str:
    """Return a hex BLAKE2b digest of an item's content, the same wherever the item lives.

    Parameters
    ----------
    item : str, PathLike, bytes, ndarray or (waveform, sr)
        A ``str`` is a file path for ``"image"``/``"audio"`` (the file's bytes are digested,
        not its name) and the text itself for ``"text"``. An array is digested with its dtype
        and shape; a ``(waveform, sr)`` audio pair as float32 samples, shape and rate.
    modality : {"image", "audio", "text"}
    file_keys : {"content", "stat"}
        Digest a file's bytes, or only its ``(absolute path, size, mtime_ns)``: faster for
        very large files, but it trusts the file system to change mtime on every write.

    Raises
    ------
    ItemError
        Missing value, unreadable file, or a type that cannot be keyed.
    """
    if modality not in _MODALITIES:
        raise ValueError(f"Got modality={modality!r}, expected one of {_MODALITIES}.")
    if file_keys not in ("content", "stat"):
        raise ValueError(f"Got file_keys={file_keys!r}, expected 'content' or 'stat'.")
    if is_missing(item):
        raise ItemError("missing value")
    return _digest(item, modality, file_keys)


def rows_by_key(items, failed: dict, modality: str, prefix: str, file_keys: str) -> dict:
    """``{key: [rows holding that item]}`` of the rows not in ``failed``, their items already
    checked (:func:`~mmfeat.items.check_items`) and keyed under an extractor's
    ``key_prefix(fingerprint)``, in one call for all rows. A row whose item cannot be keyed
    (an unreadable file, as :func:`item_digest`) is added to ``failed`` with its cause."""
    groups: dict = {}
    for row, item in enumerate(items):
        if row in failed:
            continue
        try:
            key = prefix + _digest(item, modality, file_keys)
        except ItemError as exc:
            failed[row] = str(exc)
            continue
        groups.setdefault(key, []).append(row)
    return groups


def _digest(item, modality, file_keys):
    h = hashlib.blake2b(digest_size=32)
    # Each kind is tagged, so a text and the same bytes (or a file) never share a key.
    if isinstance(item, str) and modality == "text":
        h.update(b"text:" + item.encode("utf-8", "surrogatepass"))
    elif isinstance(item, (str, os.PathLike)) and modality != "text":
        _digest_file(h, item, file_keys)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        h.update(b"bytes:")
        h.update(item)
    elif isinstance(item, np.ndarray):
        if item.dtype.hasobject:  # the bytes of an object array are pointers, not content
            raise ItemError(f"cannot key an array of dtype {item.dtype}")
        h.update(f"array:{item.dtype.str}|{item.shape}|".encode())
        h.update(np.ascontiguousarray(item).view(np.uint8))
    elif modality == "audio" and isinstance(item, tuple) and len(item) == 2:
        try:
            wave, sr = np.ascontiguousarray(item[0], dtype=np.float32), float(item[1])
        except (TypeError, ValueError) as exc:
            raise ItemError(f"expected a (waveform, sr) pair: {exc}") from None
        h.update(f"wave:{wave.shape}|{sr!r}|".encode())
        h.update(wave.view(np.uint8))
    else:
        raise ItemError(f"cannot key an item of type {type(item).__name__} for {modality}")
    return h.hexdigest()


_BUFFERS = threading.local()


def _file_buffer() -> bytearray:
    """One read buffer per thread, reused: allocating (and zeroing) 1 MiB for every file costs
    more than hashing a small file, and about 50x more in Dask workers, whose nanny sets
    MALLOC_TRIM_THRESHOLD_ (each 1 MiB block then becomes an mmap/munmap pair)."""
    block = getattr(_BUFFERS, "block", None)
    if block is None:
        block = _BUFFERS.block = bytearray(_FILE_BLOCK)
    return block


# Content digests of files already read by this process, keyed by what any write changes:
# (path, inode, size, mtime, ctime). ctime cannot be set by user programs (unlike mtime), so a
# rewrite that keeps size and mtime still misses here. Only files whose last change is older
# than _SETTLED_NS are remembered: a write in the same clock tick as our read could otherwise
# leave every stat field unchanged. A grid search keys each file dozens of times; this reads it
# once.
_FILE_DIGESTS: dict = {}
_FILE_DIGESTS_MAX = 100_000
_SETTLED_NS = 2_000_000_000
_FILE_DIGESTS_LOCK = threading.Lock()


def _digest_file(h, path, file_keys):
    try:
        path = os.fspath(path)
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(st.st_mode):  # reading a FIFO or /dev/zero would never end
            raise ItemError("not a regular file (a FIFO, device or socket)")
        if file_keys == "stat":
            path = os.path.abspath(path)
            h.update(b"stat:" + os.fsencode(path) + f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
            return
        memo = (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        digest = _FILE_DIGESTS.get(memo)
        if digest is None:
            digest = _content_digest(path)
            if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
                with _FILE_DIGESTS_LOCK:
                    if len(_FILE_DIGESTS) >= _FILE_DIGESTS_MAX:
                        _FILE_DIGESTS.pop(next(iter(_FILE_DIGESTS)), None)  # oldest first
                    _FILE_DIGESTS[memo] = digest
        h.update(b"file:" + digest)
    except OSError as exc:
        raise file_error(exc) from None


def _content_digest(path) -> bytes:
    h = hashlib.blake2b(digest_size=32)
    block = _file_buffer()
    view = memoryview(block)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(block):
            h.update(view[:n])
    return h.digest()


def make_key(fingerprint: str, digest: str) -> str:
    """Return the store key of an item's digest under an extractor's fingerprint.

    The fingerprint's digest comes first and the item's digest after it, so that
    :meth:`FeatureCache.forget` finds an item's entries under every extractor.
    """
    return key_prefix(fingerprint) + digest


def key_prefix(fingerprint: str) -> str:
    """The first part of every key under an extractor's fingerprint (computed once per call)."""
    return hashlib.blake2b(fingerprint.encode(), digest_size=FINGERPRINT_HEX // 2).hexdigest()


def file_digest(path) -> str:
    """A hex BLAKE2b digest of a file's bytes, remembered until the file changes (the same
    memo as items' digests): model weights, model files."""
    h = hashlib.blake2b(digest_size=32)
    _digest_file(h, path, "content")
    return h.hexdigest()


# How an item may have been keyed: as a text, or as a file (by content or by stat); bytes and
# arrays are keyed the same way under every modality.
_KEYINGS = (("text", "content"), ("image", "content"), ("image", "stat"))


def item_digests(item) -> set:
    """Every digest ``item`` may have been stored under, whatever extractor keyed it: a string
    is both a text and, when it names a file, that file (under both ``file_keys`` settings).
    Empty for an item that cannot be keyed (a missing value, an unreadable file)."""
    digests = set()
    for modality, file_keys in _KEYINGS:
        try:
            digests.add(item_digest(item, modality, file_keys))
        except (ItemError, ValueError):
            pass
    return digests


def stable_form(value):
    """A JSON-able, address-free form of a parameter value for a fingerprint.

    Numbers are normalised so that equal settings share keys: ``224.0`` is ``224`` and ``0.0``
    is ``0`` (bools stay bools).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [stable_form(v) for v in value]
    if isinstance(value, dict):
        return {str(k): stable_form(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, np.ndarray):
        digest = hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16)
        return "array:" + digest.hexdigest()
    if isinstance(value, functools.partial):
        return {"partial": stable_form(value.func), "args": stable_form(list(value.args)),
                "keywords": stable_form(value.keywords)}
    if callable(value) and hasattr(value, "__qualname__"):
        name = f"{getattr(value, '__module__', '')}.{value.__qualname__}"
        code = getattr(value, "__code__", None)
        # The code itself, so that two lambdas, or a function edited between runs, never share keys.
        return name + (":" + _code_digest(code) if code is not None else "")
    return repr(value)


def _code_digest(code) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        h.update((_code_digest(const) if hasattr(const, "co_code") else repr(const)).encode())
    return h.hexdigest()
