"""The robustness report: a fitted model's score with each modality removed, then corrupted at
each level, on the same rows."""

from __future__ import annotations

import math
import os
import re
import tempfile
import zlib
from collections.abc import Mapping
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.metrics import check_scoring
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ..base import Extractor
from ..errors import ItemError
from ..items import is_missing
from .corrupt import (
    IMAGE_CORRUPTIONS,
    check_fraction,
    check_snr,
    corrupt_audio,
    corrupt_image,
    corrupt_text,
)

KINDS = ("image", "audio", "text")

#: Each perturbation, the kind of item it applies to and how its levels are checked.
PERTURBATIONS = {
    **{name: ("image", lambda v: check_fraction("level", v)) for name in IMAGE_CORRUPTIONS},
    "snr": ("audio", check_snr),
    "word_dropout": ("text", lambda v: check_fraction("rate", v)),
}

#: ``corruptions="default"``: image severities, audio SNRs in dB, text word-dropout rates.
DEFAULT_CORRUPTIONS = {
    "image": {"blur": (0.25, 0.5, 0.75), "noise": (0.25, 0.5, 0.75),
              "occlusion": (0.25, 0.5, 0.75)},
    "audio": {"snr": (20, 10, 0)},
    "text": {"word_dropout": (0.25, 0.5, 0.75)},
}

COLUMNS = ["modality", "kind", "perturbation", "level", "score", "delta", "status", "n_changed"]


