"""Late fusion: one model per modality, combined by a meta-learner (stacking) or a fixed rule.

Unlike :class:`sklearn.ensemble.StackingClassifier`, which refits every base pipeline on every
fold, each modality's features are extracted once per ``fit`` and only the cheap per-modality
estimator is cross-validated on the feature matrix; and a row missing a modality still gets a
prediction from the modalities it has.

This file holds the two estimators, their parameters and documentation; what they share (the
walk over the modalities, the fit loop, prediction) is in :mod:`mmfeat.fusion.late_base`.
"""

from __future__ import annotations

from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if

from .._sklearn_compat import StrOptions
from .calibration import CALIBRATION_METHODS
from .late_base import _BaseLateFusion, _estimator_has, is_late_fusion
from .meta import TRUST_MEASURES, meta_features
from .task import STACK_METHODS, Classification

__all__ = ["LateFusionClassifier", "LateFusionRegressor", "is_late_fusion"]


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
        they are. Without an estimator, a modality gets standardisation and
        ``LogisticRegression(C=0.1)`` (the penalty chosen on the real-data benchmark: tuning it
        inside every split cost seven times the fit for the same fused accuracy); a block of
        at most 100 features with at least 20 rows per class and at most 5,000 rows also tries
        an RBF SVM with Platt-scaled probabilities, and the one with the better out-of-fold
        log loss is kept (``modality_report_["model"]``).
    final_estimator : classifier or None, default=None
        The meta-learner. None: with 3 or more classes, and the meta-learner given only the
        modalities' probabilities (no ``trust``, ``outliers="trust"`` or ``passthrough``),
        :class:`~mmfeat.fusion.rules.LogProbabilityStacker`, one weight per modality and a
        bias per class on the log-probabilities (``k + C`` parameters, where a multinomial
        logistic regression on the same input has about ``k C²`` and overfits with many
        classes and few rows); otherwise ``LogisticRegression()``, which
        ``final_estimator=LogisticRegression()`` keeps in every case.
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
    rule_weights : {"learned", "equal"}, default="equal"
        How much each modality counts in ``rule="mean"`` and ``"product"``. "learned": one
        weight per modality, fitted by ``fit`` on the modalities' out-of-fold (calibrated)
        probabilities, those minimising the log loss of ``softmax(sum_m w_m log p_m)``
        (product) or of ``sum_m w_m p_m / sum_m w_m`` (mean), ``w_m >= 0``
        (:mod:`mmfeat.fusion.rules`): a modality that adds nothing to the others gets little
        or 0 (it is then left out). "equal": every modality the same. Both rules' weights are
        learned in every fit with either rule, so this and ``rule`` can be switched between
        mean and product with ``set_params`` without refitting. The weights show in
        ``modality_report_["weight"]`` and :meth:`modality_weights`.
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
    outliers : {"missing", "trust"} or None, default=None
        What to do with a modality that looks unlike its training rows (a corrupted upload, a
        covered camera, a noisy microphone): a model's confidence does not drop reliably on
        such an input, its novelty does. With ``outliers`` set, ``fit`` learns a novelty score
        per modality from the features it extracts anyway (:mod:`mmfeat.fusion.novelty`: the
        distance to a PCA of the training features, 0 for a typical row) and a threshold, the
        99.5th percentile of the training rows' own out-of-fold scores
        (``modality_report_["novelty_threshold"]``). "missing": at predict time, a modality's
        output in a row is drawn towards what a missing modality gets by its novelty (all of
        it kept up to half the threshold, half at the threshold, none from 1.5 times it:
        :func:`~mmfeat.fusion.novelty.kept_share`), and treated as missing where none is kept
        (the others decide; :meth:`modality_weights` gives it 0; ``mmfeat score`` writes why,
        for each row past the threshold, in its ``missing`` column); training rows are used
        as they are, so switching it off with ``set_params(outliers=None)`` gives the
        predictions of a model fitted without it.
        Needs ``handle_missing=True``. "trust": the meta-learner also sees each modality's
        novelty over its threshold (capped at 2; 0 where missing) and the modality's outputs'
        departure from the missing fill times it (``{modality}_novelty``,
        ``{modality}_{class}_x_novelty``), from out-of-fold scores, to learn how much to
        discount a strange modality (``rule="stack"`` only). Training rows are rarely strange,
        so the meta-learner also learns from a copy of each training row per modality with
        that modality's output taken from another row drawn at random and its novelty at the
        cap (no item is extracted again; ``random_state`` draws them). It discounts by degree,
        where "missing" sets aside: on the demo data "missing" protects more (see the
        robustness report in the user guide). None: neither.
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
        Per modality,
        ``Pipeline([("extractor", fitted extractor), ("estimator", fitted estimator)])``,
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
        modality; for fixed rules, the modalities' rule weights normalised to sum to 1).
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
    >>> X, y = make_classification(200, n_features=6, n_informative=6, n_redundant=0,
    ...                            random_state=0)
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
    _task_type = Classification
    _parameter_constraints: dict = {
        **_BaseLateFusion._common_constraints,
        "stack_method": [StrOptions(set(STACK_METHODS))],
        "rule": [StrOptions(set(_rules))],
        "rule_weights": [StrOptions({"learned", "equal"})],
        "calibrate": [StrOptions({"auto", *CALIBRATION_METHODS}), None],
        "trust": [StrOptions(set(TRUST_MEASURES)), None],
        "class_weight": [StrOptions({"balanced"}), dict, None],
    }

    def __init__(self, modalities, final_estimator=None, *, cv=5, stack_method="auto",
                 passthrough=False, rule="stack", rule_weights="equal", calibrate="auto",
                 trust=None, outliers=None, class_weight=None, handle_missing=True, n_jobs=None,
                 random_state=None):
        super().__init__(modalities, final_estimator, cv=cv, passthrough=passthrough, rule=rule,
                         outliers=outliers, handle_missing=handle_missing, n_jobs=n_jobs,
                         random_state=random_state)
        self.stack_method = stack_method
        self.rule_weights = rule_weights
        self.calibrate = calibrate
        self.trust = trust
        self.class_weight = class_weight

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of each row (columns in ``classes_`` order).

        Not available with ``rule="vote"``, nor with a meta-learner without ``predict_proba``.
        """
        outputs, X, novelties = self._outputs(X)
        if self.rule == "stack":
            return self.final_estimator_.predict_proba(meta_features(self, outputs, X, novelties))
        return self._task.combine(outputs)

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """The meta-learner's decision function (``rule="stack"`` only)."""
        outputs, X, novelties = self._outputs(X)
        return self.final_estimator_.decision_function(meta_features(self, outputs, X, novelties))


