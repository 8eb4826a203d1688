"""A modality that is wrong, not missing: the robustness report with ``outliers`` off and on.

On the demo data (``make_multimodal(200)``, seed 0, the stratified 120/80 split of the user
guide's robustness example, the quick extractors: colour histogram, MiniLM, MFCCs), one run:

1. late fusion (stacking) fitted once with ``outliers="missing"``: every condition of
   :func:`mmfeat.robustness.robustness_report` with the option off (the plain model: the
   option acts at predict time only) and on;
2. late fusion with ``outliers="trust"`` (the novelty as a meta-learner input), fitted apart;
3. early fusion (``handle_missing=True``, ``estimator="auto"``) with the option off and on.

With ``--real emoji,digits`` (the real data sets of ``benchmarks/real_data.py``, built
offline; their features come from bench_real.py's cache under ``data/real/cache``), the same
late fusions (the extractors of bench_real.py: the CNN, MiniLM, MFCCs) on one fifth of each
set's groups held out (``StratifiedGroupKFold(5, shuffle=True, random_state=seed)``'s first
fold), fitted on the rest with the groups, each corruption at its strongest level only
(corrupted files kept under ``data/real/robustness/``).

Each table gives, per condition, the score (accuracy, the model's own) and its ``delta`` to
the clean score of the same setting, and the issue's targets are checked on each late fusion:
each corruption at its strongest level costs at most the modality's removal (with the option
on) plus 0.02, and the clean rows lose at most 0.005 (against the plain model).

    python benchmarks/bench_outliers.py [--n 200] [--seed 0] [--data-dir data/bench-outliers]
                                        [--real emoji,digits] [--no-demo]
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


def _targets(on, off):
    """Per modality: the removal's cost, each strongest-level corruption's cost with the option
    on (``on``: its report's rows), beside the plain model's (``off``), and whether it meets
    the target (and by how much it misses); and the clean rows' loss."""
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
            missed = cost - (removal + 0.02)
            verdict = "met" if missed <= 1e-9 else f"NOT met (by {missed:.3f})"
            lines.append(f"{modality} {perturbation} {strongest['level']:g}: costs {cost:.3f} "
                         f"on ({-plain:.3f} off), removal {removal:.3f}: {verdict}")
    return "\n".join(lines)


def _trust_report(fusion, train, test, options, plain, groups=None):
    """Fit ``fusion`` (with ``outliers="trust"``), print its report and its targets against the
    plain model's rows ``plain``."""
    fusion.fit(train, train["label"], **({} if groups is None else {"groups": groups}))
    report = robustness_report(fusion, test, test["label"], **options)
    print("## Late fusion (stacking), outliers='trust'\n")
    print(_table(report, ["trust"]))
    print("\n" + _targets(report, plain) + "\n")


def _late_report(fusion, train, test, options, groups=None):
    """Fit ``fusion`` (with ``outliers="missing"``) on ``train``, print its robustness report on
    ``test`` with the option off and on, and the targets."""
    start = time.perf_counter()
    fusion.fit(train, train["label"], **({} if groups is None else {"groups": groups}))
    fit_s = time.perf_counter() - start
    report = robustness_report(fusion, test, test["label"], **options)
    print(f"## Late fusion (stacking), outliers off and 'missing' (fit {fit_s:.1f} s)\n")
    print(_table(report, ["off", "missing"]))
    print("\n" + _targets(report[report["outliers"] == "missing"],
                           report[report["outliers"] == "off"]) + "\n")
    thresholds = fusion.modality_report_.set_index("modality")["novelty_threshold"]
    print("novelty thresholds:", ", ".join(f"{m} {t:.3g}" for m, t in thresholds.items()), "\n")
    return report


def demo(args):
    df = make_multimodal(args.n, random_state=args.seed, data_dir=args.data_dir)
    train, test = train_test_split(df, train_size=0.6, stratify=df["label"],
                                   random_state=args.seed)
    options = dict(random_state=args.seed)
    print(f"make_multimodal({args.n}, random_state={args.seed}), {len(train)} rows to fit, "
          f"{len(test)} held out; robustness_report(..., "
          f"random_state={args.seed})\n")
    report = _late_report(LateFusionClassifier(demo_extractors(quick=True), outliers="missing"),
                          train, test, options)
    # seeded: the meta-learner's strange copies are drawn with it
    _trust_report(LateFusionClassifier(demo_extractors(quick=True), outliers="trust",
                                       random_state=args.seed),
                  train, test, options, report[report["outliers"] == "off"])

    early = make_early_fusion(**demo_extractors(quick=True), handle_missing=True,
                              outliers="missing", estimator="auto")
    early_report = robustness_report(early.fit(train, train["label"]), test, test["label"],
                                     **options)
    print("## Early fusion (handle_missing=True, estimator='auto'), outliers off and 'missing'\n")
    print(_table(early_report, ["off", "missing"]))


#: The real data sets' modalities (benchmarks/real_data.py) and the extractors of bench_real.py.
REAL = {"emoji": ("image", "text", "audio"), "digits": ("image", "audio")}


def real(name, args):
    """The report on a real data set: one fifth of its groups held out (stratified group
    k-fold's first fold, seeded), the fusion fitted on the rest with the groups, each corruption
    at its strongest level."""
    import real_data
    from bench_real import extractor
    from sklearn.model_selection import StratifiedGroupKFold

    df = real_data.BUILDERS[name]()
    df["label"] = df["label"].astype(str)
    splitter = StratifiedGroupKFold(5, shuffle=True, random_state=args.seed)
    fit_rows, held_out = next(splitter.split(df, df["label"], df["group"]))
    train, test = df.iloc[fit_rows], df.iloc[held_out]
    modalities = {m: (m, extractor(m, quick=False)) for m in REAL[name]}
    print(f"### {name}: {len(train)} rows to fit, {len(test)} held out (StratifiedGroupKFold(5, "
          f"random_state={args.seed})'s first fold, by {name}'s groups); extractors of "
          f"bench_real.py; strongest level of each corruption\n")
    options = dict(random_state=args.seed, corruptions=STRONGEST,
                   work_dir=real_data.ROOT / "robustness" / name)
    groups = train["group"].to_numpy()
    report = _late_report(LateFusionClassifier(modalities, outliers="missing",
                                               random_state=args.seed),
                          train, test, options, groups=groups)
    _trust_report(LateFusionClassifier(modalities, outliers="trust", random_state=args.seed),
                  train, test, options, report[report["outliers"] == "off"], groups=groups)


#: Each corruption at the strongest level of robustness_report's defaults.
STRONGEST = {"image": {"blur": [0.75], "noise": [0.75], "occlusion": [0.75]},
             "audio": {"snr": [0]}, "text": {"word_dropout": [0.75]}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default="data/bench-outliers")
    parser.add_argument("--real", default="",
                        help="comma-separated real data sets to report on too: "
                             + ",".join(REAL) + " (built by benchmarks/real_data.py)")
    parser.add_argument("--no-demo", action="store_true", help="the real data sets only")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not args.no_demo:
        demo(args)
    if args.real:
        # Features of the real sets come from (and go to) bench_real.py's cache.
        os.environ.setdefault("MMFEAT_CACHE_DIR", str(HERE.parent / "data" / "real" / "cache"))
        sys.path.insert(0, str(HERE))
    for name in filter(None, args.real.split(",")):
        print()
        real(name, args)


if __name__ == "__main__":
    main()
