"""Grid search over an mmfeat pipeline on a Dask cluster (joblib's Dask backend).

    python pipelines/gridsearch_dask.py                       # a 2-worker LocalCluster
    python pipelines/gridsearch_dask.py --scheduler tcp://host:8786

Every candidate x fold fit runs as a task on the cluster. The feature cache (per item, keyed by
content) means each image is featurised once per extractor setting, whatever the fold or the
candidate: point ``MMFEAT_CACHE_DIR`` at a folder every worker can reach (the local default
works for a LocalCluster). With a remote cluster, the data files must be reachable by the
workers under the same paths, and mmfeat installed there.

Copy this script and change the pipeline and the grid: it is meant as a starting point.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def load_data(n_samples: int, data_dir: str | None, random_state: int):
    """A small tri-modal table (image paths, text, label): the demo dataset when mmfeat has it."""
    from mmfeat.datasets import make_multimodal

    data_dir = data_dir or tempfile.mkdtemp(prefix="mmfeat-gridsearch-")
    return make_multimodal(n_samples, data_dir=data_dir, random_state=random_state)


def build_pipeline():
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mmfeat.image import ColorHistogram

    features = ColumnTransformer([
        ("image", Pipeline([("hist", ColorHistogram(bins=(8, 4, 4), on_error="nan")),
                            ("scale", StandardScaler())]), "image"),
        ("text", TfidfVectorizer(min_df=2), "text"),
    ])
    return Pipeline([("features", features), ("clf", LogisticRegression(max_iter=2000))])


GRID = {
    "features__image__hist__bins": [(8, 4, 4), (12, 4, 4)],
    "features__text__ngram_range": [(1, 1), (1, 2)],
    "clf__C": [0.1, 1.0, 10.0],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="a Dask scheduler address; default: start a 2-worker LocalCluster")
    parser.add_argument("--n-samples", type=int, default=200,
                        help="samples in the demo data (default: %(default)s)")
    parser.add_argument("--data-dir", default=None,
                        help="where the demo data is written (default: a temp folder)")
    parser.add_argument("--cv", type=int, default=3,
                        help="cross-validation folds (default: %(default)s)")
    parser.add_argument("--random-state", type=int, default=0,
                        help="seed of the data (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 40 samples, 2 folds, 2 candidates (seconds)")
    args = parser.parse_args(argv)
    grid = GRID
    if args.quick:
        args.n_samples, args.cv = min(args.n_samples, 40), 2
        grid = {"clf__C": [0.1, 1.0]}

    import joblib
    import pandas as pd
    from distributed import Client, LocalCluster
    from sklearn.model_selection import GridSearchCV

    df = load_data(args.n_samples, args.data_dir, args.random_state)
    y = df["label"]
    search = GridSearchCV(build_pipeline(), grid, cv=args.cv, n_jobs=-1, error_score="raise")

    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        # no dashboard, and the scheduler's HTTP server on a free port (8787 may be taken)
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                               dashboard_address=None,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
    try:
        workers = client.scheduler_info()["workers"]
        print(f"dask: {client.scheduler.address}, {len(workers)} workers")
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            search.fit(df, y)
        seconds = time.perf_counter() - start
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    n_fits = len(search.cv_results_["params"]) * args.cv
    print(f"{n_fits} fits on {len(df)} rows in {seconds:.1f} s")
    print(f"best params: {search.best_params_}")
    print(f"best cv accuracy: {search.best_score_:.3f}")
    results = pd.DataFrame(search.cv_results_)[["params", "mean_test_score", "rank_test_score"]]
    print(results.sort_values("rank_test_score").head(5).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
