"""Estimator behaviour against independent references."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor


@pytest.fixture(scope="module")
def binary_data():
    X, y = make_classification(
        n_samples=800, n_features=6, n_informative=4, class_sep=1.0, random_state=0
    )
    return train_test_split(X, y, test_size=0.5, random_state=0)


def test_average_linear_logistic_matches_logistic_regression(binary_data):
    Xtr, Xte, ytr, yte = binary_data
    C = 100.0  # ours: mean loss + ||w||^2 / (2C)  <=>  sklearn: C_lr = C / n
    ours = STkClassifier(
        aggregate="average", C=C, max_epochs=300, random_state=0, tol=1e-6
    ).fit(Xtr, ytr)
    ref = LogisticRegression(C=C / len(Xtr)).fit(Xtr, ytr)
    assert abs(ours.score(Xte, yte) - ref.score(Xte, yte)) <= 0.02
    # The decision functions agree too (same problem, approximately solved).
    corr = np.corrcoef(ours.decision_function(Xte), ref.decision_function(Xte))[0, 1]
    assert corr > 0.99


def test_atk_with_k_all_is_average(binary_data):
    Xtr, Xte, ytr, _ = binary_data
    kw = dict(max_epochs=20, random_state=3, model="mlp")
    avg = STkClassifier(aggregate="average", **kw).fit(Xtr, ytr)
    atk = STkClassifier(aggregate="atk", k=1.0, **kw).fit(Xtr, ytr)
    np.testing.assert_allclose(
        atk.decision_function(Xte), avg.decision_function(Xte), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("aggregate", ["stk", "matk"])
@pytest.mark.parametrize("k", [0.1, 0.3])
def test_lambda_close_to_kth_largest_training_loss(aggregate, k):
    X, y = make_regression(n_samples=600, n_features=4, noise=20, random_state=0)
    y = y / y.std()
    reg = STkRegressor(
        aggregate=aggregate,
        k=k,
        delta=1e-3,
        batch_size=64,
        tol=1e-6,
        n_iter_no_change=30,
        random_state=0,
    )
    losses = (y - reg.fit(X, y).predict(X)) ** 2
    kth = np.sort(losses)[::-1][int(k * len(y)) - 1]
    # lambda_ sits near the k-th largest loss: the fraction above it is about k
    # (minibatch noise in lambda and the model adapting to it leave a gap).
    assert abs(np.mean(losses > reg.lambda_) - k) <= 0.08
    assert abs(reg.lambda_ - kth) <= 0.25 * kth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stk_robust_to_flipped_labels_where_maximum_fails(seed):
    # 20 % of the training labels flipped: the maximum of each minibatch of
    # 16 (the paper's setting) fits the flipped points,
    # STk with k = 0.8 n stays as good as the average.
    X, y = make_classification(
        n_samples=1200, n_features=5, n_informative=3, class_sep=1.5, random_state=seed
    )
    noisy = y.copy()
    flip = np.random.default_rng(1).random(800) < 0.2
    noisy[:800][flip] = 1 - noisy[:800][flip]
    Xtr, ytr, Xte, yte = X[:800], noisy[:800], X[800:], y[800:]
    scores = {
        agg: STkClassifier(aggregate=agg, k=0.8, batch_size=16, random_state=0)
        .fit(Xtr, ytr)
        .score(Xte, yte)
        for agg in ("average", "maximum", "stk")
    }
    assert scores["stk"] >= scores["maximum"] + 0.1
    assert scores["stk"] >= scores["average"] - 0.02


def test_same_random_state_gives_identical_predictions(binary_data):
    Xtr, Xte, ytr, _ = binary_data
    a = STkClassifier(model="mlp", max_epochs=5, random_state=7).fit(Xtr, ytr)
    b = STkClassifier(model="mlp", max_epochs=5, random_state=7).fit(Xtr, ytr)
    c = STkClassifier(model="mlp", max_epochs=5, random_state=8).fit(Xtr, ytr)
    np.testing.assert_array_equal(a.decision_function(Xte), b.decision_function(Xte))
    assert not np.array_equal(a.decision_function(Xte), c.decision_function(Xte))


def test_early_stopping_keeps_best_epoch(binary_data):
    Xtr, _, ytr, _ = binary_data
    clf = STkClassifier(early_stopping=True, n_iter_no_change=3, random_state=0)
    clf.fit(Xtr, ytr)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_
    assert scores[clf.best_epoch_ - 1] == max(scores)
    assert clf.n_iter_ - clf.best_epoch_ >= 3 or clf.n_iter_ == clf.max_epochs


def test_predict_proba_only_for_logistic(binary_data):
    Xtr, Xte, ytr, _ = binary_data
    clf = STkClassifier(max_epochs=3, random_state=0).fit(Xtr, ytr)
    proba = clf.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert np.array_equal(
        proba.argmax(1), np.searchsorted(clf.classes_, clf.predict(Xte))
    )
    hinge = STkClassifier(loss="hinge", max_epochs=3, random_state=0).fit(Xtr, ytr)
    assert not hasattr(hinge, "predict_proba")
    assert not hasattr(SmoothTopKSVMClassifier(), "predict_proba")


def test_multiclass_string_labels_and_shapes():
    X, y = make_classification(
        n_samples=300, n_classes=4, n_informative=5, random_state=0
    )
    labels = np.array(["a", "b", "c", "d"])[y]
    for loss in ("logistic", "hinge"):
        clf = STkClassifier(loss=loss, max_epochs=30, random_state=0).fit(X, labels)
        assert clf.decision_function(X).shape == (300, 4)
        assert set(clf.predict(X)) <= set(labels)
        assert clf.score(X, labels) > 0.5


def test_regressor_fits_linear_target():
    X, y = make_regression(n_samples=300, n_features=4, noise=0.1, random_state=0)
    y = y / y.std()
    for loss in ("square", "absolute"):
        reg = STkRegressor(loss=loss, k=1.0, random_state=0).fit(X, y)
        assert reg.score(X, y) > 0.95


def test_svm_classifier_topk():
    X, y = make_classification(
        n_samples=400,
        n_classes=6,
        n_informative=6,
        n_clusters_per_class=1,
        random_state=0,
    )
    clf = SmoothTopKSVMClassifier(k=2, max_epochs=40, random_state=0).fit(X, y)
    top = clf.predict_topk(X)
    assert top.shape == (400, 2)
    assert np.array_equal(top[:, 0], clf.predict(X))
    assert np.mean([yi in row for yi, row in zip(y, top, strict=True)]) > 0.8
    hard = SmoothTopKSVMClassifier(k=2, smooth=False, max_epochs=20, random_state=0)
    assert hard.fit(X, y).score(X, y) > 0.4


def test_callable_model_and_warm_start(binary_data):
    Xtr, _, ytr, _ = binary_data

    def build(n_in, n_out):
        return torch.nn.Sequential(
            torch.nn.Linear(n_in, 8), torch.nn.Tanh(), torch.nn.Linear(8, n_out)
        )

    clf = STkClassifier(model=build, max_epochs=10, random_state=0).fit(Xtr, ytr)
    assert clf.score(Xtr, ytr) > 0.7
    warm = STkClassifier(max_epochs=3, warm_start=True, random_state=0).fit(Xtr, ytr)
    cold_first, first_epochs = warm.loss_curve_[0], warm.n_iter_
    warm.set_params(learning_rate=0.01).fit(Xtr, ytr)
    # The second fit starts from the trained weights, not from scratch, and
    # its epochs and curve continue the first's (as MLPClassifier's).
    assert warm.loss_curve_[first_epochs] < cold_first - 0.01
    assert warm.n_iter_ == first_epochs + 3 == len(warm.loss_curve_)


def test_batch_size_above_training_rows_is_clipped_with_a_warning(binary_data):
    X, _, y, _ = binary_data
    X, y = X[:40], y[:40]
    kw = dict(random_state=0, max_epochs=5, tol=0.0)
    with pytest.warns(UserWarning, match="batch_size=500 is larger than the 40"):
        big = STkClassifier(batch_size=500, **kw).fit(X, y)
    exact = STkClassifier(batch_size=40, **kw).fit(X, y)
    np.testing.assert_array_equal(big.decision_function(X), exact.decision_function(X))


def test_svm_early_stopping_follows_top_k_validation_accuracy():
    from sklearn.metrics import top_k_accuracy_score

    X, y = make_classification(
        n_samples=600, n_classes=8, n_informative=6, n_clusters_per_class=1,
        random_state=0,
    )  # fmt: skip
    clf = SmoothTopKSVMClassifier(
        k=3, early_stopping=True, max_epochs=6, n_iter_no_change=100, random_state=0
    ).fit(X, y)
    # The kept weights (the best epoch's) score the best validation value,
    # the top-3 accuracy of the validation split (drawn as fit draws it: the
    # seed first, then the split).
    rng = np.random.RandomState(0)
    rng.randint(np.iinfo(np.int32).max)
    _, val = train_test_split(
        np.arange(len(y)), test_size=clf.validation_fraction, stratify=y,
        random_state=rng,
    )  # fmt: skip
    best = max(clf.validation_scores_)
    scores = clf.decision_function(X[val])
    top3 = top_k_accuracy_score(y[val], scores, k=3, labels=clf.classes_)
    assert clf.validation_scores_[clf.best_epoch_ - 1] == best
    assert best == pytest.approx(top3, abs=1e-6)  # a float32 mean
    assert best > clf.score(X[val], y[val]) + 0.1  # not the top-1 accuracy
