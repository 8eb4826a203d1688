"""A comparison's report folder: tables a script can read, plots a person can."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_bytes
from ..optional import import_optional

_COLORS = {"single": "#9aa5b1", "early": "#3b7dd8", "late": "#e07b39"}


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' to_markdown needs the optional tabulate package)."""
    def fmt(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def chance_levels(y, task) -> dict:
    """What a model that ignores the features scores: the majority class's frequency for
    accuracy, one over the number of classes for balanced accuracy, 0 for R^2."""
    if task == "regression":
        y = np.asarray(y, dtype=float)
        return {"r2": 0.0, "mae": float(np.abs(y - np.median(y)).mean())}
    counts = pd.Series(y).value_counts(normalize=True)
    return {"accuracy": float(counts.iloc[0]), "balanced_accuracy": 1.0 / len(counts)}


def _pyplot():
    matplotlib = import_optional("matplotlib", who="The comparison report", extra="report")
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


#: Every file a report may hold: those a run does not write are removed from the folder, so
#: that nothing of an earlier report is left beside the new one.
REPORT_FILES = ("results.csv", "folds.csv", "results.md", "scores.png", "contributions.png",
                "confusion.png", "modality_report.csv", "robustness.csv", "robustness.png")


def _save(fig, path: Path, files: list) -> None:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=120, format="png")
    _pyplot().close(fig)
    write_bytes(path, buffer.getvalue())
    files.append(path)


def _write_csv(frame, path: Path, files: list) -> None:
    write_bytes(path, frame.to_csv(index=False).encode())
    files.append(path)


def _plot_scores(result, metrics, path, files):
    plt = _pyplot()
    table = result.table.iloc[::-1]  # best at the top of a horizontal bar chart
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(table) + 1.6),
                             sharey=True)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        y = np.arange(len(table))
        ax.barh(y, table[metric], xerr=table[f"{metric}_std"], capsize=3,
                color=[_COLORS.get(k, "grey") for k in table["kind"]])
        ax.set_yticks(y, table["model"])
        chance = result.chance.get(metric)
        if chance is not None:
            ax.axvline(chance, color="black", linestyle="--", linewidth=1,
                       label="chance" if metric != "mae" else "median baseline")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_xlabel(f"{metric.replace('_', ' ')} ({len(result.splits)}-fold mean ± sd)")
        if metric != "mae":
            ax.set_xlim(min(0.0, np.nanmin(table[metric]) - 0.05), 1.0)
    fig.suptitle("Which fusion? Scores on held-out folds (grey: one modality, blue: early, "
                 "orange: late fusion)", fontsize=10)
    _save(fig, path, files)


def _plot_contributions(result, metric, path, files):
    """Each modality alone (its score) and inside late fusion (its share of the stacker)."""
    plt = _pyplot()
    single = result.table[result.table["kind"] == "single"]
    names = [m.removesuffix(" only") for m in single["model"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 0.5 * len(names) + 2))
    y = np.arange(len(names))
    left.barh(y, single[metric], xerr=single[f"{metric}_std"], capsize=3, color=_COLORS["single"])
    left.set_yticks(y, names)
    if metric in result.chance:
        left.axvline(result.chance[metric], color="black", linestyle="--", linewidth=1,
                     label="chance")
        left.legend(fontsize=8)
    left.set_xlim(0, 1)
    left.set_xlabel(f"{metric.replace('_', ' ')} of the modality alone")
    left.set_title("Alone", fontsize=10)
    stack = result.stacking_report
    if stack is not None and "weight" in stack:
        weights = stack.set_index("modality")["weight"].reindex(names)
        right.barh(y, weights.fillna(0), color=_COLORS["late"])
        right.set_xlim(0, 1)
        right.set_xlabel("share of the stacker's weight (sums to 1)")
    else:
        right.text(0.5, 0.5, "no stacking model", ha="center", va="center")
    right.set_yticks(y, names)
    right.set_title("Inside late fusion (stacking, first fold)", fontsize=10)
    _save(fig, path, files)


def _plot_confusion(result, y, path, files):
    plt = _pyplot()
    from sklearn.metrics import ConfusionMatrixDisplay

    best_single = result.table[result.table["kind"] == "single"]["model"].iloc[0]
    shown = list(dict.fromkeys([result.best, best_single]))
    fig, axes = plt.subplots(1, len(shown), figsize=(4.8 * len(shown), 4.4))
    for ax, name in zip(np.atleast_1d(axes), shown):
        ConfusionMatrixDisplay.from_predictions(y, result.predictions[name], ax=ax,
                                                normalize="true", colorbar=False,
                                                values_format=".2f")
        ax.set_title(f"{name}\n(rows: true class, normalised)", fontsize=10)
    _save(fig, path, files)


def write_report(result, y, report_dir) -> list:
    """Write ``results.csv``, ``folds.csv``, ``results.md`` and the PNG plots; return the paths.

    Every file is written whole to a temporary file and renamed (a link planted under a
    report's name is replaced, never followed), and report files of an earlier run that this
    one does not write are removed.
    """
    from .run import METRICS

    root = Path(report_dir)
    root.mkdir(parents=True, exist_ok=True)
    files = []
    _write_csv(result.table, root / "results.csv", files)
    _write_csv(result.folds, root / "folds.csv", files)
    metrics = list(METRICS[result.task])
    shown = ["model", *[c for m in metrics for c in (m, f"{m}_std")], "fit_s", "predict_s",
             "cache_hits", "status"]
    chance = ", ".join(f"{k} {v:.3f}" for k, v in result.chance.items())
    write_bytes(root / "results.md", (
        f"# Which fusion?\n\n{result.n_rows} rows, {len(result.splits)} folds"
        f"{' by group' if result.grouped else ''}, ranked by {result.rank_by}. "
        f"Chance: {chance}.\n\n{markdown_table(result.table[shown])}\n").encode())
    files.append(root / "results.md")
    _plot_scores(result, metrics, root / "scores.png", files)
    if (result.table["kind"] == "single").any():
        _plot_contributions(result, result.rank_by, root / "contributions.png", files)
    if result.task == "classification" and result.best is not None:
        _plot_confusion(result, y, root / "confusion.png", files)
    if result.stacking_report is not None:
        _write_csv(result.stacking_report, root / "modality_report.csv", files)
    if result.robustness is not None:
        from ..robustness import plot_robustness

        _write_csv(result.robustness, root / "robustness.csv", files)
        files.append(plot_robustness(result.robustness, root / "robustness.png",
                                     title=f"Robustness of {result.best}"))
    for name in set(REPORT_FILES) - {f.name for f in files}:
        (root / name).unlink(missing_ok=True)  # an earlier run's; a link is removed, not followed
    return files
