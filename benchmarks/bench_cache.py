"""The feature cache: warm versus cold transforms, and a grid search with and without it.

Prints two Markdown tables:

1. cold (cache empty) versus warm (all hits) ``transform`` of SentenceEmbedder, CNNEmbedder
   and MFCCStats on N items (target: warm at least 50x faster for the models);
2. a 5-fold GridSearchCV over 6 candidates on an early-fusion pipeline of the three: mmfeat's
   cache, no cache, and sklearn's ``Pipeline(memory=joblib.Memory(...))``, as the time spent
   inside the extractors over one cold pass of the features (target: at most 1.3) and items
   computed over unique items (target: 1.0).

    python benchmarks/bench_cache.py [--n 2000] [--grid-n 200] [--skip-nocache]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _timing import adding_seconds_to  # noqa: E402
from joblib import Memory  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402

from mmfeat.audio import MFCCStats  # noqa: E402
from mmfeat.base import Extractor  # noqa: E402
from mmfeat.cache import FeatureCache  # noqa: E402
from mmfeat.datasets import make_multimodal  # noqa: E402
from mmfeat.fusion import make_early_fusion  # noqa: E402
from mmfeat.image import CNNEmbedder  # noqa: E402
from mmfeat.text import SentenceEmbedder  # noqa: E402

# What the extractors do in this process (the grid search runs serially): items that reached
# feature code, and seconds spent inside extractors' fit and transform (lookups included).
COMPUTED = [0]
IN_EXTRACTORS = [0.0]
_compute, _fit, _transform = Extractor._compute, Extractor.fit, Extractor.transform


def _counting_compute(self, items, *args, **kwargs):
    COMPUTED[0] += len(items)
    return _compute(self, items, *args, **kwargs)


Extractor._compute = _counting_compute
Extractor.fit, Extractor.transform = map(adding_seconds_to(IN_EXTRACTORS), (_fit, _transform))


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def warm_vs_cold(data, workdir):
    rows = []
    for name, make, column in [("SentenceEmbedder", SentenceEmbedder, "text"),
                               ("CNNEmbedder", CNNEmbedder, "image"),
                               ("MFCCStats", MFCCStats, "audio")]:
        cache = FeatureCache(os.path.join(workdir, f"warm-{name}"))
        items = data[column]
        make(cache=False).fit(items[:8]).transform(items[:8])  # load the model, warm numba
        ext = make(cache=cache).fit(items)
        cold, _ = timed(lambda: ext.transform(items))
        warm, _ = timed(lambda: ext.transform(items))
        rows.append((name, len(items), cold, warm, cold / warm))
    print("| extractor | items | cold s | warm s | warm speed-up |")
    print("|---|---|---|---|---|")
    for name, n, cold, warm, ratio in rows:
        print(f"| {name} | {n} | {cold:.2f} | {warm:.3f} | {ratio:.0f}x |")


def fusion(cache):
    return make_early_fusion(
        image=("image", CNNEmbedder(cache=cache)),
        text=("text", SentenceEmbedder(cache=cache)),
        audio=("audio", MFCCStats(cache=cache)),
    )


def counted(fn):
    """Wall seconds, seconds inside extractors and items computed by ``fn()``."""
    COMPUTED[0], IN_EXTRACTORS[0] = 0, 0.0
    seconds, _ = timed(fn)
    return seconds, IN_EXTRACTORS[0], COMPUTED[0]


def grid(data, workdir, skip_nocache):
    X, y = data, data["label"]
    grid = {"model__C": [0.1, 1.0, 10.0], "features__text__weight": [1.0, 2.0]}
    # a cold pass without a cache still embeds each distinct text and path once
    cold_wall, cold, n_unique = counted(lambda: fusion(False).fit_transform(X))
    rows = [("one cold pass of the features (reference)", cold_wall, cold, n_unique)]

    store = FeatureCache(os.path.join(workdir, "grid"))
    pipe = Pipeline([("features", fusion(store)), ("model", LogisticRegression(max_iter=2000))])
    rows.append(("mmfeat cache (empty at start)",
                 *counted(lambda: GridSearchCV(pipe, grid, cv=5).fit(X, y))))

    memory = Memory(os.path.join(workdir, "joblib"), verbose=0)
    pipe = Pipeline([("features", fusion(False)), ("model", LogisticRegression(max_iter=2000))],
                    memory=memory)
    rows.append(("sklearn Pipeline(memory=joblib.Memory)",
                 *counted(lambda: GridSearchCV(pipe, grid, cv=5).fit(X, y))))

    if not skip_nocache:
        pipe = Pipeline([("features", fusion(False)), ("model", LogisticRegression(max_iter=2000))])
        rows.append(("no cache", *counted(lambda: GridSearchCV(pipe, grid, cv=5).fit(X, y))))

    print(f"\n5-fold GridSearchCV over 6 candidates, early fusion of CNN + sentence + MFCC, "
          f"{len(data)} rows ({n_unique} unique items). 'Feature time' is the time spent inside "
          "the extractors' fit and transform (cache lookups included); the rest of the wall "
          "time is the model fits and sklearn.\n")
    print("| run | wall s | feature s | feature time / one cold pass | items computed / unique |")
    print("|---|---|---|---|---|")
    for name, seconds, feature_s, computed in rows:
        print(f"| {name} | {seconds:.1f} | {feature_s:.1f} | {feature_s / cold:.2f} | "
              f"{computed / n_unique:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="items for warm vs cold")
    parser.add_argument("--grid-n", type=int, default=200, help="rows for the grid search")
    parser.add_argument("--skip-nocache", action="store_true", help="skip the slow no-cache run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        data = make_multimodal(n_samples=args.n, data_dir=os.path.join(workdir, "data"))
        warm_vs_cold(data, workdir)
        grid(data.iloc[: args.grid_n].reset_index(drop=True), workdir, args.skip_nocache)


if __name__ == "__main__":
    main()
