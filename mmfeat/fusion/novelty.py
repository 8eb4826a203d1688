"""How unlike its training rows a modality's features are: a per-modality novelty score, learned
at ``fit`` from the features already extracted (no extra extraction), cheap and deterministic.

The score of a row combines the two ways a feature vector can leave what the modality's model
was trained on, in a PCA of the training features (centred, the components that explain 95 %
of the variance):

- its squared Mahalanobis distance inside the principal subspace, per component; and
- its reconstruction error (the squared distance to that subspace), over the training rows'
  mean reconstruction error.

Their sum, divided by its median over the training rows scored **out of fold** (each row by a
PCA fitted without it), is the row's relative distance. It is measured in the features' own
units and, for features that are never negative on the training rows (histograms, counts), in
their logarithm too; the larger of the two, minus 1 and floored at 0, is the novelty: 0 for a
typical row, about ``k`` for a row ``k + 1`` times as far as a typical one. The threshold is
the 99.5th percentile of those out-of-fold scores (training rows only).

Measured on the demo data (colour histograms, MiniLM, MFCCs; 120 rows to fit, 80 held out,
seed 0; ``benchmarks/bench_outliers.py``): the reconstruction error in the features' units
flags noisy images and images half hidden or more (every row) and texts with three words in
four dropped (about 3 rows in 4), with no clean row flagged; the Mahalanobis distance alone
flagged none of the noisy or occluded images (its out-of-fold distances are dominated by the
low-variance components, which sets its threshold high). Blurred images stay within the
training images' colours in the histogram's own units (1 in 20 flagged at the strongest blur);
in log units they do not (blur mixes the shape's colour into the grey background: a little mass
in bins that are empty in every training image), and the two views together flag about half of
them, the half that misled the fusion (its cost at the strongest blur falls from 0.150 to
0.025). Sounds with white noise at 0 dB SNR stay within the training sounds' range (none
flagged): they cost the demo's late fusion less than a missing sound.

The fitted model is a dict of plain arrays and numbers, so a fused model saves to ``.skops``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# The share of the training features' variance the principal subspace keeps.
VARIANCE_KEPT = 0.95
# The log view's floor, over the training features' mean value (see _views).
LOG_FLOOR = 0.2
# Training rows' out-of-fold novelty above which a row is strange: this percentile of theirs.
THRESHOLD_PERCENTILE = 99.5
_TINY = 1e-12


def _dense(features):
    return np.asarray(features.toarray() if sp.issparse(features) else features, dtype=np.float64)


def _fit_subspace(features):
    """Mean, principal components (rows), their variances and the mean reconstruction error."""
    mean = features.mean(axis=0)
    centred = features - mean
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    variance = singular ** 2 / max(len(features) - 1, 1)
    total = variance.sum()
    k = 0
    if total > _TINY:
        k = min(int(np.searchsorted(np.cumsum(variance) / total, VARIANCE_KEPT)) + 1, len(variance))
    components, variance = components[:k], variance[:k]
    residual = centred - (centred @ components.T) @ components
    return {"mean": mean, "components": components, "variance": variance,
            "residual": float(max((residual ** 2).sum(axis=1).mean(), _TINY))}


def _raw(model, features):
    """Mahalanobis distance in the subspace per component, plus the relative reconstruction
    error."""
    centred = features - model["mean"]
    inside = centred @ model["components"].T
    residual = centred - inside @ model["components"]
    k = len(model["variance"])
    distance = (inside ** 2 / np.maximum(model["variance"], _TINY)).sum(axis=1) / max(k, 1)
    return distance + (residual ** 2).sum(axis=1) / model["residual"]


def _views(features):
    """The spaces a modality's features are scored in: their own units, and for features that
    are never negative on the training rows (histograms, counts) also their logarithm.

    A histogram moves in its small bins: a blurred colour image spreads a little of its mass
    into bins that are empty in every training image, which is nothing in the features' own
    units (the large bins dominate the variance) and far in log units. The log's floor is a
    fifth of the training features' mean value (scale-free: 1e-3 for a 192-bin histogram)."""
    views = [{"transform": "identity"}]
    if len(features) and features.min() >= 0.0 and features.mean() > _TINY:
        views.append({"transform": "log", "floor": float(LOG_FLOOR * features.mean())})
    return views


def _apply(view, features):
    if view["transform"] == "log":
        return np.log(features + view["floor"])
    return features


def fit_novelty(features, splits):
    """Learn what a modality's features look like on its training rows.

    Parameters
    ----------
    features : array-like of shape (n_rows, n_features)
        The modality's features on the rows that have it (no NaN row).
    splits : list of (train, test) row indices
        A partition of the rows into test parts: each row's out-of-fold score comes from the
        model fitted on the other parts.

    Returns
    -------
    model : dict
        Per view (see :func:`_views`), the subspace of all rows and the out-of-fold median;
        and the threshold (plain values).
    oof : ndarray of shape (n_rows,)
        Each training row's out-of-fold novelty.
    """
    features = _dense(features)
    views, relative = _views(features), []
    for view in views:
        values = _apply(view, features)
        raw = np.zeros(len(values))
        for train, test in splits:
            raw[test] = _raw(_fit_subspace(values[train]), values[test])
        view.update(_fit_subspace(values), median=float(max(np.median(raw), _TINY)))
        relative.append(raw / view["median"])
    oof = np.maximum(np.max(relative, axis=0) - 1.0, 0.0)
    return {"views": views, "threshold": float(np.percentile(oof, THRESHOLD_PERCENTILE))}, oof


def novelty(model, features):
    """The novelty of each row of ``features`` (see :func:`fit_novelty`): 0 for typical rows."""
    features = _dense(features)
    relative = [_raw(view, _apply(view, features)) / view["median"] for view in model["views"]]
    return np.maximum(np.max(relative, axis=0) - 1.0, 0.0)


_PLURALS = {"image": "images", "text": "texts", "audio": "sounds", "video": "videos"}


def strange_cause(extractor, score, threshold):
    """Why a row's modality was set aside: "looks unlike the training images (novelty 14.2,
    threshold 6.1)"."""
    kind = _PLURALS.get(getattr(extractor, "modality", None), "items")
    return f"looks unlike the training {kind} (novelty {score:.3g}, threshold {threshold:.3g})"


def report_strange(name, extractor, items, strange, scores, model):
    """Report each ``strange`` row to the active :func:`mmfeat.errors.collect_errors` (batch
    scoring writes them in its ``missing`` column): the modality, the item and the cause."""
    if not strange.any():
        return
    from ..errors import ExtractionError, report_errors
    from ..items import describe

    errors = []
    for row in np.flatnonzero(strange):
        item = describe(items.iloc[row]) if hasattr(items, "iloc") and np.ndim(items) == 1 \
            else f"row {row}"
        errors.append(ExtractionError(int(row), item, strange_cause(
            extractor, scores[row], model["threshold"]), extractor=name))
    report_errors(errors)
