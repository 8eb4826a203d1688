"""Hostile ``.skops`` model files are refused before anything in them is built.

The corpus in ``tests/hostile_skops/`` (written by its ``make_corpus.py``) reaches code through
names that start with ``mmfeat.`` but are not mmfeat's estimator classes. Several would act
while being built (overwrite a file, run the CLI), so each test runs in an empty working
directory holding one victim file and checks that nothing there changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("skops")

from mmfeat.modelfile import load_model, safe_model_types  # noqa: E402

CORPUS_DIR = Path(__file__).parent / "hostile_skops"
sys.path.insert(0, str(CORPUS_DIR))
from make_corpus import CORPUS  # noqa: E402

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models

VICTIM = "keep me\n"


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim.txt").write_text(VICTIM)
    return tmp_path


def _untouched(workdir):
    assert (workdir / "victim.txt").read_text() == VICTIM
    assert sorted(p.name for p in workdir.iterdir()) == ["victim.txt"]


def test_the_committed_corpus_is_the_generated_one():
    assert sorted(p.stem for p in CORPUS_DIR.glob("*.skops")) == sorted(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_file_is_refused_before_anything_is_built(name, workdir):
    _, hostile_type = CORPUS[name]
    with pytest.raises(TypeError, match=rf"not trusted: \[.*'{hostile_type}'"):
        load_model(CORPUS_DIR / f"{name}.skops")
    _untouched(workdir)


def test_mmfeat_score_refuses_a_hostile_file(workdir, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("job")
    manifest = elsewhere / "m.csv"
    pd.DataFrame({"id": [1], "image": ["x.png"]}).to_csv(manifest, index=False)
    evil = CORPUS_DIR / "save_model_overwrites_a_file.skops"
    proc = subprocess.run([sys.executable, "-m", "mmfeat.cli", "score", str(evil), str(manifest),
                           str(elsewhere / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "mmfeat.modelfile.save_model" in proc.stderr
    assert not list(elsewhere.glob("out/part-*"))
    _untouched(workdir)


def test_allow_list_is_exact_class_names_of_mmfeat_estimators():
    import importlib

    from sklearn.base import BaseEstimator

    for name in safe_model_types():
        if not name.startswith("mmfeat."):
            continue
        module, _, cls = name.rpartition(".")
        obj = getattr(importlib.import_module(module), cls)
        assert isinstance(obj, type) and issubclass(obj, BaseEstimator), name
        assert f"{obj.__module__}.{obj.__qualname__}" == name  # its canonical name, not a re-export


def test_every_public_mmfeat_estimator_is_on_the_allow_list():
    """A new estimator class must be added to the allow-list, or its .skops files stop loading."""
    from sklearn.base import BaseEstimator

    import mmfeat.audio
    import mmfeat.fusion
    import mmfeat.image
    import mmfeat.text
    import mmfeat.video

    public = {
        f"{obj.__module__}.{obj.__qualname__}"
        for package in (mmfeat.image, mmfeat.text, mmfeat.audio, mmfeat.fusion, mmfeat.video)
        for obj in vars(package).values()
        if isinstance(obj, type) and issubclass(obj, BaseEstimator)
        and obj.__module__.startswith("mmfeat.")
    }
    assert public and public <= safe_model_types()


def test_trusted_must_be_type_names(workdir):
    with pytest.raises(TypeError, match="expected a list of type names"):
        load_model(CORPUS_DIR / "lookalike_class.skops", trusted="mmfeat")


def test_a_file_that_is_not_a_skops_archive_gets_a_clear_error(workdir):
    bad = workdir / "model.skops"
    bad.write_text("id,image\n1,a.png\n")
    with pytest.raises(ValueError, match="not a readable .skops model file"):
        load_model(bad)
