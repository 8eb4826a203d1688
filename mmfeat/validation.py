"""Parameter checks that scikit-learn's ``_parameter_constraints`` cannot express (the items of a
tuple, relations between parameters), raising the same error type with the same wording."""

from __future__ import annotations

from numbers import Integral

from sklearn.utils._param_validation import InvalidParameterError


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
        isinstance(v, Integral) and not isinstance(v, bool) and v >= low and (high is None or v <= high)
        for v in value
    )
    if not ok:
        bounds = f"[{low}, {high}]" if high is not None else f"[{low}, inf)"
        raise invalid_parameter(estimator, name, f"a tuple of {length} ints in the range {bounds}", value)
