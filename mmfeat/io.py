"""Loading items: images, audio and text from paths, bytes and arrays.

Every loader returns one canonical form (RGB ``uint8`` HxWx3 for images, mono ``float32``
at the requested rate for audio, ``str`` for text) or raises :class:`~mmfeat.errors.ItemError`
with a short cause. The extractor base class turns that into an error naming the row.
"""

from __future__ import annotations

import functools
import math
import os
import re
import stat
import struct
import zlib
from numbers import Integral, Real

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


def file_error(exc: OSError) -> ItemError:
    """The row's error for a file-system failure (the same wording wherever a file is read)."""
    if isinstance(exc, FileNotFoundError):
        # The path alone does not say where a relative path was looked for, nor that a whole
        # folder is wrong (every row of a column failing the same way).
        path = os.fsdecode(exc.filename) if isinstance(exc.filename, (str, bytes, os.PathLike)) else ""
        folder = os.path.dirname(os.path.abspath(path)) if path else ""
        if folder and not os.path.isdir(folder):
            return ItemError(f"file not found (no folder {folder})")
        if path and not os.path.isabs(path):
            return ItemError(f"file not found (looked in {folder})")
        return ItemError("file not found")
    if isinstance(exc, IsADirectoryError):
        return ItemError("is a directory, not a file")
    return ItemError(f"cannot read file: {exc.strerror or exc}")


