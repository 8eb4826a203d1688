"""Every public exception and warning of mmfeat, in one place (each is also importable from
the module that raises it, as before): bad items (:class:`ItemError`, :class:`ExtractionError`,
:class:`ExtractionWarning`), the cache, model files, batch scoring, video decoding and the
command line."""

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
                         "If you know where the file comes from and expect these types, "
                         f"pass them: {how}.")

    def __reduce__(self):
        return (type(self), (self.path, self.types, self.how))


class ExtractionWarning(UserWarning):
    """Some rows failed under ``on_error="nan"`` and were given NaN features."""


class CacheWarning(UserWarning):
    """The feature cache could not be read or written; features were computed instead."""


class CacheError(RuntimeError):
    """An explicit cache operation (info, clear, prune, forget) could not be done."""


class ModelVersionWarning(UserWarning):
    """The model file was made by another mmfeat or scikit-learn version (or its extractors'
    fingerprints changed since): predictions may differ from the ones seen at training time."""


class ModelSettingsWarning(UserWarning):
    """Settings of a loaded model's extractors that would switch a guard off or exceed this
    job's limits (``max_pixels``, ``timeout``, ``batch_size``, ``n_jobs``) were replaced by the
    limits; the warning says which."""


class ScoringError(RuntimeError):
    """The scoring job itself failed (bad model, unreadable input, a different job in the output
    folder, too many failed rows). Failures of single rows never raise: they land in ``error``.

    Attributes
    ----------
    summary : dict or None
        The job summary when the job ran to the end (e.g. the error rate was too high).
    """

    def __init__(self, message, summary=None):
        super().__init__(message)
        self.summary = summary


class PartialDecodeWarning(UserWarning):
    """Some frames (or part of the sound track) of a video could not be decoded; its features
    come from the rest."""


class UsageError(Exception):
    """An ordinary mistake on the ``mmfeat`` command line: reported in one line, exit status 2."""


# Rows that failed under on_error="nan" are also reported to every active collector, so that
# callers such as batch scoring can put the cause of each failure in an output column.
_collectors: contextvars.ContextVar[tuple] = contextvars.ContextVar("mmfeat_error_collectors",
                                                                   default=())


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
