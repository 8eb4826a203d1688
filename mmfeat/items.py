"""What an item is, before it is keyed or loaded: the accepted 1-D inputs turned into a list
of items, with the inputs that would be misread refused."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Set
from numbers import Integral

import numpy as np


def as_items(X, modality: str) -> list:
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
    if hasattr(X, "columns") and hasattr(X, "to_series"):  # polars: iterating gives its columns
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
    if modality == "audio" and isinstance(X, tuple) and len(X) == 2 \
            and isinstance(X[1], (Integral, float)) and not isinstance(X[0], (str, os.PathLike)):
        raise TypeError(
            "Expected a 1-D sequence of audio items, got a single (waveform, sr) pair, which would "
            "be read as two items. Wrap it in a list: [(waveform, sr)]."
        )
    try:
        return list(X)
    except TypeError:
        raise TypeError(f"Expected a 1-D sequence of items, got {type(X).__name__}.") from None
