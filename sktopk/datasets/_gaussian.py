"""The synthetic imbalanced Gaussian problem of Xia et al. (2024, Section 4)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from scipy.stats import norm
from sklearn.utils import Bunch, check_random_state


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _check_real(value, name: str, low: float, high: float, what: str) -> float:
    """A finite real number strictly between ``low`` and ``high``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, Real)
        or not np.isfinite(value)
        or not low < value < high
    ):
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return float(value)


def _ar1_covariance(n_features: int, rho: float, scale: float) -> np.ndarray:
    """``scale * rho**|j - k|``: the covariance of the Gaussian problem."""
    lags = np.abs(np.subtract.outer(np.arange(n_features), np.arange(n_features)))
    return scale * float(rho) ** lags


def _ar1_precision_times(v: np.ndarray, rho: float, scale: float) -> np.ndarray:
    """``Sigma^-1 v`` for ``Sigma = scale * rho**|j - k|``, without a solve.

    The inverse of the AR(1) correlation matrix is tridiagonal,
    ``(1 - rho^2)^-1 * tridiag(-rho, [1, 1 + rho^2, ..., 1 + rho^2, 1], -rho)``,
    so entries of ``v`` that are zero with zero neighbours give exact zeros
    (a solve would leave rounding noise there, and a support would not be
    sparse).
    """
    d = v.shape[0]
    if d == 1:
        return v / scale
    diag = np.full(d, 1.0 + rho * rho)
    diag[[0, -1]] = 1.0
    out = diag * v
    out[1:] -= rho * v[:-1]
    out[:-1] -= rho * v[1:]
    return out / (scale * (1.0 - rho * rho)) + 0.0  # + 0.0 turns -0.0 into 0.0


def _split(n, negative_ratio, mean, chol, shuffle, rng):
    n_negative = int(round(n * negative_ratio))
    y = np.r_[np.zeros(n_negative, dtype=np.int64), np.ones(n - n_negative, np.int64)]
    if shuffle:
        y = y[rng.permutation(n)]
    X = rng.standard_normal((n, mean.shape[0])) @ chol.T + y[:, None] * mean
    return X, y


def _rule_accuracy(intercept: float, mahalanobis_sq: float, positive: float) -> float:
    """Accuracy of ``coef @ x + intercept > 0`` with ``coef = Sigma^-1 mu_1``.

    Under class 1 the score ``coef @ x`` is N(D^2, D^2), under class 0 it is
    N(0, D^2), with D^2 the squared Mahalanobis distance of the means.
    """
    d = np.sqrt(mahalanobis_sq)
    return float(
        positive * norm.cdf((mahalanobis_sq + intercept) / d)
        + (1.0 - positive) * norm.cdf(-intercept / d)
    )


