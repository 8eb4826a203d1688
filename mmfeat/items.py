"""What an item is, before it is keyed or loaded: the accepted 1-D inputs turned into a list
of items, with the inputs that would be misread refused; the check of one item's type (the
same with the cache on or off); what a missing value is; how an item is named in an error, and
the row's error for a file that cannot be read. Both the keyer (:mod:`mmfeat.keys`) and the
loaders (:mod:`mmfeat.io`) use these."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator, Mapping, Set
from numbers import Integral, Real

import numpy as np

from .errors import ItemError


def as_items(X, modality: str) -> list:
    """Turn the accepted 1-D inputs into a list of items; refuse what would be misread.

    A single item (a string, bytes, one image array, one ``(waveform, sr)`` pair) is refused
    rather than read as a batch of its characters, rows or samples; so is an iterator, which
    ``fit`` would use up and leave ``transform`` nothing (0 rows), and a set, which has no order.
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(
            f"Expected a 1-D sequence of items (list, Series, 1-column DataFrame), got a single "
            f"{type(X).__name__}. Wrap it in a list."
        )
    if isinstance(X, Iterator):
        raise TypeError(
            f"Expected a 1-D sequence of items, got an iterator ({type(X).__name__}), which can be "
            "read only once: fit would use it up and leave nothing to transform. Pass a list: "
            "list(X)."
        )
    if isinstance(X, Set):
        raise TypeError(
            f"Expected a 1-D sequence of items, got a {type(X).__name__}, which has no order: the "
            "rows of the output could not be matched to it. Pass a list."
        )
    if isinstance(X, Mapping):
        raise TypeError(
            f"Expected a 1-D sequence of items, got a {type(X).__name__}, which would be read as "
            "its keys. Pass a list of its values, or a DataFrame column."
        )
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"Expected one column of items, got a DataFrame with {X.shape[1]} columns "
                f"{list(X.columns)[:5]}. Select the column (e.g. in a ColumnTransformer)."
            )
        return X.iloc[:, 0].tolist()
    if hasattr(X, "columns") and hasattr(X, "to_series"):  # polars: iterating gives its columns
        if X.width != 1:
            raise ValueError(
                f"Expected one column of items, got a DataFrame with {X.width} columns "
                f"{list(X.columns)[:5]}. Select the column (e.g. in a ColumnTransformer)."
            )
        return X.to_series(0).to_list()
    if hasattr(X, "iloc"):  # Series
        return X.tolist()
    if isinstance(X, np.ndarray):
        if modality == "image" and X.ndim == 4:  # an explicit stack of images
            return list(X)
        if modality == "image" and X.ndim in (2, 3) and X.dtype != object:
            raise TypeError(
                f"Expected a 1-D sequence of images, got one array of shape {X.shape}, which would "
                "be read as a batch of its rows. Wrap a single image in a list ([image]), or pass "
                "a stack of images as a 4-D array (n_images, height, width, channels)."
            )
        if X.ndim == 1 and X.dtype.kind in "biufc" and modality != "text":
            raise TypeError(
                f"Expected a 1-D sequence of {modality} items, got a numeric array of shape "
                f"{X.shape}, which would be read as {len(X)} items of one number each."
                + (" Pass a waveform as [(waveform, sr)]." if modality == "audio" else "")
            )
        if X.ndim == 1:
            return list(X)
        if X.ndim == 2 and X.shape[1] == 1 and X.dtype == object:
            return list(X[:, 0])
        raise ValueError(f"Expected a 1-D array of items, got an array of shape {X.shape}.")
    if modality == "audio" and isinstance(X, tuple) and len(X) == 2 \
            and isinstance(X[1], (Integral, float)) and not isinstance(X[0], (str, os.PathLike)):
        raise TypeError(
            "Expected a 1-D sequence of audio items, got a single (waveform, sr) pair, which would "
            "be read as two items. Wrap it in a list: [(waveform, sr)]."
        )
    try:
        return list(X)
    except TypeError:
        raise TypeError(f"Expected a 1-D sequence of items, got {type(X).__name__}.") from None


def checked_items(X, modality: str) -> tuple[list, dict]:
    """:func:`as_items` and :func:`check_items` in one call (a transform's first step)."""
    return check_items(as_items(X, modality), modality)


def check_items(items, modality: str) -> tuple[list, dict]:
    """``(items, failed)``: each item checked (:func:`check_item`) and in its canonical form,
    and ``{row: cause}`` for those refused (their row keeps the item as given)."""
    items, failed = list(items), {}
    for row, item in enumerate(items):
        try:
            items[row] = check_item(item, modality)
        except ItemError as exc:
            failed[row] = str(exc)
    return items, failed


