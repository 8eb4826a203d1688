"""mmfeat's default fusions against the hand-written baselines, on real data sets.

The data sets are built offline by ``benchmarks/real_data.py`` (handwritten digits with their
spoken names, grouped by voice; Noto emoji with their CLDR names and speech, grouped by base
emoji; WordNet definitions with the spoken headword, 5-fold). Each modality's features are
extracted once (the CNN, MiniLM and MFCCs through mmfeat's cache under ``data/real/cache``),
then every model is cross-validated on the same folds from the same feature blocks, so the
fit times compare the models alone.

Hand-written rows are what a user writes with scikit-learn: ``StandardScaler`` +
``LogisticRegression(C=0.1)`` per block (an RBF ``SVC`` with Platt probabilities on the narrow
audio block), early fusion by concatenating the blocks, late fusion by the normalised product
of the per-modality probabilities. mmfeat rows are its defaults: ``make_early_fusion`` with
``estimator="auto"`` (and with a fixed ``LogisticRegression(C=0.1)``), and
``LateFusionClassifier`` with its default stacking and its fixed rules, given the groups.

    python benchmarks/bench_real.py [--only digits,emoji] [--models early,late] [--quick]
    python benchmarks/bench_real.py --models hog    # the image's gradient histograms alone

Prints a Markdown table per data set: accuracy and balanced accuracy of the pooled
out-of-fold predictions, and the mean fit seconds per fold, every fit on one thread (on a
shared machine, two-thread BLAS spends more time waiting than computing). Seeds are fixed
(folds, SVM, data).
``--quick`` swaps the CNN for a gradient histogram (no model to run for images).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MMFEAT_CACHE_DIR", str(HERE.parent / "data" / "real" / "cache"))
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import real_data  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV  # noqa: E402
from sklearn.metrics import accuracy_score, balanced_accuracy_score  # noqa: E402
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedKFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from mmfeat.fusion import LateFusionClassifier, make_early_fusion  # noqa: E402

# name: (builder, modalities, splitter, grouped)
DATASETS = {
    "digits": (real_data.digits, ("image", "audio"), LeaveOneGroupOut(), True),
    "emoji": (real_data.emoji, ("image", "text", "audio"), GroupKFold(5), True),
    "wordnet": (real_data.wordnet, ("text", "audio"), StratifiedKFold(5, shuffle=True,
                                                                      random_state=0), False),
}


def extractor(modality, quick):
    from mmfeat.audio import MFCCStats
    from mmfeat.image import CNNEmbedder, GradientHistogram
    from mmfeat.text import SentenceEmbedder

    if modality == "image":
        return GradientHistogram() if quick else CNNEmbedder()
    return SentenceEmbedder() if modality == "text" else MFCCStats(n_mfcc=20)


def feature_blocks(df, modalities, quick):
    """``{modality: DataFrame of its features}``, columns prefixed by the modality."""
    blocks = {}
    for modality in modalities:
        start = time.perf_counter()
        features = np.asarray(extractor(modality, quick).fit_transform(df[modality]),
                              dtype=np.float64)
        print(f"  {modality}: {features.shape[1]} features in {time.perf_counter() - start:.1f} s",
              flush=True)
        blocks[modality] = pd.DataFrame(
            features, columns=[f"{modality}_{i:04d}" for i in range(features.shape[1])])
    return blocks


def hand_model(modality):
    """The per-block model a user writes by hand."""
    if modality == "audio":
        return make_pipeline(StandardScaler(), SVC(probability=True, random_state=0))
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))


class HandProduct:
    """Late fusion by hand: one model per block, the normalised product of their probabilities."""

    def __init__(self, blocks):
        self.blocks = blocks

    def fit(self, X, y, groups=None):
        self.models_ = {m: hand_model(m).fit(X[cols], y) for m, cols in self.blocks.items()}
        return self

    def predict(self, X):
        log_p = sum(np.log(np.clip(model.predict_proba(X[self.blocks[m]]), 1e-12, None))
                    for m, model in self.models_.items())
        return next(iter(self.models_.values())).classes_[log_p.argmax(axis=1)]


class OneBlock:
    """One modality's hand-written model alone, reading its columns of the frame."""

    def __init__(self, modality, columns):
        self.modality, self.columns = modality, columns

    def fit(self, X, y, groups=None):
        self.model_ = hand_model(self.modality).fit(X[self.columns], y)
        return self

    def predict(self, X):
        return self.model_.predict(X[self.columns])


def early(blocks, estimator):
    identity = FunctionTransformer(feature_names_out="one-to-one")
    return make_early_fusion(**{m: (cols, clone(identity)) for m, cols in blocks.items()},
                             estimator=estimator)


def late(blocks, **params):
    return LateFusionClassifier({m: (cols, "passthrough") for m, cols in blocks.items()},
                                random_state=0, **params)


