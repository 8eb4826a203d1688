"""How a feature vector is stored, in every tier: little-endian float32 bytes and a checksum
that covers the key too, so that a damaged value, or one stored under another key, is never
served."""

from __future__ import annotations

import zlib

import numpy as np

DISK_DTYPE = np.dtype("<f4")  # fixed byte order, so a store can move between machines


def encode(key: str, vector) -> tuple:
    """``(dim, bytes, checksum)`` of a 1-D vector stored under ``key``."""
    vector = np.asarray(vector)
    if vector.ndim != 1:
        raise ValueError(f"Got a vector of shape {vector.shape} for {key!r}, expected 1-D.")
    blob = vector.astype(DISK_DTYPE).tobytes()
    return vector.size, blob, checksum(key, blob)


def decode(key: str, dim, blob, check) -> np.ndarray | None:
    """The float32 vector of a stored value, or None when it is damaged."""
    if isinstance(blob, bytes) and len(blob) == 4 * dim and checksum(key, blob) == check:
        return np.frombuffer(blob, dtype=DISK_DTYPE).astype(np.float32)
    return None


def checksum(key: str, blob: bytes) -> int:
    return zlib.crc32(blob, zlib.crc32(key.encode()))
