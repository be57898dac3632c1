"""Estimators on data as users stream or store it: partial_fit chunks of any
size, sparse matrices, refits that change the aggregate."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

from sktopk import STkClassifier, STkRegressor
from sktopk.estimators import _base, _targets

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
    np.testing.assert_allclose(
        est.decision_function(sparse),
        dense.decision_function(X),
        rtol=1e-12,
        atol=1e-12,
    )
    mlp = STkClassifier(model="mlp", hidden_layer_sizes=(4,), **FAST).fit(X, y)
    np.testing.assert_allclose(
        mlp.predict_proba(sparse), mlp.predict_proba(X), rtol=1e-12
    )


def test_prediction_keeps_sparse_x_sparse(binary, monkeypatch):
    # The built-in models take a sparse X into the first layer as a sparse
    # product (never dense); a callable model densifies blocks of rows.
    X, y = binary
    sparse = sp.csr_matrix(np.where(np.abs(X) < 0.8, 0.0, X))
    linear = STkClassifier(**FAST).fit(X, y)
    mlp = STkClassifier(model="mlp", hidden_layer_sizes=(5,), **FAST).fit(X, y)
    expected = [e.decision_function(sparse.toarray()) for e in (linear, mlp)]

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse X was made dense")

    with monkeypatch.context() as patch:
        for name in ("toarray", "todense"):
            patch.setattr(sp.csr_matrix, name, refuse)
            patch.setattr(sp.csr_array, name, refuse)
        for est, dense in zip((linear, mlp), expected, strict=True):
            np.testing.assert_allclose(
                est.decision_function(sparse), dense, rtol=1e-12, atol=1e-12
            )
    torch.manual_seed(0)
    own = STkClassifier(model=_linear_module, **FAST).fit(X, y)
    monkeypatch.setattr("sktopk.estimators._fitted._SPARSE_ROWS", 7)  # 18 blocks
    np.testing.assert_allclose(
        own.decision_function(sparse),
        own.decision_function(sparse.toarray()),
        rtol=1e-12,
    )


def _linear_module(n_features, n_outputs):
    return torch.nn.Linear(n_features, n_outputs)


def test_dense_prediction_by_blocks_of_rows(binary, monkeypatch):
    X, y = binary
    mlp = STkClassifier(model="mlp", hidden_layer_sizes=(5,), **FAST).fit(X, y)
    whole = mlp.decision_function(X)
    monkeypatch.setattr("sktopk.estimators._fitted._PREDICT_ROWS", 7)  # 18 blocks
    np.testing.assert_allclose(mlp.decision_function(X), whole, rtol=1e-12, atol=1e-14)


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


@pytest.mark.parametrize("factor", [1.0, 1e3, 1e8])
def test_features_in_large_units_train_as_unit_spread_ones(factor):
    # Columns of spreads 2 to 2e10: each is brought to unit spread, so the
    # fit is the one on those (its weights in the user's units), where the
    # default gave R^2 -299 on X * 1000 (Ridge: 0.999).
    from sklearn.linear_model import Ridge

    X, y = make_regression(300, 4, noise=5, random_state=0)
    X = 2 * X / X.std(0)  # spreads of 2: rescaled as well
    s = factor * np.array([1.0, 10.0, 1.5, 100.0])
    for kw in ({}, {"loss": "absolute", "aggregate": "average"}):
        unit = STkRegressor(random_state=0, max_epochs=30, **kw).fit(X, y)
        scaled = STkRegressor(random_state=0, max_epochs=30, **kw).fit(X * s, y)
        np.testing.assert_allclose(scaled.coef_ * s, unit.coef_, rtol=1e-4)
        np.testing.assert_allclose(
            scaled.predict(X * s), unit.predict(X), rtol=1e-4, atol=1e-4 * y.std()
        )
        assert scaled.score(X * s, y) > Ridge().fit(X * s, y).score(X * s, y) - 0.02
    Xc, yc = make_classification(300, 4, n_informative=3, n_redundant=0, random_state=0)
    Xc = 2 * Xc / Xc.std(0)
    for model in ("linear", "mlp"):
        kw = dict(model=model, random_state=0, max_epochs=20)
        unit = STkClassifier(**kw).fit(Xc, yc)
        scaled = STkClassifier(**kw).fit(Xc * s, yc)
        np.testing.assert_allclose(
            scaled.decision_function(Xc * s),
            unit.decision_function(Xc),
            rtol=1e-3,
            atol=1e-3,
        )


def test_columns_of_unit_spread_or_less_are_only_centred():
    # Standardised features, fractions and one-hot codes train as given
    # (centred): the rule max(spread, 1) is continuous in the data, where
    # one 2 among 0/1 codes used to flip a column from unscaled to scaled.
    rng = np.random.default_rng(0)
    z = rng.normal(size=500)
    X = np.c_[(z - z.mean()) / z.std(), rng.random(500), rng.random(500) < 0.02]
    X2 = X.copy()
    X2[0, 2] = 2.0
    for data in (X, X2):
        _, scale = _base._input_standardisation(data, "linear", np.ones(500))
        np.testing.assert_allclose(scale, 1.0, rtol=1e-12)
    _, scale = _base._input_standardisation(X * 10, "linear", np.ones(500))
    np.testing.assert_allclose(scale, (X * 10).std(0))  # spreads above 1


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


# -- weights, tiny targets and refused fits ---------------------------------- #
def _linear_data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.0, 2.0, -1.0])


def test_a_zero_weight_outlier_row_moves_nothing():
    # The centring of X and the regressor's target scale are weighted: a
    # masked row far from the data leaves the fit as without it.
    X, f = _linear_data()
    X_bad, y_bad = X.copy(), f.copy()
    X_bad[0], y_bad[1] = 1e5, 1e11
    w = np.ones(len(X))
    w[:2] = 0.0
    rest = slice(2, None)
    clf = STkClassifier(random_state=0).fit(X_bad, f > 0, sample_weight=w)
    assert clf.score(X[rest], f[rest] > 0) > 0.95  # 0.475 unweighted
    for loss in ("square", "absolute"):
        reg = STkRegressor(loss=loss, random_state=0)
        reg.fit(X_bad, y_bad, sample_weight=w)
        assert reg.score(X[rest], f[rest]) > 0.99  # R^2 -20 unweighted


@pytest.mark.parametrize("degree", [1.0, 2.0])
def test_target_scale_weights_count_as_repetitions(degree):
    rng = np.random.default_rng(3)
    for _ in range(50):
        y = rng.normal(size=rng.integers(2, 9))
        w = rng.integers(0, 4, len(y)).astype(float)
        if not w.any():
            continue
        repeated = _targets.target_scale(np.repeat(y, w.astype(int)), degree)
        np.testing.assert_allclose(_targets.target_scale(y, degree, w), repeated)


@pytest.mark.parametrize("optimizer", ["adagrad", "adam", "sgd"])
def test_targets_of_tiny_spread_are_scaled_not_taken_as_constant(optimizer):
    X, f = _linear_data()
    y = (f + 0.1 * np.random.default_rng(1).normal(size=len(f))) * 1e-13
    reg = STkRegressor(optimizer=optimizer, random_state=0).fit(X, y)
    assert reg.y_scale_ < 1e-11
    assert reg.score(X, y) > 0.99  # R^2 -4.8e17 with adam before


def _fitted_state(est) -> dict:
    keys = [k for k in vars(est) if k.endswith("_") or k in ("_x_shift", "_x_scale")]
    return {k: repr(getattr(est, k)) for k in keys}


@pytest.mark.parametrize(
    ("est", "refit"),
    [
        (
            STkRegressor(**FAST),
            lambda e, X, y: e.set_params(k=150).fit(X[:100], y[:100]),
        ),
        (
            STkClassifier(warm_start=True, **FAST),
            lambda e, X, y: e.fit(X, np.where(y > 0, "yes", "no")),
        ),
        (STkClassifier(**FAST), lambda e, X, y: e.partial_fit(X[:, :2], y > 0)),
    ],
)
def test_a_refused_refit_leaves_the_fitted_estimator_as_it_was(est, refit):
    X, f = _linear_data()
    y = f if isinstance(est, STkRegressor) else f > 0
    est.fit(X, y)
    before, predictions = _fitted_state(est), est.predict(X)
    with pytest.raises(ValueError):
        refit(est, X, f)
    assert _fitted_state(est) == before
    np.testing.assert_array_equal(est.predict(X), predictions)


def test_predict_log_proba_is_the_log_of_predict_proba_without_underflow():
    X, f = _linear_data()
    for y in (f > 0, np.digitize(f, [-1.0, 1.0])):
        clf = STkClassifier(**FAST).fit(X, y)
        log_p = clf.predict_log_proba(X)
        np.testing.assert_allclose(np.exp(log_p), clf.predict_proba(X), atol=1e-12)
        far = clf.predict_log_proba(X * 1e4)  # probabilities that round to 0
        assert np.isfinite(far).all() and far.min() < -1e3
    assert not hasattr(
        STkClassifier(loss="hinge", **FAST).fit(X, f > 0), "predict_log_proba"
    )


def test_absolute_loss_target_scale_ignores_huge_outliers():
    # The median absolute deviation: one outlier of 1e9 left y_scale_ at
    # 2.5e6 with the mean absolute deviation, and the fit at an RMSE of 1e4.
    from sklearn.linear_model import QuantileRegressor

    X, f = _linear_data(400)
    y = f + 10.0 + np.random.default_rng(2).normal(size=400)
    y[0] += 1e9
    reg = STkRegressor(loss="absolute", random_state=0).fit(X, y)
    assert reg.y_scale_ < 5.0
    X_test, f_test = _linear_data(1000, seed=3)
    rmse = np.sqrt(np.mean((reg.predict(X_test) - f_test - 10.0) ** 2))
    ref = QuantileRegressor(alpha=0.0).fit(X, y).predict(X_test)
    ref_rmse = np.sqrt(np.mean((ref - f_test - 10.0) ** 2))
    assert rmse < 3 * ref_rmse + 0.1  # 0.15 against 0.08; 1.2e4 before


def test_an_integer_k_counts_weight_units_not_rows():
    # Rows of weight 0 do not count: k=50 on 400 rows and 100 rows of weight
    # 0 is k=50 on the 400 rows (it was k=40 of them).
    X, f = _linear_data(500)
    y = f + np.random.default_rng(4).standard_t(2, size=500)
    w = np.r_[np.ones(400), np.zeros(100)]
    kw = dict(aggregate="atk", k=50, max_epochs=20, tol=0.0, random_state=0)
    padded = STkRegressor(batch_size=500, **kw).fit(X, y, sample_weight=w)
    alone = STkRegressor(batch_size=400, **kw).fit(X[:400], y[:400])
    np.testing.assert_allclose(padded.coefs_[0], alone.coefs_[0], rtol=1e-5)


def test_a_threshold_stuck_above_every_loss_is_a_warning():
    # MATk with k = 1 of 300 rows under AdaGrad: large early gradients fill
    # lambda's accumulator, and its later steps (k / n) cannot bring it down
    # to the losses: the fit is poor (0.63), which must not be silent; ATk
    # (no threshold) fits (0.87).
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    stuck = STkClassifier(aggregate="matk", k=1, random_state=0)
    with pytest.warns(ConvergenceWarning, match="threshold lambda_ ended above"):
        stuck.fit(X, y)
    assert stuck.score(X, y) < 0.7
    atk = STkClassifier(aggregate="atk", k=1, random_state=0).fit(X, y)
    assert atk.score(X, y) > 0.85


def test_raw_features_of_a_large_scale_no_longer_stall_the_threshold():
    # They started the threshold far above the losses the model soon
    # reached (R^2 -6.5 where the average got 0.98); standardised inside, the
    # fit is the one on standardised features.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 5))
    y = X @ np.arange(1.0, 6.0) + rng.normal(size=1000)
    X[:, 0] *= 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        raw = STkRegressor(random_state=0).fit(X, y)
    assert raw.score(X, y) > 0.95


def test_partial_fit_chunks_lacking_a_weighted_class():
    # A class_weight dict is read over the fitted classes, as SGDClassifier's:
    # a chunk without class 0 is no error, and a fit equals sample weights.
    X, y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=0)
    clf = STkClassifier(class_weight={0: 5.0}, **FAST)
    clf.partial_fit(X[y > 0], y[y > 0], classes=[0, 1, 2])
    clf.partial_fit(X, y)
    weighted = STkClassifier(class_weight={0: 5.0, 2: 0.5}, **FAST).fit(X, y)
    w = np.select([y == 0, y == 2], [5.0, 0.5], 1.0)
    plain = STkClassifier(**FAST).fit(X, y, sample_weight=w)
    np.testing.assert_array_equal(
        weighted.decision_function(X), plain.decision_function(X)
    )
    with pytest.raises(ValueError, match=r"labels \[7\] that are not classes"):
        STkClassifier(class_weight={7: 2.0}, **FAST).fit(X, y)


def test_an_unstratified_validation_split_is_a_warning():
    X, y = make_classification(200, 6, n_informative=4, n_classes=3, random_state=0)
    y[0] = 3  # a class of one sample cannot be stratified
    clf = STkClassifier(early_stopping=True, **FAST)
    with pytest.warns(UserWarning, match="without stratification"):
        clf.fit(X, y)


def test_rows_of_weight_zero_do_not_move_the_initial_threshold():
    X, f = _linear_data(40)
    y = f + np.random.default_rng(5).normal(size=40)
    kw = dict(aggregate="matk", k=1, learning_rate=1e-12, max_epochs=1,
              random_state=0, batch_size=40)  # fmt: skip
    alone = STkRegressor(**kw).fit(X[:20], y[:20])
    padded = STkRegressor(**kw).fit(
        X, y, sample_weight=np.r_[np.ones(20), np.zeros(20)]
    )
    assert padded.lambda_ == pytest.approx(alone.lambda_, rel=1e-6)  # the largest loss


def test_the_weighted_median_does_not_depend_on_the_weights_scale():
    rng = np.random.default_rng(1)
    for _ in range(300):
        y = rng.integers(0, 5, rng.integers(1, 9)).astype(float)
        w = rng.integers(0, 4, len(y)).astype(float)
        if not w.any():
            continue
        expected = np.median(np.repeat(y, w.astype(int)))
        for scale in (1.0, 0.1, 0.3, 1 / 3):
            assert _targets._weighted_median(y, w * scale) == expected


def test_no_training_row_of_positive_weight_is_a_clear_error():
    X, f = _linear_data(40)
    w = np.zeros(40)
    w[3] = 1.0
    reg = STkRegressor(early_stopping=True, validation_fraction=0.5, random_state=1)
    with pytest.raises(ValueError, match="no training row has a positive weight"):
        reg.fit(X, f, sample_weight=w)


def test_targets_near_the_float64_limits_give_finite_predictions():
    # Their squares overflow: the spread is taken on y over its largest
    # magnitude (y_scale_ was inf, every prediction -inf).
    X = np.random.default_rng(0).standard_normal((10, 2))
    y = np.r_[1e300, -1e300, np.ones(8)]
    reg = STkRegressor(aggregate="average", random_state=0).fit(X, y)
    assert np.isfinite(reg.y_scale_) and np.isfinite(reg.predict(X)).all()
    np.testing.assert_allclose(reg.y_scale_, np.std(y / 1e300) * 1e300)


def test_one_hot_columns_are_centred_not_scaled():
    # Scaled, a rare category's column gets a large value in its few rows and
    # a weakly penalised weight, which memorises them (test accuracy 0.75
    # where the centred columns give 0.91).
    rng = np.random.default_rng(0)
    n = 2000
    one_hot = np.eye(500)[rng.integers(0, 500, n)]
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)
    X = np.hstack([x * 100, one_hot])
    shift, scale = _base._input_standardisation(X, "linear", np.ones(n))
    np.testing.assert_array_equal(scale[3:], 1.0)
    assert np.all(scale[:3] > 50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = STkClassifier(random_state=0, max_epochs=50).fit(X[:1500], y[:1500])
    assert clf.score(X[1500:], y[1500:]) > 0.88


def test_rows_of_weight_zero_do_not_move_the_scale():
    X, _ = make_classification(300, 4, random_state=0)
    w = np.ones(300)
    w[:10] = 0.0
    masked = X.copy()
    masked[:10] = 1e170  # would underflow the others' squares to 0
    got = _base._input_standardisation(masked, "linear", w)
    want = _base._input_standardisation(X[10:], "linear", np.ones(290))
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_an_integer_k_far_from_the_rows_in_weight_units_warns():
    # k counts rows in units of the smallest positive weight: with weights
    # that are not counts, one light row makes k=150 a tiny share (accuracy
    # 0.80 against 0.90); counts (repetitions) are what k counts.
    X, y = make_classification(300, 5, random_state=0)
    light = np.ones(300)
    light[0] = 1e-3
    kw = dict(aggregate="atk", k=150, max_epochs=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"299001 units for 300 rows"):
            STkClassifier(**kw).fit(X, y, sample_weight=light)
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # a UserWarning too
        counts = np.where(np.arange(300) % 2, 10.0, 1.0)
        for w in (None, counts, light * 0 + 0.5):
            STkClassifier(**kw).fit(X, y, sample_weight=w)
        STkClassifier(**{**kw, "k": 0.5}).fit(X, y, sample_weight=light)


def test_rows_of_weight_zero_do_not_move_the_target_scale():
    # The same statistics as the features': a masked target of 1e170 made
    # the others' squares underflow, so y_scale_ fell back to 1.
    y = np.r_[1e170, np.random.default_rng(0).normal(size=50)]
    w = np.r_[0.0, np.ones(50)]
    centre, scale = _targets.target_scale(y, 2.0, w)
    np.testing.assert_allclose((centre, scale), (y[1:].mean(), y[1:].std()))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adagrad"])
@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_a_column_constant_in_training_is_ignored_at_prediction(optimizer, model):
    # It gets no gradient: its random initial weights stayed (shrunk by the
    # penalty alone, to -5e-4 under sgd) and weighed the values it takes
    # only at prediction time.
    # A constant whose mean rounds off it (centred to -3e-8, which adam and
    # adagrad's steps scale up) and, under early stopping, a column constant
    # on the training rows only (the validation rows moved its mean).
    X, y = make_classification(300, 5, random_state=0)
    train = np.c_[X, np.full(300, 1e7 + 0.3)]
    est = STkClassifier(optimizer=optimizer, model=model, random_state=0)
    est.fit(train, y)
    moved = train.copy()
    moved[:, -1] = np.linspace(-1e3, 1e3, 300)
    np.testing.assert_array_equal(
        est.decision_function(moved), est.decision_function(train)
    )
    weights = est.coef_[:, -1] if model == "linear" else est.coefs_[0][-1]
    assert not weights.any()


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_regressor_network_is_in_the_units_of_y(model):
    # coefs_, intercepts_ and module_ were those of the standardised targets:
    # module_(X) gave -0.585 where predict gave -20611.
    X, y = make_regression(200, 5, noise=1.0, random_state=0)
    y = 1000 * y + 5e4
    reg = STkRegressor(model=model, max_epochs=30, random_state=0).fit(X, y)
    want = reg.predict(X)
    out = reg.module_(torch.tensor(X, dtype=torch.float32)).detach().numpy()[:, 0]
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4 * y.std())
    hidden = X
    for W, b in zip(reg.coefs_[:-1], reg.intercepts_[:-1], strict=True):
        hidden = np.maximum(hidden @ W + b, 0.0)
    rebuilt = hidden @ reg.coefs_[-1][:, 0] + reg.intercepts_[-1][0]
    np.testing.assert_allclose(rebuilt, want, rtol=1e-10, atol=1e-10 * y.std())


def test_a_warm_fit_on_other_targets_starts_from_the_fitted_function():
    X, y = make_regression(200, 5, noise=1.0, random_state=0)
    reg = STkRegressor(model="mlp", max_epochs=30, random_state=0).fit(X, y)
    before = reg.predict(X)
    frozen = dict(optimizer="sgd", learning_rate=1e-12, max_epochs=1)
    reg.set_params(warm_start=True, **frozen).fit(X, 10 * y + 300)
    np.testing.assert_allclose(reg.predict(X), before, rtol=1e-4, atol=1e-4 * y.std())


def test_early_stopping_of_the_absolute_loss_measures_absolute_errors():
    # On minus the squared error, heavy outliers among the validation rows
    # made every epoch alike: the first was kept (clean test MAE 0.86).
    rng = np.random.default_rng(0)
    X, w = rng.normal(size=(2000, 5)), rng.normal(size=5)
    y = X @ w + 0.1 * rng.normal(size=2000)
    y[rng.choice(2000, 300, replace=False)] += 100 * rng.standard_cauchy(300)
    X_test = rng.normal(size=(2000, 5))
    kw = dict(loss="absolute", aggregate="average", random_state=0)
    errors = []
    for early_stopping in (False, True):
        reg = STkRegressor(early_stopping=early_stopping, **kw).fit(X, y)
        errors.append(np.abs(reg.predict(X_test) - X_test @ w).mean())
    assert errors[0] < 0.05 and errors[1] < 2 * errors[0], errors


def test_no_penalty_with_an_infinite_c_as_logistic_regression():
    X, y = make_classification(200, 5, random_state=0)
    kw = dict(max_epochs=10, random_state=0)
    for penalty in ("l2", "l1", "elasticnet"):
        none = STkClassifier(C=np.inf, penalty=penalty, **kw).fit(X, y)
        tiny = STkClassifier(C=1e38, penalty=penalty, **kw).fit(X, y)
        np.testing.assert_array_equal(none.coef_, tiny.coef_)


def test_regressor_takes_boolean_targets_as_ridge():
    X, y = make_classification(100, 4, random_state=0)
    kw = dict(max_epochs=5, random_state=0)
    as_bool = STkRegressor(**kw).fit(X, y.astype(bool))
    as_float = STkRegressor(**kw).fit(X, y.astype(float))
    np.testing.assert_array_equal(as_bool.predict(X), as_float.predict(X))


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_a_column_constant_on_the_training_rows_but_not_the_validation_rows(model):
    X, y = make_regression(200, 3, noise=1.0, random_state=0)
    est = STkRegressor(model=model, early_stopping=True, random_state=0)
    rng = np.random.RandomState(0)
    rng.randint(np.iinfo(np.int32).max)  # the seed, drawn before the split
    _, val = est._split(200, y, "regression", rng)
    column = np.zeros(200)
    column[val] = 5.0
    est.fit(np.c_[X, column], y)
    weights = est.coef_[-1] if model == "linear" else est.coefs_[0][-1]
    assert not np.any(weights)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_an_objective_that_blows_up_is_a_divergence(early_stopping):
    # It grew from 5e3 to 1e32 in eleven epochs (R^2 -1.8e32) and was kept
    # as converged, without a warning.
    from sktopk.engine import DivergenceError

    X, y = make_regression(500, 10, noise=1.0, random_state=0)
    reg = STkRegressor(
        aggregate="maximum", optimizer="sgd", early_stopping=early_stopping,
        random_state=0,
    )  # fmt: skip
    with pytest.raises(DivergenceError, match="objective grew from .* to .*e\\+3"):
        reg.fit(X, y)


@pytest.mark.parametrize("aggregate", ["average", "stk", "atk"])
def test_weights_count_whatever_the_batch_size(aggregate):
    # Each minibatch was normalised by its own total weight: at batch_size=1
    # the weights cancelled (a weight of 1000 against 0.001 changed nothing),
    # and small batches weakened them (balanced minority recall 0.36 at 1,
    # 0.56 at 4, 0.68 at 64).
    X, y = make_classification(
        1000, weights=[0.9], flip_y=0.05, class_sep=0.5, random_state=0
    )
    recall = []
    for batch_size in (1, 64):
        clf = STkClassifier(
            aggregate=aggregate, batch_size=batch_size, max_epochs=10,
            class_weight="balanced", random_state=0,
        ).fit(X, y)  # fmt: skip
        recall.append(clf.predict(X)[y == 1].mean())
    assert min(recall) > 0.6 and abs(recall[0] - recall[1]) < 0.05, recall


def test_weights_of_any_size_give_the_same_fit():
    # The mean weight was summed in float32: weights of 1e36 over 600 rows
    # overflowed it, every step was scaled by 0 and the fit kept its zero
    # weights, reported as converged.
    X, y = make_classification(600, 5, random_state=0)
    w = np.random.default_rng(0).choice([1.0, 2.0], 600)
    fits = [
        STkClassifier(max_epochs=5, random_state=0).fit(X, y, sample_weight=w * s)
        for s in (1.0, 1e36)
    ]
    np.testing.assert_allclose(fits[1].coef_, fits[0].coef_, rtol=1e-5, atol=1e-7)


def test_validation_weights_do_not_change_how_training_rows_are_weighed():
    X, y = make_classification(300, 5, random_state=0)
    est = STkClassifier(early_stopping=True, max_epochs=3, random_state=0)
    rng = np.random.RandomState(0)
    rng.randint(np.iinfo(np.int32).max)  # the seed, drawn before the split
    _, val = est._split(300, y, "binary", rng)
    w = np.where(np.arange(300) % 3 == 0, 0.0, 1.0)  # equal positive weights
    curves = []
    for val_weight in (1.0, 2.0):
        wv = w.copy()
        wv[val] = np.where(w[val] > 0, val_weight, 0.0)
        curves.append(est.fit(X, y, sample_weight=wv).loss_curve_)
    np.testing.assert_array_equal(curves[0], curves[1])
