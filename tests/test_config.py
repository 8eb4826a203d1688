"""Settings: thread-local like scikit-learn's, read from the environment by default, and
checked: nothing is created or silently ignored for a wrong value."""

from __future__ import annotations

import os
import threading

import pytest
from counting import CountingText

import mmfeat
from mmfeat.config import default_cache_dir


def test_a_wrong_cache_dir_is_refused_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = mmfeat.get_config()
    for wrong in (True, 3, ""):
        with pytest.raises(TypeError, match=f"Got cache_dir={wrong!r}, expected a directory path"):
            mmfeat.set_config(cache_dir=wrong)
    assert mmfeat.get_config() == before
    CountingText().fit(["a"]).transform(["a"])
    assert list(tmp_path.iterdir()) == []  # no ./True


def test_none_restores_the_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MMFEAT_CACHE_DIR")
    mmfeat.set_config(cache_dir=tmp_path / "mine", file_keys="stat")
    assert mmfeat.get_config() == {"cache_dir": tmp_path / "mine", "file_keys": "stat"}
    mmfeat.set_config(cache_dir=None, file_keys=None)
    assert mmfeat.get_config() == {"cache_dir": default_cache_dir(), "file_keys": "content"}
    monkeypatch.setenv("MMFEAT_CACHE_DIR", str(tmp_path / "from-env"))
    mmfeat.set_config(cache_dir=False)
    assert mmfeat.get_config()["cache_dir"] is None
    mmfeat.set_config(cache_dir=None)
    assert mmfeat.get_config()["cache_dir"] == tmp_path / "from-env"


def test_a_wrong_file_keys_variable_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setenv("MMFEAT_FILE_KEYS", "bogus")
    with pytest.raises(ValueError,
                       match="Got MMFEAT_FILE_KEYS='bogus' in the environment, expected one of"):
        mmfeat.get_config()
    with pytest.raises(ValueError, match="MMFEAT_FILE_KEYS='bogus'"):
        CountingText().fit(["a"]).transform(["a"])
    with mmfeat.config_context(file_keys="stat"):  # an explicit setting wins
        assert mmfeat.get_config()["file_keys"] == "stat"
    with pytest.raises(ValueError, match="file_keys='fast'"):
        mmfeat.set_config(file_keys="fast")


def test_settings_are_thread_local_and_never_touch_the_environment(tmp_path):
    environment = dict(os.environ)
    main_dir = mmfeat.get_config()["cache_dir"]
    both_inside = threading.Barrier(2, timeout=10)
    seen, errors = {}, []

    def work(name):
        try:
            with mmfeat.config_context(cache_dir=tmp_path / name, file_keys="stat"):
                both_inside.wait()  # the two contexts are open at the same time
                seen[name] = mmfeat.get_config()
                both_inside.wait()
            seen[name + " after"] = mmfeat.get_config()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert seen["a"] == {"cache_dir": tmp_path / "a", "file_keys": "stat"}
    assert seen["b"] == {"cache_dir": tmp_path / "b", "file_keys": "stat"}
    assert seen["a after"]["cache_dir"] == seen["b after"]["cache_dir"] == main_dir
    assert mmfeat.get_config()["cache_dir"] == main_dir
    assert dict(os.environ) == environment

    mmfeat.set_config(cache_dir=tmp_path / "main only")
    try:
        other = []
        thread = threading.Thread(target=lambda: other.append(mmfeat.get_config()["cache_dir"]))
        thread.start()
        thread.join()
        assert other == [main_dir]  # a new thread starts from the defaults, as in scikit-learn
    finally:
        mmfeat.set_config(cache_dir=None)
