"""The feature store: real SQLite files, real processes, no mocks."""

import multiprocessing
import os
import pickle
import signal
import sqlite3
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from mmfeat.cache import FeatureCache, resolve_cache
from mmfeat.errors import CacheError, CacheWarning, ItemError
from mmfeat.keys import item_digest, make_key


def expected(key, dim=64):
    """The vector written under ``key``: derived from the key, so any process can check it."""
    # Cheap to compute, so the writer below spends its time inside put_many.
    return (np.arange(dim, dtype=np.float32) + zlib.crc32(key.encode()) % 100_000) / 7


def write_range(path, start, stop, batch):
    cache = FeatureCache(path)
    keys = [f"key-{i:06d}" for i in range(start, stop)]
    for i in range(0, len(keys), batch):
        cache.put_many({k: expected(k) for k in keys[i:i + batch]})


def write_forever(path, started):
    cache = FeatureCache(path)
    for round_ in range(10**6):
        cache.put_many({f"r{round_:05d}-{i:04d}": expected(f"r{round_:05d}-{i:04d}", 2048)
                        for i in range(300)})
        started.set()


def write_and_read_back(cache):
    inherited = cache._conn
    cache.put_many({"child": np.arange(3)})
    assert list(cache.get_many(["child", "parent"])) == ["child", "parent"]
    assert cache._conn is not inherited  # SQLite connections must not cross a fork


def test_round_trip_absent_keys_and_stats(tmp_path):
    cache = FeatureCache(tmp_path / "nested" / "store")
    vectors = {"a": np.arange(3, dtype=np.float64), "b": np.ones(1000, np.float32),
               "c": np.array([-1.5, np.inf], np.float32)}
    cache.put_many(vectors)
    got = cache.get_many(["a", "b", "c", "nope", "a"])
    assert sorted(got) == ["a", "b", "c"]
    for key, vector in vectors.items():
        assert got[key].dtype == np.float32 and got[key].ndim == 1
        np.testing.assert_array_equal(got[key], vector.astype(np.float32))
    got["b"][0] = 5  # a copy: the caller may write to it
    assert cache.get_many(["b"])["b"][0] == 1
    assert cache.get_many([]) == {} and cache.get_many(["x", "y"]) == {}

    stats = cache.stats()
    assert stats["entries"] == 3 and stats["bytes"] == 4 * (3 + 1000 + 2)
    assert (stats["hits"], stats["misses"]) == (4, 3)
    assert (stats["session_hits"], stats["session_misses"]) == (4, 3)
    assert stats["path"] == str(tmp_path / "nested" / "store")
    assert (tmp_path / "nested" / "store" / "features.sqlite").is_file()

    other = FeatureCache(tmp_path / "nested" / "store")  # totals are shared, sessions are not
    other.get_many(["a"])
    assert other.stats()["hits"] == 5 and other.stats()["session_hits"] == 1
    assert "store" in repr(cache)

    with pytest.raises(ValueError, match="expected 1-D"):
        cache.put_many({"d": np.ones((2, 2))})
    with pytest.raises(ValueError, match="non-negative"):
        cache.prune(-1)


def test_hits_rewrite_access_time_only_when_older_than_the_resolution(tmp_path):
    # rewriting a row rewrites its vector: a warm grid search must not rewrite every hit
    cache = FeatureCache(tmp_path)
    cache.put_many({"old": np.zeros(100)})
    time.sleep(0.01)
    cache.put_many({"new": np.ones(100)})
    cache.get_many(["old"])  # seconds old: within the default resolution, not rewritten
    assert cache.prune(400) == 1 and sorted(cache.get_many(["old", "new"])) == ["new"]