def is_missing(item) -> bool:
    """True for None, NaN, ``pd.NA`` and ``pd.NaT``: a missing value, not an item."""
    if item is None:
        return True
    if isinstance(item, float):
        return math.isnan(item)
    try:
        import pandas as pd

        return item is pd.NA or item is pd.NaT
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def describe(item, limit: int = 60) -> str:
    """A short, printable description of an item for error messages."""
    if is_missing(item):
        return repr(item)
    if isinstance(item, (str, os.PathLike)) and not isinstance(item, str):
        return str(item)
    if isinstance(item, str):
        text = item if len(item) <= limit else item[: limit - 3] + "..."
        return repr(text)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"<{len(item)} bytes>"
    if isinstance(item, np.ndarray):
        return f"<array {item.shape} {item.dtype}>"
    if isinstance(item, tuple) and len(item) == 2:
        wave, sr = item
        return f"<waveform of {np.shape(wave)} at {sr} Hz>"
    return f"<{type(item).__name__}>"


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+://")


def check_item(item, modality: str):
    """Check an item's type before it is keyed or loaded, and return its canonical form.

    The same check runs with the cache on or off, so a bad item gets the same error either
    way, and never the cached vector of a valid twin (``(wave, 16000.0)`` is ``(wave, 16000)``
    before its key is made). Integer PCM waveforms are scaled to float32 here, so that their
    key is that of the samples the features are computed from.

    Parameters
    ----------
    item : object
        One item of the input.
    modality : {"image", "audio", "text"}

    Returns
    -------
    item
        The item, with an audio ``[waveform, sr]`` list or tuple as a ``(float array, int)`` tuple.

    Raises
    ------
    ItemError
        Missing value, an URL, or a type the modality cannot read.
    """
    if is_missing(item):
        raise ItemError("missing value")
    if modality == "text":
        if isinstance(item, (str, bytes, bytearray)):
            return item
        raise ItemError(f"expected a string, got {type(item).__name__}")
    if isinstance(item, (str, os.PathLike)):
        if isinstance(item, str) and _URL.match(item):
            raise ItemError("URLs are not read: download the file and pass its path")
        return item
    if modality == "image":
        if isinstance(item, (bytes, bytearray, memoryview)):
            return item
        if isinstance(item, np.ndarray):
            if item.dtype.hasobject:
                raise ItemError(f"array of dtype {item.dtype} is not an image")
            return item
        raise ItemError(f"cannot read an image from {type(item).__name__}; expected a path, "
                        "bytes or an array")
    if isinstance(item, (tuple, list)) and len(item) == 2:
        wave, sr = item
        return _float_wave(wave), _sample_rate(sr)
    raise ItemError(
        f"cannot read audio from {type(item).__name__}; expected a path or a (waveform, sr) tuple"
    )


def _sample_rate(sr) -> int:
    """A positive whole number of Hz as an int (16000.0 is 16000); anything else is refused."""
    if isinstance(sr, (bool, np.bool_)) or not isinstance(sr, Real) or not math.isfinite(sr) \
            or sr <= 0 or (not isinstance(sr, Integral) and not float(sr).is_integer()):
        raise ItemError(f"sample rate {sr!r} is not a positive integer")
    return int(sr)


def _float_wave(wave) -> np.ndarray:
    """A waveform as float32 samples; integer PCM (e.g. int16 from scipy.io.wavfile) is scaled
    to the [-1, 1] range soundfile gives."""
    try:
        wave = np.asarray(wave)
    except (TypeError, ValueError) as exc:
        raise ItemError(f"waveform is not an array: {exc}") from None
    if wave.dtype.hasobject or wave.dtype.kind not in "biuf":
        raise ItemError(f"waveform of dtype {wave.dtype}: expected numbers")
    if wave.ndim not in (1, 2):
        raise ItemError(f"waveform of shape {wave.shape}: expected 1-D or (channels, samples)")
    if wave.dtype.kind in "iu":
        info = np.iinfo(wave.dtype)
        middle, half = (info.max + 1 + info.min) / 2, (info.max - info.min + 1) / 2
        wave = (wave.astype(np.float32) - middle) / half
    return np.asarray(wave, dtype=np.float32)


def file_error(exc: OSError) -> ItemError:
    """The row's error for a file-system failure (the same wording wherever a file is read)."""
    if isinstance(exc, FileNotFoundError):
        # The path alone does not say where a relative path was looked for, nor that a whole
        # folder is wrong (every row of a column failing the same way).
        named = isinstance(exc.filename, (str, bytes, os.PathLike))
        path = os.fsdecode(exc.filename) if named else ""
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if folder and not os.path.isdir(folder):
            return ItemError(f"file not found (no folder {folder})")
        if path and not os.path.isabs(path):
            return ItemError(f"file not found (looked in {folder})")
        return ItemError("file not found")
    if isinstance(exc, IsADirectoryError):
        return ItemError("is a directory, not a file")
    return ItemError(f"cannot read file: {exc.strerror or exc}")

