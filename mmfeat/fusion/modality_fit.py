"""Fitting and predicting one late-fusion modality: extract its features once, cross-validate
its estimator on them for out-of-fold predictions (a default estimator tuning itself inside),
fit it on all rows; its output on new rows; and sharing such fits between fusions."""

from __future__ import annotations

import copy
from contextlib import contextmanager
from contextvars import ContextVar
from numbers import Integral

import joblib
import numpy as np
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import clone, is_classifier
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter
from threadpoolctl import threadpool_limits

from .._sklearn_compat import _safe_indexing
from ..folds import make_folds
from .blocks import as_feature_matrix, available_rows, set_nan_on_error
from .calibration import apply_calibration
from .columns import as_numbers
from .meta import confidence as _confidence  # noqa: F401  (its home before meta.py)
from .novelty import fit_novelty, kept_share, novelty, report_strange
from .platt import PlattScaled, cross_fitted_sigmoids, decision_columns, fit_sigmoids
from .task import class_columns

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


def fit_modalities(jobs, n_jobs):
    """``fit_modality(*job)`` for each job, in parallel, reusing shared fits when enabled."""
    memo = _SHARED_FITS.get()
    keys = [None if memo is None else joblib.hash(job) for job in jobs]
    todo = [i for i, key in enumerate(keys) if memo is None or key not in memo]
    fresh = dict(zip(todo, Parallel(n_jobs=n_jobs)(delayed(fit_modality)(*jobs[i]) for i in todo)))
    if memo is not None:
        memo.update((keys[i], result) for i, result in fresh.items())
    return [fresh[i] if i in fresh else copy.deepcopy(memo[keys[i]]) for i in range(len(jobs))]


def fit_modality(name, column, extractor, candidates, items, y, classes, cv, splits, groups,
                  method, handle_missing, sample_weight, routed, learn_novelty=False):
    """Extract a modality's features once, then cross-validate and fit its estimator on them.

    ``candidates`` is ``[(label, estimator, inner_cv)]``: the user's estimator, or a function
    giving the default ones; of several, the one with the best out-of-fold log loss is kept
    (its out-of-fold predictions are those the fusion learns from). ``classes`` are the
    fusion's (None for regression): the out-of-fold output has a column per class.
    ``routed`` holds the fit parameters under metadata routing; else ``sample_weight`` goes to
    each estimator that accepts it. ``learn_novelty``: also learn what the modality's features
    look like (:func:`~mmfeat.fusion.novelty.fit_novelty`, on the same splits).

    Returns the fitted extractor and estimator, the availability mask, the out-of-fold output
    on the available rows, the kept label, the splits over those rows, and the novelty model
    and out-of-fold novelty of those rows (None, None without ``learn_novelty``).
    """
    if _is_passthrough(extractor):
        features = extract(name, column, extractor, items)
    else:
        extractor = clone(extractor)
        if handle_missing:
            set_nan_on_error(extractor)
        features = as_feature_matrix(extractor.fit_transform(items, y), accept_sparse=True)
    available = available_features(features, handle_missing)
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
        weights = None if sample_weight is None else sample_weight[available]
        best = None
        for label, estimator, inner_cv in candidates:
            # A Platt-scaled model: its own model cross-validated for decision values, and
            # the sigmoids fitted on those (held out already: no inner folds needed).
            platt = estimator if isinstance(estimator, PlattScaled) else None
            model = estimator if platt is None else platt.estimator
            fit_params = routed if routed is not None else weight_params(
                model, sample_weight, f"the estimator of modality {name!r}")
            fit_params = _index(fit_params, available, len(available))
            oof = _out_of_fold(name, model, features, y, classes, splits,
                               method if platt is None else "platt", fit_params, groups,
                               inner_cv)
            sigmoids = None
            if platt is not None:
                codes = np.searchsorted(classes, y)
                sigmoids = fit_sigmoids(oof, codes, weights)  # for the model on all rows
                oof = cross_fitted_sigmoids(oof, codes, splits, weights)
            loss = 0.0
            if len(candidates) > 1:
                loss = _proba_loss(oof, y, classes, weights)
            if best is None or loss < best[0]:
                best = (loss, label, estimator, inner_cv, fit_params, oof, sigmoids)
        _, label, estimator, inner_cv, fit_params, oof, sigmoids = best
        if sigmoids is None:
            estimator = _fit_one(estimator, features, y, fit_params, groups, inner_cv)
        else:
            estimator = clone(estimator).set_fitted(
                _fit_one(estimator.estimator, features, y, fit_params, groups, inner_cv),
                classes, sigmoids)
        novelty_model, novelty_oof = fit_novelty(features, splits) if learn_novelty else (None,
                                                                                        None)
    return extractor, estimator, available, oof, label, splits, novelty_model, novelty_oof


