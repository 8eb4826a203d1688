"""``mmfeat demo``: the project's main job.

Makes the demo dataset, fits image-only, text-only, audio-only, early-fusion and late-fusion
models on a training split, scores them on a held-out split, prints a results table and
writes a report (CSV, Markdown, PNG plots) to a folder it names at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import resolve_cache
from .datasets import demo_extractors

DEFAULT_SAMPLES = 600
QUICK_SAMPLES = 200


def _extractors(quick: bool, video: bool = False):
    # Progress bars only on a terminal: written to a log file, nested bars become a soup of
    # carriage returns.
    return demo_extractors(quick, video=video, verbose=sys.stderr.isatty())


def build_models(quick: bool = False, random_state: int = 0, video: bool = False) -> dict:
    """The demo's models by display name: three single-modality pipelines and three fusions.

    Every model uses mmfeat's defaults, which tune themselves by inner cross-validation on the
    training rows only (``estimator="auto"``, the late-fusion per-modality models), so no
    number here was chosen by looking at the held-out rows.
    """
    from .fusion import LateFusionClassifier, make_early_fusion

    models = {}
    for name, spec in _extractors(quick, video).items():
        models[f"{name} only"] = make_early_fusion(**{name: spec}, estimator="auto")
    models["early fusion"] = make_early_fusion(**_extractors(quick, video), estimator="auto")
    models["late fusion (stacking)"] = LateFusionClassifier(_extractors(quick, video), cv=5,
                                                            random_state=random_state)
    models["late fusion (product rule)"] = LateFusionClassifier(_extractors(quick, video), rule="product",
                                                                cv=5, random_state=random_state)
    return models


def evaluate(models: dict, train: pd.DataFrame, test: pd.DataFrame):
    """Fit and score every model; returns the results table and the fitted models."""
    from sklearn.metrics import accuracy_score, f1_score
    from tqdm.auto import tqdm

    from threadpoolctl import threadpool_limits

    cache = resolve_cache(None)
    rows, fitted = [], {}
    # The models are small: numpy's BLAS threads would only spin (tuning the 1280-d image model
    # took 13 s instead of 3 on a busy 2-core machine). The CNN and the sentence model run on
    # torch's own threads, which this leaves alone.
    limit = threadpool_limits(limits=1, user_api="blas")
    for name, model in tqdm(models.items(), desc="models", unit="model", disable=None):  # None: tty only
        hits_before = cache.session_hits if cache is not None else 0
        start = time.perf_counter()
        model.fit(train, train["label"])
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        predicted = model.predict(test)
        predict_s = time.perf_counter() - start
        rows.append({
            "model": name,
            "accuracy": accuracy_score(test["label"], predicted),
            "macro_f1": f1_score(test["label"], predicted, average="macro"),
            "fit_s": fit_s,
            "predict_s": predict_s,
            "cache_hits": (cache.session_hits - hits_before) if cache is not None else 0,
        })
        fitted[name] = (model, predicted)
    limit.restore_original_limits()
    return pd.DataFrame(rows), fitted


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs the optional tabulate package)."""
    def fmt(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def write_report(results, fitted, test, report_dir: Path) -> list[Path]:
    """CSV and Markdown tables and three PNG plots; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    report_dir.mkdir(parents=True, exist_ok=True)
    files = [report_dir / "results.csv", report_dir / "results.md"]
    results.to_csv(files[0], index=False)
    files[1].write_text(markdown_table(results) + "\n")

    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(results))
    ax.bar(x - 0.2, results["accuracy"], 0.4, label="accuracy")
    ax.bar(x + 0.2, results["macro_f1"], 0.4, label="macro-F1")
    ax.set_xticks(x, results["model"], rotation=25, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title("Held-out scores: single modalities vs fusion")
    ax.legend()
    fig.tight_layout()
    files.append(report_dir / "scores.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    best = results.sort_values("accuracy", ascending=False)["model"].iloc[0]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(test["label"], fitted[best][1], ax=ax, colorbar=False)
    ax.set_title(f"Confusion matrix: {best}")
    fig.tight_layout()
    files.append(report_dir / "confusion.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)

    report = fitted["late fusion (stacking)"][0].modality_report_
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(len(report))
    ax.bar(x - 0.2, report["oof_score"], 0.4, label="out-of-fold accuracy alone")
    ax.bar(x + 0.2, report["weight"], 0.4, label="weight in the meta-learner")
    ax.set_xticks(x, report["modality"])
    ax.set_ylim(0, 1)
    ax.set_title("What each modality contributes (late fusion)")
    ax.legend()
    fig.tight_layout()
    files.append(report_dir / "contributions.png")
    fig.savefig(files[-1], dpi=120)
    plt.close(fig)
    report.to_csv(report_dir / "modality_report.csv", index=False)
    files.append(report_dir / "modality_report.csv")
    calibrated = fitted["late fusion (product rule)"][0].modality_report_
    calibrated.to_csv(report_dir / "calibration.csv", index=False)
    files.append(report_dir / "calibration.csv")
    return files


def run_demo(args) -> int:
    """Entry point of ``mmfeat demo`` (arguments from :mod:`mmfeat.cli`)."""
    from sklearn.model_selection import train_test_split

    from .datasets import make_multimodal

    n = args.n_samples or (QUICK_SAMPLES if args.quick else DEFAULT_SAMPLES)
    start = time.perf_counter()
    video = getattr(args, "video", False)
    print(f"mmfeat demo: {n} samples in {args.data_dir} (image PNG, text, audio WAV"
          f"{', video MP4' if video else ''})")
    data = make_multimodal(n_samples=n, random_state=args.random_state, data_dir=args.data_dir,
                           video=video)
    train, test = train_test_split(data, test_size=0.3, stratify=data["label"],
                                   random_state=args.random_state)
    cache = resolve_cache(None)
    print(f"feature cache: {cache.path if cache is not None else 'off'}")
    results, fitted = evaluate(build_models(args.quick, args.random_state, video), train, test)
    print()
    print(markdown_table(results))
    print()
    columns = ["modality", "model", "oof_score", "log_loss", "calibration", "calibrated_log_loss",
               "weight"]
    print(fitted["late fusion (stacking)"][0].modality_report_[columns].to_string(index=False))
    print()
    product = fitted["late fusion (product rule)"][0].modality_report_
    print("product rule, calibrated modalities:")
    print(product[["modality", "log_loss", "ece", "calibration", "calibrated_log_loss",
                   "calibrated_ece"]].to_string(index=False))
    files = write_report(results, fitted, test, Path(args.report_dir))
    print(f"\nreport written to {Path(args.report_dir).resolve()}/:")
    for f in files:
        print(f"  {f.name}")
    print(f"total {time.perf_counter() - start:.1f} s (a second run reuses the cached features)")
    return 0
