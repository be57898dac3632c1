import numpy as np
import pytest
from scipy.stats import norm
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from sktopk.datasets import make_imbalanced_gaussians

# The paper's 2-D example (method.md section 5): Sigma_jk = 0.8^|j-k|,
# mu_1 = [2, 2], prior 8:2.
TWO_D = dict(n_features=2, n_informative=2, shift=2.0, rho=0.8, scale=1.0)


def paper_covariance(d: int) -> np.ndarray:
    """Sigma_jk = 0.25^(0.5 + |j - k|), written out as in the paper."""
    j, k = np.indices((d, d))
    return 0.25 ** (0.5 + np.abs(j - k))


def accuracy(X, y, coef, intercept) -> float:
    return float(np.mean((X @ coef + intercept > 0) == (y == 1)))


def test_shapes_and_class_counts_of_the_paper_setting():
    data = make_imbalanced_gaussians(random_state=0)
    for name, n, positives in (
        ("train", 10_000, 8_000),
        ("val", 2_500, 1_250),
        ("test", 2_500, 1_250),
    ):
        X, y = data[f"X_{name}"], data[f"y_{name}"]
        assert X.shape == (n, 200) and X.dtype == np.float64
        assert y.shape == (n,) and set(np.unique(y)) == {0, 1}
        assert int(y.sum()) == positives
    assert data.coef.shape == (200,)
    assert data.means.shape == (2, 200) and data.covariance.shape == (200, 200)


@pytest.mark.parametrize("ratio", [0.5, 0.1, 0.05, 0.01, 0.005, 0.001])
def test_negative_ratio_of_figure_4(ratio):
    data = make_imbalanced_gaussians(
        10_000, 10, 0, n_features=12, negative_ratio=ratio, random_state=0
    )
    assert int((data.y_train == 0).sum()) == round(10_000 * ratio)
    assert int((data.y_val == 0).sum()) == 5
    assert data.X_test.shape == (0, 12) and data.y_test.shape == (0,)


def test_shuffle_and_random_state():
    kwargs = dict(n_train=50, n_val=20, n_test=20, n_features=5, n_informative=2)
    a = make_imbalanced_gaussians(**kwargs, random_state=1)
    b = make_imbalanced_gaussians(**kwargs, random_state=1)
    c = make_imbalanced_gaussians(**kwargs, random_state=2)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.X_train, c.X_train)
    ordered = make_imbalanced_gaussians(**kwargs, shuffle=False, random_state=1)
    assert np.array_equal(ordered.y_train, np.r_[np.zeros(10), np.ones(40)])
    assert not np.array_equal(a.y_train, ordered.y_train)
    rng = np.random.RandomState(3)
    assert make_imbalanced_gaussians(**kwargs, random_state=rng).X_train.shape == (
        50,
        5,
    )


def test_two_d_example_matches_the_checked_values():
    data = make_imbalanced_gaussians(**TWO_D, random_state=0)
    np.testing.assert_allclose(data.coef, [1.111, 1.111], atol=5e-4)
    assert data.intercept == pytest.approx(-0.836, abs=5e-4)
    np.testing.assert_allclose(data.covariance, [[1.0, 0.8], [0.8, 1.0]])
    np.testing.assert_array_equal(data.means, [[0.0, 0.0], [2.0, 2.0]])


def test_paper_setting_matches_the_formula_and_the_checked_values():
    data = make_imbalanced_gaussians(n_train=1, n_val=0, n_test=0, random_state=0)
    sigma = paper_covariance(200)
    mu = np.r_[np.ones(10), np.zeros(190)]
    w = np.linalg.solve(sigma, mu)
    np.testing.assert_allclose(data.covariance, sigma, rtol=1e-14)
    np.testing.assert_allclose(data.coef, w, atol=1e-12)
    assert data.intercept == pytest.approx(-0.5 * mu @ w + np.log(8 / 2), rel=1e-12)
    assert data.test_intercept == pytest.approx(-0.5 * mu @ w, rel=1e-12)
    # method.md: 11 non-zero entries (the 11th negative), exact zeros elsewhere,
    # and a Bayes accuracy of 96.4 % on the 1:1 test distribution.
    assert np.flatnonzero(data.coef).tolist() == list(range(11))
    assert data.coef[10] < 0 and np.all(data.coef[:10] > 0)
    assert data.bayes_accuracy == pytest.approx(0.964, abs=5e-4)
    assert data.train_rule_accuracy < data.bayes_accuracy


