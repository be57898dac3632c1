"""Estimators on data as users stream or store it: partial_fit chunks of any
size, sparse matrices, refits that change the aggregate."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification, make_regression

from sktopk import STkClassifier, STkRegressor
from sktopk.estimators import _base

FAST = dict(max_epochs=5, random_state=0)
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def binary():
    return make_classification(120, 6, random_state=0)


def test_partial_fit_keeps_the_first_calls_fraction_for_an_integer_k(binary):
    X, y = binary
    stream = STkClassifier(k=50, aggregate="atk", random_state=0)
    stream.partial_fit(X[:100], y[:100], classes=[0, 1])  # k: half the rows
    stream.partial_fit(X[100:120], y[100:120])  # 20 rows, fewer than k
    # The same as a fraction: 50 of the first call's 100 rows.
    fraction = STkClassifier(k=0.5, aggregate="atk", random_state=0)
    fraction.partial_fit(X[:100], y[:100], classes=[0, 1])
    fraction.partial_fit(X[100:120], y[100:120])
    for a, b in zip(stream.coefs_, fraction.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_constant_first_partial_fit_warns_that_it_fixes_the_scale():
    X, y = make_regression(50, 3, random_state=0)
    first = STkRegressor(random_state=0)
    with pytest.warns(UserWarning, match="y_scale_ is 1"):
        first.partial_fit(X[:1], y[:1] * 1000 + 5e4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # later calls, and a first of several
        first.partial_fit(X[1:], y[1:] * 1000 + 5e4)
        STkRegressor(random_state=0).partial_fit(X[:2], y[:2])
    assert first.y_scale_ == 1.0


def test_a_refit_without_a_threshold_drops_lambda(binary):
    X, y = binary
    est = STkClassifier(aggregate="stk", **FAST).fit(X, y)
    assert hasattr(est, "lambda_")
    est.set_params(aggregate="average").fit(X, y)
    assert not hasattr(est, "lambda_")


def test_an_integer_k_beyond_the_training_rows_names_early_stopping(binary):
    X, y = binary
    STkClassifier(k=len(X), **FAST).fit(X, y)  # every row trains
    est = STkClassifier(k=len(X), early_stopping=True, **FAST)
    with pytest.raises(ValueError, match="validation_fraction=0.1"):
        est.fit(X, y)


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_x_gives_the_dense_results(binary, fmt):
    X, y = binary
    X = np.where(np.abs(X) < 0.8, 0.0, X)
    sparse = sp.csr_matrix(X).asformat(fmt)
    dense = STkClassifier(**FAST).fit(X, y)
    est = STkClassifier(**FAST).fit(sparse, y)
    for a, b in zip(est.coefs_, dense.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(
        est.decision_function(sparse), dense.decision_function(X)
    )
    mlp = STkClassifier(model="mlp", hidden_layer_sizes=(4,), **FAST).fit(X, y)
    np.testing.assert_allclose(
        mlp.predict_proba(sparse), mlp.predict_proba(X), rtol=1e-12
    )


def test_prediction_keeps_sparse_x_sparse(binary, monkeypatch):
    X, y = binary
    est = STkClassifier(**FAST).fit(X, y)
    monkeypatch.setattr("sktopk.estimators._fitted._SPARSE_ROWS", 7)  # 18 chunks
    sparse = sp.csr_matrix(np.where(np.abs(X) < 0.8, 0.0, X))
    np.testing.assert_allclose(
        est.decision_function(sparse),
        est.decision_function(sparse.toarray()),
        rtol=1e-12,
    )


def test_a_large_sparse_x_warns_before_it_is_made_dense(binary, monkeypatch):
    X, y = binary
    monkeypatch.setattr(_base, "DENSE_WARNING_BYTES", X.size * 4)
    with pytest.warns(UserWarning, match="training needs it dense"):
        STkClassifier(**FAST).fit(sp.csr_matrix(X.astype(np.float64)), y)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_warm_fits_count_epochs_and_curves_on(binary, early_stopping):
    X, y = binary
    kw = dict(early_stopping=early_stopping, n_iter_no_change=2, max_epochs=8)
    est = STkClassifier(warm_start=True, random_state=0, **kw).fit(X, y)
    first = (est.n_iter_, est.best_epoch_, list(est.validation_scores_ or []))
    est.fit(X, y)
    assert est.n_iter_ > first[0] and len(est.loss_curve_) == est.n_iter_
    assert first[0] < est.best_epoch_ <= est.n_iter_  # in the second fit
    if early_stopping:
        assert len(est.validation_scores_) == est.n_iter_
        assert est.validation_scores_[: len(first[2])] == first[2]
    else:
        assert est.best_epoch_ == est.n_iter_


def test_partial_fit_counts_epochs_on(binary):
    X, y = binary
    est = STkClassifier(random_state=0)
    for _ in range(3):
        est.partial_fit(X, y, classes=[0, 1])
    assert est.n_iter_ == est.best_epoch_ == len(est.loss_curve_) == 3


@pytest.mark.parametrize("offset", [2000.0, 1e6])
def test_features_far_from_zero_train_as_centred_ones(offset):
    # A year or a price as a feature: the fit is the one on centred features
    # (the shift folded into the bias), where Ridge and LogisticRegression
    # are indifferent to it too.
    from sklearn.linear_model import Ridge

    X, y = make_regression(300, 4, noise=5, random_state=0)
    near = STkRegressor(random_state=0, max_epochs=30).fit(X, y)
    far = STkRegressor(random_state=0, max_epochs=30).fit(X + offset, y)
    for a, b in zip(far.coefs_, near.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(
        far.predict(X + offset), near.predict(X), rtol=1e-4, atol=1e-3 * y.std()
    )
    ridge = Ridge().fit(X + offset, y).score(X + offset, y)
    assert far.score(X + offset, y) > ridge - 0.01
    Xc, yc = make_classification(300, 5, random_state=0)
    for model in ("linear", "mlp"):
        kw = dict(model=model, random_state=0, max_epochs=20)
        near = STkClassifier(**kw).fit(Xc, yc)
        far = STkClassifier(**kw).fit(Xc + offset, yc)
        np.testing.assert_allclose(
            far.decision_function(Xc + offset),
            near.decision_function(Xc),
            rtol=1e-3,
            atol=1e-3,
        )


def test_warm_fits_and_partial_fit_keep_working_far_from_zero():
    X, y = make_regression(400, 3, noise=1, random_state=0)
    X = X + 2000.0
    est = STkRegressor(random_state=0, warm_start=True, max_epochs=10).fit(X, y)
    before = est.score(X, y)
    est.fit(X, y)  # continues from the fitted weights
    assert est.score(X, y) >= before - 1e-3 and before > 0.9
    stream = STkRegressor(random_state=0)
    stream.partial_fit(X[:50], y[:50])
    for i in range(50, 400, 1):  # one sample at a time
        stream.partial_fit(X[i : i + 1], y[i : i + 1])
    assert stream.score(X, y) > 0.9
