"""A sentence-transformers model run by ONNX Runtime: the transformer and its mean pooling
exported once from the same weights, the tokenizer read from the model's ``tokenizer.json`` by
the ``tokenizers`` library. Neither torch nor sentence-transformers is imported to encode.

Only the common module stack is supported: a Transformer, mean pooling, and an optional
Normalize (all-MiniLM-L6-v2 and most sentence-transformers models); :func:`supports` says
whether a model directory has it, and other models run in torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import onnx_runtime

_EXPORT_VERSION = 1  # of export() below: a change makes every process export anew
_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def _modules(directory: Path) -> list:
    try:
        return json.loads((directory / "modules.json").read_text())
    except (OSError, ValueError):
        return []


def supports(directory) -> bool:
    """Whether the model in ``directory`` is a Transformer + mean pooling (+ Normalize) stack
    with a ``tokenizer.json``."""
    directory = Path(directory)
    types = [m.get("type") for m in _modules(directory)]
    if types[:2] != [_TRANSFORMER, _POOLING] or any(t != _NORMALIZE for t in types[2:]):
        return False
    if not (directory / _modules(directory)[0].get("path", "") / "tokenizer.json").is_file():
        return False
    pooling = _read_json(directory / _modules(directory)[1]["path"] / "config.json")
    modes = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    return modes == ["pooling_mode_mean_tokens"]


def model_limits(directory) -> tuple:
    """``(vector width, max_seq_length)`` read from a model directory's configs (no model
    load); None for what the directory does not say."""
    directory = Path(directory)
    modules = _modules(directory)
    dim = length = None
    for module in modules:
        config_dir = directory / module.get("path", "")
        if module.get("type") == _POOLING:
            dim = _read_json(config_dir / "config.json").get("word_embedding_dimension")
        elif module.get("type") == _TRANSFORMER:
            length = _read_json(config_dir / "sentence_bert_config.json").get("max_seq_length")
    return (int(dim) if dim else None), (int(length) if length else None)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class OnnxSentenceModel:
    """Encode texts like ``SentenceTransformer.encode`` (cosine to its vectors >= 0.9999).

    Parameters
    ----------
    directory : path
        A sentence-transformers model directory that :func:`supports`.
    max_length : int or None
        Tokens kept per text; None is the model's ``max_seq_length``.
    key : dict
        What the exported graph depends on (the model's digest), for its file name.
    device : str
    int8 : bool
        Run the graph with int8 weights (onnxruntime's dynamic quantization, configured as
        :data:`mmfeat.onnx_runtime.DYNAMIC_INT8` says).
    """

    def __init__(self, directory, max_length, key, device="cpu", int8=False):
        from tokenizers import Tokenizer

        self.directory = Path(directory)
        modules = _modules(self.directory)
        root = self.directory / modules[0].get("path", "")
        config = _read_json(root / "sentence_bert_config.json")
        self.max_seq_length = int(max_length or config.get("max_seq_length") or 512)
        self.dim = int(_read_json(self.directory / modules[1]["path"] / "config.json")
                       ["word_embedding_dimension"])
        self.normalized = len(modules) > 2  # a Normalize module ends the stack
        self.lower_case = bool(config.get("do_lower_case"))
        self.tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        pad = _read_json(root / "special_tokens_map.json").get("pad_token", "[PAD]")
        pad = pad.get("content", "[PAD]") if isinstance(pad, dict) else pad
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id(pad) or 0, pad_token=pad)
        key = {**key, "code": _EXPORT_VERSION}
        if int8:
            self.session = onnx_runtime.session(
                "sentence-int8", {**key, "int8": onnx_runtime.DYNAMIC_INT8},
                onnx_runtime.quantized("sentence", key, self._export), device)
        else:
            self.session = onnx_runtime.session("sentence", key, self._export, device)
        self._inputs = {i.name for i in self.session.get_inputs()}

    def count_tokens(self, text: str, limit: int) -> int:
        """Tokens of ``text`` without special tokens, counted up to ``limit``."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return min(len(ids), limit)

    def encode(self, texts, batch_size: int, normalize: bool) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = [str(t).strip() for t in texts[start:start + batch_size]]
            if self.lower_case:
                batch = [t.lower() for t in batch]
            encodings = self.tokenizer.encode_batch(batch)
            feed = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encodings],
                                               dtype=np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}
            feed = {k: v for k, v in feed.items() if k in self._inputs}
            out[start:start + len(batch)] = self.session.run(None, feed)[0]
        if normalize or self.normalized:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _export(self, path):
        """Write the transformer with mean pooling, for any batch size and sequence length."""
        import warnings

        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        was_on = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()  # no "Loading weights" bar for an export
        try:
            transformer = SentenceTransformer(str(self.directory),
                                              device="cpu")[0].auto_model.eval()
        finally:
            if was_on:
                transformers_logging.enable_progress_bar()

        class MeanPooled(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                    token_type_ids=token_type_ids).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        example = tuple(torch.ones(1, 8, dtype=torch.long) for _ in range(3))
        dynamic = {name: {0: "n", 1: "tokens"}
                   for name in ("input_ids", "attention_mask", "token_type_ids")}
        dynamic["embedding"] = {0: "n"}
        with warnings.catch_warnings():  # the tracer's notes are not the user's concern
            warnings.simplefilter("ignore")
            torch.onnx.export(MeanPooled(transformer), example, str(path),
                              input_names=["input_ids", "attention_mask", "token_type_ids"],
                              output_names=["embedding"], dynamic_axes=dynamic,
                              opset_version=onnx_runtime.OPSET, dynamo=False)