def test_prune_removes_least_recently_used_and_clear(tmp_path):
    cache = FeatureCache(tmp_path)
    keys = [f"k{i}" for i in range(10)]
    cache.put_many({k: np.full(100, i, np.float32) for i, k in enumerate(keys)})
    time.sleep(0.01)
    cache.get_many(["k7", "k2", "k9"])  # within the default resolution: access not rewritten
    cache.access_resolution_s = 0.0
    cache.get_many(["k7", "k2", "k9"])  # recently used: these must survive
    assert cache.prune(10**9) == 0
    assert cache.prune(3 * 400) == 7
    assert sorted(cache.get_many(keys)) == ["k2", "k7", "k9"]
    assert cache.stats()["bytes"] == 1200

    store = tmp_path / "features.sqlite"
    cache.put_many({f"big{i}": np.ones(10_000) for i in range(50)})
    size = store.stat().st_size + (tmp_path / "features.sqlite-wal").stat().st_size
    cache.prune(1200)
    assert store.stat().st_size < size / 10  # the freed space goes back to the disk

    cache.clear()
    assert cache.stats()["entries"] == 0 and cache.stats()["hits"] == 0
    assert cache.get_many(keys) == {}
    cache.put_many({"z": np.zeros(2)})
    assert list(cache.get_many(["z"])) == ["z"]