def robustness_report(model, X, y, *, modalities=None, corruptions="default", scoring=None,
                      random_state=0, work_dir=None) -> pd.DataFrame:
    """Score a fitted model with each modality removed, and corrupted at each level.

    The model is scored on ``X`` as it is (the clean score), then once per condition on a copy
    of ``X`` where one modality's column is changed: set to missing (None) in every row, or
    each of its items corrupted (see :func:`corrupt_image`, :func:`corrupt_audio`,
    :func:`corrupt_text`). Corrupted images and sounds are new files, so the feature cache
    computes their features (and keeps them: the same ``random_state`` gives the same bytes,
    so a second report reuses them); items that are missing stay missing, and items that
    cannot be read are left as they are.

    Parameters
    ----------
    model : fitted estimator
        Any fitted scikit-learn estimator that predicts from a DataFrame with one column per
        modality: a late fusion, an early fusion ``Pipeline``, or your own.
    X : pandas.DataFrame
        Rows to score on (held-out rows, not those the model was fitted on).
    y : array-like of shape (n_samples,)
        Their targets.
    modalities : dict, list of str or None, default=None
        The modalities to perturb, ``{name: column}`` or ``{name: (column, kind)}`` with kind
        "image", "audio", "text" or None (removed only, never corrupted); a column given
        without a kind takes it from the name, else from the column's name. A list names
        columns that are their own modality. None reads them from the model: a
        :class:`~mmfeat.fusion.LateFusionClassifier` / ``Regressor``'s ``modalities``, or the
        extractors of a :func:`~mmfeat.fusion.make_early_fusion` model (kind from each
        extractor; video extractors are removed only).
    corruptions : "default", dict or None, default="default"
        ``{kind: {perturbation: levels}}``: for "image" "blur", "noise" and "occlusion" with
        severities in [0, 1]; for "audio" "snr" with signal-to-noise ratios in dB; for "text"
        "word_dropout" with rates in [0, 1]. "default" is :data:`DEFAULT_CORRUPTIONS` (three
        levels each); None or ``{}`` only removes modalities. A kind left out is not corrupted.
    scoring : str, callable or None, default=None
        A scikit-learn scorer name ("accuracy", "balanced_accuracy", "r2" ...) or a callable
        ``scorer(estimator, X, y)``; None uses ``model.score``.
    random_state : int or None, default=0
        Seed of every corruption; each condition's randomness depends only on it and on the
        condition's modality, perturbation and level. None draws fresh randomness.
    work_dir : str, path-like or None, default=None
        Folder for the corrupted files, ``{work_dir}/{modality}/{perturbation}-{level}/``, kept
        after the call; a modality whose name is not a plain name (letters, digits, ``-``,
        ``_``, ``.``) gets ``{i}-{name}``, its position and its name with the other characters
        replaced by ``_``: a name is never a path. None uses a temporary folder, deleted before
        returning (or, after a ``kill -9``, by the next report).

    Returns
    -------
    pandas.DataFrame
        One row for the clean score (``perturbation="none"``, no modality), then per modality
        one row ``"missing"`` and one per perturbation and level, with columns ``modality``,
        ``kind``, ``perturbation``, ``level`` (NaN for "none" and "missing"), ``score``,
        ``delta`` (score minus the clean score), ``status`` ("ok"; "cannot handle missing:
        <the error's first line>" when the model raised on a removed modality; "failed:
        <the error's first line>" when it raised on a corrupted one; ``score`` is then NaN) and
        ``n_changed`` (the items removed or corrupted). ``attrs["scoring"]`` names the score.
        A model with ``outliers="missing"`` (a late fusion, or early-fusion blocks) gets every
        row twice, with a column ``outliers``: "off" with the option switched off (the same
        model otherwise, as it uses its training rows alike either way), then "missing" as it
        is; each ``delta`` is against the clean score of its own setting.

    See Also
    --------
    plot_robustness : draw the report.

    Examples
    --------
    >>> from mmfeat.robustness import robustness_report
    >>> report = robustness_report(model, test, test["label"])  # doctest: +SKIP
    >>> missing = report[report["perturbation"] == "missing"]  # doctest: +SKIP
    >>> missing[["modality", "score", "status"]]  # doctest: +SKIP
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"Got X of type {type(X).__name__}, expected a pandas DataFrame with one "
                        "column per modality.")
    if len(y) != len(X):
        raise ValueError(f"Got {len(y)} targets for {len(X)} rows of X.")
    check_is_fitted(model)
    specs = _modalities(model, modalities, X)
    plan = _corruptions(corruptions)
    seed = _seed(random_state)
    scorer = check_scoring(model, scoring=scoring)

    switches = outlier_switches(model)
    settings = [("off", []), ("missing", switches)] if switches else [(None, switches)]

    def scored(condition, X_condition, failure):
        """The condition's row under each setting of the outliers option."""
        for setting, on in settings:
            with _outliers_only(switches, on):
                rows.append(dict(condition, outliers=setting,
                                 **_score(scorer, model, X_condition, y, failure)))

    clean = {}
    for setting, on in settings:  # an error on the clean rows is the caller's, and raised
        with _outliers_only(switches, on):
            clean[setting] = float(scorer(model, X, y))
    rows = [dict(modality=None, kind=None, perturbation="none", level=math.nan, score=score,
                 status="ok", n_changed=0, outliers=setting) for setting, score in clean.items()]
    _remove_stale_temporaries()
    with tempfile.TemporaryDirectory(prefix=f"{_TMP_PREFIX}{os.getpid()}-") as tmp:
        root = Path(tmp if work_dir is None else work_dir)
        for index, (name, (column, kind)) in enumerate(specs.items()):
            present = [not is_missing(item) for item in X[column]]
            removed = X.assign(**{column: pd.Series(None, index=X.index, dtype=object)})
            scored(dict(modality=name, kind=kind, perturbation="missing", level=math.nan,
                        n_changed=sum(present)), removed, "cannot handle missing")
            for perturbation, levels in plan.get(kind, {}).items():
                for level in levels:
                    rng = np.random.default_rng(
                        [seed, zlib.crc32(f"{name}/{perturbation}/{level!r}".encode())])
                    folder = root / _folder_name(index, name) / f"{perturbation}-{level:g}"
                    items, changed = _corrupt_column(X[column], kind, perturbation, level, rng,
                                                     folder)
                    scored(dict(modality=name, kind=kind, perturbation=perturbation,
                                level=float(level), n_changed=changed),
                           X.assign(**{column: items}), "failed")
    report = pd.DataFrame(rows)
    report["delta"] = report["score"] - [clean[setting] for setting in report["outliers"]]
    report = report[COLUMNS + (["outliers"] if switches else [])]
    report.attrs["scoring"] = scoring if isinstance(scoring, str) else "score"
    return report


