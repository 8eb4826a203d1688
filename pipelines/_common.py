"""Shared by the pipelines/ scripts: data loading and the extractors per modality."""

from __future__ import annotations

import pandas as pd


def load_manifest(manifest: str | None, data_dir: str, n_samples: int, random_state: int = 0):
    """A manifest CSV/Parquet given by the user, or the demo dataset written to ``data_dir``."""
    if manifest:
        return pd.read_parquet(manifest) if manifest.endswith(".parquet") else pd.read_csv(manifest)
    from mmfeat.datasets import make_multimodal

    return make_multimodal(n_samples, random_state=random_state, data_dir=data_dir)


def extractors(quick: bool = False) -> dict:
    """``{modality: (column, extractor)}``; ``quick`` uses a colour histogram instead of the CNN."""
    from mmfeat.audio import MFCCStats
    from mmfeat.image import CNNEmbedder, ColorHistogram
    from mmfeat.text import SentenceEmbedder

    return {
        "image": ("image", ColorHistogram(bins=(12, 4, 4)) if quick else CNNEmbedder()),
        "text": ("text", SentenceEmbedder()),
        "audio": ("audio", MFCCStats(n_mfcc=20)),
    }


def add_data_arguments(parser) -> None:
    parser.add_argument("--manifest", help="CSV/Parquet with columns image, text, audio, label "
                                           "(default: the demo dataset)")
    parser.add_argument("--data-dir", default="data/demo", help="where the demo dataset is written")
    parser.add_argument("--n-samples", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="colour histogram instead of the CNN")
