"""The output folder of a scoring job: atomic parts and job files, the job record that makes
a rerun resume, the stats of finished parts, and the lock that keeps a second job out."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import TMP_PREFIX, atomic_write, write_bytes
from ._common import (
    JOB_FILE,
    LOCK_FILE,
    MODEL_COPY,
    N_FIRST_ERRORS,
    PART_RE,
    ScoringError,
    part_name,
)


def _write_json_atomic(path: Path, data: dict) -> None:
    write_bytes(path, (json.dumps(data, indent=1, default=str) + "\n").encode())


def _write_part(table, out_dir: Path, index: int) -> None:
    import pyarrow.parquet as pq

    with atomic_write(out_dir / part_name(index)) as f:
        pq.write_table(table, f)


def _existing_parts(out: Path) -> dict:
    found = {}
    for f in out.iterdir():
        m = PART_RE.match(f.name)
        if m:
            found[int(m.group(1))] = f
    return found


def _open_output(out: Path, job: dict, info: dict, overwrite: bool) -> dict:
    """Create or check the output folder; return the finished parts {index: path}."""
    if out.exists() and not out.is_dir():
        raise ScoringError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():  # leftovers of a run that was killed while writing
        if f.name.startswith(TMP_PREFIX):
            f.unlink(missing_ok=True)
    job_file = out / JOB_FILE
    parts = _existing_parts(out)
    job = json.loads(json.dumps(job, default=str))
    if not overwrite:
        if job_file.exists():
            try:
                old = json.loads(job_file.read_text()).get("job")
            except (OSError, ValueError) as exc:
                raise ScoringError(f"cannot read {job_file}: {exc}; "
                                   "use --overwrite to start over") from None
            if old == job:
                return parts
            differ = sorted(k for k in set(old or {}) | set(job)
                            if (old or {}).get(k) != job.get(k))
            raise ScoringError(
                f"the output folder {out} holds another scoring job (it differs in: "
                f"{', '.join(differ)}). Use --overwrite to replace it, or choose another folder."
            )
        if parts:
            raise ScoringError(
                f"the output folder {out} holds part files but no {JOB_FILE}; use --overwrite "
                "to replace them, or choose another folder."
            )
    for f in parts.values():
        f.unlink(missing_ok=True)
    for name in (JOB_FILE, MODEL_COPY, "_summary.json"):
        (out / name).unlink(missing_ok=True)
    _write_json_atomic(job_file, {"job": job, **info})
    return {}


def _part_stats(path: Path, id_cols) -> dict:
    """Stats of a part finished by an earlier run."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["error", "missing"])
    err = table.column("error")
    failed = len(err) - err.null_count
    imputed = len(err) - table.column("missing").null_count
    first = []
    if failed:
        table = pq.read_table(path, columns=[*(id_cols or ["row"]), "error"])
        failures = table.filter(pc.is_valid(table.column("error")))
        bad = failures.slice(0, N_FIRST_ERRORS).to_pylist()
        first = [{"id": {k: v for k, v in r.items() if k != "error"}, "error": r["error"]}
                 for r in bad]
    return {"part": int(PART_RE.match(path.name).group(1)), "rows": len(err), "failed": failed,
            "imputed": imputed, "errors": first}


def _lock_output(out: Path):
    """Hold an exclusive lock on the output folder for the whole job: a second job started on
    the same folder is refused at once instead of racing the first one's files. The lock goes
    with the process, even after ``kill -9``."""
    import fcntl

    if out.exists() and not out.is_dir():
        raise ScoringError(f"output {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ScoringError(f"another mmfeat score job is running in {out}; wait for it to end, "
                           "or choose another folder") from None
    return handle
