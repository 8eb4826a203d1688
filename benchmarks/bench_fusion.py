"""Fusion on data not seen: groups, calibration and tuned per-modality models, measured.

Prints three Markdown tables, every figure from this one run:

1. grouped demo data (``make_multimodal(n_groups=6)``: each group has its own audio pitch),
   leave-one-group-out: each modality alone, then stacking and the product rule fitted
   without and with ``groups=`` (the inner out-of-fold splits by group or not), and early
   fusion with ``estimator="auto"`` and with a group-aware ``LogisticRegressionCV``;
2. the default demo data and the demo's 70/30 split: the product rule and stacking with the
   old fixed per-modality model (``LogisticRegression(C=1)``) and the tuned default, each
   uncalibrated and calibrated (temperature);
3. the same split, per modality: held-out accuracy and log loss of ``C=1`` and the tuned
   default (the penalty or model it chose), and early fusion with the demo's old
   ``LogisticRegression(C=0.5)`` against ``estimator="auto"``.

    python benchmarks/bench_fusion.py [--n 600] [--quick] [--data-dir data/bench]

``--quick`` swaps the CNN for a colour histogram. Features come from the feature cache after
the first fit, so the run is mostly model fitting.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mmfeat import ExtractionWarning  # noqa: E402
from mmfeat.audio import MFCCStats  # noqa: E402
from mmfeat.datasets import make_multimodal  # noqa: E402
from mmfeat.fusion import LateFusionClassifier, make_early_fusion  # noqa: E402
from mmfeat.image import CNNEmbedder, ColorHistogram  # noqa: E402
from mmfeat.text import SentenceEmbedder  # noqa: E402


def extractors(quick):
    return {"image": ("image", ColorHistogram(bins=(12, 4, 4)) if quick else CNNEmbedder()),
            "text": ("text", SentenceEmbedder()),
            "audio": ("audio", MFCCStats(n_mfcc=20))}


def fixed_c():
    """The per-modality default before models tuned themselves."""
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def modalities(quick, fixed=False, only=None):
    return {name: (*spec, fixed_c() if fixed else None)
            for name, spec in extractors(quick).items() if only in (None, name)}


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v)
                                       for v in row) + " |")
    return "\n".join(lines)


def leave_one_group_out(model, df, y, groups, with_groups):
    """Mean and spread over held-out groups of the accuracy of ``model``; ``with_groups`` fits it
    with ``groups=`` under scikit-learn's metadata routing."""
    scores = []
    for train, test in LeaveOneGroupOut().split(df, y, groups):
        with sklearn.config_context(enable_metadata_routing=with_groups):
            fit_groups = {"groups": groups[train]} if with_groups else {}
            model.fit(df.iloc[train], y[train], **fit_groups)
        scores.append(float((model.predict(df.iloc[test]) == y[test]).mean()))
    return np.mean(scores), np.std(scores)


def grouped_table(args):
    df = make_multimodal(args.n, n_groups=6, random_state=0,
                         data_dir=os.path.join(args.data_dir, f"grouped-{args.n}"))
    y, groups = df["label"].to_numpy(), df["group"].to_numpy()
    rows = []
    for name in ("image", "text", "audio"):
        model = LateFusionClassifier(modalities(args.quick, only=name), rule="product",
                                     random_state=0)
        mean, spread = leave_one_group_out(model, df, y, groups, with_groups=True)
        rows.append([f"{name} alone (tuned, by group)", mean, spread])
    for rule in ("stack", "product"):
        for with_groups in (False, True):
            start = time.perf_counter()
            model = LateFusionClassifier(modalities(args.quick), rule=rule, random_state=0)
            mean, spread = leave_one_group_out(model, df, y, groups, with_groups)
            label = f"{'stacking' if rule == 'stack' else 'product rule'}, " \
                    f"{'groups=' if with_groups else 'no groups'}"
            rows.append([label, mean, spread, f"{time.perf_counter() - start:.0f} s"])
    by_group = LogisticRegressionCV(Cs=np.logspace(-4, 1, 6), cv=GroupKFold(3), max_iter=2000,
                                    scoring="accuracy", l1_ratios=(0.0,),
                                    use_legacy_attributes=False)
    for label, estimator, with_groups in (('early fusion, estimator="auto"', "auto", False),
                                          ("early fusion, LogisticRegressionCV(cv=GroupKFold(3)), "
                                           "groups=", by_group, True)):
        start = time.perf_counter()
        model = make_early_fusion(**extractors(args.quick), estimator=estimator)
        mean, spread = leave_one_group_out(model, df, y, groups, with_groups)
        rows.append([label, mean, spread, f"{time.perf_counter() - start:.0f} s"])
    return table(["model (leave-one-group-out, 6 groups)", "accuracy", "std over groups",
                  "time"], [r + [""] * (4 - len(r)) for r in rows])


def held_out(args):
    df = make_multimodal(args.n, random_state=0, data_dir=os.path.join(args.data_dir,
                                                                        f"plain-{args.n}"))
    train, test = train_test_split(df, test_size=0.3, stratify=df["label"], random_state=0)
    return train, test


def scores(model, train, test):
    model.fit(train, train["label"])
    proba = model.predict_proba(test)
    classes = model.classes_
    return (float((classes[proba.argmax(axis=1)] == test["label"]).mean()),
            float(log_loss(test["label"], proba, labels=classes)))


def fusion_table(args, train, test):
    rows = []
    for rule in ("product", "stack"):
        for fixed in (True, False):
            for calibrate in (None, "temperature"):
                model = LateFusionClassifier(modalities(args.quick, fixed), rule=rule,
                                             calibrate=calibrate, random_state=0)
                accuracy, loss = scores(model, train, test)
                rows.append([{"product": "product rule", "stack": "stacking"}[rule],
                             "C=1 (old default)" if fixed else "tuned (default)",
                             calibrate or "none", accuracy, loss])
    return table(["fusion", "per-modality model", "calibration", "accuracy", "log loss"], rows)


def modality_table(args, train, test):
    rows = []
    for name in ("image", "text", "audio"):
        for fixed in (True, False):
            model = LateFusionClassifier(modalities(args.quick, fixed, only=name), rule="product",
                                         calibrate=None, random_state=0)
            accuracy, loss = scores(model, train, test)
            chosen = model.modality_report_["model"].iloc[0]
            rows.append([name, "C=1" if fixed else f"tuned: {chosen}", accuracy, loss])
    for label, estimator in (("LogisticRegression(C=0.5)",
                              LogisticRegression(C=0.5, max_iter=2000)),
                             ('estimator="auto"', "auto")):
        model = make_early_fusion(**extractors(args.quick), estimator=estimator)
        accuracy, loss = scores(model, train, test)
        if estimator == "auto":
            label += f" (C={float(np.ravel(model.named_steps['model'].C_)[0]):.3g})"
        rows.append(["early fusion", label, accuracy, loss])
    return table(["modality", "model", "accuracy", "log loss"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="rows of each data set (default 600)")
    parser.add_argument("--quick", action="store_true", help="colour histogram instead of the CNN")
    parser.add_argument("--data-dir", default="data/bench", help="where the data sets are written")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ExtractionWarning)
    start = time.perf_counter()
    # Many small model fits: BLAS threads only contend on a small machine.
    with threadpool_limits(limits=1, user_api="blas"):
        train, test = held_out(args)
        print(f"## Held out: the demo's split ({len(train)} train, {len(test)} test rows)\n")
        print(fusion_table(args, train, test))
        print()
        print(modality_table(args, train, test))
        print(f"\n## Grouped data ({args.n} rows, 6 groups)\n")
        print(grouped_table(args))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
