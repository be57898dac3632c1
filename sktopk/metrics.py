"""Metrics of the top-k loss experiments.

:func:`para_f1_score` scores how well a sparse linear model recovers the
support of the true weights, the ``ParaF1`` column of Xia et al. (2024,
Table 2 and Figure 4).
"""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.utils import check_array

__all__ = ["para_f1_score"]


def _check_weights(w: ArrayLike, name: str) -> np.ndarray:
    return check_array(
        w,
        ensure_2d=False,
        dtype="numeric",
        ensure_all_finite=True,
        input_name=name,
    )


def _check_zero_division(zero_division: float | str) -> float | str:
    if zero_division == "warn":
        return zero_division
    if (
        isinstance(zero_division, Real)
        and not isinstance(zero_division, bool)
        and (zero_division in (0, 1) or np.isnan(zero_division))
    ):
        return float(zero_division)
    raise ValueError(
        f"zero_division must be 'warn', 0.0, 1.0 or np.nan, got {zero_division!r}."
    )


def _vector(w: np.ndarray) -> bool:
    """1-D, or 2-D with one row or one column."""
    return w.ndim == 1 or 1 in w.shape


def para_f1_score(
    w_true: ArrayLike,
    w_est: ArrayLike,
    tol: float = 0.0,
    *,
    zero_division: float | str = "warn",
) -> float:
    r"""F1 score of the estimated support against the true support (ParaF1).

    The support of a weight vector ``w`` is the set of indices ``j`` with
    ``|w_j| > tol``. With ``S`` the true support and ``S_hat`` the estimated
    one, precision is ``|S n S_hat| / |S_hat|``, recall is
    ``|S n S_hat| / |S|`` and the score is their harmonic mean,

    .. math:: \mathrm{ParaF1} = \frac{2 |S \cap \hat S|}{|S| + |\hat S|},

    the parameter F1 of Tian and Gu (2017) used by Xia et al. (2024). It is the
    F1 score of :func:`sklearn.metrics.f1_score` with the support indicators as
    labels.

    Parameters
    ----------
    w_true : array-like of shape (n_features,) or (n_outputs, n_features)
        The true weights (e.g. ``coef`` of
        :func:`sktopk.datasets.make_imbalanced_gaussians`). With several
        outputs, the supports of all of them are pooled (the micro-averaged
        F1 score).
    w_est : array-like of the same shape as ``w_true``
        The estimated weights; a binary classifier's ``coef_``, of shape
        ``(1, n_features)``, goes with ``w_true`` of shape ``(n_features,)``.
    tol : float, default=0.0
        Entries with ``|w_j| <= tol`` are outside the support, in both arrays.
        The default counts exact zeros only, as produced by an l1 penalty with
        a proximal (soft-thresholding) step; a small positive ``tol`` suits
        weights from a solver that only comes close to zero.
    zero_division : {"warn", 0.0, 1.0, np.nan}, default="warn"
        The score when both supports are empty (the F1 score is then 0 / 0).
        ``"warn"`` returns 0.0 and raises an ``UndefinedMetricWarning``, as
        scikit-learn's ``f1_score`` does.

    Returns
    -------
    score : float
        In [0, 1]; 1 when the two supports are equal (and not empty).

    Raises
    ------
    ValueError
        If an array is empty, not numeric, contains NaN or infinity or has
        more than two dimensions, if the shapes differ, or if ``tol`` is not a
        finite number >= 0.
    TypeError
        If a weight is a scalar rather than an array.

    References
    ----------
    Tian, Gu. "Communication-efficient distributed sparse linear discriminant
    analysis". AISTATS 2017. Xia, Liu, Mao. "ST_k: A Scalable Module for
    Solving Top-k Problems". NeurIPS 2024, Section 4.

    Examples
    --------
    >>> from sktopk.metrics import para_f1_score
    >>> w_true = [1.5, -0.5, 0.0, 0.0]
    >>> w_est = [0.9, 0.0, 0.2, 0.0]      # one of two found, one false positive
    >>> para_f1_score(w_true, w_est)
    0.5
    >>> para_f1_score(w_true, w_est, tol=0.5)  # -0.5 and 0.2 drop out
    1.0
    """
    w_true = _check_weights(w_true, "w_true")
    w_est = _check_weights(w_est, "w_est")
    if w_true.size == w_est.size and _vector(w_true) and _vector(w_est):
        # a binary classifier's coef_ (1, n_features) against (n_features,)
        w_true, w_est = w_true.ravel(), w_est.ravel()
    if w_true.shape != w_est.shape:
        raise ValueError(
            "w_true and w_est must have the same shape, got "
            f"{w_true.shape} and {w_est.shape}."
        )
    if (
        isinstance(tol, bool)
        or not isinstance(tol, Real)
        or not np.isfinite(tol)
        or tol < 0
    ):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}.")
    zero_division = _check_zero_division(zero_division)
    true_support = np.abs(w_true) > tol
    est_support = np.abs(w_est) > tol
    total = int(true_support.sum()) + int(est_support.sum())
    if total == 0:
        if zero_division == "warn":
            warnings.warn(
                "ParaF1 is ill-defined and set to 0.0: both supports are empty. "
                "Use the zero_division parameter to control this behaviour.",
                UndefinedMetricWarning,
                stacklevel=2,
            )
            return 0.0
        return zero_division
    return 2.0 * int((true_support & est_support).sum()) / total
