"""Models and devices: the per-process registry of loaded models, shared by clones and never
pickled, and the choice of device (``"auto"``: CUDA, then Apple MPS, then the CPU).

torch is imported only when a device other than the CPU may exist or is asked for.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import threading
import weakref

_MODELS: dict = {}  # (class, model identity, device) -> loaded model, shared by clones
_MODELS_LOCK = threading.RLock()  # re-entrant: a wrapping extractor loads its inner model within its own
_MODEL_SOURCES = weakref.WeakKeyDictionary()  # a user's model object -> its last key in _MODELS


def shared_model(key, load, source=None):
    """The model registered under ``key``, loaded by ``load()`` on first use in this process.

    ``source`` is the user's own model object when the model is one: when its weights change
    (a new ``key``), the copy made from the old weights is dropped, so that a training loop
    does not keep one copy per step.
    """
    with _MODELS_LOCK:
        if key not in _MODELS:
            if source is not None:
                _MODELS.pop(_MODEL_SOURCES.get(source), None)
                _MODEL_SOURCES[source] = key
            _MODELS[key] = load()
        return _MODELS[key]


def clear_model_cache() -> None:
    """Forget every model loaded in this process (they reload lazily on next use)."""
    with _MODELS_LOCK:
        _MODELS.clear()


def _may_have_accelerator() -> bool:
    """Whether this machine might have CUDA or Apple MPS, known without importing torch (a
    second of start-up, and the whole point of a warm cache or the ONNX backend is to skip it)."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")
    return shutil.which("nvidia-smi") is not None


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available, then ``"mps"``, else ``"cpu"``; other values as given."""
    if device != "auto":
        return device
    if "torch" not in sys.modules and not _may_have_accelerator():
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def available_devices() -> list[str]:
    """The torch devices usable on this machine: ``"cpu"``, then each CUDA device and MPS."""
    import torch

    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(device: str, owner: str) -> None:
    """Raise a ValueError naming the devices that exist here when ``device`` is not one of them.

    Checked in ``fit`` so that a wrong device fails at once with a plain answer, not halfway
    through loading a model with torch's own assertion. ``"auto"`` and ``"cpu"`` exist on every
    machine: they are accepted without importing torch, which a model run by ONNX Runtime or a
    warm cache never needs.
    """
    if device in ("auto", "cpu"):
        return
    import torch

    devices = available_devices()
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parsed = None
    usable = parsed is not None and (
        parsed.type == "cpu"
        or (parsed.type == "cuda" and torch.cuda.is_available()
            and (parsed.index or 0) < torch.cuda.device_count())
        or (parsed.type == "mps" and "mps" in devices)
    )
    if not usable:
        why = "" if parsed is not None else " is not a torch device string and"
        raise ValueError(
            f"{owner}: device={device!r}{why} is not available on this machine (torch "
            f"{torch.__version__}). Devices here: {', '.join(map(repr, devices))}; "
            "device='auto' picks the best of them."
        )
