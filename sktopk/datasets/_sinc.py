"""The synthetic sinc regression problem of Xia et al. (2024)."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.utils import check_random_state

X_RANGE = (-10.0, 10.0)


def _check_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
    return int(value)


def sinc_features(x: ArrayLike, n_centers: int = 10) -> np.ndarray:
    """Gaussian features of a scalar input, as used for the sinc data.

    Feature ``j`` is ``exp(-(x - c_j)^2)`` for ``n_centers`` centres ``c_j``
    evenly spaced in [-10, 10] (``np.linspace(-10, 10, n_centers)``).

    Parameters
    ----------
    x : array-like of shape (n_samples,)
        Scalar inputs.
    n_centers : int, default=10
        Number of centres, i.e. of features.

    Returns
    -------
    X : ndarray of shape (n_samples, n_centers)
        The features.

    Examples
    --------
    >>> from sktopk.datasets import sinc_features
    >>> sinc_features([-10.0, 0.0], n_centers=3).round(4)
    array([[1., 0., 0.],
           [0., 1., 0.]])
    """
    n_centers = _check_int(n_centers, "n_centers")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D, got an array of shape {x.shape}.")
    centers = np.linspace(*X_RANGE, n_centers)
    return np.exp(-((x[:, None] - centers[None, :]) ** 2))


def make_sinc(
    n_samples: int = 1000,
    noise: float = 0.2,
    n_centers: int = 10,
    random_state: int | np.random.RandomState | None = None,
    *,
    return_x: bool = False,
) -> tuple[np.ndarray, ...]:
    """Generate the sinc regression problem of Xia et al. (2024).

    The inputs ``x`` are drawn uniformly from [-10, 10] and the target is

    .. math:: y = \\frac{\\sin x}{x} + \\varepsilon,
              \\quad \\varepsilon \\sim \\mathcal{N}(0, \\text{noise}^2),

    with ``sin(0)/0 = 1``. The model does not see ``x`` itself but the Gaussian
    features ``exp(-(x - c_j)^2)`` of :func:`sinc_features`. The paper uses
    10 centres but does not say where they are; here they are evenly spaced in
    [-10, 10] (``np.linspace(-10, 10, n_centers)``).

    Parameters
    ----------
    n_samples : int, default=1000
        Number of samples.
    noise : float, default=0.2
        Standard deviation of the Gaussian noise added to the target.
    n_centers : int, default=10
        Number of centres, i.e. of features.
    random_state : int, RandomState instance or None, default=None
        Seed of the draws, as in scikit-learn's ``make_*`` functions.
    return_x : bool, default=False
        Also return the scalar inputs ``x`` (e.g. to plot a fit).

    Returns
    -------
    X : ndarray of shape (n_samples, n_centers)
        The features.
    y : ndarray of shape (n_samples,)
        The noisy target, not scaled.
    x : ndarray of shape (n_samples,)
        The scalar inputs; only when ``return_x=True``.

    See Also
    --------
    sinc_features : The features of given inputs, e.g. of a grid for plotting.
    load_dataset : ``load_dataset("sinc")`` is ``make_sinc(random_state=0)``.

    References
    ----------
    Hanchen Xia, Weidong Liu, Xiaojun Mao. "ST_k: A Scalable Module for
    Solving Top-k Problems". NeurIPS 2024, Section 5.

    Examples
    --------
    >>> import numpy as np
    >>> from sktopk.datasets import make_sinc
    >>> X, y, x = make_sinc(n_samples=5, noise=0.0, random_state=0, return_x=True)
    >>> X.shape, y.shape
    ((5, 10), (5,))
    >>> bool(np.allclose(y, np.sin(x) / x))
    True
    """
    n_samples = _check_int(n_samples, "n_samples")
    if (
        isinstance(noise, bool)
        or not isinstance(noise, Real)
        or not np.isfinite(noise)
        or noise < 0
    ):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}.")
    rng = check_random_state(random_state)
    x = rng.uniform(*X_RANGE, size=n_samples)
    # np.sinc is the normalised sinc sin(pi t)/(pi t); it handles x = 0.
    y = np.sinc(x / np.pi) + rng.normal(0.0, noise, size=n_samples)
    X = sinc_features(x, n_centers)
    return (X, y, x) if return_x else (X, y)
