"""The shared cache tier (Redis): work saved across machines, and what a lookup costs.

Starts its own redis-server on a free loopback port (needs ``redis-server`` on PATH) and prints
three Markdown tables:

1. items computed per distinct item when 2 worker processes, each with a local cache directory
   of its own (two machines), featurise the same items at once: local tiers only versus local
   tiers plus one shared tier (target: 1.0 with the shared tier);
2. lookup cost per item of 1280-d float32 vectors (a CNN's) in batches of 1,000: a local hit
   (SQLite), a shared hit (Redis, one MGET per batch), and the raw client calls they are built
   on (SQLite SELECT ... IN, redis-py MGET), side by side; and the server memory per entry;
3. a warm scoring job (``mmfeat.scoring.score``) on a table of image paths: served by its own
   warm local tier, versus a new machine (empty local tier) served by the shared tier.

Ratios are measured side by side in one run; the machine is shared, so absolute times are
noisy. Seed 0 for every generated item.

    python benchmarks/bench_shared_cache.py [--n 2000] [--lookups 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from mmfeat.cache import FeatureCache
from mmfeat.image import ColorHistogram


class CountedHistogram(ColorHistogram):
    """ColorHistogram that appends one line per image it computes to ``$COUNT_LOG``."""

    def _features(self, loaded):
        with open(os.environ["COUNT_LOG"], "a") as log:
            log.write("x\n" * len(loaded))
        return super()._features(loaded)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis():
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    for _ in range(500):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.01)
    raise SystemExit("redis-server did not start")


def _images(folder: Path, n: int) -> list:
    import cv2

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:05d}.png"
        cv2.imwrite(str(path), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        paths.append(str(path))
    return paths


def _worker(args):
    cache_dir, shared, paths, log = args
    os.environ["COUNT_LOG"] = log
    cache = FeatureCache(cache_dir, shared=shared)
    return CountedHistogram(cache=cache).fit([]).transform(paths).shape[0]


def computed_per_item(tmp: Path, url: str, paths: list) -> dict:
    """Two workers, separate local tiers, each given every item (in opposite orders)."""
    out = {}
    ctx = multiprocessing.get_context("spawn")
    for label, shared in (("local tiers only", False), ("local + shared tier", url)):
        log = tmp / f"count-{len(out)}.log"
        jobs = [(str(tmp / f"w{len(out)}-{w}"), shared, paths if w == 0 else paths[::-1], str(log))
                for w in range(2)]
        with ctx.Pool(2) as pool:
            pool.map(_worker, jobs)
        out[label] = sum(1 for _ in open(log)) / len(paths)
    return out


def lookup_costs(tmp: Path, url: str, n: int, rounds: int = 3) -> dict:
    import redis

    rng = np.random.default_rng(0)
    keys = [f"{i:032x}{rng.integers(2**63):064x}" for i in range(n)]
    vectors = {k: rng.standard_normal(1280).astype(np.float32) for k in keys}
    writer = FeatureCache(tmp / "lookup", shared=url)
    client = redis.Redis.from_url(url)
    before = client.info("memory")["used_memory"]
    writer.put_many(vectors)
    per_entry = (client.info("memory")["used_memory"] - before) / n
    local = FeatureCache(tmp / "lookup", shared=False)
    shared = writer.shared
    names = [shared.namespace + k for k in keys]
    db = sqlite3.connect(local.file)
    batches = [keys[i:i + 1000] for i in range(0, n, 1000)]

    def raw_sqlite():
        for b in batches:
            db.execute(f"SELECT key, vec FROM features WHERE key IN ({','.join('?' * len(b))})",
                       b).fetchall()

    def raw_redis():
        for i in range(0, n, 1000):
            client.mget(names[i:i + 1000])

    def local_hit():
        for b in batches:
            assert len(local.get_many(b)) == len(b)

    def shared_hit():
        for b in batches:
            assert len(shared.read(b)) == len(b)

    runs = {"local hit (FeatureCache.get_many)": local_hit, "raw SQLite SELECT": raw_sqlite,
            "shared hit (RedisStore.read)": shared_hit, "raw redis-py MGET": raw_redis}
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: seconds / n * 1e6 for name, seconds in best.items()}, per_entry  # µs per item


def warm_scoring(tmp: Path, url: str, paths: list, rounds: int = 3) -> dict:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from mmfeat.config import config_context
    from mmfeat.fusion import make_early_fusion
    from mmfeat.scoring import score

    table = pd.DataFrame({"id": range(len(paths)), "image": paths})
    table.to_csv(tmp / "table.csv", index=False)
    model = make_early_fusion(image=("image", ColorHistogram()), estimator=LogisticRegression())
    with config_context(cache_dir=tmp / "warm-local", shared_cache=url):
        model.fit(table, [i % 2 for i in range(len(paths))])  # fills the local and shared tiers
    times = {"warm local tier": [], "new machine, shared tier": []}
    for r in range(rounds):
        for label in times:
            local = tmp / "warm-local" if label == "warm local tier" else tmp / f"new-{r}"
            with config_context(cache_dir=local, shared_cache=url if local.name != "warm-local"
                                else False):
                start = time.perf_counter()
                score(model, tmp / "table.csv", tmp / f"out-{label[:3]}-{r}", progress=False)
                times[label].append(time.perf_counter() - start)
    return {label: min(t) for label, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="items for tables 1 and 3")
    parser.add_argument("--lookups", type=int, default=10_000, help="vectors for table 2")
    args = parser.parse_args()
    proc, url = _start_redis()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            paths = _images(tmp / "images", args.n)
            counts = computed_per_item(tmp, url, paths)
            print(f"\n1. Items computed per distinct item, 2 workers, {args.n} images (seed 0)\n")
            print("| tiers | computed / distinct |\n|---|---|")
            for label, ratio in counts.items():
                print(f"| {label} | {ratio:.2f} |")
            costs, per_entry = lookup_costs(tmp, url, args.lookups)
            print(f"\n2. Lookup cost per item, {args.lookups} vectors of 1280 float32, batches of "
                  "1,000 (best of 3)\n")
            print("| lookup | µs / item |\n|---|---|")
            for label, micro in costs.items():
                print(f"| {label} | {micro:.1f} |")
            print(f"\nRedis memory per 1280-d entry (used_memory delta / entries): "
                  f"{per_entry:,.0f} bytes")
            times = warm_scoring(tmp, url, paths)
            print(f"\n3. Warm scoring job, {args.n} image paths, ColorHistogram + logistic "
                  "regression (best of 3)\n")
            print("| served by | seconds | vs warm local |\n|---|---|---|")
            base = times["warm local tier"]
            for label, seconds in times.items():
                print(f"| {label} | {seconds:.2f} | {seconds / base:.2f} |")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
