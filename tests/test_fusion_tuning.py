"""TunedLogisticRegression, early fusion's estimator="auto": the penalty chosen by group when
given groups, a path that stops early, and the scikit-learn contract."""

import pickle

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold, cross_validate
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from mmfeat.fusion import TunedLogisticRegression, make_early_fusion


def near_duplicates(n_groups=6, per_group=60, d=40, seed=0):
    """Rows of a group are noisy copies of one prototype per class (a speaker saying a word
    again), and the class also shows, weakly, in three features shared by every group: held-out
    rows of a seen group are easy, a new group is not."""
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    for group in range(n_groups):
        labels = rng.integers(0, 2, per_group)
        prototypes = rng.normal(size=(2, d)) * 2.0
        rows = prototypes[labels] + rng.normal(size=(per_group, d)) * 0.5
        rows[:, :3] += (2 * labels - 1)[:, None] * 0.8
        X.append(rows)
        y.append(labels)
        g.append(np.full(per_group, group))
    return np.vstack(X), np.concatenate(y), np.concatenate(g)


def test_groups_make_the_inner_folds():
    X, y, g = near_duplicates()
    by_row = TunedLogisticRegression().fit(X, y)
    by_group = TunedLogisticRegression().fit(X, y, groups=g)
    # Scored on rows of groups it has seen, the penalty looks perfect; on unseen groups it is
    # not, and that is what the choice is then made on.
    assert by_row.cv_results_["mean_score"].max() == 1.0
    assert by_group.cv_results_["mean_score"].max() < 0.95
    same_folds = list(StratifiedGroupKFold(2, shuffle=True, random_state=0).split(X, y, g))
    by_hand = TunedLogisticRegression(cv=same_folds).fit(X, y)
    assert by_hand.C_ == by_group.C_
    np.testing.assert_array_equal(by_hand.cv_results_["mean_score"],
                                  by_group.cv_results_["mean_score"])
    with pytest.raises(ValueError, match="groups with 1 distinct value"):
        TunedLogisticRegression().fit(X, y, groups=np.zeros(len(y)))
    with pytest.raises(ValueError, match="X has 360 rows but groups has 3"):
        TunedLogisticRegression().fit(X, y, groups=g[:3])


def test_the_walk_starts_at_the_usual_penalty_and_stops_when_the_score_does():
    # Few informative features and many rows: every penalty weaker than 0.1 scores about the
    # same. The walk from 0.1 fits one weaker and one stronger penalty and stops: three
    # penalties, where a path from the strongest fitted five (1e-4 to 1) for the same choice;
    # that path cost 3.1 to 4.8 times a fixed-C fit on the real-data benchmark.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0).astype(int)
    model = TunedLogisticRegression(refine=False).fit(X, y)
    np.testing.assert_allclose(model.cv_results_["C"], [0.01, 0.1, 1.0])
    assert model.C_ == 0.1
    from_the_strongest = TunedLogisticRegression(start=None, refine=False).fit(X, y)
    assert from_the_strongest.C_ == 0.1 and len(from_the_strongest.cv_results_["C"]) == 5
    refined = TunedLogisticRegression().fit(X, y)
    assert set(model.cv_results_["C"]) <= set(refined.cv_results_["C"])  # a midpoint added
    assert len(refined.cv_results_["C"]) == 4

    # Many informative features: the walk goes up, never below 0.1 ...
    X = rng.normal(size=(600, 30))
    y = (X @ rng.normal(size=30) > 0).astype(int)
    up = TunedLogisticRegression(refine=False).fit(X, y)
    assert up.C_ >= 1.0 and up.cv_results_["C"].min() == 0.1
    # ... and with a weak shift in all of 500 features on 80 rows, where every penalty from
    # 1e-4 to 0.1 scores the same, down to the strongest (of equal scores, the safer).
    y = np.repeat([0, 1], 40)
    X = np.random.default_rng(3).normal(size=(80, 500)) + (2 * y - 1)[:, None] * 0.15
    down = TunedLogisticRegression(refine=False).fit(X, y)
    np.testing.assert_allclose(down.cv_results_["C"], [1e-4, 1e-3, 0.01, 0.1, 1.0])
    assert down.C_ == 1e-4


