"""Shared test data, made by the tests themselves: drawn images, sine-wave WAVs, short texts,
and a set of bad items (missing, empty, truncated, mislabelled files ...)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SR = 16_000


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Every test session caches under its own temporary directory, never in ~/.cache."""
    path = tmp_path_factory.mktemp("mmfeat-cache")
    old = os.environ.get("MMFEAT_CACHE_DIR")
    os.environ["MMFEAT_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("MMFEAT_CACHE_DIR", None)
    else:
        os.environ["MMFEAT_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def seed_graphs(_isolated_cache):
    """``seed_graphs(cache_dir)`` gives a new cache directory the ONNX graphs of the session's
    cache, among them those of the default image and text models (exported there once, in this
    process, as the tests running the models in this process need anyway), so that a child
    process started on it runs the models at once. A first export costs a child about 10 s of
    CPU (more on a busy machine); the export itself is test_onnx.py's subject."""
    import shutil

    from mmfeat import onnx_runtime
    from mmfeat.image import CNNEmbedder
    from mmfeat.text import SentenceEmbedder

    try:
        import onnxruntime  # noqa: F401
    except ImportError:  # the torch backends run instead: nothing to seed
        return lambda cache_dir: None
    CNNEmbedder(cache=False).fit_transform([np.zeros((40, 40, 3), np.uint8)])
    SentenceEmbedder(cache=False).fit_transform(["a text"])
    source = _isolated_cache

    def seed(cache_dir):
        graphs = Path(cache_dir) / "onnx"
        graphs.mkdir(mode=0o700, parents=True)
        shutil.copy2(source / onnx_runtime.RECORDS, Path(cache_dir) / onnx_runtime.RECORDS)
        for graph in (source / "onnx").glob("*.onnx"):
            try:  # a link costs nothing; mmfeat replaces a graph file, never writes into one
                os.link(graph, graphs / graph.name)
            except OSError:
                shutil.copy2(graph, graphs / graph.name)

    return seed


def solid_image(rgb, size=64, seed=0):
    """A solid colour image with a little noise, RGB uint8."""
    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = rgb
    noise = rng.integers(-8, 9, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8)


def sine(freq, seconds=1.0, sr=SR, amplitude=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_png(path, rgb_image):
    import cv2

    assert cv2.imwrite(str(path), cv2.cvtColor(rgb_image, cv2.COLOR_RGB2BGR))
    return str(path)


def write_wav(path, wave, sr=SR, subtype=None):
    import soundfile as sf

    sf.write(str(path), wave, sr, subtype=subtype)
    return str(path)


def help_entries(text: str) -> dict:
    """``{"--cv CV": "number of folds (default: 5)", ...}`` from an argparse ``--help`` text:
    every positional argument and option with its help on one line ("" when it has none)."""
    entries, name = {}, None
    for line in text.splitlines():
        if line.startswith("  ") and not line.startswith("   "):  # an argument's first line
            name, _, rest = line.strip().partition("  ")
            entries[name] = rest.strip()
        elif line.startswith("   ") and name is not None:  # its help, wrapped
            entries[name] = f"{entries[name]} {line.strip()}".strip()
        else:
            name = None
    return entries


@pytest.fixture(scope="session")
def image_paths(tmp_path_factory):
    """Six small PNG/JPEG files: three reddish, three bluish."""
    import cv2

    d = tmp_path_factory.mktemp("images")
    paths = []
    for i, rgb in enumerate([(220, 30, 30), (200, 50, 40), (240, 20, 60),
                             (30, 40, 220), (20, 60, 200), (50, 30, 240)]):
        image = solid_image(rgb, seed=i)
        cv2.circle(image, (20 + 4 * i, 30), 10, (255, 255, 255), -1)
        if i % 2:
            path = d / f"img{i}.jpg"
            assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            paths.append(str(path))
        else:
            paths.append(write_png(d / f"img{i}.png", image))
    return paths


@pytest.fixture(scope="session")
def audio_paths(tmp_path_factory):
    """Six 1-second WAVs: three low tones, three high tones."""
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    paths = []
    for i, freq in enumerate([200, 220, 250, 2000, 2400, 2600]):
        wave = sine(freq) + 0.01 * rng.standard_normal(SR).astype(np.float32)
        paths.append(write_wav(d / f"tone{i}.wav", wave))
    return paths


@pytest.fixture(scope="session")
def texts():
    return [
        "A cat sleeps on the warm windowsill.",
        "The kitten is napping in the sun by the window.",
        "Stock markets fell sharply after the announcement.",
        "Investors sold shares as the index dropped.",
        "Heavy rain is expected across the region tomorrow.",
        "The forecast says it will pour all day tomorrow.",
    ]


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory):
    """Bad inputs by name -> path (or item). Each must give one error naming its row."""
    import cv2

    d = tmp_path_factory.mktemp("bad")
    good = solid_image((10, 200, 10), size=48)
    png = write_png(d / "good.png", good)
    jpg = d / "good.jpg"
    cv2.imwrite(str(jpg), cv2.cvtColor(good, cv2.COLOR_RGB2BGR))
    files = {"missing": str(d / "does_not_exist.png")}
    (d / "zero.png").write_bytes(b"")
    files["zero_bytes"] = str(d / "zero.png")
    data = jpg.read_bytes()
    (d / "truncated.jpg").write_bytes(data[: len(data) // 2])
    files["truncated_jpeg"] = str(d / "truncated.jpg")
    data = open(png, "rb").read()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    files["truncated_png"] = str(d / "truncated.png")
    (d / "not_an_image.png").write_text("this is plain text, not a PNG")
    files["wrong_extension"] = str(d / "not_an_image.png")
    files["zero_samples_wav"] = write_wav(d / "empty.wav", np.zeros(0, np.float32))
    nan_wave = sine(440)
    nan_wave[100:200] = np.nan
    files["nan_wav"] = write_wav(d / "nan.wav", nan_wave, subtype="FLOAT")
    (d / "not_audio.wav").write_text("RIFF? no, just text")
    files["wrong_extension_wav"] = str(d / "not_audio.wav")
    return files


@pytest.fixture(scope="session")
def odd_but_valid(tmp_path_factory):
    """Unusual inputs that must work: RGBA and 16-bit PNGs, grayscale, stereo and tiny clips."""
    import cv2

    d = tmp_path_factory.mktemp("odd")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 2] = 200  # red in BGRA order
    rgba[..., 3] = 128
    cv2.imwrite(str(d / "rgba.png"), rgba)
    deep = (np.linspace(0, 65535, 40 * 40 * 3).reshape(40, 40, 3)).astype(np.uint16)
    cv2.imwrite(str(d / "deep16.png"), deep)
    gray = np.tile(np.arange(40, dtype=np.uint8) * 6, (40, 1))
    cv2.imwrite(str(d / "gray.png"), gray)
    stereo = np.stack([sine(440, sr=44_100), sine(880, sr=44_100)], axis=1)
    return {
        "rgba_png": str(d / "rgba.png"),
        "uint16_png": str(d / "deep16.png"),
        "gray_png": str(d / "gray.png"),
        "stereo_wav_44k": write_wav(d / "stereo.wav", stereo, sr=44_100),
        "short_clip": write_wav(d / "short.wav", sine(440, seconds=0.005)),
        "flac": write_wav(d / "tone.flac", sine(330)),
        "ogg": write_wav(d / "tone.ogg", sine(330)),
    }
