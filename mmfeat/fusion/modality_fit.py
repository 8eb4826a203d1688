"""How late fusion fits one modality: extract its features once, cross-validate its estimator
on them for out-of-fold predictions (the default estimators tuning themselves inside), fit it on
all rows; sharing such fits between fusions; and the input helpers the fusion shares with it."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from contextvars import ContextVar
from numbers import Integral

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import clone, is_classifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    check_cv,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils import _safe_indexing
from sklearn.utils.metadata_routing import _routing_enabled
from sklearn.utils.validation import has_fit_parameter
from threadpoolctl import threadpool_limits

from .blocks import as_feature_matrix, set_nan_on_error
from .specs import auto_classifier

# Blocks up to this many features (audio statistics, a few numeric columns) also try an RBF SVM,
# when they have at most SVM_MAX_ROWS rows.
NARROW_BLOCK = 100
SVM_MAX_ROWS = 5_000
# Feature matrices up to this many cells (e.g. 5,000 rows of 1,000 features) are modelled with
# one BLAS thread.
SMALL_MATRIX = 5_000_000


_SHARED_FITS = ContextVar("mmfeat_shared_modality_fits", default=None)


@contextmanager
def shared_modality_fits():
    """Inside this block, late fusions fitted on the same rows with the same modality specs
    share each modality's fit (its extraction, out-of-fold predictions and fitted estimator).

    Stacking, gated stacking and the mean and product rules differ only in how they combine
    the modalities' outputs; :func:`mmfeat.compare` fits them all in one such block, so each
    modality's models are cross-validated once per fold instead of once per candidate. A fit
    is reused only when everything it was given is equal (checked by ``joblib.hash``), and
    each reuse gets its own deep copy.
    """
    token = _SHARED_FITS.set({})
    try:
        yield
    finally:
        _SHARED_FITS.reset(token)


def _fit_modalities(jobs, n_jobs):
    """``_fit_modality(*job)`` for each job, in parallel, reusing shared fits when enabled."""
    memo = _SHARED_FITS.get()
    keys = [None if memo is None else joblib.hash(job) for job in jobs]
    todo = [i for i, key in enumerate(keys) if memo is None or key not in memo]
    fresh = dict(zip(todo, Parallel(n_jobs=n_jobs)(delayed(_fit_modality)(*jobs[i]) for i in todo)))
    if memo is not None:
        memo.update((keys[i], result) for i, result in fresh.items())
    return [fresh[i] if i in fresh else copy.deepcopy(memo[keys[i]]) for i in range(len(jobs))]


def _fit_modality(name, column, extractor, candidates, items, y, classes, cv, splits, groups,
                  method, handle_missing, sample_weight, routed):
    """Extract a modality's features once, then cross-validate and fit its estimator on them.

    ``candidates`` is ``[(label, estimator, inner_cv)]``: the user's estimator, or a function
    giving the default ones; of several, the one with the best out-of-fold log loss is kept
    (its out-of-fold predictions are those the fusion learns from). ``classes`` are the
    fusion's (None for regression): the out-of-fold output has a column per class.
    ``routed`` holds the fit parameters under metadata routing; else ``sample_weight`` goes to
    each estimator that accepts it.

    Returns the fitted extractor and estimator, the availability mask, the out-of-fold output
    on the available rows, the kept label and the splits over those rows.
    """
    if _is_passthrough(extractor):
        features = _extract(name, column, extractor, items)
    else:
        extractor = clone(extractor)
        if handle_missing:
            set_nan_on_error(extractor)
        features = as_feature_matrix(extractor.fit_transform(items, y), accept_sparse=True)
    available = _available(features, handle_missing)
    if not available.any():
        raise ValueError(f"Modality {name!r} has no usable row: all {len(available)} items are "
                         "missing or failed.")
    groups = None if groups is None else groups[available]
    if splits is not None:
        # Splits given as row indices: keep each split's available rows, renumbered.
        position = np.cumsum(available) - 1
        splits = [(position[train[available[train]]], position[test[available[test]]])
                  for train, test in splits]
    else:
        splits = cv(y[available], groups)
    features, y = features[available], y[available]
    if callable(candidates):
        candidates = candidates(features.shape[1], y)
        if method != "predict_proba":  # chosen by log loss: only with probabilities
            candidates = candidates[:1]
    # Cross-validating small models is hundreds of tiny BLAS calls: extra BLAS threads only
    # spin, and on a busy 2-core machine made a late-fusion fit 7 times slower (208 s against
    # 31 s for three modalities of 420 rows). Parallelism across modalities is n_jobs's job.
    threads = 1 if features.shape[0] * features.shape[1] <= SMALL_MATRIX else None
    with threadpool_limits(limits=threads, user_api="blas"):
        best = None
        for label, estimator, inner_cv in candidates:
            fit_params = routed if routed is not None else _weight_params(
                estimator, sample_weight, f"the estimator of modality {name!r}")
            fit_params = _index(fit_params, available, len(available))
            oof = _out_of_fold(name, estimator, features, y, classes, splits, method, fit_params,
                               groups, inner_cv)
            loss = 0.0
            if len(candidates) > 1:
                loss = _proba_loss(oof, y, classes,
                                   None if sample_weight is None else sample_weight[available])
            if best is None or loss < best[0]:
                best = (loss, label, estimator, inner_cv, fit_params, oof)
        _, label, estimator, inner_cv, fit_params, oof = best
        estimator = _fit_one(estimator, features, y, fit_params, groups, inner_cv)
    return extractor, estimator, available, oof, label, splits


def _tuned_logistic():
    """Standardisation and logistic regression choosing its penalty by inner log loss."""
    return make_pipeline(_weighted(StandardScaler(), False), auto_classifier("neg_log_loss"))


def _tuned_ridge():
    """Standardisation and ridge regression choosing its penalty among a wide range (for
    features with hundreds of dimensions)."""
    return make_pipeline(_weighted(StandardScaler(), False),
                         _weighted(RidgeCV(alphas=np.logspace(-2, 4, 13))))


def _default_classifiers(n_features, y):
    """Tuned logistic regression, and for a narrow block with enough rows per class, but not so
    many that a kernel SVM gets slow (its fit grows with the square of the rows), also an RBF
    SVM."""
    candidates = [("logistic", _tuned_logistic(), "logisticregressioncv__cv")]
    rarest = np.unique(y, return_counts=True)[1].min()
    if n_features <= NARROW_BLOCK and rarest >= 20 and len(y) <= SVM_MAX_ROWS:
        # Platt-scaled probabilities, as SVC(probability=True) gave before scikit-learn 1.9.
        svm = _weighted(CalibratedClassifierCV(_weighted(SVC()), cv=3, ensemble=False))
        candidates.append(("rbf_svm", make_pipeline(_weighted(StandardScaler(), False), svm),
                           None))
    return candidates


def _default_regressors(n_features, y):
    """RidgeCV tunes its penalty itself (by group k-fold when given groups)."""
    return [("ridge", _tuned_ridge(), "ridgecv__cv")]


def _out_of_fold(name, estimator, features, y, classes, splits, method, fit_params, groups,
                 inner_cv):
    """Out-of-fold output of ``method`` in the fusion's columns (:func:`_class_columns`), each
    row predicted by the model of the split that held it out (``cross_val_predict``, with fit
    parameters and groups indexed per split)."""
    n = features.shape[0]
    tested = np.zeros(n, dtype=int)
    for _, test in splits:
        tested[test] += 1
    if not (tested == 1).all():
        raise ValueError(f"Modality {name!r}: the cv splits must put every row in exactly one "
                         "test part (a partition), to predict each row out of fold once.")
    oof = None
    for train, test in splits:
        model = _fit_one(estimator, features[train], y[train], _index(fit_params, train, n),
                         None if groups is None else groups[train], inner_cv)
        out = _class_columns(name, getattr(model, method)(features[test]),
                             getattr(model, "classes_", None), classes, method)
        if oof is None:
            oof = np.empty((n, out.shape[1]))
        oof[test] = out
    return oof


def _class_columns(name, out, model_classes, classes, method):
    """A modality model's ``method`` output in the fusion's columns: one per class of
    ``classes`` for probabilities (0 for a class the model never saw) and for predicted labels
    (one-hot); a decision function's own (the model must have seen every class); one for a
    regressor (``classes`` None)."""
    if method == "predict_proba":
        full = np.zeros((len(out), len(classes)))
        full[:, np.searchsorted(classes, model_classes)] = out
        return full
    if method == "predict" and classes is not None:
        return (np.asarray(out)[:, None] == classes[None, :]).astype(np.float64)
    if method == "decision_function" and len(model_classes) != len(classes):
        raise ValueError(
            f"stack_method='decision_function' needs every class among the rows each model of "
            f"modality {name!r} is fitted on, but one saw {len(model_classes)} of {len(classes)} "
            "(a class missing from its rows or from a training split). Use "
            "stack_method='predict_proba' or fewer folds.")
    return np.asarray(out, dtype=np.float64).reshape(len(out), -1)


def _fit_one(estimator, features, y, fit_params, groups, inner_cv):
    """A clone of ``estimator`` fitted. ``inner_cv`` names the inner cross-validation parameter
    of a default estimator: for this fit only, it gets no more folds than the rarest class has
    rows, and with ``groups`` it splits by group too."""
    model = clone(estimator)
    if inner_cv is None:
        return model.fit(features, y, **fit_params)
    kept = model.get_params()[inner_cv]
    classifier = is_classifier(model)
    folds = kept if isinstance(kept, Integral) else 3
    if classifier:
        folds = max(2, min(folds, np.unique(y, return_counts=True)[1].min()))
    inner = folds if classifier else kept
    if groups is not None and len(np.unique(groups)) >= 2:
        inner = _splits(folds, classifier, None, y, groups)
    model.set_params(**{inner_cv: inner}).fit(features, y, **fit_params)
    return model.set_params(**{inner_cv: kept})  # the folds served this fit only


def _splits(cv, classifier, random_state, y, groups):
    """The ``(train, test)`` row indices of the out-of-fold predictions over ``y``'s rows.

    An int ``cv`` means (stratified) k-fold, or, when ``groups`` are given, (stratified) group
    k-fold with at most one fold per group, so that no group is in both parts of a split. A
    splitter gets the groups (splitters without groups ignore them).
    """
    placeholder = np.zeros((len(y), 1))
    if isinstance(cv, Integral):
        shuffle = {} if random_state is None else {"shuffle": True, "random_state": random_state}
        if groups is None:
            splitter = (StratifiedKFold if classifier else KFold)(cv, **shuffle)
        else:
            n_groups = len(np.unique(groups))
            if n_groups < 2:
                raise ValueError(f"Got groups with {n_groups} distinct value; out-of-fold "
                                 "predictions by group need at least 2 groups.")
            kind = StratifiedGroupKFold if classifier else GroupKFold
            splitter = kind(min(cv, n_groups), **shuffle)
    else:
        splitter = check_cv(cv, y, classifier=classifier)
    return [(np.asarray(train), np.asarray(test))
            for train, test in splitter.split(placeholder, y, groups)]


def _proba_loss(oof, y, classes, sample_weight=None):
    """Log loss of out-of-fold probabilities (columns: ``classes``), rows weighted."""
    codes = np.searchsorted(classes, y)
    return -np.average(np.log(np.clip(oof[np.arange(len(y)), codes], 1e-12, 1.0)),
                       weights=sample_weight)


def _describe(label, estimator):
    """What a modality's fitted estimator is, in a few words, for ``modality_report_``."""
    last = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if label is None:
        return type(last).__name__
    if hasattr(last, "C_"):
        return f"{label} (C={float(np.ravel(last.C_)[0]):.3g})"
    if hasattr(last, "alpha_"):
        return f"{label} (alpha={float(last.alpha_):.3g})"
    return label