def test_pickle_is_small_and_reopens(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put_many({"a": np.arange(5)})
    data = pickle.dumps(cache)
    assert len(data) < 200
    clone = pickle.loads(data)
    assert clone.path == cache.path and clone is not cache
    np.testing.assert_array_equal(clone.get_many(["a"])["a"], np.arange(5))
    clone.put_many({"b": np.arange(2)})
    assert set(cache.get_many(["a", "b"])) == {"a", "b"}


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_store_warns_once_acts_empty_and_clear_recovers(tmp_path, damage):
    writer = FeatureCache(tmp_path)
    vectors = {f"k{i}": expected(f"k{i}", 512) for i in range(200)}
    writer.put_many(vectors)
    writer.close()  # closing the last connection folds the WAL into the main file
    store = tmp_path / "features.sqlite"
    assert not (tmp_path / "features.sqlite-wal").exists()
    if damage == "garbage":
        store.write_bytes(os.urandom(store.stat().st_size))
    else:
        with open(store, "r+b") as f:
            f.truncate(store.stat().st_size // 2)

    cache = FeatureCache(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = cache.get_many(list(vectors))
        cache.put_many({"new": np.ones(3)})
        cache.get_many(["new"])
        stats = cache.stats()
    if damage == "garbage":  # an explicit operation says so instead of acting on an empty store
        with pytest.raises(CacheError, match="not a database"):
            cache.prune(0)
    cache_warnings = [w for w in caught if issubclass(w.category, CacheWarning)]
    if damage == "garbage":
        assert got == {} and stats["entries"] == 0
        assert len(cache_warnings) == 1
        assert "features.sqlite" in str(cache_warnings[0].message)
        assert "not a database" in str(cache_warnings[0].message)
    for key, vector in got.items():  # whatever a damaged file still serves is right
        np.testing.assert_array_equal(vector, vectors[key])
    assert len(cache_warnings) <= 1

    cache.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        cache.put_many({"a": np.arange(4)})
        np.testing.assert_array_equal(cache.get_many(["a"])["a"], np.arange(4))
        assert cache.stats()["entries"] == 1


def test_checksum_mismatch_is_a_miss_and_deleted(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put_many({k: expected(k) for k in ("a", "b", "c")})
    with sqlite3.connect(tmp_path / "features.sqlite") as raw:
        blob = bytearray(raw.execute("SELECT vec FROM features WHERE key = 'b'").fetchone()[0])
        blob[10] ^= 0x01
        raw.execute("UPDATE features SET vec = ? WHERE key = 'b'", (bytes(blob),))
        raw.execute("UPDATE features SET dim = 3 WHERE key = 'c'")  # length no longer matches
    raw.close()
    assert sorted(cache.get_many(["a", "b", "c"])) == ["a", "b", "c"]  # held in memory, intact
    cache = FeatureCache(tmp_path)  # a process that reads the damaged file
    got = cache.get_many(["a", "b", "c"])
    assert list(got) == ["a"]
    np.testing.assert_array_equal(got["a"], expected("a"))
    assert cache.stats()["entries"] == 1


@pytest.mark.slow
def test_forked_child_opens_its_own_connection(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.put_many({"parent": np.ones(2)})  # the parent's connection is open when it forks
    child = multiprocessing.get_context("fork").Process(target=write_and_read_back, args=(cache,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert set(cache.get_many(["parent", "child"])) == {"parent", "child"}


def test_threads_share_one_instance(tmp_path):
    cache = FeatureCache(tmp_path)

    def work(start):
        keys = [f"t{i}" for i in range(start, start + 200)]
        for i in range(0, 200, 20):
            cache.put_many({k: expected(k) for k in keys[i:i + 20]})
            cache.get_many(keys[:i + 20])
        return keys

    with ThreadPoolExecutor(4) as pool:
        keys = [k for batch in pool.map(work, range(0, 800, 200)) for k in batch]
    got = cache.get_many(keys)
    assert len(got) == 800 and all(np.array_equal(got[k], expected(k)) for k in keys)


@pytest.mark.slow
def test_two_processes_write_overlapping_keys(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=write_range, args=(tmp_path, start, start + 2000, 100))
               for start in (0, 1000)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    keys = [f"key-{i:06d}" for i in range(3000)]
    got = FeatureCache(tmp_path).get_many(keys)
    assert len(got) == 3000
    for key in keys:
        np.testing.assert_array_equal(got[key], expected(key))


@pytest.mark.slow
def test_kill_during_put_many_leaves_whole_entries(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    started = ctx.Event()
    child = ctx.Process(target=write_forever, args=(tmp_path, started))
    child.start()
    try:
        assert started.wait(8), "the writer did not commit a first batch"
        time.sleep(0.3)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.join(5)
    assert child.exitcode == -signal.SIGKILL

    with sqlite3.connect(tmp_path / "features.sqlite") as raw:
        keys = [k for (k,) in raw.execute("SELECT key FROM features")]
    raw.close()
    rounds = {}
    for key in keys:
        rounds.setdefault(key.split("-")[0], []).append(key)
    assert rounds and all(len(batch) == 300 for batch in rounds.values())  # whole batches only

    cache = FeatureCache(tmp_path)
    got = cache.get_many(keys)
    assert len(got) == len(keys)  # every stored entry passes its checksum
    for key in keys:
        np.testing.assert_array_equal(got[key], expected(key, 2048))
    cache.put_many({"after": np.ones(3)})
    assert "after" in cache.get_many(["after"])


def test_resolve_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMFEAT_CACHE_DIR", "off")
    assert resolve_cache(None) is None
    monkeypatch.setenv("MMFEAT_CACHE_DIR", str(tmp_path / "default"))
    default = resolve_cache(None)
    assert default.path == tmp_path / "default" and resolve_cache(None) is default
    assert resolve_cache(False) is None
    assert resolve_cache(str(tmp_path / "default")) is default
    own = FeatureCache(tmp_path / "own")
    assert resolve_cache(own) is own
    with pytest.raises(TypeError, match="expected None"):
        resolve_cache(3)


def test_item_digest(tmp_path):
    first, second = tmp_path / "a.bin", tmp_path / "b.bin"
    first.write_bytes(b"\x00" * (3 << 20) + b"tail")  # spans several read blocks
    second.write_bytes(first.read_bytes())
    assert item_digest(first, "image") == item_digest(str(second), "audio")
    second.write_bytes(b"\x00" * (3 << 20) + b"tall")
    assert item_digest(first, "image") != item_digest(second, "image")

    assert item_digest("hello", "text") != item_digest(b"hello", "text")
    assert item_digest("hello", "text") == item_digest("hello", "text")
    assert item_digest(np.zeros((2, 3)), "image") != item_digest(np.zeros((3, 2)), "image")
    assert item_digest(np.zeros(4, np.uint8), "image") != item_digest(bytes(4), "image")
    wave = np.linspace(-1, 1, 100)
    assert (item_digest((wave, 16000), "audio")
            == item_digest((wave.astype(np.float32), 16000.0), "audio"))
    assert item_digest((wave, 16000), "audio") != item_digest((wave, 22050), "audio")

    with pytest.raises(ItemError, match="file not found"):
        item_digest(tmp_path / "missing.png", "image")
    with pytest.raises(ItemError, match="directory"):
        item_digest(tmp_path, "image")
    with pytest.raises(ItemError, match="directory"):
        item_digest(tmp_path, "image", file_keys="stat")
    with pytest.raises(ItemError, match="missing value"):
        item_digest(float("nan"), "text")
    with pytest.raises(ItemError, match="dict"):
        item_digest({}, "text")
    with pytest.raises(ItemError, match="object"):
        item_digest(np.array([None, 1], dtype=object), "image")
    with pytest.raises(ValueError, match="modality"):
        item_digest("x", "video")

    by_stat = item_digest(first, "image", file_keys="stat")
    assert by_stat == item_digest(first, "image", file_keys="stat")
    assert by_stat != item_digest(first, "image")
    os.utime(first, ns=(1_000_000_000, 1_000_000_000))
    assert item_digest(first, "image", file_keys="stat") != by_stat

    key = make_key("Extractor(v1)", item_digest("hi", "text"))
    assert len(key) == 96 and key != make_key("Extractor(v2)", item_digest("hi", "text"))
    assert key.endswith(item_digest("hi", "text"))  # what forget() looks for


def test_file_digests_are_remembered_until_any_write(tmp_path, monkeypatch):
    import mmfeat.keys as cache_module

    monkeypatch.setattr(cache_module, "_SETTLED_NS", -10**12)  # treat fresh files as settled
    monkeypatch.setattr(cache_module, "_FILE_DIGESTS", {})
    path = tmp_path / "a.png"
    path.write_bytes(b"first content")
    before = item_digest(path, "image")
    assert len(cache_module._FILE_DIGESTS) == 1 and item_digest(path, "image") == before
    # Same size, and mtime put back to the old value: the change of ctime still shows the write.
    st = os.stat(path)
    time.sleep(0.05)  # past the file system's clock tick (the guard the test switched off)
    path.write_bytes(b"other content")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    after = item_digest(path, "image")
    assert after != before
    (tmp_path / "b.png").write_bytes(b"other content")
    assert after == item_digest(tmp_path / "b.png", "image")  # content, not name, decides


def _claim_and_exit(path, keys):
    FeatureCache(path).claim_many(keys)  # claims, then the process ends without releasing


@pytest.mark.slow
def test_claims_split_work_and_are_taken_over_from_dead_processes(tmp_path):
    store = FeatureCache(tmp_path)
    claimed, busy = store.claim_many(["a", "b"])
    assert (claimed, busy) == (["a", "b"], [])
    # A claim by a process that died is stale: it is taken over at once.
    child = multiprocessing.get_context("spawn").Process(target=_claim_and_exit,
                                                         args=(str(tmp_path), ["c", "d"]))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    with sqlite3.connect(store.file) as db:  # the dead child's claims are really there
        owners = dict(db.execute("SELECT key, pid FROM claims WHERE key IN ('c', 'd')"))
    db.close()
    assert owners == {"c": child.pid, "d": child.pid}
    assert store.claim_many(["c", "d", "e"]) == (["c", "d", "e"], [])
    # A live claim (this test's parent process stands in for a live worker) makes keys busy.
    with sqlite3.connect(store.file) as db:
        db.execute("UPDATE claims SET pid = ? WHERE key = 'a'", (os.getppid(),))
    assert store.claim_many(["a", "f"]) == (["f"], ["a"])
    # wait_for returns what arrives, and gives up on a claim released without a result.
    store.put_many({"a": np.ones(3, np.float32)})
    assert list(store.wait_for(["a"], timeout=5)) == ["a"]
    store.release(["b"])
    assert store.wait_for(["b"], timeout=5) == {}


def test_a_key_stored_between_the_lookup_and_the_claim_is_not_computed_again(tmp_path):
    # Two workers of a grid search miss the same fold; the other one stores it and drops its
    # claims before this one claims: claiming then must not compute the fold a second time.
    mine, other = FeatureCache(tmp_path), FeatureCache(tmp_path)
    keys = [f"{i:032x}" + f"{i:064x}" for i in range(3)]
    assert mine.get_many(keys) == {}  # the lookup: all missed
    other.put_many({k: np.full(3, i, np.float32) for i, k in enumerate(keys[:2])})
    assert mine.claim_many(keys) == ([keys[2]], keys[:2])  # stored since: busy, not claimed
    arrived = mine.wait_for(keys[:2], timeout=5)  # read at once
    assert sorted(arrived) == sorted(keys[:2]) and arrived[keys[1]][0] == 1
    mine.release([keys[2]])


# ---------------------------------------------------------------------- the in-memory tier


def test_memo_keeps_the_most_recently_used_vectors_within_its_bytes():
    from mmfeat.memo import VectorMemo

    memo = VectorMemo(max_bytes=3 * 400)  # three vectors of 100 float32
    memo.add({f"k{i}": np.full(100, i, np.float64) for i in range(3)})
    assert sorted(memo.take(["k0"], 60)) == ["k0"]  # k0 used last: k1 goes first
    memo.add({"k3": np.zeros(100)})
    got = memo.take(["k0", "k1", "k2", "k3"], 60)
    assert sorted(got) == ["k0", "k2", "k3"] and got["k0"].dtype == np.float32
    got["k0"][0] = 99  # a copy: the memo's vector is unchanged
    assert memo.take(["k0"], 60)["k0"][0] == 0
    assert memo.take(["k0"], 0.0) == {}  # older than the age asked for: looked up again


def test_repeated_fits_read_each_row_from_the_store_once_and_count_every_hit(image_paths, tmp_path):
    from sklearn.base import clone

    from mmfeat.image import ColorHistogram

    ColorHistogram(cache=FeatureCache(tmp_path)).fit([]).transform(image_paths)  # fills the store
    cache = FeatureCache(tmp_path)  # another process's view: nothing in memory yet
    read, keys_read = cache._store.read, []

    def counting_read(keys, **kwargs):
        keys_read.extend(keys)
        return read(keys, **kwargs)

    cache._store.read = counting_read
    ext = ColorHistogram(cache=cache).fit([])
    want = ColorHistogram(cache=False).fit([]).transform(image_paths)
    for fold in range(3):  # the folds of a grid search: overlapping rows, one store read each
        rows = [p for i, p in enumerate(image_paths) if i % 3 != fold]
        np.testing.assert_array_equal(clone(ext).fit(rows).transform(rows), want[[
            i for i in range(len(image_paths)) if i % 3 != fold]])
    assert sorted(set(keys_read)) == sorted(keys_read) and len(keys_read) == len(image_paths)
    stats = cache.stats()  # the hits served from memory are in the store's totals too
    assert stats["session_hits"] == 12 and (stats["hits"], stats["misses"]) == (12, 6)


def test_memo_never_serves_a_changed_file_or_another_fingerprint(tmp_path):
    import cv2

    from mmfeat.image import ColorHistogram

    path = tmp_path / "photo.png"
    red, blue = np.zeros((32, 32, 3), np.uint8), np.zeros((32, 32, 3), np.uint8)
    red[..., 2], blue[..., 0] = 200, 200  # BGR
    assert cv2.imwrite(str(path), red)
    old = time.time_ns() - 10**10  # settled: this process remembers the file's digest
    os.utime(path, ns=(old, old))
    cache = FeatureCache(tmp_path / "store")
    before = ColorHistogram(cache=cache).fit([]).transform([str(path)])
    assert cv2.imwrite(str(path), blue)  # same size, same mtime: only the content changed
    os.utime(path, ns=(old, old))
    after = ColorHistogram(cache=cache).fit([]).transform([str(path)])
    np.testing.assert_array_equal(after, ColorHistogram(cache=False).fit([]).transform([str(path)]))
    assert not np.array_equal(after, before)
    coarse = ColorHistogram(cache=cache, bins=(4, 4, 4)).fit([]).transform([str(path)])
    assert coarse.shape[1] == 64 and cache.stats()["entries"] == 3

    cache.clear()  # this process's clear empties its memory too: computed again
    misses = cache.session_misses
    ColorHistogram(cache=cache).fit([]).transform([str(path)])
    assert cache.session_misses == misses + 1


def test_clear_through_one_instance_empties_every_instance_s_memory(tmp_path):
    first, second = FeatureCache(tmp_path), FeatureCache(tmp_path)
    first.put_many({"a": np.ones(3)})
    assert list(second.get_many(["a"])) == ["a"]  # now in second's memory too
    first.clear()
    assert second.get_many(["a"]) == {}
