"""The ``mmfeat`` command: demo, compare, extract, cache, score."""

from __future__ import annotations

import argparse
import os
import sys

from .errors import UsageError

DESCRIPTION = ("Image, text and audio features for scikit-learn: run the demo, warm the feature "
               "cache for a manifest column, inspect or shrink the cache, score a table with a "
               "saved model.")


def _positive_int(text):
    try:
        value = int(float(text))
    except (ValueError, OverflowError):  # "1e400" is inf, which int() refuses
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1 or value != float(text):
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _byte_count(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of bytes such as 2e9, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a non-negative number of bytes, got {text!r}")
    return int(value)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _duration(text):
    """``"3600"``, ``"90s"``, ``"30m"``, ``"12h"``, ``"30d"``, ``"2w"`` -> seconds."""
    number, unit = (text[:-1], text[-1]) if text[-1:].lower() in _UNITS else (text, "s")
    try:
        value = float(number) * _UNITS[unit.lower()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 30d, 12h or 3600, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative duration, got {text!r}")
    return value


def _human_bytes(n) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _cache_for(args, must_exist):
    from pathlib import Path

    from .cache import STORE_NAME, FeatureCache, resolve_cache

    cache = FeatureCache(args.dir) if args.dir else resolve_cache(None)
    if cache is None:
        raise UsageError("the cache is switched off (MMFEAT_CACHE_DIR=off); pass --dir")
    if must_exist and not (Path(cache.path) / STORE_NAME).exists():
        raise UsageError(f"no feature cache in {cache.path}")
    return cache


def cmd_cache(args) -> int:
    from .errors import CacheError

    cache = _cache_for(args, must_exist=args.action != "clear")
    try:
        if args.action == "info":
            stats = cache.check()
            print(f"path      {stats['path']}{' (read-only)' if stats['read_only'] else ''}")
            print(f"entries   {stats['entries']:,}")
            print(f"size      {_human_bytes(stats['bytes'])} of vectors")
            print(f"hits      {stats['hits']:,}")
            print(f"misses    {stats['misses']:,}")
            for name, entries, nbytes in cache.entries_by_extractor():
                print(f"  {entries:>10,} entries  {_human_bytes(nbytes):>9}  {name}")
            if args.shared:
                shared = cache.shared_info()
                if shared is None:
                    raise UsageError("no shared tier: set MMFEAT_SHARED_CACHE or pass "
                                     "--shared-cache")
                print(f"shared    {shared['url']}")
                print(f"  entries {shared['entries']:,} (this mmfeat version's)")
                print(f"  memory  {_human_bytes(shared['bytes'])} in use on the server"
                      + (f" of {_human_bytes(shared['maxmemory'])}" if shared["maxmemory"] else "")
                      + f", eviction {shared['policy']}")
        elif args.action == "prune":
            if args.max_bytes is None and args.older_than is None:
                raise UsageError("give --max-bytes (e.g. 2e9), --older-than (e.g. 30d) or both")
            removed = cache.prune(args.max_bytes, older_than=args.older_than)
            left = _human_bytes(cache.check()["bytes"])
            print(f"removed {removed:,} entries; {left} left in {cache.path}")
        elif args.action == "forget":
            if not args.manifest or not args.column:
                raise UsageError("forget needs a MANIFEST and --column (the items to forget)")
            table = _read_manifest(args.manifest)
            items = [v for col in args.column for v in _column(table, col, args.manifest)]
            removed = cache.forget(items)
            print(f"removed {removed:,} entries of {len(items):,} items from {cache.path}")
        else:
            cache.clear()
            print(f"cleared {cache.path}")
    except CacheError as exc:
        raise UsageError(str(exc)) from None
    return 0


def _read_manifest(path):
    from .manifest import read_manifest

    try:
        return read_manifest(path)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # a table pandas cannot parse
        raise UsageError(f"cannot read the manifest {path}: {exc}") from None


def _column(table, column, manifest):
    if column not in table.columns:
        raise UsageError(f"no column {column!r} in {manifest}; "
                         f"its columns are {list(table.columns)}")
    return table[column]


def cmd_extract(args) -> int:
    import time
    import warnings

    import numpy as np

    from .errors import ExtractionWarning
    from .registry import make_extractor, parse_params

    table = _read_manifest(args.manifest)
    items = _column(table, args.column, args.manifest)
    params = parse_params(args.param)
    params.setdefault("verbose", True)
    params.setdefault("on_error", "nan")
    if args.dir:
        params["cache"] = args.dir
    extractor = make_extractor(args.extractor, **params)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtractionWarning)
        features = extractor.fit(items).transform(items)
    seconds = time.perf_counter() - start
    failed = int(np.isnan(features).all(axis=1).sum())
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"{len(table)} rows, {failed} failed, {features.shape[1]} features, {seconds:.1f} s")
    if args.output:
        import pandas as pd

        ids = ({"id": table["id"].to_numpy()} if "id" in table.columns
               else {"row": np.arange(len(table))})
        named = pd.DataFrame(features, columns=extractor.get_feature_names_out())
        frame = pd.concat([pd.DataFrame(ids), named], axis=1)
        frame.to_parquet(args.output, index=False)
        print(f"wrote {args.output}")
    if len(table) and failed == len(table):
        raise UsageError(f"every one of the {len(table)} rows failed; first: "
                         + (str(caught[0].message) if caught else "see above"))
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo

    if args.n_samples is not None and args.n_samples < 100:
        # fewer rows leave some class with too few for the models' 5-fold cross-validation
        raise UsageError(f"--n-samples must be at least 100, got {args.n_samples}")

    return run_demo(args)