def candidates(blocks, chosen):
    """(row name, kind, model factory, takes groups): kind "hand" or "mmfeat"."""
    columns = {m: list(df.columns) for m, df in blocks.items()}
    rows = [] if chosen <= {"rules", "stack"} else [
        (f"hand: {m} alone" + (" (SVC)" if m == "audio" else ""), "hand",
         lambda m=m: OneBlock(m, columns[m]), False) for m in columns]
    if not chosen <= {"rules", "stack"}:
        rows.append(("hand: early (concatenation)", "hand", lambda: make_pipeline(
            StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)), False))
    rows.append(("hand: late (product)", "hand", lambda: HandProduct(columns), False))
    if "early" in chosen:
        rows += [
            # what estimator="auto" was before (and what a user tuning C would write)
            ("previous default: early, LogisticRegressionCV(cv=3)", "hand",
             lambda: make_pipeline(StandardScaler(), LogisticRegressionCV(
                 Cs=np.logspace(-4, 1, 6), cv=3, max_iter=2000, scoring="accuracy")), False),
        ]
        rows += [
            ("mmfeat: early, C=0.1", "mmfeat",
             lambda: early(columns, LogisticRegression(C=0.1, max_iter=2000)), False),
            ("mmfeat: early, estimator='auto'", "mmfeat", lambda: early(columns, "auto"), "auto"),
        ]
    if "late" in chosen:
        rows += [
            ("mmfeat: late, stacking (default)", "mmfeat", lambda: late(columns), True),
            ("mmfeat: late, rule='product'", "mmfeat", lambda: late(columns, rule="product"), True),
            ("mmfeat: late, rule='mean'", "mmfeat", lambda: late(columns, rule="mean"), True),
        ]
    if "stack" in chosen:
        rows += [("mmfeat: late, stacking (default meta-learner)", "mmfeat", lambda: late(columns),
                  True),
                 ("mmfeat: late, stacking, final_estimator=LogisticRegression()", "mmfeat",
                  lambda: late(columns, final_estimator=LogisticRegression()), True)]
    if "rules" in chosen:
        # One fit per fold gives the four fixed-rule rows: both rules' weights are learned in
        # every fit, and rule and rule_weights are switched with set_params for prediction.
        rows += [("mmfeat: late, rule='product', rule_weights='learned'", "mmfeat",
                  lambda: late(columns, rule="product", rule_weights="learned"), True, {
                      "mmfeat: late, rule='product', rule_weights='equal'":
                          {"rule_weights": "equal"},
                      "mmfeat: late, rule='mean', rule_weights='learned'": {"rule": "mean"},
                      "mmfeat: late, rule='mean', rule_weights='equal'":
                          {"rule": "mean", "rule_weights": "equal"}})]
    return rows


def fit_model(model, X, y, groups, takes_groups):
    if takes_groups == "auto":  # the early-fusion pipeline's self-tuning model
        params = ({"model__groups": groups} if groups is not None and
                  "groups" in _fit_parameters(model[-1]) else {})
        return model.fit(X, y, **params)
    if takes_groups and groups is not None:
        return model.fit(X, y, groups=groups)
    return model.fit(X, y)


def _predict_with(model, params, X):
    """The fitted model's predictions with ``params`` set, then its parameters restored."""
    before = {key: model.get_params()[key] for key in params}
    try:
        return model.set_params(**params).predict(X)
    finally:
        model.set_params(**before)


def _fit_parameters(estimator):
    import inspect

    return inspect.signature(estimator.fit).parameters


