"""scikit-learn's common checks on the Extractor machinery, through a numeric stand-in item.

``check_estimator`` on a real extractor runs almost nothing: extractors declare 1-D input (a
column of paths, texts or clips), and the common checks feed 2-D numeric matrices. So the
checks run here on :class:`RowFeatures`, an extractor whose item is a row of numbers, handed
to the base class as it hands every extractor its items. What it exercises is the base
class's: parameter validation, cloning and ``get_params``, fit/transform through the cache
(the tests' isolated store) in several batches, the error policy on NaN rows, 0 rows, feature
names, pickling, read-only and Fortran-ordered input. What real items need (paths, bad files,
models, ``GridSearchCV`` with ``n_jobs=2``) is tests/test_contract.py's, for every extractor.
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import parametrize_with_checks_marked
from sklearn.utils.validation import check_is_fitted, validate_data

from mmfeat.base import Extractor
from mmfeat.errors import ExtractionError, ExtractionWarning, ItemError


class RowFeatures(Extractor):
    """Each row of a 2-D numeric array is one item (to the base class an ``(samples, rate)``
    pair, keyed by its values); its features are its values squared."""

    modality = "audio"
    feature_prefix = "row"

    def __init__(self, *, batch_size=3, cache=None, on_error="raise", verbose=False):
        self.batch_size = batch_size
        self.cache = cache
        self.on_error = on_error
        self.verbose = verbose

    def _items(self, X, reset):
        # NaN passes here, as a NaN pixel or sample would: the item fails, naming its row
        X = validate_data(self, X, reset=reset, ensure_all_finite=False, dtype=np.float32)
        return [(row, 1) for row in X]

    def fit(self, X, y=None):
        items = self._items(X, reset=True)
        n_features_in = self.n_features_in_
        super().fit(items)
        self.n_features_in_ = n_features_in  # the base class counts one column of items
        return self

    def transform(self, X):
        check_is_fitted(self, "n_features_out_")
        return self._extract(self._items(X, reset=False))

    def _fit(self, items):
        self.width_ = len(items[0][0]) if items else 0

    def _load_item(self, item):
        row = np.asarray(item[0], np.float32)
        if not np.isfinite(row).all():
            raise ItemError("row contains NaN or inf")
        return row

    def _features(self, loaded):
        return np.stack(loaded) ** 2

    def _feature_suffixes(self):
        return [f"{i:02d}" for i in range(self.width_)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array, tags.input_tags.one_d_array = True, False
        return tags


EXPECTED_FAILED = {
    "check_estimators_nan_inf": "fit reads no item (a stateless extractor learns nothing from "
                                "them): a NaN row fails in transform, naming the row",
}


@parametrize_with_checks_marked([RowFeatures()], expected_failed_checks=lambda est: EXPECTED_FAILED,
                                slow=lambda est, name: name == "check_estimators_dtypes")
def test_extractor_machinery_passes_sklearns_common_checks(estimator, check):
    check(estimator)


def test_a_nan_row_fails_in_transform_naming_it():
    X = np.arange(12, dtype=float).reshape(4, 3)
    X[2, 1] = np.nan
    with pytest.raises(ExtractionError, match=r"row 2 .*row contains NaN or inf") as info:
        RowFeatures().fit(X).transform(X)
    assert info.value.row == 2
    out = RowFeatures(on_error="nan").fit(X)
    with pytest.warns(ExtractionWarning, match="1 of 4 rows"):
        features = out.transform(X)
    assert np.isnan(features[2]).all() and np.array_equal(features[[0, 1, 3]], X[[0, 1, 3]] ** 2)
