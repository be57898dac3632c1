"""The l1 and elastic-net penalties: exact zeros, the support and weights of
scikit-learn's l1 logistic regression and Lasso (the regressor, on raw
targets), the support of the smooth top-k SVM, and batched members equal to
single runs."""

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.model_selection import GridSearchCV

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor, STkSearchCV

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def sparse_problem():
    rng = np.random.default_rng(0)
    n, d = 1000, 20
    X = rng.normal(size=(n, d))
    w = np.zeros(d)
    w[:4] = [2.0, -1.5, 1.0, 0.8]
    y = (X @ w + 0.3 + 0.5 * rng.logistic(size=n) > 0).astype(int)
    return X, y


@pytest.mark.parametrize(
    "optimizer, lr", [("sgd", 0.1), ("adagrad", 0.1), ("adam", 0.01)]
)
@pytest.mark.filterwarnings("ignore:.*penalty")
def test_l1_matches_sklearn_support_and_weights(sparse_problem, optimizer, lr):
    X, y = sparse_problem
    C_sk = 0.02  # sklearn's C; ours is n times it (a mean loss, not a sum)
    ref = LogisticRegression(
        penalty="l1", solver="saga", C=C_sk, tol=1e-10, max_iter=100_000
    ).fit(X, y)
    ours = STkClassifier(
        aggregate="average", penalty="l1", C=C_sk * len(y), optimizer=optimizer,
        learning_rate=lr, max_epochs=300, batch_size=200, random_state=0,
    ).fit(X, y)  # fmt: skip
    # Minibatches of 200: a weight whose gradient noise stays below the l1
    # strength is zeroed by every proximal step (smaller minibatches leave
    # a few borderline weights at small non-zero values).
    w = ours.coefs_[0][:, 0]
    np.testing.assert_array_equal(w != 0, ref.coef_[0] != 0)
    np.testing.assert_allclose(w, ref.coef_[0], atol=0.1 * np.abs(ref.coef_).max())


@pytest.mark.parametrize(
    "optimizer, lr", [("sgd", 0.1), ("adagrad", 0.1), ("adam", 0.01)]
)
def test_regressor_l1_matches_sklearn_lasso(optimizer, lr):
    # Raw targets: the regressor trains on (y - y_center_) / y_scale_, where
    # mean (z - Xw - b)^2 + ||w||_1 / C is 2 x Lasso's objective, alpha = 1 / 2C.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 20))
    w = np.zeros(20)
    w[:4] = [2.0, -1.5, 1.0, 0.8]
    y = 50 + 10 * (X @ w + 0.5 * rng.normal(size=1000))
    C = 10.0
    ours = STkRegressor(
        aggregate="average", loss="square", penalty="l1", C=C, optimizer=optimizer,
        learning_rate=lr, max_epochs=300, batch_size=200, random_state=0,
    ).fit(X, y)  # fmt: skip
    z = (y - ours.y_center_) / ours.y_scale_
    ref = Lasso(alpha=1 / (2 * C), tol=1e-10, max_iter=100_000).fit(X, z)
    got = ours.coefs_[0][:, 0] / ours.y_scale_  # coefs_ are in the units of y
    np.testing.assert_array_equal(got != 0, ref.coef_ != 0)
    np.testing.assert_allclose(got, ref.coef_, atol=0.02 * np.abs(ref.coef_).max())


def test_smooth_topk_svm_l1_zeroes_the_uninformative_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 20))
    W = np.zeros((20, 4))
    W[:3] = 3 * rng.normal(size=(3, 4))  # only the first 3 features matter
    y = (X @ W + rng.gumbel(size=(1500, 4))).argmax(1)
    common = dict(k=1, model="linear", C=10.0, max_epochs=200, batch_size=200,
                  random_state=0)  # fmt: skip
    l1 = SmoothTopKSVMClassifier(penalty="l1", **common).fit(X, y).coefs_[0]
    l2 = SmoothTopKSVMClassifier(penalty="l2", **common).fit(X, y).coefs_[0]
    used = np.abs(l1).sum(1) != 0
    np.testing.assert_array_equal(used, np.arange(20) < 3)
    assert np.all(l2 != 0)


def test_l2_gives_no_zeros_and_elasticnet_interpolates(sparse_problem):
    X, y = sparse_problem
    common = dict(aggregate="average", C=20.0, max_epochs=50, random_state=0)
    l2 = STkClassifier(penalty="l2", **common).fit(X, y).coefs_[0]
    l1 = STkClassifier(penalty="l1", **common).fit(X, y).coefs_[0]
    en = STkClassifier(penalty="elasticnet", l1_ratio=0.5, **common).fit(X, y)
    en0 = STkClassifier(penalty="elasticnet", l1_ratio=0.0, **common).fit(X, y)
    assert np.all(l2 != 0) and np.sum(l1 == 0) >= 10
    assert np.sum(l1 == 0) >= np.sum(en.coefs_[0] == 0) > 0
    np.testing.assert_array_equal(en0.coefs_[0], l2)


def test_batched_penalties_equal_single_runs(sparse_problem):
    X, y = sparse_problem
    est = STkClassifier(penalty="elasticnet", C=20.0, max_epochs=10, random_state=0)
    grid = {"l1_ratio": [0.0, 0.5, 1.0], "C": [5.0, 50.0]}
    ours = STkSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    ref = GridSearchCV(est, grid, cv=3, refit=False).fit(X, y)
    assert ours.members_per_batch_ == [18]
    np.testing.assert_allclose(
        ours.cv_results_["split0_test_score"], ref.cv_results_["split0_test_score"],
        atol=0.004,
    )  # fmt: skip