def _out_of_fold(name, estimator, features, y, classes, splits, method, fit_params, groups,
                 inner_cv):
    """Out-of-fold output of ``method`` in the fusion's columns
    (:func:`~mmfeat.fusion.task.class_columns`; for ``"platt"``, decision values in
    :func:`~mmfeat.fusion.platt.decision_columns`), each
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
        if method == "platt":  # decision values, for sigmoids fitted on all of them
            out = decision_columns(model.decision_function(features[test]), model.classes_,
                                   classes)
        else:
            out = class_columns(name, getattr(model, method)(features[test]),
                                getattr(model, "classes_", None), classes, method)
        if oof is None:
            oof = np.empty((n, out.shape[1]))
        oof[test] = out
    return oof


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
        inner = make_folds(folds, y, groups, classifier=classifier)
    model.set_params(**{inner_cv: inner}).fit(features, y, **fit_params)
    return model.set_params(**{inner_cv: kept})  # the folds served this fit only


def _proba_loss(oof, y, classes, sample_weight=None):
    """Log loss of out-of-fold probabilities (columns: ``classes``), rows weighted."""
    codes = np.searchsorted(classes, y)
    return -np.average(np.log(np.clip(oof[np.arange(len(y)), codes], 1e-12, 1.0)),
                       weights=sample_weight)


def describe(label, estimator):
    """What a modality's fitted estimator is, in a few words, for ``modality_report_``."""
    last = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if label is None:
        return type(last).__name__
    C = getattr(last, "C_", getattr(last, "C", None))  # tuned, or fixed
    if C is not None:
        return f"{label} (C={float(np.ravel(C)[0]):.3g})"
    if hasattr(last, "alpha_"):
        return f"{label} (alpha={float(last.alpha_):.3g})"
    return label


def _index(params, rows, n_samples):
    """Fit parameters for a subset of rows: sample-aligned arrays are indexed, others kept."""
    return {key: _safe_indexing(value, rows)
            if hasattr(value, "__len__") and not isinstance(value, str) and len(value) == n_samples
            else value for key, value in params.items()}


def weight_params(estimator, sample_weight, what):
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


def _is_passthrough(extractor):
    return isinstance(extractor, str) and extractor == "passthrough"


def extract(name, column, extractor, items):
    """A modality's features of ``items``: its fitted extractor's output, or the numbers."""
    if _is_passthrough(extractor):
        return as_numbers(items, f"Modality {name!r} passes {column!r} through as numbers")
    return as_feature_matrix(extractor.transform(items), accept_sparse=True)


def available_features(features, handle_missing):
    """Rows whose features are not all NaN (every row when missing values are not handled)."""
    if not handle_missing or sp.issparse(features):
        return np.ones(features.shape[0], dtype=bool)
    return available_rows(features)


def predict_modality(modality, items, method, classes, calibration, handle_missing, width,
                     novelty_model=None, drop_strange=False, fill=None):
    """A fitted modality's (a :class:`~mmfeat.fusion.late.Modality`) output on new rows, in the
    columns of its out-of-fold output (and calibrated as it was): ``(n, width)``, all-NaN rows
    where the modality is missing; and, with ``novelty_model``, each row's novelty (NaN where
    missing; else None). ``drop_strange``: each row's output is drawn towards ``fill`` (what a
    missing modality gets) by its novelty (:func:`~mmfeat.fusion.novelty.kept_share`), missing
    where nothing is kept; rows past the threshold are reported to
    :func:`mmfeat.errors.collect_errors` with the cause."""
    name, estimator = modality.name, modality.estimator
    features = extract(name, modality.column, modality.extractor, items)
    available = available_features(features, handle_missing)
    scores, kept = None, None
    if novelty_model is not None:
        scores = np.full(available.shape[0], np.nan)
        if available.any():
            scores[available] = novelty(novelty_model, features[available])
        if drop_strange:
            kept = np.ones(available.shape[0])
            kept[available] = kept_share(scores[available], novelty_model["threshold"])
            strange = available & (scores > novelty_model["threshold"])
            report_strange(name, modality.extractor, items, strange, scores, novelty_model, kept)
            available = available & (kept > 0)
    out = np.full((available.shape[0], width), np.nan)
    if available.any():
        found = class_columns(name, getattr(estimator, method)(features[available]),
                              getattr(estimator, "classes_", None), classes, method)
        out[available] = apply_calibration(calibration, found)
        if kept is not None:  # a strange row's output drawn towards the missing fill
            share, own = kept[available, None], out[available]
            out[available] = np.where(share < 1, fill + share * (own - fill), own)
    return out, scores
