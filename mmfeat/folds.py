"""The one fold builder: how an int ``cv`` (or a splitter) becomes ``(train, test)`` row indices,
for late fusion's out-of-fold predictions and for :func:`mmfeat.compare`'s outer folds alike."""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    check_cv,
)


def make_folds(cv, y, groups=None, *, classifier, shuffle=False, random_state=None, X=None):
    """The ``(train, test)`` row indices of ``cv`` over ``y``'s rows.

    An int ``cv`` means (stratified, for a classifier) k-fold, or, when ``groups`` are given,
    (stratified) group k-fold with at most one fold per group, so that no group is in both
    parts of a split. A splitter or an iterable goes through ``check_cv`` and gets the groups
    (splitters without groups ignore them).

    Parameters
    ----------
    cv : int, cross-validation splitter or iterable
    y : array-like of shape (n_samples,)
    groups : array-like of shape (n_samples,) or None, default=None
    classifier : bool
        Stratify the folds by ``y``.
    shuffle : bool, default=False
        Shuffle the rows before an int ``cv`` splits them (with ``random_state``).
    random_state : int, RandomState or None, default=None
    X : array-like or None, default=None
        Given to the splitter's ``split`` (a placeholder of ``len(y)`` rows when None).

    Returns
    -------
    list of (ndarray, ndarray)

    Examples
    --------
    >>> from mmfeat.folds import make_folds
    >>> [len(test) for _, test in make_folds(3, [0, 1] * 6, classifier=True)]
    [4, 4, 4]
    """
    X = np.zeros((len(y), 1)) if X is None else X
    if isinstance(cv, Integral):
        options = {"shuffle": True, "random_state": random_state} if shuffle else {}
        if groups is None:
            splitter = (StratifiedKFold if classifier else KFold)(cv, **options)
        else:
            n_groups = len(np.unique(groups))
            if n_groups < 2:
                raise ValueError(f"Got groups with {n_groups} distinct value; out-of-fold "
                                 "predictions by group need at least 2 groups.")
            kind = StratifiedGroupKFold if classifier else GroupKFold
            splitter = kind(min(cv, n_groups), **options)
    else:
        splitter = check_cv(cv, y, classifier=classifier)
    return [(np.asarray(train), np.asarray(test)) for train, test in splitter.split(X, y, groups)]