def _index(params, rows, n_samples):
    """Fit parameters for a subset of rows: sample-aligned arrays are indexed, others kept."""
    return {key: _safe_indexing(value, rows)
            if hasattr(value, "__len__") and not isinstance(value, str) and len(value) == n_samples
            else value for key, value in params.items()}


def _weight_params(estimator, sample_weight, what):
    """``sample_weight`` as a fit parameter ``estimator`` accepts when metadata routing is off:
    a ``Pipeline`` gets it for its last step (``{step}__sample_weight``)."""
    if sample_weight is None:
        return {}
    if isinstance(estimator, Pipeline):
        step, last = estimator.steps[-1]
        if last not in (None, "passthrough") and has_fit_parameter(last, "sample_weight"):
            return {f"{step}__sample_weight": sample_weight}
    elif has_fit_parameter(estimator, "sample_weight"):
        return {"sample_weight": sample_weight}
    raise TypeError(f"Got sample_weight, but {what} ({type(estimator).__name__}) does not accept "
                    "it in fit.")


def _weighted(estimator, request=True):
    """A default estimator requests ``sample_weight`` under metadata routing (the user cannot
    reach it to ask, and weights given to the fusion are meant for it); its scaler does not,
    as without routing."""
    if _routing_enabled():
        estimator.set_fit_request(sample_weight=request)
    return estimator


