"""Parameter checks that scikit-learn's ``_parameter_constraints`` cannot express (the items of a
tuple, relations between parameters), raising the same error type with the same wording."""

from __future__ import annotations

from numbers import Integral

from ._sklearn_compat import InvalidParameterError


def invalid_parameter(estimator, name: str, expected: str, value) -> InvalidParameterError:
    """The error scikit-learn's parameter validation raises, for checks its constraints
    cannot express (the items of a tuple, relations between parameters)."""
    return InvalidParameterError(
        f"The {name!r} parameter of {type(estimator).__name__} must be {expected}. "
        f"Got {value!r} instead."
    )


def check_int_tuple(estimator, name: str, length: int, low: int, high=None) -> None:
    """Check that a parameter is a tuple (or list) of ``length`` ints in ``[low, high]``."""
    value = getattr(estimator, name)
    ok = isinstance(value, (tuple, list)) and len(value) == length and all(
        isinstance(v, Integral) and not isinstance(v, bool) and v >= low
        and (high is None or v <= high)
        for v in value
    )
    if not ok:
        bounds = f"[{low}, {high}]" if high is not None else f"[{low}, inf)"
        raise invalid_parameter(estimator, name, f"a tuple of {length} ints in the range {bounds}",
                                value)


def check_target(y, name=None) -> None:
    """Refuse a target with missing values (NaN, None), naming it and the rows.

    scikit-learn's own check says only "Input contains NaN"; a user needs to know it is the
    target, not the features, and which rows to drop.
    """
    import numpy as np
    import pandas as pd

    if y is None:
        return
    name = name if name is not None else getattr(y, "name", None)
    values = np.asarray(y, dtype=object)
    if values.ndim == 0:
        return
    missing = np.flatnonzero(pd.isna(values.reshape(values.shape[0], -1)).any(axis=1))
    if missing.size:
        what = f"The target {name!r}" if name is not None else "The target (y)"
        shown = ", ".join(map(str, missing[:5])) + (", ..." if missing.size > 5 else "")
        raise ValueError(f"{what} is missing (NaN or None) in {missing.size} of "
                         f"{values.shape[0]} rows (rows {shown}): drop those rows to fit; the "
                         "fitted model can still predict them.")


def check_fold_count(cv, y, classifier: bool) -> None:
    """Refuse an int ``cv`` the rows cannot fill, saying which ``cv`` they can.

    scikit-learn says "n_splits=5 cannot be greater than the number of members in each
    class", which names neither the parameter to change nor its value.
    """
    import numpy as np

    if not isinstance(cv, Integral) or y is None:
        return
    if not classifier:
        if cv > len(y):
            advice = (f"pass cv={len(y)} or fewer, or give more rows" if len(y) >= 2
                      else "give more rows")
            raise ValueError(f"cv={cv} folds need at least {cv} rows; "
                             f"got n_samples={len(y)}: {advice}.")
        return
    labels, counts = np.unique(np.asarray(y, dtype=object).astype(str), return_counts=True)
    if cv <= counts.max():  # scikit-learn folds these (warning if a class misses some folds)
        return
    if counts.max() < 2:
        raise ValueError(f"cv={cv} stratified folds need a class with at least 2 rows; each of "
                         f"the {len(labels)} classes has 1 (n_samples={len(y)}): give more rows.")
    # cv up to the smallest class puts every class in every fold's training rows
    fits = max(int(counts.min()), 2)
    raise ValueError(f"cv={cv} stratified folds need a class with at least {cv} rows; the largest "
                     f"has {counts.max()} (n_samples={len(y)}): pass cv={fits} or fewer, or give "
                     "more rows.")
