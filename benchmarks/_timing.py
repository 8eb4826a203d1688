"""The one timing helper the benchmark scripts share: raw library and mmfeat, paired."""

from __future__ import annotations

import statistics
import time


def paired(raw, ours, rounds: int):
    """Time ``raw()`` and ``ours()`` in alternating order, ``rounds`` times.

    Returns (best raw seconds, best mmfeat seconds, median of the per-round ratios raw/ours).
    Pairing keeps the ratio honest on a shared machine whose load drifts between rounds, and
    alternating the order keeps either side from always running on a warmer machine.
    """
    raw_s, our_s, ratios = [], [], []
    for r in range(rounds):
        pair = {}
        order = [("raw", raw), ("ours", ours)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            fn()
            pair[name] = time.perf_counter() - start
        raw_s.append(pair["raw"])
        our_s.append(pair["ours"])
        ratios.append(pair["raw"] / pair["ours"])
    return min(raw_s), min(our_s), statistics.median(ratios)
