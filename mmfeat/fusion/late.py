"""Late fusion: one model per modality, combined by a meta-learner (stacking) or a fixed rule.

Unlike :class:`sklearn.ensemble.StackingClassifier`, which refits every base pipeline on every
fold, each modality's features are extracted once per ``fit`` and only the cheap per-modality
estimator is cross-validated on the feature matrix; and a row missing a modality still gets a
prediction from the modalities it has.

The file reads top-down: the shared base (parameters, the fit loop, the meta-learner's input),
the classifier and the regressor. What fits one modality, and the input helpers, are in
:mod:`mmfeat.fusion.modality_fit`.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import partial
from numbers import Integral

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context, clone
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import accuracy_score, r2_score
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state, compute_sample_weight
from sklearn.utils._param_validation import HasMethods, Options, StrOptions
from sklearn.utils.metadata_routing import (
    UNUSED,
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.metaestimators import _BaseComposition, available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from ..validation import check_fold_count, check_target
from .calibration import (
    CALIBRATION_METHODS,
    apply_calibration,
    calibration_scores,
    cross_fitted_scores,
    fit_calibration,
)
from .modality_fit import (
    _as_numbers,
    _as_table,
    _available,
    _class_columns,
    _confidence,
    _default_classifiers,
    _default_regressors,
    _describe,
    _extract,
    _fit_modalities,
    _log_odds,
    _names,
    _select,
    _show_columns,
    _splits,
    _tuned_logistic,
    _tuned_ridge,
    _weight_params,
    _weighted,
)
from .specs import parse_modality

try:  # scikit-learn >= 1.7
    from sklearn.utils._repr_html.estimator import _VisualBlock
except ImportError:  # pragma: no cover
    from sklearn.utils._estimator_html_repr import _VisualBlock

STACK_METHODS = ("auto", "predict_proba", "decision_function", "predict")
TRUST_MEASURES = ("margin", "max", "entropy")
_PARTS = ("column", "extractor", "estimator")


def _estimator_has(method):
    """For ``available_if``: whether the fused classifier offers ``method`` given its rule and
    meta-learner."""

    def check(self):
        if self.rule != "stack":
            return method == "predict_proba" and self.rule in ("mean", "product")
        return hasattr(self._shown_final(), method)

    return check


class _BaseLateFusion(_BaseComposition):
    """What late-fusion classification and regression share: the modality specs, their
    parameters, the fit loop and the meta-learner's input. Subclasses call this ``__init__``
    with their own parameters set, and implement the hooks declared below, in the order
    ``fit`` calls them."""

    _rules: tuple = ("stack",)

    # ``groups`` is consumed here (by the inner splits) and requested by default, so that
    # ``cross_validate(..., params={"groups": g})`` and ``GridSearchCV.fit(X, y, groups=g)`` reach
    # it under metadata routing; ``sample_weight`` is routed to the estimators, not used here.
    __metadata_request__fit = {"groups": True, "sample_weight": UNUSED}

    _common_constraints: dict = {
        "modalities": [dict],
        "final_estimator": [None, HasMethods("fit")],
        "cv": ["cv_object"],
        "passthrough": ["array-like", str, None, Options(bool, {False})],
        "handle_missing": ["boolean"],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
    }

    @abstractmethod
    def __init__(self, modalities, final_estimator=None, *, cv=5, passthrough=False, rule="stack",
                 handle_missing=True, n_jobs=None, random_state=None):
        self.modalities = modalities
        self.final_estimator = final_estimator
        self.cv = cv
        self.passthrough = passthrough
        self.rule = rule
        self.handle_missing = handle_missing
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------------ hooks of the subclasses

    @abstractmethod
    def _default_estimator(self):
        """The per-modality estimator used when a modality names none."""

    @abstractmethod
    def _default_candidates(self):
        """A function ``(n_features, y) -> [(label, estimator, inner_cv)]``: the default models
        a block ``n_features`` wide chooses from by out-of-fold log loss (``inner_cv``: the
        parameter of its inner folds). A plain function, as it goes to joblib's workers."""

    @abstractmethod
    def _default_final(self):
        """The meta-learner used when ``final_estimator`` is None."""

    @abstractmethod
    def _check_target(self, y):
        """``y`` checked: class labels, or numbers."""

    @abstractmethod
    def _learn_target(self, y, sample_weight):
        """Record what predicting needs of ``y``: the classes and their prior, or the mean."""

    @abstractmethod
    def _method_for(self, name, estimator):
        """The method whose output a modality's estimator passes on (``predict_proba`` ...)."""

    @abstractmethod
    def _oof_score(self, out, y):
        """A modality's out-of-fold score from its output columns, for ``modality_report_``."""

    @abstractmethod
    def _fill_value(self, name, out):
        """What a row missing the modality gets in place of its output (the prior)."""

    @abstractmethod
    def _stack_columns(self, name):
        """Which of a modality's output columns the meta-learner sees, and their labels."""

    @abstractmethod
    def _combine(self, outputs):
        """A fixed rule's scores per row (per class, or the one prediction), from the outputs
        of the modalities each row has."""

    # ------------------------------------------------------------------ parameters

    def get_params(self, deep=True):
        """Parameters; with ``deep=True`` also ``{name}`` (the modality's tuple),
        ``{name}__column``, ``{name}__extractor``, ``{name}__estimator`` and their own
        parameters, e.g. ``text__extractor__batch_size`` or ``text__estimator__C``."""
        return self._get_params("_modalities_adapter", deep=deep)

    def set_params(self, **params):
        """Set parameters, including those of each modality (see :meth:`get_params`): a whole
        modality (``text=(column, extractor)``), one of its parts or a part's parameter."""
        if "modalities" in params:  # the whole dict before any of its entries
            self.modalities = params.pop("modalities")
        return self._set_params("_modalities_adapter", **params)

    @property
    def _modalities_adapter(self):
        """``modalities`` as the ``[(name, spec)]`` list that ``_BaseComposition`` reads, as
        ``ColumnTransformer._transformers`` adapts its triples; each spec a :class:`_ModalitySpec`
        whose ``set_params`` reaches its parts."""
        if not isinstance(self.modalities, dict):
            return []
        return [(name, _ModalitySpec(self, name, spec) if isinstance(spec, (tuple, list)) else spec)
                for name, spec in self.modalities.items()]

    @_modalities_adapter.setter
    def _modalities_adapter(self, value):
        self.modalities = {name: tuple(spec) if isinstance(spec, _ModalitySpec) else spec
                           for name, spec in value}

    def get_metadata_routing(self):
        """How ``fit`` routes metadata under ``sklearn.set_config(enable_metadata_routing=True)``.

        ``groups`` is used by the inner out-of-fold splits; any other metadata (e.g.
        ``sample_weight``) goes to the modality estimators and the meta-learner that request it.

        Returns
        -------
        MetadataRouter
        """
        router = MetadataRouter(owner=self).add_self_request(self)
        fit = MethodMapping().add(caller="fit", callee="fit")
        for name, _, _, estimator in self._specs() if isinstance(self.modalities, dict) else []:
            router.add(**{name: estimator}, method_mapping=fit)
        return router.add(final_estimator=self._shown_final(), method_mapping=fit)

    def _sk_visual_block_(self):
        """The HTML repr: each modality's extractor and estimator side by side, then the
        meta-learner or the fixed rule (as ``StackingClassifier`` shows them)."""
        fitted, specs = getattr(self, "estimators_", None), self._specs()
        pipelines = [fitted[name] if fitted else Pipeline([("extractor", extractor),
                                                            ("estimator", estimator)])
                     for name, _, extractor, estimator in specs]
        parallel = _VisualBlock("parallel", pipelines, names=[spec[0] for spec in specs],
                                name_details=[str(spec[1]) for spec in specs], dash_wrapped=False)
        top = _VisualBlock("single", f"rule={self.rule!r}", names=f"rule={self.rule!r}")
        if self.rule == "stack":
            top = _VisualBlock("parallel", [self._shown_final()], names=["final_estimator"],
                               dash_wrapped=False)
        return _VisualBlock("serial", (parallel, top), dash_wrapped=False)

    # ------------------------------------------------------------------ fitting and predicting

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, *, sample_weight=None, groups=None, **fit_params):
        """Extract each modality once, fit its estimator and the meta-learner.

        Parameters
        ----------
        X : DataFrame (or 2-D array) of shape (n_samples, n_columns)
            Any other columns (an id, the label) are ignored, and need not be there at predict.
        y : array-like of shape (n_samples,)
            Class labels (binary or multiclass) for the classifier, numbers for the regressor.
        sample_weight : array-like of shape (n_samples,) or None, default=None
            Passed to every modality's estimator (a ``Pipeline``'s last step) and to the
            meta-learner; each must accept it. Under metadata routing it goes to those that
            request it.
        groups : array-like of shape (n_samples,) or None, default=None
            Group of each row (a speaker, a patient, a session). The out-of-fold predictions
            then never train and predict on the same group: an int ``cv`` becomes stratified
            group k-fold, and a splitter gets the groups. Requested by default under metadata
            routing.
        **fit_params : dict
            Further metadata for the estimators; only with metadata routing enabled.

        Returns
        -------
        self
        """
        check_target(y)
        y = self._check_target(y)
        specs = self._check_params()
        self._columns = {name: column for name, column, *_ in specs}
        X = self._check_input(X, reset=True)
        n = X.shape[0]
        if n != len(y):
            raise ValueError(f"X has {n} rows but y has {len(y)}.")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        self._learn_target(y, sample_weight)
        if groups is not None:
            groups = column_or_1d(groups, warn=True)
            if len(groups) != n:
                raise ValueError(f"X has {n} rows but groups has {len(groups)}.")
        else:
            check_fold_count(self.cv, y, self._is_classifier)
        modality_params, final_params = self._fit_params(specs, sample_weight, dict(fit_params))
        weights = {name: self._default_model_weights(sample_weight, y) if callable(candidates)
                   else sample_weight for name, *_, candidates in specs}
        for name, params in modality_params.items():
            if params is not None and weights[name] is not None:  # under metadata routing
                modality_params[name] = {**params, "sample_weight": weights[name]}
        methods = {name: self._method_for(name, estimator) for name, _, _, estimator, _ in specs}
        cv, splits = self._plan_splits(y)
        classes = getattr(self, "classes_", None)
        results = _fit_modalities(
            [(name, column, extractor, candidates, _select(X, column), y, classes, cv, splits,
              groups, methods[name], self.handle_missing, weights[name], modality_params[name])
             for name, column, extractor, _, candidates in specs], self.n_jobs)
        self.estimators_, self.stack_method_, self._calibration = {}, methods, {}
        outputs, report = {}, []
        for (name, *_), result in zip(specs, results):
            extractor, estimator, available, oof, label, modality_splits = result
            self.estimators_[name] = Pipeline([("extractor", extractor), ("estimator", estimator)])
            outputs[name] = self._scatter(oof, available, oof.shape[1])
            report.append({"modality": name, "n_available": int(available.sum()),
                           "model": _describe(label, estimator),
                           "oof_score": float(self._oof_score(oof, y[available])),
                           **self._calibrate(name, outputs[name], y, available, modality_splits,
                                             weights[name])})
        self._fill = {name: self._fill_value(name, out) for name, out in outputs.items()}
        self._layout, names = self._meta_layout()
        self.final_estimator_ = None
        self.__dict__.pop("meta_feature_names_", None)  # from an earlier fit with rule="stack"
        if self.rule == "stack":
            self.meta_feature_names_ = names
            self.final_estimator_ = clone(self._final()).fit(self._meta_features(outputs, X), y,
                                                            **final_params)
        # The fusion's weights where nothing is missing: each modality's mean share of the
        # decision over the training rows that have every modality (all rows, if none has).
        shares = self._shares(outputs, X)
        complete = ~np.isnan(np.hstack(list(outputs.values()))).any(axis=1)
        mean_shares = shares[complete if complete.any() else slice(None)].mean(axis=0)
        for row, share in zip(report, mean_shares):
            row["weight"] = float(share)
        self._report = report  # plain values, so that skops can save the fitted model
        return self

    def predict(self, X):
        """Predicted class (classifier) or target (regressor) of each row.

        Parameters
        ----------
        X : DataFrame (or 2-D array) with the columns seen in ``fit``

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        outputs, X = self._outputs(X)
        if self.rule == "stack":
            return self.final_estimator_.predict(self._meta_features(outputs, X))
        scores = self._combine(outputs)
        return self.classes_[scores.argmax(axis=1)] if self._is_classifier else scores[:, 0]

    def _check_params(self):
        """The modality specs as ``(name, column, extractor, estimator, candidates)`` (see
        :meth:`_specs`); the parameters' types and ranges are checked by
        ``_parameter_constraints``."""
        if not self.modalities:
            raise ValueError(f"Got modalities={self.modalities!r}, expected a non-empty dict "
                             "{name: (column, extractor[, estimator])}.")
        clashes = sorted(set(self.modalities) & set(self._get_param_names()))
        if clashes:
            raise ValueError(f"Modality names {clashes} are also parameter names of "
                             f"{type(self).__name__}; rename them.")
        if self.passthrough is not False and self.passthrough is not None and self.rule != "stack":
            raise ValueError(f"passthrough columns go to the meta-learner, and rule={self.rule!r} "
                             "has none: use rule='stack' or passthrough=False.")
        return self._specs(with_candidates=True)

    def _specs(self, with_candidates=False):
        """``(name, column, extractor, estimator)`` per modality, the default estimator filled
        in; ``with_candidates`` adds what :func:`_fit_modality` chooses from: the user's
        estimator, or the function giving the default candidates for a block's width."""
        specs = []
        for name, spec in self.modalities.items():
            column, extractor, (estimator,) = parse_modality(name, spec, 1, "estimator")
            candidates = [(None, estimator, None)]
            if estimator is None:
                estimator, candidates = self._default_estimator(), self._default_candidates()
            specs.append((name, column, extractor, estimator)
                         + ((candidates,) if with_candidates else ()))
        return specs

    def _fit_params(self, specs, sample_weight, fit_params):
        """Fit parameters per modality estimator and for the meta-learner under scikit-learn's
        metadata routing (None per modality when it is off: ``sample_weight`` then goes to
        each estimator that accepts it)."""
        if _routing_enabled():
            if sample_weight is not None:
                fit_params["sample_weight"] = sample_weight
            routed = process_routing(self, "fit", **fit_params)
            return ({name: routed[name].fit for name, *_ in specs},
                    routed.final_estimator.fit)
        _raise_for_params(fit_params, self, "fit")
        final = {}
        if self.rule == "stack":
            final = _weight_params(self._final(), sample_weight, "the final estimator")
        return dict.fromkeys([name for name, *_ in specs]), final

    def _plan_splits(self, y):
        """``(cv, splits)``: a function giving the splits of a modality's rows (an int ``cv`` or a
        splitter, the same folds for every modality), or the splits given as row indices."""
        if not (isinstance(self.cv, Integral) or hasattr(self.cv, "split")):
            return None, _splits(self.cv, self._is_classifier, None, y, None)
        seed = self.random_state
        if seed is not None and not isinstance(seed, Integral):
            seed = check_random_state(seed).randint(np.iinfo(np.int32).max)  # same folds for all
        return partial(_splits, self.cv, self._is_classifier, seed), None

    def _final(self):
        return self._default_final() if self.final_estimator is None else self.final_estimator

    def _shown_final(self):
        """The fitted meta-learner, or the one ``fit`` would fit."""
        final = getattr(self, "final_estimator_", None)
        return self._final() if final is None else final

    def _calibrate(self, name, output, y, available, splits, sample_weight):
        """Calibration of a modality's out-of-fold output (in place); its report fields."""
        return {}

    def _default_model_weights(self, sample_weight, y):
        """The row weights of a modality's default model: ``sample_weight`` (the classifier
        multiplies in its ``class_weight``)."""
        return sample_weight

    _report_columns = ("modality", "n_available", "model", "oof_score", "weight")

    @property
    def modality_report_(self):
        """Per modality: rows it was available in, the model it uses, its out-of-fold score,
        its weight in the fusion, and (classification) its calibration."""
        check_is_fitted(self, "estimators_")
        return pd.DataFrame(self._report, columns=list(self._report_columns))

    # ------------------------------------------------------------------ columns of the input

    def _passthrough_list(self):
        if self.passthrough is None or self.passthrough is False:
            return []
        return [self.passthrough] if isinstance(self.passthrough, str) else list(self.passthrough)

    def _selections(self):
        """``(what, column)`` for every column selection: the modalities, then passthrough."""
        selections = [(f"Modality {name!r}", column) for name, column in self._columns.items()]
        if self._passthrough_list():
            selections.append(("passthrough", self._passthrough_list()))
        return selections

    def _used_columns(self):
        return [c for _, column in self._selections() for c in (_names(column) or [])]

    def _check_input(self, X, reset):
        """Check ``X`` and record (``reset=True``) or compare its columns, as ``ColumnTransformer``
        does: when every selection names its columns and ``X`` is a DataFrame, only those columns
        must be there, in any order, beside any others (an id, the label); a selection by position,
        mask or callable needs the columns of ``fit`` in the same order."""
        X = _as_table(X)
        if reset:
            X = validate_data(self, X, skip_check_array=True)
            self._by_name = hasattr(X, "columns") and all(
                _names(column) is not None for _, column in self._selections())
        # Models saved before columns were read by name check every column, as they did.
        elif not (getattr(self, "_by_name", False) and hasattr(X, "columns")):
            if getattr(self, "_by_name", False):
                raise ValueError(
                    f"{type(self).__name__} was fitted on a DataFrame and reads its columns by "
                    f"name; got a {type(X).__name__}: pass a DataFrame with the columns "
                    f"{_show_columns(self._used_columns())}.")
            X = validate_data(self, X, skip_check_array=True, reset=False)
        for what, column in self._selections():
            names = _names(column)
            if names is None:
                continue
            if not hasattr(X, "columns"):
                raise ValueError(f"{what} reads column(s) {names} by name, which needs a "
                                 f"DataFrame; got a {type(X).__name__}.")
            missing = [c for c in names if c not in X.columns]
            if missing:
                raise ValueError(f"{what} reads column(s) {missing}, which the input does not "
                                 f"have; its columns are {_show_columns(X.columns)}.")
        if X.shape[0] < 1:
            raise ValueError(f"Found 0 samples (shape={X.shape}), while at least 1 is required.")
        return X

    # ------------------------------------------------------------------ the meta-learner's input

    def _outputs(self, X):
        """Each modality's output on new rows: {name: (n, width) with NaN rows where missing}."""
        check_is_fitted(self, "estimators_")
        X = self._check_input(X, reset=False)
        outputs = {}
        for name, pipeline in self.estimators_.items():
            column = self._columns[name]
            features = _extract(name, column, pipeline.named_steps["extractor"], _select(X, column))
            available = _available(features, self.handle_missing)
            out = None
            if available.any():
                out = self._modality_output(name, pipeline.named_steps["estimator"],
                                            features[available])
            outputs[name] = self._scatter(out, available, self._fill[name].shape[0])
        return outputs, X

    def _modality_output(self, name, estimator, features):
        """A fitted modality's output on rows that have it, in the columns of its out-of-fold
        output (and calibrated as it was)."""
        method = self.stack_method_[name]
        out = _class_columns(name, getattr(estimator, method)(features),
                             getattr(estimator, "classes_", None), getattr(self, "classes_", None),
                             method)
        return apply_calibration(getattr(self, "_calibration", {}).get(name), out)

    @staticmethod
    def _scatter(values, available, width):
        out = np.full((available.shape[0], width), np.nan)
        if values is not None:
            out[available] = values
        return out

    def _meta_layout(self):
        """Where each modality's columns lie in the meta-learner's input: ``({name: (the output
        columns it keeps, (start, stop) of its block, trust)}, column names)``, recorded by
        ``fit``. A modality's block is its evidence: its kept outputs and, with ``trust``, its
        confidence and the outputs' log-odds times it. The ``{name}_available`` column after
        it (with ``handle_missing``) says whether the row has it; passthrough columns come last."""
        trust = getattr(self, "trust", None)
        layout, names = {}, []
        for name in self.estimators_:
            columns, labels = self._stack_columns(name)
            start = len(names)
            names += [f"{name}_{label}" for label in labels]
            if trust is not None:
                names += [f"{name}_trust"] + [f"{name}_{label}_x_trust" for label in labels]
            layout[name] = (columns, (start, len(names)), trust)
            if self.handle_missing:
                names.append(f"{name}_available")
        return layout, names + [str(c) for c in self._passthrough_list()]

    def _meta_features(self, outputs, X):
        """The meta-learner's input: per modality its output (missing rows filled), with
        ``trust`` its confidence (0 where missing) and the output's log-odds times it, and with
        ``handle_missing`` a 0/1 availability column; then the passthrough columns."""
        layout = self.__dict__.get("_layout") or self._meta_layout()[0]  # saved by an older mmfeat
        blocks = []
        for name, out in outputs.items():
            columns, _, trust = layout[name]
            available = ~np.isnan(out).all(axis=1)
            filled = np.where(available[:, None], out, self._fill[name])
            blocks.append(filled[:, columns])
            if trust is not None:
                confidence = np.zeros((len(out), 1))
                confidence[available, 0] = _confidence(out[available], trust)
                blocks += [confidence, confidence * _log_odds(filled)[:, columns]]
            if self.handle_missing:
                blocks.append(available[:, None].astype(np.float64))
        columns = self._passthrough_list()
        if columns:
            blocks.append(_as_numbers(_select(X, columns), "passthrough").astype(np.float64))
        return np.hstack(blocks)

    # ------------------------------------------------------------------ each modality's weight

    def modality_weights(self, X):
        """Each modality's share of the decision on each row.

        With ``rule="stack"``, a modality's share of a row is how far the meta-learner's score
        for the row's predicted class (its decision function, else its probability; for a
        regressor, the prediction) moves when the modality's block of meta-features is set to
        what a missing modality gets (the prior, and confidence 0 with ``trust``), divided by
        the sum of these moves over the modalities. For a linear meta-learner a move is the
        modality's exact additive part of the decision, ``coef @ (features - fill)``; with
        ``trust`` it follows, row by row, how sure each modality is. With a fixed rule the
        modalities a row has share equally. A modality missing in a row gets 0; a row whose
        decision no modality moves is shared equally by the modalities it has (by all when it
        has none). ``modality_report_["weight"]`` is the mean share over the training rows
        (out of fold) that have every modality.

        Parameters
        ----------
        X : DataFrame (or 2-D array) with the columns seen in ``fit``

        Returns
        -------
        pandas.DataFrame of shape (n_samples, n_modalities)
            One column per modality, rows summing to 1, with ``X``'s index when ``X`` is a
            DataFrame.
        """
        outputs, X = self._outputs(X)
        return pd.DataFrame(self._shares(outputs, X), columns=list(self.estimators_),
                            index=X.index if hasattr(X, "index") else None)

    def _shares(self, outputs, X):
        """:meth:`modality_weights` as an array, from the modalities' outputs on the rows."""
        available = np.column_stack([~np.isnan(out).all(axis=1) for out in outputs.values()])
        moves = available.astype(np.float64)  # the fixed rules: equal shares
        if self.final_estimator_ is not None:
            meta = self._meta_features(outputs, X)
            missing = self._meta_features({name: np.full_like(out, np.nan)
                                           for name, out in outputs.items()}, X)
            scores = self._final_scores(meta)
            rows, predicted = np.arange(len(meta)), scores.argmax(axis=1)
            layout = self.__dict__.get("_layout") or self._meta_layout()[0]
            for m, (_, (start, stop), _) in enumerate(layout.values()):
                occluded = meta.copy()
                occluded[:, start:stop] = missing[:, start:stop]
                moves[:, m] = np.abs(scores - self._final_scores(occluded))[rows, predicted]
        even = np.where(available.any(axis=1, keepdims=True), available, True)
        moves = np.where(moves.sum(axis=1, keepdims=True) > 0, moves, even)
        return moves / moves.sum(axis=1, keepdims=True)

    def _final_scores(self, meta):
        """The meta-learner's scores: per class (one column for a binary decision function or
        a regression), from its decision function, else its probabilities or predictions."""
        final = self.final_estimator_
        for method in ("decision_function", "predict_proba"):
            if hasattr(final, method):
                return np.asarray(getattr(final, method)(meta), dtype=np.float64).reshape(len(meta), -1)
        return _class_columns("final_estimator", final.predict(meta), None,
                              getattr(self, "classes_", None), "predict")


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
        also work). When every selection (and ``passthrough``) names its columns, only those
        columns are checked at predict time, in any order, beside any others: a model fitted
        on a frame with ``id`` and ``label`` columns predicts on a frame without them. Selections
        by position need the columns of ``fit`` in the same order. ``extractor`` is an mmfeat
        Extractor, a scikit-learn transformer, or ``"passthrough"`` for numeric columns used as
        they are. Without an estimator, a modality gets one that tunes itself: standardisation
        and ``LogisticRegressionCV`` choosing ``C`` among 1e-4 ... 10 by inner 3-fold log loss
        (by group with ``groups``); a block of at most 100 features with at least 20 rows per
        class and at most 5,000 rows also tries an RBF SVM with Platt-scaled probabilities,
        and the one with the better out-of-fold log loss is kept (``modality_report_["model"]``).
    final_estimator : classifier or None, default=None
        The meta-learner; None means ``LogisticRegression()``.
    cv : int, cross-validation splitter or iterable, default=5
        How out-of-fold predictions are made: stratified k-fold for an int, as in scikit-learn,
        or stratified group k-fold when ``fit`` is given ``groups`` (at most one fold per
        group). A splitter is given the groups. Each modality is split over the rows it is
        available in.
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
    calibrate : {"auto", "temperature", "sigmoid", "isotonic"} or None, default="auto"
        Calibrate each modality's probabilities on its out-of-fold predictions (no extra
        extraction) before they are combined: "temperature" scales the log-probabilities by
        one fitted number, "sigmoid" and "isotonic" map each class one-vs-rest. "auto" is
        "temperature" for ``rule="mean"`` and ``"product"`` (an over-confident modality would
        otherwise outvote the others) and None for stacking (the meta-learner learns its own
        scale) and voting.
    trust : {"margin", "max", "entropy"} or None, default=None
        Per-sample trust, the classical analogue of attention weights (``rule="stack"`` only,
        from each modality's probabilities; another rule or ``stack_method`` raises an error).
        Next to each modality's probabilities the meta-learner then sees how sure the
        modality's model is on the row -- the gap between its two most probable classes
        ("margin"), its highest probability ("max") or one minus its normalised entropy
        ("entropy"), each from 0 (all classes equally likely) to 1 (certain), and 0 where the
        modality is missing -- and the modality's log-odds times that confidence
        (``{modality}_trust``, ``{modality}_{class}_x_trust``). A linear meta-learner weighs a
        modality by ``a + b * confidence`` on each row, so it can learn to follow a modality
        where it is sure and discount it where it is not (an image that is sometimes blurred,
        a recording that is sometimes noisy). :meth:`modality_weights` shows the weights it
        learned, per row. None: plain stacking.
    class_weight : "balanced", dict or None, default=None
        Class weights for the default models, so that a rare class counts in training as much
        as a frequent one ("balanced": each class inversely to its frequency in ``y``; a dict:
        label -> weight): better balanced accuracy and macro-F1, at some cost in accuracy. Each
        modality's default model gets them as row weights (times ``sample_weight``), for its
        fit, its choice between the logistic regression and the SVM, the SVM's Platt scaling
        and the modality's calibration, so that its probabilities are those of balanced
        classes; the default meta-learner gets ``LogisticRegression(class_weight=...)``.
        Estimators you give (a modality's or ``final_estimator``) are left as they are: set
        their own ``class_weight``.
    handle_missing : bool, default=True
        Let rows miss modalities (see Notes). If False, extractors keep their own ``on_error``
        (an mmfeat extractor then raises on a missing item) and this is plain stacking.
    n_jobs : int or None, default=None
        Modalities fitted in parallel (joblib semantics).
    random_state : int, RandomState or None, default=None
        When ``cv`` is an int, shuffle the folds with this seed (the same folds for every
        modality). None keeps scikit-learn's unshuffled folds.

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
        ``model`` (the estimator, and what a default one chose, e.g. ``logistic (C=0.01)``),
        ``oof_score`` (out-of-fold accuracy on those rows), ``log_loss`` and ``ece`` (expected
        calibration error) of its out-of-fold probabilities, ``calibration`` (e.g.
        ``temperature (T=1.8)`` or ``none``), ``calibrated_log_loss`` and ``calibrated_ece``
        (each row calibrated by a map fitted without it), and ``weight`` (its mean share of the
        decision, see :meth:`modality_weights`, over the training rows that have every
        modality; equal shares for fixed rules).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Every column of the frame given to ``fit`` (as ``ColumnTransformer`` records them),
        when fitted on a DataFrame.

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
    _parameter_constraints: dict = {
        **_BaseLateFusion._common_constraints,
        "stack_method": [StrOptions(set(STACK_METHODS))],
        "rule": [StrOptions(set(_rules))],
        "calibrate": [StrOptions({"auto", *CALIBRATION_METHODS}), None],
        "trust": [StrOptions(set(TRUST_MEASURES)), None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, modalities, final_estimator=None, *, cv=5, stack_method="auto",
                 passthrough=False, rule="stack", calibrate="auto", trust=None,
                 class_weight=None, handle_missing=True, n_jobs=None, random_state=None):
        super().__init__(modalities, final_estimator, cv=cv, passthrough=passthrough, rule=rule,
                         handle_missing=handle_missing, n_jobs=n_jobs, random_state=random_state)
        self.stack_method = stack_method
        self.calibrate = calibrate
        self.trust = trust
        self.class_weight = class_weight

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of each row (columns in ``classes_`` order).

        Not available with ``rule="vote"``, nor with a meta-learner without ``predict_proba``.
        """
        outputs, X = self._outputs(X)
        if self.rule == "stack":
            return self.final_estimator_.predict_proba(self._meta_features(outputs, X))
        return self._combine(outputs)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """The meta-learner's decision function (``rule="stack"`` only)."""
        outputs, X = self._outputs(X)
        return self.final_estimator_.decision_function(self._meta_features(outputs, X))

    # ------------------------------------------------------------------ hooks

    def _check_target(self, y):
        y = check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=None, input_name="y")
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"Got a {type_of_target(y)} target, expected binary or multiclass labels.")
        return y

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

    def _default_estimator(self):
        return _tuned_logistic()

    def _default_candidates(self):
        return _default_classifiers

    def _default_final(self):
        return _weighted(LogisticRegression(class_weight=self.class_weight))

    def _default_model_weights(self, sample_weight, y):
        """``class_weight`` as row weights, times ``sample_weight``: the same as each model's
        ``class_weight`` for the logistic regression, and for the SVM it also weighs the Platt
        scaling that maps its scores to probabilities (which would otherwise undo it)."""
        if self.class_weight is None:
            return sample_weight
        weights = compute_sample_weight(self.class_weight, y)
        return weights if sample_weight is None else weights * sample_weight

    def _learn_target(self, y, sample_weight):
        self.classes_, codes = np.unique(y, return_inverse=True)
        counts = np.bincount(codes, weights=sample_weight, minlength=len(self.classes_))
        self.class_prior_ = counts / counts.sum()

    def _check_params(self):
        if self.trust is not None and (self.rule != "stack"
                                       or self.stack_method not in ("auto", "predict_proba")):
            raise ValueError(
                f"trust={self.trust!r} gives the meta-learner each modality's confidence, from "
                f"its probabilities: it needs rule='stack' and stack_method 'auto' or "
                f"'predict_proba', got rule={self.rule!r}, stack_method={self.stack_method!r}.")
        return super()._check_params()

    def _method_for(self, name, estimator):
        wanted = {"mean": "predict_proba", "product": "predict_proba", "vote": "predict"}.get(
            self.rule, "predict_proba" if self.trust is not None else self.stack_method)
        candidates = STACK_METHODS[1:] if wanted == "auto" else (wanted,)
        for method in candidates:
            if hasattr(estimator, method):
                return method
        raise ValueError(f"The estimator of modality {name!r} ({type(estimator).__name__}) has no "
                         f"{' or '.join(candidates)}, needed by rule={self.rule!r}, "
                         f"stack_method={self.stack_method!r}"
                         + (f", trust={self.trust!r}." if self.trust is not None else "."))

    def _oof_score(self, out, y):
        """Accuracy of the out-of-fold output's class (a one-column decision: its sign)."""
        if out.shape[1] == 1:
            return accuracy_score(y, self.classes_[(out[:, 0] > 0).astype(int)])
        return accuracy_score(y, self.classes_[out.argmax(axis=1)])

    def _calibration_method(self):
        if self.calibrate == "auto":
            return "temperature" if self.rule in ("mean", "product") else None
        return self.calibrate

    def _calibrate(self, name, output, y, available, splits, sample_weight):
        """Fit the modality's calibration map on its out-of-fold probabilities and apply it to
        them in place; report log loss and ECE before and after (after: cross-fitted)."""
        fields = dict.fromkeys(["log_loss", "ece", "calibrated_log_loss", "calibrated_ece"],
                               np.nan)
        fields["calibration"] = "none"
        method = self._calibration_method()
        if self.stack_method_[name] != "predict_proba":
            if method is not None and self.calibrate != "auto":
                raise ValueError(f"calibrate={self.calibrate!r} needs probabilities, but modality "
                                 f"{name!r} gives {self.stack_method_[name]}: use "
                                 "stack_method='predict_proba' or calibrate=None.")
            return fields
        proba = output[available]
        codes = np.searchsorted(self.classes_, y[available])
        fields["log_loss"], fields["ece"] = calibration_scores(proba, codes)
        if method is None:
            return fields
        weight = None if sample_weight is None else sample_weight[available]
        calibration = fit_calibration(method, proba, codes, weight)
        self._calibration[name] = calibration
        output[available] = apply_calibration(calibration, proba)
        fields["calibrated_log_loss"], fields["calibrated_ece"] = cross_fitted_scores(
            method, proba, codes, splits, weight)
        fields["calibration"] = method if method != "temperature" else \
            f"temperature (T={calibration['temperature']:.3g})"
        return fields

    _report_columns = ("modality", "n_available", "model", "oof_score", "log_loss", "ece",
                       "calibration", "calibrated_log_loss", "calibrated_ece", "weight")

    def _fill_value(self, name, out):
        if self.stack_method_[name] == "decision_function":
            return np.nanmean(out, axis=0)
        return self.class_prior_

    def _stack_columns(self, name):
        """All classes' columns; with two classes only the second's (or the decision)."""
        method = self.stack_method_[name]
        if len(self.classes_) == 2:
            label = "decision" if method == "decision_function" else str(self.classes_[1])
            return [0 if method == "decision_function" else 1], [label]
        return list(range(len(self.classes_))), [str(c) for c in self.classes_]


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
        ``modality``, ``n_available``, ``model``, ``oof_score`` (out-of-fold R²) and ``weight``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    LateFusionClassifier
    sklearn.ensemble.StackingRegressor
    """

    _rules = ("stack", "mean")
    _is_classifier = False
    _parameter_constraints: dict = {
        **_BaseLateFusion._common_constraints,
        "rule": [StrOptions(set(_rules))],
    }

    def __init__(self, modalities, final_estimator=None, *, cv=5, passthrough=False,
                 rule="stack", handle_missing=True, n_jobs=None, random_state=None):
        super().__init__(modalities, final_estimator, cv=cv, passthrough=passthrough, rule=rule,
                         handle_missing=handle_missing, n_jobs=n_jobs, random_state=random_state)

    # ------------------------------------------------------------------ hooks

    def _check_target(self, y):
        return check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=np.float64,
                           input_name="y")

    def _combine(self, outputs):
        """The mean prediction of the modalities a row has; the training mean without any."""
        stacked = np.hstack(list(outputs.values()))
        n_available = (~np.isnan(stacked)).sum(axis=1)
        mean = np.nansum(stacked, axis=1) / np.maximum(n_available, 1)
        return np.where(n_available > 0, mean, self._target_mean)[:, None]

    def _default_estimator(self):
        return _tuned_ridge()

    def _default_candidates(self):
        return _default_regressors

    def _default_final(self):
        return _weighted(RidgeCV())

    def _learn_target(self, y, sample_weight):
        self._target_mean = float(np.average(y, weights=sample_weight))

    def _method_for(self, name, estimator):
        if not hasattr(estimator, "predict"):
            raise ValueError(f"The estimator of modality {name!r} has no predict method.")
        return "predict"

    def _oof_score(self, out, y):
        return r2_score(y, out[:, 0]) if len(y) > 1 else np.nan

    def _fill_value(self, name, out):
        return np.array([self._target_mean])

    def _stack_columns(self, name):
        return [0], ["prediction"]


class _ModalitySpec(tuple):
    """A modality's ``(column, extractor[, estimator])`` as ``get_params`` lists it: the tuple
    itself, whose ``get_params``/``set_params`` reach its parts (``text__column``,
    ``text__estimator``) and their parameters (``text__extractor__batch_size``). A change is
    written back to the fusion's ``modalities`` as a plain tuple."""

    def __new__(cls, fusion, name, spec):
        self = super().__new__(cls, spec)
        self._fusion, self._name = fusion, name
        return self

    def __reduce__(self):
        # A copy (scikit-learn's checks deep-copy and hash the parameters) is detached from the
        # fusion, and pickles the same as the original.
        return _ModalitySpec, (None, self._name, tuple(self))

    def _parts(self):
        return dict(zip(_PARTS, [*self, None, None]))

    def get_params(self, deep=True):
        params = self._parts()
        for part, value in list(params.items()):
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                params.update({f"{part}__{key}": sub
                               for key, sub in value.get_params(deep=True).items()})
        return params

    def set_params(self, **params):
        name, parts = self._name, self._parts()
        for key in sorted(params, key=lambda k: k.count("__")):  # whole parts before their own
            part, _, rest = key.partition("__")
            if part not in parts:
                raise ValueError(
                    f"Invalid parameter '{name}__{key}' for {type(self._fusion).__name__}: "
                    f"expected {name}__column, {name}__extractor or {name}__estimator.")
            if not rest:
                parts[part] = params[key]
            elif hasattr(parts[part], "set_params"):
                parts[part].set_params(**{rest: params[key]})
            else:
                raise ValueError(
                    f"Cannot set '{name}__{key}': modality {name!r} has no {part} of its own to "
                    f"set it on (give one, e.g. {name}=(column, extractor, LogisticRegression())).")
        spec = tuple(parts.values())
        self._fusion._replace_estimator("_modalities_adapter", name,
                                        spec if spec[2] is not None else spec[:2])
        return self


# ---------------------------------------------------------------------- fitting one modality