_TMP_PREFIX = "mmfeat-robustness-"


def _folder_name(index: int, name) -> str:
    """A modality's folder: its name when that is a plain name (letters, digits, ``-``, ``_``,
    ``.``, not starting with a dot), else its position and the name with anything else
    replaced. A name is never a path: a model file's modality may be called ``../../x`` or
    ``/etc``."""
    name = str(name)
    if (re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,59}", name)
            and not re.fullmatch(r"\d\d-.*", name)):
        return name
    return f"{index:02d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)[:60]}"


def _remove_stale_temporaries() -> None:
    """Remove the temporary folders of reports whose process is gone (a ``kill -9`` runs no
    clean-up): they are named after the process that made them, and are this user's."""
    import shutil

    base = Path(tempfile.gettempdir())
    try:
        entries = list(base.glob(f"{_TMP_PREFIX}*"))
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(_TMP_PREFIX):].split("-", 1)[0]
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not pid.isdigit() or info.st_uid != os.geteuid() or not entry.is_dir() \
                or entry.is_symlink() or _alive(int(pid)):
            continue
        shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def outlier_switches(model) -> list:
    """The parts of a fitted model whose ``outliers="missing"`` acts at predict time: the late
    fusion itself, or the early-fusion blocks that have it (empty for any other model)."""
    from ..fusion import ModalityBlock, is_late_fusion

    if is_late_fusion(model):
        return [model] if model.outliers == "missing" else []
    union = model.steps[0][1] if isinstance(model, Pipeline) else model
    blocks = getattr(union, "transformers_", []) if isinstance(union, ColumnTransformer) else []
    return [block for _, block, _ in blocks
            if isinstance(block, ModalityBlock) and block.outliers == "missing"]


@contextmanager
def _outliers_only(switches, on):
    """Within the block, ``outliers="missing"`` is on in ``on`` and off in the other
    ``switches`` (a fitted model's option switched at predict time, then restored)."""
    for part in switches:
        if part not in on:
            part.outliers = None
    try:
        yield
    finally:
        for part in switches:
            part.outliers = "missing"


def _score(scorer, model, X, y, failure: str) -> dict:
    """The score, or NaN and a status naming the error's first line: a model that cannot take a
    condition is reported, and the other conditions are still measured."""
    try:
        return {"score": float(scorer(model, X, y)), "status": "ok"}
    except Exception as exc:  # noqa: BLE001 - any model, any error: reported, not raised
        message = str(exc).strip().splitlines()
        reason = message[0] if message else type(exc).__name__
        return {"score": math.nan, "status": f"{failure}: {reason[:200]}"}


def _corrupt_column(items: pd.Series, kind: str, perturbation: str, level, rng, folder: Path):
    """The column with each present, readable item corrupted, and how many were."""
    out, changed = [], 0
    for row, item in enumerate(items):
        try:
            if is_missing(item) or (kind == "text" and not isinstance(item, str)):
                corrupted = item
            elif kind == "text":
                corrupted = corrupt_text(item, rate=level, rng=rng)
            elif kind == "image":
                corrupted = corrupt_image(item, folder / f"{row:06d}.png", kind=perturbation,
                                          level=level, rng=rng)
            else:
                corrupted = corrupt_audio(item, folder / f"{row:06d}.wav", snr_db=level, rng=rng)
        except ItemError:  # unreadable here as it was for the model: it gets the same item
            corrupted = item
        changed += corrupted is not item
        out.append(corrupted)
    return pd.Series(out, index=items.index, dtype=object), changed


def corruption_kind(extractor):
    """The kind of corruption (``"image"``, ``"audio"`` or ``"text"``) an extractor's items take,
    or None (a video, numbers, anything else: removal only).

    Examples
    --------
    >>> from mmfeat.image import ColorHistogram
    >>> from mmfeat.robustness import corruption_kind
    >>> corruption_kind(ColorHistogram()), corruption_kind("passthrough")
    ('image', None)
    """
    kind = getattr(extractor, "modality", None)  # a video's is "video": removal only
    return kind if kind in KINDS else None


