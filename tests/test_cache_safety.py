"""The store under stress and attack: private files, forgetting items, dead claim owners, a
stuck writer, read-only stores, FIFOs, old formats. Real files, real processes."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from mmfeat.cache import FeatureCache
from mmfeat.errors import CacheError, CacheWarning, ItemError
from mmfeat.keys import item_digest, make_key


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_store_is_private(tmp_path):
    cache = FeatureCache(tmp_path / "parent" / "store")
    cache.put_many({"a": np.ones(3)})
    assert _mode(cache.path) == 0o700
    for suffix in ("", "-wal", "-shm"):
        assert _mode(f"{cache.file}{suffix}") == 0o600, suffix


def test_a_group_writable_directory_shares_the_store_with_the_group(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o2770)
    cache = FeatureCache(shared)
    cache.put_many({"a": np.ones(3)})
    assert _mode(shared) == 0o2770  # the owner's choice is kept
    assert _mode(cache.file) == 0o660


def test_forget_removes_an_item_under_every_extractor(tmp_path):
    cache = FeatureCache(tmp_path / "store")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG not really")
    secret, other = "my secret diagnosis", "the weather is fine"
    keys = {
        (fp, name): make_key(fp, item_digest(item, modality))
        for fp in ("SentenceEmbedder|a", "SentenceEmbedder|b", "ColorHistogram|c")
        for name, item, modality in (("secret", secret, "text"), ("other", other, "text"),
                                     ("photo", str(photo), "image"))
    }
    cache.put_many({key: np.ones(4) for key in keys.values()})
    assert cache.forget([secret, str(photo)]) == 6
    left = cache.get_many(list(keys.values()))
    assert sorted(left) == sorted(k for (fp, name), k in keys.items() if name == "other")
    assert cache.forget([secret]) == 0


def test_prune_older_than(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put_many({"old": np.ones(3)})
    time.sleep(0.3)
    cache.put_many({"new": np.ones(3)})
    assert cache.prune(older_than=0.2) == 1
    assert list(cache.get_many(["old", "new"])) == ["new"]
    with pytest.raises(ValueError, match="older_than=-1"):
        cache.prune(older_than=-1)
    with pytest.raises(ValueError, match="Give max_bytes, older_than or both"):
        cache.prune()


@pytest.mark.slow
def test_a_waiter_takes_over_when_the_claim_owner_dies(tmp_path):
    """A process waiting for another's claim must not stay blocked when that owner dies."""
    owner = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from mmfeat.cache import FeatureCache; "
        f"FeatureCache({str(tmp_path)!r}).claim_many(['k1', 'k2']); print('claimed', flush=True); "
        "time.sleep(600)")], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "claimed"
        cache = FeatureCache(tmp_path)
        assert cache.claim_many(["k1", "k2"]) == ([], ["k1", "k2"])  # the owner is alive
        result = {}
        waiter = threading.Thread(target=lambda: result.update(got=cache.wait_for(["k1", "k2"])))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive()  # really waiting
        owner.kill()
        owner.wait()
        waiter.join(30)
        assert not waiter.is_alive(), "wait_for stayed blocked on a dead owner's claim"
        assert result["got"] == {}  # nothing arrived: the caller computes both
        assert cache.claim_many(["k1", "k2"]) == (["k1", "k2"], [])
    finally:
        owner.kill()


@contextmanager
def write_lock_held_elsewhere(file):
    """Another process takes the store's write lock and is paused (it never commits)."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, time; "
        f"db = sqlite3.connect({str(file)!r}, isolation_level=None); "
        "db.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(600)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_stuck_writer_never_blocks_lookups_and_writes_give_up(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put_many({"warm": np.arange(4.0)})
    with write_lock_held_elsewhere(cache.file):
        cache.access_resolution_s = 0.0  # every hit wants to record its access time
        start = time.monotonic()
        got = cache.get_many(["warm", "cold"])
        assert time.monotonic() - start < 3  # 60 s per lookup before
        np.testing.assert_array_equal(got["warm"], np.arange(4.0))  # hits read are served
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.monotonic()
            cache.put_many({"new": np.ones(2)})
            waited = time.monotonic() - start
            start = time.monotonic()
            # the holder is stuck: the next write does not wait
            cache.put_many({"next": np.ones(2)})
            waited_again = time.monotonic() - start
        assert waited < 30 and waited_again < 2
        assert any(issubclass(w.category, CacheWarning) and "busy" in str(w.message)
                   for w in caught)
    cache._stuck_until = 0.0  # as after the back-off: the lock is gone and the store works again
    cache.put_many({"new": np.ones(2)})
    assert set(cache.get_many(["warm", "new"])) == {"warm", "new"}


_READ_ONLY_CHILD = """
import os, sys, warnings
import numpy as np
from mmfeat.cache import FeatureCache  # imported first: the Python install is root's alone
import mmfeat.errors, sqlite3, urllib.parse
if os.getuid() == 0:
    os.setgid(65534); os.setuid(65534)  # another user, who may read but not write the store
