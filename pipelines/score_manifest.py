"""Score a manifest with a saved model: streaming, resumable, one output row per input row.

    python pipelines/score_manifest.py MODEL MANIFEST OUTPUT_DIR [--proba] [--chunk-size N]

The same as ``mmfeat score MODEL MANIFEST OUTPUT_DIR``, from Python: rerun it after a crash and
it resumes; rows that cannot be scored get their cause in the ``error`` column.
"""

from __future__ import annotations

import argparse

import pandas as pd

from mmfeat.scoring import format_summary, score


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model file saved with mmfeat.save_model (.joblib or .skops)")
    parser.add_argument("manifest",
                        help="CSV, TSV or Parquet file; relative paths are read from its folder")
    parser.add_argument("output", help="output folder of Parquet parts (rerun to resume)")
    parser.add_argument("--proba", action="store_true", help="add proba_<class> columns")
    parser.add_argument("--chunk-size", type=int, default=10_000,
                        help="rows per chunk and per output part (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local processes, each loading the model once (default: %(default)s)")
    args = parser.parse_args(argv)

    summary = score(args.model, args.manifest, args.output, proba=args.proba,
                    chunk_size=args.chunk_size, workers=args.workers)
    print(format_summary(summary))
    scored = pd.read_parquet(args.output)
    print(scored.head().to_string(index=False))
    return scored


if __name__ == "__main__":
    main()
