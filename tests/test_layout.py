"""The package's layering: which modules may import which, read from the source (every import,
at the top or inside a function, so a lazy import cannot hide an arrow pointing back); and
which modules a cache hit goes through."""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mmfeat"


def imported(module: str) -> set:
    """The mmfeat modules ``module`` (dotted, e.g. "robustness.report") imports, dotted."""
    path = PACKAGE.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("mmfeat."):
                target = node.module[len("mmfeat."):]
            else:
                continue
            found.add(target)
            found.update(f"{target}.{a.name}" if target else a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name[len("mmfeat."):] for a in node.names
                         if a.name.startswith("mmfeat."))
    return found


@pytest.mark.parametrize("module, forbidden", [
    ("keys", "io"),  # the keyer checks items (items.py), it never loads them
    ("items", "io"),
    ("introspect", "base"),  # base.Extractor carries introspect's mark, not the other way
    ("robustness.report", "video._base"),  # a video extractor says modality = "video"
])
def test_no_back_arrow(module, forbidden):
    assert forbidden not in imported(module), f"mmfeat.{module} imports mmfeat.{forbidden}"


def test_reader_finds_imports():
    """The reader above sees relative, absolute and function-level imports (else the test
    above would pass on anything)."""
    assert {"errors", "items"} <= imported("keys")
    assert "items" in imported("fusion.novelty")  # imported inside a function
    assert "base" in imported("robustness.report")


def _calls_between_modules(fn) -> Counter:
    """How often ``fn()`` calls from one mmfeat module into another, by the module called: the
    innermost mmfeat frame followed as ``benchmarks/path_count.py`` does (this thread only)."""
    calls, current = Counter(), [None]

    def innermost(frame):
        while frame is not None:
            name = frame.f_globals.get("__name__", "")
            if name == "mmfeat" or name.startswith("mmfeat."):
                return name
            frame = frame.f_back
        return None

    def hook(frame, event, arg):
        if event in ("call", "return"):
            module = innermost(frame if event == "call" else frame.f_back)
            if module is not None and module != current[0]:
                if event == "call" and current[0] is not None:
                    calls[module] += 1
                current[0] = module

    sys.setprofile(hook)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return calls


def test_a_cache_hit_enters_each_module_of_its_path_once(tmp_path):
    """A hit checks the item, reads the settings, keys the item, and asks the cache, which finds
    the vector in this process's memory, or else has its store read the value and check it:
    each module entered once (the memory twice: looked in, then filled), and no model,
    device, runtime or loader (a tuple parameter, such as bins, keys the plan without the
    fingerprint's code)."""
    from mmfeat.cache import FeatureCache
    from mmfeat.image import ColorHistogram

    image = np.zeros((8, 8, 3), np.uint8)
    ext = ColorHistogram(bins=(4, 4, 4), cache=FeatureCache(tmp_path)).fit([image])
    first = ext.transform([image])
    calls = _calls_between_modules(lambda: np.testing.assert_array_equal(ext.transform([image]),
                                                                          first))
    path = ("items", "config", "keys", "cache")
    assert calls == {f"mmfeat.{m}": 1 for m in (*path, "memo")}, calls
    ext.cache._memo.clear()  # as after a minute: read from the store again
    calls = _calls_between_modules(lambda: np.testing.assert_array_equal(ext.transform([image]),
                                                                          first))
    assert calls == {**{f"mmfeat.{m}": 1 for m in (*path, "sqlite_store", "vectors")},
                     "mmfeat.memo": 2}, calls
