"""The ONNX Runtime backend: the same features as torch, one export shared by processes, cache
entries shared between backends, thread limits in joblib workers."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("efficientnet_lite_pytorch")

from mmfeat import (
    config_context,  # noqa: E402
    onnx_runtime,  # noqa: E402
)
from mmfeat.cache import FeatureCache  # noqa: E402
from mmfeat.image import CNNEmbedder  # noqa: E402
from mmfeat.models import clear_model_cache  # noqa: E402

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models


@pytest.fixture(scope="module")
def photos():
    """Crops of the two real photos scikit-learn ships, of several sizes."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    images = load_sample_images().images
    sizes = [(200, 260), (240, 240), (160, 300)]
    return [im[y:y + h, x:x + w] for im in images
            for (y, x), (h, w) in zip(rng.integers(0, 150, (3, 2)), sizes)]


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """A private folder for exported graphs, so the tests see the export happen."""
    root = tmp_path_factory.mktemp("onnx-cache")
    with config_context(cache_dir=root):
        yield root


def test_onnx_features_equal_torch_features(photos, graphs):
    with config_context(cache_dir=graphs):
        onnx = CNNEmbedder(backend="onnx", cache=False).fit_transform(photos)
        torch = CNNEmbedder(backend="torch", cache=False).fit_transform(photos)
    assert onnx.shape == torch.shape == (len(photos), 1280)
    assert np.abs(onnx - torch).max() <= 1e-4


def test_auto_picks_onnx_on_the_cpu_and_torch_for_a_module():
    import torch

    assert CNNEmbedder()._runtime("cpu") == "onnx"
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten())
    assert CNNEmbedder(net, preprocess=lambda im: im)._runtime("cpu") == "torch"
    with pytest.raises(ValueError, match="backend='onnx' runs the named models"):
        CNNEmbedder(net, preprocess=lambda im: im, backend="onnx").fit(
            [np.zeros((8, 8, 3), np.uint8)])


def test_backends_share_cache_entries(photos, tmp_path, graphs):
    store = FeatureCache(tmp_path / "store")
    with config_context(cache_dir=graphs):
        first = CNNEmbedder(backend="onnx", cache=store).fit_transform(photos)
        hits = store.session_hits
        again = CNNEmbedder(backend="torch", cache=store).fit_transform(photos)
    assert store.session_hits - hits == len(photos)  # torch computed nothing
    np.testing.assert_array_equal(first, again)


_EXPORT = """
import sys
import numpy as np
from mmfeat import config_context
from mmfeat.image import CNNEmbedder
with config_context(cache_dir=sys.argv[1]):
    x = CNNEmbedder(backend="onnx", cache=False).fit_transform([np.zeros((40, 40, 3), np.uint8)])
print(x.shape)
"""


