"""Which fusion on my data? Every single modality, early and late fusion, fitted under the same
cross-validation folds, with features extracted once for the whole comparison (the cache)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.utils.multiclass import type_of_target

from .._sklearn_compat import HasMethods, StrOptions, validate_params
from ..validation import check_target
from .candidates import build_candidates
from .report import chance_levels, markdown_table, write_report
from .run import METRICS, fit, make_splits, run_folds, summarise, with_outliers

__all__ = ["ComparisonResult", "compare", "markdown_table"]


@dataclass
class ComparisonResult:
    """What :func:`compare` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per model, best first: ``model``, ``kind`` ("single", "early", "late"), per
        metric its mean over folds and ``{metric}_std`` (classification: ``accuracy``,
        ``balanced_accuracy``, ``macro_f1``; regression: ``r2``, ``mae``), ``fit_s`` and
        ``predict_s`` (mean seconds per fold), ``cache_hits`` and ``cache_misses`` (features
        served by, and computed into, the feature cache) and ``status`` ("ok", or the first
        failure). The late fusions after the first reuse its per-modality models of each fold
        (they differ only in how they combine them), so their ``fit_s`` is that of their
        combination alone and they look up no features.
    folds : pandas.DataFrame
        The same per fold.
    best : str or None
        The best model's name (the first row that did not fail).
    best_estimator : estimator or None
        The best model refitted on all rows (``refit=True``), else None.
    predictions : dict of str -> ndarray
        Each model's out-of-fold predictions, in the rows' order.
    chance : dict
        What ignoring the features scores, per metric (drawn as the chance lines).
    stacking_report : pandas.DataFrame or None
        ``modality_report_`` of the stacking model fitted on the first fold.
    robustness : pandas.DataFrame or None
        :func:`mmfeat.robustness.robustness_report` of the best model, fitted on the first
        fold's training rows and scored on its test rows (``robustness=True``). A fusion
        winner is fitted again with ``outliers="missing"`` (a strange modality treated as
        missing), and the report has its rows with the option off (the winner as compared)
        beside on.
    files : list of Path
        The report's files (``report_dir``).
    """

    table: pd.DataFrame
    folds: pd.DataFrame
    best: str | None
    predictions: dict
    chance: dict
    task: str
    rank_by: str
    splits: list
    n_rows: int
    grouped: bool
    best_estimator: object = None
    stacking_report: pd.DataFrame | None = None
    robustness: pd.DataFrame | None = None
    files: list = field(default_factory=list)

    def __repr__(self):
        columns = ["model", *METRICS[self.task], "fit_s", "cache_hits", "status"]
        return f"ComparisonResult(best={self.best!r})\n{self.table[columns].to_string(index=False)}"


def _values(X, value, what):
    """``value`` as an array of one entry per row, read from the column it names if a str."""
    if isinstance(value, str):
        if value not in X.columns:
            raise ValueError(f"{what.capitalize()} column {value!r} is not among the columns "
                             f"{list(X.columns)}.")
        value = X[value]
    value = np.asarray(value)
    if len(value) != len(X):
        raise ValueError(f"Got {len(value)} {what} values for {len(X)} rows.")
    return value


def _target(X, y, target):
    if (y is None) == (target is None):
        raise ValueError("Give the target as y (an array) or as target= (a column of X), not "
                         "both and not neither.")
    name = target if target is not None else getattr(y, "name", None)
    y = _values(X, y if target is None else target, "target")
    check_target(y, name=name)
    return y


@validate_params(
    {
        "X": [pd.DataFrame, HasMethods(["to_pandas"])],
        "y": ["array-like", None],
        "modalities": [dict],
        "target": [str, None],
        "groups": ["array-like", str, None],
        "cv": ["cv_object"],
        "task": [StrOptions({"auto", "classification", "regression"})],
        "rank_by": [StrOptions({"accuracy", "balanced_accuracy", "macro_f1", "r2", "mae"}), None],
        "interactions": ["boolean"],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "refit": ["boolean"],
        "robustness": ["boolean"],
        "report_dir": [str, os.PathLike, None],
        "random_state": [Integral, None],
    },
    prefer_skip_nested_validation=True,
)
def compare(X, y=None, *, modalities, target=None, groups=None, cv=5, task="auto", rank_by=None,
            interactions=True, class_weight=None, refit=False, robustness=False, report_dir=None,
            random_state=0) -> ComparisonResult:
    """Fit every single modality and every fusion under the same folds; report which wins.

    The candidates are: each modality alone; early fusion (concatenated blocks), with and
    without cross-modal ``interactions``; and late fusion by stacking, gated stacking
    (per-row trust), mean and product rule (regression: stacking and mean). All use mmfeat's
    self-tuning defaults, whose penalties are chosen by inner cross-validation on each fold's
    training rows (by group, with ``groups``), so no score here is tuned on the rows it is
    measured on. Every candidate clones the same extractors, so with the feature cache on
    (the default) each item's features are computed once for the whole comparison; the
    ``cache_hits`` column shows it. The late fusions share each fold's per-modality models
    (:func:`mmfeat.fusion.modality_fit.shared_modality_fits`): what differs between them is only how
    the modalities' outputs are combined.

    Parameters
    ----------
    X : pandas.DataFrame (or a polars DataFrame, converted with its ``to_pandas``)
        One row per sample, with the modalities' columns.
    y : array-like or None, default=None
        The target, or None with ``target=``.
    modalities : dict
        ``{name: (column, extractor)}``, as late fusion takes them, e.g.
        ``{"image": ("image", CNNEmbedder()), "text": ("text", SentenceEmbedder())}``.
    target : str or None, default=None
        The column of ``X`` holding the target (instead of ``y``).
    groups : array-like, str or None, default=None
        Group of each row, or the column holding it (speakers, sessions): the folds then keep
        each group on one side, and the models' inner validation does too.
    cv : int or cross-validation splitter, default=5
        The outer folds: stratified (classification) k-fold, shuffled with ``random_state``,
        or stratified group k-fold with ``groups``.
    task : {"auto", "classification", "regression"}, default="auto"
        "auto": regression for a continuous target, else classification.
    rank_by : str or None, default=None
        The metric the table is sorted by and the best model chosen by; None is
        ``balanced_accuracy`` for classification (equal to accuracy on balanced classes, and
        not fooled by a majority class) and ``r2`` for regression.
    interactions : bool, default=True
        Include early fusion with interactions (see ``make_early_fusion(interactions=...)``).
    class_weight : "balanced", dict or None, default=None
        Class weights for the default estimators (classification), for imbalanced classes.
    refit : bool, default=False
        Refit the best model on all rows (``best_estimator``).
    robustness : bool, default=False
        Measure the best model with each modality removed or corrupted (``robustness``).
    report_dir : str, path-like or None, default=None
        Write ``results.csv``, ``folds.csv``, ``results.md`` and PNG plots (scores with error
        bars and chance lines, each modality's contribution, confusion matrices of the best
        model and the best single modality, robustness) there. Needs matplotlib
        (``mmfeat[report]``).
    random_state : int or None, default=0
        Seed of the folds and of the late fusions' inner folds.

    Returns
    -------
    ComparisonResult
        ``.table`` is the results DataFrame; see :class:`ComparisonResult`.

    Examples
    --------
    >>> from mmfeat import compare
    >>> from mmfeat.datasets import demo_extractors, make_multimodal
    >>> df = make_multimodal(200)  # doctest: +SKIP
    >>> result = compare(df, target="label", modalities=demo_extractors(quick=True),
    ...                  report_dir="reports/compare")  # doctest: +SKIP
    >>> result.table[["model", "accuracy", "accuracy_std"]]  # doctest: +SKIP
    """
    from threadpoolctl import threadpool_limits

    if not isinstance(X, pd.DataFrame):  # polars (or another frame that converts)
        X = X.to_pandas()
    y = _target(X, y, target)
    groups = None if groups is None else _values(X, groups, "groups")
    if task == "auto":
        task = "regression" if type_of_target(y) == "continuous" else "classification"
    rank_by = rank_by or ("balanced_accuracy" if task == "classification" else "r2")
    if rank_by not in METRICS[task]:
        raise ValueError(f"rank_by={rank_by!r} is not a {task} metric; "
                         f"use one of {list(METRICS[task])}.")
    if not modalities:
        raise ValueError("No modality given: modalities={name: (column, extractor)}.")
    for name, spec in modalities.items():
        if not (isinstance(spec, (tuple, list)) and len(spec) == 2):
            raise ValueError(f"Modality {name!r} must be (column, extractor), got {spec!r}.")
    candidates = build_candidates(modalities, task=task, interactions=interactions,
                                  class_weight=class_weight, random_state=random_state)
    splits = make_splits(X, y, groups, cv, task, random_state)
    # The models are small: numpy's BLAS threads would only spin. Feature models (CNN, sentence
    # encoder) run on their own threads, which this leaves alone.
    with threadpool_limits(limits=1, user_api="blas"):
        folds, predictions, first = run_folds(candidates, modalities, X, y, groups, splits, task)
    table = summarise(folds, task, rank_by)
    ok = table[table["status"] == "ok"]
    best = ok["model"].iloc[0] if len(ok) else None
    stacking = first.get("late fusion (stacking)")
    result = ComparisonResult(
        table=table, folds=folds, best=best, predictions=predictions,
        chance=chance_levels(y, task), task=task, rank_by=rank_by, splits=splits,
        n_rows=len(X), grouped=groups is not None,
        stacking_report=None if stacking is None else stacking[0].modality_report_)
    if robustness and best is not None:
        from ..robustness import corruption_kind, robustness_report

        model, test = first[best]
        guarded = with_outliers(candidates[best][1])
        if guarded is not None:  # the same model, which also sets strange modalities aside
            train = splits[0][0]
            with threadpool_limits(limits=1, user_api="blas"):  # as the winner was fitted
                model = fit(guarded, X.iloc[train], y[train],
                            None if groups is None else groups[train])
        # The ranking metric, by scikit-learn's scorer name.
        scoring = {"macro_f1": "f1_macro", "mae": "neg_mean_absolute_error"}.get(rank_by, rank_by)
        # Every modality of the comparison, not only those the winner reads: a winner that
        # ignores one is seen to be unmoved by it.
        result.robustness = robustness_report(
            model, X.iloc[test], y[test], scoring=scoring, random_state=random_state,
            modalities={name: (column, corruption_kind(extractor))
                        for name, (column, extractor) in modalities.items()})
    if refit and best is not None:
        result.best_estimator = fit(clone(candidates[best][1]), X, y, groups)
    if report_dir is not None:
        result.files = write_report(result, y, report_dir)
    return result
