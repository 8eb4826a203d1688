"""Late fusion's fixed rules weighted by learned modality weights (mmfeat.fusion.rules)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mmfeat.fusion import LateFusionClassifier
from mmfeat.fusion.rules import LogProbabilityStacker, combine_probabilities, fit_rule_weights
from mmfeat.modelfile import load_model, save_model

N_CLASSES = 5


def weak_confident(n, seed):
    """Modality "a" informative; "b" a weak signal under 40 noise columns, whose model (C=100,
    not calibrated) is confidently wrong on most rows."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    a = np.eye(N_CLASSES)[y] + rng.normal(size=(n, N_CLASSES))
    b = np.hstack([0.4 * np.eye(N_CLASSES)[y] + rng.normal(size=(n, N_CLASSES)),
                   rng.normal(size=(n, 40))])
    columns = [f"a{i}" for i in range(a.shape[1])] + [f"b{i}" for i in range(b.shape[1])]
    return pd.DataFrame(np.hstack([a, b]), columns=columns), y


def fusion(rule, **params):
    modalities = {"a": ([f"a{i}" for i in range(N_CLASSES)], "passthrough"),
                  "b": ([f"b{i}" for i in range(N_CLASSES + 40)], "passthrough",
                        LogisticRegression(C=100, max_iter=2000))}
    return LateFusionClassifier(modalities, rule=rule, calibrate=None, cv=5, random_state=0,
                                **params)


@pytest.mark.parametrize("rule", ["product", "mean"])
def test_learned_weights_discount_a_weak_confident_modality(rule, tmp_path):
    X, y = weak_confident(300, 0)
    X_new, y_new = weak_confident(2000, 1)
    model = fusion(rule, rule_weights="learned").fit(X, y)
    learned = model.predict(X_new)
    equal = model.set_params(rule_weights="equal").predict(X_new)  # the same fit, equal weights
    # Measured (seed 0 / 1): accuracy 0.48 learned against 0.37-0.38 equal, both rules.
    assert (learned == y_new).mean() > (equal == y_new).mean() + 0.05
    model.set_params(rule_weights="learned")
    report = model.modality_report_.set_index("modality")["weight"]
    assert report["b"] < 0.15 * report["a"] and np.isclose(report.sum(), 1)
    shares = model.modality_weights(X_new)
    assert np.allclose(shares.mean(), report, atol=1e-9)
    # A weighted model saves and loads, and predicts the same.
    path = tmp_path / "weighted.skops"
    save_model(model, path)
    assert (load_model(path).predict(X_new) == learned).all()


def test_equal_weights_are_the_default_and_the_old_rule():
    X, y = weak_confident(200, 2)
    model = fusion("product").fit(X, y)
    assert model.rule_weights == "equal"
    assert np.allclose(model.modality_report_["weight"], 0.5)
    outputs = model._outputs(X)[0]
    stacked = np.stack(list(outputs.values()))
    logs = np.log(np.clip(stacked, 1e-12, 1)).sum(axis=0)
    assert (model.predict(X) == model.classes_[logs.argmax(axis=1)]).all()
    with pytest.raises(ValueError, match="The 'rule_weights' parameter of LateFusionClassifier "
                                         "must be a str among"):
        fusion("product", rule_weights="auto").fit(X, y)


def test_weighted_rules_combine_only_the_modalities_a_row_has():
    rng = np.random.default_rng(0)
    stacked = rng.dirichlet(np.ones(3), size=(2, 6))  # 2 modalities, 6 rows, 3 classes
    available = np.ones((2, 6), dtype=bool)
    available[1, :2] = False  # rows 0, 1 lack modality 1
    available[0, 5] = available[1, 5] = False  # row 5 has none
    prior = np.array([0.5, 0.3, 0.2])
    for rule in ("mean", "product"):
        scores = combine_probabilities(stacked, available, rule, np.array([2.0, 0.0]), prior)
        assert np.allclose(scores[5], prior)
        # modality 1 weighs 0: every row is modality 0's (sharpened by 2 in the product)
        expected = stacked[0, :5] if rule == "mean" else stacked[0, :5] ** 2 / (
            stacked[0, :5] ** 2).sum(axis=1, keepdims=True)
        assert np.allclose(scores[:5], expected)
        only_missing = combine_probabilities(stacked, available, rule, np.array([0.0, 1.0]),
                                             prior)
        assert np.allclose(only_missing[:2], prior)  # the only modality they have weighs 0


def test_weights_fit_leaves_out_a_modality_that_adds_nothing():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, 500)
    # calibrated: 0.7 on its top class, which is right in 70% of the rows
    top = np.where(rng.random(500) < 0.7, codes, (codes + rng.integers(1, 4, 500)) % 4)
    informative = np.full((500, 4), 0.1)
    informative[np.arange(500), top] = 0.7
    uniform = np.full((500, 4), 0.25)
    stacked = np.stack([informative, uniform])
    available = np.ones((2, 500), dtype=bool)
    assert fit_rule_weights(stacked, available, codes, "mean")[1] < 0.05
    product = fit_rule_weights(stacked, available, codes, "product")
    # already calibrated, so no sharpening wanted; the uniform modality is left out
    assert np.isclose(product[0], 1, atol=0.15) and product[1] == 0


def many_classes(n, seed, n_classes=16):
    """Three modalities of decreasing strength over 16 classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    blocks = [2 * strength * np.eye(n_classes)[y] + rng.normal(size=(n, n_classes))
              for strength in (1.2, 0.8, 0.5)]
    columns = [f"{m}{i}" for m in "abc" for i in range(n_classes)]
    return pd.DataFrame(np.hstack(blocks), columns=columns), y


def test_small_meta_learner_wins_with_many_classes_and_few_rows(tmp_path):
    X, y = many_classes(200, 0)  # 12 rows a class
    X_new, y_new = many_classes(2000, 1)
    modalities = {m: ([f"{m}{i}" for i in range(16)], "passthrough",
                      LogisticRegression(C=0.1, max_iter=1000)) for m in "abc"}
    small = LateFusionClassifier(modalities, cv=3, random_state=0).fit(X, y)
    full = LateFusionClassifier(modalities, LogisticRegression(), cv=3, random_state=0).fit(X, y)
    assert isinstance(small.final_estimator_, LogProbabilityStacker)
    assert small.final_estimator_.coef_.shape == (3,)
    # Measured (seed 0 / 1): 0.739 against 0.509 for the 3 x 16 by 16 multinomial.
    assert (small.predict(X_new) == y_new).mean() > (full.predict(X_new) == y_new).mean() + 0.1
    weights = small.modality_report_["weight"]
    assert weights.iloc[0] > weights.iloc[1] > weights.iloc[2]
    proba = small.predict_proba(X_new)
    assert np.allclose(proba.sum(axis=1), 1)
    path = tmp_path / "small.skops"
    save_model(small, path)
    assert (load_model(path).predict(X_new) == small.predict(X_new)).all()
    # Two classes keep the logistic regression.
    two = y < 8
    binary = LateFusionClassifier(modalities, cv=3).fit(X[two], (y[two] < 4).astype(int))
    assert isinstance(binary.final_estimator_, LogisticRegression)