warnings.simplefilter("error")
cache = FeatureCache(sys.argv[1])
got = cache.get_many(["a", "b"])
cache.put_many({"c": np.ones(3)})
print(cache.read_only, sorted(got), float(got["a"].sum()), cache.check()["entries"])
"""


@pytest.mark.slow
def test_a_read_only_store_serves_hits(tmp_path):
    root = Path(tempfile.mkdtemp())  # outside pytest's owner-only folders, for another user
    try:
        cache = FeatureCache(root / "store")
        cache.put_many({"a": np.arange(5.0)})
        cache.close()
        os.chmod(root, 0o755)
        os.chmod(cache.path, 0o555)
        for name in os.listdir(cache.path):
            os.chmod(cache.path / name, 0o444)
        proc = subprocess.run([sys.executable, "-c", _READ_ONLY_CHILD, str(cache.path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split() == ["True", "['a']", "10.0", "1"]
    finally:
        os.chmod(root / "store", 0o755)
        subprocess.run(["rm", "-rf", str(root)], check=True)


def test_a_fifo_is_refused_not_read(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-c", (
        "import sys; from mmfeat.keys import item_digest; from mmfeat.errors import ItemError\n"
        "try:\n    item_digest(sys.argv[1], 'image')\nexcept ItemError as exc:\n    print(exc)")
        , str(fifo)], capture_output=True, text=True, timeout=60)
    assert "not a regular file" in proc.stdout, proc.stderr
    with pytest.raises(ItemError, match="not a regular file"):
        item_digest("/dev/zero", "audio")


def test_explicit_operations_report_an_unusable_store(tmp_path):
    (tmp_path / "features.sqlite").mkdir()  # a directory where the store should be
    cache = FeatureCache(tmp_path)
    with pytest.raises(CacheError, match="cannot be used"):
        cache.check()
    with pytest.raises(CacheError, match="could not be reset"):
        cache.clear()


def test_clear_really_resets_a_store_of_a_foreign_schema(tmp_path):
    with sqlite3.connect(tmp_path / "features.sqlite") as db:
        db.execute("CREATE TABLE features (x)")
        db.execute("PRAGMA user_version = 2")
    db.close()
    cache = FeatureCache(tmp_path)
    with pytest.raises(CacheError):
        cache.check()
    cache.clear()
    assert cache.check()["entries"] == 0
    cache.put_many({"a": np.ones(2)})
    assert list(cache.get_many(["a"])) == ["a"]


def test_a_version_1_store_is_emptied_on_open(tmp_path):
    with sqlite3.connect(tmp_path / "features.sqlite") as db:
        db.executescript("""
            CREATE TABLE features (key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL,
                checksum INTEGER NOT NULL, size INTEGER NOT NULL, last_access INTEGER NOT NULL);
            CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            CREATE TABLE claims (key TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
                since INTEGER NOT NULL);
            INSERT INTO meta VALUES ('hits', 0), ('misses', 0);
            INSERT INTO features VALUES ('old', 1, x'00000000', 0, 4, 0);
            PRAGMA user_version = 1;""")
    db.close()
    assert FeatureCache(tmp_path).check()["entries"] == 0


@pytest.mark.slow
def test_clear_never_deletes_a_store_another_process_is_writing(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put_many({"keep": np.ones(2)})
    with write_lock_held_elsewhere(cache.file), pytest.raises(CacheError, match="busy"):
        FeatureCache(tmp_path).clear()
    assert list(FeatureCache(tmp_path).get_many(["keep"])) == ["keep"]  # nothing was deleted
