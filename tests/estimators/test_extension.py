"""The loss/engine boundary from a user's side: a new aggregate registered from
this file alone trains through an estimator and STkSearchCV; parameters that
are loss parameters (the top-k SVM's k) are searched right."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, KFold

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkSearchCV
from sktopk.losses import Aggregate, names, register, unregister


def softmax_mean_loss_gradient(
    losses, weight, lam, kappa, delta, smoothing=None, with_value=True
):
    """``delta log(sum_i w_i exp(l_i / delta) / W)``: the average as delta ->
    inf, the maximum as delta -> 0."""
    w = torch.ones_like(losses) if weight is None else weight.expand_as(losses)
    d = (
        delta.unsqueeze(-1)
        if isinstance(delta, torch.Tensor) and delta.dim()
        else delta
    )
    logw = torch.log(w / w.sum(-1, keepdim=True))  # -inf on padding rows
    z = losses / d + logw
    value = (d * torch.logsumexp(z, -1, keepdim=True)).squeeze(-1)
    return value, torch.softmax(z, -1), None


@pytest.fixture
def softmax_mean():
    register(Aggregate("softmax_mean", softmax_mean_loss_gradient, params=("delta",)))
    yield "softmax_mean"
    unregister("softmax_mean")


@pytest.fixture
def data():
    X, y = make_classification(n_samples=120, n_features=6, random_state=0)
    return X, y


def test_registered_aggregate_is_a_valid_choice(softmax_mean):
    assert softmax_mean in names("aggregate")
    with pytest.raises(ValueError, match="aggregate"):
        STkClassifier(aggregate="not_registered").fit(np.eye(4), [0, 1, 0, 1])


def test_registered_aggregate_trains_through_an_estimator(softmax_mean, data):
    X, y = data
    common = dict(max_epochs=5, random_state=0, device="cpu")
    # delta -> inf: the softmax mean is the average, and so is the training run.
    wide = STkClassifier(aggregate=softmax_mean, delta=1e6, **common).fit(X, y)
    avg = STkClassifier(aggregate="average", **common).fit(X, y)
    np.testing.assert_allclose(
        wide.decision_function(X), avg.decision_function(X), rtol=1e-3, atol=1e-3
    )
    sharp = STkClassifier(aggregate=softmax_mean, delta=0.05, **common).fit(X, y)
    assert not np.allclose(sharp.decision_function(X), avg.decision_function(X))
    assert not hasattr(sharp, "lambda_")  # no threshold declared


def test_registered_aggregate_through_the_batched_search(softmax_mean, data):
    X, y = data
    est = STkClassifier(aggregate=softmax_mean, max_epochs=4, random_state=0)
    grid = {"delta": [0.1, 1.0, 1e3], "C": [10.0, 1000.0]}
    cv = KFold(3)
    ours = STkSearchCV(est, grid, cv=cv, refit=False).fit(X, y)
    ref = GridSearchCV(est, grid, cv=cv, refit=False).fit(X, y)
    assert len(ours.members_per_batch_) == 1  # delta and C batched together
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"],
        ref.cv_results_["mean_test_score"],
        atol=0.02,
    )


def test_svm_k_is_a_loss_parameter_of_the_search():
    """A grid over the top-k SVM's k trains each k (it splits the batches)."""
    X, y = make_classification(
        n_samples=150, n_features=8, n_informative=6, n_classes=4, random_state=1
    )
    est = SmoothTopKSVMClassifier(max_epochs=5, random_state=0, device="cpu")
    grid = {"k": [1, 2, 3], "learning_rate": [0.1, 0.01]}
    cv = KFold(3)
    ours = STkSearchCV(est, grid, cv=cv, refit=False).fit(X, y)
    ref = GridSearchCV(est, grid, cv=cv, refit=False).fit(X, y)
    assert len(ours.members_per_batch_) == 3  # one batch per k
    got = ours.cv_results_["mean_test_score"]
    np.testing.assert_allclose(got, ref.cv_results_["mean_test_score"], atol=1e-6)
    assert len({round(v, 6) for v in got}) > 2  # the k differ, as they should


def test_member_parameters_are_declared():
    common = {"learning_rate", "C", "l1_ratio"}
    assert set(STkClassifier._member_params) == common | {"k", "delta"}
    assert set(SmoothTopKSVMClassifier._member_params) == common


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_folds_of_unequal_size_train_as_their_single_runs(optimizer):
    """Folds of 40 and 250 training rows (3 and 16 minibatches): the short
    fold's members skip the steps past their end, weights and optimizer state
    untouched, so every member equals its single run."""
    X, y = make_classification(n_samples=400, n_features=6, random_state=2)
    rows = np.arange(400)
    folds = [(rows[:40], rows[300:]), (rows[:250], rows[300:])]
    est = STkClassifier(
        model="mlp", optimizer=optimizer, max_epochs=15, tol=0.0, batch_size=16,
        n_iter_no_change=100, random_state=0, device="cpu",
    )  # fmt: skip
    grid = {"learning_rate": [0.3, 0.1, 0.03, 0.01], "k": [0.5]}
    ours = STkSearchCV(est, grid, cv=folds, refit=False).fit(X, y)
    ref = GridSearchCV(est, grid, cv=folds, refit=False).fit(X, y)
    for split in ("split0_test_score", "split1_test_score"):
        np.testing.assert_allclose(
            ours.cv_results_[split], ref.cv_results_[split], atol=0.011
        )


def test_optimizer_options_reach_the_optimizer(data):
    X, y = data
    common = dict(optimizer="sgd", max_epochs=3, random_state=0, device="cpu")
    plain = STkClassifier(**common).fit(X, y)
    heavy = STkClassifier(optimizer_params={"momentum": 0.9}, **common).fit(X, y)
    assert not np.allclose(plain.decision_function(X), heavy.decision_function(X))
    with pytest.raises(ValueError, match="betas"):
        STkClassifier(optimizer_params={"betas": (0.9, 0.99)}, **common).fit(X, y)


def test_a_registered_loss_with_negative_values_is_refused_by_threshold_aggregates(
    data,
):
    # The threshold is kept at lambda >= 0: right for non-negative losses only
    # (a loss shifted by -2 would stop learning, lambda stuck at 0).
    from sktopk.losses import IndividualLoss
    from sktopk.losses._individual import logistic_loss_gradient, logistic_value

    def shifted_gradient(f, y):
        losses, grad = logistic_loss_gradient(f, y)
        return losses - 2.0, grad

    register(
        IndividualLoss(
            "logistic_minus_2", "binary",
            lambda f, y: logistic_value(f, y) - 2.0, shifted_gradient,
        )
    )  # fmt: skip
    try:
        X, y = data
        for aggregate in ("matk", "stk"):
            clf = STkClassifier(loss="logistic_minus_2", aggregate=aggregate)
            with pytest.raises(ValueError, match="negative values.*non-negative"):
                clf.fit(X, y)
        common = dict(max_epochs=5, random_state=0, device="cpu")
        shifted = STkClassifier(loss="logistic_minus_2", aggregate="atk", **common)
        plain = STkClassifier(loss="logistic", aggregate="atk", **common)
        np.testing.assert_allclose(
            shifted.fit(X, y).decision_function(X), plain.fit(X, y).decision_function(X)
        )
    finally:
        unregister("logistic_minus_2")
