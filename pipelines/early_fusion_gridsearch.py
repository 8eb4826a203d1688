"""Early fusion tuned by grid search: block weights, PCA and the classifier together.

    python pipelines/early_fusion_gridsearch.py [--manifest data.csv] [--model-out model.joblib]

Each modality is a block (extractor -> scaling -> optional PCA -> weight); GridSearchCV tunes
``features__<modality>__weight``, ``features__text__pca`` and ``model__C``. The feature cache
makes every candidate and fold after the first reuse the same embeddings.
"""

from __future__ import annotations

import argparse
import time

from _common import add_data_arguments, extractors, load_manifest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split

from mmfeat import save_model
from mmfeat.fusion import make_early_fusion

GRID = {
    "features__image__weight": [0.5, 1.0],
    "features__text__pca": [None, 16],
    "model__C": [0.1, 1.0],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser)
    parser.add_argument("--cv", type=int, default=5,
                        help="cross-validation folds of the grid search (default: %(default)s)")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="candidates fitted in parallel (default: %(default)s)")
    parser.add_argument("--model-out", help="save the best model here (mmfeat.save_model)")
    args = parser.parse_args(argv)

    data = load_manifest(args.manifest, args.data_dir, args.n_samples)
    train, test = train_test_split(data, test_size=0.3, stratify=data["label"], random_state=0)
    model = make_early_fusion(**extractors(args.quick), handle_missing=True,
                              estimator=LogisticRegression(max_iter=2000))
    search = GridSearchCV(model, GRID, cv=args.cv, n_jobs=args.n_jobs)
    start = time.perf_counter()
    search.fit(train, train["label"])
    print(f"grid search: {len(search.cv_results_['params'])} candidates x {args.cv} folds "
          f"in {time.perf_counter() - start:.1f} s")
    print(f"best parameters: {search.best_params_}")
    print(f"cross-validated accuracy {search.best_score_:.3f}, held-out accuracy "
          f"{search.score(test, test['label']):.3f}")
    if args.model_out:
        save_model(search.best_estimator_, args.model_out)
        print(f"saved {args.model_out}")
    return search


if __name__ == "__main__":
    main()
