"""Platt probabilities of a classifier's decision values, the sigmoids fitted on out-of-fold
decisions that late fusion computes anyway.

``CalibratedClassifierCV(SVC(), cv=3)`` fits three more SVMs inside every fit to get held-out
decision values for its sigmoids. Inside late fusion the modality's out-of-fold decisions are
held out already: the sigmoids fitted on them need no inner folds, and each SVM is fitted once
per split (6 fits of a kernel SVM per modality instead of 24; on the real-data benchmark the
SVM candidate of the narrow audio block was about two thirds of the whole fusion's fit).
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from .._sklearn_compat import HasMethods, Interval, _fit_context, _safe_indexing

# A class the model of a split never saw gets this decision value (or one under the row's
# lowest), under any one-vs-rest value of an SVM (votes at least 0, confidences within
# -1/3 .. 1/3).
_UNSEEN = -1.0


def decision_columns(out, model_classes, classes):
    """A model's decision values in ``classes``'s columns (one for two classes): a class the
    model never saw gets a value under the row's others (``_UNSEEN`` at most)."""
    out = np.asarray(out, dtype=np.float64)
    if len(classes) == 2:
        if len(model_classes) != 2:
            raise ValueError("A split's training rows hold a single class.")
        return out.reshape(-1, 1)
    if len(model_classes) == 2:  # a split with two of the classes: one value, for the second
        out = np.column_stack([-out.ravel(), out.ravel()])
    # per row, so that a row's probabilities never depend on the others predicted with it
    unseen = np.minimum(_UNSEEN, out.min(axis=1, initial=0.0) - 1.0)
    full = np.repeat(unseen[:, None], len(classes), axis=1)
    full[:, np.searchsorted(classes, model_classes)] = out.reshape(len(out), -1)
    return full


def fit_sigmoids(decisions, codes, sample_weight=None):
    """One-vs-rest Platt sigmoids ``[(a, b)]``, ``p = 1 / (1 + exp(-(a * d + b)))``, one per
    column of ``decisions``: the column's class (``codes``, the column of each row's class;
    with one column, class 1) against the rest.

    Platt's smoothed targets (``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, as
    scikit-learn's sigmoid calibration) keep a separable class finite; Newton's method runs
    on every column at once (two parameters each), halving a column's step while its loss
    grows.
    """
    n, k = decisions.shape
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    hits = codes[:, None] == (np.array([1]) if k == 1 else np.arange(k))[None, :]
    positives = (w[:, None] * hits).sum(axis=0)
    negatives = w.sum() - positives
    target = np.where(hits, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    w = w[:, None]

    def loss(a, b):
        z = decisions * a + b
        return (w * (np.logaddexp(0, z) - target * z)).sum(axis=0)

    a, b = np.zeros(k), np.log((positives + 1) / (negatives + 1))
    current = loss(a, b)
    for _ in range(100):
        p = expit(decisions * a + b)
        r, h = w * (p - target), w * p * (1 - p) + 1e-12
        ga, gb = (r * decisions).sum(axis=0), r.sum(axis=0)
        haa, hab, hbb = (h * decisions ** 2).sum(axis=0), (h * decisions).sum(axis=0), h.sum(
            axis=0)
        det = np.maximum(haa * hbb - hab ** 2, 1e-12)
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        step = np.ones(k)
        for _ in range(30):  # halve the steps of the columns whose loss grew
            trial = loss(a - step * da, b - step * db)
            worse = trial > current + 1e-12
            if not worse.any():
                break
            step = np.where(worse, step / 2, step)
        a, b, current = a - step * da, b - step * db, trial
        if np.abs(step * da).max() < 1e-8 and np.abs(step * db).max() < 1e-8:
            break
    return [(float(x), float(y)) for x, y in zip(a, b)]


def cross_fitted_sigmoids(decisions, codes, splits, sample_weight=None):
    """Probabilities of held-out ``decisions`` whose sigmoids are held out too: each split's
    test rows mapped by sigmoids fitted on its training rows (sigmoids fitted on the very rows
    they map would make a weak modality look better than it is to the fusion)."""
    out = np.empty((len(codes), 2 if decisions.shape[1] == 1 else decisions.shape[1]))
    for train, test in splits:
        maps = fit_sigmoids(decisions[train], codes[train],
                            None if sample_weight is None else sample_weight[train])
        out[test] = apply_sigmoids(maps, decisions[test])
    return out


def apply_sigmoids(maps, decisions):
    """Class probabilities from decision values: each column's sigmoid, renormalised."""
    a, b = np.array(maps).T
    p = expit(decisions * a + b)
    if decisions.shape[1] == 1:
        return np.hstack([1.0 - p, p])
    total = p.sum(axis=1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[1])


class PlattScaled(ClassifierMixin, BaseEstimator):
    """A classifier's ``decision_function`` turned into probabilities by one-vs-rest Platt
    sigmoids (as ``CalibratedClassifierCV(method="sigmoid", ensemble=False)``).

    Fitted alone, it gets the sigmoids' decisions from ``cv`` inner stratified folds; a late
    fusion modality fits it from its own out-of-fold decisions instead
    (:meth:`from_decisions`).
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "decision_function"])],
        "cv": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(self, estimator, cv=3):
        self.estimator = estimator
        self.cv = cv

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, **fit_params):
        """Fit ``estimator`` on ``cv`` inner folds for held-out decisions, the sigmoids on
        those, then ``estimator`` on all rows; ``fit_params`` go to each of its fits (a
        ``*sample_weight`` among them also weighs the sigmoids' rows)."""
        y = np.asarray(y)
        classes = np.unique(y)
        decisions = np.empty((len(y), 1 if len(classes) == 2 else len(classes)))
        for train, test in StratifiedKFold(self.cv).split(np.zeros(len(y)), y):
            params = {key: _safe_indexing(value, train)
                      if hasattr(value, "__len__") and len(value) == len(y) else value
                      for key, value in fit_params.items()}
            model = clone(self.estimator).fit(_safe_indexing(X, train), y[train], **params)
            decisions[test] = decision_columns(model.decision_function(_safe_indexing(X, test)),
                                               model.classes_, classes)
        weight = next((v for k, v in fit_params.items() if k.endswith("sample_weight")), None)
        maps = fit_sigmoids(decisions, np.searchsorted(classes, y), weight)
        return self.set_fitted(clone(self.estimator).fit(X, y, **fit_params), classes, maps)

    def set_fitted(self, fitted, classes, maps):
        """This model, with ``fitted`` (a fit of ``estimator``) inside and the sigmoids
        ``maps`` (:func:`fit_sigmoids`) for ``classes``."""
        self.estimator_, self.classes_, self.sigmoids_ = fitted, np.asarray(classes), maps
        if hasattr(fitted, "n_features_in_"):
            self.n_features_in_ = fitted.n_features_in_
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        return self.estimator_.decision_function(X)

    def predict_proba(self, X):
        check_is_fitted(self)
        decisions = decision_columns(self.estimator_.decision_function(X),
                                     self.estimator_.classes_, self.classes_)
        return apply_sigmoids(self.sigmoids_, decisions)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
