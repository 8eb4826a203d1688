"""Loading items: images, audio and text from paths, bytes and arrays.

Every loader returns one canonical form (RGB ``uint8`` HxWx3 for images, mono ``float32``
at the requested rate for audio, ``str`` for text) or raises :class:`~mmfeat.errors.ItemError`
with a short cause. The extractor base class turns that into an error naming the row.
"""

from __future__ import annotations

import math
import os
import re
import struct
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from .errors import ItemError

#: Images with more pixels than this are refused before decoding (decompression bombs).
DEFAULT_MAX_PIXELS = 89_478_485  # the same guard Pillow uses


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
        raise ItemError(f"cannot read an image from {type(item).__name__}; expected a path, bytes or an array")
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
        wave = (wave.astype(np.float32) - (info.max + 1 + info.min) / 2) / ((info.max - info.min + 1) / 2)
    return np.asarray(wave, dtype=np.float32)


def _read_file(path) -> bytes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ItemError("file not found") from None
    except IsADirectoryError:
        raise ItemError("is a directory, not a file") from None
    except OSError as exc:
        raise ItemError(f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise ItemError("empty file (0 bytes)")
    return data


# --------------------------------------------------------------------------- images


def _header_size(data: bytes):
    """(width, height) from a PNG or JPEG header without decoding, else None."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return width, height
            i += 2 + length
    return None


def _jpeg_complete(data: bytes) -> bool:
    """True when an end-of-image marker follows the main image's first start-of-scan.

    Walking the segments skips an EXIF thumbnail's own markers, and data appended after the
    image (motion photos) is allowed; entropy-coded data never contains FF D9.
    """
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xDA:
            return data.find(b"\xff\xd9", i + 2) != -1
        if marker == 0xFF:
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
        else:
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return False


def _check_pixels(width: int, height: int, max_pixels) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ItemError(
            f"image of {width}x{height} pixels exceeds max_pixels={max_pixels} "
            "(possible decompression bomb)"
        )


def decode_image(data: bytes, *, max_pixels=DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, BMP, TIFF, WebP ...) to RGB uint8."""
    import cv2

    size = _header_size(data)
    if size is not None:
        _check_pixels(*size, max_pixels)
    is_jpeg = data[:2] == b"\xff\xd8"
    # libjpeg fills a truncated JPEG with grey and only prints a warning: refuse it here.
    if is_jpeg and not _jpeg_complete(data):
        raise ItemError("truncated JPEG (no end-of-image marker)")
    # IMREAD_COLOR applies the EXIF orientation (phone photos); UNCHANGED keeps alpha and 16 bits.
    flags = cv2.IMREAD_COLOR if is_jpeg else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise ItemError("not a decodable image (corrupt, truncated, or not an image format)")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return to_rgb_uint8(image, max_pixels=max_pixels)


def to_rgb_uint8(image: np.ndarray, *, max_pixels=DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Bring an array (HxW, HxWx1, HxWx3 RGB, HxWx4 RGBA; uint8, uint16 or float) to RGB uint8."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ItemError(f"array of shape {image.shape} is not an image (expected HxW, HxWx3 or HxWx4)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ItemError(f"image of shape {image.shape} has no pixels")
    _check_pixels(image.shape[1], image.shape[0], max_pixels)
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype.kind == "f":
        if not np.isfinite(image).all():
            raise ItemError("image contains NaN or inf")
        scale = 255.0 if image.max(initial=0) <= 1.0 else 1.0
        image = np.clip(image * scale, 0, 255).astype(np.uint8)
    elif image.dtype == np.bool_ or image.dtype.kind in "iu":
        image = np.clip(image, 0, 255).astype(np.uint8)
    else:
        raise ItemError(f"unsupported image dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]  # alpha dropped: features describe the colours
    return np.ascontiguousarray(image)


def load_image(item, *, max_pixels=DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load an image given as a path, encoded bytes, or an array (RGB order) to RGB uint8 HxWx3."""
    if is_missing(item):
        raise ItemError("missing value")
    if isinstance(item, (str, os.PathLike)):
        return decode_image(_read_file(item), max_pixels=max_pixels)
    if isinstance(item, (bytes, bytearray, memoryview)):
        if not len(item):
            raise ItemError("empty bytes")
        return decode_image(bytes(item), max_pixels=max_pixels)
    if isinstance(item, np.ndarray):
        return to_rgb_uint8(item, max_pixels=max_pixels)
    raise ItemError(f"cannot read an image from {type(item).__name__}; expected a path, bytes or an array")


# --------------------------------------------------------------------------- audio


def _to_mono(wave: np.ndarray) -> np.ndarray:
    if wave.ndim == 2:
        # soundfile gives (frames, channels), librosa (channels, frames): the short axis is channels
        wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
    elif wave.ndim != 1:
        raise ItemError(f"waveform of shape {wave.shape}: expected 1-D or (channels, samples)")
    return wave


def load_audio(item, *, sr: int, offset: float = 0.0, duration=None, max_duration=None) -> np.ndarray:
    """Load audio as mono float32 at ``sr`` Hz.

    Parameters
    ----------
    item : path, or (waveform, sr) tuple
        Files are read with soundfile (WAV, FLAC, OGG, MP3 where libsndfile supports it).
    sr : int
        Target sample rate in Hz; other rates are resampled.
    offset : float
        Seconds to skip at the start.
    duration : float, optional
        If given, the clip is cropped or zero-padded to exactly this many seconds.
    max_duration : float, optional
        Never read more than this many seconds (guards memory on very long files).
    """
    if is_missing(item):
        raise ItemError("missing value")
    limit = duration if duration is not None else max_duration
    if isinstance(item, (str, os.PathLike)):
        import soundfile as sf

        path = os.fspath(item)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise ItemError("file not found") from None
        if size == 0:
            raise ItemError("empty file (0 bytes)")
        try:
            with sf.SoundFile(path) as f:
                native_sr = f.samplerate
                f.seek(min(int(offset * native_sr), f.frames))
                frames = -1 if limit is None else int(math.ceil(limit * native_sr))
                wave = f.read(frames=frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            raise ItemError(f"not a readable audio file: {exc}") from None
        wave = wave[:, 0] if wave.shape[1] == 1 else wave.mean(axis=1)
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        native_sr = _sample_rate(item[1])
        wave = _to_mono(_float_wave(item[0]))
        start = int(offset * native_sr)
        stop = None if limit is None else start + int(math.ceil(limit * native_sr))
        wave = wave[start:stop]
    else:
        raise ItemError(
            f"cannot read audio from {type(item).__name__}; expected a path or a (waveform, sr) tuple"
        )
    if wave.size == 0:
        raise ItemError("audio has 0 samples")
    if not np.isfinite(wave).all():
        raise ItemError("waveform contains NaN or inf")
    if native_sr != sr:
        import librosa

        wave = librosa.resample(wave, orig_sr=int(native_sr), target_sr=int(sr))
    if duration is not None:
        n = int(round(duration * sr))
        wave = wave[:n] if wave.size >= n else np.pad(wave, (0, n - wave.size))
    return np.ascontiguousarray(wave, dtype=np.float32)


# --------------------------------------------------------------------------- text


def load_text(item) -> str:
    """Return the text of an item; None/NaN are missing values, never the string "nan"."""
    if is_missing(item):
        raise ItemError("missing value")
    if isinstance(item, (bytes, bytearray)):
        try:
            item = bytes(item).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ItemError(f"bytes are not UTF-8 text: {exc}") from None
    if not isinstance(item, str):
        raise ItemError(f"expected a string, got {type(item).__name__}")
    if not item.strip():
        raise ItemError("empty text")
    return item
