"""The shared tier: a real redis-server on a free loopback port, real processes, no mocks.

Two cache directories stand in for two machines; one Redis server is the tier they share.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import redis_server

from mmfeat.cache import FeatureCache
from mmfeat.errors import CacheWarning

REDIS = redis_server.REDIS
server, url = redis_server.server, redis_server.url  # the session's Redis server
pytest.importorskip("redis", reason="the shared tier needs the redis client: mmfeat[shared]")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed "
                                "(apt-get install redis-server; `make install` does it)")


def computing(log):
    def compute(keys):
        log.extend(keys)
        return {k: np.full(3, ord(k[-1]), np.float32) for k in keys}
    return compute


KEYS = [f"{i:032x}" + f"{i:064x}" for i in range(5)]


def test_a_second_machine_reads_the_shared_tier_and_fills_its_own(tmp_path, url):
    first = FeatureCache(tmp_path / "m1", shared=url)
    second = FeatureCache(tmp_path / "m2", shared=url)
    computed = []
    got = first.fetch_or_compute(KEYS, computing(computed))
    assert computed == KEYS and sorted(got) == sorted(KEYS)
    again = second.fetch_or_compute(KEYS, computing(computed))
    assert computed == KEYS  # nothing computed on the second machine
    np.testing.assert_array_equal(again[KEYS[2]], got[KEYS[2]])
    local_only = FeatureCache(tmp_path / "m2", shared=False)
    assert sorted(local_only.get_many(KEYS)) == sorted(KEYS)  # the local tier was filled


def test_a_damaged_or_foreign_value_is_never_served(tmp_path, url):
    import redis

    cache = FeatureCache(tmp_path / "m1", shared=url)
    cache.put_many({KEYS[0]: np.ones(3), KEYS[1]: np.ones(3)})
    client = redis.Redis.from_url(url)
    name = cache.shared.namespace + KEYS[0]
    value = bytearray(client.get(name))
    value[-1] ^= 0xFF
    client.set(name, bytes(value))
    other = FeatureCache(tmp_path / "m2", shared=url)
    assert sorted(other.get_many(KEYS[:2])) == [KEYS[1]]  # the damaged one is a miss ...
    assert client.get(name) is None  # ... and deleted
    # another mmfeat version's entries live under another namespace: never read as ours
    client.set("mmfeat:1:0.0.1:" + KEYS[2], client.get(cache.shared.namespace + KEYS[1]))
    assert other.get_many([KEYS[2]]) == {}


def test_forget_and_prune_reach_the_shared_tier(tmp_path, url):
    from mmfeat.keys import item_digest, make_key

    cache = FeatureCache(tmp_path / "m1", shared=url)
    secret = "my secret diagnosis"
    keys = [make_key(fp, item_digest(secret, "text")) for fp in ("A", "B")]
    cache.put_many({k: np.ones(2) for k in keys + [KEYS[0]]})
    assert cache.forget([secret]) == 4  # two local entries, two shared ones
    other = FeatureCache(tmp_path / "m2", shared=url)
    assert other.get_many(keys) == {} and list(other.get_many([KEYS[0]])) == [KEYS[0]]
    assert cache.prune(older_than=0) >= 2
    assert FeatureCache(tmp_path / "m3", shared=url).get_many([KEYS[0]]) == {}
    assert cache.shared_info()["entries"] == 0


def test_a_server_down_degrades_to_the_local_tier_with_one_warning_and_comes_back(tmp_path, server):
    url, stop, start = server
    cache = FeatureCache(tmp_path / "m1", shared=url)
    cache.shared.retry_after_s = 0.2
    computed = []
    stop()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cache.fetch_or_compute(KEYS[:2], computing(computed))
            cache.fetch_or_compute(KEYS[:3], computing(computed))  # the local tier serves two
        assert computed == KEYS[:3]
        assert [w.category for w in caught] == [CacheWarning]
        assert "shared feature cache" in str(caught[0].message)
    finally:
        start()
    time.sleep(0.3)
    cache.fetch_or_compute(KEYS[3:], computing(computed))  # the tier is back: written there
    assert FeatureCache(tmp_path / "m2", shared=url).get_many(KEYS[3:]).keys() == set(KEYS[3:])


def test_a_key_another_machine_stored_after_the_lookup_is_not_claimed(tmp_path, url):
    first = FeatureCache(tmp_path / "m1", shared=url)
    second = FeatureCache(tmp_path / "m2", shared=url)
    keys = [k.replace("0", "e", 1) for k in KEYS[:3]]  # keys no other test stores
    assert second.get_many(keys) == {}
    first.put_many({k: np.full(3, 7, np.float32) for k in keys[:2]})  # written to the tier
    assert second.shared.claim(keys) == ([keys[2]], keys[:2])
    assert second.shared.live_claims(keys) == {keys[2]}  # the claims it dropped are gone
    assert sorted(second.wait_for(keys[:2], timeout=5)) == sorted(keys[:2])
    second.release([keys[2]])


_HOLD = """
import sys, time
from mmfeat.cache import FeatureCache
cache = FeatureCache(sys.argv[1], shared=sys.argv[2])
cache.shared.lease_s = 1.0
print(cache.shared.claim(sys.argv[3:])[0] == sys.argv[3:], flush=True)
time.sleep(600)
"""


def test_a_claim_on_another_machine_is_waited_for_then_taken_over_if_its_owner_dies(tmp_path, url):
    owner = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path / "m1"), url, *KEYS[:2]],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert owner.stdout.readline().strip() == "True"
        cache = FeatureCache(tmp_path / "m2", shared=url)
        assert cache.shared.claim(KEYS[:2]) == ([], KEYS[:2])  # the owner renews its lease
        time.sleep(1.5)  # longer than the lease: renewed, so still held
        assert cache.shared.live_claims(KEYS[:2]) == set(KEYS[:2])
        owner.kill()
        owner.wait()
        computed = []
        start = time.monotonic()
        got = cache.fetch_or_compute(KEYS[:3], computing(computed))
        assert sorted(got) == sorted(KEYS[:3]) and sorted(computed) == sorted(KEYS[:3])
        assert time.monotonic() - start < 30
    finally:
        owner.kill()


def test_the_setting_configures_every_cache(tmp_path, url, monkeypatch):
    import mmfeat
    from mmfeat.cache import resolve_cache

    monkeypatch.setenv("MMFEAT_SHARED_CACHE", url + "?ttl=60")
    cache = FeatureCache(tmp_path)
    assert cache.shared is not None and cache.shared.ttl_s == 60
    with mmfeat.config_context(shared_cache=False, cache_dir=tmp_path / "x"):
        assert resolve_cache(None).shared is None
    with pytest.raises(ValueError, match="expected a Redis URL"):
        mmfeat.set_config(shared_cache="http://example.com")
    assert FeatureCache(tmp_path, shared=False).shared is None
    assert "***" in repr(FeatureCache(tmp_path, shared="redis://u:secret@127.0.0.1:1/0").shared)
