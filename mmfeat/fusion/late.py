"""Late fusion: one model per modality, combined by a meta-learner (stacking) or a fixed rule.

Unlike :class:`sklearn.ensemble.StackingClassifier`, which refits every base pipeline on every
fold, each modality's features are extracted once per ``fit`` and only the cheap per-modality
estimator is cross-validated on the feature matrix; and a row missing a modality still gets a
prediction from the modalities it has.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import scipy.sparse as sp
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import KFold, StratifiedKFold, check_cv, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from .blocks import as_feature_matrix, set_nan_on_error
from .early import parse_modality

STACK_METHODS = ("auto", "predict_proba", "decision_function", "predict")
_PARTS = ("column", "extractor", "estimator")


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


def _available(features, handle_missing):
    """Rows whose features are not all NaN (every row when missing values are not handled)."""
    if not handle_missing or sp.issparse(features):
        return np.ones(features.shape[0], dtype=bool)
    return ~np.isnan(features).all(axis=1)


def _is_passthrough(extractor):
    return isinstance(extractor, str) and extractor == "passthrough"


def _extract(extractor, items):
    return as_feature_matrix(items if _is_passthrough(extractor) else extractor.transform(items),
                             accept_sparse=True)


def _can(method):
    """For ``available_if``: whether the fused classifier offers ``method`` given its rule and
    meta-learner."""

    def check(self):
        if self.rule != "stack":
            return method == "predict_proba" and self.rule in ("mean", "product")
        final = getattr(self, "final_estimator_", None)
        if final is None:
            final = self._default_final() if self.final_estimator is None else self.final_estimator
        return hasattr(final, method)

    return check


def _fit_modality(name, extractor, estimator, items, y, cv, method, handle_missing):
    """Extract a modality's features once, then cross-validate and fit its estimator on them.

    Returns the fitted extractor and estimator, the availability mask, and the out-of-fold
    output of ``method`` on the available rows.
    """
    if _is_passthrough(extractor):
        features = as_feature_matrix(items, accept_sparse=True)
    else:
        extractor = clone(extractor)
        if handle_missing:
            set_nan_on_error(extractor)
        features = as_feature_matrix(extractor.fit_transform(items, y), accept_sparse=True)
    available = _available(features, handle_missing)
    if not available.any():
        raise ValueError(f"Modality {name!r} has no usable row: all {len(available)} items are "
                         "missing or failed.")
    if isinstance(cv, list) and not available.all():
        # Splits given as row indices: keep each split's available rows, renumbered.
        position = np.cumsum(available) - 1
        cv = [(position[train[available[train]]], position[test[available[test]]])
              for train, test in cv]
    features, y = features[available], y[available]
    oof = cross_val_predict(clone(estimator), features, y, cv=cv, method=method)
    estimator = clone(estimator).fit(features, y)
    return extractor, estimator, available, oof


class _BaseLateFusion(BaseEstimator):
    """What late-fusion classification and regression share: the modality specs, their
    parameters, and the fit loop."""

    _rules: tuple = ("stack",)

    # ------------------------------------------------------------------ parameters

    def get_params(self, deep=True):
        """Parameters; with ``deep=True`` also ``{name}`` (the modality's tuple),
        ``{name}__column``, ``{name}__extractor``, ``{name}__estimator`` and their own
        parameters, e.g. ``text__extractor__batch_size`` or ``text__estimator__C``."""
        params = super().get_params(deep=deep)
        if not deep or not isinstance(self.modalities, dict):
            return params
        for name, spec in self.modalities.items():
            params[name] = spec
            if not isinstance(spec, (tuple, list)):
                continue
            for part, value in zip(_PARTS, [*spec, None, None]):
                params[f"{name}__{part}"] = value
                if hasattr(value, "get_params") and not isinstance(value, type):
                    for key, sub in value.get_params(deep=True).items():
                        params[f"{name}__{part}__{key}"] = sub
        return params

    def set_params(self, **params):
        """Set parameters, including those of each modality (see :meth:`get_params`)."""
        if "modalities" in params:
            super().set_params(modalities=params.pop("modalities"))
        names = set(self.modalities) if isinstance(self.modalities, dict) else set()
        own = {k: v for k, v in params.items() if k.partition("__")[0] not in names}
        super().set_params(**own)
        ours = {k: v for k, v in params.items() if k not in own}
        if not ours:
            return self
        modalities = dict(self.modalities)
        # Whole tuples first, then their parts, then the parts' own parameters.
        for key in sorted(ours, key=lambda k: k.count("__")):
            name, part, rest = (key.split("__", 2) + ["", ""])[:3]
            if not part:
                modalities[name] = ours[key]
                continue
            if part not in _PARTS:
                raise ValueError(f"Invalid parameter {key!r} for {type(self).__name__}: "
                                 f"expected {name}__column, {name}__extractor or {name}__estimator.")
            spec = [*modalities[name], None, None][:3]
            index = _PARTS.index(part)
            if not rest:
                spec[index] = ours[key]
            elif hasattr(spec[index], "set_params"):
                spec[index].set_params(**{rest: ours[key]})
            else:
                raise ValueError(
                    f"Cannot set {key!r}: modality {name!r} has no {part} of its own to set it on "
                    f"(give one, e.g. {name}=(column, extractor, LogisticRegression()))."
                )
            modalities[name] = tuple(spec if spec[2] is not None else spec[:2])
        self.modalities = modalities
        return self

    # ------------------------------------------------------------------ fitting

    def _check_params(self):
        if not isinstance(self.modalities, dict) or not self.modalities:
            raise ValueError(f"Got modalities={self.modalities!r}, expected a non-empty dict "
                             "{name: (column, extractor[, estimator])}.")
        clashes = sorted(set(self.modalities) & set(self._get_param_names()))
        if clashes:
            raise ValueError(f"Modality names {clashes} are also parameter names of "
                             f"{type(self).__name__}; rename them.")
        if self.rule not in self._rules:
            raise ValueError(f"Got rule={self.rule!r}, expected one of {self._rules}.")
        passthrough = self.passthrough
        if passthrough is True:
            raise ValueError("Got passthrough=True, expected False or the list of numeric "
                             "columns the meta-learner should also see.")
        if passthrough not in (None, False) and self.rule != "stack":
            raise ValueError(f"passthrough columns go to the meta-learner, and rule={self.rule!r} "
                             "has none: use rule='stack' or passthrough=False.")
        specs = []
        for name, spec in self.modalities.items():
            column, extractor, (estimator,) = parse_modality(name, spec, 1, "estimator")
            if estimator is None:
                estimator = self._default_estimator()
            specs.append((name, column, extractor, estimator))
        return specs

    def _passthrough_columns(self, X):
        if self.passthrough in (None, False):
            return None
        columns = [self.passthrough] if isinstance(self.passthrough, str) else self.passthrough
        return check_array(_select(X, columns), ensure_all_finite="allow-nan", dtype=np.float64)

    def _splitter(self, y):
        """A splitter object, or the list of ``(train, test)`` row indices when ``cv`` is an
        iterable of splits (each modality then keeps its available rows of each split)."""
        if isinstance(self.cv, numbers.Integral) and not isinstance(self.cv, bool):
            kind = StratifiedKFold if self._is_classifier else KFold
            if self.random_state is None:
                return kind(self.cv)
            return kind(self.cv, shuffle=True, random_state=self.random_state)
        if hasattr(self.cv, "split"):
            return self.cv
        return [(np.asarray(train), np.asarray(test)) for train, test in check_cv(self.cv).split(y)]

    def _fit(self, X, y):
        specs = self._check_params()
        X = validate_data(self, _as_table(X), skip_check_array=True)
        if X.shape[0] < 1:
            raise ValueError(f"Found 0 samples (shape={X.shape}), while at least 1 is required.")
        if X.shape[0] != len(y):
            raise ValueError(f"X has {X.shape[0]} rows but y has {len(y)}.")
        methods = {name: self._method_for(name, estimator) for name, _, _, estimator in specs}
        cv = self._splitter(y)
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_modality)(name, extractor, estimator, _select(X, column), y, cv,
                                   methods[name], self.handle_missing)
            for name, column, extractor, estimator in specs
        )
        self.estimators_, self.stack_method_, self._columns = {}, methods, {}
        outputs, report = {}, []
        for (name, column, _, _), (extractor, estimator, available, oof) in zip(specs, results):
            self.estimators_[name] = Pipeline([("extractor", extractor), ("estimator", estimator)])
            self._columns[name] = column
            outputs[name] = self._oof_output(name, oof, y[available], available)
            report.append({"modality": name, "n_available": int(available.sum()),
                           "oof_score": float(self._oof_score(name, oof, y[available]))})
        self._fill = {name: self._fill_value(name, out) for name, out in outputs.items()}
        self.final_estimator_ = None
        self.__dict__.pop("meta_feature_names_", None)  # from an earlier fit with rule="stack"
        if self.rule == "stack":
            meta, self.meta_feature_names_ = self._meta_features(outputs, X)
            final = self._default_final() if self.final_estimator is None else self.final_estimator
            self.final_estimator_ = clone(final).fit(meta, y)
        weights = self._modality_weights()
        for row in report:
            row["weight"] = float(weights[row["modality"]])
        self._report = report  # plain values, so that skops can save the fitted model
        return self

    @property
    def modality_report_(self):
        """Per modality: rows it was available in, out-of-fold score and meta-learner weight."""
        check_is_fitted(self, "estimators_")
        return pd.DataFrame(self._report, columns=["modality", "n_available", "oof_score", "weight"])

    # ------------------------------------------------------------------ meta-features

    def _outputs(self, X):
        """Each modality's output on new rows: {name: (n, width) with NaN rows where missing}."""
        check_is_fitted(self, "estimators_")
        X = validate_data(self, _as_table(X), skip_check_array=True, reset=False)
        outputs = {}
        for name, pipeline in self.estimators_.items():
            features = _extract(pipeline.named_steps["extractor"], _select(X, self._columns[name]))
            available = _available(features, self.handle_missing)
            out = None
            if available.any():
                out = self._modality_output(name, pipeline.named_steps["estimator"],
                                            features[available])
            outputs[name] = self._scatter(out, available, self._fill[name].shape[0])
        return outputs, X

    @staticmethod
    def _scatter(values, available, width):
        out = np.full((available.shape[0], width), np.nan)
        if values is not None:
            out[available] = values
        return out

    def _meta_features(self, outputs, X):
        """The meta-learner's input: per modality its output (missing rows filled) and, with
        ``handle_missing``, a 0/1 availability column; then the passthrough columns."""
        blocks, names = [], []
        for name, out in outputs.items():
            available = ~np.isnan(out).all(axis=1)
            columns, labels = self._stack_columns(name)
            blocks.append(np.where(available[:, None], out, self._fill[name])[:, columns])
            names += [f"{name}_{label}" for label in labels]
            if self.handle_missing:
                blocks.append(available[:, None].astype(np.float64))
                names.append(f"{name}_available")
        passthrough = self._passthrough_columns(X)
        if passthrough is not None:
            blocks.append(passthrough)
            columns = [self.passthrough] if isinstance(self.passthrough, str) else self.passthrough
            names += [str(c) for c in columns]
        return np.hstack(blocks), names

    def _modality_weights(self):
        """Each modality's share of the meta-learner's summed |coef| (or feature importance)
        on its prediction columns; equal shares for the fixed rules."""
        names = list(self.estimators_)
        if self.final_estimator_ is None:
            return {name: 1.0 / len(names) for name in names}
        final = self.final_estimator_
        final = final.steps[-1][1] if isinstance(final, Pipeline) else final
        importance = getattr(final, "coef_", getattr(final, "feature_importances_", None))
        totals = dict.fromkeys(names, np.nan)
        if importance is not None:
            importance = np.abs(np.atleast_2d(importance)).sum(axis=0)
            if importance.shape[0] == len(self.meta_feature_names_):
                start = 0
                for name in names:
                    width = len(self._stack_columns(name)[0])
                    totals[name] = importance[start:start + width].sum()
                    start += width + bool(self.handle_missing)
        total = sum(totals.values())
        return {name: value / total if total > 0 else np.nan for name, value in totals.items()}


class LateFusionClassifier(ClassifierMixin, _BaseLateFusion):
    """Late fusion for classification: one model per modality, stacked by a meta-learner.

    Each modality is a column of the input and an extractor, with an optional estimator of its
    own. ``fit`` extracts each modality's features **once**, gets out-of-fold predictions of the
    modality's estimator on them by cross-validation (as
    :class:`~sklearn.ensemble.StackingClassifier` does, but without re-extracting per fold),
    fits the estimator on all rows, and fits ``final_estimator`` on the out-of-fold predictions.
    With ``rule="mean"``, ``"product"`` or ``"vote"`` the predictions are combined by that fixed
    rule instead and no meta-learner is fitted.

    Parameters
    ----------
    modalities : dict
        ``{name: (column, extractor)}`` or ``{name: (column, extractor, estimator)}``.
        ``column`` selects the modality's column with ``ColumnTransformer`` semantics (a name
        gives the extractor a 1-D Series of items; a list of names, an int, a slice or a callable
        also work); ``extractor`` is an mmfeat Extractor, a scikit-learn transformer, or
        ``"passthrough"`` for numeric columns used as they are. The default estimator is
        ``make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))``.
    final_estimator : classifier or None, default=None
        The meta-learner; None means ``LogisticRegression()``.
    cv : int, cross-validation splitter or iterable, default=5
        How out-of-fold predictions are made (stratified k-fold for an int, as in scikit-learn).
        Each modality is split over the rows it is available in.
    stack_method : {"auto", "predict_proba", "decision_function", "predict"}, default="auto"
        What each modality's estimator gives the meta-learner. "auto" tries them in that order.
        Predicted labels are one-hot encoded. With two classes only the second class's column
        is kept. Only used with ``rule="stack"``: "mean" and "product" use ``predict_proba``,
        "vote" uses ``predict``.
    passthrough : False or list of str, default=False
        Numeric columns of the input that the meta-learner also sees (``rule="stack"`` only).
    rule : {"stack", "mean", "product", "vote"}, default="stack"
        "stack": a fitted meta-learner. "mean": the mean of the modalities' probabilities.
        "product": their normalised product (the posterior if the modalities are independent
        given the class and the classes equally likely). "vote": the majority of the
        modalities' predicted labels, ties going to the more frequent class in training.
    handle_missing : bool, default=True
        Let rows miss modalities (see Notes). If False, extractors keep their own ``on_error``
        (an mmfeat extractor then raises on a missing item) and this is plain stacking.
    n_jobs : int or None, default=None
        Modalities fitted in parallel (joblib semantics).
    random_state : int, RandomState or None, default=None
        When ``cv`` is an int, shuffle the folds with this seed. None keeps scikit-learn's
        unshuffled folds.

    Attributes
    ----------
    estimators_ : dict of str -> Pipeline
        Per modality, ``Pipeline([("extractor", fitted extractor), ("estimator", fitted estimator)])``,
        fitted on the rows where the modality is available.
    final_estimator_ : estimator or None
        The fitted meta-learner (None with a fixed rule).
    stack_method_ : dict of str -> str
        The method used for each modality.
    classes_ : ndarray
    class_prior_ : ndarray
        Class frequencies in training, the fill for a missing modality's probabilities.
    meta_feature_names_ : list of str
        The meta-learner's input columns: ``{modality}_{class}``, ``{modality}_available``,
        then the passthrough columns (``rule="stack"`` only).
    modality_report_ : pandas.DataFrame
        One row per modality: ``modality``, ``n_available`` (training rows that have it),
        ``oof_score`` (out-of-fold accuracy on those rows) and ``weight`` (its share of the
        meta-learner's summed absolute coefficients, or feature importances, on its prediction
        columns; equal shares for fixed rules; NaN if the meta-learner has neither).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        When fitted on a DataFrame.

    See Also
    --------
    LateFusionRegressor : the same for regression.
    make_early_fusion : one model on all modalities' features side by side.
    sklearn.ensemble.StackingClassifier : refits the whole pipeline per fold.

    Notes
    -----
    **Missing modalities.** With ``handle_missing=True`` an item that is missing (None, NaN)
    or cannot be featurised gives that row all-NaN features (mmfeat extractors are cloned with
    ``on_error="nan"`` and warn with a count; a row of a plain transformer's output counts as
    missing when all its features are NaN). Then:

    * each modality's estimator is cross-validated and fitted on the rows that have it;
    * for a row missing a modality, that modality's output is replaced by a constant that
      carries no information -- the training class prior for probabilities and one-hot labels,
      the mean out-of-fold score for ``decision_function`` -- and the meta-learner also sees a
      0/1 ``{modality}_available`` column per modality, so it learns how much to trust the
      others when one is absent;
    * the fixed rules combine only the modalities a row has; a row with none gets the prior.

    So every row gets a prediction, at fit and at predict time. A modality never missing in
    training but missing at predict time is still filled, but the meta-learner has not learned
    what its absence means.

    Extractors are fitted once on all training rows (not per fold): for stateful ones (a
    learned codebook) the out-of-fold predictions have seen the other folds' items, though
    never their labels.

    Examples
    --------
    Two views of a numeric table, the second missing in 40 rows:

    >>> import numpy as np, pandas as pd
    >>> from sklearn.datasets import make_classification
    >>> from mmfeat.fusion import LateFusionClassifier
    >>> X, y = make_classification(200, n_features=6, n_informative=6, n_redundant=0, random_state=0)
    >>> df = pd.DataFrame(X, columns=["a0", "a1", "a2", "b0", "b1", "b2"])
    >>> df.loc[:39, ["b0", "b1", "b2"]] = np.nan
    >>> model = LateFusionClassifier({"a": (["a0", "a1", "a2"], "passthrough"),
    ...                               "b": (["b0", "b1", "b2"], "passthrough")}, cv=3).fit(df, y)
    >>> model.modality_report_[["modality", "n_available"]]
      modality  n_available
    0        a          200
    1        b          160
    >>> model.predict(df).shape
    (200,)

    With images and texts, a modality reads ``("image", ColorHistogram())`` or
    ``("text", SentenceEmbedder(), LogisticRegression(C=0.1))``, and a grid search can tune
    ``final_estimator__C``, ``rule``, ``cv`` or ``text__estimator__C``.
    """

    _rules = ("stack", "mean", "product", "vote")
    _is_classifier = True

    def __init__(self, modalities, final_estimator=None, *, cv=5, stack_method="auto",
                 passthrough=False, rule="stack", handle_missing=True, n_jobs=None,
                 random_state=None):
        self.modalities = modalities
        self.final_estimator = final_estimator
        self.cv = cv
        self.stack_method = stack_method
        self.passthrough = passthrough
        self.rule = rule
        self.handle_missing = handle_missing
        self.n_jobs = n_jobs
        self.random_state = random_state

    @staticmethod
    def _default_estimator():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    @staticmethod
    def _default_final():
        return LogisticRegression()

    def fit(self, X, y):
        """Extract each modality once, fit its estimator and the meta-learner.

        Parameters
        ----------
        X : DataFrame (or 2-D array) of shape (n_samples, n_columns)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        y = check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=None, input_name="y")
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"Got a {type_of_target(y)} target, expected binary or multiclass labels.")
        self.classes_, counts = np.unique(y, return_counts=True)
        self.class_prior_ = counts / counts.sum()
        return self._fit(X, y)

    def _method_for(self, name, estimator):
        if self.stack_method not in STACK_METHODS:
            raise ValueError(f"Got stack_method={self.stack_method!r}, expected one of {STACK_METHODS}.")
        wanted = {"mean": "predict_proba", "product": "predict_proba", "vote": "predict"}.get(
            self.rule, self.stack_method)
        candidates = STACK_METHODS[1:] if wanted == "auto" else (wanted,)
        for method in candidates:
            if hasattr(estimator, method):
                return method
        raise ValueError(f"The estimator of modality {name!r} ({type(estimator).__name__}) has no "
                         f"{' or '.join(candidates)}, needed by rule={self.rule!r}, "
                         f"stack_method={self.stack_method!r}.")

    def _oof_output(self, name, oof, y, available):
        """Out-of-fold output mapped onto ``classes_`` columns, NaN rows where missing."""
        method = self.stack_method_[name]
        present = np.unique(y)
        if method == "predict_proba":
            out = np.zeros((oof.shape[0], len(self.classes_)))
            out[:, np.searchsorted(self.classes_, present)] = oof
        elif method == "predict":
            out = (oof[:, None] == self.classes_[None, :]).astype(np.float64)
        else:
            self._check_decision_classes(name, present)
            out = oof.reshape(oof.shape[0], -1)
        return self._scatter(out, available, out.shape[1])

    def _check_decision_classes(self, name, present):
        if len(present) != len(self.classes_):
            raise ValueError(
                f"stack_method='decision_function' needs every class among the rows of each "
                f"modality, but modality {name!r} has {len(present)} of {len(self.classes_)}. "
                "Use stack_method='predict_proba'."
            )

    def _modality_output(self, name, estimator, features):
        method = self.stack_method_[name]
        if method == "predict_proba":
            out = np.zeros((features.shape[0], len(self.classes_)))
            out[:, np.searchsorted(self.classes_, estimator.classes_)] = estimator.predict_proba(features)
            return out
        if method == "predict":
            return (estimator.predict(features)[:, None] == self.classes_[None, :]).astype(np.float64)
        return estimator.decision_function(features).reshape(features.shape[0], -1)

    def _fill_value(self, name, out):
        if self.stack_method_[name] == "decision_function":
            return np.nanmean(out, axis=0)
        return self.class_prior_

    def _oof_score(self, name, oof, y):
        method = self.stack_method_[name]
        if method == "predict":
            return accuracy_score(y, oof)
        present = np.unique(y)
        if method == "predict_proba":
            predicted = present[oof.argmax(axis=1)]
        elif oof.ndim == 1:
            predicted = present[(oof > 0).astype(int)]
        else:
            predicted = present[oof.argmax(axis=1)]
        return accuracy_score(y, predicted)

    def _stack_columns(self, name):
        """Which output columns the meta-learner sees, and their labels."""
        method = self.stack_method_[name]
        if len(self.classes_) == 2:
            label = "decision" if method == "decision_function" else str(self.classes_[1])
            return [0 if method == "decision_function" else 1], [label]
        return list(range(len(self.classes_))), [str(c) for c in self.classes_]

    def _combine(self, outputs):
        """Class scores of the fixed rules; rows without any modality get the prior."""
        stacked = np.stack(list(outputs.values()))  # (n_modalities, n, n_classes)
        available = ~np.isnan(stacked).all(axis=2)
        n_available = available.sum(axis=0)[:, None]
        if self.rule == "mean":
            scores = np.nansum(stacked, axis=0) / np.maximum(n_available, 1)
        elif self.rule == "product":
            logs = np.where(available[..., None], np.log(np.clip(stacked, 1e-12, 1.0)), 0.0).sum(axis=0)
            scores = np.exp(logs - logs.max(axis=1, keepdims=True))
            scores /= scores.sum(axis=1, keepdims=True)
        else:  # vote: a fraction of a vote for the prior breaks ties
            scores = np.nansum(stacked, axis=0) + 1e-3 * self.class_prior_
        return np.where(n_available > 0, scores, self.class_prior_)

    def predict(self, X):
        """Predicted class of each row.

        Parameters
        ----------
        X : DataFrame (or 2-D array) with the columns seen in ``fit``

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        outputs, X = self._outputs(X)
        if self.rule == "stack":
            return self.final_estimator_.predict(self._meta_features(outputs, X)[0])
        return self.classes_[self._combine(outputs).argmax(axis=1)]

    @available_if(_can("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of each row (columns in ``classes_`` order).

        Not available with ``rule="vote"``, nor with a meta-learner without ``predict_proba``.
        """
        outputs, X = self._outputs(X)
        if self.rule == "stack":
            return self.final_estimator_.predict_proba(self._meta_features(outputs, X)[0])
        return self._combine(outputs)

    @available_if(_can("decision_function"))
    def decision_function(self, X):
        """The meta-learner's decision function (``rule="stack"`` only)."""
        outputs, X = self._outputs(X)
        return self.final_estimator_.decision_function(self._meta_features(outputs, X)[0])


class LateFusionRegressor(RegressorMixin, _BaseLateFusion):
    """Late fusion for regression: one model per modality, stacked by a meta-learner.

    The same as :class:`LateFusionClassifier` (see there for ``modalities``, ``cv``,
    ``passthrough``, ``handle_missing``, ``n_jobs``, ``random_state`` and how missing modalities
    are handled) with each modality's ``predict`` as its output. A modality missing in a row is
    replaced by the training mean of the target, with its ``{modality}_available`` column 0.

    Parameters
    ----------
    modalities : dict
        ``{name: (column, extractor[, estimator])}``; the default estimator is
        ``make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))`` (a wider
        range of penalties than RidgeCV's default, for features with hundreds of dimensions).
    final_estimator : regressor or None, default=None
        The meta-learner; None means ``RidgeCV()``.
    cv : int, cross-validation splitter or iterable, default=5
    passthrough : False or list of str, default=False
    rule : {"stack", "mean"}, default="stack"
        "mean": the mean prediction of the modalities a row has, without a meta-learner.
    handle_missing : bool, default=True
    n_jobs : int or None, default=None
    random_state : int, RandomState or None, default=None

    Attributes
    ----------
    estimators_ : dict of str -> Pipeline
    final_estimator_ : estimator or None
    stack_method_ : dict of str -> str
        Always "predict".
    meta_feature_names_ : list of str
    modality_report_ : pandas.DataFrame
        ``modality``, ``n_available``, ``oof_score`` (out-of-fold R²) and ``weight``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    LateFusionClassifier
    sklearn.ensemble.StackingRegressor
    """

    _rules = ("stack", "mean")
    _is_classifier = False

    def __init__(self, modalities, final_estimator=None, *, cv=5, passthrough=False,
                 rule="stack", handle_missing=True, n_jobs=None, random_state=None):
        self.modalities = modalities
        self.final_estimator = final_estimator
        self.cv = cv
        self.passthrough = passthrough
        self.rule = rule
        self.handle_missing = handle_missing
        self.n_jobs = n_jobs
        self.random_state = random_state

    @staticmethod
    def _default_estimator():
        return make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13)))

    @staticmethod
    def _default_final():
        return RidgeCV()

    def fit(self, X, y):
        """Extract each modality once, fit its estimator and the meta-learner.

        Parameters
        ----------
        X : DataFrame (or 2-D array) of shape (n_samples, n_columns)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self
        """
        y = check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=np.float64, input_name="y")
        self._target_mean = float(y.mean()) if len(y) else 0.0
        return self._fit(X, y)

    def _method_for(self, name, estimator):
        if not hasattr(estimator, "predict"):
            raise ValueError(f"The estimator of modality {name!r} has no predict method.")
        return "predict"

    def _oof_output(self, name, oof, y, available):
        return self._scatter(oof.reshape(-1, 1), available, 1)

    def _modality_output(self, name, estimator, features):
        return estimator.predict(features).reshape(-1, 1)

    def _fill_value(self, name, out):
        return np.array([self._target_mean])

    def _oof_score(self, name, oof, y):
        return r2_score(y, oof) if len(y) > 1 else np.nan

    def _stack_columns(self, name):
        return [0], ["prediction"]

    def predict(self, X):
        """Predicted target of each row.

        Parameters
        ----------
        X : DataFrame (or 2-D array) with the columns seen in ``fit``

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        outputs, X = self._outputs(X)
        if self.rule == "stack":
            return self.final_estimator_.predict(self._meta_features(outputs, X)[0])
        stacked = np.hstack(list(outputs.values()))
        n_available = (~np.isnan(stacked)).sum(axis=1)
        mean = np.nansum(stacked, axis=1) / np.maximum(n_available, 1)
        return np.where(n_available > 0, mean, self._target_mean)
