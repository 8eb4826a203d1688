"""The models a comparison fits: each modality alone, early fusion, late fusion."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import RidgeCV

from ..fusion import LateFusionClassifier, LateFusionRegressor, make_early_fusion
from ..fusion.tuning import TunedLogisticRegression

#: Kinds of candidate, in the order the table lists them.
KINDS = ("single", "early", "late")


def _auto_regressor():
    # The regression counterpart of auto_classifier: the penalty chosen by inner validation.
    return RidgeCV(alphas=np.logspace(-3, 4, 15))


def _specs(modalities):
    """Fresh ``{name: (column, extractor)}``: every candidate gets its own clones (same
    parameters, so the same cache keys: features are computed once for all of them)."""
    return {name: (column, clone(extractor)) for name, (column, extractor) in modalities.items()}


def _early(modalities, task, class_weight, **options):
    if task == "classification":
        estimator = TunedLogisticRegression(class_weight=class_weight)
    else:
        estimator = _auto_regressor()
    return make_early_fusion(**_specs(modalities), estimator=estimator, handle_missing=True,
                             **options)


def _late(modalities, task, class_weight, random_state, **options):
    if task == "regression":
        return LateFusionRegressor(_specs(modalities), random_state=random_state, **options)
    model = LateFusionClassifier(_specs(modalities), random_state=random_state, **options)
    if "class_weight" in model.get_params(deep=False):
        model.set_params(class_weight=class_weight)
    return model


def build_candidates(modalities, *, task, interactions=True, class_weight=None,
                     random_state=0) -> dict:
    """``{display name: (kind, unfitted estimator)}`` for a comparison.

    Every model uses mmfeat's self-tuning defaults (penalties chosen by inner
    cross-validation on the training rows only), so nothing here is tuned to the data the
    comparison scores on.
    """
    out = {}
    for name, spec in modalities.items():
        out[f"{name} only"] = ("single", _early({name: spec}, task, class_weight))
    if len(modalities) < 2:
        return out
    out["early fusion"] = ("early", _early(modalities, task, class_weight))
    if interactions:
        out["early fusion + interactions"] = (
            "early", _early(modalities, task, class_weight, interactions="all"))
    out["late fusion (stacking)"] = ("late", _late(modalities, task, class_weight, random_state))
    late = LateFusionClassifier if task == "classification" else LateFusionRegressor
    if "trust" in late({}).get_params(deep=False):  # per-sample trust, where available
        out["late fusion (gated stacking)"] = (
            "late", _late(modalities, task, class_weight, random_state, trust="margin"))
    out["late fusion (mean)"] = ("late", _late(modalities, task, class_weight, random_state,
                                               rule="mean"))
    if task == "classification":
        out["late fusion (product)"] = ("late", _late(modalities, task, class_weight,
                                                      random_state, rule="product"))
    return out
