"""``mmfeat demo``: the demo data through :func:`mmfeat.compare`.

Makes the demo dataset, compares every modality alone, early fusion (with and without
interactions) and late fusion (stacking, gated stacking, mean, product) under the same
cross-validation folds, prints the table and writes the report to a folder it names at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cache import resolve_cache
from .datasets import demo_extractors

DEFAULT_SAMPLES = 600
QUICK_SAMPLES = 200


def demo_modalities(quick: bool = False, video: bool = False) -> dict:
    """The demo's modalities, ``{name: (column, extractor)}``."""
    # Progress bars only on a terminal: written to a log file, nested bars become a soup of
    # carriage returns.
    return demo_extractors(quick, video=video, verbose=sys.stderr.isatty())


def run_demo(args) -> int:
    """Entry point of ``mmfeat demo`` (arguments from :mod:`mmfeat.cli`)."""
    from .comparison import compare
    from .datasets import make_multimodal

    n = args.n_samples or (QUICK_SAMPLES if args.quick else DEFAULT_SAMPLES)
    start = time.perf_counter()
    video = getattr(args, "video", False)
    print(f"mmfeat demo: {n} samples in {args.data_dir} (image PNG, text, audio WAV"
          f"{', video MP4' if video else ''})")
    data = make_multimodal(n_samples=n, random_state=args.random_state, data_dir=args.data_dir,
                           video=video)
    cache = resolve_cache(None)
    print(f"feature cache: {cache.path if cache is not None else 'off'}")
    result = compare(data, target="label", modalities=demo_modalities(args.quick, video),
                     cv=args.cv, report_dir=Path(args.report_dir),
                     random_state=args.random_state)
    print()
    print(result)
    if result.stacking_report is not None:
        columns = ["modality", "model", "oof_score", "log_loss", "weight"]
        print("\nlate fusion (stacking), first fold: what each modality's model chose")
        print(result.stacking_report[columns].to_string(index=False))
    print(f"\nreport written to {Path(args.report_dir).resolve()}/:")
    for f in result.files:
        print(f"  {f.name}")
    print(f"total {time.perf_counter() - start:.1f} s (a second run reuses the cached features)")
    return 0
