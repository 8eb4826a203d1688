"""A modality that is wrong, not missing: the robustness report with ``outliers`` off and on.

On the demo data (``make_multimodal(200)``, seed 0, the stratified 120/80 split of the user
guide's robustness example, the quick extractors: colour histogram, MiniLM, MFCCs), one run:

1. late fusion (stacking) fitted once with ``outliers="missing"``: every condition of
   :func:`mmfeat.robustness.robustness_report` with the option off (the plain model: the
   option acts at predict time only) and on;
2. late fusion with ``outliers="trust"`` (the novelty as a meta-learner input), fitted apart;
3. early fusion (``handle_missing=True``, ``estimator="auto"``) with the option off and on.

Each table gives, per condition, the score (accuracy, the model's own) and its ``delta`` to
the clean score of the same setting, and the issue's targets are checked on the late fusion:
each corruption at its strongest level costs at most the modality's removal plus 0.02, and
the clean rows lose at most 0.005.

    python benchmarks/bench_outliers.py [--n 200] [--seed 0] [--data-dir data/bench-outliers]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pandas as pd  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from mmfeat.datasets import demo_extractors, make_multimodal  # noqa: E402
from mmfeat.fusion import LateFusionClassifier, make_early_fusion  # noqa: E402
from mmfeat.robustness import robustness_report  # noqa: E402


def _key(report):
    return (report["modality"].fillna("").astype(str) + "|" + report["perturbation"] + "|"
            + report["level"].fillna(-1).astype(str))


def _table(report, settings):
    """One Markdown row per condition: score and delta under each setting."""
    head = "| modality | perturbation | level | " + " | ".join(
        f"{s}: score | {s}: delta" for s in settings) + " |"
    lines = [head, "|" + "---|" * (3 + 2 * len(settings))]
    report = report.assign(key=_key(report))
    if "outliers" not in report:
        report = report.assign(outliers=settings[0])
    for key in dict.fromkeys(report["key"]):
        rows = report[report["key"] == key]
        first = rows.iloc[0]
        cells = []
        for setting in settings:
            match = rows[rows["outliers"] == setting]
            cells += [f"{match['score'].iloc[0]:.3f}", f"{match['delta'].iloc[0]:+.3f}"]
        level = "" if pd.isna(first["level"]) else f"{first['level']:g}"
        modality = "" if pd.isna(first["modality"]) else first["modality"]
        lines.append(f"| {modality} | {first['perturbation']} | {level} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _targets(report):
    """Per modality: the removal's cost, the worst strongest-level corruption cost with the
    option on, and whether it meets the target; and the clean loss."""
    on, off = report[report["outliers"] == "missing"], report[report["outliers"] == "off"]
    clean_loss = off["score"].iloc[0] - on["score"].iloc[0]
    lines = [f"clean rows: the option costs {clean_loss:+.3f} (target: at most 0.005)"]
    for modality in on["modality"].dropna().unique():
        rows = on[on["modality"] == modality]
        removal = -rows[rows["perturbation"] == "missing"]["delta"].iloc[0]
        for perturbation in rows["perturbation"].unique():
            if perturbation == "missing":
                continue
            levels = rows[rows["perturbation"] == perturbation]
            strongest = levels.sort_values("level", ascending=perturbation != "snr").iloc[-1]
            cost = -strongest["delta"]
            plain = off[(off["modality"] == modality) & (off["perturbation"] == perturbation)
                        & (off["level"] == strongest["level"])]["delta"].iloc[0]
            lines.append(f"{modality} {perturbation} {strongest['level']:g}: costs {cost:.3f} "
                         f"on ({-plain:.3f} off), removal {removal:.3f}: "
                         f"{'met' if cost <= removal + 0.02 + 1e-9 else 'NOT met'}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data/bench-outliers")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    df = make_multimodal(args.n, random_state=args.seed, data_dir=args.data_dir)
    train, test = train_test_split(df, train_size=0.6, stratify=df["label"],
                                   random_state=args.seed)
    options = dict(random_state=args.seed)
    print(f"make_multimodal({args.n}, random_state={args.seed}), {len(train)} rows to fit, "
          f"{len(test)} held out; robustness_report(..., "
          f"random_state={args.seed})\n")

    start = time.perf_counter()
    late = LateFusionClassifier(demo_extractors(quick=True), outliers="missing")
    late.fit(train, train["label"])
    fit_s = time.perf_counter() - start
    report = robustness_report(late, test, test["label"], **options)
    print(f"## Late fusion (stacking), outliers off and 'missing' (fit {fit_s:.1f} s)\n")
    print(_table(report, ["off", "missing"]))
    print("\n" + _targets(report) + "\n")
    thresholds = late.modality_report_.set_index("modality")["novelty_threshold"]
    print("novelty thresholds:", ", ".join(f"{m} {t:.3g}" for m, t in thresholds.items()), "\n")

    trust = LateFusionClassifier(demo_extractors(quick=True), outliers="trust")
    trust_report = robustness_report(trust.fit(train, train["label"]), test, test["label"],
                                     **options)
    print("## Late fusion (stacking), outliers='trust'\n")
    print(_table(trust_report, ["trust"]) + "\n")

    early = make_early_fusion(**demo_extractors(quick=True), handle_missing=True,
                              outliers="missing", estimator="auto")
    early_report = robustness_report(early.fit(train, train["label"]), test, test["label"],
                                     **options)
    print("## Early fusion (handle_missing=True, estimator='auto'), outliers off and 'missing'\n")
    print(_table(early_report, ["off", "missing"]))


if __name__ == "__main__":
    main()