class LateFusionRegressor(RegressorMixin, _BaseLateFusion):
    """Late fusion for regression: one model per modality, stacked by a meta-learner.

    The same as :class:`LateFusionClassifier` (see there for ``modalities``, ``cv``,
    ``passthrough``, ``outliers``, ``handle_missing``, ``n_jobs``, ``random_state`` and how
    missing modalities are handled) with each modality's ``predict`` as its output. A modality
    missing in a row is replaced by the training mean of the target, with its
    ``{modality}_available`` column 0.

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
    outliers : {"missing", "trust"} or None, default=None
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
        ``modality``, ``n_available``, ``model``, ``oof_score`` (out-of-fold R²) and ``weight``
        (and ``novelty_threshold`` with ``outliers``).
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    LateFusionClassifier
    sklearn.ensemble.StackingRegressor
    """


    _rules = ("stack", "mean")
    _parameter_constraints: dict = {
        **_BaseLateFusion._common_constraints,
        "rule": [StrOptions(set(_rules))],
    }

    def __init__(self, modalities, final_estimator=None, *, cv=5, passthrough=False,
                 rule="stack", outliers=None, handle_missing=True, n_jobs=None,
                 random_state=None):
        super().__init__(modalities, final_estimator, cv=cv, passthrough=passthrough, rule=rule,
                         outliers=outliers, handle_missing=handle_missing, n_jobs=n_jobs,
                         random_state=random_state)
