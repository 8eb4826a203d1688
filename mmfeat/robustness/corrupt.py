"""The corruptions: each reads one item as a model would be given it and returns a corrupted
copy, a new file for images and audio (so the feature cache, which keys files by their bytes,
sees a new item) and a new string for text. An original is never written to.

Every corruption is deterministic given its ``rng`` (a ``numpy.random.Generator`` or a seed).
"""

from __future__ import annotations

import os
from numbers import Real
from pathlib import Path

import numpy as np

from ..atomic import write_bytes
from ..errors import ItemError
from ..io import load_image
from ..items import check_item

IMAGE_CORRUPTIONS = ("blur", "noise", "occlusion")

# At severity 1: the Gaussian blur's sigma as a fraction of the image's shorter side, and the
# Gaussian noise's standard deviation in 8-bit grey levels.
_BLUR_SIGMA = 0.05
_NOISE_STD = 128.0


def check_fraction(name: str, value) -> float:
    """``value`` as a float in [0, 1], or a ValueError naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"Got {name}={value!r}, expected a number between 0 and 1.")
    return float(value)


def check_snr(value) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"Got snr_db={value!r}, expected a finite number of decibels.")
    return float(value)


def _output_path(item, out_path) -> Path:
    out = Path(out_path)
    if isinstance(item, (str, os.PathLike)) and os.path.exists(out) and os.path.samefile(item, out):
        raise ValueError(f"Got out_path={os.fspath(out_path)!r}, the item's own file: a corruption "
                         "never overwrites its original.")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def corrupt_image(item, out_path, *, kind: str, level: float, rng=None) -> str:
    """Write a corrupted copy of an image as a PNG file.

    Parameters
    ----------
    item : path, bytes or ndarray
        The image, as mmfeat's image extractors read it (arrays in RGB order).
    out_path : str or path-like
        Where to write the PNG (lossless, so that only the corruption changes the pixels).
        Its folder is created if needed; the item's own file is refused.
    kind : {"blur", "noise", "occlusion"}
        Gaussian blur with sigma ``level`` x 5 % of the shorter side; additive Gaussian noise
        with standard deviation ``level`` x 128 grey levels, drawn per pixel and channel; or
        one black rectangle of the image's aspect ratio covering ``level`` of its area, at a
        random place.
    level : float in [0, 1]
        Severity; 0 gives the image unchanged.
    rng : numpy.random.Generator, int or None
        Randomness of the noise and of the rectangle's place.

    Returns
    -------
    str
        ``out_path``.

    Raises
    ------
    ItemError
        The item cannot be read as an image.
    """
    import cv2

    if kind not in IMAGE_CORRUPTIONS:
        raise ValueError(f"Got kind={kind!r}, expected one of {IMAGE_CORRUPTIONS}.")
    level = check_fraction("level", level)
    out = _output_path(item, out_path)
    rng = np.random.default_rng(rng)
    image = load_image(item)  # RGB uint8, H x W x 3
    height, width = image.shape[:2]
    if level > 0 and kind == "blur":
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=level * _BLUR_SIGMA * min(height, width))
    elif level > 0 and kind == "noise":
        noisy = image + rng.normal(0.0, level * _NOISE_STD, size=image.shape)
        image = noisy.round().clip(0, 255).astype(np.uint8)
    elif level > 0:  # occlusion
        block_h, block_w = (max(1, round(side * np.sqrt(level))) for side in (height, width))
        top = rng.integers(0, height - block_h + 1)
        left = rng.integers(0, width - block_w + 1)
        image = image.copy()
        image[top:top + block_h, left:left + block_w] = 0
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - PNG encoding of a uint8 RGB array does not fail
        raise RuntimeError(f"OpenCV could not encode the corrupted image for {out}")
    write_bytes(out, encoded.tobytes())  # a rename: never through a link planted there
    return os.fspath(out_path)


def _read_audio(item):
    """The samples (frames x channels, float32) and rate of a file or ``(waveform, sr)`` item."""
    item = check_item(item, "audio")
    if isinstance(item, tuple):
        wave, sr = item
        if wave.ndim == 1:
            wave = wave[:, None]
        elif wave.shape[0] < wave.shape[1]:  # (channels, samples), as librosa gives
            wave = wave.T
        return wave, sr
    import soundfile as sf

    try:
        wave, sr = sf.read(os.fspath(item), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, OSError) as exc:
        raise ItemError(f"not a readable audio file: {exc}") from None
    return wave, sr


def corrupt_audio(item, out_path, *, snr_db: float, rng=None) -> str:
    """Write a copy of a sound with additive white Gaussian noise at a given SNR.

    Parameters
    ----------
    item : path or (waveform, sr)
        The sound, as mmfeat's audio extractors read it.
    out_path : str or path-like
        Where to write it: a 32-bit float WAV at the original sample rate, with the original
        channels (float samples are never clipped, so the SNR is exact). Its folder is created
        if needed; the item's own file is refused.
    snr_db : float
        Signal-to-noise ratio in decibels: the noise's power is the signal's mean power over
        the whole clip (all channels) divided by ``10 ** (snr_db / 10)``. 0 dB is noise as
        loud as the signal. A silent clip stays silent.
    rng : numpy.random.Generator, int or None
        Randomness of the noise.

    Returns
    -------
    str
        ``out_path``.

    Raises
    ------
    ItemError
        The item cannot be read as audio.
    """
    import soundfile as sf

    snr_db = check_snr(snr_db)
    out = _output_path(item, out_path)
    rng = np.random.default_rng(rng)
    wave, sr = _read_audio(item)
    power = float(np.mean(np.square(wave, dtype=np.float64))) if wave.size else 0.0
    noise = rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=wave.shape)
    import io

    buffer = io.BytesIO()
    sf.write(buffer, (wave + noise).astype(np.float32), int(sr), subtype="FLOAT", format="WAV")
    write_bytes(out, buffer.getvalue())  # a rename: never through a link planted there
    return os.fspath(out_path)


def corrupt_text(text: str, *, rate: float, rng=None) -> str:
    """Drop a fraction of a text's words (whitespace-separated), keeping the others in order.

    Parameters
    ----------
    text : str
        The text.
    rate : float in [0, 1]
        Fraction of the words to drop: ``round(rate * n_words)`` of them, chosen at random, but
        at least one word is kept (an empty text is not a text to mmfeat's extractors; a
        removed text is what the "missing" condition measures).
    rng : numpy.random.Generator, int or None
        Which words are dropped.

    Returns
    -------
    str
        The kept words joined by single spaces.
    """
    if not isinstance(text, str):
        raise TypeError(f"Got a {type(text).__name__}, expected a text (str).")
    rate = check_fraction("rate", rate)
    rng = np.random.default_rng(rng)
    words = text.split()
    n_drop = min(int(round(rate * len(words))), max(len(words) - 1, 0))
    dropped = set(rng.choice(len(words), size=n_drop, replace=False).tolist()) if n_drop else set()
    return " ".join(w for i, w in enumerate(words) if i not in dropped)

