"""Saving and loading fitted models, with the versions and extractor fingerprints they were made with.

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
(:func:`safe_model_types`), never by prefix, and no function or method is trusted unless named.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import warnings
from pathlib import Path

from .atomic import atomic_write
from .errors import UntrustedTypesError
from .introspect import find_extractors, package_version

__all__ = ["ModelVersionWarning", "find_extractors", "load_model", "save_model"]

FORMAT = "mmfeat-model"
FORMAT_VERSION = 1


class ModelVersionWarning(UserWarning):
    """The model file was made by another mmfeat or scikit-learn version (or its extractors'
    fingerprints changed since): predictions may differ from the ones seen at training time."""


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


# The only mmfeat types a ``.skops`` file may build without ``trusted=``: mmfeat's own estimator
# classes, named exactly (module and class). Never a name prefix: a prefix such as ``"mmfeat."``
# also matches names that resolve *through* an mmfeat module to what it imports
# (``mmfeat.scoring.os.system``), and never a function or method.
_MMFEAT_CLASSES = (
    ("mmfeat.image.color", "ColorHistogram"),
    ("mmfeat.image.gradient", "GradientHistogram"),
    ("mmfeat.image.orb", "ORBBagOfWords"),
    ("mmfeat.image.cnn", "CNNEmbedder"),
    ("mmfeat.text.sentence", "SentenceEmbedder"),
    ("mmfeat.audio.mfcc", "MFCCStats"),
    ("mmfeat.audio.spectral", "SpectralStats"),
    ("mmfeat.fusion.blocks", "ModalityBlock"),
    ("mmfeat.fusion.interactions", "ModalityInteractions"),
    ("mmfeat.fusion.late", "LateFusionClassifier"),
    ("mmfeat.fusion.late", "LateFusionRegressor"),
    ("mmfeat.fusion.tuning", "TunedLogisticRegression"),
    ("mmfeat.video.frames", "VideoFrames"),
    ("mmfeat.video.motion", "MotionStats"),
    ("mmfeat.video.audio", "VideoAudio"),
)
# Types scikit-learn's own estimators hold that skops does not trust by default; building one
# runs no code of the file's choosing: ``numpy.dtype("float64")`` (SimpleImputer's fit dtype),
# an SVC's probability calibration, and the log-loss and accuracy scorers with their metrics, which the fusion estimators'
# self-tuning default models select their penalty with (a scorer holding any other function is
# still refused).
_OTHER_SAFE_TYPES = (
    "numpy.dtype",
    # What a Platt-scaled SVC holds (a late-fusion modality's default may choose one): two
    # plain data classes of scikit-learn (fitted parameters, no callables).
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.metrics._scorer._Scorer",
    "sklearn.metrics._classification.log_loss",
    "sklearn.metrics._classification.accuracy_score",
)


def safe_model_types() -> frozenset:
    """The type names a ``.skops`` model file may hold beyond what skops itself trusts."""
    return frozenset(f"{module}.{name}" for module, name in _MMFEAT_CLASSES) | set(_OTHER_SAFE_TYPES)


def _load_skops(path, trusted):
    """Load a ``.skops`` file, building only trusted types (see the module docstring).

    The file is read once: the types are audited and the model built from the same bytes, so
    the file cannot be swapped between the check and the load.
    """
    import skops.io

    if trusted is not None and (
        isinstance(trusted, (str, bytes)) or not all(isinstance(t, str) for t in trusted)
    ):
        raise TypeError(f"Got trusted={trusted!r}, expected a list of type names (str).")
    data = Path(path).read_bytes()
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # not a zip, no schema, an unknown node: not a skops model file
        raise ValueError(f"{os.fspath(path)} is not a readable .skops model file: {exc}") from exc
    allowed = safe_model_types() | set(trusted or ())
    refused = sorted(set(untrusted) - allowed)
    if refused:
        raise UntrustedTypesError(os.fspath(path), refused)
    return skops.io.loads(data, trusted=sorted(set(untrusted)))


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


def load_model(path, *, return_info=False, check_fingerprints=False, trusted=None):
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

    Returns
    -------
    model, or (model, info) when ``return_info``
    """
    obj = _load_skops(path, trusted) if _is_skops(path) else _load_joblib(path)
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT and "model" in obj):
        return (obj, {}) if return_info else obj
    info = {k: v for k, v in obj.items() if k != "model"}
    model = obj["model"]
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
                f"The model file {os.fspath(path)}: the feature code of {', '.join(changed)} changed "
                "since the model was saved (fingerprint differs), so its features differ from the "
                "ones the model was trained on. Refit the model.",
                ModelVersionWarning,
                stacklevel=2,
            )
    return (model, info) if return_info else model
