"""Models and devices: the per-process registry of loaded models, shared by clones and never
pickled; the choice of device (``"auto"``: CUDA, then Apple MPS, then the CPU); and the plan of
an extractor, the facts about its model resolved once per parameter set and passed down.

torch is imported only when a device other than the CPU may exist or is asked for.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import threading
import weakref
from contextlib import contextmanager
from typing import NamedTuple

_MODELS: dict = {}  # (class, model identity, device) -> loaded model, shared by clones
# re-entrant: a wrapping extractor loads its inner model within its own
_MODELS_LOCK = threading.RLock()
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
    """Forget every model loaded in this process, and every resolved plan (they are resolved
    and reloaded lazily on next use: after model files were rewritten in place, say)."""
    with _MODELS_LOCK:
        _MODELS.clear()
        _PLANS.clear()


class Plan(NamedTuple):
    """What an extractor computes with in this process: the device, the runtime (``"torch"``,
    ``"onnx"`` ...), the fingerprint (with the model's identity) and the model's key in the
    registry of loaded models. Empty strings and ``()`` for extractors without a model."""

    device: str
    runtime: str
    fingerprint: str
    model_key: tuple
    key_prefix: str = ""  # of every cache key: a digest of the fingerprint


_PLANS: dict = {}  # parameter set -> Plan, per process: resolved once, shared by clones
_PLANS_MAX = 10_000
_CURRENT = threading.local()  # id(extractor) -> (Plan, model or None), during one computation


def plan_of(extractor, memo_key) -> Plan:
    """The extractor's plan: the one of the computation under way in this thread, else the one
    remembered for ``memo_key`` (its parameter set; None: resolve every time), else resolved
    now. A cache hit then looks up a dict; the device, runtime and model identity (a digest of
    the weights) are worked out once."""
    current = getattr(_CURRENT, "map", {}).get(id(extractor))
    if current is not None:
        return current[0]
    plan = _PLANS.get(memo_key) if memo_key is not None else None
    if plan is None:
        plan = _resolve(extractor)
        if memo_key is not None:
            with _MODELS_LOCK:
                if len(_PLANS) >= _PLANS_MAX:
                    _PLANS.pop(next(iter(_PLANS)), None)
                _PLANS[memo_key] = plan
    return plan


def _resolve(extractor) -> Plan:
    from .keys import key_prefix

    if not extractor.uses_model:
        fingerprint = extractor._fingerprint("")
        return Plan("", "", fingerprint, (), key_prefix(fingerprint))
    device = resolve_device(getattr(extractor, "device", "auto"))
    partial = Plan(device, extractor._runtime(device), "", ())
    with _current(extractor, partial, None):  # the identity reads the device and runtime here
        identity = extractor._model_identity()
    fingerprint = extractor._fingerprint(identity)
    return partial._replace(fingerprint=fingerprint, key_prefix=key_prefix(fingerprint),
                            model_key=(type(extractor).__qualname__, identity, device,
                                       partial.runtime))


def target(extractor) -> tuple:
    """``(device, runtime)`` of the plan under way, or resolved now outside a computation."""
    current = getattr(_CURRENT, "map", {}).get(id(extractor))
    if current is not None:
        return current[0].device, current[0].runtime
    device = resolve_device(getattr(extractor, "device", "auto"))
    return device, extractor._runtime(device)


def model_of(extractor, memo_key):
    """The extractor's model, loaded on first use and shared by clones in this process."""
    current = getattr(_CURRENT, "map", {}).get(id(extractor))
    if current is not None and current[1] is not None:
        return current[1]
    plan = plan_of(extractor, memo_key)
    with _current(extractor, plan, None):  # the loader sees the plan it loads for
        return shared_model(plan.model_key, lambda: extractor._load_model(plan.device),
                            extractor._model_source())


@contextmanager
def model_in_use(extractor, memo_key):
    """The plan and the model, resolved once for a whole computation (every batch of it, in
    this thread): a model that cannot load fails the call once, not every row."""
    if not extractor.uses_model or id(extractor) in getattr(_CURRENT, "map", {}):
        yield
        return
    plan = plan_of(extractor, memo_key)
    model = extractor._get_model()  # a wrapper's is its inner extractor's
    with _current(extractor, plan, model):
        yield


@contextmanager
def _current(extractor, plan, model):
    current = _CURRENT.__dict__.setdefault("map", {})
    saved = current.get(id(extractor))
    current[id(extractor)] = (plan, model)
    try:
        yield
    finally:
        if saved is None:
            current.pop(id(extractor), None)
        else:
            current[id(extractor)] = saved


def _may_have_accelerator() -> bool:
    """Whether this machine might have CUDA or Apple MPS, known without importing torch (a
    second of start-up, and the whole point of a warm cache or the ONNX backend is to skip it)."""
    if sys.platform == "darwin":
        return platform.machine() == "arm64"
    if sys.platform.startswith("linux"):
        return os.path.exists("/proc/driver/nvidia") or os.path.exists("/dev/nvidia0")
    return shutil.which("nvidia-smi") is not None


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available, then ``"mps"``, else ``"cpu"``; other values as
    given."""
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
