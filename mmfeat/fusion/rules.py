"""Late fusion's fixed probability rules, weighted: the mean and the normalised product of the
modalities' probabilities, each modality counting by one weight.

The weights are learned by ``fit`` on the out-of-fold (calibrated) probabilities it computes
anyway: for "product" the weights ``w_m >= 0`` minimising the log loss of
``softmax(sum_m w_m log p_m)``, for "mean" those of ``sum_m w_m p_m / sum_m w_m``; both are
small fits over one number per modality, started from equal weights. A weight of 0 leaves the
modality out; a modality whose probabilities add nothing to the others' gets little. Only the
modalities a row has are combined, so a missing one takes no part.
The product's weights also scale its sharpness (weights of 2 square the product), so they are
reported as they are; the mean's sum to 1.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import compute_sample_weight
from sklearn.utils.validation import check_is_fitted

from .._sklearn_compat import StrOptions, _fit_context

PROBABILITY_RULES = ("mean", "product")
# The product rule's fit adds this times the sum of squared weights: a modality whose
# log-probabilities do not vary between classes (it says nothing) would keep any weight, and
# this sends it to 0 at a negligible cost to the others.
_RIDGE = 1e-4
# Below this a weight is reported (and used) as 0: the optimiser's bound is approached, not hit.
_NEGLIGIBLE = 1e-3


def combine_probabilities(stacked, available, rule, weights, prior):
    """Class scores of ``rule`` ("mean" or "product") from ``stacked`` probabilities
    ``(n_modalities, n, n_classes)`` (rows of a missing modality: anything), ``available``
    ``(n_modalities, n)`` and one weight per modality (None: equal); rows whose modalities all
    weigh 0, or that have none, get ``prior``."""
    k = stacked.shape[0]
    weights = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    counted = available * weights[:, None]  # (k, n)
    total = counted.sum(axis=0)[:, None]
    if rule == "mean":
        probabilities = np.where(available[..., None], stacked, 0.0)
        scores = (counted[..., None] * probabilities).sum(axis=0) / np.maximum(total, 1e-300)
    else:
        logs = np.where(available[..., None], np.log(np.clip(stacked, 1e-12, 1.0)), 0.0)
        logs = (counted[..., None] * logs).sum(axis=0)
        scores = np.exp(logs - logs.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    return np.where(total > 0, scores, prior)


def fit_rule_weights(stacked, available, codes, rule, sample_weight=None):
    """One weight per modality minimising the log loss of ``rule`` on the rows (see the module's
    docstring): ``(n_modalities,)``, the mean rule's summing to 1. Rows with no modality are
    left out; with none left, equal weights."""
    k = stacked.shape[0]
    rows = available.any(axis=0)
    if not rows.any():
        return np.full(k, 1.0 / k if rule == "mean" else 1.0)
    stacked, available, codes = stacked[:, rows], available[:, rows], codes[rows]
    row_weight = np.ones(len(codes)) if sample_weight is None else \
        np.asarray(sample_weight, dtype=np.float64)[rows]
    row_weight = row_weight / row_weight.sum()
    n = np.arange(len(codes))
    if rule == "mean":
        truth = np.where(available, stacked[:, n, codes], 0.0)  # (k, n)

        def loss(w):  # and its gradient
            counted = available * w[:, None]
            total = np.maximum(counted.sum(axis=0), 1e-12)
            p = np.clip((counted * truth).sum(axis=0) / total, 1e-12, None)
            gradient = -(available * (truth - p) / total * (row_weight / p)).sum(axis=1)
            return -(row_weight * np.log(p)).sum(), gradient

        found = minimize(loss, np.ones(k), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * k)
        better = found.success or loss(found.x)[0] <= loss(np.ones(k))[0]
        weights = found.x if better else np.ones(k)
    else:
        logs = np.where(available[..., None], np.log(np.clip(stacked, 1e-12, 1.0)), 0.0)
        weights, _ = fit_log_linear(logs, codes, row_weight, bias=False)
    weights = np.where(weights < _NEGLIGIBLE * max(weights.max(), 1e-12), 0.0, weights)
    if not weights.any():
        weights = np.ones(k)
    return weights / weights.sum() if rule == "mean" else weights


def fit_log_linear(logs, codes, row_weight, bias):
    """The weights ``w >= 0``, one per modality, and with ``bias`` a bias per class ``b``,
    minimising the log loss of ``softmax(b + sum_m w_m logs_m)`` on the rows (weighted by
    ``row_weight``, summing to 1) plus ``_RIDGE`` times the parameters' sum of squares: the
    product rule's weights (no bias) and :class:`LogProbabilityStacker`'s fit. Started from
    equal weights of 1 and no bias; if the optimiser fails without improving on that start,
    the start is returned. ``logs``: ``(n_modalities, n, n_classes)``. Returns ``(w, b)``
    (``b`` zeros without ``bias``)."""
    k, n, n_classes = logs.shape
    rows = np.arange(n)

    def loss(params):  # and its gradient
        w, b = params[:k], params[k:] if bias else np.zeros(n_classes)
        z = np.tensordot(w, logs, axes=1) + b
        z = z - z.max(axis=1, keepdims=True)
        softmax = np.exp(z)
        normaliser = softmax.sum(axis=1)
        softmax /= normaliser[:, None]
        log_p = z[rows, codes] - np.log(normaliser)
        residual = softmax
        residual[rows, codes] -= 1.0  # d(-log p)/dz
        residual *= row_weight[:, None]
        gradient = [(logs * residual[None]).sum(axis=(1, 2)) + 2 * _RIDGE * w]
        if bias:
            gradient.append(residual.sum(axis=0) + 2 * _RIDGE * b)
        return (-(row_weight * log_p).sum() + _RIDGE * (params ** 2).sum(),
                np.concatenate(gradient))

    start = np.concatenate([np.ones(k), np.zeros(n_classes if bias else 0)])
    found = minimize(loss, start, jac=True, method="L-BFGS-B",
                     bounds=[(0.0, None)] * k + [(None, None)] * (len(start) - k))
    params = found.x if found.success or loss(found.x)[0] <= loss(start)[0] else start
    return params[:k], params[k:] if bias else np.zeros(n_classes)


class LogProbabilityStacker(ClassifierMixin, BaseEstimator):
    """A small stacking meta-learner: one weight per modality and a bias per class on the
    modalities' log-probabilities, ``softmax(b + sum_m w_m log p_m)`` with ``w_m >= 0``,
    fitted by log loss: ``k + C`` parameters where a multinomial logistic regression on the
    same input has ``(k C + 1) C``, which overfits with many classes and few rows.

    Parameters
    ----------
    blocks : list of (int, int)
        Per modality, the ``(start, stop)`` columns of its class probabilities in ``X`` (in
        ``classes_`` order); other columns (availability) are not used.
    class_weight : "balanced", dict or None, default=None
    """

    _parameter_constraints: dict = {
        "blocks": [list],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, blocks, class_weight=None):
        self.blocks = blocks
        self.class_weight = class_weight

    def _logs(self, X):
        X = np.asarray(X, dtype=np.float64)
        return np.stack([np.log(np.clip(X[:, start:stop], 1e-12, 1.0))
                         for start, stop in self.blocks])

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        self.classes_, codes = np.unique(y, return_inverse=True)
        logs = self._logs(X)
        if logs.shape[2] != len(self.classes_):
            raise ValueError(f"Each block must have one column per class ({len(self.classes_)}), "
                             f"got {logs.shape[2]}.")
        weight = np.ones(len(codes)) if sample_weight is None else np.asarray(sample_weight,
                                                                                dtype=np.float64)
        if self.class_weight is not None:
            weight = weight * compute_sample_weight(self.class_weight, y)
        weight = weight / weight.sum()
        self.coef_, self.intercept_ = fit_log_linear(logs, codes, weight, bias=True)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def decision_function(self, X):
        check_is_fitted(self, "coef_")
        return np.tensordot(self.coef_, self._logs(X), axes=1) + self.intercept_

    def predict_proba(self, X):
        z = self.decision_function(X)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.decision_function(X).argmax(axis=1)]
