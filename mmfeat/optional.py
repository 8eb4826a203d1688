"""Optional dependencies: one place that imports them, or says what to install."""

from __future__ import annotations

import importlib
import importlib.util


def _missing(module: str, who: str, extra: str | None, package: str | None) -> ImportError:
    install = f'pip install "mmfeat[{extra}]"' if extra else f"pip install {package or module}"
    return ImportError(f"{who} needs {package or module}: {install}")


def require(module: str, *, who: str, extra: str | None = None, package: str | None = None) -> None:
    """Raise an ImportError naming what to install when ``module`` is not installed, without
    importing it (a check for ``fit`` that keeps heavy imports for first use)."""
    if importlib.util.find_spec(module) is None:
        raise _missing(module, who, extra, package)


def import_optional(module: str, *, who: str, extra: str | None = None, package: str | None = None):
    """Import ``module``, or raise an ImportError naming ``who`` needs it and what to install
    (the mmfeat extra that brings it, or its PyPI ``package``)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise _missing(module, who, extra, package) from None
