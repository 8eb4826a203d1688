"""The one exception and the one warning that mmfeat raises for bad items."""

from __future__ import annotations

import contextvars
from contextlib import contextmanager


class ItemError(Exception):
    """A single item could not be loaded or featurised (raised inside loaders)."""


class ExtractionError(ValueError):
    """An item of the input could not be turned into features.

    Attributes
    ----------
    row : int
        Position of the item in the input (0-based), whatever the index of the input was.
    item : str
        A short description of the item: the path, the start of the text, or the array shape.
    cause : str
        What went wrong.
    """

    def __init__(self, row: int, item: str, cause: str, extractor: str = ""):
        self.row, self.item, self.cause, self.extractor = row, item, cause, extractor
        who = f"{extractor}: " if extractor else ""
        super().__init__(f"{who}row {row} ({item}): {cause}")

    def __reduce__(self):  # keep the fields across process boundaries (joblib, Dask)
        return (type(self), (self.row, self.item, self.cause, self.extractor))


class UntrustedTypesError(TypeError):
    """A ``.skops`` model file holds types nobody trusted; ``types`` names them.

    ``how`` is the way to trust them where the file was loaded: ``trusted=[...]`` from Python,
    ``--trusted TYPE`` on the command line.
    """

    def __init__(self, path: str, types: list, how: str = "load_model(path, trusted=[...])"):
        self.path, self.types, self.how = path, list(types), how
        super().__init__(f"The model file {path} holds types that are not trusted: {self.types}. "
                         f"If you know where the file comes from and expect these types, pass them: {how}.")

    def __reduce__(self):
        return (type(self), (self.path, self.types, self.how))


class ExtractionWarning(UserWarning):
    """Some rows failed under ``on_error="nan"`` and were given NaN features."""


class CacheWarning(UserWarning):
    """The feature cache could not be read or written; features were computed instead."""


class CacheError(RuntimeError):
    """An explicit cache operation (info, clear, prune, forget) could not be done."""


# Rows that failed under on_error="nan" are also reported to every active collector, so that
# callers such as batch scoring can put the cause of each failure in an output column.
_collectors: contextvars.ContextVar[tuple] = contextvars.ContextVar("mmfeat_error_collectors", default=())


@contextmanager
def collect_errors():
    """Collect the :class:`ExtractionError` of every row that failed under ``on_error="nan"``.

    Examples
    --------
    >>> from mmfeat.errors import collect_errors
    >>> with collect_errors() as errors:
    ...     pass  # run transforms here
    >>> errors
    []
    """
    found: list[ExtractionError] = []
    token = _collectors.set(_collectors.get() + (found,))
    try:
        yield found
    finally:
        _collectors.reset(token)


def report_errors(errors) -> None:
    for collector in _collectors.get():
        collector.extend(errors)
