"""Late fusion's default models: each modality's estimator (and the candidates a narrow block
chooses from) and the meta-learner, for classification and regression."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from .._sklearn_compat import _routing_enabled
from .platt import PlattScaled

# Blocks up to this many features (audio statistics, a few numeric columns) also try an RBF SVM,
# when they have at most SVM_MAX_ROWS rows.
NARROW_BLOCK = 100
SVM_MAX_ROWS = 5_000


def weighted(estimator, request=True):
    """A default estimator requests ``sample_weight`` under metadata routing (the user cannot
    reach it to ask, and weights given to the fusion are meant for it); its scaler does not,
    as without routing."""
    if _routing_enabled():
        estimator.set_fit_request(sample_weight=request)
    return estimator


# A modality's logistic regression: the penalty a user picks by hand on standardised features,
# and a loose tolerance. Chosen on the real-data benchmark (benchmarks/bench_real.py): against
# C tuned by inner 3-fold log loss inside every out-of-fold split (LogisticRegressionCV), the
# fused models scored the same within a few rows on the three sets (stacking 0.976 against
# 0.977, 0.901 against 0.901, 0.639 against 0.635) at a seventh of the fit time. A per-modality
# penalty matters less here than in a model used alone: the calibration and the meta-learner's
# weight per modality rescale each modality's confidence. The loose tolerance stops lbfgs in
# about half the iterations, with the same fused accuracy; the out-of-fold fits start cold,
# never from another fold's solution, which has seen their held-out rows.
LOGISTIC_C = 0.1
LOGISTIC_TOL = 1e-3


def default_logistic():
    """Standardisation and logistic regression at ``C=0.1`` (see ``LOGISTIC_C``)."""
    return make_pipeline(weighted(StandardScaler(), False),
                         weighted(LogisticRegression(C=LOGISTIC_C, tol=LOGISTIC_TOL,
                                                     max_iter=2000)))


def tuned_ridge():
    """Standardisation and ridge regression choosing its penalty among a wide range (for
    features with hundreds of dimensions)."""
    return make_pipeline(weighted(StandardScaler(), False),
                         weighted(RidgeCV(alphas=np.logspace(-2, 4, 13))))


def default_classifiers(n_features, y):
    """Logistic regression, and for a narrow block with enough rows per class, but not so
    many that a kernel SVM gets slow (its fit grows with the square of the rows), also an RBF
    SVM: ``[(label, estimator, inner_cv)]``, ``inner_cv`` naming the parameter of its inner
    folds. A plain function, as it goes to joblib's workers."""
    candidates = [("logistic", default_logistic(), None)]
    rarest = np.unique(y, return_counts=True)[1].min()
    if n_features <= NARROW_BLOCK and rarest >= 20 and len(y) <= SVM_MAX_ROWS:
        # Platt-scaled probabilities, as SVC(probability=True) gave before scikit-learn 1.9;
        # in late fusion, its sigmoids are fitted on the out-of-fold decision values.
        svm = make_pipeline(weighted(StandardScaler(), False), weighted(SVC()))
        candidates.append(("rbf_svm", PlattScaled(svm), None))
    return candidates


def default_regressors(n_features, y):
    """RidgeCV tunes its penalty itself (by group k-fold when given groups)."""
    return [("ridge", tuned_ridge(), "ridgecv__cv")]


def default_final_classifier(class_weight=None):
    return weighted(LogisticRegression(class_weight=class_weight))


def default_final_regressor():
    return weighted(RidgeCV())
