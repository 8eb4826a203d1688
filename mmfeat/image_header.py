"""What an encoded image's header says before anything is decoded: its width and height
(:func:`image_size`, every format OpenCV reads here) and the samples it decodes to
(:func:`sample_layout`), and the bounds a decode must stay within (pixels and bytes), so that
a decompression bomb is refused before OpenCV allocates anything."""

from __future__ import annotations

import struct

from .errors import ItemError

#: Images with more pixels than this are refused before decoding (decompression bombs).
DEFAULT_MAX_PIXELS = 89_478_485  # the same guard Pillow uses


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
    sides = {fields[0][1:]: _int_field(fields[1], "HDR"),
             fields[2][1:]: _int_field(fields[3], "HDR")}
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



def _check_pixels(width: int, height: int, max_pixels) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ItemError(
            f"image of {width}x{height} pixels exceeds max_pixels={max_pixels} "
            "(possible decompression bomb)"
        )



def check_decodable(data: bytes, max_pixels) -> tuple:
    """``(width, height)`` of encoded image bytes, once the header shows that decoding them
    stays within ``max_pixels`` pixels and their bytes (:func:`image_size`,
    :func:`sample_layout`); None switches both bounds off.

    Raises
    ------
    ItemError
        The header is unreadable, or decoding would pass a bound (a decompression bomb).
    """
    width, height = image_size(data)
    _check_pixels(width, height, max_pixels)
    _check_bytes(width, height, sample_layout(data), max_pixels)
    return width, height