def test_exact_zeros_for_other_covariances():
    data = make_imbalanced_gaussians(
        1, 0, 0, n_features=30, n_informative=4, shift=-1.5, rho=-0.6, scale=2.0
    )
    j, k = np.indices((30, 30))
    sigma = 2.0 * (-0.6) ** np.abs(j - k)
    mu = np.r_[np.full(4, -1.5), np.zeros(26)]
    np.testing.assert_allclose(data.coef, np.linalg.solve(sigma, mu), atol=1e-12)
    assert np.count_nonzero(data.coef) == 5
    one = make_imbalanced_gaussians(1, 0, 0, n_features=1, n_informative=1, scale=3.0)
    np.testing.assert_allclose(one.coef, [1 / 3])


def test_samples_have_the_stated_means_and_covariance():
    d = 8
    data = make_imbalanced_gaussians(
        200_000, 0, 0, n_features=d, n_informative=3, shift=1.5, random_state=0
    )
    sigma = paper_covariance(d)
    for label, mean in ((0, np.zeros(d)), (1, np.r_[np.full(3, 1.5), np.zeros(5)])):
        X = data.X_train[data.y_train == label]
        np.testing.assert_allclose(X.mean(axis=0), mean, atol=0.02)
        np.testing.assert_allclose(np.cov(X.T), sigma, atol=0.02)


def test_two_d_example_agrees_with_lda_fitted_on_a_large_sample():
    data = make_imbalanced_gaussians(200_000, 0, 0, **TWO_D, random_state=0)
    lda = LinearDiscriminantAnalysis().fit(data.X_train, data.y_train)
    np.testing.assert_allclose(lda.coef_[0], data.coef, atol=0.03)
    assert lda.intercept_[0] == pytest.approx(data.intercept, abs=0.03)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # the paper's setting, 1:1 test
        dict(n_features=20, n_informative=5, shift=0.4, test_negative_ratio=0.3),
    ],
)
def test_bayes_accuracy_against_monte_carlo(kwargs):
    n = 40_000
    data = make_imbalanced_gaussians(1, 0, n, **kwargs, random_state=0)
    X, y = data.X_test, data.y_test
    p = data.bayes_accuracy
    four_se = 4 * np.sqrt(p * (1 - p) / n)
    bayes = accuracy(X, y, data.coef, data.test_intercept)
    assert bayes == pytest.approx(data.bayes_accuracy, abs=four_se)
    train_rule = accuracy(X, y, data.coef, data.intercept)
    assert train_rule == pytest.approx(data.train_rule_accuracy, abs=four_se)
    # Bayes-optimal: other intercepts do worse (in expectation; a clear margin).
    for delta in (-2.0, 2.0):
        worse = accuracy(X, y, data.coef, data.test_intercept + delta)
        assert worse < data.bayes_accuracy - four_se


def test_bayes_accuracy_at_one_to_one_is_phi_of_half_the_distance():
    data = make_imbalanced_gaussians(1, 0, 0, n_features=50, shift=0.7)
    distance = np.sqrt(data.means[1] @ np.linalg.solve(data.covariance, data.means[1]))
    assert data.bayes_accuracy == pytest.approx(norm.cdf(distance / 2), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_train=0), "n_train must be an integer >= 1"),
        (dict(n_val=-1), "n_val must be an integer >= 0"),
        (dict(n_test=2.5), "n_test must be an integer"),
        (dict(n_features=True), "n_features must be an integer"),
        (dict(n_features=5, n_informative=6), "n_informative=6 must be <= "),
        (dict(n_informative=0), "n_informative must be an integer >= 1"),
        (dict(shift=0.0), "shift must be non-zero"),
        (dict(shift=np.inf), "shift must be a finite number"),
        (dict(rho=1.0), r"rho must be a number in \(-1, 1\)"),
        (dict(rho=-0.2), "needs rho > 0"),
        (dict(scale=0.0), "scale must be a finite number > 0"),
        (dict(negative_ratio=0.0), r"negative_ratio must be a number in \(0, 1\)"),
        (dict(test_negative_ratio=1.0), "test_negative_ratio must be"),
        (dict(negative_ratio="0.2"), "negative_ratio must be"),
        (dict(shuffle="yes"), "shuffle must be a bool"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_imbalanced_gaussians(**kwargs)
