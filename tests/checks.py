"""scikit-learn's common checks as pytest parameters, with the tier of each check said where the
test that runs it is written (a mark travels with its check; no list of names elsewhere)."""

from __future__ import annotations

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

_ParameterSet = type(pytest.param(None))


def check_name(check) -> str:
    """The name of a check as scikit-learn yields it (a function, or a partial of one)."""
    return getattr(check, "func", check).__name__


def parametrize_with_checks_marked(estimators, *, slow=lambda estimator, name: False, **kwargs):
    """``parametrize_with_checks(estimators, **kwargs)``, each check marked slow where
    ``slow(estimator, check_name)`` says so; the ids and expected failures are sklearn's."""
    mark = parametrize_with_checks(estimators, **kwargs)
    names, values = mark.args
    params = []
    for value in values:
        if not isinstance(value, _ParameterSet):
            value = pytest.param(*value)
        estimator, check = value.values
        marks = list(value.marks)
        if slow(estimator, check_name(check)):
            marks.append(pytest.mark.slow)
        params.append(pytest.param(*value.values, marks=marks, id=value.id))
    return pytest.mark.parametrize(names, params, **mark.kwargs)
