"""Fitting every candidate on the same folds, and what each fold measured."""

from __future__ import annotations

import time
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    mean_absolute_error,
    r2_score,
)
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline

from ..cache import resolve_cache
from ..folds import make_folds
from ..fusion import ModalityBlock, is_late_fusion
from ..fusion.modality_fit import shared_modality_fits
from ..fusion.tuning import TunedLogisticRegression
from ..introspect import find_extractors
from ..validation import check_fold_count

METRICS = {
    "classification": {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score,
                       "macro_f1": lambda t, p: f1_score(t, p, average="macro")},
    "regression": {"r2": r2_score, "mae": mean_absolute_error},
}


def make_splits(X, y, groups, cv, task, random_state):
    """The outer folds, shared by every candidate: stratified for classification, by group
    when ``groups`` are given (no group in both a training and a test fold); an int ``cv``
    shuffles the rows with ``random_state``."""
    if isinstance(cv, Integral) and groups is None:
        check_fold_count(cv, y, task == "classification")
    return make_folds(cv, y, groups, classifier=task == "classification", shuffle=True,
                      random_state=random_state, X=X)


def fit(estimator, X, y, groups):
    """Fit a candidate; with groups, its inner validation is by group too, as the user would
    give them: ``groups=`` to a late fusion, ``model__groups=`` to early fusion's
    ``TunedLogisticRegression`` (what ``make_early_fusion(estimator="auto")`` documents), and
    group folds of the training rows as the ``cv`` of a regression's ``RidgeCV`` (which takes
    groups only under metadata routing)."""
    if is_late_fusion(estimator):
        return estimator.fit(X, y, groups=groups)
    if groups is None or not isinstance(estimator, Pipeline):
        return estimator.fit(X, y)
    model = estimator.steps[-1][1]
    if isinstance(model, TunedLogisticRegression):
        return estimator.fit(X, y, model__groups=groups)
    n = min(3, len(np.unique(groups)))
    estimator.set_params(model__cv=list(GroupKFold(n).split(X, y, groups)))
    return estimator.fit(X, y)


def with_outliers(candidate):
    """A clone of a fusion candidate with ``outliers="missing"`` (late fusion, or each early
    fusion block that handles missing items), or None for a model without the option. As the
    option acts at predict time only, the clone fits to the same model otherwise."""
    model = clone(candidate)
    if is_late_fusion(model):
        return model.set_params(outliers="missing") if model.handle_missing else None
    union = model.steps[0][1] if isinstance(model, Pipeline) else model
    blocks = [block for _, block, _ in getattr(union, "transformers", [])
              if isinstance(block, ModalityBlock) and block.handle_missing]
    for block in blocks:
        block.set_params(outliers="missing")
    return model if len(blocks) > 1 else None  # a single modality has nothing to fall back on


def _caches(modalities):
    """The distinct feature stores the modalities' extractors use (for hit counts)."""
    stores = {}
    for _, extractor in modalities.values():
        for found in find_extractors(extractor).values():
            store = resolve_cache(found.get_params().get("cache"))
            if store is not None:
                stores[id(store)] = store
    return list(stores.values())


def _hits(stores):
    return sum(s.session_hits for s in stores), sum(s.session_misses for s in stores)


def run_folds(candidates, modalities, X, y, groups, splits, task):
    """Fit and score every candidate on every fold.

    Returns the per-fold table, each candidate's out-of-fold predictions and, per candidate,
    the model fitted on the first fold with that fold's test rows (for robustness)."""
    stores = _caches(modalities)
    y = np.asarray(y)
    rows, predictions, first = [], {}, {}
    with shared_modality_fits():  # the late fusions share each fold's per-modality models
        for name, (kind, candidate) in candidates.items():
            predictions[name] = _candidate_folds(name, kind, candidate, stores, X, y, groups,
                                                 splits, task, rows, first)
    return pd.DataFrame(rows), predictions, first


def _candidate_folds(name, kind, candidate, stores, X, y, groups, splits, task, rows, first):
    """Fit and score one candidate on every fold; its out-of-fold predictions."""
    oof = np.empty(len(y), dtype=y.dtype if task == "classification" else np.float64)
    for fold, (train, test) in enumerate(splits):
        estimator = clone(candidate)
        hits, misses = _hits(stores)
        row = {"model": name, "kind": kind, "fold": fold, "status": "ok"}
        try:
            start = time.perf_counter()
            fit(estimator, X.iloc[train], y[train],
                None if groups is None else groups[train])
            row["fit_s"] = time.perf_counter() - start
            start = time.perf_counter()
            predicted = estimator.predict(X.iloc[test])
            row["predict_s"] = time.perf_counter() - start
        except Exception as exc:  # one failing candidate must not end the comparison
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            row["status"] = f"failed: {type(exc).__name__}: {first_line}"
            rows.append(row)
            continue
        oof[test] = predicted
        for metric, score in METRICS[task].items():
            row[metric] = float(score(y[test], predicted))
        after_hits, after_misses = _hits(stores)
        row["cache_hits"], row["cache_misses"] = after_hits - hits, after_misses - misses
        rows.append(row)
        if fold == 0:
            first[name] = (estimator, test)
    return oof


def summarise(folds, task, rank_by):
    """One row per candidate: each metric's mean and spread over folds, times, cache use."""
    metrics = list(METRICS[task])
    summary = []
    for name, group in folds.groupby("model", sort=False):
        ok = group[group["status"] == "ok"]
        row = {"model": name, "kind": group["kind"].iloc[0]}
        for metric in metrics:
            values = ok[metric] if metric in ok else pd.Series(dtype=float)
            row[metric] = values.mean() if len(ok) else np.nan
            row[f"{metric}_std"] = values.std(ddof=0) if len(ok) else np.nan
        for column in ("fit_s", "predict_s"):
            row[column] = ok[column].mean() if len(ok) else np.nan
        for column in ("cache_hits", "cache_misses"):
            row[column] = int(ok[column].sum()) if len(ok) else 0
        failed = group[group["status"] != "ok"]["status"]
        row["status"] = "ok" if failed.empty else failed.iloc[0]
        summary.append(row)
    table = pd.DataFrame(summary)
    # Best first; lower is better for an error (MAE), higher for a score.
    ascending = rank_by == "mae"
    return table.sort_values(rank_by, ascending=ascending, na_position="last",
                             kind="stable").reset_index(drop=True)
