"""What early and late fusion share: the parsing of a modality spec ``(column, extractor,
*extra)`` and the default self-tuning classifier."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import get_scorer
from sklearn.utils.metadata_routing import _routing_enabled

# The penalties the default ("auto") logistic regressions choose from.
DEFAULT_CS = np.logspace(-4, 1, 6)


def parse_modality(name, spec, n_extra, what):
    """Split a modality spec ``(column, extractor, *extra)`` into its parts, checking its shape.

    ``n_extra`` is how many optional trailing parts the spec may have; ``what`` names them
    for the error message.
    """
    if not isinstance(name, str) or not name or "__" in name:
        raise ValueError(f"Got modality name {name!r}, expected a non-empty string without '__'.")
    if not isinstance(spec, (tuple, list)) or not 2 <= len(spec) <= 2 + n_extra:
        raise ValueError(
            f"Got {name}={spec!r}, expected a tuple (column, extractor) or "
            f"(column, extractor, {what})."
        )
    column, extractor, *extra = spec
    if extractor != "passthrough" and not (hasattr(extractor, "fit") and hasattr(extractor, "transform")):
        raise TypeError(
            f"Got {name}=({column!r}, {extractor!r}, ...): the second element must be an mmfeat "
            "Extractor or a scikit-learn transformer."
        )
    return column, extractor, (extra + [None] * n_extra)[:n_extra]


def auto_classifier(scoring="accuracy"):
    """Logistic regression that picks its penalty by inner 3-fold cross-validation, from very
    strong (embeddings of hundreds of dimensions on a few hundred rows) to weak.

    ``scoring`` is what the penalty is chosen for: accuracy where the model's predictions are
    the output (early fusion; ``score`` then stays accuracy, as for any classifier), log loss
    where its probabilities are combined further (a late-fusion modality).
    """
    if _routing_enabled():  # weights given to a fusion are meant for its default model
        scoring = get_scorer(scoring).set_score_request(sample_weight=True)
    # Otherwise the scorer stays a name: a fitted model then holds no function object, which
    # keeps it loadable from a .skops file.
    model = LogisticRegressionCV(Cs=DEFAULT_CS, cv=3, scoring=scoring, max_iter=2000)
    if "use_legacy_attributes" in model.get_params():  # scikit-learn >= 1.9
        model.set_params(use_legacy_attributes=False, l1_ratios=(0.0,))
    if _routing_enabled():
        model.set_fit_request(sample_weight=True)
    return model
