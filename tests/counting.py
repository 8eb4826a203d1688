"""A real Extractor that logs every item it featurises, to count work across processes."""

from __future__ import annotations

import os

import numpy as np

from mmfeat.base import Extractor
from mmfeat.io import load_text


class CountingText(Extractor):
    """Character statistics of a text; appends one line per featurised item to ``log_path``."""

    modality = "text"
    feature_prefix = "count"
    runtime_params = Extractor.runtime_params | {"log_path"}

    def __init__(self, scale=1.0, *, log_path=None, batch_size=16, n_jobs=None, cache=None,
                 on_error="raise", verbose=False):
        self.scale = scale
        self.log_path = log_path
        self.batch_size = batch_size
        self.n_jobs = n_jobs
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _load_item(self, item):
        text = load_text(item)
        if text == "BOOM":
            raise ValueError("exploded on purpose")
        return text

    def _features(self, loaded):
        if self.log_path:
            with open(self.log_path, "a") as log:  # O_APPEND lines are atomic across processes
                log.write("".join(f"{os.getpid()}\n" for _ in loaded))
        return self.scale * np.array(
            [[len(t), sum(c.isupper() for c in t), t.count(" "),
              sum(map(ord, t)) % 97] for t in loaded],
            dtype=np.float32,
        )

    def _feature_suffixes(self):
        return ["length", "upper", "spaces", "hash97"]


def count_lines(path) -> int:
    return sum(1 for _ in open(path)) if os.path.exists(path) else 0