def _open_regular(path) -> tuple[int, os.stat_result]:
    """Open a path for reading if it is a regular file, and return its descriptor and stat.

    The type is checked on the opened descriptor, so a path swapped between a check and the
    open cannot slip through. Opening does not block (``O_NONBLOCK``), and a FIFO, a device
    such as ``/dev/zero`` or a socket is refused: reading one would wait or grow forever.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
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


class _Header:
    """A bounds-checked reader of an image header: a read past the end is a corrupt header."""

    def __init__(self, data: bytes, what: str):
        self.data, self.what = data, what

    def unpack(self, fmt: str, offset: int):
        end = offset + struct.calcsize(fmt)
        if offset < 0 or end > len(self.data):
            raise ItemError(f"corrupt {self.what} header (truncated before its dimensions)")
        return struct.unpack_from(fmt, self.data, offset)


def _jpeg_size(data: bytes):
    head = _Header(data, "JPEG")
    i = 2
    while True:
        if head.unpack("B", i)[0] != 0xFF:
            raise ItemError("corrupt JPEG header (no frame header before the image data)")
        marker = head.unpack("B", i + 1)[0]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = head.unpack(">HH", i + 5)
            return width, height
        elif marker in (0xDA, 0xD9):
            raise ItemError("corrupt JPEG header (no frame header before the image data)")
        else:
            i += 2 + head.unpack(">H", i + 2)[0]


def _bmp_size(data: bytes):
    head = _Header(data, "BMP")
    if head.unpack("<I", 14)[0] == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sides
        return head.unpack("<HH", 18)
    width, height = head.unpack("<ii", 18)
    return abs(width), abs(height)  # a negative height means rows stored top-down


def _gif_size(data: bytes):
    """The logical screen, and the first frame, which may claim to be larger than the screen."""
    head = _Header(data, "GIF")
    width, height, flags = head.unpack("<HHB", 6)
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while True:
        block = head.unpack("B", i)[0]
        if block == 0x2C:  # image descriptor
            frame_w, frame_h = head.unpack("<HH", i + 5)
            return max(width, frame_w), max(height, frame_h)
        if block != 0x21:  # an extension is the only other block before the first frame
            return width, height
        i += 2
        while (length := head.unpack("B", i)[0]) != 0:
            i += 1 + length
        i += 1


def _webp_size(data: bytes):
    head = _Header(data, "WebP")
    chunk = data[12:16]
    if chunk == b"VP8X":  # the canvas of an extended (alpha, animated) file: 24-bit sides - 1
        b = head.unpack("6B", 24)
        return 1 + (b[0] | b[1] << 8 | b[2] << 16), 1 + (b[3] | b[4] << 8 | b[5] << 16)
    if chunk == b"VP8L":  # lossless: 14-bit sides - 1 after the 0x2F signature byte
        bits = head.unpack("<I", 21)[0]
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":  # lossy key frame: 14-bit sides after the start code
        width, height = head.unpack("<HH", 26)
        return width & 0x3FFF, height & 0x3FFF
    raise ItemError("corrupt WebP header (unknown chunk)")


_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH = 256, 257, 322, 323
# OpenCV refuses tiles wider or taller than this before allocating anything.
_OPENCV_TILE_MAX = 1 << 24


_TIFF_BITS, _TIFF_SAMPLES = 258, 277


def _tiff_tags(data: bytes, wanted) -> dict:
    """The first value of each ``wanted`` tag of the first directory of a TIFF file."""
    head = _Header(data, "TIFF")
    order = "<" if data[:2] == b"II" else ">"
    big = head.unpack(order + "H", 2)[0] == 43
    if big:
        offset = head.unpack(order + "Q", 8)[0]
        count, entry, size = head.unpack(order + "Q", offset)[0], 20, 8
    else:
        offset = head.unpack(order + "I", 4)[0]
        count, entry, size = head.unpack(order + "H", offset)[0], 12, 2
    formats = {3: "H", 4: "I", 16: "Q"}
    found = {}
    for k in range(min(count, 4096)):
        at = offset + size + k * entry
        tag, kind = head.unpack(order + "HH", at)
        if tag in wanted:
            if kind not in formats:
                raise ItemError("corrupt TIFF header (dimensions of an unexpected type)")
            n = head.unpack(order + ("Q" if big else "I"), at + 4)[0]
            value_at = at + (12 if big else 8)
            if n * struct.calcsize(formats[kind]) > (8 if big else 4):  # stored elsewhere
                value_at = head.unpack(order + ("Q" if big else "I"), value_at)[0]
            found[tag] = head.unpack(order + formats[kind], value_at)[0]
    return found


def _tiff_size(data: bytes):
    """The area OpenCV allocates to decode the first directory (the page it reads).

    That is the image (ImageWidth x ImageLength), or more: OpenCV decodes a tiled TIFF
    through a buffer of one tile (TileWidth x TileLength), which a forged header can make far
    larger than the image (a 196 KB file claiming a 64x64 image in one 8192x8192 tile takes
    258 MB). Strips are read into a buffer that is never filled past the image.
    """
    found = _tiff_tags(data, (_TIFF_WIDTH, _TIFF_LENGTH, _TIFF_TILE_WIDTH, _TIFF_TILE_LENGTH))
    if _TIFF_WIDTH not in found or _TIFF_LENGTH not in found:
        raise ItemError("corrupt TIFF header (no ImageWidth or ImageLength)")
    width, height = found[_TIFF_WIDTH], found[_TIFF_LENGTH]
    tile = (found.get(_TIFF_TILE_WIDTH, 0), found.get(_TIFF_TILE_LENGTH, 0))
    if max(tile) < _OPENCV_TILE_MAX:
        width, height = max(width, tile[0]), max(height, tile[1])
    return width, height


def _text_fields(data: bytes, what: str, count: int, start: int) -> list:
    """The first ``count`` whitespace-separated fields of a text header, skipping # comments."""
    fields, i = [], start
    while len(fields) < count:
        while i < len(data) and data[i : i + 1].isspace():
            i += 1
        if data[i : i + 1] == b"#":
            end = data.find(b"\n", i)
            i = len(data) if end < 0 else end
            continue
        j = i
        while j < len(data) and not data[j : j + 1].isspace() and j - i < 20:
            j += 1
        if j == i:
            raise ItemError(f"corrupt {what} header (truncated before its dimensions)")
        fields.append(data[i:j])
        i = j
    return fields


def _int_field(value: bytes, what: str) -> int:
    if not value.isdigit():
        raise ItemError(f"corrupt {what} header (dimensions are not numbers)")
    return int(value)


def _pam_size(data: bytes):
    width = height = None
    for line in data[: 1 << 16].split(b"\n")[1:]:
        key, _, value = line.strip().partition(b" ")
        if key == b"WIDTH":
            width = _int_field(value.strip(), "PAM")
        elif key == b"HEIGHT":
            height = _int_field(value.strip(), "PAM")
        elif key == b"ENDHDR":
            break
    if width is None or height is None:
        raise ItemError("corrupt PAM header (no WIDTH or HEIGHT)")
    return width, height