def test_same_model_as_logistic_regression_at_the_chosen_penalty():
    X, y, _ = near_duplicates(n_groups=2)
    model = TunedLogisticRegression().fit(X, y)
    plain = LogisticRegression(C=model.C_, max_iter=2000).fit(X, y)  # tighter: tol=1e-4
    assert np.array_equal(model.predict(X), plain.predict(X))
    np.testing.assert_allclose(model.predict_proba(X), plain.predict_proba(X), atol=1e-3)
    assert pickle.loads(pickle.dumps(model)).C_ == model.C_
    assert clone(model).get_params() == model.get_params()


def test_early_fusion_auto_takes_groups_directly_and_through_routing():
    X, y, g = near_duplicates()

    def auto():
        return make_early_fusion(shared=(list(range(3)), FunctionTransformer()),
                                 rest=(list(range(3, 40)), FunctionTransformer()), estimator="auto")

    assert isinstance(auto().named_steps["model"], TunedLogisticRegression)
    direct = auto().fit(X, y, model__groups=g)
    expected = TunedLogisticRegression().fit(StandardScaler().fit_transform(X), y, groups=g)
    assert direct.named_steps["model"].C_ == expected.C_
    with sklearn.config_context(enable_metadata_routing=True):
        routed = auto().fit(X, y, groups=g)  # requested by default: no set_fit_request needed
        assert routed.named_steps["model"].C_ == expected.C_
        # and one groups= reaches both the outer splitter and the inner folds
        scores = cross_validate(auto(), X, y, params={"groups": g}, cv=GroupKFold(3),
                                return_estimator=True)
    inner = [model.named_steps["model"].cv_results_["mean_score"].max()
             for model in scores["estimator"]]
    assert max(inner) < 1.0  # by row they would all be 1.0 (see above)


def test_weights_and_class_weights_reach_every_fit():
    X, y, _ = near_duplicates(n_groups=2)
    weights = np.where(y == 1, 3.0, 1.0)
    weighted = TunedLogisticRegression(refine=False).fit(X, y, sample_weight=weights)
    plain = TunedLogisticRegression(refine=False).fit(X, y)
    assert not np.allclose(weighted.coef_, plain.coef_)
    balanced = TunedLogisticRegression(class_weight="balanced").fit(X, y)
    assert balanced.estimator_.class_weight == "balanced"
    with pytest.raises(ValueError, match="expected one or more positive numbers"):
        TunedLogisticRegression(Cs=[0.1, -1]).fit(X, y)


@pytest.mark.slow  # about a hundred checks, each fitting a few models
@parametrize_with_checks([TunedLogisticRegression(Cs=[0.01, 1.0], cv=2)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_a_saved_auto_early_fusion_loads_without_trusting_anything(tmp_path):
    from mmfeat import load_model, save_model

    X, y, _ = near_duplicates(n_groups=2)
    model = make_early_fusion(a=(list(range(3)), FunctionTransformer()),
                              b=(list(range(3, 40)), FunctionTransformer()),
                              estimator="auto").fit(X, y)
    save_model(model, tmp_path / "model.skops")
    loaded = load_model(tmp_path / "model.skops")
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_compare_gives_early_fusion_its_groups_as_a_user_would():
    from mmfeat.comparison.candidates import build_candidates
    from mmfeat.comparison.run import fit

    X, y, g = near_duplicates()
    modalities = {"shared": (list(range(3)), FunctionTransformer()),
                  "rest": (list(range(3, 40)), FunctionTransformer())}
    _, candidate = build_candidates(modalities, task="classification")["early fusion"]
    compared = fit(candidate, X, y, g).named_steps["model"]
    by_user = make_early_fusion(**modalities, estimator="auto", handle_missing=True).fit(
        X, y, model__groups=g).named_steps["model"]
    # The same inner folds (stratified by group, from the groups routed to the model, not
    # folds made beforehand and left in its parameters), so the same choice.
    assert compared.cv == by_user.cv == 2
    np.testing.assert_array_equal(compared.cv_results_["mean_score"],
                                  by_user.cv_results_["mean_score"])
    assert compared.C_ == by_user.C_
    assert compared.cv_results_["mean_score"].max() < 1.0  # by row it would be 1.0
