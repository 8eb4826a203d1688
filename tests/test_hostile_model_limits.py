"""Model files that switch guards off or inflate: a loaded model's extractors are held to the
job's limits unless the caller trusts the file's settings, and a ``.skops`` file that declares
more bytes than the job allows is refused before anything is allocated.

The bomb is a 1 KB run-length BMP of 12000x12000 pixels (432 MB once decoded), which
``max_pixels=None`` in a "safe" ``.skops`` file would let through. Memory is measured in a
child process under an address-space limit.
"""

from __future__ import annotations

import io
import json
import os
import resource
import struct
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skops")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from mmfeat.image import ColorHistogram  # noqa: E402
from mmfeat.modelfile import ModelSettingsWarning, load_model, save_model  # noqa: E402
from mmfeat.video import VideoFrames  # noqa: E402

ADDRESS_LIMIT = 3 << 30


def rle8_bmp_bomb(side: int) -> bytes:
    """A run-length BMP whose only code ends the bitmap: OpenCV allocates it all, zeroed."""
    palette = bytes(4) + bytes((200, 200, 200, 0)) + bytes(4 * 254)
    pixels = b"\x00\x01"
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    head = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return head + info + palette + pixels


def image_model(**histogram):
    """A fitted ColumnTransformer + logistic regression on an image column of arrays."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    frame = pd.DataFrame({"image": pd.Series(images, dtype=object)})
    histogram = ColorHistogram(bins=(2, 2, 2), cache=False, **histogram)
    features = ColumnTransformer([("image", histogram, "image")])
    return make_pipeline(features, LogisticRegression()).fit(frame, [0, 1] * 3)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    d = tmp_path_factory.mktemp("model_limits")
    import cv2

    cv2.imwrite(str(d / "small.png"), np.full((32, 32, 3), 90, np.uint8))
    (d / "bomb.bmp").write_bytes(rle8_bmp_bomb(12_000))
    pd.DataFrame({"id": [0], "image": ["small.png"]}).to_csv(d / "warm.csv", index=False)
    rows = pd.DataFrame({"id": [1, 2], "image": ["small.png", "bomb.bmp"]})
    rows.to_csv(d / "bomb.csv", index=False)
    unguarded = save_model(image_model(max_pixels=None), d / "unguarded.skops")
    return {"dir": d, "unguarded": unguarded}


def extractors(model):
    return [t for _, t, _ in model.steps[0][1].transformers_]


def test_a_guard_switched_off_in_the_file_is_switched_back_on_with_a_warning(job):
    with pytest.warns(ModelSettingsWarning, match=r"max_pixels: None -> 89478485"):
        model = load_model(job["unguarded"])
    assert [e.max_pixels for e in extractors(model)] == [89_478_485]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelSettingsWarning)
        trusted = load_model(job["unguarded"], trust_settings=True)  # the caller's explicit word
    assert [e.max_pixels for e in extractors(trusted)] == [None]


def test_batches_and_processes_are_held_to_the_machine(tmp_path):
    model = image_model(batch_size=10**9, n_jobs=10_000)
    path = save_model(model, tmp_path / "big.joblib")  # a pickle is held to the limits too
    with pytest.warns(ModelSettingsWarning) as caught:
        loaded = load_model(path)
    (extractor,) = extractors(loaded)
    cores = len(os.sched_getaffinity(0))
    assert extractor.batch_size == 1024 and extractor.n_jobs == cores
    message = str(caught[0].message)
    assert "batch_size: 1000000000 -> 1024" in message and f"n_jobs: 10000 -> {cores}" in message
    assert "trust_settings=True" in message and "--trust-model-settings" in message
    ordinary = save_model(image_model(batch_size=32, n_jobs=1), tmp_path / "ordinary.joblib")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelSettingsWarning)  # nothing past a limit: no warning
        load_model(ordinary)


def test_a_wrapped_extractor_and_a_videos_time_budget_are_held_too(tmp_path):
    frames = VideoFrames(ColorHistogram(max_pixels=None), timeout=None, max_pixels=10**12)
    path = save_model(frames, tmp_path / "frames.skops")
    with pytest.warns(ModelSettingsWarning) as caught:
        loaded = load_model(path)
    assert loaded.extractor.max_pixels == 89_478_485
    assert loaded.timeout == 60.0 and loaded.max_pixels == 89_478_485
    assert "VideoFrames.extractor.max_pixels: None -> 89478485" in str(caught[0].message)


def inflated(path, out, declared_items: int):
    """``path``'s .skops with its first array replaced by one whose header declares
    ``declared_items`` float64 values, followed by 1 MB of zeros (the rest never comes)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        names = [n for n in src.namelist() if n.endswith(".npy")]
        for name in src.namelist():
            data = src.read(name)
            if name == names[0]:
                header = io.BytesIO()
                np.lib.format.write_array_header_1_0(
                    header, {"descr": "<f8", "fortran_order": False, "shape": (declared_items,)})
                data = header.getvalue() + bytes(1 << 20)
            dst.writestr(name, data)
    return out


# What loading a model and scoring one row costs, in MB of peak memory, in a child under a limit.
SCORE_SCRIPT = """
import json, resource, sys, warnings
from mmfeat.modelfile import load_model
from mmfeat.scoring import score

case, model, folder = sys.argv[1], sys.argv[2], sys.argv[3]
warnings.simplefilter("ignore")
score(model, folder + "/warm.csv", folder + "/out-warm", progress=False)  # the libraries, loaded
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if case == "score":
    score(model, folder + "/bomb.csv", folder + "/out-bomb", progress=False, overwrite=True)
    import pandas as pd
    outcome = str(pd.read_parquet(folder + "/out-bomb").loc[1, "error"])
else:
    try:
        load_model(sys.argv[4])
        outcome = "loaded"
    except Exception as exc:
        outcome = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([(after - before) / 1024, outcome]))
"""


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def in_child(*args):
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", SCORE_SCRIPT, *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path}, preexec_fn=_limit_address_space)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_mmfeat_score_refuses_the_bomb_a_file_let_through(job):
    added, error = in_child("score", job["unguarded"], job["dir"])
    assert "image of 12000x12000 pixels exceeds max_pixels=89478485" in error, error
    assert added < 100, f"scoring the bomb row added {added:.0f} MB"  # 672 MB decoded before


@pytest.mark.slow
def test_a_file_declaring_gigabytes_is_refused_before_they_are_allocated(job):
    big = inflated(job["unguarded"], job["dir"] / "inflated.skops", 2**28)  # 2 GiB declared
    added, outcome = in_child("load", job["unguarded"], job["dir"], big)
    assert "declares more than 1,073,741,824 bytes once unpacked" in outcome, outcome
    assert "2,147,483,648" in outcome and added < 50
    small = inflated(job["unguarded"], job["dir"] / "bounded.skops", 2**28)
    with pytest.raises(ValueError, match=r"declares more than 1,000 bytes"):
        load_model(small, max_array_bytes=1000)
