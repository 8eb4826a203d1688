"""Decompression bombs: small files that claim huge images are refused from their headers,
before OpenCV allocates or decodes anything, in every format OpenCV reads here."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from mmfeat.errors import ItemError
from mmfeat.image import ColorHistogram
from mmfeat.io import image_size, load_image

SIDE = 5000  # 25 M pixels: 75 MB once decoded to BGR, from files of 1 KB to 1.1 MB
LIMIT = 1_000_000
PEAK_BOUND_MB = 20


def rle8_bmp(width: int, height: int) -> bytes:
    """An 8-bit RLE BMP: every row is runs of 255 pixels of colour 1, 42 bytes a row at 5000 px."""
    palette = bytes(4) + bytes((200, 200, 200, 0)) + bytes(4 * 254)
    runs = b"\xff\x01" * (width // 255) + (bytes((width % 255, 1)) if width % 255 else b"")
    pixels = (runs + b"\x00\x00") * height + b"\x00\x01"  # end of each line, end of bitmap
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    header = struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return b"BM" + header + info + palette + pixels


def encoded(ext: str, side: int) -> bytes:
    ok, data = cv2.imencode(ext, np.zeros((side, side, 3), np.uint8))
    assert ok
    return data.tobytes()


def tiled_tiff(side: int, tile: int) -> bytes:
    """A deflated RGB TIFF of a small image stored as one huge tile."""
    data = zlib.compress(bytes(tile * tile * 3), 1)
    entries = [(256, 4, side), (257, 4, side), (258, 3, "bits"), (259, 3, 8), (262, 3, 2),
               (277, 3, 3), (284, 3, 1), (322, 4, tile), (323, 4, tile), (324, 4, "data"),
               (325, 4, len(data))]
    bits_at = 8 + 2 + 12 * len(entries) + 4
    data_at = bits_at + 6
    out = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, value in entries:
        value = {"bits": bits_at, "data": data_at}.get(value, value)
        out += struct.pack("<HHIHH" if kind == 3 else "<HHII", tag, kind, 1 if tag != 258 else 3,
                           *((value, 0) if kind == 3 else (value,)))
    return out + struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8) + data


FORMATS = {
    "bmp_rle8": (".bmp", lambda side: rle8_bmp(side, side)),
    "webp": (".webp", lambda side: encoded(".webp", side)),
    "gif": (".gif", lambda side: encoded(".gif", side)),
    "tiff": (".tiff", lambda side: encoded(".tiff", side)),
    "png": (".png", lambda side: encoded(".png", side)),
    "jpeg": (".jpg", lambda side: encoded(".jpg", side)),
}

# The peak resident memory (ru_maxrss) a load adds, in MB, measured in a child process.
PEAK_SCRIPT = """
import resource, sys
from mmfeat.errors import ItemError
from mmfeat.io import load_image

bomb, small, limit = sys.argv[1], sys.argv[2], (None if sys.argv[3] == "none" else int(sys.argv[3]))
load_image(small)  # the codec's libraries and first allocations, before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_image(bomb, max_pixels=limit)
    outcome = "decoded"
except ItemError as exc:
    outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
