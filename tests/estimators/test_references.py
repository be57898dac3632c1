"""The estimators against independent references: the training objective of
the initial model against the loss written out from its definition (and the
library's loss functions called on the fitted model's outputs), and
converged l2-penalised fits against scikit-learn's LogisticRegression and
Ridge.

The first-epoch objective ``loss_curve_[0]`` is, for a full batch, the
aggregate of the individual losses of the initial model plus the penalty
``||W||^2 / (2 C)`` of the weights after the epoch's step. With a learning
rate of 1e-12 that step leaves the weights as they were, so the fitted
model's outputs are the initial model's (the model trains on standardised X
and predicts on raw X, the same function by construction).
"""

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import expit, log_expit, logsumexp, softmax
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from sktopk import SmoothTopKSVMClassifier, STkClassifier, STkRegressor
from sktopk.losses import functional as F

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# One full-batch step too small to move float32 weights: the initial model.
FROZEN = dict(optimizer="sgd", learning_rate=1e-12, max_epochs=1, random_state=0)


def l2_penalty(est) -> float:
    """``||W||^2 / (2 C)`` over the weight matrices (not the biases), those of
    the standardised features the model trains on: the first layer's times
    the features' scales (and a regressor's last layer over y's scale)."""
    weights = [est.coefs_[0] * est._x_scale[:, None], *est.coefs_[1:]]
    weights[-1] = weights[-1] / getattr(est, "y_scale_", 1.0)
    return sum(float((W.astype(np.float64) ** 2).sum()) for W in weights) / (2 * est.C)


# --- the smooth top-k SVM: margin, tau and smooth reach the loss -------------- #


def topk_svm_by_subsets(scores, y, k, margin, tau, smooth):
    """Berrada et al.'s loss from its definition, over the k-subsets A of the
    classes: ``tau log sum_A exp((margin [y not in A] + mean_A s) / tau) -
    tau log sum_{A containing y} exp(mean_A s / tau)`` (max for max when not
    smooth); the mean over the samples."""
    subsets = [list(A) for A in itertools.combinations(range(scores.shape[1]), k)]
    values = []
    for s, label in zip(scores, y, strict=True):
        every = np.array([margin * (label not in A) + s[A].mean() for A in subsets])
        having = np.array([s[A].mean() for A in subsets if label in A])
        if smooth:
            values.append(tau * (logsumexp(every / tau) - logsumexp(having / tau)))
        else:
            values.append(every.max() - having.max())
    return float(np.mean(values))


@pytest.fixture(scope="module")
def four_classes():
    rng = np.random.default_rng(0)
    n = 60
    X = 3 * rng.normal(size=(n, 4)) + 5  # spread scores: tau matters
    return X, rng.integers(0, 4, size=n)


@pytest.mark.parametrize(
    "margin, tau, smooth",
    [(1.0, 1.0, True), (0.3, 0.2, True), (2.5, 3.0, True), (1.7, 1.0, False)],
)
def test_svm_first_objective_is_the_loss_of_the_initial_model(
    four_classes, margin, tau, smooth
):
    X, y = four_classes
    est = SmoothTopKSVMClassifier(
        k=2, margin=margin, tau=tau, smooth=smooth, C=7.0, batch_size=len(y), **FROZEN
    ).fit(X, y)
    scores = est.decision_function(X)
    ref = topk_svm_by_subsets(scores, y, 2, margin, tau, smooth)
    s, labels = torch.tensor(scores), torch.tensor(y)
    if smooth:
        lib = F.smooth_topk_svm(s, labels, k=2, margin=margin, tau=tau)
    else:
        lib = F.topk_svm(s, labels, k=2, margin=margin)
    np.testing.assert_allclose(float(lib), ref, rtol=1e-10)
    penalty = l2_penalty(est)
    assert penalty > 0.05  # the penalty is checked too (C = 7)
    np.testing.assert_allclose(est.loss_curve_[0], ref + penalty, rtol=1e-5)


def test_svm_margin_tau_and_smooth_change_the_objective(four_classes):
    # The cases above differ by far more than their tolerance (1e-5).
    X, y = four_classes
    curves = [
        SmoothTopKSVMClassifier(
            k=2, margin=m, tau=t, smooth=s, batch_size=len(y), **FROZEN
        )
        .fit(X, y)
        .loss_curve_[0]
        for m, t, s in [(1.0, 1.0, True), (2.0, 1.0, True), (1.0, 0.2, True),
                        (1.0, 1.0, False)]
    ]  # fmt: skip
    gaps = np.abs(np.subtract.outer(curves, curves))[np.triu_indices(4, 1)]
    assert gaps.min() > 1e-3, curves  # 100 times that tolerance


# --- STk: the smoothing reaches the objective ---------------------------------- #

SMOOTHINGS = [("srelu", 0.5), ("softplus", 0.5), ("elu", 0.5), ("leaky_relu", 0.3)]


