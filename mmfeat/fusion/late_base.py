"""What late-fusion classification and regression share (:mod:`mmfeat.fusion.late` holds the two
estimators): the one walk over the modalities (:meth:`_BaseLateFusion._iter`), the fit loop
and prediction. Around it: :mod:`~mmfeat.fusion.specs` (the modalities' parameters),
:mod:`~mmfeat.fusion.task` (what differs between classification and regression),
:mod:`~mmfeat.fusion.late_plan` (each modality's folds and fit parameters),
:mod:`~mmfeat.fusion.modality_fit` (fitting and predicting one modality),
:mod:`~mmfeat.fusion.meta` (the meta-learner's input and each modality's share of a decision),
:mod:`~mmfeat.fusion.columns` (reading the input's columns) and
:mod:`~mmfeat.fusion.defaults` (the default models).
"""

from __future__ import annotations

from abc import abstractmethod
from numbers import Integral
from typing import NamedTuple

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline
from sklearn.utils.metadata_routing import UNUSED, MetadataRouter, MethodMapping
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._sklearn_compat import (
    HasMethods,
    Options,
    StrOptions,
    _check_sample_weight,
    _fit_context,
    _VisualBlock,
)
from ..validation import check_fold_count, check_target
from . import late_plan as plan
from .blocks import available_rows
from .columns import check_input, passthrough_columns, select
from .meta import meta_features, meta_layout, shares
from .modality_fit import describe, fit_modalities, predict_modality
from .novelty import with_strange_copies
from .specs import ModalityComposition, parse_modality
from .task import Regression


class Modality(NamedTuple):
    """One modality as the fusion walks it (see :meth:`_BaseLateFusion._iter`)."""

    name: str
    column: object
    extractor: object
    estimator: object
    # What fitting chooses from: ``[(label, estimator, inner_cv)]`` (the user's estimator), or
    # the task's function giving the default candidates for a block's width; None when fitted.
    candidates: object = None


def is_late_fusion(estimator) -> bool:
    """Whether ``estimator`` is a late fusion (:class:`LateFusionClassifier` or
    :class:`LateFusionRegressor`), whose ``fit`` takes ``groups``.

    Examples
    --------
    >>> from mmfeat.fusion import LateFusionClassifier, is_late_fusion
    >>> is_late_fusion(LateFusionClassifier({"a": ("a", "passthrough")}))
    True
    """
    return isinstance(estimator, _BaseLateFusion)


def _estimator_has(method):
    """For ``available_if``: whether the fused classifier offers ``method`` given its rule and
    meta-learner."""

    def check(self):
        if self.rule != "stack":
            return method == "predict_proba" and self.rule in ("mean", "product")
        return hasattr(self._shown_final(), method)

    return check


def _scatter(values, available):
    """Values of the available rows as a column block over all rows, NaN where missing."""
    out = np.full((available.shape[0], values.shape[1]), np.nan)
    out[available] = values
    return out


