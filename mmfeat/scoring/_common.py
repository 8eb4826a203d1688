"""What every part of batch scoring shares: the output folder's names, the job's error types,
short texts for errors and ids."""

from __future__ import annotations

import re

from ..errors import ScoringError  # noqa: F401  (raised by every part of scoring)

JOB_FILE = "_job.json"
MODEL_COPY = "_model.joblib"
JOB_FORMAT = "mmfeat-score-job"
JOB_VERSION = 2
LOCK_FILE = ".mmfeat-lock"
PART_RE = re.compile(r"^part-(\d{5,})\.parquet$")
N_FIRST_ERRORS = 5
OUTPUT_NAMES = ("row", "prediction", "error", "missing")


class _Systematic(Exception):
    """Every row of a chunk fails the same way: a problem of the job, not of the rows."""


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _exc_text(exc: BaseException, limit: int = 500) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt_id(ident: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in ident.items())
