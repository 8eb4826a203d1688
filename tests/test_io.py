"""Loaders: image decoding corner cases that must not be mistaken for damage, and vice versa."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from mmfeat.errors import ItemError
from mmfeat.io import decode_image, load_audio, load_image, load_text


def jpeg_bytes(height=40, width=80):
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (0, 0, 255)  # left half red (BGR)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


def with_exif_orientation(data: bytes, orientation: int) -> bytes:
    """Insert an APP1 EXIF segment holding only the Orientation tag after the SOI marker."""
    tag = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)
    ifd = struct.pack("<H", 1) + tag + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def test_exif_orientation_is_applied():
    rotated = decode_image(with_exif_orientation(jpeg_bytes(), 6))
    assert rotated.shape == (80, 40, 3)  # a phone photo taken upright loads upright
    # Orientation 6 is turned 90 degrees clockwise: the red left half becomes the top half.
    red = (rotated[..., 0] > 200) & (rotated[..., 2] < 60)
    assert red[:36].all() and not red[44:].any()
    # Orientation 8, counter-clockwise: the red half ends at the bottom.
    red = decode_image(with_exif_orientation(jpeg_bytes(), 8))[..., 0] > 200
    assert red[44:].all() and not red[:36].any()


def test_bytes_after_the_jpeg_are_allowed_but_truncation_is_not():
    data = jpeg_bytes()
    assert decode_image(data + b"\x00" * 500).shape == (40, 80, 3)  # e.g. a motion photo's video
    with pytest.raises(ItemError, match="truncated JPEG"):
        decode_image(data[: len(data) * 2 // 3])


def test_pixel_limit_refuses_before_decoding():
    ok, png = cv2.imencode(".png", np.zeros((300, 300), np.uint8))
    with pytest.raises(ItemError, match="max_pixels=10000"):
        load_image(png.tobytes(), max_pixels=10_000)


def test_arrays_of_every_layout_become_rgb_uint8():
    gray = np.full((5, 6), 128, np.uint8)
    assert load_image(gray).shape == (5, 6, 3)
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., 0] = 255
    assert (load_image(rgba)[..., 0] == 255).all()
    assert load_image(np.full((4, 4, 3), 65535, np.uint16)).max() == 255
    assert load_image(np.full((4, 4, 3), 1.0, np.float32)).max() == 255
    with pytest.raises(ItemError, match="not an image"):
        load_image(np.zeros((4, 4, 7), np.uint8))


def test_audio_tuples_mono_resampled_and_fixed_duration():
    sr = 8000
    stereo = np.stack([np.ones(sr, np.float32), -np.ones(sr, np.float32)])  # (channels, samples)
    assert np.allclose(load_audio((stereo, sr), sr=sr), 0)
    assert load_audio((np.ones(sr, np.float32), sr), sr=16000).shape == (16000,)
    assert load_audio((np.ones(100, np.float32), sr), sr=sr, duration=0.5).shape == (4000,)
    with pytest.raises(ItemError, match="0 samples"):
        load_audio((np.zeros(0, np.float32), sr), sr=sr)


def test_text_missing_values_are_not_the_string_nan():
    assert load_text("a caption") == "a caption"
    for missing in (None, float("nan")):
        with pytest.raises(ItemError, match="missing value"):
            load_text(missing)
    with pytest.raises(ItemError, match="empty text"):
        load_text("   ")
