"""Shared by the pipelines/ scripts: data loading and the extractors per modality."""

from __future__ import annotations


def load_manifest(manifest: str | None, data_dir: str, n_samples: int, random_state: int = 0):
    """A manifest CSV/TSV/Parquet given by the user (relative paths read from its folder), or
    the demo dataset written to ``data_dir``."""
    if manifest:
        from mmfeat import read_manifest

        return read_manifest(manifest)
    from mmfeat.datasets import make_multimodal

    return make_multimodal(n_samples, random_state=random_state, data_dir=data_dir)


def extractors(quick: bool = False) -> dict:
    """``{modality: (column, extractor)}``: the demo's set (a colour histogram instead of the
    CNN with ``quick``)."""
    from mmfeat.datasets import demo_extractors

    return demo_extractors(quick)


def add_data_arguments(parser) -> None:
    parser.add_argument("--manifest", help="CSV/Parquet with columns image, text, audio, label "
                                           "(default: the demo dataset)")
    parser.add_argument("--data-dir", default="data/demo",
                        help="where the demo dataset is written (default: %(default)s)")
    parser.add_argument("--n-samples", type=int, default=600,
                        help="samples in the demo dataset (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="colour histogram instead of the CNN")