def _hdr_size(data: bytes):
    """Radiance: header lines, a blank line, then a resolution line such as ``-Y 480 +X 640``."""
    end = data.find(b"\n\n", 0, 1 << 16)
    if end < 0:
        raise ItemError("corrupt Radiance HDR header (no resolution line)")
    fields = data[end + 2 : end + 2 + 64].split(b"\n", 1)[0].split()
    if len(fields) != 4 or {fields[0][1:], fields[2][1:]} != {b"X", b"Y"}:
        raise ItemError("corrupt Radiance HDR header (no resolution line)")
    sides = {fields[0][1:]: _int_field(fields[1], "HDR"), fields[2][1:]: _int_field(fields[3], "HDR")}
    return sides[b"X"], sides[b"Y"]


def _boxes(head: _Header, start: int, end: int):
    """(type, content start, content end) of each ISO base media / JPEG 2000 box in a range."""
    i = start
    while i + 8 <= end:
        size, kind = head.unpack(">I4s", i)
        body = i + 8
        if size == 1:
            size, body = head.unpack(">Q", i + 8)[0], i + 16
        elif size == 0:
            size = end - i
        if size < body - i:
            raise ItemError(f"corrupt {head.what} header (a box of {size} bytes)")
        yield kind, body, min(i + size, end)
        i += size


def _jp2_codestream_size(head: _Header, at: int):
    """Image size from a JPEG 2000 codestream's SIZ segment (less the image offset)."""
    if head.data[at : at + 4] != b"\xff\x4f\xff\x51":
        raise ItemError("corrupt JPEG 2000 header (no SIZ segment)")
    x, y, x0, y0 = head.unpack(">IIII", at + 8)
    return max(0, x - x0), max(0, y - y0)


def _jp2_size(data: bytes):
    head = _Header(data, "JPEG 2000")
    if data[:4] == b"\xff\x4f\xff\x51":
        return _jp2_codestream_size(head, 0)
    sizes = []
    for kind, body, end in _boxes(head, 0, len(data)):
        if kind == b"jp2h":
            for inner, inner_body, _ in _boxes(head, body, end):
                if inner == b"ihdr":
                    height, width = head.unpack(">II", inner_body)
                    sizes.append((width, height))
        elif kind == b"jp2c":
            sizes.append(_jp2_codestream_size(head, body))
    if not sizes:
        raise ItemError("corrupt JPEG 2000 header (no image header)")
    return max(sizes, key=lambda s: s[0] * s[1])


def _avif_size(data: bytes):
    """The largest ``ispe`` (image spatial extent) property of any item, grids included."""
    head = _Header(data, "AVIF")
    sizes = []

    def walk(start, end, depth):
        for kind, body, stop in _boxes(head, start, end):
            if kind == b"meta" and depth < 4:
                walk(body + 4, stop, depth + 1)  # a full box: version and flags first
            elif kind in (b"iprp", b"ipco") and depth < 4:
                walk(body, stop, depth + 1)
            elif kind == b"ispe":
                sizes.append(head.unpack(">II", body + 4))

    walk(0, len(data), 0)
    if not sizes:
        raise ItemError("corrupt AVIF header (no image size property)")
    return max(sizes, key=lambda s: s[0] * s[1])


