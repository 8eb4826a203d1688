"""The warm path: a grid search over features that are all in the cache already.

Prints one Markdown table of medians over ``--rounds`` rounds:

1. a 5-fold GridSearchCV over 6 candidates of an early-fusion pipeline (CNN + sentence +
   MFCC features, logistic regression) on a warm cache, serially: the seconds spent inside the
   extractors (all cache lookups: nothing is computed) over one cold pass of the same
   features without a cache (target: at most 0.4). Each round opens the store afresh, as a
   new process would, so it reads every row from SQLite once;
2. a 5-fold ``GridSearchCV(n_jobs=2)`` over 3 candidates of a cached ``SentenceEmbedder``
   pipeline against the same grid on the precomputed matrix (target: at most 1.3), rounds
   interleaved. "fresh workers' memory": each round uses a copy of the store, so that every
   worker reads its rows from SQLite once, as in a new grid search; "same store": the pool's
   workers keep the rows of the round before, as in repeated searches in one session; and
   "sklearn's floor": the same pipeline with a ``FunctionTransformer`` that takes the rows
   from the matrix in memory, which is what ``Pipeline`` and ``ColumnTransformer`` cost
   with no feature code at all.

    python benchmarks/bench_warm.py [--rounds 5] [--n 200] [--grid-n 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from _timing import adding_seconds_to, two_topic_notes  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402

from mmfeat.audio import MFCCStats  # noqa: E402
from mmfeat.base import Extractor  # noqa: E402
from mmfeat.cache import FeatureCache  # noqa: E402
from mmfeat.datasets import make_multimodal  # noqa: E402
from mmfeat.fusion import make_early_fusion  # noqa: E402
from mmfeat.image import CNNEmbedder  # noqa: E402
from mmfeat.text import SentenceEmbedder  # noqa: E402

IN_EXTRACTORS = [0.0]  # seconds inside extractors' fit and transform, in this process


Extractor.fit, Extractor.transform = map(adding_seconds_to(IN_EXTRACTORS),
                                               (Extractor.fit, Extractor.transform))


def in_extractors(fn) -> float:
    IN_EXTRACTORS[0] = 0.0
    fn()
    return IN_EXTRACTORS[0]


def fusion(cache):
    return make_early_fusion(image=("image", CNNEmbedder(cache=cache)),
                             text=("text", SentenceEmbedder(cache=cache)),
                             audio=("audio", MFCCStats(cache=cache)))


def lookup_share(data, workdir: Path, rounds: int) -> list:
    """Per round: (seconds inside extractors of a warm serial grid search, of one cold pass)."""
    X, y = data, data["label"]
    grid = {"model__C": [0.1, 1.0, 10.0], "features__text__weight": [1.0, 2.0]}

    def search(cache):
        pipe = Pipeline([("features", fusion(cache)), ("model", LogisticRegression(max_iter=2000))])
        return GridSearchCV(pipe, grid, cv=5).fit(X, y)

    search(FeatureCache(workdir / "fusion"))  # fills the store (and loads the models)
    out = []
    for _ in range(rounds):
        cold = in_extractors(lambda: fusion(False).fit_transform(X))
        warm = in_extractors(lambda: search(FeatureCache(workdir / "fusion")))
        out.append((warm, cold))
    return out


def parallel_grid(n: int, workdir: Path, rounds: int) -> dict:
    """Seconds per round of the warm n_jobs=2 grid search (two ways) and of the matrix's."""
    df = two_topic_notes(n)
    base = workdir / "text"

    def pipe(path):
        extractor = SentenceEmbedder(cache=FeatureCache(path))
        return Pipeline([("features", ColumnTransformer([("text", extractor, "text")])),
                         ("clf", LogisticRegression(max_iter=1000))])

    pipe(base).fit(df, df["label"])  # computes and stores every vector
    FeatureCache(base).close()
    matrix = SentenceEmbedder(cache=FeatureCache(base)).fit_transform(df["text"])
    grid = {"clf__C": [0.1, 1.0, 10.0]}
    Parallel(n_jobs=2)(delayed(abs)(i) for i in range(4))  # start the worker pool once

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    floor = Pipeline([("features", ColumnTransformer(
        [("text", FunctionTransformer(_rows_of, kw_args={"matrix": matrix}), "text")])),
        ("clf", LogisticRegression(max_iter=1000))])
    same = pipe(base)
    runs = {"fresh": None, "same": same, "floor": floor}
    times = {name: [] for name in [*runs, "matrix"]}
    for r in range(rounds):
        copy = workdir / f"text-copy-{r}"
        shutil.copytree(base, copy)
        runs["fresh"] = pipe(copy)
        names = list(times) if r % 2 == 0 else list(times)[::-1]  # neither side always first
        for name in names:
            if name == "matrix":
                search = GridSearchCV(LogisticRegression(max_iter=1000), {"C": grid["clf__C"]},
                                      cv=5, n_jobs=2)
                times[name].append(timed(lambda: search.fit(matrix, df["label"])))
            else:
                search = GridSearchCV(runs[name], grid, cv=5, n_jobs=2)
                times[name].append(timed(lambda: search.fit(df, df["label"])))
    return times


def _rows_of(column, matrix):
    return matrix[column.index.to_numpy()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--n", type=int, default=200, help="rows of the serial fusion grid")
    parser.add_argument("--grid-n", type=int, default=300, help="rows of the n_jobs=2 grid")
    parser.add_argument("--only", choices=["share", "parallel"], help="run one measurement")
    args = parser.parse_args(argv)
    med = statistics.median
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.only != "parallel":
            data = make_multimodal(n_samples=args.n, data_dir=str(workdir / "data"))
            shares = lookup_share(data, workdir, args.rounds)
        if args.only != "share":
            times = parallel_grid(args.grid_n, workdir, args.rounds)
    print(f"Medians of {args.rounds} rounds.\n")
    print("| measurement | s | reference s | ratio | target |")
    print("|---|---:|---:|---:|---:|")
    if args.only != "parallel":
        ratios = [w / c for w, c in shares]
        print(f"| warm serial GridSearchCV (5 folds x 6), seconds in the extractors / one cold "
              f"pass | {med(w for w, _ in shares):.3f} | {med(c for _, c in shares):.3f} | "
              f"{med(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f}) | <= 0.4 |")
    for name, key in [("fresh workers' memory", "fresh"), ("same store, workers keep rows", "same"),
                      ("sklearn's floor (rows from the matrix in memory)", "floor")]:
        if args.only == "share":
            break
        r = [a / b for a, b in zip(times[key], times["matrix"])]
        print(f"| warm GridSearchCV(n_jobs=2) (5 folds x 3), {name} / precomputed matrix | "
              f"{med(times[key]):.3f} | {med(times['matrix']):.3f} | {med(r):.2f} "
              f"(rounds {min(r):.2f}-{max(r):.2f}) | <= 1.3 |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
