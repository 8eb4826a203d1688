"""The `mmfeat extract` and `mmfeat cache` commands, on real files and a real store."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from mmfeat.cache import FeatureCache
from mmfeat.cli import main


@pytest.fixture()
def manifest(tmp_path, image_paths, bad_files):
    rows = image_paths + [bad_files["missing"], bad_files["truncated_png"]]
    path = tmp_path / "manifest.csv"
    pd.DataFrame({"id": range(len(rows)), "image": rows}).to_csv(path, index=False)
    return path


def test_extract_warms_the_cache_and_writes_features(manifest, tmp_path, capsys):
    store = tmp_path / "store"
    out = tmp_path / "features.parquet"
    code = main(["extract", str(manifest), "--column", "image", "--extractor", "color",
                 "--param", "bins=(4, 4, 2)", "--dir", str(store), "--output", str(out)])
    assert code == 0
    printed = capsys.readouterr()
    assert "8 rows, 2 failed, 32 features" in printed.out
    assert "row 6" in printed.err  # the warning names the first failing row
    features = pd.read_parquet(out)
    assert features.shape == (8, 32) and features.iloc[6:].isna().all().all()
    assert FeatureCache(store).stats()["entries"] == len(set(open(p, "rb").read() for p in
                                                              pd.read_csv(manifest).image[:6]))


def test_cache_info_prune_clear(manifest, tmp_path, capsys):
    store = tmp_path / "store"
    main(["extract", str(manifest), "--column", "image", "--extractor", "color", "--dir", str(store)])
    capsys.readouterr()
    assert main(["cache", "info", "--dir", str(store)]) == 0
    info = dict(line.split(None, 1) for line in capsys.readouterr().out.strip().splitlines())
    assert int(info["entries"]) == 6 and int(info["bytes"]) == 6 * 512 * 4
    assert main(["cache", "prune", "--dir", str(store), "--max-bytes", "4096"]) == 0
    assert FeatureCache(store).stats()["entries"] == 2
    assert main(["cache", "clear", "--dir", str(store)]) == 0
    assert FeatureCache(store).stats()["entries"] == 0


def test_bad_arguments_are_explained(manifest, capsys):
    with pytest.raises(SystemExit, match="no column 'picture'"):
        main(["extract", str(manifest), "--column", "picture", "--extractor", "color"])
    with pytest.raises(SystemExit, match="expected one of"):
        main(["extract", str(manifest), "--column", "image", "--extractor", "nope"])


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "mmfeat.cli", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("mmfeat ")
