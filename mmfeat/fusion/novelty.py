"""How unlike its training rows a modality's features are: a per-modality novelty score, learned
at ``fit`` from the features already extracted (no extra extraction), cheap and deterministic.

The score of a row combines the two ways a feature vector can leave what the modality's model
was trained on, in a PCA of the training features (centred, the components that explain 95 %
of the variance):

- its squared Mahalanobis distance inside the principal subspace, per component; and
- its reconstruction error (the squared distance to that subspace), over the training rows'
  mean reconstruction error.

Their sum, over its median on the training rows scored **out of fold** (each row by a model
fitted without it), minus 1 and floored at 0, is how far a row lies in one **view** of the
features: in their own units; each feature standardised; and, for features never negative
on the training rows (histograms, counts), their logarithm. Each view's distance is divided by
its own 99.5th percentile over the training rows (so that a view whose training rows spread
far, a standardised rare histogram bin, neither dominates nor hides the others), and the
largest is the novelty: 0 for a typical row, 1 for a row as far as the 1 training row in 200
that lies farthest. The threshold is the 99.5th percentile of the training rows' out-of-fold
novelties (about 1; a little more, as the largest of several views). Late fusion's
``outliers="missing"`` draws a row's output towards the missing fill by its novelty around
that threshold (:func:`kept_share`); early fusion's treats a block past it as missing.

Measured (``benchmarks/bench_outliers.py``, seed 0; at each corruption's strongest level):
on the demo data (colour histograms, MiniLM, MFCCs; 120 rows to fit, 80 held out) noisy and
half-hidden images are flagged in every row, and no clean row; in the histogram's own units a
blurred image stays within the training images' colours (1 in 20 flagged), in log units it
does not (blur mixes the shape's colour into the grey background: a little mass in bins that
are empty in every training image), and the views together flag about 3 in 5 blurred images,
those that misled the fusion. On real emoji with the CNN (832 rows to fit, 208 held out by
base emoji) the standardised view is what flags noisy images (about 4 in 5, against 3 in 20 in
the features' own units); an emoji three quarters hidden by a black block looks like the many
dark emoji (none flagged). Sounds with white noise at 0 dB SNR stay within the training
sounds' range (none flagged): they cost a late fusion less than a missing sound.

The fitted model is a dict of plain arrays and numbers, so a fused model saves to ``.skops``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# The share of the training features' variance the principal subspace keeps.
VARIANCE_KEPT = 0.95
# The spaces features are scored in, and their floors (see _views).
VIEWS = ("identity", "standard", "log")
LOG_FLOOR = 0.2
SCALE_FLOOR = 0.1
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
    """The spaces a modality's features are scored in (:data:`VIEWS`): their own units; each
    feature standardised (its scale floored at :data:`SCALE_FLOOR` times the features' mean
    scale, so that a feature constant on the training rows does not weigh without bound); and,
    for features that are never negative on the training rows (histograms, counts), their
    logarithm, with a floor of :data:`LOG_FLOOR` times the features' mean value."""
    nonnegative = len(features) and features.min() >= 0.0 and features.mean() > _TINY
    return [kind for kind in VIEWS if kind != "log" or nonnegative]


def _fit_view(kind, features):
    """A view fitted on training rows: its transform's parameters and the PCA subspace."""
    view = {"transform": kind}
    if kind == "log":
        view["floor"] = float(LOG_FLOOR * features.mean())
    elif kind == "standard":
        scale = features.std(axis=0)
        view.update(loc=features.mean(axis=0),
                    spread=np.maximum(scale, max(SCALE_FLOOR * scale.mean(), _TINY)))
    view.update(_fit_subspace(_apply(view, features)))
    return view


def _apply(view, features):
    if view["transform"] == "log":
        return np.log(features + view["floor"])
    if view["transform"] == "standard":
        return (features - view["loc"]) / view["spread"]
    return features


def fit_novelty(features, splits):
    """Learn what a modality's features look like on its training rows.

    Parameters
    ----------
    features : array-like of shape (n_rows, n_features)
        The modality's features on the rows that have it (no NaN row).
    splits : list of (train, test) row indices
        A partition of the rows into test parts: each row's out-of-fold score comes from the
        model fitted (transform and subspace) on the other parts.

    Returns
    -------
    model : dict
        Per view (see :func:`_views`), its transform and subspace fitted on all rows and the
        out-of-fold median; and the threshold (plain values).
    oof : ndarray of shape (n_rows,)
        Each training row's out-of-fold novelty.
    """
    features = _dense(features)
    views, relative = [], []
    for kind in _views(features):
        raw = np.zeros(len(features))
        for train, test in splits:
            fold = _fit_view(kind, features[train])
            raw[test] = _raw(fold, _apply(fold, features[test]))
        view = _fit_view(kind, features)
        view["median"] = float(max(np.median(raw), _TINY))
        # each view in units of its own far rows: one whose training rows spread far (a
        # standardised rare bin) neither dominates the others nor hides them
        view["scale"] = float(max(np.percentile(raw / view["median"] - 1.0,
                                                THRESHOLD_PERCENTILE), _TINY))
        views.append(view)
        relative.append(_relative(view, raw))
    oof = np.max(relative, axis=0)
    return {"views": views, "threshold": float(np.percentile(oof, THRESHOLD_PERCENTILE))}, oof


