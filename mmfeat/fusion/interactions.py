"""Cross-modal interaction features for early fusion: the classical form of tensor fusion."""

from __future__ import annotations

from itertools import combinations
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from .._sklearn_compat import Interval, StrOptions, _fit_context

_SEP = "__"


class ModalityInteractions(TransformerMixin, BaseEstimator):
    """Append products of two modalities' reduced features to an early-fusion matrix.

    A class that depends on a *combination* of cues (a word that matters only with a certain
    sound) is invisible to a linear model on features side by side: it can only add up each
    modality's evidence. Tensor fusion networks model such combinations with the outer product
    of the modalities' vectors, each with a constant 1 appended so that the single-modality
    terms stay. This is the same construction, kept small enough for a linear model: each
    modality of a pair is reduced to ``rank`` whitened principal components, and the
    ``rank * rank`` products of the two reduced vectors are appended, standardised, to the
    input. The input columns themselves are the single-modality terms (at full width, rather
    than reduced as the appended 1 would give them).

    It reads the modality blocks from the column names ``{modality}__{feature}`` that
    :func:`make_early_fusion`'s ``ColumnTransformer`` writes, so it takes a DataFrame: use
    ``make_early_fusion(..., interactions=...)``, which sets that up, rather than this class
    alone. Features are never extracted again: it works on the fused matrix.

    Parameters
    ----------
    pairs : "all", list of (str, str) or None, default="all"
        The modality pairs to interact: "all" is every pair of modality blocks (not the
        ``numeric`` passthrough block); None appends nothing (interactions off, for a grid
        search).
    rank : int, default=4
        Principal components kept per modality. A pair adds ``rank ** 2`` columns.
    scale : bool, default=True
        Standardise the products, so that they weigh like the standardised blocks.

    Attributes
    ----------
    pairs_ : list of (str, str)
        The pairs used.
    reducers_ : dict of str -> PCA
        Per modality in a pair, its fitted reduction.
    scaler_ : StandardScaler or None
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame(rng.normal(size=(50, 4)),
    ...                  columns=["image__a", "image__b", "audio__a", "audio__b"])
    >>> out = ModalityInteractions(rank=2).set_output(transform="pandas").fit_transform(X)
    >>> out.columns[4:].tolist()
    ['image_x_audio__0_0', 'image_x_audio__0_1', 'image_x_audio__1_0', 'image_x_audio__1_1']
    """

    _parameter_constraints: dict = {
        "pairs": [StrOptions({"all"}), list, None],
        "rank": [Interval(Integral, 1, None, closed="left")],
        "scale": ["boolean"],
    }

    def __init__(self, pairs="all", *, rank=4, scale=True):
        self.pairs = pairs
        self.rank = rank
        self.scale = scale

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        X = self._frame(X)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        blocks = self._blocks(self.feature_names_in_)
        self.pairs_ = self._check_pairs(blocks)
        self._columns = blocks
        self.reducers_ = {}
        for name in dict.fromkeys(m for pair in self.pairs_ for m in pair):
            values = self._block(X, name)
            if values.shape[1] < self.rank:
                raise ValueError(f"Modality {name!r} has {values.shape[1]} features, fewer than "
                                 f"rank={self.rank}.")
            self.reducers_[name] = PCA(self.rank, whiten=True, random_state=0).fit(values)
        products = self._products(X)
        self.scaler_ = StandardScaler().fit(products) if self.scale and self.pairs_ else None
        return self

    def transform(self, X):
        check_is_fitted(self, "pairs_")
        X = self._frame(X)
        if list(X.columns) != list(self.feature_names_in_):
            raise ValueError("The columns differ from those seen in fit; ModalityInteractions "
                             "needs the same early-fusion blocks.")
        products = self._products(X)
        if self.scaler_ is not None:
            products = self.scaler_.transform(products)
        return np.hstack([X.to_numpy(dtype=np.float64), products])

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "pairs_")
        names = [f"{a}_x_{b}{_SEP}{i}_{j}" for a, b in self.pairs_
                 for i in range(self.rank) for j in range(self.rank)]
        return np.asarray([*self.feature_names_in_, *names], dtype=object)

    # ------------------------------------------------------------------ helpers

    def _frame(self, X):
        if not hasattr(X, "columns"):
            raise TypeError("ModalityInteractions takes the DataFrame of an early-fusion "
                            "ColumnTransformer (columns named '{modality}__{feature}'); build "
                            "it with make_early_fusion(..., interactions=...), and do not set "
                            "the whole model's set_output(transform='default'), which makes "
                            f"the union give arrays. Got {type(X).__name__}.")
        return X

    @staticmethod
    def _blocks(columns):
        """{modality: positions of its columns}, from the ``{modality}__`` prefixes."""
        blocks = {}
        for i, column in enumerate(columns):
            name, sep, _ = str(column).partition(_SEP)
            if not sep:
                raise ValueError(f"Column {column!r} is not named '{{modality}}__{{feature}}'.")
            blocks.setdefault(name, []).append(i)
        return blocks

    def _check_pairs(self, blocks):
        modalities = [name for name in blocks if name != "numeric"]
        if self.pairs is None:
            return []
        if self.pairs == "all":
            if len(modalities) < 2:
                raise ValueError(f"interactions='all' needs two modalities, got {modalities}.")
            return list(combinations(modalities, 2))
        pairs = []
        for pair in self.pairs:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and pair[0] != pair[1]):
                raise ValueError(f"Each interaction is a pair of two modality names, got {pair!r}.")
            unknown = [m for m in pair if m not in modalities]
            if unknown:
                raise ValueError(f"Interaction {tuple(pair)} names {unknown}, not among the "
                                 f"modalities {modalities}.")
            pairs.append(tuple(pair))
        return pairs

    def _block(self, X, name):
        values = X.iloc[:, self._columns[name]].to_numpy(dtype=np.float64)
        if np.isnan(values).any():
            raise ValueError(f"Modality {name!r} has missing values: interactions need complete "
                             "blocks (use handle_missing=True, which imputes them).")
        return values

    def _products(self, X):
        reduced = {name: pca.transform(self._block(X, name))
                   for name, pca in self.reducers_.items()}
        products = [np.einsum("ni,nj->nij", reduced[a], reduced[b]).reshape(len(X), -1)
                    for a, b in self.pairs_]
        return np.hstack(products) if products else np.empty((len(X), 0))