def cmd_compare(args) -> int:
    from .comparison.cli import cmd_compare as run

    return run(args)


def cmd_score(args) -> int:
    from .scoring import cli_score

    return cli_score(args)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Gives an option's default once: not after a help text that already says it in words
    ("default: the global cache"), and not for a flag or an option that is off unless given."""

    def _get_help_string(self, action):
        unset = action.default is None or action.default is False or action.default == []
        if unset or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    from .registry import DEFAULT_BY_MODALITY, EXTRACTORS

    fmt = _HelpFormatter
    parser = argparse.ArgumentParser(prog="mmfeat", description=DESCRIPTION, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", formatter_class=fmt,
                       help="make the demo data and compare single modalities and fusions on it "
                       "(mmfeat compare)")
    p.add_argument("--data-dir", default="data/demo", help="where the demo data is written")
    p.add_argument("--report-dir", default="reports/demo", help="where the report is written")
    p.add_argument("--n-samples", type=_positive_int, default=None,
                   help="samples to generate, at least 100 (default: 600, or 200 with --quick)")
    p.add_argument("--random-state", type=int, default=0, help="seed of the data and the models")
    p.add_argument("--quick", action="store_true",
                   help="200 samples and a colour histogram instead of the CNN")
    p.add_argument("--cv", type=_positive_int, default=5, help="cross-validation folds")
    p.add_argument("--video", action="store_true",
                   help='add a video column (needs "mmfeat[video]"): its frames, motion and sound '
                        "track as three more modalities")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "compare", formatter_class=fmt,
        help="which fusion on my data: each modality alone, early and late fusion, same folds",
        description="Fit each modality alone, early fusion (with and without interactions) and "
        "late fusion (stacking, gated stacking, mean, product) under the same cross-validation "
        "folds, features extracted once (the cache); print the table and write a report.")
    p.add_argument("manifest",
                   help="CSV, TSV or Parquet file; relative paths are read from its folder")
    p.add_argument("--target", required=True, help="the column to predict")
    for modality, default in DEFAULT_BY_MODALITY.items():
        p.add_argument(f"--{modality}", metavar="COLUMN[:EXTRACTOR]",
                       help=f"the {modality} column, and an extractor (default {default})")
    p.add_argument("--video", metavar="COLUMN", help="a video column: its frames, motion and sound "
                   'track as three modalities (needs "mmfeat[video]")')
    p.add_argument("--groups", metavar="COLUMN",
                   help="group column (speaker, session): folds by group")
    p.add_argument("--cv", type=_positive_int, default=5, help="number of folds")
    p.add_argument("--rank-by", choices=["accuracy", "balanced_accuracy", "macro_f1", "r2", "mae"],
                   help="metric to rank by (default balanced_accuracy, or r2 for regression)")
    p.add_argument("--class-weight", choices=["balanced"], help="weight classes (imbalanced data)")
    p.add_argument("--no-interactions", action="store_true",
                   help="leave out early fusion with interactions")
    p.add_argument("--robustness", action="store_true",
                   help="also score the best model with each modality removed and corrupted")
    p.add_argument("--refit", metavar="MODEL_FILE",
                   help="refit the best model on all rows and save it (.skops or .joblib)")
    p.add_argument("--report-dir", default="reports/compare", help="where the report is written")
    p.add_argument("--random-state", type=int, default=0, help="seed of the folds")
    _shared_option(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("extract", formatter_class=fmt,
                       help="compute features for a manifest column (warms the cache)")
    p.add_argument("manifest",
                   help="CSV, TSV or Parquet file; relative paths are read from its folder")
    p.add_argument("--column", required=True, help="the column of items (paths or texts)")
    p.add_argument("--extractor", required=True, choices=sorted(EXTRACTORS), help="which extractor")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", default=[],
                   help="extractor parameter, a Python literal (repeatable), e.g. n_mfcc=13")
    p.add_argument("--dir", help="cache directory (default: the global cache)")
    p.add_argument("--output", help="also write the features, with the id (or row) column, "
                   "to this Parquet file")
    _shared_option(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("cache", formatter_class=fmt,
                       help="inspect, shrink or clear the feature cache",
                       description="info: entries, size, hits, per extractor. prune: drop least "
                       "recently used entries (--max-bytes) or old ones (--older-than). forget: "
                       "drop every entry of the items in MANIFEST's --column, under every "
                       "extractor. clear: drop everything (a damaged store is recreated).")
    p.add_argument("action", choices=["info", "prune", "forget", "clear"], help="what to do")
    p.add_argument("manifest", nargs="?", help="forget: the table holding the items to forget")
    p.add_argument("--column", action="append", help="forget: the column(s) of items (repeatable)")
    p.add_argument("--dir", help="cache directory (default: the global cache)")
    p.add_argument("--max-bytes", type=_byte_count,
                   help="prune: keep at most this many bytes of vectors, e.g. 2e9")
    p.add_argument("--older-than", type=_duration,
                   help="prune: drop entries unused for this long, e.g. 30d, 12h, 3600")
    p.add_argument("--shared", action="store_true",
                   help="info: also report the shared tier (Redis)")
    _shared_option(p)
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("score", formatter_class=fmt,
                       help="score a manifest with a saved model, streaming, resumable")
    p.add_argument("model", help="model file saved with mmfeat.save_model: .joblib (a pickle: "
                   "only files you trust) or .skops (safe types only)")
    p.add_argument("input", help="CSV, TSV or Parquet file, or a folder of Parquet files; relative "
                   "paths in a file are read from its folder")
    p.add_argument("output", help="output folder of Parquet parts")
    p.add_argument("--id-col", action="append", help="id column (repeatable); default 'id' when "
                   "present, else the row number as 'row'")
    p.add_argument("--chunk-size", type=_positive_int, default=10_000,
                   help="rows per chunk and per output part (bounds memory)")
    p.add_argument("--proba", action="store_true", help="add proba_<class> columns")
    p.add_argument("--max-error-rate", type=float, default=1.0,
                   help="fail when more rows than this fraction fail")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="local processes, each loading the model once")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="a Dask scheduler address, or 'local' for a LocalCluster")
    p.add_argument("--overwrite", action="store_true",
                   help="start over when OUTPUT holds another job")
    p.add_argument("--trusted", action="append", metavar="TYPE", default=[],
                   help="for .skops files: a further type the file may hold (repeatable), "
                   "e.g. mypkg.features.MyScaler")
    p.add_argument("--all-missing", choices=["error", "prior"], default="error",
                   help="a row whose every modality is missing or failed: no prediction and the "
                   "causes in error, or the prediction from the training prior with the causes "
                   "in missing")
    p.add_argument("--trust-model-settings", action="store_true",
                   help="keep the model file's extractor settings (max_pixels, timeout, "
                   "batch_size, n_jobs) even past this job's limits; only for files you trust")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    p.epilog = ("OUTPUT gets part-NNNNN.parquet files with the id column(s), prediction, "
                "proba_<class> (--proba), error (null when the row scored) and missing (the "
                "modalities a model imputed, and why), and _job.json: rerunning the same command "
                "after a crash resumes. Exit status 2 when the job fails (bad model or input, "
                "another job in OUTPUT, every row failed, error rate above --max-error-rate). "
                ".joblib model files are pickles: load only trusted ones; .skops files load only "
                "safe types.")
    _shared_option(p)
    p.set_defaults(func=cmd_score)
    return parser


def _version() -> str:
    from . import __version__

    return f"mmfeat {__version__}"


def _shared_option(p) -> None:
    p.add_argument("--shared-cache", metavar="URL",
                   help="the shared cache tier, e.g. redis://host:6379/0 "
                   "(default: MMFEAT_SHARED_CACHE)")


def _use_shared_cache(url) -> None:
    """``--shared-cache URL``: the shared tier of this command and of every worker process it
    starts (they read ``MMFEAT_SHARED_CACHE``)."""
    from .config import ENV_SHARED_CACHE, _check_shared_url

    try:
        os.environ[ENV_SHARED_CACHE] = _check_shared_url(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "shared_cache", None):
            _use_shared_cache(args.shared_cache)
        return args.func(args)
    except UsageError as exc:
        print(f"mmfeat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:
        # Bad parameters (scikit-learn's own validation messages), unreadable files: one line.
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mmfeat {args.command}: error: {text}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
