"""The Extractor base class: the one place for batching, caching, the error policy,
feature names and lazy model loading.

A subclass implements only:

- ``_load_item(item)``: one raw item -> a loaded object (raise :class:`ItemError` if it can't);
- ``_features(loaded)``: a list of loaded objects -> ``(len(loaded), d)`` array;
- ``_feature_suffixes()``: the ``d`` column names, without the extractor's prefix;
- optionally ``_fit(items)`` to learn state, ``_validate()`` to check its own parameters,
  ``_state_digest()`` when fitted state changes the output, and, for model-backed extractors
  (``uses_model = True``), ``_load_model(device)`` and ``_model_identity()``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import threading
import warnings
from collections.abc import Iterator, Mapping, Set
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from numbers import Integral
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._sklearn_compat import Interval, Options, StrOptions, _check_feature_names_in
from .cache import FeatureCache, resolve_cache
from .config import get_config
from .errors import ExtractionError, ExtractionWarning, ItemError, report_errors
from .io import check_item, describe
from .keys import item_digest, make_key
from .models import check_device, resolve_device, shared_model

# The model an extractor is computing with, per thread, for the length of one computation:
# resolved (device, identity, registry) once, not once per batch.
_IN_USE = threading.local()


class LoadedBatch(NamedTuple):
    """A batch of items after loading: the loaded objects, their positions in the batch, the
    batch's size, and ``{position: cause}`` for the items that failed to load."""

    loaded: list
    positions: list
    n: int
    errors: dict

