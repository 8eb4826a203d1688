"""The Extractor base class: the one place for batching, caching, the error policy
(its rules in ``error_policy.py``), feature names and lazy model loading.

A subclass implements only:

- ``_load_item(item)``: one raw item -> a loaded object (raise :class:`ItemError` if it can't);
- ``_features(loaded)``: a list of loaded objects -> ``(len(loaded), d)`` array;
- ``_feature_suffixes()``: the ``d`` column names, without the extractor's prefix;
- optionally ``_fit(items)`` to learn state, ``_validate()`` to check its own parameters,
  ``_state_digest()`` when fitted state changes the output, and, for model-backed extractors
  (``uses_model = True``), ``_load_model(device)`` and ``_model_identity()``.
"""

from __future__ import annotations

import hashlib
import json
import os
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import batching, error_policy, models
from ._sklearn_compat import Interval, Options, StrOptions, _check_feature_names_in
from .cache import FeatureCache, fetch_or_compute
from .config import cache_settings
from .introspect import Findable
from .items import as_items, check_items, checked_items
from .keys import rows_by_key, stable_form

# Parameters of these types (and tuples of them) key a plan by their values: nothing else to
# look at on a hit.
_IMMUTABLE = (type(None), bool, int, float, str, FeatureCache)
_PARAM_NAMES: dict = {}  # class -> its __init__'s parameter names (see _get_param_names)


def _typed(value):
    """``(type, value)`` of a plain parameter value, a tuple's items typed one by one, so that
    True and 1, equal as values, key plans apart; None for any other value."""
    if isinstance(value, _IMMUTABLE):
        return type(value), value
    if type(value) is tuple:
        items = tuple(_typed(v) for v in value)
        return None if None in items else (tuple, items)
    return None