def smoothed_relu(name, x, delta):
    """The ReLU replacements of Xia et al. (2024), written out."""
    if name == "srelu":
        return (x + np.sqrt(x * x + delta * delta) - delta) / 2
    if name == "softplus":
        return delta * np.logaddexp(0.0, x / delta)
    if name == "elu":
        return np.where(x > 0, x, delta * np.expm1(np.minimum(x, 0.0) / delta))
    assert name == "leaky_relu"
    return np.where(x > 0, x, delta * x)


def stk_of_initial_losses(losses, k, delta, smoothing):
    """STk at lambda = the k-th largest loss (where training starts it):
    ``mean phi(l - lam) + (k / n) lam``; and that lambda."""
    lam = np.sort(losses)[::-1][k - 1]
    value = smoothed_relu(smoothing, losses - lam, delta).mean()
    return value + k / len(losses) * lam, lam


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    n = 50
    X = 2 * rng.normal(size=(n, 3)) + 1
    y = (rng.random(n) < 0.5).astype(int)
    y_reg = 7 * rng.normal(size=n) + 3
    return X, y, y_reg


def frozen_stk(cls, loss, X, y, smoothing, delta, k=20):
    """``cls`` fitted on the initial model's step (STk, ``k`` rows, C = 5)."""
    return cls(
        aggregate="stk", loss=loss, k=k, delta=delta, smoothing=smoothing,
        C=5.0, batch_size=len(y), **FROZEN,
    ).fit(X, y)  # fmt: skip


@pytest.mark.parametrize("smoothing, delta", SMOOTHINGS)
def test_stk_classifier_first_objective_uses_the_smoothing(small, smoothing, delta):
    X, y, _ = small
    k = 20
    est = frozen_stk(STkClassifier, "logistic", X, y, smoothing, delta, k)
    margins = np.where(y == 1, 1.0, -1.0) * est.decision_function(X)
    losses = -log_expit(margins)  # log(1 + exp(-y f))
    ref, lam = stk_of_initial_losses(losses, k, delta, smoothing)
    lib = F.stk(torch.tensor(losses), float(lam), k=k, delta=delta, smoothing=smoothing)
    np.testing.assert_allclose(float(lib), ref, rtol=1e-10)
    np.testing.assert_allclose(est.lambda_, lam, rtol=1e-5)
    np.testing.assert_allclose(est.loss_curve_[0], ref + l2_penalty(est), rtol=1e-5)


@pytest.mark.parametrize("smoothing, delta", SMOOTHINGS)
def test_stk_regressor_first_objective_uses_the_smoothing(small, smoothing, delta):
    # The regressor trains on z = (y - mean) / std; lambda_ is in y's units.
    X, _, y = small
    k = 20
    est = frozen_stk(STkRegressor, "square", X, y, smoothing, delta, k)
    z = (y - y.mean()) / y.std()
    out = (est.predict(X) - y.mean()) / y.std()
    ref, lam = stk_of_initial_losses((z - out) ** 2, k, delta, smoothing)
    np.testing.assert_allclose(est.lambda_, lam * y.var(), rtol=1e-5)
    np.testing.assert_allclose(est.loss_curve_[0], ref + l2_penalty(est), rtol=1e-5)


def test_the_four_smoothings_give_four_objectives(small):
    X, y, _ = small
    curves = [
        STkClassifier(
            k=20, delta=delta, smoothing=smoothing, batch_size=len(y), **FROZEN
        )
        .fit(X, y)
        .loss_curve_[0]
        for smoothing, delta in [(s, 0.5) for s, _ in SMOOTHINGS]
    ]
    gaps = np.abs(np.subtract.outer(curves, curves))[np.triu_indices(4, 1)]
    assert gaps.min() > 1e-3, curves


# --- the l2 penalty: converged fits against scikit-learn -------------------- #

# Full batch, plain gradient descent, stopped when the objective stops
# improving in float32.
CONVERGED = dict(
    aggregate="average", optimizer="sgd", max_epochs=3000, tol=0.0,
    n_iter_no_change=20, random_state=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def standardised():
    rng = np.random.default_rng(2)
    n = 200
    X = rng.normal(size=(n, 5)) * [1, 2, 0.5, 1, 3] + [0, 1, -2, 5, 0]
    X = StandardScaler().fit_transform(X)
    w = np.array([1.5, -1.0, 0.5, 0.0, 2.0])
    y = (X @ w + 0.3 + rng.logistic(size=n) > 0).astype(int)
    W = rng.normal(size=(5, 3))
    y3 = (X @ W + rng.gumbel(size=(n, 3))).argmax(1)
    y_reg = 50 + 10 * (X @ w + rng.normal(size=n))
    return X, y, y3, y_reg


def logistic_pair(X, y, C_sklearn):
    """Ours and LogisticRegression on one objective. Ours is ``mean loss +
    ||W||^2 / (2 C)``; scikit-learn's ``C_sk sum loss + ||W||^2 / 2`` is
    ``C_sk n`` times ``mean loss + ||W||^2 / (2 C_sk n)``: C = C_sk n (both
    leave the intercepts unpenalised)."""
    ref = LogisticRegression(C=C_sklearn, tol=1e-12, max_iter=10_000).fit(X, y)
    ours = STkClassifier(
        loss="logistic", C=C_sklearn * len(y), learning_rate=1.0,
        batch_size=len(y), **CONVERGED,
    ).fit(X, y)  # fmt: skip
    assert ours.n_iter_ < CONVERGED["max_epochs"]
    return ours, ref


@pytest.mark.parametrize("C_sklearn", [0.01, 0.05])
def test_l2_logistic_matches_logistic_regression(standardised, C_sklearn):
    # A twice stronger penalty moves these coefficients by more than 0.05.
    X, y, _, _ = standardised
    ours, ref = logistic_pair(X, y, C_sklearn)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-4)


