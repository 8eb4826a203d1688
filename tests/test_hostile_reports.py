"""Report writers under attack: links planted under a report's names, modality names that are
paths, an earlier report left in the folder, and temporaries of a killed report."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from counting import CountingText  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from mmfeat import compare  # noqa: E402
from mmfeat.comparison.report import write_report  # noqa: E402
from mmfeat.datasets import make_multimodal  # noqa: E402
from mmfeat.fusion import make_early_fusion  # noqa: E402
from mmfeat.image import ColorHistogram  # noqa: E402
from mmfeat.robustness import robustness_report  # noqa: E402

PLANTED = ["results.csv", "results.md", "scores.png", "robustness.png"]


def tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("reports")
    return root, make_multimodal(40, data_dir=root / "data")


@pytest.fixture(scope="module")
def run(data):
    """A comparison with a robustness report, written into a folder where links to files of
    the user's were planted under the report's names."""
    root, df = data
    report = root / "report"
    report.mkdir()
    victims = {}
    for name in PLANTED:
        victim = root / f"victim-{name}"
        victim.write_text("precious")
        (report / name).symlink_to(victim)
        victims[name] = victim
    modalities = {"image": ("image", ColorHistogram(bins=(4, 2, 2), cache=False)),
                  "text": ("text", CountingText(log_path=str(root / "text.log"), cache=False))}
    result = compare(df, target="label", modalities=modalities, cv=2, interactions=False,
                     robustness=True, report_dir=report)
    return {"root": root, "df": df, "report": report, "victims": victims, "result": result}


@pytest.mark.slow
def test_report_files_replace_planted_links_and_never_write_through_them(run):
    for name, victim in run["victims"].items():
        assert victim.read_text() == "precious", name
        written = run["report"] / name
        assert written.is_file() and not written.is_symlink(), name
    assert (run["report"] / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tree(run["report"]) if p.startswith(".mmfeat-tmp-")]


@pytest.mark.slow
def test_a_second_report_leaves_nothing_of_the_first(run):
    again = dataclasses.replace(run["result"], robustness=None)
    files = write_report(again, run["df"]["label"].to_numpy(), run["report"])
    assert {f.name for f in files} == set(tree(run["report"]))
    assert not (run["report"] / "robustness.csv").exists()
    assert not (run["report"] / "robustness.png").exists()


def test_modality_names_are_never_paths(data, tmp_path):
    df = data[1].iloc[:12]
    model = make_early_fusion(image=("image", ColorHistogram(bins=(4, 2, 2), cache=False)),
                              estimator=LogisticRegression())
    model.fit(df, df["label"])
    work, outside = tmp_path / "work", tmp_path / "outside"
    before = tree(tmp_path)
    names = {"../../escaped": ("image", "image"), f"{outside}/absolute": ("image", "image"),
             "image": ("image", "image")}
    report = robustness_report(model, df, df["label"], modalities=names, work_dir=work,
                               corruptions={"image": {"blur": [0.5]}})
    assert (report[report["perturbation"] == "blur"]["status"] == "ok").all()
    new = tree(tmp_path) - before
    assert new and all(p == "work" or p.startswith("work/") for p in new), sorted(new)
    absolute = "01-" + re.sub(r"[^A-Za-z0-9_.-]", "_", f"{outside}/absolute")[:60]
    assert sorted(p.name for p in work.iterdir()) == sorted(["00-.._.._escaped", absolute, "image"])


def test_the_temporaries_of_a_killed_report_are_removed_by_the_next(data):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"mmfeat-robustness-{dead.pid}-killed"
    (stale / "image" / "blur-0.5").mkdir(parents=True)
    (stale / "image" / "blur-0.5" / "000000.png").write_bytes(b"\x89PNG")
    mine = Path(tempfile.mkdtemp(prefix=f"mmfeat-robustness-{os.getpid()}-"))  # a live one
    try:
        df = data[1].iloc[:8]
        model = make_early_fusion(image=("image", ColorHistogram(bins=(4, 2, 2), cache=False)),
                              estimator=LogisticRegression())
        model.fit(df, df["label"])
        robustness_report(model, df, df["label"], corruptions=None)
        assert not stale.exists()
        assert mine.exists()  # the folder of a process that runs is left alone
    finally:
        mine.rmdir()