def _relative(view, raw):
    return np.maximum(raw / view["median"] - 1.0, 0.0) / view["scale"]


def novelty(model, features):
    """The novelty of each row of ``features`` (see :func:`fit_novelty`): 0 for typical rows."""
    features = _dense(features)
    return np.max([_relative(view, _raw(view, _apply(view, features)))
                   for view in model["views"]], axis=0)


_PLURALS = {"image": "images", "text": "texts", "audio": "sounds", "video": "videos"}


# outliers="missing" in late fusion: a row's output keeps all its weight up to this share of
# the threshold and none from its complement above it (see kept_share).
RAMP = 0.5


def kept_share(scores, threshold):
    """How much of a modality's output a row keeps under late fusion's ``outliers="missing"``:
    1 up to half the threshold, falling linearly to 0 at 1.5 times it (half at the threshold).

    A hard cut at the threshold treats a row just past it (a rare clean item, a short text)
    like one far past it, and one just below it (a noisy image the features barely tell apart)
    like a typical one; the ramp, centred on the same threshold, draws both towards the
    missing fill by how strange they are. Measured (``benchmarks/bench_outliers.py``, seed 0,
    with ``--real emoji,digits``), against the hard cut: clean emoji lose 0.005 (0.010), a
    noisy emoji costs 0.034 (0.043), a blurred digit 0.551 (0.593); the demo's targets stay
    met."""
    return np.clip((1.0 + RAMP - np.asarray(scores) / max(threshold, _TINY)) / (2 * RAMP),
                   0.0, 1.0)


def strange_cause(extractor, score, threshold, kept=0.0):
    """Why a row's modality was set aside: "looks unlike the training images (novelty 14.2,
    threshold 6.1)", and its output's kept share where not all of it was set aside."""
    kind = _PLURALS.get(getattr(extractor, "modality", None), "items")
    share = f", weight {kept:.2g}" if kept > 0 else ""
    return (f"looks unlike the training {kind} (novelty {score:.3g}, threshold "
            f"{threshold:.3g}{share})")


def report_strange(name, extractor, items, strange, scores, model, kept=None):
    """Report each ``strange`` row to the active :func:`mmfeat.errors.collect_errors` (batch
    scoring writes them in its ``missing`` column): the modality, the item and the cause
    (``kept``: each row's kept share of the output, 0 where set aside)."""
    if not strange.any():
        return
    from ..errors import ExtractionError, report_errors
    from ..items import describe

    errors = []
    for row in np.flatnonzero(strange):
        item = describe(items.iloc[row]) if hasattr(items, "iloc") and np.ndim(items) == 1 \
            else f"row {row}"
        errors.append(ExtractionError(int(row), item, strange_cause(
            extractor, scores[row], model["threshold"], 0.0 if kept is None else kept[row]),
            extractor=name))
    report_errors(errors)


# outliers="trust": per modality, this share of the training rows that have it is copied for the
# meta-learner with that modality made strange (see with_strange_copies).
STRANGE_SHARE = 1.0


def with_strange_copies(fusion, outputs, X, novelties, y, params):
    """The meta-learner's training input with strange copies of training rows appended:
    ``(meta, y, params)``.

    The training rows' out-of-fold novelties are typical by construction (0.5 % pass the
    threshold), so from them alone a meta-learner never sees a strange modality and cannot learn
    to discount one. Per modality, a share of the rows that have it (:data:`STRANGE_SHARE`,
    drawn with the fusion's ``random_state``) is copied with that modality's output replaced by
    the output of another training row drawn at random (an answer unrelated to the row, as a
    corrupted item's is) and its novelty at the meta-learner's cap (what a noisy
    or hidden image gets); the other modalities, the target and the row's weight are the row's.
    No item is corrupted or extracted again: the copies are made of the out-of-fold outputs."""
    from sklearn.utils import check_random_state

    from .._sklearn_compat import _safe_indexing
    from .blocks import available_rows
    from .meta import NOVELTY_CAP, meta_features

    rng = np.random.default_rng(check_random_state(fusion.random_state).randint(2 ** 31))
    n = len(y)
    rows, copies, strange = [], {name: [] for name in outputs}, {name: [] for name in outputs}
    for name, out in outputs.items():
        has = np.flatnonzero(available_rows(out))
        if name not in novelties or len(has) < 2:
            continue
        chosen = np.sort(rng.choice(has, size=int(round(STRANGE_SHARE * len(has))), replace=False))
        others = rng.choice(has, size=len(chosen))
        at_cap = np.full(len(chosen), NOVELTY_CAP * fusion._novelty[name]["threshold"])
        rows.append(chosen)
        for other, values in outputs.items():
            copies[other].append(out[others] if other == name else values[chosen])
            strange[other].append(at_cap if other == name else novelties[other][chosen])
    meta = meta_features(fusion, outputs, X, novelties)
    if not rows:
        return meta, y, params
    rows = np.concatenate(rows)
    extra = meta_features(fusion, {name: np.vstack(parts) for name, parts in copies.items()},
                          _safe_indexing(X, rows), {name: np.concatenate(parts)
                                                    for name, parts in strange.items()})
    everything = np.concatenate([np.arange(n), rows])
    params = {key: _safe_indexing(value, everything) if np.ndim(value) and len(value) == n
              else value for key, value in params.items()}
    return np.vstack([meta, extra]), _safe_indexing(y, everything), params
