"""Extractors by short name, for the command line (``mmfeat extract --extractor cnn``)."""

from __future__ import annotations

import ast
import importlib

EXTRACTORS = {
    "color": "mmfeat.image:ColorHistogram",
    "gradient": "mmfeat.image:GradientHistogram",
    "orb": "mmfeat.image:ORBBagOfWords",
    "cnn": "mmfeat.image:CNNEmbedder",
    "sentence": "mmfeat.text:SentenceEmbedder",
    "mfcc": "mmfeat.audio:MFCCStats",
    "spectral": "mmfeat.audio:SpectralStats",
}

#: The extractor a modality gets on the command line when none is named (``mmfeat compare``).
DEFAULT_BY_MODALITY = {"image": "cnn", "text": "sentence", "audio": "mfcc"}


def parse_params(pairs) -> dict:
    """``["n_mfcc=13", "stats=('mean','max')"]`` -> ``{"n_mfcc": 13, "stats": ("mean", "max")}``.

    Values are Python literals; anything else is kept as a string.
    """
    params = {}
    for pair in pairs or ():
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"Got --param {pair!r}, expected NAME=VALUE.")
        try:
            params[name.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            params[name.strip()] = raw
    return params


def make_extractor(name: str, **params):
    """Build the extractor registered under ``name`` with ``params``."""
    if name not in EXTRACTORS:
        raise ValueError(f"Got extractor {name!r}, expected one of {sorted(EXTRACTORS)}.")
    module, _, cls = EXTRACTORS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(**params)
