"""Every private scikit-learn name mmfeat uses, imported here and only here, so that a new
scikit-learn version that moves one touches this file alone (as skrub's ``_sklearn_compat``)."""

from sklearn.base import _fit_context
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    InvalidParameterError,
    Options,
    RealNotInt,
    StrOptions,
    validate_params,
)
from sklearn.utils._pprint import _changed_params
from sklearn.utils.metadata_routing import _raise_for_params, _routing_enabled
from sklearn.utils.metaestimators import _BaseComposition
from sklearn.utils.validation import _check_feature_names_in, _check_sample_weight

try:  # scikit-learn >= 1.7
    from sklearn.utils._repr_html.estimator import _VisualBlock
except ImportError:  # pragma: no cover
    from sklearn.utils._estimator_html_repr import _VisualBlock

__all__ = ["HasMethods", "Interval", "InvalidParameterError", "Options", "RealNotInt",
           "StrOptions", "_BaseComposition", "_VisualBlock", "_changed_params",
           "_check_feature_names_in", "_check_sample_weight", "_fit_context", "_raise_for_params",
           "_routing_enabled", "_safe_indexing", "validate_params"]