print(outcome)
"""


@pytest.fixture(scope="module")
def bombs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bombs")
    paths = {}
    for name, (ext, make) in FORMATS.items():
        paths[name] = (folder / f"{name}-bomb{ext}", folder / f"{name}-small{ext}")
        paths[name][0].write_bytes(make(SIDE))
        paths[name][1].write_bytes(make(64))
    return paths


def peak_of_load(bomb, small, limit):
    # Linux carries a process's ru_maxrss across exec: a child that Python starts directly
    # (vfork, then exec) begins with the whole test process's peak, hundreds of MB that would
    # hide any bomb. A shell in between forks the child from its own small process instead.
    command = ["/bin/sh", "-c", '"$0" -c "$1" "$2" "$3" "$4"; exit $?',
               sys.executable, PEAK_SCRIPT, str(bomb), str(small), str(limit)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split("\n")


needs_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.path.exists("/bin/sh"),
    reason="ru_maxrss in kilobytes, and the exec behaviour above, are Linux's")


@needs_linux
@pytest.mark.parametrize("name", list(FORMATS))
def test_a_bomb_is_refused_before_decoding_with_bounded_memory(name, bombs):
    bomb, small = bombs[name]
    assert bomb.stat().st_size < 1_200_000
    peak_mb, outcome = peak_of_load(bomb, small, LIMIT)
    assert f"image of {SIDE}x{SIDE} pixels exceeds max_pixels={LIMIT}" in outcome
    assert float(peak_mb) < PEAK_BOUND_MB, f"{name}: peak memory grew by {peak_mb} MB"


@needs_linux
def test_a_small_tiff_in_a_huge_tile_is_refused(tmp_path):
    bomb = tmp_path / "bomb.tiff"
    bomb.write_bytes(tiled_tiff(64, 6000))
    small = tmp_path / "small.tiff"
    small.write_bytes(encoded(".tiff", 64))
    assert bomb.stat().st_size < 1_200_000
    peak_mb, outcome = peak_of_load(bomb, small, LIMIT)
    assert "exceeds max_pixels=1000000" in outcome
    assert float(peak_mb) < PEAK_BOUND_MB, f"peak memory grew by {peak_mb} MB"
    unguarded_mb, _ = peak_of_load(bomb, small, "none")  # what OpenCV costs without the check
    assert float(unguarded_mb) > 60, unguarded_mb


@needs_linux
def test_the_measurement_sees_a_bomb_that_is_decoded(bombs):
    peak_mb, outcome = peak_of_load(*bombs["bmp_rle8"], "none")  # the guard switched off
    assert outcome == "decoded" and float(peak_mb) > 60  # 75 MB of RGB at least


def test_the_same_files_decode_under_a_higher_limit(bombs):
    image = load_image(str(bombs["bmp_rle8"][1]))
    assert image.shape == (64, 64, 3)
    with pytest.raises(ItemError, match="max_pixels=4095"):
        load_image(str(bombs["gif"][1]), max_pixels=4095)
    assert load_image(str(bombs["gif"][1]), max_pixels=4096).shape == (64, 64, 3)
    assert load_image(str(bombs["gif"][1]), max_pixels=None).shape == (64, 64, 3)


def test_extractors_refuse_a_bomb_as_the_row_error(bombs, image_paths):
    extractor = ColorHistogram(max_pixels=LIMIT, cache=False, on_error="nan").fit([])
    with pytest.warns(UserWarning, match="1 of 2 rows failed.*exceeds max_pixels=1000000"):
        out = extractor.transform([image_paths[0], str(bombs["webp"][0])])
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


@pytest.mark.parametrize("ext",
                         [".png", ".jpg", ".bmp", ".gif", ".webp", ".tiff", ".jp2", ".ppm", ".pgm",
                          ".pam", ".pfm", ".sr", ".hdr", ".avif"])
def test_header_dimensions_of_every_format_opencv_reads(ext):
    height, width = 300, 257  # JPEG 2000's encoder wants a few resolution levels
    image = np.zeros((height, width, 3), np.uint8)
    if ext == ".pgm":
        image = image[:, :, 0]
    elif ext in (".pfm", ".hdr"):
        image = image.astype(np.float32)
    ok, data = cv2.imencode(ext, image)
    assert ok
    assert image_size(data.tobytes()) == (width, height)
    assert cv2.imdecode(data, cv2.IMREAD_UNCHANGED).shape[:2] == (height, width)


@pytest.mark.parametrize("header", [
    b"P6\n20000 20000\n255\n\x00\x00",
    b"P7\nWIDTH 20000\nHEIGHT 20000\nDEPTH 3\nMAXVAL 255\nTUPLTYPE RGB\nENDHDR\n\x00",
    b"PF\n20000 20000\n-1\n\x00\x00\x00\x00",
    b"\x59\xa6\x6a\x95" + struct.pack(">IIIIIII", 20000, 20000, 24, 0, 1, 0, 0),
    b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 20000 +X 20000\n\x00\x00",
    b"\xff\x4f\xff\x51\x00\x29\x00\x00" + struct.pack(">IIII", 20000, 20000, 0, 0) + bytes(30),
])
def test_claims_in_text_and_raw_headers_are_refused(header):
    with pytest.raises(ItemError, match="image of 20000x20000 pixels exceeds max_pixels"):
        load_image(header)


def test_a_gif_frame_larger_than_its_screen_counts():
    gif = encoded(".gif", 8)
    at = gif.index(b"\x2c", 13)  # the first image descriptor: widen the frame, not the screen
    forged = gif[: at + 5] + struct.pack("<HH", 20000, 20000) + gif[at + 9 :]
    with pytest.raises(ItemError, match="20000x20000 pixels exceeds"):
        load_image(forged)


@pytest.mark.parametrize("data, cause", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "corrupt PNG header"),
    (b"BM\x00\x00", "corrupt BMP header"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8L\x00", "corrupt WebP header"),
    (b"II*\x00\x08\x00\x00\x00\x00\x00", "corrupt TIFF header"),
    (b"plain text, no image", "not a decodable image"),
])
def test_unreadable_headers_are_row_errors_not_decoded(data, cause):
    with pytest.raises(ItemError, match=cause):
        load_image(data)
