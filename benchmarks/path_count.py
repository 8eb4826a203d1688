"""One item's path through mmfeat: how often ``CNNEmbedder().fit_transform([path])`` moves
between mmfeat's modules, on a cold feature cache and on a hit.

A profiler hook (``sys.setprofile``, and ``threading.setprofile`` for the loader thread) sees
every Python call and return; per thread, the innermost mmfeat frame's module is followed, and
each time it changes counts one module change (a call into another module and the return from
it count two). A change into a module the item had already left counts as a re-entry. Code
outside mmfeat (numpy, scikit-learn, torch, ONNX Runtime) is transparent.

Three runs, in two fresh processes sharing one cache directory, empty at first (given as
``MMFEAT_CACHE_DIR``; the exported ONNX graph is shared, so no run exports it again):
  cold           the first fit_transform: the cache misses, the model loads;
  hit            a new CNNEmbedder().fit_transform([path]) in the same process: a cache hit;
  hit, new proc  the same call in a new process whose cache holds the item.

    python benchmarks/path_count.py            # prints one line per run
    python benchmarks/path_count.py --show     # and every module change inside transform
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CHILD = r"""
import json, sys, threading
import numpy as np
import cv2
from mmfeat.image import CNNEmbedder

path, cache_dir, runs = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
SHOW = len(sys.argv) > 4
state = threading.local()
totals = {"changes": 0, "reentries": 0, "fit": 0, "transform": 0}
phase = [None]


def innermost(frame):
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == "mmfeat" or name.startswith("mmfeat."):
            return name
        frame = frame.f_back
    return None


def hook(frame, event, arg):
    if event not in ("call", "return"):
        return
    module = innermost(frame if event == "call" else frame.f_back)
    current = getattr(state, "current", None)
    if module is None or module == current:
        return
    seen = state.__dict__.setdefault("seen", set())
    if current is not None:
        totals["changes"] += 1
        totals["reentries"] += module in seen
        if phase[0]:
            totals[phase[0]] += 1
            if SHOW and phase[0] == "transform":
                print(f"  {current} -> {module}  ({frame.f_code.co_name}, {event})",
                      file=sys.stderr)
        seen.add(current)
    state.current = module


def traced(label, fn):
    for key in totals:
        totals[key] = 0
    state.__dict__.clear()
    threading.setprofile(hook)
    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    print(json.dumps({"run": label, **totals}), flush=True)


def fit_transform():
    ext = CNNEmbedder()  # the default cache: MMFEAT_CACHE_DIR
    phase[0] = "fit"
    ext.fit([path])
    phase[0] = "transform"
    out = ext.transform([path])
    phase[0] = None
    assert out.shape == (1, 1280)


for label in runs:
    traced(label, fit_transform)
"""


def main():
    with tempfile.TemporaryDirectory() as tmp:
        import cv2
        import numpy as np

        image = Path(tmp) / "photo.png"
        rng = np.random.default_rng(0)
        cv2.imwrite(str(image), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8))
        cache = Path(tmp) / "cache"
        cache.mkdir()
        # the graph exported once (ONNX Runtime) is shared, so that no run exports it again
        from mmfeat.config import default_cache_dir

        (default_cache_dir() / "onnx").mkdir(parents=True, exist_ok=True)
        (cache / "onnx").symlink_to(default_cache_dir() / "onnx")
        env = {**os.environ, "MMFEAT_CACHE_DIR": str(cache)}
        rows, show = [], sys.argv[1:2] == ["--show"]
        for runs in ("cold,hit", "hit in a new process"):
            out = subprocess.run([sys.executable, "-c", CHILD, str(image), str(cache), runs,
                                  *(["show"] if show else [])],
                                 capture_output=True, text=True, check=True, env=env)
            if show:
                print(out.stderr, file=sys.stderr)
            rows += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    print(f"{'run':<18}{'module changes':>16}{'re-entries':>12}{'in fit':>8}{'in transform':>14}")
    for row in rows:
        print(f"{row['run']:<18}{row['changes']:>16}{row['reentries']:>12}{row['fit']:>8}"
              f"{row['transform']:>14}")


if __name__ == "__main__":
    threading.current_thread().name = "path_count"
    main()
