"""Bytes, not only pixels: images under the pixel limit whose samples are wide (16-bit, float)
or many (alpha) are bounded by what they decode to, read from the header, before OpenCV
allocates anything. The budget is what an 8-bit RGBA image of ``max_pixels`` takes."""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from mmfeat.errors import ItemError
from mmfeat.io import load_image, sample_layout

LIMIT = 100_000  # pixels; the budget is then 400,000 bytes


def png(width: int, height: int, depth: int, colour: int) -> bytes:
    """A PNG of zeros, compressed row by row (never the whole image in memory)."""
    samples = {0: 1, 2: 3, 4: 2, 6: 4}[colour] * depth // 8

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    packer, row = zlib.compressobj(9), bytes(1 + width * samples)
    body = b"".join([packer.compress(row * 16) for _ in range(height // 16)]
                    + [packer.compress(row * (height % 16)), packer.flush()])
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body)
            + chunk(b"IEND", b""))


def encoded(ext: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def test_the_layout_is_read_from_the_header():
    assert sample_layout(png(4, 4, 16, 6)) == (4, 2)
    assert sample_layout(png(4, 4, 8, 2)) == (3, 1)
    assert sample_layout(png(4, 4, 8, 0)) == (1, 1)
    assert sample_layout(encoded(".tiff", np.zeros((4, 4, 4), np.float32))) == (4, 4)
    assert sample_layout(encoded(".tiff", np.zeros((4, 4, 3), np.uint16))) == (3, 2)
    assert sample_layout(encoded(".pfm", np.zeros((4, 4, 3), np.float32))) == (3, 4)
    assert sample_layout(encoded(".hdr", np.zeros((4, 4, 3), np.float32))) == (3, 4)
    assert sample_layout(encoded(".ppm", np.zeros((4, 4, 3), np.uint16))) == (3, 2)
    assert sample_layout(encoded(".jpg", np.zeros((4, 4, 3), np.uint8))) == (4, 1)  # as RGBA


@pytest.mark.parametrize("name, data", [
    # about 90,000 pixels each: under the pixel limit, over the byte budget
    ("png 16-bit RGBA", lambda: png(300, 300, 16, 6)),                                   # 720 KB
    ("tiff float32 RGBA", lambda: encoded(".tiff", np.zeros((300, 300, 4), np.float32))),  # 1.4 MB
    ("pfm float32 RGB", lambda: encoded(".pfm", np.zeros((300, 300, 3), np.float32))),
    ("hdr float32 RGB", lambda: encoded(".hdr", np.zeros((300, 300, 3), np.float32))),
])
def test_wide_samples_under_the_pixel_limit_are_refused_by_their_bytes(tmp_path, name, data):
    path = tmp_path / "wide"
    path.write_bytes(data())
    cause = (r"image of 300x300 pixels, \d samples of (16|32) bits each, decodes to [\d,]+ bytes, "
             r"more than max_pixels x 4 = 400,000")
    with pytest.raises(ItemError, match=cause):
        load_image(str(path), max_pixels=LIMIT)


def test_within_the_budget_they_still_load(tmp_path):
    for data in (png(150, 150, 16, 6), encoded(".tiff", np.zeros((100, 100, 4), np.float32)),
                 png(300, 300, 8, 6)):  # 8-bit RGBA at the pixel limit: the budget itself
        path = tmp_path / "ok"
        path.write_bytes(data)
        assert load_image(str(path), max_pixels=LIMIT).dtype == np.uint8


# Peak memory of one load at the default limit, in a child under an address-space limit.
PEAK_SCRIPT = """
import json, resource, sys
from mmfeat.errors import ItemError
from mmfeat.io import load_image

load_image(sys.argv[2])  # the codec's libraries, loaded
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    outcome = str(load_image(sys.argv[1]).shape)
except (ItemError, MemoryError) as exc:
    outcome = str(exc)
print(json.dumps([(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, outcome]))
"""


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.mark.slow
def test_a_16_bit_png_under_the_default_pixel_limit_costs_no_memory(tmp_path):
    """7000x7000 (49 M pixels, under 89.5 M) 16-bit RGBA: 392 MB decoded, more after."""
    bomb, small = tmp_path / "deep.png", tmp_path / "small.png"
    bomb.write_bytes(png(7000, 7000, 16, 6))
    small.write_bytes(png(8, 8, 8, 2))
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(bomb), str(small)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path}, preexec_fn=_limit_address_space)
    assert done.returncode == 0, done.stderr[-2000:]
    added, outcome = json.loads(done.stdout.splitlines()[-1])
    assert "decodes to 392,000,000 bytes, more than max_pixels x 4" in outcome, outcome
    assert added < 20, f"the load added {added:.0f} MB"