def plain_hog(item, cells=4, n_bins=9):
    """The gradient histogram a user writes by hand: the grey image at its own size, 3x3
    Sobel gradients, each pixel's magnitude voted into the nearest of ``n_bins`` unsigned
    orientations of its cell in a ``cells x cells`` grid, the whole vector L2-normalised."""
    import cv2
    from PIL import Image

    gray = np.asarray(Image.open(item).convert("L"), dtype=np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    magnitude, angle = cv2.cartToPolar(gx, gy, angleInDegrees=True)
    orientation = ((angle % 180.0) * n_bins / 180.0).astype(int) % n_bins
    h, w = gray.shape
    cell = (np.arange(h) * cells // h)[:, None] * cells + np.arange(w) * cells // w
    hist = np.bincount((cell * n_bins + orientation).ravel(), magnitude.ravel(),
                       minlength=cells * cells * n_bins)
    return hist / (np.linalg.norm(hist) + 1e-6)


def hog_rows():
    """(row name, features of a column of images): the hand-written histogram and
    ``GradientHistogram`` variants, each scored by the same linear model on the same folds."""
    from mmfeat.image import GradientHistogram

    def ours(**params):
        return lambda images: GradientHistogram(**params).fit_transform(images)

    return [
        ("hand: plain 4x4-cell Sobel HOG (144)",
         lambda images: np.array([plain_hog(item) for item in images])),
        ("mmfeat: GradientHistogram() (default: 8x8 cells, normalised over the image)",
         ours()),
        ("mmfeat: GradientHistogram(block_size=2, norm='block') (Dalal-Triggs L2-Hys blocks, "
         "the previous default)", ours(block_size=2, norm="block")),
        ("mmfeat: GradientHistogram(block_size=1, norm='block') (L2-Hys per cell)",
         ours(block_size=1, norm="block")),
        ("mmfeat: GradientHistogram(block_size=2) (overlapping blocks, normalised over the "
         "image)", ours(block_size=2)),
        ("mmfeat: GradientHistogram(cell_size=16, block_size=2, norm='block') (4x4 cells)",
         ours(cell_size=16, block_size=2, norm="block")),
    ]


def run_hog(name, df, splitter, grouped):
    """Image features alone: each gradient histogram through StandardScaler +
    LogisticRegression(C=0.1), the same folds for every row."""
    y = df["label"].astype(str).to_numpy()
    groups = df["group"].to_numpy()
    splits = list(splitter.split(df, y, groups if grouped else None))
    print("| image features | n features | accuracy | balanced accuracy | extract s |")
    print("|---|---:|---:|---:|---:|")
    for row, features_of in hog_rows():
        start = time.perf_counter()
        features = np.asarray(features_of(df["image"]), dtype=np.float64)
        extract_s = time.perf_counter() - start
        predicted = np.empty(len(y), dtype=object)
        for train, test in splits:
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                model = hand_model("image").fit(features[train], y[train])
            predicted[test] = model.predict(features[test])
        predicted = predicted.astype(str)
        print(f"| {row} | {features.shape[1]} | {accuracy_score(y, predicted):.3f} | "
              f"{balanced_accuracy_score(y, predicted):.3f} | {extract_s:.1f} |", flush=True)


def run(name, quick, chosen, n_max=None):
    build, modalities, splitter, grouped = DATASETS[name]
    df = build()
    if n_max and len(df) > n_max:
        df = df.sample(n_max, random_state=0).reset_index(drop=True)
    if chosen == {"hog"}:
        if "image" in modalities:
            print(f"\n### {name}: {len(df)} rows, gradient histograms of the images", flush=True)
            run_hog(name, df, splitter, grouped)
        return None
    protocol = {"digits": "leave one voice out", "emoji": "5 folds by base emoji"}.get(name,
                                                                                  "5 folds")
    print(f"\n### {name}: {len(df)} rows, {df['label'].nunique()} classes, {protocol}", flush=True)
    blocks = feature_blocks(df, modalities, quick)
    X = pd.concat(blocks.values(), axis=1)
    y = df["label"].astype(str).to_numpy()
    groups = df["group"].to_numpy()
    splits = list(splitter.split(X, y, groups if grouped else None))
    rows = candidates(blocks, chosen)
    # A row's variants: further rows predicted by the same fitted model after set_params.
    names = [name for row in rows for name in (row[0], *(row[4] if len(row) > 4 else ()))]
    predicted = {name: np.empty(len(y), dtype=object) for name in names}
    seconds = {name: [] for name in names}
    for fold, (train, test) in enumerate(splits):
        # Fold by fold, every model in turn: on a shared machine the load drifts, and the
        # ratios of fit times are only fair between fits made at about the same time.
        for row, _, factory, takes_groups, *variants in rows:
            model = factory()
            start = time.perf_counter()
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")
                fit_model(model, X.iloc[train], y[train], groups[train] if grouped else None,
                          takes_groups)
            seconds[row].append(time.perf_counter() - start)
            predicted[row][test] = model.predict(X.iloc[test])
            for variant, params in (variants[0] if variants else {}).items():
                seconds[variant].append(seconds[row][-1])
                predicted[variant][test] = _predict_with(model, params, X.iloc[test])
        print(f"  fold {fold + 1}/{len(splits)} done", flush=True)
    results = [{"model": row, "accuracy": accuracy_score(y, predicted[row].astype(str)),
                "balanced_accuracy": balanced_accuracy_score(y, predicted[row].astype(str)),
                "fit_s": float(np.mean(seconds[row]))} for row in names]
    table = pd.DataFrame(results)
    print()
    print("| model | accuracy | balanced accuracy | fit s / fold |")
    print("|---|---|---|---|")
    for r in table.itertuples():
        print(f"| {r.model} | {r.accuracy:.3f} | {r.balanced_accuracy:.3f} | {r.fit_s:.2f} |")
    return table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated data sets: " + ",".join(DATASETS))
    parser.add_argument("--models", default="early,late",
                        help="mmfeat rows: early, late, rules (the fixed rules, learned and "
                             "equal weights), stack (the default meta-learner against "
                             "LogisticRegression); rules and stack alone keep only the "
                             "hand-written product beside them; hog alone: the image's "
                             "gradient histograms against a hand-written one")
    parser.add_argument("--quick", action="store_true",
                        help="gradient histogram instead of the CNN")
    parser.add_argument("--n-max", type=int, help="subsample each data set to this many rows")
    args = parser.parse_args()
    for name in (args.only.split(",") if args.only else DATASETS):
        run(name, args.quick, set(args.models.split(",")), args.n_max)


if __name__ == "__main__":
    main()
