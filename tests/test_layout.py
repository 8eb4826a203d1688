"""The package's layering: which modules may import which. Read from the source (every import,
at the top or inside a function), so a lazy import cannot hide an arrow pointing back."""

from __future__ import annotations

import ast
from pathlib import Path

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