def _confidence(proba, measure):
    """How sure each row's probabilities are, from 0 (every class equally likely) to 1 (one
    class certain): the gap between the two highest, the highest rescaled, or one minus the
    entropy over its maximum."""
    n_classes = proba.shape[1]
    if measure == "margin":
        top = np.sort(proba, axis=1)
        return top[:, -1] - top[:, -2]
    if measure == "max":
        return (proba.max(axis=1) - 1 / n_classes) / (1 - 1 / n_classes)
    proba = np.clip(proba, 1e-12, 1.0)
    return 1 + (proba * np.log(proba)).sum(axis=1) / np.log(n_classes)


def _log_odds(proba):
    """Each class's log-probability minus the row's mean log-probability (with two classes,
    half the log-odds), probabilities clipped to [1e-4, 1]."""
    logs = np.log(np.clip(proba, 1e-4, 1.0))
    return logs - logs.mean(axis=1, keepdims=True)


# ---------------------------------------------------------------------- reading the input

def _as_table(X):
    """A DataFrame as it is; anything else as a 2-D ndarray."""
    if hasattr(X, "columns"):
        return X
    if sp.issparse(X):
        raise TypeError("Sparse input is not supported: pass a DataFrame (or a dense 2-D array) "
                        "with one column per modality.")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D input (a DataFrame with one column per modality), got an array of "
            f"shape {X.shape}. Reshape your data with X.reshape(-1, 1) if it is one column."
        )
    return X


