"""The timing helpers the benchmark scripts share: raw library and mmfeat paired, and the
seconds spent inside a method."""

from __future__ import annotations

import functools
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


def adding_seconds_to(total: list):
    """Wrap a method so that every call adds the seconds it took to ``total[0]`` (for the
    time spent inside extractors, against a whole run's)."""
    def wrap(method):
        @functools.wraps(method)
        def timed_method(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - start
        return timed_method
    return wrap


def two_topic_notes(n: int):
    """``n`` short notes about one of two topics, and their labels (seed 0): the text grid
    searches' data frame, columns ``text`` and ``label``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    topics = [["cats", "kittens", "purring"], ["stocks", "markets", "shares"]]
    labels = rng.integers(0, 2, n)
    texts = [f"a note {i} about {rng.choice(topics[y])} and {rng.choice(topics[y])}"
             for i, y in enumerate(labels)]
    return pd.DataFrame({"text": texts, "label": labels})