class Extractor(Findable, TransformerMixin, BaseEstimator):
    """Base class of every mmfeat extractor (see the module docstring for the contract).

    Common parameters, defined by each subclass's ``__init__``:
    ``batch_size``, ``n_jobs`` (CPU extractors), ``device`` (model extractors), ``cache``,
    ``on_error`` and ``verbose``.
    """

    #: What the features describe: "image", "text", "audio" or "video" (reports and the
    #: robustness report go by it).
    modality: str = ""
    #: How items are checked, keyed and read: "image" (a path, encoded bytes or an array),
    #: "audio" (a path or a ``(waveform, sr)`` pair) or "text". A subclass that leaves it empty
    #: reads its modality's own items; a video is a file keyed by its bytes, as an image file.
    item_kind: str = ""
    #: Bump when the feature code changes its output, so old cache entries are never served.
    algorithm_version: str = "1"
    #: Prefix of the output column names.
    feature_prefix: str = ""
    #: True for extractors backed by a model loaded lazily (torch, sentence-transformers).
    uses_model: bool = False
    #: Parameters that never change the output and so stay out of the cache fingerprint.
    #: (``max_pixels`` decides which images are refused, and failures are never cached.)
    runtime_params = frozenset({"batch_size", "n_jobs", "device", "cache", "on_error", "verbose",
                                "max_pixels"})
    #: scikit-learn's parameter constraints, checked in ``fit``; subclasses extend this dict.
    _parameter_constraints: dict = {
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "n_jobs": [Interval(Integral, None, -1, closed="right"),
                   Interval(Integral, 1, None, closed="left"), None],
        "device": [str],
        "cache": [None, Options(bool, {False}), str, os.PathLike, FeatureCache],
        "on_error": [StrOptions({"raise", "nan"})],
        "verbose": ["verbose"],
        "max_pixels": [Interval(Integral, 1, None, closed="left"), None],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.item_kind:
            cls.item_kind = cls.modality

    # ------------------------------------------------------------------ hooks for subclasses

    def _load_item(self, item):
        raise NotImplementedError

    def _features(self, loaded: list) -> np.ndarray:
        raise NotImplementedError

    def _feature_suffixes(self) -> list[str]:
        raise NotImplementedError

    def _fit(self, items: list) -> None:
        """Learn state from the training items (stateless extractors keep this no-op)."""

    def _validate(self) -> None:
        """Checks that ``_parameter_constraints`` cannot express (the items of a tuple, relations
        between parameters); raise :func:`invalid_parameter` or a ValueError naming the values."""

    def _state_digest(self) -> str:
        """A digest of fitted state that changes the output (e.g. a learned codebook)."""
        return ""

    def _load_model(self, device: str):
        raise NotImplementedError

    def _batch_key(self, item):
        """Sort key applied to the items to compute before batching (e.g. text length, so a
        batch holds similar lengths and pads little); the output order is unaffected."""
        return 0

    def _model_identity(self) -> str:
        """Name and weights digest of the model, for the fingerprint."""
        return ""

    # ------------------------------------------------------------------ sklearn API

    @classmethod
    def _get_param_names(cls):
        # scikit-learn reads __init__'s signature at every get_params (so at every clone, and
        # every hit's plan key): a tenth of a millisecond each, which a warm grid search pays
        # hundreds of times. A class's signature does not change: read it once.
        names = _PARAM_NAMES.get(cls)
        if names is None:
            names = _PARAM_NAMES[cls] = super()._get_param_names()
        return names

    def fit(self, X, y=None):
        """Validate parameters and learn state where the extractor has some.

        Parameters
        ----------
        X : 1-D sequence of items (list, Series, 1-column DataFrame, object ndarray)
        y : ignored

        Returns
        -------
        self
        """
        self._validate_params()
        self._validate()
        if self.uses_model:
            models.check_device(getattr(self, "device", "auto"), type(self).__name__)
        items = as_items(X, self.item_kind)
        self.n_features_in_ = 1
        if hasattr(X, "columns") and isinstance(X.columns[0], str):
            self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._fit(items)
        self.n_features_out_ = len(self._feature_suffixes())
        return self

    def transform(self, X):
        """Features of every item, in input order.

        Parameters
        ----------
        X : 1-D sequence of items

        Returns
        -------
        ndarray of shape (n_samples, n_features_out), float32
            Rows that failed under ``on_error="nan"`` are all NaN.
        """
        check_is_fitted(self, "n_features_out_")
        return self._extract_checked(*checked_items(X, self.item_kind))

    def get_feature_names_out(self, input_features=None):
        """Output column names: ``{feature_prefix}_{suffix}``.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Checked as scikit-learn does: one name, equal to the column seen in ``fit`` if
            that was a named column. The output names do not depend on it.

        Returns
        -------
        ndarray of str objects
        """
        check_is_fitted(self, "n_features_out_")
        _check_feature_names_in(self, input_features, generate_names=False)
        return np.asarray([f"{self.feature_prefix}_{s}" for s in self._feature_suffixes()],
                          dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        tags.input_tags.string = self.item_kind == "text"
        # features are float32, whatever the input
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # ------------------------------------------------------------------ shared machinery

    def _cache_label(self) -> str:
        """How ``mmfeat cache info`` names this extractor's entries: the class and the
        parameters that differ from their defaults and change the output."""
        from ._sklearn_compat import _changed_params

        changed = [f"{k}={v!r}" for k, v in _changed_params(self).items()
                   if k not in self.runtime_params]
        return f"{type(self).__name__}({', '.join(changed)})"

    def fingerprint(self) -> str:
        """Digest of everything that changes this extractor's output (part of every cache key)."""
        return self._fingerprint(self._model_identity() if self.uses_model else "")

    def _fingerprint(self, model_identity: str) -> str:
        params = {
            k: v for k, v in self.get_params(deep=False).items() if k not in self.runtime_params
        }
        payload = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": self.algorithm_version,
            "params": stable_form(params),
            "model": model_identity,
            "state": self._state_digest(),
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.blake2b(blob, digest_size=16).hexdigest()

    def _plan(self) -> models.Plan:
        """Device, runtime, fingerprint and model key, resolved once per parameter set in this
        process (see :func:`mmfeat.models.plan_of`) and passed down to every batch."""
        key = self._plan_key()
        return (models._PLANS.get(key) if key is not None else None) or models.plan_of(self, key)

    def _plan_key(self):
        """The parameter set a plan is remembered for: every parameter and the fitted state.
        Plain values (numbers, strings, a cache, tuples of them) key it as they are, so that a hit
        looks at nothing else. None (resolve every time) for a model given as an object, whose
        weights may change in place, and for wrappers of other estimators, which resolve theirs."""
        params = self.get_params(deep=False)
        typed = tuple((k, _typed(v)) for k, v in params.items())
        if all(t is not None for _, t in typed):
            return type(self), typed, self._state_digest()
        if self._model_source() is not None or any(isinstance(v, BaseEstimator)
                                                   for v in params.values()):
            return None
        return (type(self), json.dumps(stable_form(params), sort_keys=True), self._state_digest())

    #: ``self._target()``: ``(device, runtime)`` the model computes with in this process (the
    #: plan's, while one is resolved or in use). :func:`mmfeat.models.target` itself, not a
    #: method calling it: the feature code asks at every batch.
    _target = models.target

    def _runtime(self, device: str) -> str:
        """Which runtime computes the model's features (e.g. ``"torch"`` or ``"onnx"``), when an
        extractor has several that give the same features (within a tested tolerance): part of
        the loaded model's identity in this process, not of the cache key."""
        return ""

    def _model_source(self):
        """The user's own model object, when the model is one (it may then change in place);
        None for models named by a string."""
        return None

    def _get_model(self):
        """The model, loaded on first use and shared by clones in this process; never pickled."""
        return models.model_of(self, self._plan_key())

    def _model_in_use(self):
        """Resolve the plan and the model once for a whole computation (every batch of it)."""
        return models.model_in_use(self, self._plan_key())

    def _compute(self, items: list, bar=None):
        """Load and featurise ``items`` in batches (see :mod:`mmfeat.batching`)."""
        return batching.compute(self, items, bar)

    def load_items(self, items) -> batching.LoadedBatch:
        """Load each item (``_load_item``); a failure costs only that item's position, whose
        cause is in ``errors``. For subclasses that read items themselves (e.g. in ``_fit``);
        :meth:`handle_failures` then applies the error policy."""
        return batching.load_items(self, items)

    def _progress(self, total: int):
        """The progress bar of one transform (disabled unless ``verbose``)."""
        if not self.verbose:
            return _NO_BAR  # a disabled tqdm still costs a third of a millisecond to build
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=type(self).__name__, unit="item")

    def _extract(self, items: list) -> np.ndarray:
        """Check every item, key it, let the cache fetch or compute each distinct item once,
        and assemble the rows in order."""
        return self._extract_checked(*check_items(items, self.item_kind))

    def _extract_checked(self, items: list, failed: dict) -> np.ndarray:
        """:meth:`_extract` of items already checked, ``failed`` holding the refused rows.

        Checked before keying: a bad item gets the same answer with the cache on or off, cold
        or warm, and never the cached vector of a valid twin. The hit path enters each module
        once: the items, the settings, the keys, the cache (and its store)."""
        n, d = len(items), self.n_features_out_
        out = np.full((n, d), np.nan, dtype=np.float32)
        settings = cache_settings(self.cache)
        cached = settings["location"] is not None
        if cached:
            groups = rows_by_key(items, failed, self.item_kind, self._plan().key_prefix,
                                 settings["file_keys"])
        else:  # without a cache, still embed repeated texts and paths only once
            groups = {}  # key -> rows holding that item
            for row, item in enumerate(items):
                if row not in failed:
                    key = item if isinstance(item, str) else ("row", row)
                    groups.setdefault(key, []).append(row)

        bar = self._progress(len(groups))
        from_cache = 0

        def found(count):
            nonlocal from_cache
            from_cache += count
            bar.set_postfix_str(f"{from_cache} from the cache", refresh=False)
            bar.update(count)

        def compute(keys):
            """Compute each key's item once; ``{key: vector}`` of those that succeeded."""
            keys = sorted(keys, key=lambda k: self._batch_key(items[groups[k][0]]))
            features, errors = self._compute([items[groups[k][0]] for k in keys], bar)
            for i, key in enumerate(keys):
                if i in errors:
                    failed.update({row: errors[i] for row in groups[key]})
            return {key: features[i] for i, key in enumerate(keys) if i not in errors}

        try:
            if not cached:
                vectors = compute(list(groups))
            else:
                vectors = fetch_or_compute(self.cache, settings, list(groups), compute, dim=d,
                                           on_found=None if bar.disable else found,
                                           extractor=self._cache_label)
        finally:
            bar.close()
        for key, vector in vectors.items():
            out[groups[key]] = vector
        self.handle_failures(items, failed)
        return out

    def handle_failures(self, items, failed: dict) -> None:
        """Apply the error policy to ``{row: cause}``: raise for the first failed row under
        ``on_error="raise"``, else report the rows (collectors, one warning); see
        :mod:`mmfeat.error_policy`."""
        if failed:
            error_policy.apply(self, items, failed)


class _NoBar:
    """The progress bar of a quiet transform: every call does nothing."""

    disable = True

    def update(self, n=1):
        pass

    def set_postfix_str(self, s="", refresh=True):
        pass

    def close(self):
        pass


_NO_BAR = _NoBar()
