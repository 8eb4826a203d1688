"""Which fusion wins on which data: ``mmfeat.compare`` on five variants of the demo data.

Prints one Markdown table per data set (every model's cross-validated accuracy, balanced
accuracy and macro-F1, mean and spread over the folds), every figure from this one run:

1. ``default``: the demo data (each modality shows the class 60 % of the time);
2. ``grouped``: ``n_groups=6``, folds by group (each group has its own audio pitch);
3. ``interaction``: ``interaction=True``, the class is a combination of the image's and the
   audio's cues that neither shows alone (an XOR for two classes);
4. ``corrupted``: ``corruption=0.3``, in 30 % of the rows one modality shows another class's
   cue, degraded;
5. ``imbalanced``: two classes at 10:1, compared without and with ``class_weight="balanced"``.

    python benchmarks/bench_compare.py [--n 600] [--quick] [--only default,interaction]

``--quick`` swaps the CNN for a colour histogram. Features are computed once per data set
(the feature cache); the run is mostly model fitting.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from mmfeat import compare  # noqa: E402
from mmfeat.comparison import markdown_table  # noqa: E402
from mmfeat.datasets import demo_extractors, make_multimodal  # noqa: E402

COLUMNS = ["model", "accuracy", "accuracy_std", "balanced_accuracy", "macro_f1", "fit_s"]


# name: (make_multimodal arguments, compare arguments)
DATASETS = {
    "default": ({}, {}),
    "grouped": ({"n_groups": 6}, {"groups": "group", "cv": 6}),
    "interaction": ({"interaction": True, "n_classes": 2}, {}),
    "corrupted": ({"corruption": 0.3}, {}),
    "imbalanced": ({"n_classes": 2, "weights": [10, 1]}, {}),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="rows per data set")
    parser.add_argument("--quick", action="store_true", help="colour histogram instead of the CNN")
    parser.add_argument("--only", help="comma-separated data sets to run")
    parser.add_argument("--data-dir", default="data/bench-compare")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(DATASETS)
    for name in chosen:
        data_kwargs, compare_kwargs = DATASETS[name]
        df = make_multimodal(args.n, data_dir=f"{args.data_dir}/{name}", **data_kwargs)
        runs = [("", {})] + ([(" (class_weight='balanced')", {"class_weight": "balanced"})]
                             if name == "imbalanced" else [])
        for suffix, extra in runs:
            start = time.perf_counter()
            result = compare(df, target="label", modalities=demo_extractors(args.quick),
                             random_state=0, **compare_kwargs, **extra)
            seconds = time.perf_counter() - start
            folds = len(result.splits)
            print(f"\n### {name}{suffix}: {args.n} rows, {folds} folds"
                  f"{' by group' if result.grouped else ''}, {seconds:.0f} s "
                  f"(chance: {', '.join(f'{k} {v:.3f}' for k, v in result.chance.items())})\n")
            print(markdown_table(result.table[COLUMNS]))


if __name__ == "__main__":
    main()