class _BaseLateFusion(ModalityComposition):
    """What late-fusion classification and regression share: the modality specs, the fit loop
    and prediction. What differs is the task object (``_task_type``, see
    :mod:`mmfeat.fusion.task`)."""

    _rules: tuple = ("stack",)
    _task_type = Regression
    outliers = None  # the default for models pickled before the parameter existed

    # ``groups`` is consumed here (by the inner splits) and requested by default, so that
    # ``cross_validate(..., params={"groups": g})`` and ``GridSearchCV.fit(X, y, groups=g)`` reach
    # it under metadata routing; ``sample_weight`` is routed to the estimators, not used here.
    __metadata_request__fit = {"groups": True, "sample_weight": UNUSED}

    _common_constraints: dict = {
        "modalities": [dict],
        "final_estimator": [None, HasMethods("fit")],
        "cv": ["cv_object"],
        "passthrough": ["array-like", str, None, Options(bool, {False})],
        "outliers": [StrOptions({"trust", "missing"}), None],
        "handle_missing": ["boolean"],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
    }

    @abstractmethod
    def __init__(self, modalities, final_estimator=None, *, cv=5, passthrough=False, rule="stack",
                 outliers=None, handle_missing=True, n_jobs=None, random_state=None):
        self.modalities = modalities
        self.final_estimator = final_estimator
        self.cv = cv
        self.passthrough = passthrough
        self.rule = rule
        self.outliers = outliers
        self.handle_missing = handle_missing
        self.n_jobs = n_jobs
        self.random_state = random_state

    @property
    def _task(self):
        """What differs between classification and regression, made from this fusion's
        parameters and fitted state (it keeps nothing of its own)."""
        return self._task_type(self)

    def _iter(self, fitted=False):
        """The one walk over the modalities, in order, as :class:`Modality` tuples: from
        ``modalities``, the default estimator filled in and ``candidates`` set; or, with
        ``fitted=True``, the fitted extractors and estimators of ``estimators_``."""
        if fitted:
            for name, pipeline in self.estimators_.items():
                steps = pipeline.named_steps
                yield Modality(name, self._columns[name], steps["extractor"], steps["estimator"])
            return
        for name, spec in self.modalities.items():
            column, extractor, (estimator,) = parse_modality(name, spec, 1, "estimator")
            candidates = [(None, estimator, None)]
            if estimator is None:
                estimator = self._task.default_estimator()
                candidates = self._task.default_candidates()
            yield Modality(name, column, extractor, estimator, candidates)

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
        for m in self._iter() if isinstance(self.modalities, dict) else []:
            router.add(**{m.name: m.estimator}, method_mapping=fit)
        return router.add(final_estimator=self._shown_final(), method_mapping=fit)

    def _sk_visual_block_(self):
        """The HTML repr: each modality's extractor and estimator side by side, then the
        meta-learner or the fixed rule (as ``StackingClassifier`` shows them)."""
        fitted, modalities = getattr(self, "estimators_", None), list(self._iter())
        pipelines = [fitted[m.name] if fitted else Pipeline([("extractor", m.extractor),
                                                              ("estimator", m.estimator)])
                     for m in modalities]
        parallel = _VisualBlock("parallel", pipelines, names=[m.name for m in modalities],
                                name_details=[str(m.column) for m in modalities],
                                dash_wrapped=False)
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
        task = self._task
        y = task.check_target(y)
        modalities = self._check_params()
        self._columns = {m.name: m.column for m in modalities}
        X = self._check_input(X, reset=True)
        n = X.shape[0]
        if n != len(y):
            raise ValueError(f"X has {n} rows but y has {len(y)}.")
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        task.learn_target(y, sample_weight)
        if groups is not None:
            groups = column_or_1d(groups, warn=True)
            if len(groups) != n:
                raise ValueError(f"X has {n} rows but groups has {len(groups)}.")
        else:
            check_fold_count(self.cv, y, task.is_classifier)
        modality_params, final_params = plan.fit_params(self, modalities, sample_weight,
                                                        dict(fit_params))
        # A default model gets the task's row weights (the classifier's class_weight).
        weights = {m.name: task.model_weights(sample_weight, y) if callable(m.candidates)
                   else sample_weight for m in modalities}
        for name, params in modality_params.items():
            if params is not None and weights[name] is not None:  # under metadata routing
                modality_params[name] = {**params, "sample_weight": weights[name]}
        methods = {m.name: task.method_for(m.name, m.estimator) for m in modalities}
        cv, splits = plan.plan_splits(self, y)
        learn_novelty = self.outliers is not None
        results = fit_modalities(
            [(m.name, m.column, m.extractor, m.candidates, select(X, m.column), y, task.classes,
              cv, splits, groups, methods[m.name], self.handle_missing, weights[m.name],
              modality_params[m.name], learn_novelty) for m in modalities], self.n_jobs)
        self.estimators_, self.stack_method_, self._calibration = {}, methods, {}
        # Novelty models (plain arrays) of the modalities, learned when outliers is set; the
        # meta-learner sees the novelty only with outliers="trust".
        self._novelty, self._outlier_inputs = {}, self.outliers == "trust"
        outputs, novelties, report = {}, {}, []
        for m, result in zip(modalities, results):
            extractor, estimator, available, oof, label, modality_splits, *novelty = result
            self.estimators_[m.name] = Pipeline([("extractor", extractor),
                                                 ("estimator", estimator)])
            outputs[m.name] = _scatter(oof, available)
            if learn_novelty:
                self._novelty[m.name] = novelty[0]
                novelties[m.name] = _scatter(novelty[1][:, None], available)[:, 0]
            report.append({"modality": m.name, "n_available": int(available.sum()),
                           "model": describe(label, estimator),
                           "oof_score": float(task.oof_score(oof, y[available])),
                           **task.calibrate(m.name, outputs[m.name], y, available,
                                            modality_splits, weights[m.name])})
        self._fill = {name: task.fill_value(name, out) for name, out in outputs.items()}
        self._layout, names = meta_layout(self)
        # The fixed rules' weights, from the out-of-fold probabilities (plain lists for skops).
        self._rule_weights = task.learn_rule_weights(outputs, y, task.model_weights(
            sample_weight, y))
        self.final_estimator_ = None
        self.__dict__.pop("meta_feature_names_", None)  # from an earlier fit with rule="stack"
        if self.rule == "stack":
            self.meta_feature_names_ = names
            fit_on = (meta_features(self, outputs, X, novelties), y, final_params)
            if self._outlier_inputs:  # learns to discount a strange modality from copies
                fit_on = with_strange_copies(self, outputs, X, novelties, y, final_params)
            self.final_estimator_ = clone(self._final()).fit(*fit_on[:2], **fit_on[2])
        # The fusion's weights where nothing is missing: each modality's mean share of the
        # decision over the training rows that have every modality (all rows, if none has).
        row_shares = shares(self, outputs, X, novelties)
        complete = np.column_stack([available_rows(out) for out in outputs.values()]).all(axis=1)
        mean_shares = row_shares[complete if complete.any() else slice(None)].mean(axis=0)
        for row, share in zip(report, mean_shares):
            row["weight"] = float(share)
            if learn_novelty:
                row["novelty_threshold"] = self._novelty[row["modality"]]["threshold"]
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
        outputs, X, novelties = self._outputs(X)
        if self.rule == "stack":
            return self.final_estimator_.predict(meta_features(self, outputs, X, novelties))
        return self._task.decide(self._task.combine(outputs))

    def _check_params(self):
        """The modalities as :class:`Modality` tuples (see :meth:`_iter`); the parameters'
        types and ranges are checked by ``_parameter_constraints``."""
        self._task.check_params()
        if not self.modalities:
            raise ValueError(f"Got modalities={self.modalities!r}, expected a non-empty dict "
                             "{name: (column, extractor[, estimator])}.")
        clashes = sorted(set(self.modalities) & set(self._get_param_names()))
        if clashes:
            raise ValueError(f"Modality names {clashes} are also parameter names of "
                             f"{type(self).__name__}; rename them.")
        if self.outliers == "missing" and not self.handle_missing:
            raise ValueError("outliers='missing' treats a strange modality as missing, which "
                             "needs handle_missing=True.")
        if self.outliers == "trust" and self.rule != "stack":
            raise ValueError(f"outliers='trust' gives the meta-learner each modality's novelty, "
                             f"and rule={self.rule!r} has none: use rule='stack', or "
                             "outliers='missing'.")
        if self.passthrough is not False and self.passthrough is not None and self.rule != "stack":
            raise ValueError(f"passthrough columns go to the meta-learner, and rule={self.rule!r} "
                             "has none: use rule='stack' or passthrough=False.")
        return list(self._iter())

    def _final(self):
        return self._task.default_final() if self.final_estimator is None else self.final_estimator

    def _shown_final(self):
        """The fitted meta-learner, or the one ``fit`` would fit."""
        final = getattr(self, "final_estimator_", None)
        return self._final() if final is None else final

    @property
    def modality_report_(self):
        """Per modality: rows it was available in, the model it uses, its out-of-fold score,
        its weight in the fusion, and (classification) its calibration."""
        check_is_fitted(self, "estimators_")
        columns = list(self._task.report_columns)
        if self.__dict__.get("_novelty"):
            columns.append("novelty_threshold")
        return pd.DataFrame(self._report, columns=columns)

    def _selections(self):
        """``(what, column)`` for every column selection: the modalities, then passthrough."""
        selections = [(f"Modality {name!r}", column) for name, column in self._columns.items()]
        if passthrough_columns(self.passthrough):
            selections.append(("passthrough", passthrough_columns(self.passthrough)))
        return selections

    def _check_input(self, X, reset):
        return check_input(self, X, self._selections(), reset)

    def _outputs(self, X):
        """Each modality's output on new rows, ``{name: (n, width)}`` with NaN rows where
        missing (and, with ``outliers="missing"``, where strange); ``X`` checked; and each
        modality's novelty per row where the fusion uses it (else an empty dict)."""
        check_is_fitted(self, "estimators_")
        X = self._check_input(X, reset=False)
        calibration, classes = getattr(self, "_calibration", {}), self._task.classes
        models, drop = self.__dict__.get("_novelty", {}), self.outliers == "missing"
        if drop and not models:
            raise ValueError("outliers='missing' needs the novelty of each modality, learned by "
                             "fit when outliers is set: this model was fitted with "
                             "outliers=None; fit it again.")
        use = drop or self.__dict__.get("_outlier_inputs", False)
        outputs, novelties = {}, {}
        for m in self._iter(fitted=True):
            outputs[m.name], scores = predict_modality(
                m, select(X, m.column), self.stack_method_[m.name], classes,
                calibration.get(m.name), self.handle_missing, self._fill[m.name].shape[0],
                models.get(m.name) if use else None, drop, self._fill[m.name])
            if scores is not None:
                novelties[m.name] = scores
        return outputs, X, novelties

    def modality_weights(self, X):
        """Each modality's share of the decision on each row.

        With ``rule="stack"``, a modality's share of a row is how far the meta-learner's score
        for the row's predicted class (its decision function, else its probability; for a
        regressor, the prediction) moves when the modality's block of meta-features is set to
        what a missing modality gets (the prior, and confidence 0 with ``trust``), divided by
        the sum of these moves over the modalities. For a linear meta-learner a move is the
        modality's exact additive part of the decision, ``coef @ (features - fill)``; with
        ``trust`` it follows, row by row, how sure each modality is. With a fixed rule the
        modalities a row has share by the rule's weights (equally unless
        ``rule_weights="learned"``). A modality missing in a row gets 0; a row whose decision
        no modality moves is shared equally by the modalities it has (by all when it
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
        outputs, X, novelties = self._outputs(X)
        return pd.DataFrame(shares(self, outputs, X, novelties), columns=list(self.estimators_),
                            index=X.index if hasattr(X, "index") else None)

