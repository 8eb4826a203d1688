"""What every part of batch scoring shares: the output folder's names, the job's error types,
short texts for errors and ids."""

from __future__ import annotations

import re

JOB_FILE = "_job.json"
MODEL_COPY = "_model.joblib"
JOB_FORMAT = "mmfeat-score-job"
JOB_VERSION = 2
LOCK_FILE = ".mmfeat-lock"
PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")
N_FIRST_ERRORS = 5
OUTPUT_NAMES = ("row", "prediction", "error", "missing")


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


class _Systematic(Exception):
    """Every row of a chunk fails the same way: a problem of the job, not of the rows."""


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _exc_text(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt_id(ident: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in ident.items())
