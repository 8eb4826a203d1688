"""One modality as a block of columns for early fusion: extract, impute, scale, reduce, weight."""

from __future__ import annotations

from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.validation import FLOAT_DTYPES, check_array, check_is_fitted

from .._sklearn_compat import (
    HasMethods,
    Interval,
    RealNotInt,
    StrOptions,
    _check_feature_names_in,
    _fit_context,
)
from ..folds import make_folds
from ..validation import check_target
from .novelty import fit_novelty, novelty, report_strange


def as_feature_matrix(features, *, accept_sparse=False):
    """An extractor's output as a 2-D float matrix (NaN allowed: it marks missing rows), whatever
    output container the extractor is set to."""
    return check_array(features, accept_sparse="csr" if accept_sparse else False,
                       dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", ensure_min_samples=0,
                       input_name="features")


def available_rows(values):
    """The rows (along the last axis) that are not all NaN: a row missing a modality has all-NaN
    features, and all-NaN outputs of the modality's model."""
    return ~np.isnan(values).all(axis=-1)


def numpy_output(step):
    """Make an internal step return ndarrays even under ``set_config(transform_output="pandas")``:
    a block does its own arithmetic on them and wraps its whole output once at the end."""
    return step.set_output(transform="default")


def set_nan_on_error(extractor):
    """Make a (cloned) extractor give failed or missing items all-NaN rows instead of raising.

    Extractors without an ``on_error`` parameter (plain scikit-learn transformers) are left
    as they are: NaN rows they produce are still treated as missing.
    """
    if "on_error" in extractor.get_params(deep=False):
        extractor.set_params(on_error="nan")
    return extractor


