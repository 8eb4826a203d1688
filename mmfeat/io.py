"""Loading items: images, audio and text from paths, bytes and arrays.

Every loader returns one canonical form (RGB ``uint8`` HxWx3 for images, mono ``float32``
at the requested rate for audio, ``str`` for text) or raises :class:`~mmfeat.errors.ItemError`
with a short cause. The extractor base class turns that into an error naming the row.

Files are opened here (regular files only); what an image's header allows is read in
:mod:`mmfeat.image_header` before decoding, and an item's type is checked in :mod:`mmfeat.items`
before it is keyed or loaded (both re-exported here).
"""

from __future__ import annotations

import functools
import math
import os
import stat
import struct
import zlib

import numpy as np

from .errors import ItemError
from .image_header import (
    DEFAULT_MAX_PIXELS,
    _check_pixels,
    check_decodable,
    image_size,
    sample_layout,
)
from .items import _float_wave, _sample_rate, check_item, describe, file_error, is_missing

__all__ = ["DEFAULT_MAX_PIXELS", "check_item", "decode_image", "describe", "file_error",
           "image_size", "is_missing", "load_audio", "load_image", "load_text", "quiet_cv2",
           "sample_layout", "to_rgb_uint8"]


def _open_regular(path) -> tuple[int, os.stat_result]:
    """Open a path for reading if it is a regular file, and return its descriptor and stat.

    The type is checked on the opened descriptor, so a path swapped between a check and the
    open cannot slip through. Opening does not block (``O_NONBLOCK``), and a FIFO, a device
    such as ``/dev/zero`` or a socket is refused: reading one would wait or grow forever.
    """
    flags = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
             | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise file_error(exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ItemError("is a directory, not a file")
        raise ItemError("not a regular file (a FIFO, device or socket)")
    if st.st_size == 0:
        os.close(fd)
        raise ItemError("empty file (0 bytes)")
    return fd, st


def _read_file(path) -> bytes:
    fd, _ = _open_regular(path)
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ItemError(f"cannot read file: {exc.strerror or exc}") from None
    if not data:
        raise ItemError("empty file (0 bytes)")
    return data



# --------------------------------------------------------------------------- images


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


@functools.cache
def quiet_cv2():
    """``cv2``, with OpenCV's warnings and its bundled FFmpeg's log lines off.

    OpenCV prints "[ WARN ...] can't be used to capture by name" and FFmpeg "moov atom not
    found" on stderr for each unreadable video, beside the row's error that says the same in
    words. Where the user set ``OPENCV_LOG_LEVEL`` or ``OPENCV_FFMPEG_LOGLEVEL``, that wins.
    FFmpeg's level is read once per process, at OpenCV's first video: set here, before it.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2


def _png_problem(data: bytes):
    """Why a PNG file cannot be decoded whole, read from its chunks; None if they look whole.

    Checked before decoding because libpng prints its own "libpng error: ..." line on stderr
    for each broken file (from C, where no Python code catches it): a file cut short or a
    chunk whose checksum fails is named in the row's error instead.
    """
    view, at = memoryview(data), 8
    while at + 12 <= len(data):
        length, kind = struct.unpack(">I4s", view[at : at + 8])
        end = at + 12 + length
        name = kind.decode("latin-1")
        if end > len(data):
            return f"truncated PNG (cut inside its {name!r} chunk)"
        if zlib.crc32(view[at + 4 : end - 4]) != struct.unpack(">I", view[end - 4 : end])[0]:
            return f"corrupt PNG (its {name!r} chunk fails its checksum)"
        if kind == b"IEND":
            return None
        at = end
    return "truncated PNG (no end chunk)"


def decode_image(data: bytes, *, max_pixels=DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, BMP, TIFF, WebP ...) to RGB uint8.

    The dimensions are read from the header first (:func:`image_size`), and an image with more
    than ``max_pixels`` pixels is refused before OpenCV allocates or decodes anything.
    """
    cv2 = quiet_cv2()
    check_decodable(data, max_pixels)
    is_jpeg = data[:2] == b"\xff\xd8"
    # libjpeg fills a truncated JPEG with grey and only prints a warning: refuse it here.
    if is_jpeg and not _jpeg_complete(data):
        raise ItemError("truncated JPEG (no end-of-image marker)")
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        problem = _png_problem(data)
        if problem:
            raise ItemError(problem)
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
        raise ItemError(f"array of shape {image.shape} is not an image (expected HxW, HxWx3 or "
                        "HxWx4)")
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
    raise ItemError(f"cannot read an image from {type(item).__name__}; expected a path, bytes "
                    "or an array")


# --------------------------------------------------------------------------- audio


def _to_mono(wave: np.ndarray) -> np.ndarray:
    if wave.ndim == 2:
        # soundfile gives (frames, channels), librosa (channels, frames): the short axis is channels
        wave = wave.mean(axis=0 if wave.shape[0] < wave.shape[1] else 1)
    elif wave.ndim != 1:
        raise ItemError(f"waveform of shape {wave.shape}: expected 1-D or (channels, samples)")
    return wave


def load_audio(item, *, sr: int, offset: float = 0.0, duration=None,
               max_duration=None) -> np.ndarray:
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

        fd, _ = _open_regular(item)
        # The descriptor stays ours (closefd=False) and is closed once, here: libsndfile closes
        # a descriptor it was given on a failed open, and a second close could then close a
        # file another thread (the loader thread) had just opened under the same number.
        try:
            with sf.SoundFile(fd, closefd=False) as f:
                native_sr = f.samplerate
                f.seek(min(int(offset * native_sr), f.frames))
                frames = -1 if limit is None else int(math.ceil(limit * native_sr))
                wave = f.read(frames=frames, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            # libsndfile's own words ("Format not recognised"), without soundfile's
            # "Error opening <descriptor number>:" prefix, which names nothing the user knows.
            cause = exc.error_string if isinstance(exc, sf.LibsndfileError) else exc
            raise ItemError(f"not a readable audio file: {cause}") from None
        finally:
            os.close(fd)
        wave = wave[:, 0] if wave.shape[1] == 1 else wave.mean(axis=1)
    elif isinstance(item, (tuple, list)) and len(item) == 2:
        native_sr = _sample_rate(item[1])
        wave = _to_mono(_float_wave(item[0]))
        start = int(offset * native_sr)
        stop = None if limit is None else start + int(math.ceil(limit * native_sr))
        wave = wave[start:stop]
    else:
        raise ItemError(
            f"cannot read audio from {type(item).__name__}; expected a path or a (waveform, sr) "
            "tuple")
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