def test_parallel_processes_export_once(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-c", _EXPORT, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert all("(1, 1280)" in out for out, _ in outs)
    files = sorted(p.name for p in (tmp_path / "onnx").iterdir())
    graphs = [f for f in files if f.endswith(".onnx")]
    assert len(graphs) == 1
    assert stat.S_IMODE((tmp_path / "onnx" / graphs[0]).stat().st_mode) == 0o600
    assert not [f for f in files if f.startswith(".mmfeat-tmp-")]  # no half-written graph left


def _threads_in_worker(_):
    return onnx_runtime.threads()


def test_sessions_never_oversubscribe_joblib_workers():
    from joblib import Parallel, delayed

    cores = len(os.sched_getaffinity(0))
    assert onnx_runtime.threads() == cores
    in_workers = Parallel(n_jobs=2)(delayed(_threads_in_worker)(i) for i in range(2))
    assert in_workers == [max(1, cores // 2)] * 2


# ---------------------------------------------------------------------- sentence model


def test_sentence_onnx_vectors_equal_torch_vectors(graphs):
    pytest.importorskip("sentence_transformers")
    from mmfeat.text import SentenceEmbedder

    texts = ["A cat sleeps on the mat.", "  Stocks fell sharply today.  ",
             "Ünïcödé — émojis 🙂 CAPS", "short",
             "word " * 600]  # the last is cut to the model's 256 tokens
    with config_context(cache_dir=graphs):
        for normalize in (True, False):
            onnx = SentenceEmbedder(backend="onnx", normalize=normalize, precision="float32",
                                    cache=False).fit_transform(texts)
            torch = SentenceEmbedder(backend="torch", normalize=normalize,
                                     cache=False).fit_transform(texts)
            norms = np.linalg.norm(onnx, axis=1) * np.linalg.norm(torch, axis=1)
            cosine = (onnx * torch).sum(1) / norms
            assert cosine.min() >= 0.9999 and np.abs(onnx - torch).max() <= 1e-4
    assert SentenceEmbedder()._runtime("cpu") == "onnx"


def test_sentence_onnx_encodes_without_torch(tmp_path, seed_graphs):
    """Once the graph is exported (here by this process), a fresh process encodes with neither
    torch nor sentence-transformers imported."""
    pytest.importorskip("sentence_transformers")
    code = (
        "import sys\n"
        "from mmfeat import config_context\n"
        "from mmfeat.text import SentenceEmbedder\n"
        "with config_context(cache_dir=sys.argv[1]):\n"
        "    x = SentenceEmbedder(backend='onnx', cache=False).fit_transform(['a new text'])\n"
        "print(x.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    folder = tmp_path / "graphs"
    seed_graphs(folder)
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(1,", "384)", "False", "False"]
    assert "Loading weights" not in proc.stderr


_WARM_GRID = """
import sys
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from mmfeat.image import CNNEmbedder
from mmfeat.text import SentenceEmbedder
rng = np.random.default_rng(0)
df = pd.DataFrame({"text": [f"text number {i} about {'cats' if i % 2 else 'stocks'}"
                            for i in range(24)],
                   "image": [np.full((32, 32, 3), 40 * (i % 2), np.uint8) for i in range(24)],
                   "label": [i % 2 for i in range(24)]})
pipe = Pipeline([("features", ColumnTransformer([("text", SentenceEmbedder(), "text"),
                                                 ("image", CNNEmbedder(), "image")])),
                 ("clf", LogisticRegression())])
GridSearchCV(pipe, {"clf__C": [0.1, 1.0]}, cv=3).fit(df, df["label"])
print(sys.argv[1], "torch" in sys.modules, "onnxruntime" in sys.modules,
      "sentence_transformers" in sys.modules)
"""


def test_a_warm_grid_search_loads_no_model(tmp_path, seed_graphs):
    """Every vector cached: fitting and scoring import neither torch nor onnxruntime. (The
    graphs are there already: the export is test_parallel_processes_export_once's subject.)"""
    seed_graphs(tmp_path)
    env = dict(os.environ, MMFEAT_CACHE_DIR=str(tmp_path))
    cold = subprocess.run([sys.executable, "-c", _WARM_GRID, "cold"], capture_output=True,
                          text=True, timeout=600, env=env)
    assert cold.returncode == 0, cold.stderr
    assert cold.stdout.split()[2] == "True"  # the first run computed with ONNX Runtime
    warm = subprocess.run([sys.executable, "-c", _WARM_GRID, "warm"], capture_output=True,
                          text=True, timeout=600, env=env)
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.split() == ["warm", "False", "False", "False"]


def test_int8_is_close_cached_apart_and_needs_onnx(graphs, caplog):
    pytest.importorskip("sentence_transformers")
    from mmfeat.text import SentenceEmbedder

    texts = ["A cat sleeps on the mat.", "A kitten naps on a rug.", "Stocks fell sharply today.",
             "Markets dropped in early trading."]
    # int8 is the CPU default, so an earlier test may have loaded this graph in this process
    # from another folder: forget loaded models, so that the export into this folder is seen.
    clear_model_cache()
    with config_context(cache_dir=graphs):
        exact = SentenceEmbedder(backend="onnx", precision="float32", cache=False).fit(texts)
        int8 = SentenceEmbedder(precision="int8", cache=False).fit(texts)
        a, b = exact.transform(texts), int8.transform(texts)
        default = SentenceEmbedder(device="cpu", cache=False).fit(texts)
        np.testing.assert_array_equal(default.transform(texts), b)  # int8 is the CPU default
    assert (a * b).sum(1).min() > 0.95 and not np.array_equal(a, b)
    assert b[0] @ b[1] > b[0] @ b[2] and b[2] @ b[3] > b[2] @ b[1]  # the ranking of meanings holds
    assert exact.fingerprint() != int8.fingerprint()  # never served for float vectors
    assert default.fingerprint() == int8.fingerprint()
    # the quantization's configuration names the graph and the vectors: a change of it
    # never serves vectors of the one before
    assert onnx_runtime.DYNAMIC_INT8 in int8._model_identity()
    assert list((graphs / "onnx").glob("sentence-int8-*.onnx"))
    # onnxruntime's advice to pre-process before quantizing is not the user's to act on
    assert not [r for r in caplog.records if "pre-processing" in r.getMessage()]
    with pytest.raises(ValueError, match="precision='int8'"):
        SentenceEmbedder(precision="int8", backend="torch").fit(texts)


def test_cnn_int8_keeps_the_photos_classes_and_is_cached_apart(photos, graphs):
    """The statically quantized EfficientNet-Lite0 (calibrated on other crops of the same two
    photos) gives features close to the float ones, and the same ImageNet class on real photos."""
    with config_context(cache_dir=graphs):
        exact = CNNEmbedder(backend="onnx", cache=False).fit([])
        int8 = CNNEmbedder(precision="int8", cache=False).fit([])
        a, b = exact.transform(photos), int8.transform(photos)
        head = exact._load_torch("cpu")._fc  # the ImageNet classifier on the pooled features
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.9 and not np.array_equal(a, b)
    weight, bias = head.weight.detach().numpy(), head.bias.detach().numpy()
    np.testing.assert_array_equal((b @ weight.T + bias).argmax(1), (a @ weight.T + bias).argmax(1))
    assert exact.fingerprint() != int8.fingerprint()
    assert onnx_runtime.STATIC_INT8 in int8._model_identity()
    assert list((graphs / "onnx").glob("efficientnet-lite0-int8-*.onnx"))
    with pytest.raises(ValueError, match="precision='int8'"):
        CNNEmbedder(precision="int8", backend="torch").fit([])