def _from_model(model) -> dict:
    """``{name: (column, kind)}`` of an mmfeat fusion model, or None for another model."""
    specs = getattr(model, "modalities", None)
    if isinstance(specs, Mapping):  # late fusion: {name: (column, extractor, ...)}
        return {name: (spec[0], corruption_kind(spec[1])) for name, spec in specs.items()}
    union = model.steps[0][1] if isinstance(model, Pipeline) else model
    if not isinstance(union, ColumnTransformer):
        return None
    found = {}
    for name, block, column in getattr(union, "transformers_", union.transformers):
        extractor = getattr(block, "extractor", block)  # a ModalityBlock, or a bare extractor
        if isinstance(extractor, Extractor) and isinstance(column, str):
            found[name] = (column, corruption_kind(extractor))
    return found or None


def _modalities(model, modalities, X) -> dict:
    if modalities is None:
        specs = _from_model(model)
        if specs is None:
            raise ValueError(f"Cannot tell the modality columns of a {type(model).__name__}: pass "
                             "modalities={name: (column, kind)}, "
                             "e.g. {'image': ('photo', 'image')}.")
    elif isinstance(modalities, Mapping):
        specs = {}
        for name, spec in modalities.items():
            if isinstance(spec, str):
                kind = name if name in KINDS else spec if spec in KINDS else None
                if kind is None:
                    raise ValueError(f"Got modalities[{name!r}]={spec!r}: cannot tell its kind "
                                     f"from the names, give ({spec!r}, kind) with kind in {KINDS} "
                                     "or None.")
                spec = (spec, kind)
            if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str)
                    and spec[1] in (*KINDS, None)):
                raise ValueError(f"Got modalities[{name!r}]={spec!r}, expected a column name or "
                                 f"(column, kind) with kind in {KINDS} or None.")
            specs[name] = spec
    elif isinstance(modalities, (list, tuple)) and all(isinstance(c, str) for c in modalities):
        return _modalities(model, {c: c for c in modalities}, X)
    else:
        raise ValueError(f"Got modalities={modalities!r}, expected None, a dict "
                         "{name: column or (column, kind)} or a list of column names.")
    unknown = [column for column, _ in specs.values() if column not in X.columns]
    if unknown:
        raise ValueError(f"Got modality columns {unknown} that X does not have; its columns are "
                         f"{list(X.columns)}.")
    if not specs:
        raise ValueError("Got no modality to perturb.")
    return specs


def _corruptions(corruptions) -> dict:
    """``{kind: {perturbation: (level, ...)}}``, every name and level checked."""
    if isinstance(corruptions, str) and corruptions == "default":
        return DEFAULT_CORRUPTIONS
    if corruptions is None:
        return {}
    if not isinstance(corruptions, Mapping):
        raise ValueError(f"Got corruptions={corruptions!r}, expected 'default', None or a dict "
                         "{kind: {perturbation: levels}}.")
    plan = {}
    for kind, perturbations in corruptions.items():
        if kind not in KINDS:
            raise ValueError(f"Got corruptions for kind {kind!r}, expected one of {KINDS}.")
        if not isinstance(perturbations, Mapping):
            raise ValueError(f"Got corruptions[{kind!r}]={perturbations!r}, expected a dict "
                             "{perturbation: levels}.")
        plan[kind] = {}
        for perturbation, levels in perturbations.items():
            expected = [p for p, (k, _) in PERTURBATIONS.items() if k == kind]
            if perturbation not in expected:
                raise ValueError(f"Got perturbation {perturbation!r} for kind {kind!r}, expected "
                                 f"one of {expected}.")
            levels = [levels] if np.isscalar(levels) else list(levels)
            check = PERTURBATIONS[perturbation][1]
            plan[kind][perturbation] = tuple(check(level) for level in levels)
    return plan


def _seed(random_state) -> int:
    """The root of every corruption's randomness: ``random_state``, or fresh entropy for None."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, bool) or not isinstance(random_state, Integral) or random_state < 0:
        raise ValueError(f"Got random_state={random_state!r}, expected a non-negative int or None.")
    return int(random_state)