def make_imbalanced_gaussians(
    n_train: int = 10_000,
    n_val: int = 2_500,
    n_test: int = 2_500,
    *,
    n_features: int = 200,
    n_informative: int = 10,
    shift: float = 1.0,
    rho: float = 0.25,
    scale: float | None = None,
    negative_ratio: float = 0.2,
    test_negative_ratio: float = 0.5,
    shuffle: bool = True,
    random_state: int | np.random.RandomState | None = None,
) -> Bunch:
    r"""Generate the imbalanced two-Gaussian problem of Xia et al. (2024).

    Class 0 (negative) is :math:`\mathcal{N}(\mu_0, \Sigma)` and class 1
    (positive) :math:`\mathcal{N}(\mu_1, \Sigma)`, with :math:`\mu_0 = 0`,
    :math:`\mu_1` equal to ``shift`` on the first ``n_informative`` features
    and 0 elsewhere, and :math:`\Sigma_{jk} = s \rho^{|j - k|}`, where
    :math:`s` is ``scale`` (by default :math:`\sqrt{\rho}`, which gives the
    paper's :math:`\Sigma_{jk} = \rho^{0.5 + |j - k|}`). The defaults are the
    paper's Table 2: 200 features, 10 informative, :math:`\rho = 0.25`, a
    training set of 10,000 rows at positive:negative 8:2, validation and test
    sets of 2,500 rows at 1:1.

    The theoretical (Bayes-optimal) linear rule for the training distribution
    is [Xia et al., Eq. 8, with the sign of the printed :math:`b^*` corrected]

    .. math::
        w^* = \Sigma^{-1} (\mu_1 - \mu_0), \qquad
        b^* = -\tfrac12 (\mu_1^\top \Sigma^{-1} \mu_1
              - \mu_0^\top \Sigma^{-1} \mu_0)
              + \ln \frac{P(y = 1)}{P(y = 0)}.

    :math:`\Sigma^{-1}` is tridiagonal, so :math:`w^*` has
    ``n_informative + 1`` non-zero entries, not ``n_informative`` (with the
    defaults, ``rho > 0`` and ``shift > 0``, the last one is negative; all
    ``n_features`` entries when ``n_informative = n_features``). With
    :math:`\Delta^2 = (\mu_1 - \mu_0)^\top \Sigma^{-1} (\mu_1 - \mu_0)`, the
    score :math:`w^{*\top} x` is
    :math:`\mathcal{N}(\Delta^2, \Delta^2)` under class 1 and
    :math:`\mathcal{N}(0, \Delta^2)` under class 0, which gives the accuracy
    of any intercept in closed form; the Bayes accuracy on the test
    distribution (positive fraction :math:`\pi`, log-odds
    :math:`c = \ln(\pi / (1 - \pi))`) is
    :math:`\pi \Phi((\Delta^2/2 + c)/\Delta)
    + (1 - \pi) \Phi((\Delta^2/2 - c)/\Delta)`,
    :math:`\Phi(\Delta / 2)` at 1:1.

    Parameters
    ----------
    n_train, n_val, n_test : int, default=10000, 2500, 2500
        Rows of the training, validation and test sets (``n_train >= 1``; the
        others may be 0).
    n_features : int, default=200
        Dimension ``d``.
    n_informative : int, default=10
        Number of leading features where the class means differ.
    shift : float, default=1.0
        Value of :math:`\mu_1` on the informative features (non-zero).
    rho : float, default=0.25
        Correlation base of :math:`\Sigma`, in (-1, 1).
    scale : float or None, default=None
        Variance of each feature, > 0; None means :math:`\sqrt{\rho}` (the
        paper's :math:`\rho^{0.5 + |j - k|}`, which needs ``rho > 0``).
    negative_ratio : float, default=0.2
        Fraction of negatives (class 0) in the training set, in (0, 1); the
        number of negatives is ``round(n_train * negative_ratio)``. The paper's
        Figure 4 varies it over {0.5, 0.1, 0.05, 0.01, 0.005, 0.001}.
    test_negative_ratio : float, default=0.5
        The same for the validation and test sets.
    shuffle : bool, default=True
        Shuffle the rows; otherwise the negatives come first in each set.
    random_state : int, RandomState instance or None, default=None
        Seed of the draws, as in scikit-learn's ``make_*`` functions.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With the fields

        X_train, X_val, X_test : ndarray of shape (n_rows, n_features)
            The features of each set.
        y_train, y_val, y_test : ndarray of shape (n_rows,)
            Labels in {0, 1}; 1 is the positive class, of mean :math:`\mu_1`.
        coef : ndarray of shape (n_features,)
            :math:`w^*`, with exact zeros outside its support.
        intercept : float
            :math:`b^*` for the training prior (the paper's).
        test_intercept : float
            :math:`b^*` for the test prior: the intercept of the Bayes rule
            on the validation and test distribution.
        bayes_accuracy : float
            Accuracy of ``(coef, test_intercept)`` on the test distribution:
            the best any classifier can reach there, on average.
        train_rule_accuracy : float
            Accuracy of ``(coef, intercept)`` on the test distribution: what
            the Bayes rule of the training distribution reaches there.
        means : ndarray of shape (2, n_features)
            :math:`\mu_0` and :math:`\mu_1`.
        covariance : ndarray of shape (n_features, n_features)
            :math:`\Sigma`.

    Raises
    ------
    ValueError
        If a parameter is out of its range.

    See Also
    --------
    sktopk.metrics.para_f1_score : Support recovery of a learned ``coef``.

    References
    ----------
    Hanchen Xia, Weidong Liu, Xiaojun Mao. "ST_k: A Scalable Module for
    Solving Top-k Problems". NeurIPS 2024, Section 4 (Table 2, Figures 3-4).

    Examples
    --------
    >>> import numpy as np
    >>> from sktopk.datasets import make_imbalanced_gaussians
    >>> data = make_imbalanced_gaussians(random_state=0)
    >>> data.X_train.shape, data.X_test.shape
    ((10000, 200), (2500, 200))
    >>> float(data.y_train.mean()), float(data.y_test.mean())
    (0.8, 0.5)
    >>> int(np.count_nonzero(data.coef)), round(data.bayes_accuracy, 3)
    (11, 0.964)

    The 2-D example of the paper's Figure 3:

    >>> two = make_imbalanced_gaussians(
    ...     n_features=2, n_informative=2, shift=2.0, rho=0.8, scale=1.0,
    ...     random_state=0)
    >>> two.coef.round(3), round(two.intercept, 3)
    (array([1.111, 1.111]), -0.836)
    """
    n_train = _check_count(n_train, "n_train", 1)
    n_val = _check_count(n_val, "n_val", 0)
    n_test = _check_count(n_test, "n_test", 0)
    n_features = _check_count(n_features, "n_features", 1)
    n_informative = _check_count(n_informative, "n_informative", 1)
    if n_informative > n_features:
        raise ValueError(
            f"n_informative={n_informative} must be <= n_features={n_features}."
        )
    shift = _check_real(shift, "shift", -np.inf, np.inf, "a finite number")
    if shift == 0:
        raise ValueError("shift must be non-zero (the classes would be the same).")
    rho = _check_real(rho, "rho", -1.0, 1.0, "a number in (-1, 1)")
    if scale is None:
        if rho <= 0:
            raise ValueError("scale=None (sqrt(rho)) needs rho > 0; give a scale.")
        scale = np.sqrt(rho)
    scale = _check_real(scale, "scale", 0.0, np.inf, "a finite number > 0")
    ratios = [
        _check_real(value, name, 0.0, 1.0, "a number in (0, 1)")
        for value, name in (
            (negative_ratio, "negative_ratio"),
            (test_negative_ratio, "test_negative_ratio"),
        )
    ]
    if not isinstance(shuffle, bool | np.bool_):
        raise ValueError(f"shuffle must be a bool, got {shuffle!r}.")
    rng = check_random_state(random_state)

    mean = np.zeros(n_features)
    mean[:n_informative] = shift
    covariance = _ar1_covariance(n_features, rho, scale)
    coef = _ar1_precision_times(mean, rho, scale)
    mahalanobis_sq = float(mean @ coef)
    train_odds, test_odds = (np.log((1.0 - r) / r) for r in ratios)
    intercept = -0.5 * mahalanobis_sq + train_odds
    test_intercept = -0.5 * mahalanobis_sq + test_odds
    positive = 1.0 - ratios[1]

    chol = np.linalg.cholesky(covariance)
    sets = {}
    for name, n, ratio in (
        ("train", n_train, ratios[0]),
        ("val", n_val, ratios[1]),
        ("test", n_test, ratios[1]),
    ):
        sets[f"X_{name}"], sets[f"y_{name}"] = _split(
            n, ratio, mean, chol, shuffle, rng
        )
    return Bunch(
        **sets,
        coef=coef,
        intercept=float(intercept),
        test_intercept=float(test_intercept),
        bayes_accuracy=_rule_accuracy(test_intercept, mahalanobis_sq, positive),
        train_rule_accuracy=_rule_accuracy(intercept, mahalanobis_sq, positive),
        means=np.stack([np.zeros(n_features), mean]),
        covariance=covariance,
    )
