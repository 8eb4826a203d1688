"""The `mmfeat extract` and `mmfeat cache` commands, on real files and a real store."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from conftest import help_entries

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
    assert features["id"].tolist() == list(range(8))  # the manifest's id comes along
    features = features.drop(columns="id")
    assert features.shape == (8, 32) and features.iloc[6:].isna().all().all()
    assert FeatureCache(store).stats()["entries"] == len(set(open(p, "rb").read() for p in
                                                              pd.read_csv(manifest).image[:6]))


def test_cache_info_prune_clear(manifest, tmp_path, capsys):
    store = tmp_path / "store"
    main(["extract", str(manifest), "--column", "image", "--extractor", "color", "--dir",
          str(store)])
    capsys.readouterr()
    assert main(["cache", "info", "--dir", str(store)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    info = dict(line.split(None, 1) for line in lines[:5])
    assert int(info["entries"]) == 6 and info["size"] == "12.3 KB of vectors"
    assert "ColorHistogram()" in lines[5] and lines[5].split()[0] == "6"  # entries per extractor
    assert main(["cache", "prune", "--dir", str(store), "--max-bytes", "4096"]) == 0
    assert FeatureCache(store).stats()["entries"] == 2
    assert main(["cache", "clear", "--dir", str(store)]) == 0
    assert FeatureCache(store).stats()["entries"] == 0


def _one_line_error(capsys, command):
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mmfeat {command}: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["extract", "{manifest}", "--column", "picture", "--extractor", "color"],
     "no column 'picture'"),
    (["extract", "{tmp}/nope.csv", "--column", "image", "--extractor", "color"],
     "manifest not found"),
    (["extract", "{manifest}", "--column", "image", "--extractor", "color", "--param",
      "bins=(0, 1, 1)"],
     "bins"),
    (["extract", "{manifest}", "--column", "image", "--extractor", "color", "--param", "oops"],
     "NAME=VALUE"),
    (["cache", "prune", "--dir", "{tmp}/store", "--max-bytes", "abc"], "number of bytes"),
    (["cache", "prune", "--dir", "{tmp}/store", "--max-bytes", "-5"], "non-negative"),
    (["cache", "info", "--dir", "{tmp}/absent"], "no feature cache"),
    (["demo", "--n-samples", "20"], "at least 100"),
    (["extract", "{manifest}", "--column", "image", "--extractor", "cnn", "--param",
      "device='cuda'"],
     "not available on this machine"),
    (["extract", "{tsv}", "--column", "image", "--extractor", "color", "--param", "size=-5"],
     "size"),
])
def test_ordinary_mistakes_get_one_line_and_a_non_zero_exit(argv, expected, manifest, tmp_path,
                                                            capsys):
    (tmp_path / "store").mkdir()
    FeatureCache(tmp_path / "store").put_many({"a" * 96: [1.0]})
    tsv = tmp_path / "manifest.tsv"
    pd.read_csv(manifest).to_csv(tsv, sep="\t", index=False)  # TSV manifests read as CSV ones
    argv = [a.format(manifest=manifest, tmp=tmp_path, tsv=tsv) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors (usage line + one error line), exit 2
        code = exc.code
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
    else:
        assert expected in _one_line_error(capsys, argv[0])
    assert code == 2
    assert not (tmp_path / "absent").exists()  # cache info never creates the folder it reads


def test_extractor_choices_and_option_help(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "m.csv", "--column", "image", "--extractor", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    text = capsys.readouterr().out
    assert ".skops" in text and "--trusted TYPE" in text and "(default: 10000)" in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "``" not in capsys.readouterr().out  # no reST markup in the description


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path, image_paths, monkeypatch,
                                                            capsys):
    """The demo writes paths relative to its folder: reading the manifest from anywhere works."""
    import shutil

    import mmfeat

    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    names = []
    for i, p in enumerate(image_paths):
        shutil.copy(p, data / "images" / f"{i}.png")
        names.append(f"images/{i}.png")
    manifest = data / "manifest.csv"
    pd.DataFrame({"id": range(len(names)), "image": names, "text": ["a red square"] * len(names)}
                 ).to_csv(manifest, index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    df = mmfeat.read_manifest(manifest)
    assert df["image"].tolist() == [str(data / n) for n in names]
    assert df["text"].tolist() == ["a red square"] * len(names)  # text is not a path
    assert main(["extract", str(manifest), "--column", "image", "--extractor", "color",
                 "--dir", str(tmp_path / "store")]) == 0
    assert f"{len(names)} rows, 0 failed" in capsys.readouterr().out


def test_extract_exits_non_zero_when_every_row_failed(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"image": ["gone1.png", "gone2.png"]}).to_csv(manifest, index=False)
    assert main(["extract", str(manifest), "--column", "image", "--extractor", "color",
                 "--dir", str(tmp_path / "store")]) == 2
    assert "every one of the 2 rows failed" in capsys.readouterr().err


def test_cache_forget_and_prune_older_than(manifest, tmp_path, capsys):
    store = tmp_path / "store"
    main(["extract", str(manifest), "--column", "image", "--extractor", "color", "--dir",
          str(store)])
    main(["extract", str(manifest), "--column", "image", "--extractor", "color", "--dir",
          str(store), "--param", "bins=(2, 2, 2)"])
    assert FeatureCache(store).stats()["entries"] == 12
    first = tmp_path / "first.csv"
    pd.read_csv(manifest).head(1).to_csv(first, index=False)
    capsys.readouterr()
    assert main(["cache", "forget", str(first), "--column", "image", "--dir", str(store)]) == 0
    assert "removed 2 entries" in capsys.readouterr().out  # under both extractors
    assert FeatureCache(store).stats()["entries"] == 10
    assert main(["cache", "prune", "--older-than", "1h", "--dir", str(store)]) == 0
    assert FeatureCache(store).stats()["entries"] == 10  # all used within the hour
    assert main(["cache", "prune", "--older-than", "0", "--dir", str(store)]) == 0
    assert FeatureCache(store).stats()["entries"] == 0


def test_cache_clear_and_info_report_an_unusable_store(tmp_path, capsys):
    (tmp_path / "features.sqlite").mkdir()
    assert main(["cache", "info", "--dir", str(tmp_path)]) == 2
    assert "cannot be used" in _one_line_error(capsys, "cache")
    assert main(["cache", "clear", "--dir", str(tmp_path)]) == 2
    assert "could not be reset" in _one_line_error(capsys, "cache")


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "mmfeat.cli", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("mmfeat ")


@pytest.mark.parametrize("command", ["demo", "compare", "extract", "cache", "score"])
def test_every_option_has_help_that_gives_its_default_once(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    entries = help_entries(capsys.readouterr().out)
    assert "--cv CV" in entries or "--dir DIR" in entries or "--id-col ID_COL" in entries
    for name, text in entries.items():
        assert text, f"{name} has no help"
        assert text.count("default") <= 1, f"{name}: {text}"
        assert "(default: None)" not in text and "(default: False)" not in text, f"{name}: {text}"


def test_python_dash_m_mmfeat_runs_the_command():
    result = subprocess.run([sys.executable, "-m", "mmfeat", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("mmfeat "), result.stderr
