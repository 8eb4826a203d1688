"""The ``mmfeat`` command: demo, extract, cache, score."""

from __future__ import annotations

import argparse
import sys


def _read_table(path):
    import pandas as pd

    path = str(path)
    return pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else pd.read_csv(path)


def _cache_for(args):
    from .cache import FeatureCache, resolve_cache

    cache = FeatureCache(args.dir) if args.dir else resolve_cache(None)
    if cache is None:
        sys.exit("mmfeat: the cache is switched off (MMFEAT_CACHE_DIR=off); pass --dir.")
    return cache


def cmd_cache(args) -> int:
    cache = _cache_for(args)
    if args.action == "info":
        stats = cache.stats()
        for key in ("path", "entries", "bytes", "hits", "misses"):
            print(f"{key:8s} {stats[key]}")
    elif args.action == "prune":
        if args.max_bytes is None:
            sys.exit("mmfeat cache prune: --max-bytes is required (e.g. --max-bytes 2e9).")
        removed = cache.prune(int(float(args.max_bytes)))
        print(f"removed {removed} entries; {cache.stats()['bytes']} bytes left in {cache.path}")
    else:
        cache.clear()
        print(f"cleared {cache.path}")
    return 0


def cmd_extract(args) -> int:
    import time
    import warnings

    import numpy as np

    from .errors import ExtractionWarning
    from .registry import make_extractor, parse_params

    table = _read_table(args.manifest)
    if args.column not in table.columns:
        sys.exit(f"mmfeat extract: no column {args.column!r} in {args.manifest}; "
                 f"columns are {list(table.columns)}.")
    try:
        params = parse_params(args.param)
        params.setdefault("verbose", True)
        params.setdefault("on_error", "nan")
        if args.dir:
            params["cache"] = args.dir
        extractor = make_extractor(args.extractor, **params)
    except (ValueError, TypeError) as exc:
        sys.exit(f"mmfeat extract: {exc}")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtractionWarning)
        features = extractor.fit(table[args.column]).transform(table[args.column])
    seconds = time.perf_counter() - start
    failed = int(np.isnan(features).all(axis=1).sum())
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"{len(table)} rows, {failed} failed, {features.shape[1]} features, {seconds:.1f} s")
    if args.output:
        import pandas as pd

        frame = pd.DataFrame(features, columns=extractor.get_feature_names_out())
        frame.to_parquet(args.output, index=False)
        print(f"wrote {args.output}")
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    return run_demo(args)


def cmd_score(args) -> int:
    from .scoring import cli_score

    return cli_score(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmfeat", description=__doc__)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="make the demo data, fit single-modality and fused models, write a report")
    p.add_argument("--data-dir", default="data/demo")
    p.add_argument("--report-dir", default="reports/demo")
    p.add_argument("--n-samples", type=int, default=None)
    p.add_argument("--random-state", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="small data and light extractors (seconds)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("extract", help="compute features for a manifest column (warms the cache)")
    p.add_argument("manifest", help="CSV or Parquet file")
    p.add_argument("--column", required=True)
    p.add_argument("--extractor", required=True, help="cnn, sentence, mfcc, color, gradient, spectral, orb")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="extractor parameter (repeatable)")
    p.add_argument("--dir", help="cache directory (default: the global cache)")
    p.add_argument("--output", help="also write the features to this Parquet file")
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("cache", help="inspect or shrink the feature cache")
    p.add_argument("action", choices=["info", "prune", "clear"])
    p.add_argument("--dir", help="cache directory (default: the global cache)")
    p.add_argument("--max-bytes", help="prune: keep at most this many bytes (e.g. 2e9)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("score", help="score a manifest with a saved model, streaming, resumable")
    p.add_argument("model", help="model file saved with mmfeat.save_model / joblib")
    p.add_argument("input", help="CSV or Parquet file, or a folder of Parquet files")
    p.add_argument("output", help="output folder of Parquet parts")
    p.add_argument("--id-col", action="append", help="id column (repeatable); default 'id' when present, else the row number as 'row'")
    p.add_argument("--chunk-size", type=int, default=10_000, help="rows per chunk and per output part (bounds memory)")
    p.add_argument("--proba", action="store_true", help="add proba_<class> columns")
    p.add_argument("--max-error-rate", type=float, default=1.0, help="fail when more rows than this fraction fail")
    p.add_argument("--workers", type=int, default=1, help="local processes, each loading the model once")
    p.add_argument("--dask", metavar="ADDRESS", help="a Dask scheduler address, or 'local' for a LocalCluster")
    p.add_argument("--overwrite", action="store_true", help="start over when OUTPUT holds another job")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    p.epilog = ("OUTPUT gets part-NNNNN.parquet files with the id column(s), prediction, proba_<class> "
                "(--proba) and error (null when the row scored), and _job.json: rerunning the same "
                "command after a crash resumes. Exit status 2 when the job fails (bad model or input, "
                "another job in OUTPUT, error rate above --max-error-rate). Model files are pickles: "
                "load only trusted ones.")
    p.set_defaults(func=cmd_score)
    return parser


def _version() -> str:
    from . import __version__

    return f"mmfeat {__version__}"


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
