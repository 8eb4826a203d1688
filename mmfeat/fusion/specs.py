"""What early and late fusion share: the parsing of a modality spec ``(column, extractor,
*extra)`` and the default self-tuning classifier; and a late-fusion spec as ``get_params``
lists it (:class:`ModalitySpec`)."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import get_scorer

from .._sklearn_compat import _BaseComposition, _routing_enabled

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
    is_transformer = hasattr(extractor, "fit") and hasattr(extractor, "transform")
    if extractor != "passthrough" and not is_transformer:
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


_PARTS = ("column", "extractor", "estimator")


class ModalitySpec(tuple):
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
        return ModalitySpec, (None, self._name, tuple(self))

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


class ModalityComposition(_BaseComposition):
    """The parameters of a fusion of ``modalities={name: (column, extractor[, estimator])}``:
    ``get_params``/``set_params`` reach each modality's tuple, its parts and their parameters
    (as ``ColumnTransformer`` reaches its transformers)."""

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
        ``ColumnTransformer._transformers`` adapts its triples; each spec a :class:`ModalitySpec`
        whose ``set_params`` reaches its parts."""
        if not isinstance(self.modalities, dict):
            return []
        return [(name, ModalitySpec(self, name, spec) if isinstance(spec, (tuple, list)) else spec)
                for name, spec in self.modalities.items()]

    @_modalities_adapter.setter
    def _modalities_adapter(self, value):
        self.modalities = {name: tuple(spec) if isinstance(spec, ModalitySpec) else spec
                           for name, spec in value}

