"""ONNX Runtime versions of mmfeat's torch models: exported once from the same weights, kept on
disk next to the feature cache, loaded by later processes in milliseconds.

An exported graph is named by a digest of everything it depends on (the weights' digest, the
export code's version, the opset, the torch version that traced it). Sessions use as many
intra-op threads as this process may use: the cores, or fewer in a joblib worker (joblib sets
``OMP_NUM_THREADS`` to its share), so a grid search with ``n_jobs`` never oversubscribes the
machine.

The graph folder is trusted no further than the feature store beside it:

- a graph is exported in a private temporary folder, then copied into ``onnx/`` through a
  file created under a random name with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and renamed over the
  final name, under a lock opened with ``O_NOFOLLOW``: a file or link planted in ``onnx/`` is
  never written through, and parallel workers export once;
- the SHA-256 of every exported graph is recorded in ``onnx-graphs.json`` in the cache
  directory, and a graph is run only if its bytes (read once, and handed to ONNX Runtime as
  they were checked) have that digest: a graph replaced, truncated or emptied is exported again;
- a cache directory or ``onnx/`` that others may write (world-writable, or owned by a user who
  is neither this one nor root, outside a group of this user's) is refused;
- in a group-shared store (its directory group-writable, as for the feature store) ``onnx/``
  is made group-writable and setgid, and graphs 0660, so that every member's extractors use them.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import stat
import tempfile
import threading
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

from .atomic import atomic_write, create_temporary
from .errors import CacheError, CacheWarning
from .permissions import others_may_write

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

    if (device.startswith("cuda")
            and "CUDAExecutionProvider" in onnxruntime.get_available_providers()):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def graph_dir() -> Path:
    """Where exported graphs live: ``onnx/`` in the feature cache's directory (the default
    cache directory when caching is off)."""
    from .config import default_cache_dir, get_config

    return Path(get_config()["cache_dir"] or default_cache_dir()) / "onnx"


@functools.cache
def _exporter_version() -> str:
    """torch's version, read from its installed metadata without importing it (a process that
    finds the graph written never needs torch); once per process, not at every lookup."""
    from importlib.metadata import version

    return version("torch").split("+")[0]


def graph_path(name: str, key: dict) -> Path:
    """The file of the graph ``name`` exported under ``key`` (a JSON-able dict)."""
    key = {**key, "opset": OPSET, "torch": _exporter_version()}
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=12).hexdigest()
    return graph_dir() / f"{name}-{digest}.onnx"


RECORDS = "onnx-graphs.json"  # in the cache directory: graph file name -> SHA-256 of its bytes
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def ensure_graph(name: str, key: dict, export) -> Path:
    """The file of the graph ``name``/``key``, exported by ``export(path)`` (which writes the
    ONNX file at ``path``) if no process did yet, or again if the file there is not the one
    that was exported (see the module's notes)."""
    return _graph(name, key, export)[0]


class _DropMessage:
    """A logging filter dropping the records whose message starts with ``start``."""

    def __init__(self, start: str):
        self.start = start

    def filter(self, record) -> bool:
        return not str(record.msg).startswith(self.start)


#: How :func:`quantized` quantizes, part of the int8 graph's key and of the features' identity.
#: The configuration of the published AVX-512 VNNI anchors (sentence-transformers' and
#: optimum's ``avx512_vnni``): int8 weights per output channel over the full range (VNNI has no
#: overflow to avoid, so no ``reduce_range``), the MatMuls only. Per tensor (the version before)
#: lost up to 2.9 points of retrieval recall on real tasks; this keeps all within 0.5 points
#: (benchmarks/bench_text_int8.py).
DYNAMIC_INT8 = "dynamic-matmul-s8-per-channel"


def quantized(name: str, key: dict, export):
    """``export`` for the int8 version of the graph ``name``/``key``: onnxruntime's dynamic
    quantization of its MatMul weights, per output channel (activations stay float, quantized
    per batch at run time: a vector depends slightly on the batch it is computed in)."""

    def write(path):
        import logging

        from onnxruntime.quantization import QuantType, quantize_dynamic

        # from the checked bytes of the float graph, copied beside ``path`` (a private folder)
        source = Path(path).with_name("float-" + Path(path).name)
        source.write_bytes(_graph(name, key, export)[1])
        # onnxruntime advises "pre-processing" (shape inference) on the root logger for every
        # graph; for weight-only dynamic quantization it changes nothing the user can act on.
        root, advice = logging.getLogger(), _DropMessage("Please consider to run pre-processing")
        root.addFilter(advice)
        try:
            quantize_dynamic(str(source), str(path), weight_type=QuantType.QInt8, per_channel=True,
                             reduce_range=False, op_types_to_quantize=["MatMul"])
        finally:
            root.removeFilter(advice)

    return write


#: How :func:`quantized_static` quantizes, part of the int8 graph's key and of the features'
#: identity: a QDQ graph with int8 weights per output channel and uint8 activations whose
#: ranges (min to max) were calibrated on real photos.
STATIC_INT8 = "static-qdq-s8-per-channel-u8-minmax"


def quantized_static(name: str, key: dict, export, calibration):
    """``export`` for the statically quantized int8 version of the graph ``name``/``key``:
    weights and activations int8 (QDQ format), the activations' ranges measured by running the
    float graph on ``calibration()``, a list of input feeds (``{input name: array}``)."""

    def write(path):
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process

        # from the checked bytes of the float graph, copied beside ``path`` (a private folder)
        source = Path(path).with_name("float-" + Path(path).name)
        source.write_bytes(_graph(name, key, export)[1])
        prepared = Path(path).with_name("prepared-" + Path(path).name)
        quant_pre_process(str(source), str(prepared))  # shapes inferred, graph folded

        class Feeds(CalibrationDataReader):
            def __init__(self):
                self._feeds = iter(calibration())

            def get_next(self):
                return next(self._feeds, None)

        quantize_static(str(prepared), str(path), Feeds(), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=False, weight_type=QuantType.QInt8,
                        activation_type=QuantType.QUInt8,
                        calibrate_method=CalibrationMethod.MinMax)

    return write


def session(name: str, key: dict, export, device: str = "cpu"):
    """An ``onnxruntime.InferenceSession`` of the graph ``name``/``key`` (see
    :func:`ensure_graph`)."""
    import onnxruntime

    n_threads, chosen = threads(), providers(device)
    memo = (str(graph_path(name, key)), n_threads, tuple(chosen))
    with _LOCK:
        if memo not in _SESSIONS:
            data = _graph(name, key, export)[1]
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = n_threads
            options.inter_op_num_threads = 1
            # Threads that wait for work sleep rather than spin: spinning ones burn the cores
            # the other threads of the run need whenever the machine has other work (int8
            # MiniLM on short sentences, 2 threads, load 6 on 2 cores: 1.6 s instead of 2.1 s
            # for 1,000 texts, and half the CPU time), for a wake-up of microseconds per op.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            options.log_severity_level = 3  # warnings about unused initialisers are noise here
            # the bytes that were checked, not the file again (which could change in between)
            _SESSIONS[memo] = onnxruntime.InferenceSession(data, options, providers=chosen)
        return _SESSIONS[memo]


def _graph(name: str, key: dict, export) -> tuple[Path, bytes]:
    """The path and checked bytes of a graph, exported first if need be."""
    path = graph_path(name, key)
    mode = _graph_folder(path.parent)
    data = _checked(path, warn=True)
    if data is None:
        data = _export_once(path, export, mode)
    return path, data


def _graph_folder(folder: Path) -> int:
    """Create ``onnx/`` (and the cache directory) if missing, refuse either if others may write
    it, and return the mode of the files to create in it."""
    store = folder.parent
    if not store.is_dir():
        store.mkdir(mode=0o700, parents=True, exist_ok=True)
    _refuse_untrusted(store, "cache directory")
    shared = os.stat(store).st_mode & stat.S_IWGRP
    if not folder.is_dir():
        with suppress(FileExistsError):
            folder.mkdir(mode=0o700)
            if shared:  # the store's group mode: every member of the group uses the graphs
                os.chmod(folder, 0o2770)
    _refuse_untrusted(folder, "graph folder")
    return 0o660 if os.stat(folder).st_mode & stat.S_IWGRP else 0o600


def _refuse_untrusted(folder: Path, what: str) -> None:
    """Refuse a folder that a user other than this one, root or a member of one of this user's
    groups may write: a graph or digest found there could be anyone's."""
    cause = others_may_write(folder)
    if cause is None:
        return
    raise CacheError(f"the {what} {folder} {cause}: ONNX graphs are only run from folders that "
                     "others cannot write. Use a cache directory of your own (mmfeat.set_config("
                     "cache_dir=...) or MMFEAT_CACHE_DIR), or backend='torch'.")


def _records(store: Path) -> dict:
    try:
        fd = os.open(store / RECORDS, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return {}
    try:
        with os.fdopen(fd, "rb") as f:
            records = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return {}
    return records if isinstance(records, dict) else {}


def _read(path: Path):
    """The bytes of a regular file, never through a link; None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read()


def _checked(path: Path, *, warn: bool):
    """The bytes of the graph at ``path`` if they are those that were exported, else None."""
    data = _read(path)
    if data is None:
        if warn and os.path.lexists(path):
            warnings.warn(f"{path} is a link, not a regular file, or unreadable; it is not run, "
                          "and the graph is exported again", CacheWarning, stacklevel=4)
        return None
    recorded = _records(path.parent.parent).get(path.name)
    if recorded == hashlib.sha256(data).hexdigest():
        return data
    if warn:
        why = "has no recorded digest" if recorded is None else (
            f"is not the graph that was exported ({len(data)} bytes: truncated, damaged or "
            "replaced)")
        warnings.warn(f"{path} {why}; it is not run, and is exported again", CacheWarning,
                      stacklevel=4)
    return None


@contextmanager
def _locked(file: Path, mode: int):
    """An exclusive lock on ``file``, opened without following a link (a planted one is refused)."""
    try:
        # read-only is enough for flock, so a member of a shared store locks another's lock file
        fd = os.open(file, os.O_RDONLY | os.O_CREAT | _NOFOLLOW, mode)
    except OSError as exc:
        raise CacheError(f"cannot open the lock {file} ({exc.strerror}): a link or a file of "
                         "another user's is in the graph folder") from None
    try:
        if os.fstat(fd).st_uid == os.geteuid():
            os.fchmod(fd, mode)  # the umask may have taken the group's bits away
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _export_once(path: Path, export, mode: int) -> bytes:
    """Export under an exclusive file lock (whoever waited finds the graph written), record its
    digest, and return its bytes."""
    with _locked(path.with_suffix(".lock"), mode):
        data = _checked(path, warn=False)
        if data is not None:
            return data
        # exported where no one else can write, then copied in through a file of our own
        with tempfile.TemporaryDirectory(prefix="mmfeat-onnx-") as private:
            staged = Path(private) / path.name
            export(staged)
            data = staged.read_bytes()
        fd, tmp = create_temporary(path, mode)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), mode)  # the umask may have taken bits away
                os.fsync(f.fileno())
            os.replace(tmp, path)  # replaces a planted link or file, never writes through it
        finally:
            tmp.unlink(missing_ok=True)
        _record(path, hashlib.sha256(data).hexdigest(), mode)
    return data


def _record(path: Path, digest: str, mode: int) -> None:
    """Add a graph's digest to the cache directory's records, under their own lock."""
    store = path.parent.parent
    with _locked(path.parent / ".records.lock", mode):
        records = _records(store)
        records[path.name] = digest
        with atomic_write(store / RECORDS, mode=mode) as f:
            f.write((json.dumps(records, indent=1, sort_keys=True) + "\n").encode())
