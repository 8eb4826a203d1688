"""What differs between late-fusion classification and regression, in one small object per task
that the estimator holds (``fusion._task``): the target, the default models, what each
modality passes on and what a missing one is filled with, the fixed rules, calibration.

A task object is made on demand from the fusion (its parameters and fitted state), and keeps
nothing of its own, so a fitted fusion pickles and saves exactly as before.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import compute_sample_weight
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, column_or_1d

from .blocks import available_rows
from .calibration import apply_calibration, calibration_scores, cross_fitted_scores, fit_calibration
from .columns import passthrough_columns
from .defaults import (
    default_classifiers,
    default_final_classifier,
    default_final_regressor,
    default_logistic,
    default_regressors,
    tuned_ridge,
    weighted,
)
from .rules import (
    PROBABILITY_RULES,
    LogProbabilityStacker,
    combine_probabilities,
    fit_rule_weights,
)

STACK_METHODS = ("auto", "predict_proba", "decision_function", "predict")


def class_columns(name, out, model_classes, classes, method):
    """A modality model's ``method`` output in the fusion's columns: one per class of
    ``classes`` for probabilities (0 for a class the model never saw) and for predicted labels
    (one-hot); a decision function's own (the model must have seen every class); one for a
    regressor (``classes`` None)."""
    if method == "predict_proba":
        full = np.zeros((len(out), len(classes)))
        full[:, np.searchsorted(classes, model_classes)] = out
        return full
    if method == "predict" and classes is not None:
        return (np.asarray(out)[:, None] == classes[None, :]).astype(np.float64)
    if method == "decision_function" and len(model_classes) != len(classes):
        raise ValueError(
            f"stack_method='decision_function' needs every class among the rows each model of "
            f"modality {name!r} is fitted on, but one saw {len(model_classes)} of {len(classes)} "
            "(a class missing from its rows or from a training split). Use "
            "stack_method='predict_proba' or fewer folds.")
    return np.asarray(out, dtype=np.float64).reshape(len(out), -1)


class Regression:
    """Numbers: each modality passes on its prediction; a missing one gets the training mean."""

    is_classifier = False
    report_columns = ("modality", "n_available", "model", "oof_score", "weight")

    def __init__(self, fusion):
        self.fusion = fusion

    @property
    def classes(self):
        return None

    def check_target(self, y):
        return check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=np.float64,
                           input_name="y")

    def learn_target(self, y, sample_weight):
        self.fusion._target_mean = float(np.average(y, weights=sample_weight))

    def check_params(self):
        pass

    def default_estimator(self):
        return tuned_ridge()

    def default_candidates(self):
        """``(n_features, y) -> [(label, estimator, inner_cv)]``: the default models a block
        chooses from (see :mod:`mmfeat.fusion.defaults`)."""
        return default_regressors

    def default_final(self):
        return default_final_regressor()

    def model_weights(self, sample_weight, y):
        """The row weights of a modality's default model."""
        return sample_weight

    def method_for(self, name, estimator):
        """The method whose output a modality's estimator passes on."""
        if not hasattr(estimator, "predict"):
            raise ValueError(f"The estimator of modality {name!r} has no predict method.")
        return "predict"

    def oof_score(self, out, y):
        """A modality's out-of-fold score, for ``modality_report_``: R²."""
        return r2_score(y, out[:, 0]) if len(y) > 1 else np.nan

    def calibrate(self, name, output, y, available, splits, sample_weight):
        """Calibration of a modality's out-of-fold output (in place); its report fields."""
        return {}

    def fill_value(self, name, out):
        """What a row missing the modality gets in place of its output."""
        return np.array([self.fusion._target_mean])

    def stack_columns(self, name):
        """Which of a modality's output columns the meta-learner sees, and their labels."""
        return [0], ["prediction"]

    def combine(self, outputs):
        """The mean prediction of the modalities a row has; the training mean without any."""
        stacked = np.hstack(list(outputs.values()))
        n_available = (~np.isnan(stacked)).sum(axis=1)
        mean = np.nansum(stacked, axis=1) / np.maximum(n_available, 1)
        return np.where(n_available > 0, mean, self.fusion._target_mean)[:, None]

    def decide(self, scores):
        """The prediction from a fixed rule's scores."""
        return scores[:, 0]

    def learn_rule_weights(self, outputs, y, sample_weight):
        """The fixed rules' learned modality weights (none for regression)."""
        return {}

    def rule_weights(self):
        """One weight per modality for the fixed rule in use, or None for equal weights."""
        return None