def _select(X, column):
    """A modality's column(s) of ``X``, with ``ColumnTransformer`` semantics (a name gives a Series)."""
    if callable(column):
        column = column(X)
    return _safe_indexing(X, column, axis=1)


def _names(column):
    """The column names a selection reads, or None when it selects by position, mask or callable."""
    if isinstance(column, str):
        return [column]
    if isinstance(column, (list, tuple, np.ndarray, pd.Index)) and len(column) \
            and all(isinstance(c, str) for c in column):
        return list(column)
    return None


def _show_columns(columns, limit=20):
    columns = [str(c) for c in columns]
    more = f" ... ({len(columns) - limit} more)" if len(columns) > limit else ""
    return f"{columns[:limit]}{more}"


def _as_numbers(values, what):
    """``values`` (a column or table the user says is numeric) as a float matrix; the error names
    the first column that is not numeric."""
    try:
        return as_feature_matrix(values, accept_sparse=True)
    except ValueError as exc:
        if hasattr(values, "columns"):
            for name in values.columns:
                try:
                    as_feature_matrix(values[[name]])
                except ValueError as column_exc:
                    raise ValueError(f"{what}: column {name!r} is not numeric ({column_exc})") from None
        elif hasattr(values, "name"):
            raise ValueError(f"{what}: column {values.name!r} is not numeric ({exc})") from None
        raise ValueError(f"{what}: {exc}") from None


def _is_passthrough(extractor):
    return isinstance(extractor, str) and extractor == "passthrough"


def _extract(name, column, extractor, items):
    if _is_passthrough(extractor):
        return _as_numbers(items, f"Modality {name!r} passes {column!r} through as numbers")
    return as_feature_matrix(extractor.transform(items), accept_sparse=True)


def _available(features, handle_missing):
    """Rows whose features are not all NaN (every row when missing values are not handled)."""
    if not handle_missing or sp.issparse(features):
        return np.ones(features.shape[0], dtype=bool)
    return ~np.isnan(features).all(axis=1)
