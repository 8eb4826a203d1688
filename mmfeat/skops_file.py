"""Reading a ``.skops`` model file without running code of the file's choosing: the types it may
build (mmfeat's own estimator classes, named exactly, and a few of scikit-learn's data
classes, beside what skops trusts) and the bytes it may declare, both checked on the bytes
read once, before anything is built or allocated."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UntrustedTypesError

#: A ``.skops`` file may declare at most this many bytes (its arrays and schema, uncompressed).
DEFAULT_MAX_ARRAY_BYTES = 1 << 30


def _check_declared_bytes(data: bytes, path, max_bytes) -> None:
    """Refuse a ``.skops`` file whose members declare more than ``max_bytes`` once unpacked,
    before anything is decompressed or allocated: each member's size in the zip directory, and
    for an array, the shape and type its ``.npy`` header gives (a few bytes can claim gigabytes)."""
    import io
    import zipfile

    import numpy as np

    if max_bytes is None:
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return  # not a zip: skops says so, in its words
    total = 0
    with archive:
        for member in archive.infolist():
            declared = member.file_size
            if member.filename.endswith(".npy"):
                try:
                    with archive.open(member) as f:
                        version = np.lib.format.read_magic(f)
                        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0)
                        shape, _, dtype = read_header(f)
                    count = 1
                    for side in shape:
                        count *= int(side)
                    declared = max(declared, count * dtype.itemsize)
                except (ValueError, OSError, zipfile.BadZipFile):
                    pass  # an unreadable array: skops refuses it when it loads
            total += declared
            if total > max_bytes:
                raise ValueError(
                    f"{os.fspath(path)} declares more than {max_bytes:,} bytes once unpacked "
                    f"({member.filename} alone {declared:,}): refused before anything is "
                    "allocated. If the file is yours and that large, pass max_array_bytes=.")


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
    ("mmfeat.fusion.rules", "LogProbabilityStacker"),
    ("mmfeat.fusion.platt", "PlattScaled"),
    ("mmfeat.video.frames", "VideoFrames"),
    ("mmfeat.video.motion", "MotionStats"),
    ("mmfeat.video.audio", "VideoAudio"),
)
# Types scikit-learn's own estimators hold that skops does not trust by default; building one
# runs no code of the file's choosing: ``numpy.dtype("float64")`` (SimpleImputer's fit dtype),
# an SVC's probability calibration, and the log-loss and accuracy scorers with their metrics,
# which the fusion estimators' self-tuning default models select their penalty with (a scorer
# holding any other function is still refused).
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
    return (frozenset(f"{module}.{name}" for module, name in _MMFEAT_CLASSES)
            | set(_OTHER_SAFE_TYPES))


def load_skops(path, trusted, max_bytes=DEFAULT_MAX_ARRAY_BYTES):
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
    _check_declared_bytes(data, path, max_bytes)
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # not a zip, no schema, an unknown node: not a skops model file
        raise ValueError(f"{os.fspath(path)} is not a readable .skops model file: {exc}") from exc
    allowed = safe_model_types() | set(trusted or ())
    refused = sorted(set(untrusted) - allowed)
    if refused:
        raise UntrustedTypesError(os.fspath(path), refused)
    return skops.io.loads(data, trusted=sorted(set(untrusted)))


