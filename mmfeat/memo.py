"""The in-process tier of the feature cache: vectors this process read from the store or
stored there lately, kept in memory by key.

A grid search transforms the same rows once per fit: 5 folds x 6 candidates look every
training row up 30 times. Without this tier each lookup is a SQLite query, a checksum and a
decode; with it, a worker reads a fold's rows from the store once and keeps them.

It can never serve a stale vector: a key is the digest of the item's content under the
extractor's fingerprint, so a changed file or parameter is another key. An entry is trusted
for ``max_age_s`` only (the store's access-time resolution): after that it is looked up in
the store again, which records the access for pruning and drops what another process pruned
or cleared. This process's own ``clear``, ``prune`` and ``forget`` empty it at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict

import numpy as np


class VectorMemo:
    """Least-recently-used vectors by key, at most ``max_bytes`` of them.

    Vectors are kept read-only, as float32; :meth:`take` returns copies, so a caller may
    write to what it gets.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict = OrderedDict()  # key -> (vector, monotonic time stored)
        self._bytes = 0
        self._pid, self._lock = os.getpid(), threading.Lock()

    def take(self, keys, max_age_s: float) -> dict:
        """``{key: copy of its vector}`` of the keys held for less than ``max_age_s``."""
        found = {}
        if not self._entries:
            return found
        oldest = time.monotonic() - max_age_s
        with self._locked():
            entries = self._entries
            for key in keys:
                entry = entries.get(key)
                if entry is not None and entry[1] > oldest:
                    entries.move_to_end(key)
                    found[key] = entry[0].copy()
        return found

    def add(self, vectors: dict) -> None:
        """Remember ``{key: 1-D vector}`` as float32, as of now; the least recently used
        entries go when the total exceeds ``max_bytes``."""
        if self.max_bytes <= 0 or not vectors:
            return
        now = time.monotonic()
        with self._locked():
            entries = self._entries
            for key, vector in vectors.items():
                vector = np.array(vector, dtype=np.float32)  # a copy the caller cannot touch
                vector.setflags(write=False)
                old = entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[0].nbytes
                entries[key] = (vector, now)
                self._bytes += vector.nbytes
            while self._bytes > self.max_bytes and entries:
                _, (vector, _) = entries.popitem(last=False)
                self._bytes -= vector.nbytes

    def clear(self) -> None:
        with self._locked():
            self._entries.clear()
            self._bytes = 0

    def _locked(self):
        if self._pid != os.getpid():  # forked: the parent's lock may have been held
            self._pid, self._lock = os.getpid(), threading.Lock()
        return self._lock