def image_size(data: bytes):
    """(width, height) of encoded image bytes, read from the header without decoding.

    Covers every format OpenCV decodes here (PNG, JPEG, BMP, GIF, WebP, TIFF, AVIF, JPEG 2000,
    PBM/PGM/PPM/PAM, PFM, Sun raster, Radiance HDR), so that :func:`decode_image` can refuse a
    decompression bomb before OpenCV allocates anything.

    Raises
    ------
    ItemError
        The bytes are in none of these formats, or their header is cut short or corrupt.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _Header(data, "PNG").unpack(">II", 16)
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_size(data)
    if data[:2] == b"BM":
        return _bmp_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return _gif_size(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff_size(data)
    if data[:4] == b"\xff\x4f\xff\x51" or data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return _jp2_size(data)
    if data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis", b"mif1", b"msf1"):
        return _avif_size(data)
    if data[:1] == b"P" and data[1:2] in b"123456" and data[1:2]:
        width, height = (_int_field(f, "PNM") for f in _text_fields(data, "PNM", 2, 2))
        return width, height
    if data[:3] == b"P7\n":
        return _pam_size(data)
    if data[:2] in (b"PF", b"Pf") and data[2:3].isspace():
        width, height = (_int_field(f, "PFM") for f in _text_fields(data, "PFM", 2, 2))
        return width, height
    if data[:4] == b"\x59\xa6\x6a\x95":
        return _Header(data, "Sun raster").unpack(">II", 4)
    if data[:2] == b"#?":
        return _hdr_size(data)
    raise ItemError("not a decodable image (corrupt, or not an image format OpenCV reads)")


#: Samples per pixel and bytes per sample assumed where a header says nothing more: 8-bit RGBA.
_PLAIN_LAYOUT = (4, 1)


def sample_layout(data: bytes):
    """(samples per pixel, bytes per sample) that OpenCV decodes encoded image bytes to, read
    from the header: 16-bit and float images, and alpha, take several times the bytes of an
    8-bit RGB image of as many pixels. Formats whose header says nothing more count as 8-bit
    RGBA; a header that cannot be read counts the same (its size check says why)."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            depth, colour = _Header(data, "PNG").unpack("BB", 24)
            samples = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}.get(colour, 4)  # a palette may hold alpha
            return samples, 2 if depth == 16 else 1
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            found = _tiff_tags(data, (_TIFF_BITS, _TIFF_SAMPLES))
            bits = found.get(_TIFF_BITS, 8)
            return max(1, found.get(_TIFF_SAMPLES, 1)), max(1, -(-bits // 8))
        if data[:2] in (b"PF", b"Pf") and data[2:3].isspace():
            return (3 if data[:2] == b"PF" else 1), 4
        if data[:2] == b"#?":
            return 3, 4  # Radiance HDR decodes to float32 RGB
        if data[:1] == b"P" and data[1:2] in (b"2", b"3", b"5", b"6"):
            maxval = _int_field(_text_fields(data, "PNM", 3, 2)[2], "PNM")
            return (3 if data[1:2] in b"36" else 1), 2 if maxval > 255 else 1
        if data[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
            head = _Header(data, "JPEG 2000")
            for kind, body, end in _boxes(head, 0, len(data)):
                if kind == b"jp2h":
                    for inner, inner_body, _ in _boxes(head, body, end):
                        if inner == b"ihdr":
                            samples, bits = head.unpack(">HB", inner_body + 8)
                            return max(1, samples), 2 if (bits & 0x7F) + 1 > 8 else 1
    except ItemError:
        pass
    return _PLAIN_LAYOUT


def _check_bytes(width: int, height: int, layout, max_pixels) -> None:
    """Bound what decoding allocates, not only the pixels: at most the bytes of an 8-bit RGBA
    image of ``max_pixels`` (a 0.6 MB 16-bit PNG under the pixel limit once took 1.8 GB)."""
    if max_pixels is None:
        return
    samples, size = layout
    needed = width * height * max(samples, 3) * size
    budget = max_pixels * _PLAIN_LAYOUT[0] * _PLAIN_LAYOUT[1]
    if needed > budget:
        raise ItemError(
            f"image of {width}x{height} pixels, {samples} samples of {8 * size} bits each, decodes "
            f"to {needed:,} bytes, more than max_pixels x 4 = {budget:,} (possible decompression "
            "bomb)")


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


def _check_pixels(width: int, height: int, max_pixels) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ItemError(
            f"image of {width}x{height} pixels exceeds max_pixels={max_pixels} "
            "(possible decompression bomb)"
        )


def decode_image(data: bytes, *, max_pixels=DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, BMP, TIFF, WebP ...) to RGB uint8.

    The dimensions are read from the header first (:func:`image_size`), and an image with more
    than ``max_pixels`` pixels is refused before OpenCV allocates or decodes anything.
    """
    cv2 = quiet_cv2()
    width, height = image_size(data)
    _check_pixels(width, height, max_pixels)
    _check_bytes(width, height, sample_layout(data), max_pixels)
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
