"""A transformer that pauses: makes a scoring run slow enough to interrupt. An importable
module (not defined in a test) so that scoring's worker processes can load models using it."""

import time

from sklearn.base import BaseEstimator, TransformerMixin


class Sleep(TransformerMixin, BaseEstimator):
    """Passes features through after a pause of ``seconds``."""

    def __init__(self, seconds=0.2):
        self.seconds = seconds

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        time.sleep(self.seconds)
        return X
