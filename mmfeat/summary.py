"""Summaries over time, shared by the audio and video extractors: turn frame-wise features of
shape (n_features, n_frames) into one fixed-length vector, whatever the length of the clip."""

from __future__ import annotations

import re

import numpy as np

_NAMED = {
    "mean": lambda x: x.mean(axis=1),
    "std": lambda x: x.std(axis=1),
    "min": lambda x: x.min(axis=1),
    "max": lambda x: x.max(axis=1),
    "median": lambda x: np.median(x, axis=1),
}
_PERCENTILE = re.compile(r"p(0|[1-9]\d{0,2})")


def _percentile(name: str):
    match = _PERCENTILE.fullmatch(name)
    if match and int(match.group(1)) <= 100:
        return int(match.group(1))
    return None


def check_stats(stats, owner=None) -> tuple:
    """Validate ``stats`` and return it as a tuple of names.

    Accepted names: ``"mean"``, ``"std"``, ``"min"``, ``"max"``, ``"median"`` and percentiles
    written ``"p0"`` ... ``"p100"`` (``"p10"``, ``"p90"``), each once.

    Parameters
    ----------
    stats : str or sequence of str
    owner : estimator, optional
        Named in the error, worded as scikit-learn's parameter validation words it.
    """
    given = stats
    if isinstance(stats, str):
        stats = (stats,)
    try:
        stats = tuple(stats)
    except TypeError:
        stats = ()
    bad = [s for s in stats
           if not isinstance(s, str) or (s not in _NAMED and _percentile(s) is None)]
    if not stats or bad or len(set(stats)) != len(stats):
        who = type(owner).__name__ if owner is not None else "the summary"
        from ._sklearn_compat import InvalidParameterError

        raise InvalidParameterError(
            f"The 'stats' parameter of {who} must be a non-empty sequence of distinct names among "
            f"{sorted(_NAMED)} or percentiles written 'p0' ... 'p100' (e.g. 'p10', 'p90'), each "
            f"statistic once. Got {given!r} instead."
        )
    return stats


def summarise(frames: np.ndarray, stats) -> np.ndarray:
    """Statistics of each row of ``frames`` (n_features, n_frames) over time.

    Returns
    -------
    ndarray of shape (n_features * len(stats),), float32
        Feature-major: all statistics of row 0, then of row 1, ... (the order of
        :func:`stat_names`).
    """
    frames = np.asarray(frames, dtype=np.float64)
    percentiles = [p for p in map(_percentile, stats) if p is not None]
    ranked = {}
    if percentiles:
        ranked = dict(zip(percentiles, np.percentile(frames, percentiles, axis=1)))
    columns = [ranked[_percentile(s)] if s not in _NAMED else _NAMED[s](frames) for s in stats]
    return np.stack(columns, axis=1).ravel().astype(np.float32)


def summarise_runs(frames: np.ndarray, edges: np.ndarray, stats) -> list:
    """:func:`summarise` of each run of frames ``frames[:, a:b]`` for consecutive ``a, b`` of
    ``edges`` (clips laid end to end), as a list of vectors.

    Means and standard deviations are summed for every run at once (``np.add.reduceat``,
    two passes like ``np.std``, in float64); other statistics run by run.
    """
    if not set(stats) <= {"mean", "std"}:
        return [summarise(frames[:, a:b], stats) for a, b in zip(edges[:-1], edges[1:])]
    frames = np.asarray(frames, dtype=np.float64)
    starts, counts = edges[:-1], np.diff(edges)
    mean = np.add.reduceat(frames, starts, axis=1) / counts
    columns = {"mean": mean}
    if "std" in stats:
        deviations = frames - np.repeat(mean, counts, axis=1)
        columns["std"] = np.sqrt(np.add.reduceat(deviations * deviations, starts, axis=1) / counts)
    # (rows, runs) per statistic -> one feature-major vector per run
    out = np.stack([columns[s] for s in stats], axis=2).transpose(1, 0, 2)
    return list(out.reshape(len(counts), -1).astype(np.float32))


def stat_names(row_names, stats) -> list[str]:
    """Column names matching :func:`summarise`: ``{row}_{stat}`` for each row, then each stat."""
    return [f"{row}_{stat}" for row in row_names for stat in stats]
