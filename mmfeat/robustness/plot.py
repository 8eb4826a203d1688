"""Drawing a robustness report: what removing each modality costs, and how the score falls as
each corruption grows."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_bytes
from ..optional import import_optional
from .report import COLUMNS

# How each perturbation's level reads on an axis, and whether a larger level is milder.
_AXES = {
    "blur": ("severity (sigma = level x 5 % of the side)", False),
    "noise": ("severity (std = level x 128 grey levels)", False),
    "occlusion": ("severity (fraction of the area hidden)", False),
    "snr": ("signal-to-noise ratio (dB)", True),
    "word_dropout": ("fraction of the words dropped", False),
}


def plot_robustness(report: pd.DataFrame, path, *, title=None, dpi: int = 120) -> Path:
    """Draw a :func:`robustness_report` as a PNG: one panel of the score with each modality
    removed, then one per modality and perturbation of the score at each level.

    The clean score is a dashed line in every panel, and a modality's score when removed a
    dotted one in its corruption panels. A panel's x axis goes from the clean data to the
    strongest level (for "snr", from the highest SNR to the lowest); failed conditions are left
    out, and a modality the model cannot score without is marked so. A report with the
    ``outliers`` column draws the model as it is, and the scores with the option off as a
    second, grey line in the corruption panels.

    Parameters
    ----------
    report : pandas.DataFrame
        The table :func:`robustness_report` returned (a filtered copy also works, as long as it
        keeps the clean row).
    path : str or path-like
        The PNG file to write; its folder is created if needed.
    title : str or None, default=None
        The figure's title; None says the score's name and the clean score.
    dpi : int, default=120
        Resolution.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install "mmfeat[report]"``).
    """
    missing_columns = [c for c in COLUMNS if c not in getattr(report, "columns", ())]
    if missing_columns:
        raise ValueError(f"Got a report without the columns {missing_columns}: pass the table "
                         "robustness_report returned.")
    clean_rows = report[report["perturbation"] == "none"]
    if clean_rows.empty:
        raise ValueError("Got a report without its clean row (perturbation 'none').")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 1:
        raise ValueError(f"Got dpi={dpi!r}, expected a positive int.")
    figure_module = import_optional("matplotlib.figure", who="plot_robustness", extra="report")

    scoring = report.attrs.get("scoring", "score")
    off = report.iloc[0:0]
    if "outliers" in report.columns:  # the option on, as fitted; off, for comparison
        off = report[report["outliers"] == "off"]
        report = report[report["outliers"] != "off"]
        clean_rows = report[report["perturbation"] == "none"]
    clean = float(clean_rows["score"].iloc[0])
    removed = report[report["perturbation"] == "missing"]
    corrupted = report[~report["perturbation"].isin(["none", "missing"])]
    panels = list(dict.fromkeys(zip(corrupted["modality"], corrupted["perturbation"])))
    n_panels = 1 + len(panels)
    n_cols = min(3, n_panels)
    n_rows = math.ceil(n_panels / n_cols)
    # A Figure without pyplot: no global backend switched, no figure left open in a notebook.
    fig = figure_module.Figure(figsize=(4.2 * n_cols, 3.4 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, sharey=True, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)

    ax = axes[0]
    x = np.arange(len(removed))
    bars = ax.bar(x, removed["score"].fillna(0.0), color="tab:orange", label="modality removed")
    ax.bar_label(bars, [f"{v:.3f}" if s == "ok" else "cannot handle\nmissing"
                        for v, s in zip(removed["score"], removed["status"])], fontsize=8)
    ax.set_xticks(x, removed["modality"])
    ax.set_title("modality removed")
    ax.set_xlabel("removed modality")

    for ax, (modality, perturbation) in zip(axes[1:], panels):
        rows = corrupted[(corrupted["modality"] == modality)
                         & (corrupted["perturbation"] == perturbation)]
        label, milder_when_larger = _AXES.get(perturbation, ("level", False))
        rows = rows.sort_values("level", ascending=not milder_when_larger)
        ok = rows["status"] == "ok"
        positions = np.arange(1, len(rows) + 1)
        ax.plot([0, *positions[ok.to_numpy()]], [clean, *rows["score"][ok]], marker="o",
                color="tab:blue", label="corrupted")
        ax.set_xticks([0, *positions], ["clean", *(f"{v:g}" for v in rows["level"])])
        plain = off[(off["modality"] == modality) & (off["perturbation"] == perturbation)]
        if len(plain):
            plain = plain.set_index("level").loc[rows["level"]]
            kept = (plain["status"] == "ok").to_numpy()
            base = off.loc[off["perturbation"] == "none", "score"].iloc[0]
            ax.plot([0, *positions[kept]], [base, *plain["score"][kept]], marker="s",
                    color="tab:grey", label="outliers off")
        gone = removed[removed["modality"] == modality]
        if not gone.empty and gone["status"].iloc[0] == "ok":
            ax.axhline(gone["score"].iloc[0], color="tab:orange", linestyle=":",
                       label="modality removed")
        ax.set_title(f"{modality}: {perturbation.replace('_', ' ')}")
        ax.set_xlabel(label, fontsize=8)

    for i, ax in enumerate(axes[:n_panels]):
        ax.axhline(clean, color="grey", linestyle="--", label=f"clean ({clean:.3f})")
        ax.grid(axis="y", alpha=0.3)
        if i % n_cols == 0:
            ax.set_ylabel(scoring)
    scores = report["score"].dropna()
    if scores.between(0, 1).all():  # a proportion: show it on its whole scale
        axes[0].set_ylim(0, 1.05)
    handles = {}
    for ax in axes[:n_panels]:
        for handle, name in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(name, handle)
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncols=len(handles))
    fig.suptitle(title if title is not None else
                 f"Robustness: {scoring} with a modality removed or corrupted (clean {clean:.3f})")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    write_bytes(out, buffer.getvalue())  # whole or not at all, and never through a link
    return out