class Classification(Regression):
    """Class labels: each modality passes on its probabilities (or decision, or one-hot label);
    a missing one gets the class prior."""

    is_classifier = True
    report_columns = ("modality", "n_available", "model", "oof_score", "log_loss", "ece",
                      "calibration", "calibrated_log_loss", "calibrated_ece", "weight")

    @property
    def classes(self):
        return getattr(self.fusion, "classes_", None)

    def check_target(self, y):
        y = check_array(column_or_1d(y, warn=True), ensure_2d=False, dtype=None, input_name="y")
        check_classification_targets(y)
        if type_of_target(y) not in ("binary", "multiclass"):
            raise ValueError(f"Got a {type_of_target(y)} target, expected binary or multiclass "
                             "labels.")
        return y

    def learn_target(self, y, sample_weight):
        fusion = self.fusion
        fusion.classes_, codes = np.unique(y, return_inverse=True)
        counts = np.bincount(codes, weights=sample_weight, minlength=len(fusion.classes_))
        fusion.class_prior_ = counts / counts.sum()

    def check_params(self):
        fusion = self.fusion
        if fusion.trust is not None and (fusion.rule != "stack"
                                         or fusion.stack_method not in ("auto", "predict_proba")):
            raise ValueError(
                f"trust={fusion.trust!r} gives the meta-learner each modality's confidence, from "
                f"its probabilities: it needs rule='stack' and stack_method 'auto' or "
                f"'predict_proba', got rule={fusion.rule!r}, stack_method={fusion.stack_method!r}.")

    def default_estimator(self):
        return default_logistic()

    def default_candidates(self):
        return default_classifiers

    def default_final(self):
        """With 3 or more classes and only the modalities' probabilities as input, the small
        :class:`~mmfeat.fusion.rules.LogProbabilityStacker`; otherwise logistic regression."""
        fusion = self.fusion
        layout = fusion.__dict__.get("_layout")
        classes = getattr(fusion, "classes_", None)
        small = (layout is not None and classes is not None and len(classes) > 2
                 and fusion.trust is None and not fusion.__dict__.get("_outlier_inputs", False)
                 and not passthrough_columns(fusion.passthrough)
                 and all(method == "predict_proba" for method in fusion.stack_method_.values()))
        if small:
            blocks = [(start, start + len(classes)) for _, (start, _), _ in layout.values()]
            return weighted(LogProbabilityStacker(blocks, class_weight=fusion.class_weight))
        return default_final_classifier(fusion.class_weight)

    def model_weights(self, sample_weight, y):
        """``class_weight`` as row weights, times ``sample_weight``: the same as each model's
        ``class_weight`` for the logistic regression, and for the SVM it also weighs the Platt
        scaling that maps its scores to probabilities (which would otherwise undo it)."""
        if self.fusion.class_weight is None:
            return sample_weight
        weights = compute_sample_weight(self.fusion.class_weight, y)
        return weights if sample_weight is None else weights * sample_weight

    def method_for(self, name, estimator):
        fusion = self.fusion
        wanted = {"mean": "predict_proba", "product": "predict_proba", "vote": "predict"}.get(
            fusion.rule, "predict_proba" if fusion.trust is not None else fusion.stack_method)
        candidates = STACK_METHODS[1:] if wanted == "auto" else (wanted,)
        for method in candidates:
            if hasattr(estimator, method):
                return method
        raise ValueError(f"The estimator of modality {name!r} ({type(estimator).__name__}) has no "
                         f"{' or '.join(candidates)}, needed by rule={fusion.rule!r}, "
                         f"stack_method={fusion.stack_method!r}"
                         + (f", trust={fusion.trust!r}." if fusion.trust is not None else "."))

    def oof_score(self, out, y):
        """Accuracy of the out-of-fold output's class (a one-column decision: its sign)."""
        classes = self.fusion.classes_
        if out.shape[1] == 1:
            return accuracy_score(y, classes[(out[:, 0] > 0).astype(int)])
        return accuracy_score(y, classes[out.argmax(axis=1)])

    def _calibration_method(self):
        fusion = self.fusion
        if fusion.calibrate == "auto":
            return "temperature" if fusion.rule in ("mean", "product") else None
        return fusion.calibrate

    def calibrate(self, name, output, y, available, splits, sample_weight):
        """Fit the modality's calibration map on its out-of-fold probabilities and apply it to
        them in place; report log loss and ECE before and after (after: cross-fitted)."""
        fusion = self.fusion
        fields = dict.fromkeys(["log_loss", "ece", "calibrated_log_loss", "calibrated_ece"],
                               np.nan)
        fields["calibration"] = "none"
        method = self._calibration_method()
        if fusion.stack_method_[name] != "predict_proba":
            if method is not None and fusion.calibrate != "auto":
                raise ValueError(f"calibrate={fusion.calibrate!r} needs probabilities, but "
                                 f"modality {name!r} gives {fusion.stack_method_[name]}: use "
                                 "stack_method='predict_proba' or calibrate=None.")
            return fields
        proba = output[available]
        codes = np.searchsorted(fusion.classes_, y[available])
        fields["log_loss"], fields["ece"] = calibration_scores(proba, codes)
        if method is None:
            return fields
        weight = None if sample_weight is None else sample_weight[available]
        calibration = fit_calibration(method, proba, codes, weight)
        fusion._calibration[name] = calibration
        output[available] = apply_calibration(calibration, proba)
        fields["calibrated_log_loss"], fields["calibrated_ece"] = cross_fitted_scores(
            method, proba, codes, splits, weight)
        fields["calibration"] = method if method != "temperature" else \
            f"temperature (T={calibration['temperature']:.3g})"
        return fields

    def fill_value(self, name, out):
        if self.fusion.stack_method_[name] == "decision_function":
            return np.nanmean(out, axis=0)
        return self.fusion.class_prior_

    def stack_columns(self, name):
        """All classes' columns; with two classes only the second's (or the decision)."""
        classes, method = self.fusion.classes_, self.fusion.stack_method_[name]
        if len(classes) == 2:
            label = "decision" if method == "decision_function" else str(classes[1])
            return [0 if method == "decision_function" else 1], [label]
        return list(range(len(classes))), [str(c) for c in classes]

    def learn_rule_weights(self, outputs, y, sample_weight):
        """Per probability rule ("mean", "product"), one weight per modality fitted on the
        modalities' out-of-fold (calibrated) probabilities ``outputs``: both are learned, so
        that ``set_params(rule=..., rule_weights=...)`` between them needs no refit. Plain
        lists, so that skops saves them."""
        fusion = self.fusion
        if fusion.rule not in PROBABILITY_RULES:
            return {}
        stacked = np.stack(list(outputs.values()))
        available = available_rows(stacked)
        codes = np.searchsorted(fusion.classes_, y)
        return {rule: [float(w) for w in fit_rule_weights(stacked, available, codes, rule,
                                                          sample_weight)]
                for rule in PROBABILITY_RULES}

    def rule_weights(self):
        fusion = self.fusion
        if getattr(fusion, "rule_weights", "equal") != "learned":
            return None
        learned = fusion.__dict__.get("_rule_weights", {}).get(fusion.rule)
        return None if learned is None else np.asarray(learned)

    def combine(self, outputs):
        """Class scores of the fixed rules; rows without any modality get the prior."""
        prior, rule = self.fusion.class_prior_, self.fusion.rule
        stacked = np.stack(list(outputs.values()))  # (n_modalities, n, n_classes)
        available = available_rows(stacked)
        if rule in PROBABILITY_RULES:
            return combine_probabilities(stacked, available, rule, self.rule_weights(), prior)
        # vote: a fraction of a vote for the prior breaks ties
        scores = np.nansum(stacked, axis=0) + 1e-3 * prior
        return np.where(available.any(axis=0)[:, None], scores, prior)

    def decide(self, scores):
        return self.fusion.classes_[scores.argmax(axis=1)]
