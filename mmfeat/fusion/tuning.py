"""A logistic regression that chooses its own penalty, cheaply and by group when asked."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, get_scorer_names
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, check_cv
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .._sklearn_compat import Interval, StrOptions, _fit_context

#: The coarse grid of penalties, strongest first (a tuple: a default parameter value must
#: compare equal to itself in scikit-learn's repr).
DEFAULT_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
# The inner fits only have to rank the penalties, and a loose tolerance ranks them as a tight one
# does (measured on the real-data benchmark) in about half the iterations; the final fit uses
# ``tol``.
_SEARCH_TOL = 1e-3
# Inner scores closer than this are taken as equal (about one row in a thousand of accuracy),
# and of equal scores the stronger penalty is kept: it is the safer one on unseen groups, and
# the path does not go on fitting ever weaker penalties for gains of a row.
_SCORE_RESOLUTION = 1e-3


def _growth(tried, fold, C):
    """How much to scale a fold's last solution before fitting at ``C``: under a strong
    penalty the solution grows in proportion to ``C``, and as the penalty weakens it grows
    less and less; the last step's growth of the solution's norm predicts the next."""
    path = sorted(tried)
    last = path[-1]
    if len(path) < 2:
        return C / last
    norm = [np.linalg.norm(tried[c][1][fold][0]) for c in path[-2:]]
    return float(np.clip(norm[1] / max(norm[0], 1e-12), 1.0, C / last))


class TunedLogisticRegression(ClassifierMixin, BaseEstimator):
    """Logistic regression choosing ``C`` by inner cross-validation, at the cost of a few fits.

    The search walks the grid ``Cs`` on each inner fold, warm-started, from the penalty nearest
    ``start`` (0.1, what a user picks by hand on standardised features): towards weaker
    penalties while each scores better than the one before (by more than 0.001), and, when
    the first weaker step did not help, towards stronger ones while they score as well as the
    best. Each step starts from the last solution grown as the last step grew it (under a
    strong penalty a solution grows in proportion to ``C``), which roughly halves the
    iterations of a plain warm start. The best penalty is then refined once (the geometric
    midpoint towards its better neighbour; of scores within 0.001 of the best, the strongest
    penalty is kept), and the model is refitted on every row, starting from the inner folds'
    mean solution. On the real-data benchmark (``benchmarks/bench_real.py``) this costs 1.6 to
    2.5 times a fixed-``C`` fit, where ``LogisticRegressionCV`` over the same grid cost 3.5 to
    7.7 in the same run and the path from the strongest penalty (``start=None``) 2.6 to 4.7
    in another.

    With ``groups`` (``fit(X, y, groups=...)``, or through metadata routing, which this
    estimator requests by default) the inner folds keep each group whole, so ``C`` is chosen
    for groups not seen in training (a new speaker, a new site) rather than for new rows of
    known ones.

    Parameters
    ----------
    Cs : array-like of float, default=(1e-4, 1e-3, 0.01, 0.1, 1, 10)
        The coarse grid of inverse penalties (sorted before use).
    start : float or None, default=0.1
        The walk begins at the grid's penalty nearest this; None: at the strongest (a path
        towards weaker penalties only).
    cv : int, cross-validation splitter or iterable, default=2
        Inner folds: stratified k-fold for an int (stratified group k-fold with ``groups``,
        at most one fold per group); a splitter is given the groups. Two folds cost half
        of three (each penalty is fitted on half the rows twice, rather than on two thirds
        three times) and chose as well on the real-data benchmark.
    scoring : str, default="accuracy"
        The scorer name (scikit-learn's) that ``C`` is chosen for.
    refine : bool, default=True
        Also try the geometric midpoint between the best penalty and the better of its
        neighbours on the path.
    class_weight : dict, "balanced" or None, default=None
        As in :class:`~sklearn.linear_model.LogisticRegression`.
    tol : float, default=1e-3
        Tolerance of the final fit (the inner fits use at least 1e-3). Against 1e-4 it fits in
        about half the iterations, with the same held-out accuracy on the real-data benchmark
        (0.966, 0.893 and 0.644 against 0.968, 0.893 and 0.639).
    max_iter : int, default=2000
    random_state : int, RandomState or None, default=0
        Shuffles the inner folds when ``cv`` is an int.

    Attributes
    ----------
    C_ : float
        The penalty chosen.
    cv_results_ : dict of str -> ndarray
        ``"C"`` (every penalty tried, ascending) and ``"mean_score"`` (its mean inner score).
    estimator_ : LogisticRegression
        The model refitted on every row with ``C_``.
    classes_, coef_, intercept_, n_iter_ : as the fitted ``estimator_``'s
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    sklearn.linear_model.LogisticRegressionCV : the full grid on every fold.
    make_early_fusion : ``estimator="auto"`` is this estimator.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from mmfeat.fusion import TunedLogisticRegression
    >>> X, y = load_iris(return_X_y=True)
    >>> model = TunedLogisticRegression().fit(X, y)
    >>> bool(model.C_ > 0), model.score(X, y) > 0.9
    (True, True)
    """

    _parameter_constraints: dict = {
        "Cs": ["array-like"],
        "start": [Interval(Real, 0, None, closed="neither"), None],
        "cv": ["cv_object"],
        "scoring": [StrOptions(set(get_scorer_names()))],
        "refine": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }
    # Under metadata routing, the groups and weights given to a pipeline that ends in this
    # model are meant for it (make_early_fusion's default model).
    __metadata_request__fit = {"groups": True, "sample_weight": True}

    def __init__(self, Cs=DEFAULT_CS, *, start=0.1, cv=2, scoring="accuracy", refine=True,
                 class_weight=None, tol=1e-3, max_iter=2000, random_state=0):
        self.Cs = Cs
        self.start = start
        self.cv = cv
        self.scoring = scoring
        self.refine = refine
        self.class_weight = class_weight
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state

    def _model(self, C, tol):
        return LogisticRegression(C=C, class_weight=self.class_weight, tol=tol,
                                  max_iter=self.max_iter, warm_start=True)

    def _splits(self, X, y, groups):
        if groups is not None:
            groups = np.asarray(groups)
            if len(groups) != len(y):
                raise ValueError(f"X has {len(y)} rows but groups has {len(groups)}.")
        if isinstance(self.cv, Integral):
            if groups is None:
                splitter = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
            else:
                n_groups = len(np.unique(groups))
                if n_groups < 2:
                    raise ValueError(f"Got groups with {n_groups} distinct value; choosing C by "
                                     "group needs at least 2 groups.")
                splitter = StratifiedGroupKFold(min(self.cv, n_groups), shuffle=True,
                                                random_state=self.random_state)
        else:
            splitter = check_cv(self.cv, y, classifier=True)
        return list(splitter.split(X, y, groups))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None, groups=None):
        """Choose ``C`` on inner folds of ``(X, y)`` (by ``groups`` when given), then refit.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,) or None
            Row weights, for the fits and the inner scores.
        groups : array-like of shape (n_samples,) or None
            Group labels: no group is in both parts of an inner fold.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        Cs = np.sort(np.asarray(self.Cs, dtype=float).ravel())
        if Cs.size == 0 or not (Cs > 0).all():
            raise ValueError(f"Got Cs={self.Cs!r}, expected one or more positive numbers.")
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        scorer = get_scorer(self.scoring)
        step = float(np.log(Cs[1] / Cs[0])) if len(Cs) > 1 else 0.0  # the grid's first step
        splits = self._splits(X, y, groups)
        folds = [self._model(Cs[0], max(self.tol, _SEARCH_TOL)) for _ in splits]
        tried = {}  # C -> (mean score, each fold's (coef, intercept))

        def evaluate(C, origin=None, scale=1.0):
            """Fit every fold at ``C``: from ``origin``'s solutions times ``scale`` when given,
            else along the path from each fold's last solution, grown."""
            scores, solutions = [], []
            for i, (model, (train, test)) in enumerate(zip(folds, splits)):
                if origin is not None:
                    coef, intercept = tried[origin][1][i]
                    model.coef_, model.intercept_ = coef * scale, intercept.copy()
                elif hasattr(model, "coef_"):  # along the path: from the last solution, grown
                    model.coef_ = model.coef_ * _growth(tried, i, C)
                w = None if weights is None else weights[train]
                model.set_params(C=C).fit(X[train], y[train], sample_weight=w)
                kwargs = {} if weights is None else {"sample_weight": weights[test]}
                scores.append(scorer(model, X[test], y[test], **kwargs))
                solutions.append((model.coef_.copy(), model.intercept_.copy()))
            tried[C] = (float(np.mean(scores)), solutions)

        def score(C):
            return tried[C][0]

        first = 0 if self.start is None else int(np.argmin(np.abs(np.log(Cs / self.start))))
        evaluate(Cs[first])
        best = Cs[first]
        for C in Cs[first + 1:]:  # weaker penalties, each fold from its previous solution
            evaluate(C)
            if score(C) <= score(best) + _SCORE_RESOLUTION:
                break  # the inner score has stopped improving: weaker penalties are not tried
            best = C
        if best == Cs[first]:
            # No weaker penalty helped: stronger ones, while they score as well as the best
            # (under a strong penalty the solution shrinks in proportion to C).
            for C, weaker in zip(Cs[first - 1::-1] if first else [], Cs[first::-1]):
                evaluate(C, origin=weaker, scale=C / weaker)
                if score(C) < max(score(c) for c in tried) - _SCORE_RESOLUTION:
                    break
        top = max(score(c) for c in tried)
        best = min(c for c in tried if score(c) >= top - _SCORE_RESOLUTION)
        neighbours = [c for c in tried if c != best and abs(np.log(c / best)) < 1.01 * step]
        if self.refine and neighbours:
            # once, towards the better of the best penalty's neighbours on the path
            neighbour = max(neighbours, key=score)
            evaluate(float(np.sqrt(best * neighbour)), origin=best)
            top = max(score(c) for c in tried)
            best = min(c for c in tried if score(c) >= top - _SCORE_RESOLUTION)
        self.C_ = float(best)
        order = sorted(tried)
        self.cv_results_ = {"C": np.array(order),
                            "mean_score": np.array([tried[c][0] for c in order])}
        final = self._model(self.C_, self.tol)
        solutions = tried[best][1]
        if all(len(model.classes_) == len(np.unique(y)) for model in folds):
            # every fold saw every class, so their solutions have the final model's shape
            final.coef_ = np.mean([coef for coef, _ in solutions], axis=0)
            final.intercept_ = np.mean([intercept for _, intercept in solutions], axis=0)
        self.estimator_ = final.fit(X, y, sample_weight=weights)
        for attr in ("classes_", "coef_", "intercept_", "n_iter_"):
            setattr(self, attr, getattr(self.estimator_, attr))
        return self

    def _check(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=[np.float64, np.float32])

    def predict(self, X):
        """Predicted class of each row."""
        X = self._check(X)
        return self.estimator_.predict(X)

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        X = self._check(X)
        return self.estimator_.predict_proba(X)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`."""
        X = self._check(X)
        return self.estimator_.predict_log_proba(X)

    def decision_function(self, X):
        """The linear model's scores (one column for two classes)."""
        X = self._check(X)
        return self.estimator_.decision_function(X)