def test_l2_logistic_on_features_in_large_units_matches_a_scaled_one(
    standardised,
):
    # The penalty is on the weights of the rescaled features: on raw features
    # of spreads of 1 or more, the coefficients are those of
    # LogisticRegression after a StandardScaler, in the raw features' units.
    from sklearn.pipeline import make_pipeline

    X, y, _, _ = standardised
    # Spreads of 1 or more (the standardised X times s): each is brought to 1.
    s, m = np.array([1.0, 1.5, 50.0, 1e4, 2.0]), np.array([0, 5, -1, 1e3, 0])
    raw = X * s + m
    ref = make_pipeline(
        StandardScaler(), LogisticRegression(C=0.05, tol=1e-12, max_iter=10_000)
    ).fit(raw, y)
    ours = STkClassifier(
        loss="logistic", C=0.05 * len(y), learning_rate=1.0,
        batch_size=len(y), **CONVERGED,
    ).fit(raw, y)  # fmt: skip
    sc, lr = ref[0], ref[1]
    np.testing.assert_allclose(ours.coef_ * sc.scale_, lr.coef_, atol=1e-4)
    np.testing.assert_allclose(
        ours.decision_function(raw), ref.decision_function(raw), atol=1e-3
    )


def test_l2_square_loss_matches_ridge_on_raw_targets(standardised):
    # Ours trains on z = (y - mean) / std: mean (z - Xw - b)^2 + ||w||^2 / (2 C)
    # is Ridge's ||z - Xw - b||^2 + alpha ||w||^2 over n with alpha = n / (2 C).
    # Ridge is equivariant in y (the same alpha), and so is coef_ (std w).
    X, _, _, y = standardised
    C = 2.0
    ref = Ridge(alpha=len(y) / (2 * C)).fit(X, y)
    ours = STkRegressor(
        loss="square", C=C, learning_rate=0.3, batch_size=len(y), **CONVERGED
    ).fit(X, y)
    assert ours.n_iter_ < CONVERGED["max_epochs"]
    scale = np.abs(ref.coef_).max()  # about 15
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4 * scale)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, atol=1e-4 * scale)
    z_ref = Ridge(alpha=len(y) / (2 * C)).fit(X, (y - y.mean()) / y.std())
    # coefs_ are in the units of y, as coef_ (the network trains on z).
    np.testing.assert_allclose(ours.coefs_[0][:, 0], ours.coef_, rtol=1e-12)
    np.testing.assert_allclose(ours.coef_ / ours.y_scale_, z_ref.coef_, atol=1e-5)


# --- predict_proba ------------------------------------------------------------ #


def test_predict_proba_is_the_sigmoid_or_softmax_of_the_scores(standardised):
    X, y, y3, _ = standardised
    fast = dict(max_epochs=5, random_state=0)
    binary = STkClassifier(**fast).fit(X, y)
    s = binary.decision_function(X)
    assert s.ndim == 1 and np.ptp(s) > 1  # not all near 0, where 2s ~ s
    p = expit(s)
    np.testing.assert_allclose(
        binary.predict_proba(X), np.column_stack([1 - p, p]), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(
        binary.predict_log_proba(X), np.log(binary.predict_proba(X)), rtol=1e-9
    )
    multi = STkClassifier(**fast).fit(X, y3)
    S = multi.decision_function(X)
    assert S.shape == (len(y3), 3) and np.ptp(S) > 1
    np.testing.assert_allclose(
        multi.predict_proba(X), softmax(S, axis=1), rtol=1e-12, atol=1e-15
    )
    np.testing.assert_allclose(
        multi.predict_log_proba(X), np.log(multi.predict_proba(X)), rtol=1e-9
    )


def test_predict_proba_matches_logistic_regression_binary(standardised):
    X, y, _, _ = standardised
    ours, ref = logistic_pair(X, y, 0.05)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def test_predict_proba_matches_logistic_regression_multiclass(standardised):
    # Softmax cross-entropy with ||W||^2 / (2 C) over all K columns is
    # scikit-learn's multinomial objective over C_sk n (C = C_sk n).
    X, _, y, _ = standardised
    ours, ref = logistic_pair(X, y, 0.05)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-4)
    # The overparametrised coefficients: both penalties pick the centred ones.
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-3)
    assert math.isclose(ours.predict_proba(X).sum(), len(y), rel_tol=1e-12)
