"""Calibrating one modality's class probabilities on its out-of-fold predictions.

Late fusion already predicts every training row out of fold, so a calibration map fitted on
those predictions costs nothing more to extract or fit. The fitted maps are plain numbers and
arrays (never estimator objects), so a fused model stays as portable as it was.

- ``"temperature"``: one number ``T``; the probabilities become ``softmax(log(p) / T)``. It
  keeps each row's ranking of the classes, so it fixes over- or under-confidence without
  changing accuracy, and one parameter cannot overfit.
- ``"sigmoid"``: Platt scaling of each class's log-odds, one-vs-rest, then renormalised.
- ``"isotonic"``: a monotone step map per class, one-vs-rest, then renormalised; wants
  hundreds of rows per class.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, logit, softmax

CALIBRATION_METHODS = ("temperature", "sigmoid", "isotonic")
_EPS = 1e-12


def _log(proba):
    return np.log(np.clip(proba, _EPS, 1.0))


def _nll(log_proba, codes, sample_weight):
    return -np.average(log_proba[np.arange(len(codes)), codes], weights=sample_weight)


def fit_calibration(method, proba, codes, sample_weight=None):
    """Fit a calibration map of ``proba`` (n_samples, n_classes) to the true class ``codes``.

    Parameters
    ----------
    method : {"temperature", "sigmoid", "isotonic"}
    proba : ndarray of shape (n_samples, n_classes)
        Out-of-fold probabilities.
    codes : ndarray of shape (n_samples,)
        Index of each row's class among the columns of ``proba``.
    sample_weight : ndarray of shape (n_samples,) or None

    Returns
    -------
    dict
        The map, as plain values: ``{"method": ..., ...}``; :func:`apply_calibration` uses it.
    """
    if method == "temperature":
        logs = _log(proba)

        def loss(log_t):
            return _nll(log_softmax(logs / np.exp(log_t), axis=1), codes, sample_weight)

        # T from 1/20 to 20: wide enough for any model seen in practice, and bounded so that
        # a modality without any signal gets a flat (huge T) map rather than a numerical one.
        best = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded")
        return {"method": method, "temperature": float(np.exp(best.x))}
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    n_classes = proba.shape[1]
    columns = [1] if n_classes == 2 else range(n_classes)
    maps = []
    for k in columns:
        target = (codes == k).astype(int)
        if method == "sigmoid":
            score = logit(np.clip(proba[:, k], _EPS, 1 - _EPS))[:, None]
            if target.min() == target.max():  # a class never (or always) seen: keep it as is
                maps.append(np.array([1.0, 0.0]))
                continue
            platt = LogisticRegression(C=1e4).fit(score, target, sample_weight=sample_weight)
            maps.append(np.array([platt.coef_[0, 0], platt.intercept_[0]]))
        else:
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(proba[:, k], target, sample_weight=sample_weight)
            maps.append(np.vstack([iso.X_thresholds_, iso.y_thresholds_]))
    return {"method": method, "maps": maps}


def apply_calibration(calibration, proba):
    """``proba`` through a map from :func:`fit_calibration` (None: unchanged)."""
    if calibration is None:
        return proba
    method = calibration["method"]
    if method == "temperature":
        return softmax(_log(proba) / calibration["temperature"], axis=1)
    n_classes = proba.shape[1]
    columns = [1] if n_classes == 2 else range(n_classes)
    out = np.empty_like(proba, dtype=np.float64)
    for k, m in zip(columns, calibration["maps"]):
        if method == "sigmoid":
            out[:, k] = expit(m[0] * logit(np.clip(proba[:, k], _EPS, 1 - _EPS)) + m[1])
        else:
            out[:, k] = np.interp(proba[:, k], m[0], m[1])
    if n_classes == 2:
        out[:, 0] = 1.0 - out[:, 1]
        return out
    total = out.sum(axis=1, keepdims=True)
    # A row every class map sends to 0 carries no information: uniform, not 0/0.
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / n_classes)


def calibration_scores(proba, codes, n_bins=10):
    """Log loss and expected calibration error (top-class confidence, ``n_bins`` equal bins).

    The ECE is the mean gap, weighted by bin size, between the confidence a model gives its
    predicted class and how often that class is right.
    """
    log_loss = _nll(_log(proba), codes, None)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == codes
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        inside = bins == b
        ece += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(log_loss), float(ece)


def cross_fitted_scores(method, proba, codes, splits, sample_weight=None):
    """:func:`calibration_scores` of calibrated probabilities, each row calibrated by a map fitted
    without it (over ``splits``), so that the figures are not flattered by the map's own fit."""
    calibrated = np.empty_like(proba, dtype=np.float64)
    for train, test in splits:
        weight = None if sample_weight is None else sample_weight[train]
        calibrated[test] = apply_calibration(
            fit_calibration(method, proba[train], codes[train], weight), proba[test])
    return calibration_scores(calibrated, codes)