class ModalityBlock(TransformerMixin, BaseEstimator):
    """The columns one modality contributes to an early-fusion feature matrix.

    ``fit`` clones ``extractor``, extracts the features of every item and learns, in this
    order: the mean of each feature (to impute missing rows), a standard scaling, and an
    optional PCA. ``transform`` applies them and multiplies the block by ``weight``.
    :func:`make_early_fusion` puts one block per modality in a ``ColumnTransformer``, so a
    grid search can tune ``features__text__weight``, ``features__text__pca`` or
    ``features__audio__extractor__n_mfcc`` directly.

    Parameters
    ----------
    extractor : mmfeat Extractor or scikit-learn transformer
        Turns the modality's column into a 2-D feature matrix. It is cloned in ``fit``.
    scale : bool, default=True
        Standardise every feature to zero mean and unit variance, so that blocks of
        different sizes and units are comparable before they are stacked.
    pca : int, float or None, default=None
        Reduce the block to this many principal components (an int), or to the components
        that explain this fraction of the variance (a float in (0, 1)). None keeps every feature.
    weight : float >= 0, default=1.0
        Every output column is multiplied by this. With ``scale=True`` it sets how much the
        block counts against the others: in a regularised linear model a larger weight means
        a smaller penalty for using the block, in distance-based models a larger share of the
        distance. 0 switches the block off without changing the output shape.
    handle_missing : bool, default=False
        If True, items that are missing (None, NaN) or cannot be featurised get the training
        mean of each feature instead of raising (the clone of an mmfeat extractor is set to
        ``on_error="nan"``), and the block ends with a 0/1 column ``{prefix}_missing`` that is 1
        for those rows. A row counts as missing when any of its features is NaN. If False the
        extractor's own ``on_error`` applies.
    outliers : {"missing"} or None, default=None
        "missing": a row whose features look unlike the training rows' is treated as missing
        (imputed, its indicator 1) before imputation and scaling. ``fit`` learns the novelty
        score of :mod:`mmfeat.fusion.novelty` and its threshold (the 99.5th percentile of the
        training rows' own scores, out of 5 folds) from the features it extracts anyway; the
        training rows are used as they are. The rows set aside are reported to
        :func:`mmfeat.errors.collect_errors` (``mmfeat score`` writes them in ``missing``).
        Needs ``handle_missing=True``.

    Attributes
    ----------
    extractor_ : fitted clone of ``extractor``
    imputer_ : SimpleImputer or None
        Fitted when ``handle_missing=True``.
    scaler_ : StandardScaler or None
    pca_ : PCA or None
    novelty_ : dict or None
        The novelty model and its ``threshold`` (plain arrays), with ``outliers``.
    n_features_in_ : int
        As seen by the extractor (1 for a column of items).
    feature_names_in_ : ndarray of str
        Only when the extractor records them (it was fitted on a DataFrame).
    n_features_out_ : int

    See Also
    --------
    make_early_fusion : the ColumnTransformer of one block per modality.

    Notes
    -----
    Missing rows are imputed before scaling, so a missing row sits at the centre of the block
    (all zeros after scaling) and only the indicator column tells the model it was missing.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from mmfeat.fusion import ModalityBlock
    >>> X = np.array([[1.0, 2.0], [np.nan, np.nan], [3.0, 6.0], [5.0, 4.0]])
    >>> block = ModalityBlock(FunctionTransformer(feature_names_out="one-to-one"),
    ...                       weight=2.0, handle_missing=True)
    >>> block.fit_transform(X).round(2)
    array([[-2.83, -2.83,  0.  ],
           [ 0.  ,  0.  ,  2.  ],
           [ 0.  ,  2.83,  0.  ],
           [ 2.83,  0.  ,  0.  ]])
    >>> block.get_feature_names_out().tolist()
    ['x0', 'x1', 'missing']
    """

    _parameter_constraints: dict = {
        "extractor": [HasMethods(["fit", "transform"])],
        "scale": ["boolean"],
        "pca": [None, Interval(Integral, 1, None, closed="left"),
                Interval(RealNotInt, 0, 1, closed="neither")],
        "weight": [Interval(Real, 0, None, closed="left")],
        "handle_missing": ["boolean"],
        "outliers": [StrOptions({"missing"}), None],
    }
    outliers = None  # the default for blocks pickled before the parameter existed

    def __init__(self, extractor, *, scale=True, pca=None, weight=1.0, handle_missing=False,
                 outliers=None):
        self.extractor = extractor
        self.scale = scale
        self.pca = pca
        self.weight = weight
        self.handle_missing = handle_missing
        self.outliers = outliers

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None):
        """Fit the extractor and learn the imputation, scaling and PCA of the block.

        Parameters
        ----------
        X : the modality's column (1-D sequence of items), or what ``extractor`` accepts
        y : passed to the extractor's ``fit``

        Returns
        -------
        self
        """
        self._fit(X, y)
        return self

    @_fit_context(prefer_skip_nested_validation=False)
    def fit_transform(self, X, y=None):
        """Fit, and return the block of the training rows (extracted only once)."""
        return self._fit(X, y)

    def _fit(self, X, y):
        check_target(y)  # before any item is extracted
        if self.outliers is not None and not self.handle_missing:
            raise ValueError(f"outliers={self.outliers!r} treats a strange block as missing, "
                             "which needs handle_missing=True.")
        extractor = clone(self.extractor)
        if self.handle_missing:
            set_nan_on_error(extractor)
        features = as_feature_matrix(extractor.fit_transform(X, y))
        self.extractor_ = extractor
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(extractor, attr):
                setattr(self, attr, getattr(extractor, attr))
            elif attr in self.__dict__:  # refitted on other data
                delattr(self, attr)
        missing = np.isnan(features).any(axis=1)
        if self.handle_missing and missing.size and missing.all():
            # Imputed, it would be a constant block (the training mean of nothing) whose
            # indicator is 1 on every row: features from nothing. Late fusion refuses it too.
            raise ValueError(f"{self._name(X)} has no usable row: all {missing.size} items are "
                             "missing or failed. Check the column, or leave the modality out.")
        self.novelty_ = None
        if self.outliers is not None:
            typical = features[~missing]
            if len(typical) < 2:
                raise ValueError(f"{self._name(X)}: outliers={self.outliers!r} learns from the "
                                 f"rows that have the modality, and {len(typical)} has it.")
            folds = make_folds(min(5, len(typical)), np.zeros(len(typical)), classifier=False,
                               shuffle=True, random_state=0)
            self.novelty_ = fit_novelty(typical, folds)[0]
        self.imputer_ = None
        if self.handle_missing:
            # keep_empty_features: a feature never seen (every training row missing) stays, as 0.
            self.imputer_ = numpy_output(SimpleImputer(strategy="mean", keep_empty_features=True))
            features = self.imputer_.fit_transform(features)
        self.scaler_ = numpy_output(StandardScaler()).fit(features) if self.scale else None
        if self.scaler_ is not None:
            features = self.scaler_.transform(features)
        self.pca_ = None
        if self.pca is not None:
            most = min(features.shape)
            if isinstance(self.pca, Integral) and self.pca > most:
                raise ValueError(f"{self._name(X)}: pca={self.pca} components need at least "
                                 f"{self.pca} rows and {self.pca} features; it has "
                                 f"{features.shape[0]} rows and {features.shape[1]} features: pass "
                                 f"pca={most} or fewer, or a fraction of the variance such as "
                                 "0.95.")
            self.pca_ = numpy_output(PCA(n_components=self.pca, random_state=0))
            features = self.pca_.fit_transform(features)
        out = self._finish(features, missing)
        self.n_features_out_ = out.shape[1]
        return out

    def _name(self, X):
        """The block as its user knows it: by the column it reads (its name in the union is
        not known to it)."""
        column = getattr(X, "name", None)
        if column is None and len(getattr(X, "columns", ())) == 1:
            column = X.columns[0]
        if column is not None:
            return f"The block of column {column!r} ({type(self.extractor).__name__})"
        return f"The {type(self.extractor).__name__} block"

    def transform(self, X):
        """The block for ``X``: features, imputed, scaled, reduced, weighted, then the indicator.

        Parameters
        ----------
        X : the modality's column (1-D sequence of items), or what ``extractor`` accepts

        Returns
        -------
        ndarray of shape (n_samples, n_features_out)
        """
        check_is_fitted(self, "extractor_")
        features = as_feature_matrix(self.extractor_.transform(X))
        missing = np.isnan(features).any(axis=1)
        model = self.__dict__.get("novelty_")
        if self.outliers == "missing" and model is not None and (~missing).any():
            scores = np.full(len(features), np.nan)
            scores[~missing] = novelty(model, features[~missing])
            strange = ~missing & (scores > model["threshold"])
            report_strange(type(self.extractor_).__name__, self.extractor_, X, strange, scores,
                           model)
            features, missing = features.copy(), missing | strange
            features[strange] = np.nan  # imputed below, as a missing row is
        for step in (self.imputer_, self.scaler_, self.pca_):
            if step is not None:
                features = step.transform(features)
        return self._finish(features, missing)

    def _finish(self, features, missing):
        out = features * self.weight
        if self.handle_missing:
            indicator = missing.astype(out.dtype)[:, None] * self.weight
            out = np.hstack([out, indicator])
        return out

    def get_feature_names_out(self, input_features=None):
        """Column names: the extractor's (or ``{prefix}_pca{i}``), then ``{prefix}_missing``.

        ``{prefix}`` is the extractor's ``feature_prefix`` (e.g. ``hsv``); a plain transformer
        gives ``pca{i}`` and ``missing``. A ``ColumnTransformer`` then adds the block's name.
        """
        check_is_fitted(self, "extractor_")
        # Checked against the column(s) seen in fit, as scikit-learn does; the names out do not
        # depend on them.
        input_features = _check_feature_names_in(self, input_features, generate_names=False)
        prefix = getattr(self.extractor_, "feature_prefix", "")
        prefix = f"{prefix}_" if prefix else ""
        if self.pca_ is not None:
            names = [f"{prefix}pca{i}" for i in range(self.pca_.n_components_)]
        elif hasattr(self.extractor_, "get_feature_names_out"):
            names = list(self.extractor_.get_feature_names_out(input_features))
        else:
            width = self.n_features_out_ - bool(self.handle_missing)
            names = [f"{prefix}x{i}" for i in range(width)]
        if self.handle_missing:
            names.append(f"{prefix}missing")
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        input_tags = get_tags(self.extractor).input_tags
        tags.input_tags = replace(input_tags, sparse=False,
                                  allow_nan=input_tags.allow_nan or self.handle_missing)
        return tags
