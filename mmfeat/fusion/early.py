"""Early fusion: one block of columns per modality, stacked side by side, then any estimator."""

from __future__ import annotations

from numbers import Integral

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .._sklearn_compat import HasMethods, StrOptions, validate_params
from .blocks import ModalityBlock
from .interactions import ModalityInteractions
from .specs import parse_modality
from .tuning import TunedLogisticRegression

BLOCK_OPTIONS = ("scale", "pca", "weight", "handle_missing", "outliers")
NUMERIC_BLOCK = "numeric"


_MODALITY = [tuple, list, None]


@validate_params(
    {
        "image": _MODALITY,
        "text": _MODALITY,
        "audio": _MODALITY,
        "passthrough": ["array-like", str, None],
        "estimator": [None, HasMethods("fit"), StrOptions({"auto"})],
        "scale": ["boolean"],
        "pca": ModalityBlock._parameter_constraints["pca"],
        "handle_missing": ["boolean"],
        "outliers": ModalityBlock._parameter_constraints["outliers"],
        "interactions": ModalityInteractions._parameter_constraints["pairs"],
        "rank": ModalityInteractions._parameter_constraints["rank"],
        "n_jobs": [None, Integral],
    },
    prefer_skip_nested_validation=True,
)
def make_early_fusion(*, image=None, text=None, audio=None, passthrough=None, estimator=None,
                      scale=True, pca=None, handle_missing=False, outliers=None,
                      interactions=None, rank=4, n_jobs=None, **more_modalities):
    """Build an early-fusion feature union: one :class:`ModalityBlock` per modality.

    Each modality is given as ``(column, extractor)`` or ``(column, extractor, options)``,
    where ``options`` is a dict of :class:`ModalityBlock` parameters (``scale``, ``pca``,
    ``weight``, ``handle_missing``) for that block only. The result is a plain scikit-learn
    ``ColumnTransformer`` (or a ``Pipeline`` of it and ``estimator``): it clones, pickles,
    runs in ``GridSearchCV``, and ``set_output(transform="pandas")`` gives named columns.

    Parameters
    ----------
    image, text, audio : tuple or None, default=None
        ``(column, extractor[, options])`` for that modality, e.g.
        ``image=("image", CNNEmbedder())``; None leaves the modality out.
    passthrough : list of str or None, default=None
        Numeric columns added as they are (standardised when ``scale=True``; with
        ``handle_missing=True`` NaNs are imputed with the training mean and get indicator
        columns). They form a block called ``"numeric"``.
    estimator : estimator, "auto" or None, default=None
        If given, the result is ``Pipeline([("features", union), ("model", estimator)])``.
        "auto" is a classifier that tunes itself, :class:`TunedLogisticRegression`: it
        chooses ``C`` among 1e-4 ... 10 by inner 2-fold accuracy, walking warm-started from
        0.1 until the score stops improving, for about two fits at a fixed ``C``. Give it
        the groups, so that ``C`` is chosen for unseen groups: ``fit(X, y, model__groups=g)``,
        or ``fit(X, y, groups=g)`` under scikit-learn's metadata routing (it requests them).
        For regression pass e.g. ``RidgeCV()``.
    scale, pca, handle_missing, outliers : default for every block, see :class:`ModalityBlock`
        (``options`` in a modality's tuple override them). ``outliers="missing"`` (with
        ``handle_missing=True``) turns a block that looks unlike its training rows into a
        missing one, with late fusion's novelty score and threshold.
    interactions : "all", list of (str, str) or None, default=None
        Add cross-modal interaction features (classical tensor fusion, see
        :class:`ModalityInteractions`): for each pair of modalities, e.g.
        ``[("image", "audio")]`` or every pair with "all", the products of the two blocks'
        ``rank`` leading principal components, named ``image_x_audio__2_3``. A linear model
        on features side by side can only add up each modality's evidence; these let it learn a
        class that shows only in a combination of cues. The result is then a ``Pipeline``
        whose ``interactions`` step a grid search can tune (``interactions__rank``, or
        ``interactions__pairs=None`` to switch them off). Blocks must have no missing values
        (set ``handle_missing=True`` when items can be missing).
    rank : int, default=4
        Principal components per modality for ``interactions``.
    n_jobs : int or None, default=None
        Blocks fitted in parallel (``ColumnTransformer`` semantics). Extractors have their own
        ``n_jobs`` for their feature code.
    **more_modalities : tuple
        Further modalities, by name, in the same form
        (e.g. ``thumbnail=("thumb", ColorHistogram())``).

    Returns
    -------
    ColumnTransformer or Pipeline
        Blocks are named after their modality, so grid-search parameters read
        ``features__text__weight``, ``features__text__pca``,
        ``features__audio__extractor__n_mfcc`` (without the ``features__`` when
        ``estimator`` is None and there are no ``interactions``), and output columns read
        ``text__sbert_000``, ``image__hsv_missing``.

    See Also
    --------
    ModalityBlock : one modality's block.
    LateFusionClassifier : one model per modality, combined by a meta-learner.

    Examples
    --------
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mmfeat.fusion import make_early_fusion
    >>> from mmfeat.image import ColorHistogram
    >>> model = make_early_fusion(
    ...     image=("image", ColorHistogram(bins=(4, 2, 2)), {"weight": 2.0}),
    ...     passthrough=["price"], estimator=LogisticRegression(), handle_missing=True)
    >>> [name for name, *_ in model.named_steps["features"].transformers]
    ['image', 'numeric']
    """
    modalities = {"image": image, "text": text, "audio": audio, **more_modalities}
    transformers = []
    for name, spec in modalities.items():
        if spec is None:
            continue
        if name == NUMERIC_BLOCK:
            raise ValueError(f"The name {NUMERIC_BLOCK!r} is kept for the passthrough columns; "
                             "give the modality another name.")
        column, extractor, (options,) = parse_modality(name, spec, 1, "{option: value}")
        options = {} if options is None else dict(options)
        unknown = sorted(set(options) - set(BLOCK_OPTIONS))
        if unknown:
            raise ValueError(f"Got options {unknown} for modality {name!r}, expected some of "
                             f"{list(BLOCK_OPTIONS)}.")
        if extractor == "passthrough":
            raise ValueError(f"Got {name}=({column!r}, 'passthrough'): use passthrough=[...] for "
                             "numeric columns.")
        block = ModalityBlock(extractor, **{"scale": scale, "pca": pca, "outliers": outliers,
                                            "handle_missing": handle_missing, **options})
        transformers.append((name, block, column))
    if passthrough:
        columns = [passthrough] if isinstance(passthrough, str) else list(passthrough)
        steps = []
        if handle_missing:
            steps.append(("impute", SimpleImputer(strategy="mean", add_indicator=True,
                                                  keep_empty_features=True)))
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append((NUMERIC_BLOCK, Pipeline(steps) if steps else "passthrough", columns))
    if not transformers:
        raise ValueError("No modality given: pass at least one of image=, text=, audio=, "
                         "passthrough= or another name=(column, extractor).")
    union = ColumnTransformer(transformers, remainder="drop", n_jobs=n_jobs)
    steps = [("features", union)]
    if interactions is not None:
        # The interaction step finds each modality's columns by name, so the union hands it a
        # DataFrame whatever the global output setting.
        union.set_output(transform="pandas")
        steps.append(("interactions", ModalityInteractions(interactions, rank=rank)))
    if estimator is not None:
        model = TunedLogisticRegression() if isinstance(estimator, str) else estimator
        steps.append(("model", model))
    return union if len(steps) == 1 else Pipeline(steps)
