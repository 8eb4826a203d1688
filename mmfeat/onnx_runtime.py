"""ONNX Runtime versions of mmfeat's torch models: exported once from the same weights, kept on
disk next to the feature cache, loaded by later processes in milliseconds.

An exported graph is named by a digest of everything it depends on (the weights' digest, the
export code's version, the opset, the torch version that traced it), written to a temporary
file and renamed, under a file lock, so that parallel workers export once and a ``kill -9``
never leaves half a file. Sessions use as many intra-op threads as this process may use: the
cores, or fewer in a joblib worker (joblib sets ``OMP_NUM_THREADS`` to its share), so a grid
search with ``n_jobs`` never oversubscribes the machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import threading
from pathlib import Path

from .atomic import tmp_path

OPSET = 17
_SESSIONS: dict = {}  # (path, threads, providers) -> InferenceSession, per process
_LOCK = threading.Lock()


def available() -> bool:
    """Whether ``onnxruntime`` is installed (it is not imported here)."""
    return importlib.util.find_spec("onnxruntime") is not None


def threads() -> int:
    """Intra-op threads for a session in this process."""
    try:
        limit = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        limit = 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(limit, cores) if limit > 0 else cores or 1)


def providers(device: str) -> list:
    """ONNX Runtime's execution providers for a device: CUDA only where ``onnxruntime-gpu``
    offers it, else the CPU."""
    import onnxruntime

    if device.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def graph_dir() -> Path:
    """Where exported graphs live: ``onnx/`` in the feature cache's directory (the default
    cache directory when caching is off)."""
    from .config import default_cache_dir, get_config

    return Path(get_config()["cache_dir"] or default_cache_dir()) / "onnx"


def graph_path(name: str, key: dict) -> Path:
    """The file of the graph ``name`` exported under ``key`` (a JSON-able dict)."""
    from importlib.metadata import version

    # the exporter's version, read without importing torch (a process that finds the graph
    # written never needs torch)
    key = {**key, "opset": OPSET, "torch": version("torch").split("+")[0]}
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=12).hexdigest()
    return graph_dir() / f"{name}-{digest}.onnx"


def ensure_graph(name: str, key: dict, export) -> Path:
    """The file of the graph ``name``/``key``, exported by ``export(path)`` (which writes the
    ONNX file at ``path``) if no process did yet."""
    path = graph_path(name, key)
    if not path.is_file():
        _export_once(path, export)
    return path


class _DropMessage:
    """A logging filter dropping the records whose message starts with ``start``."""

    def __init__(self, start: str):
        self.start = start

    def filter(self, record) -> bool:
        return not str(record.msg).startswith(self.start)


def quantized(name: str, key: dict, export):
    """``export`` for the int8 version of the graph ``name``/``key``: onnxruntime's dynamic
    quantization of its weights (activations stay float, quantized per batch at run time)."""

    def write(path):
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        source = str(ensure_graph(name, key, export))
        # onnxruntime advises "pre-processing" (shape inference) on the root logger for every
        # graph; for weight-only dynamic quantization it changes nothing the user can act on.
        root, advice = logging.getLogger(), _DropMessage("Please consider to run pre-processing")
        root.addFilter(advice)
        try:
            quantize_dynamic(source, str(path), weight_type=QuantType.QInt8)
        finally:
            root.removeFilter(advice)

    return write


def session(name: str, key: dict, export, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` of the graph ``name``/``key`` (see :func:`ensure_graph`)."""
    path = ensure_graph(name, key, export)
    import onnxruntime

    n_threads, chosen = threads(), providers(device)
    memo = (str(path), n_threads, tuple(chosen))
    with _LOCK:
        if memo not in _SESSIONS:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = n_threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3  # warnings about unused initialisers are noise here
            _SESSIONS[memo] = onnxruntime.InferenceSession(str(path), options, providers=chosen)
        return _SESSIONS[memo]


def _export_once(path: Path, export) -> None:
    """Export under an exclusive file lock; whoever waited finds the file written."""
    import fcntl

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            return
        tmp = tmp_path(path)
        try:
            export(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
