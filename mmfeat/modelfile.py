"""Saving and loading fitted models, with the versions and extractor fingerprints they were made
with.

A model file is a joblib file holding one dict::

    {"format": "mmfeat-model", "format_version": 1,
     "mmfeat_version": ..., "sklearn_version": ..., "python_version": ..., "created": ...,
     "extractors": {name: fingerprint, ...},
     "model": <the fitted estimator>}

Model weights (torch, sentence-transformers) are never in the file: extractors load them lazily
on first use, on the device available then, so a file saved on a GPU machine loads and runs on
a CPU-only one and stays small.

.. warning::
   joblib files are pickles: **loading one runs code chosen by whoever wrote it.** Load model
   files only from sources you trust (your own training jobs, an artifact store you control).
   Never load a model file received from an untrusted party.

A path ending in ``.skops`` is written and read with ``skops.io`` instead (``pip install
"mmfeat[skops]"``): loading builds only the types skops trusts (numpy, scikit-learn), mmfeat's
own classes, and the types the caller names in ``trusted=``; any other type in the file is
refused before anything is built. mmfeat's own types are trusted by exact class name
(:func:`safe_model_types`), never by prefix, and no function or method is trusted unless named
(that reading is in ``skops_file.py``).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import warnings
from pathlib import Path

from .atomic import atomic_write
from .errors import ModelSettingsWarning, ModelVersionWarning
from .image_header import DEFAULT_MAX_PIXELS
from .introspect import find_extractors, package_version
from .skops_file import DEFAULT_MAX_ARRAY_BYTES, load_skops, safe_model_types

__all__ = ["ModelSettingsWarning", "ModelVersionWarning", "find_extractors", "load_model",
           "safe_model_types", "save_model"]

FORMAT = "mmfeat-model"
FORMAT_VERSION = 1


#: The limits a loaded model's extractors are held to, unless its settings are trusted: the
#: defaults of the extractors' own guards, and batches a job can hold in memory.
_LIMITS = {"max_pixels": DEFAULT_MAX_PIXELS, "timeout": 60.0, "batch_size": 1024}


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _extractors_within(model):
    """(name, extractor) for every extractor in ``model``, those a video extractor wraps too."""
    from .base import Extractor

    seen = set()
    pending = list(find_extractors(model).items())
    while pending:
        name, extractor = pending.pop(0)
        if id(extractor) in seen:
            continue
        seen.add(id(extractor))
        yield name, extractor
        for attr in ("extractor", "extractor_"):
            inner = getattr(extractor, attr, None)
            if isinstance(inner, Extractor):
                pending.append((f"{name}.{attr}", inner))


def _beyond(value, limit) -> bool:
    """A guard switched off (None), not a number, or past its limit."""
    from numbers import Real

    return value is None or isinstance(value, bool) or not isinstance(value, Real) or value > limit


def apply_limits(model, *, source="the model") -> list:
    """Hold every extractor in ``model`` to this job's limits, and warn saying what changed.

    ``max_pixels`` and ``timeout`` (guards a file could switch off with None or raise) are
    lowered to their defaults, ``batch_size`` to 1024, and ``n_jobs`` to this machine's cores.

    Returns
    -------
    list of str
        ``"name.param: file value -> limit"`` for each setting replaced.
    """
    from numbers import Integral

    cores, changed = _cores(), []
    for name, extractor in _extractors_within(model):
        params = extractor.get_params(deep=False)
        new = {key: limit for key, limit in _LIMITS.items()
               if key in params and _beyond(params[key], limit)}
        jobs = params.get("n_jobs")
        if "n_jobs" in params and jobs is not None and (isinstance(jobs, bool)
                                                         or not isinstance(jobs, Integral)
                                                         or not -cores <= jobs <= cores):
            new["n_jobs"] = cores
        if new:
            extractor.set_params(**new)
            changed += [f"{name}.{key}: {params[key]!r} -> {value!r}" for key, value in new.items()]
    if changed:
        warnings.warn(f"{source}: settings past this job's limits were replaced "
                      f"({'; '.join(changed)}). Trust the file's own settings only if it is "
                      "yours: load_model(..., trust_settings=True), "
                      "mmfeat score --trust-model-settings.",
                      ModelSettingsWarning, stacklevel=3)
    return changed


def _versions() -> dict:
    import sklearn

    return {
        "mmfeat_version": package_version(),
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
    }


def _fingerprints(model) -> dict:
    out = {}
    for name, extractor in find_extractors(model).items():
        try:
            out[name] = extractor.fingerprint()
        except Exception as exc:  # an unfitted or broken extractor must not block saving
            out[name] = f"unavailable: {type(exc).__name__}: {exc}"
    return out


def _is_skops(path) -> bool:
    return os.fspath(path).endswith(".skops")


def _zip_compression(level: int) -> int:
    import zipfile

    return zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED


def _load_joblib(path):
    import joblib

    if not Path(path).is_file():
        raise FileNotFoundError(f"model file not found: {os.fspath(path)}")
    try:
        return joblib.load(path)
    except Exception as exc:  # a CSV, an image, a truncated file: not what save_model writes
        raise ValueError(
            f"{os.fspath(path)} is not a model file (one written by mmfeat.save_model or "
            f"joblib.dump): {type(exc).__name__}: {exc}") from None


def save_model(model, path, *, compress=3):
    """Save a fitted model with the versions and extractor fingerprints it was made with.

    The file is written atomically (a temporary file, then a rename): a crash never leaves a
    half-written model behind.

    Parameters
    ----------
    model : estimator
        Usually a fitted ``Pipeline``. Extractors keep their model weights out of the file.
    path : str or path-like
        Where to write: ``*.joblib`` (a pickle), or ``*.skops`` for a file that loads without
        running pickled code (needs ``skops``). Parent folders are created.
    compress : int, default=3
        joblib compression level (0-9); for skops, 0 stores and anything else deflates.

    Returns
    -------
    pathlib.Path
        The path written.

    Warnings
    --------
    The file is a pickle: loading it runs code. Share it only with people who trust you, and
    load only files you trust (see :func:`load_model`).

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mmfeat.modelfile import save_model, load_model
    >>> clf = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    >>> p = save_model(clf, tmp_dir / "clf.joblib")  # doctest: +SKIP
    >>> load_model(p).predict([[0.9]])  # doctest: +SKIP
    array([1])
    """
    import joblib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "extractors": _fingerprints(model),
        "model": model,
    }
    # Owner-only, like the feature cache: a model can reveal what it was trained on.
    with atomic_write(path, mode=0o600) as f:
        if _is_skops(path):
            import skops.io

            skops.io.dump(payload, f, compression=_zip_compression(compress))
        else:
            joblib.dump(payload, f, compress=compress)
    return path


def load_model(path, *, return_info=False, check_fingerprints=False, trusted=None,
               trust_settings=False, max_array_bytes=DEFAULT_MAX_ARRAY_BYTES):
    """Load a model saved with :func:`save_model` (plain joblib dumps of an estimator load too).

    Warns with :class:`ModelVersionWarning` when the file was made with another mmfeat or
    scikit-learn version, and, with ``check_fingerprints=True``, when an extractor's fingerprint
    differs from the one recorded (its features would differ from the ones the model was
    trained on).

    Works on machines without a GPU: model weights are not in the file; extractors load them on
    first use, on the device available then.

    .. warning::
       Loading a joblib/pickle file **runs code** chosen by whoever wrote the file. Load model
       files only from trusted sources, or save them as ``.skops``.

    Parameters
    ----------
    path : str or path-like
    return_info : bool, default=False
        Also return the metadata dict (everything but the model; ``{}`` for a plain joblib dump).
    check_fingerprints : bool, default=False
        Recompute every extractor's fingerprint and compare it with the recorded one. Off by
        default: for model-backed extractors it imports torch and digests the weights file, and
        the fingerprint of a CNN also records float16 use on a GPU, so it differs between a GPU
        and a CPU machine by design.
    trusted : list of str, optional
        For ``.skops`` files only: further type names (as ``skops.io.get_untrusted_types``
        gives them, e.g. a custom transformer's ``"mypkg.features.MyScaler"``) allowed to load.
    trust_settings : bool, default=False
        Keep the extractors' settings as the file has them. By default they are held to this
        job's limits, with a :class:`ModelSettingsWarning` naming each one replaced: a guard
        the file switches off or raises (``max_pixels``, a video's ``timeout``) is set to its
        default, ``batch_size`` to at most 1024, ``n_jobs`` to at most this machine's cores.
    max_array_bytes : int or None, default=1 GiB
        For ``.skops`` files: refuse one whose arrays and schema declare more bytes than this
        once unpacked, before anything is allocated. None: no bound.

    Returns
    -------
    model, or (model, info) when ``return_info``
    """
    obj = load_skops(path, trusted, max_array_bytes) if _is_skops(path) else _load_joblib(path)
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT and "model" in obj):
        if not trust_settings:
            apply_limits(obj, source=f"The model file {os.fspath(path)}")
        return (obj, {}) if return_info else obj
    info = {k: v for k, v in obj.items() if k != "model"}
    model = obj["model"]
    if not trust_settings:
        apply_limits(model, source=f"The model file {os.fspath(path)}")
    now = _versions()
    differ = [
        f"{label} {info.get(key)!s} (file) vs {now[key]} (here)"
        for key, label in (("mmfeat_version", "mmfeat"), ("sklearn_version", "scikit-learn"))
        if info.get(key) != now[key]
    ]
    if differ:
        warnings.warn(
            f"The model file {os.fspath(path)} was saved with another version: "
            + "; ".join(differ)
            + ". Predictions may differ from the ones seen when it was saved; "
            "refit and save it again with this version to be sure.",
            ModelVersionWarning,
            stacklevel=2,
        )
    recorded = info.get("extractors") or {}
    if check_fingerprints and recorded:
        changed = [
            name for name, fp in _fingerprints(model).items()
            if name in recorded and fp != recorded[name] and not fp.startswith("unavailable")
        ]
        if changed:
            warnings.warn(
                f"The model file {os.fspath(path)}: the feature code of {', '.join(changed)} "
                "changed since the model was saved (fingerprint differs), so its features differ "
                "from the ones the model was trained on. Refit the model.",
                ModelVersionWarning,
                stacklevel=2,
            )
    return (model, info) if return_info else model