def _stable(value):
    """A JSON-able, address-free form of a parameter value for the fingerprint.

    Numbers are normalised so that equal settings share keys: ``224.0`` is ``224`` and ``0.0``
    is ``0`` (bools stay bools).
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_stable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _stable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, np.ndarray):
        return "array:" + hashlib.blake2b(np.ascontiguousarray(value).tobytes(), digest_size=16).hexdigest()
    if isinstance(value, functools.partial):
        return {"partial": _stable(value.func), "args": _stable(list(value.args)),
                "keywords": _stable(value.keywords)}
    if callable(value) and hasattr(value, "__qualname__"):
        name = f"{getattr(value, '__module__', '')}.{value.__qualname__}"
        code = getattr(value, "__code__", None)
        # The code itself, so that two lambdas, or a function edited between runs, never share keys.
        return name + (":" + _code_digest(code) if code is not None else "")
    return repr(value)


def _code_digest(code) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        h.update((_code_digest(const) if hasattr(const, "co_code") else repr(const)).encode())
    return h.hexdigest()


def _as_items(X, modality: str) -> list:
    """Turn the accepted 1-D inputs into a list of items; refuse what would be misread.

    A single item (a string, bytes, one image array, one ``(waveform, sr)`` pair) is refused
    rather than read as a batch of its characters, rows or samples; so is an iterator, which
    ``fit`` would use up and leave ``transform`` nothing (0 rows), and a set, which has no order.
    """
    if isinstance(X, (str, bytes)):
        raise TypeError(
            f"Expected a 1-D sequence of items (list, Series, 1-column DataFrame), got a single "
            f"{type(X).__name__}. Wrap it in a list."
        )
    if isinstance(X, Iterator):
        raise TypeError(
            f"Expected a 1-D sequence of items, got an iterator ({type(X).__name__}), which can be "
            "read only once: fit would use it up and leave nothing to transform. Pass a list: "
            "list(X)."
        )
    if isinstance(X, Set):
        raise TypeError(
            f"Expected a 1-D sequence of items, got a {type(X).__name__}, which has no order: the "
            "rows of the output could not be matched to it. Pass a list."
        )
    if isinstance(X, Mapping):
        raise TypeError(
            f"Expected a 1-D sequence of items, got a {type(X).__name__}, which would be read as "
            "its keys. Pass a list of its values, or a DataFrame column."
        )
    if hasattr(X, "columns") and hasattr(X, "iloc"):  # DataFrame
        if X.shape[1] != 1:
            raise ValueError(
                f"Expected one column of items, got a DataFrame with {X.shape[1]} columns "
                f"{list(X.columns)[:5]}. Select the column (e.g. in a ColumnTransformer)."
            )
        return X.iloc[:, 0].tolist()
    if hasattr(X, "columns") and hasattr(X, "to_series"):  # polars DataFrame: iterating gives columns
        if X.width != 1:
            raise ValueError(
                f"Expected one column of items, got a DataFrame with {X.width} columns "
                f"{list(X.columns)[:5]}. Select the column (e.g. in a ColumnTransformer)."
            )
        return X.to_series(0).to_list()
    if hasattr(X, "iloc"):  # Series
        return X.tolist()
    if isinstance(X, np.ndarray):
        if modality == "image" and X.ndim == 4:  # an explicit stack of images
            return list(X)
        if modality == "image" and X.ndim in (2, 3) and X.dtype != object:
            raise TypeError(
                f"Expected a 1-D sequence of images, got one array of shape {X.shape}, which would "
                "be read as a batch of its rows. Wrap a single image in a list ([image]), or pass "
                "a stack of images as a 4-D array (n_images, height, width, channels)."
            )
        if X.ndim == 1 and X.dtype.kind in "biufc" and modality != "text":
            raise TypeError(
                f"Expected a 1-D sequence of {modality} items, got a numeric array of shape "
                f"{X.shape}, which would be read as {len(X)} items of one number each."
                + (" Pass a waveform as [(waveform, sr)]." if modality == "audio" else "")
            )
        if X.ndim == 1:
            return list(X)
        if X.ndim == 2 and X.shape[1] == 1 and X.dtype == object:
            return list(X[:, 0])
        raise ValueError(f"Expected a 1-D array of items, got an array of shape {X.shape}.")
    if modality == "audio" and isinstance(X, tuple) and len(X) == 2 and isinstance(X[1], (Integral, float)) \
            and not isinstance(X[0], (str, os.PathLike)):
        raise TypeError(
            "Expected a 1-D sequence of audio items, got a single (waveform, sr) pair, which would "
            "be read as two items. Wrap it in a list: [(waveform, sr)]."
        )
    try:
        return list(X)
    except TypeError:
        raise TypeError(f"Expected a 1-D sequence of items, got {type(X).__name__}.") from None


def _run_batch(extractor, items):
    """Load and featurise one batch in a worker process; returns (features, {position: cause})."""
    return extractor._featurise(extractor.load_items(items))


class Extractor(TransformerMixin, BaseEstimator):
    """Base class of every mmfeat extractor (see the module docstring for the contract).

    Common parameters, defined by each subclass's ``__init__``:
    ``batch_size``, ``n_jobs`` (CPU extractors), ``device`` (model extractors), ``cache``,
    ``on_error`` and ``verbose``.
    """

    #: "image", "text" or "audio": how items are read and keyed.
    modality: str = ""
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
        "n_jobs": [Interval(Integral, None, -1, closed="right"), Interval(Integral, 1, None, closed="left"),
                   None],
        "device": [str],
        "cache": [None, Options(bool, {False}), str, os.PathLike, FeatureCache],
        "on_error": [StrOptions({"raise", "nan"})],
        "verbose": ["verbose"],
        "max_pixels": [Interval(Integral, 1, None, closed="left"), None],
    }

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
            check_device(getattr(self, "device", "auto"), type(self).__name__)
        items = _as_items(X, self.modality)
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
        return self._extract(_as_items(X, self.modality))

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
        return np.asarray([f"{self.feature_prefix}_{s}" for s in self._feature_suffixes()], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.one_d_array = True
        tags.input_tags.string = self.modality == "text"
        tags.transformer_tags.preserves_dtype = ["float32"]  # features are float32, whatever the input
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
        params = {
            k: v for k, v in self.get_params(deep=False).items() if k not in self.runtime_params
        }
        payload = {
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "version": self.algorithm_version,
            "params": _stable(params),
            "model": self._model_identity() if self.uses_model else "",
            "state": self._state_digest(),
        }
        blob = json.dumps(payload, sort_keys=True).encode()
        return hashlib.blake2b(blob, digest_size=16).hexdigest()

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
        in_use = getattr(_IN_USE, "models", {})
        if id(self) in in_use:
            return in_use[id(self)]
        device = resolve_device(getattr(self, "device", "auto"))
        key = (type(self).__qualname__, self._model_identity(), device, self._runtime(device))
        return shared_model(key, lambda: self._load_model(device), self._model_source())

    @contextmanager
    def _model_in_use(self):
        """Resolve the model once for a whole computation (every batch of it, in this thread)."""
        if not self.uses_model:
            yield
            return
        in_use = _IN_USE.__dict__.setdefault("models", {})
        outer = id(self) in in_use
        if not outer:
            in_use[id(self)] = self._get_model()  # a model that cannot load fails once, not per row
        try:
            yield
        finally:
            if not outer:
                in_use.pop(id(self), None)

    def _featurise(self, batch: LoadedBatch):
        """Features for the loaded items of a batch of ``n``; a failing batch is retried item by
        item so that one bad item costs only its own row."""
        loaded, positions, n, errors = batch
        out = np.full((n, self.n_features_out_), np.nan, dtype=np.float32)
        if loaded:
            try:
                out[positions] = self._features(loaded)
            except Exception:
                for pos, obj in zip(positions, loaded):
                    try:
                        out[pos] = self._features([obj])[0]
                    except Exception as exc:
                        errors[pos] = f"{type(exc).__name__}: {exc}"
        for pos in positions:
            if pos not in errors and not np.isfinite(out[pos]).all():
                errors[pos] = "features are not finite (NaN or inf)"
                out[pos] = np.nan
        return out, errors

    def _progress(self, total: int):
        """The progress bar of one transform (disabled unless ``verbose``)."""
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=type(self).__name__, disable=not self.verbose, unit="item")

    def _compute(self, items: list, bar=None):
        """Load and featurise ``items`` in batches: processes for CPU feature code (``n_jobs``),
        a background loader thread for model-backed extractors so the model never waits on disk."""
        bs = self.batch_size
        batches = [items[i : i + bs] for i in range(0, len(items), bs)]
        n_jobs = getattr(self, "n_jobs", None)
        own_bar = bar is None
        if own_bar:
            bar = self._progress(len(items))
        results = []
        if not self.uses_model and len(batches) > 1 and effective_n_jobs(n_jobs) > 1:
            for res in Parallel(n_jobs=n_jobs, return_as="generator")(
                delayed(_run_batch)(self, b) for b in batches
            ):
                results.append(res)
                bar.update(len(res[0]))
        else:
            with self._model_in_use(), ThreadPoolExecutor(max_workers=2) as pool:
                pending = [pool.submit(self.load_items, batches[0])] if batches else []
                for k in range(len(batches)):
                    loaded = pending.pop().result()
                    if k + 1 < len(batches):
                        pending.append(pool.submit(self.load_items, batches[k + 1]))
                    results.append(self._featurise(loaded))
                    bar.update(len(batches[k]))
        if own_bar:
            bar.close()
        features = [r[0] for r in results]
        errors = {}
        for b, (_, errs) in enumerate(results):
            errors.update({b * bs + pos: cause for pos, cause in errs.items()})
        if not features:
            return np.empty((0, self.n_features_out_), np.float32), errors
        return np.concatenate(features), errors

    def load_items(self, items) -> LoadedBatch:
        """Load each item (``_load_item``); a failure costs only that item's position, whose
        cause is in ``errors``. For subclasses that read items themselves (e.g. in ``_fit``);
        :meth:`handle_failures` then applies the error policy."""
        errors, loaded, positions = {}, [], []
        for i, item in enumerate(items):
            try:
                loaded.append(self._load_item(item))
                positions.append(i)
            except ItemError as exc:
                errors[i] = str(exc)
            except Exception as exc:  # a loader bug or an odd file must not kill the batch
                errors[i] = f"{type(exc).__name__}: {exc}"
        return LoadedBatch(loaded, positions, len(items), errors)

    def _extract(self, items: list) -> np.ndarray:
        """Check every item, look it up, compute the misses (each distinct item once), store
        them, and assemble the rows in order."""
        n, d = len(items), self.n_features_out_
        out = np.full((n, d), np.nan, dtype=np.float32)
        failed: dict[int, str] = {}
        cache = resolve_cache(self.cache)
        fingerprint = self.fingerprint() if cache is not None else ""
        file_keys = get_config()["file_keys"]
        items = list(items)
        groups: dict = {}  # key -> rows holding that item
        for row, item in enumerate(items):
            # Checked before keying: a bad item gets the same answer with the cache on or off,
            # cold or warm, and never the cached vector of a valid twin.
            try:
                items[row] = item = check_item(item, self.modality)
                if cache is not None:
                    key = make_key(fingerprint, item_digest(item, self.modality, file_keys))
                else:  # without a cache, still embed repeated texts and paths only once
                    key = item if isinstance(item, str) else ("row", row)
            except ItemError as exc:
                failed[row] = str(exc)
                continue
            groups.setdefault(key, []).append(row)

        bar = self._progress(len(groups))
        try:
            hits = cache.get_many(list(groups)) if cache is not None else {}
            found = 0
            for key, vector in hits.items():
                if vector.shape == (d,):
                    out[groups[key]] = vector
                    found += 1
            if cache is not None:
                bar.set_postfix_str(f"{found} from the cache", refresh=False)
                bar.update(found)
            misses = [k for k in groups if k not in hits or hits[k].shape != (d,)]
            if cache is None:
                self._compute_into(misses, groups, items, out, failed, None, bar)
            elif misses:
                # Claim the misses so that parallel workers (GridSearchCV n_jobs, Dask) never
                # compute the same item twice; wait for the ones another process is computing.
                claimed, busy = cache.claim_many(misses)
                try:
                    self._compute_into(claimed, groups, items, out, failed, cache, bar)
                finally:
                    cache.release(claimed)
                arrived = cache.wait_for(busy) if busy else {}
                for key, vector in arrived.items():
                    out[groups[key]] = vector
                bar.update(len(arrived))
                leftover = [k for k in busy if k not in arrived or arrived[k].shape != (d,)]
                self._compute_into(leftover, groups, items, out, failed, cache, bar)
        finally:
            bar.close()
        if failed:
            if self.on_error == "raise":
                self._raise(items, failed)
            self._report(items, failed)
        return out

    def _compute_into(self, keys, groups, items, out, failed, cache, bar=None):
        """Compute each key's item once, write it to every row holding it, and store it."""
        if not keys:
            return
        keys = sorted(keys, key=lambda k: self._batch_key(items[groups[k][0]]))
        features, errors = self._compute([items[groups[k][0]] for k in keys], bar)
        fresh = {}
        for i, key in enumerate(keys):
            if i in errors:
                failed.update({row: errors[i] for row in groups[key]})
            else:
                out[groups[key]] = features[i]
                fresh[key] = features[i]
        if cache is not None and fresh:
            cache.put_many(fresh, extractor=self._cache_label())

    def _error(self, items, row, cause) -> ExtractionError:
        return ExtractionError(row, describe(items[row]), cause, type(self).__name__)

    def handle_failures(self, items, failed: dict) -> None:
        """Apply the error policy to ``{row: cause}``: raise for the first failed row under
        ``on_error="raise"``, else report the rows (collectors, one warning)."""
        if failed:
            if self.on_error == "raise":
                self._raise(items, failed)
            self._report(items, failed)

    def _raise(self, items, failed):
        """Raise for the first failed row in row order, counting every other failed row."""
        row = min(failed)
        more = f" ({len(failed) - 1} more rows failed)" if len(failed) > 1 else ""
        raise self._error(items, row, failed[row] + more)

    def _report(self, items, failed):
        """Report every failed row to the active collectors; warn when real failures occurred.

        Missing values (None/NaN) come out as NaN rows without a warning, as NaN passes
        through scikit-learn's own transformers; a file or item that could not be read warns.
        """
        errors = [self._error(items, row, failed[row]) for row in sorted(failed)]
        report_errors(errors)
        broken = [e for e in errors if e.cause != "missing value"]
        if broken:
            missing = len(errors) - len(broken)
            also = f" ({missing} more were missing values)" if missing else ""
            warnings.warn(
                f"{type(self).__name__}: {len(broken)} of {len(items)} rows failed and were given "
                f"NaN features{also}; first: {broken[0]}",
                ExtractionWarning,
                stacklevel=3,
            )
