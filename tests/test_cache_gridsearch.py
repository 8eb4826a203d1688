"""A grid search embeds each item once: the cache counted across folds, candidates and processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from counting import count_lines

pytestmark = pytest.mark.slow  # the whole module: it starts processes, clusters or whole models

N = 60

SEARCH = textwrap.dedent(
    """
    import sys
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    sys.path.insert(0, {tests!r})
    from counting import CountingText

    n, log, cache, n_jobs = {n}, {log!r}, {cache!r}, {n_jobs}
    X = pd.DataFrame({{"text": [("Sample " * (i % 5 + 1)) + str(i) for i in range(n)]}})
    y = [i % 5 for i in range(n)]
    features = ColumnTransformer([("text", CountingText(log_path=log, cache=cache), "text")])
    # scaled: unscaled counts (lengths, sums of code points) keep lbfgs at max_iter every fit
    pipe = Pipeline([("features", features), ("scale", StandardScaler()),
                     ("clf", LogisticRegression(max_iter=500))])
    search = GridSearchCV(pipe, {{"clf__C": [0.1, 1.0, 10.0]}}, cv=5, n_jobs=n_jobs).fit(X, y)
    print(search.best_score_)
    """
)


def run_search(tmp_path, n_jobs):
    code = SEARCH.format(tests=str(Path(__file__).parent), n=N, log=str(tmp_path / "log"),
                         cache=str(tmp_path / "cache"), n_jobs=n_jobs)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return count_lines(tmp_path / "log"), float(result.stdout.split()[-1])


def test_grid_search_embeds_each_item_once_then_never_again(tmp_path):
    computed, score = run_search(tmp_path, n_jobs=1)
    # 3 candidates x 5 folds x (fit + score) + refit would be 16 passes without the cache.
    assert computed == N
    again, score_again = run_search(tmp_path, n_jobs=1)  # a new process: the disk store answers
    assert again == N and score_again == score


@pytest.mark.parametrize("n_jobs", [2])
def test_parallel_grid_search_shares_the_store(tmp_path, n_jobs):
    computed, score = run_search(tmp_path, n_jobs=n_jobs)
    # Two workers start on overlapping folds at once: claims make each item computed once.
    assert computed == N
    again, score_again = run_search(tmp_path, n_jobs=n_jobs)
    assert again == N and score_again == score
