"""The error policy of every extractor: what a transform does with the rows it could not
featurise, named in the base class's contract and applied only when a row failed.

Under ``on_error="raise"`` the first failed row in row order raises an
:class:`~mmfeat.errors.ExtractionError` naming the row, the item and the cause, and counting
every other failed row. Under ``on_error="nan"`` every failure goes to the active collectors,
and real failures (not missing values) give one warning.
"""

from __future__ import annotations

import warnings

from .errors import ExtractionError, ExtractionWarning, report_errors
from .items import describe


def row_error(extractor, items, row, cause) -> ExtractionError:
    return ExtractionError(row, describe(items[row]), cause, type(extractor).__name__)


def apply(extractor, items, failed: dict) -> None:
    """:meth:`mmfeat.base.Extractor.handle_failures` for a non-empty ``{row: cause}``."""
    if extractor.on_error == "raise":
        row = min(failed)
        more = f" ({len(failed) - 1} more rows failed)" if len(failed) > 1 else ""
        raise row_error(extractor, items, row, failed[row] + more)
    # Missing values (None/NaN) come out as NaN rows without a warning, as NaN passes through
    # scikit-learn's own transformers; a file or item that could not be read warns.
    errors = [row_error(extractor, items, row, failed[row]) for row in sorted(failed)]
    report_errors(errors)
    broken = [e for e in errors if e.cause != "missing value"]
    if broken:
        missing = len(errors) - len(broken)
        also = f" ({missing} more were missing values)" if missing else ""
        name = type(extractor).__name__
        warnings.warn(
            f"{name}: {len(broken)} of {len(items)} rows failed and were given "
            f"NaN features{also}; first: {broken[0]}",
            ExtractionWarning,
            stacklevel=3,  # the caller of handle_failures
        )
