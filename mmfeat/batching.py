"""Batching: loading items and featurising them a batch at a time, in worker processes for
CPU feature code (``n_jobs``) or beside a background loader thread for model-backed extractors,
so that the model never waits on the disk; a failure costs only its own item."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs

from .errors import ItemError


class LoadedBatch(NamedTuple):
    """A batch of items after loading: the loaded objects, their positions in the batch, the
    batch's size, and ``{position: cause}`` for the items that failed to load."""

    loaded: list
    positions: list
    n: int
    errors: dict

def _run_batch(extractor, items):
    """Load and featurise one batch in a worker process; returns (features, {position: cause})."""
    return featurise(extractor, load_items(extractor, items))


def featurise(extractor, batch: LoadedBatch):
    """Features for the loaded items of a batch of ``n``; a failing batch is retried item by
    item so that one bad item costs only its own row."""
    loaded, positions, n, errors = batch
    out = np.full((n, extractor.n_features_out_), np.nan, dtype=np.float32)
    if loaded:
        try:
            out[positions] = extractor._features(loaded)
        except Exception:
            for pos, obj in zip(positions, loaded):
                try:
                    out[pos] = extractor._features([obj])[0]
                except Exception as exc:
                    errors[pos] = f"{type(exc).__name__}: {exc}"
    for pos in positions:
        if pos not in errors and not np.isfinite(out[pos]).all():
            errors[pos] = "features are not finite (NaN or inf)"
            out[pos] = np.nan
    return out, errors


def compute(extractor, items: list, bar=None):
    """Load and featurise ``items`` in batches: processes for CPU feature code (``n_jobs``),
    a background loader thread for model-backed extractors so the model never waits on disk."""
    bs = extractor.batch_size
    batches = [items[i : i + bs] for i in range(0, len(items), bs)]
    n_jobs = getattr(extractor, "n_jobs", None)
    own_bar = bar is None
    if own_bar:
        bar = extractor._progress(len(items))
    results = []
    if not extractor.uses_model and len(batches) > 1 and effective_n_jobs(n_jobs) > 1:
        for res in Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_run_batch)(extractor, b) for b in batches
        ):
            results.append(res)
            bar.update(len(res[0]))
    else:
        with extractor._model_in_use(), ThreadPoolExecutor(max_workers=2) as pool:
            pending = [pool.submit(load_items, extractor, batches[0])] if batches else []
            for k in range(len(batches)):
                loaded = pending.pop().result()
                if k + 1 < len(batches):
                    pending.append(pool.submit(load_items, extractor, batches[k + 1]))
                results.append(featurise(extractor, loaded))
                bar.update(len(batches[k]))
    if own_bar:
        bar.close()
    features = [r[0] for r in results]
    errors = {}
    for b, (_, errs) in enumerate(results):
        errors.update({b * bs + pos: cause for pos, cause in errs.items()})
    if not features:
        return np.empty((0, extractor.n_features_out_), np.float32), errors
    return np.concatenate(features), errors


def load_items(extractor, items) -> LoadedBatch:
    """Load each item (``_load_item``); a failure costs only that item's position, whose
    cause is in ``errors``. For subclasses that read items themselves (e.g. in ``_fit``);
    :meth:`handle_failures` then applies the error policy."""
    errors, loaded, positions = {}, [], []
    for i, item in enumerate(items):
        try:
            loaded.append(extractor._load_item(item))
            positions.append(i)
        except ItemError as exc:
            errors[i] = str(exc)
        except Exception as exc:  # a loader bug or an odd file must not kill the batch
            errors[i] = f"{type(exc).__name__}: {exc}"
    return LoadedBatch(loaded, positions, len(items), errors)
