"""A feature store others may write is not trusted silently: it warns, once per process."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from mmfeat.cache import _OWNER_WARNED, FeatureCache
from mmfeat.errors import CacheWarning
from mmfeat.keys import make_key

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def poisoned_store(path):
    """A store with one valid entry, as another user could leave it."""
    store = FeatureCache(path)
    key = make_key("f" * 32, "d" * 32)
    store.put_many({key: np.full(3, 42.0, np.float32)})
    store.close()
    _OWNER_WARNED.discard(store.path)
    return key


def test_a_world_writable_store_warns_once(tmp_path):
    key = poisoned_store(tmp_path / "shared")
    (tmp_path / "shared").chmod(0o777)
    with pytest.warns(CacheWarning, match=r"is world-writable: the features it serves could have"):
        assert FeatureCache(tmp_path / "shared").get_many([key])
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        FeatureCache(tmp_path / "shared").get_many([key])  # once is enough


@pytest.mark.skipif(not ROOT, reason="needs root to chown")
def test_a_store_owned_by_another_user_warns(tmp_path):
    key = poisoned_store(tmp_path / "theirs")
    os.chown(tmp_path / "theirs", 60002, 60002)
    with pytest.warns(CacheWarning, match=r"is owned by another user \(uid 60002\)"):
        FeatureCache(tmp_path / "theirs").get_many([key])


def test_a_store_of_ones_own_is_silent(tmp_path):
    key = poisoned_store(tmp_path / "mine")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert FeatureCache(tmp_path / "mine").get_many([key])


@pytest.mark.parametrize("damage", [
    "DROP TABLE claims; CREATE TABLE claims (key TEXT)",           # a table of other columns
    "DROP TABLE features; CREATE TABLE features (key TEXT, vec BLOB)",
])
def test_clearing_a_store_of_the_wrong_schema_resets_it_for_real(tmp_path, damage):
    import sqlite3

    key = poisoned_store(tmp_path / "odd")
    with sqlite3.connect(tmp_path / "odd" / "features.sqlite") as db:
        db.executescript(damage)
    store = FeatureCache(tmp_path / "odd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheWarning)  # the damage is reported while it is read
        store.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # a store that works, not one that warns
        store.put_many({key: np.ones(3, np.float32)})
        assert store.get_many([key])[key].tolist() == [1.0, 1.0, 1.0]
        assert store.stats()["entries"] == 1
        other = make_key("f" * 32, "e" * 32)
        store.claim_many([other])  # every table works, claims too
        store.release([other])
