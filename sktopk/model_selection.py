"""Statistical comparison of models evaluated on resampled data, and
:class:`~sktopk.STkSearchCV` (also importable from here, as GridSearchCV is
from ``sklearn.model_selection``).

Scores from repeated train/test splits or cross-validation folds are not
independent (the training sets overlap), so the ordinary paired t-test is too
optimistic. The corrected resampled t-test of Nadeau & Bengio (2003) widens the
variance to account for it.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

__all__ = [  # and STkSearchCV, documented at the top level
    "TTestResult",
    "corrected_repeated_kfold_ttest",
    "corrected_resampled_ttest",
]


def __getattr__(name: str):
    # STkSearchCV is also here, where GridSearchCV users look for it
    # (imported on first use: the estimators import torch).
    if name == "STkSearchCV":
        from .estimators import STkSearchCV

        return STkSearchCV
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TTestResult(NamedTuple):
    """Result of a paired t-test: unpacks as ``(statistic, pvalue)``."""

    statistic: float
    pvalue: float


def _check_scores(scores_a: ArrayLike, scores_b: ArrayLike) -> np.ndarray:
    """Validate paired scores and return their differences ``a - b``."""
    a = np.asarray(scores_a, dtype=np.float64)
    b = np.asarray(scores_b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shapes {a.shape} and {b.shape}.")
    if a.shape != b.shape:
        raise ValueError(
            f"scores_a and scores_b must have the same length, got {a.size} "
            f"and {b.size}."
        )
    if a.size < 2:
        raise ValueError(f"At least 2 paired scores are needed, got {a.size}.")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("scores must be finite (no NaN or infinity).")
    return a - b


def _check_positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def corrected_resampled_ttest(
    scores_a: ArrayLike, scores_b: ArrayLike, n_train: float, n_test: float
) -> TTestResult:
    r"""Corrected resampled t-test of Nadeau & Bengio (2003), two-sided.

    Compares two models evaluated on the same ``J`` resampled train/test
    splits. With the differences :math:`d_j = a_j - b_j`, their mean
    :math:`\bar d` and sample variance :math:`\hat\sigma^2` (``ddof=1``),

    .. math::

        t = \frac{\bar d}{\sqrt{\left(\frac{1}{J}
            + \frac{n_\mathrm{test}}{n_\mathrm{train}}\right) \hat\sigma^2}},

    compared with Student's t distribution with :math:`J - 1` degrees of
    freedom. The term :math:`n_\mathrm{test} / n_\mathrm{train}` corrects for
    the overlap of the training sets; without it this is the paired t-test
    (:func:`scipy.stats.ttest_rel`), whose type I error is far too high on
    resampled data.

    Parameters
    ----------
    scores_a, scores_b : array-like of shape (J,)
        Scores (or errors) of the two models, paired by split; ``J >= 2``.
    n_train, n_test : float
        Number of training and test samples of each split (their averages
        when the splits differ in size); positive.

    Returns
    -------
    result : TTestResult
        ``(statistic, pvalue)``. The statistic is positive when ``scores_a``
        is larger on average. When all differences are 0 the result is
        ``(0.0, 1.0)``; when they are all equal but not 0 it is
        ``(inf, 0.0)`` or ``(-inf, 0.0)``.

    Raises
    ------
    ValueError
        If the scores differ in length, are not 1-D, are fewer than 2 or not
        finite, or if ``n_train`` or ``n_test`` is not positive.

    See Also
    --------
    corrected_repeated_kfold_ttest : The same test for repeated k-fold
        cross-validation, with the sizes taken from the folds.

    References
    ----------
    C. Nadeau and Y. Bengio. "Inference for the Generalization Error".
    Machine Learning 52(3):239-281, 2003.

    Examples
    --------
    >>> from sktopk.model_selection import corrected_resampled_ttest
    >>> a = [0.82, 0.85, 0.80, 0.84, 0.83]
    >>> b = [0.80, 0.82, 0.79, 0.83, 0.80]
    >>> t, p = corrected_resampled_ttest(a, b, n_train=80, n_test=20)
    >>> round(t, 4), round(p, 4)
    (2.9814, 0.0407)

    Here :math:`\bar d = 0.02`, :math:`\hat\sigma^2 = 10^{-4}` and
    :math:`t = 0.02 / \sqrt{(1/5 + 20/80) \cdot 10^{-4}}`; the plain paired
    t-test would give ``t = 4.4721``.
    """
    diff = _check_scores(scores_a, scores_b)
    ratio = _check_positive(n_test, "n_test") / _check_positive(n_train, "n_train")
    mean, var = diff.mean(), diff.var(ddof=1)
    if var == 0:
        return _degenerate(mean)
    statistic = mean / np.sqrt((1 / diff.size + ratio) * var)
    pvalue = 2 * stats.t.sf(abs(statistic), df=diff.size - 1)
    return TTestResult(float(statistic), float(pvalue))


def _degenerate(mean: float) -> TTestResult:
    """Result for differences that are all equal (zero variance)."""
    if mean == 0:
        return TTestResult(0.0, 1.0)
    return TTestResult(float(np.copysign(np.inf, mean)), 0.0)


def corrected_repeated_kfold_ttest(
    scores_a: ArrayLike, scores_b: ArrayLike, *, n_samples: int, n_splits: int
) -> TTestResult:
    r"""Corrected resampled t-test for repeated k-fold cross-validation.

    :func:`corrected_resampled_ttest` with the average fold sizes of k-fold
    cross-validation on ``n_samples`` samples: :math:`n_\mathrm{test} = n / k`
    and :math:`n_\mathrm{train} = n - n / k`, so the correction term is
    :math:`1 / (k - 1)`. ``J`` is the number of folds times the number of
    repetitions (Bouckaert & Frank, 2004).

    Parameters
    ----------
    scores_a, scores_b : array-like of shape (n_repeats * n_splits,)
        Per-fold scores of the two models, paired by fold (e.g. from
        ``cross_val_score`` with the same ``RepeatedKFold`` and
        ``random_state`` for both).
    n_samples : int
        Number of samples that were split.
    n_splits : int
        Number of folds ``k``, at least 2 and at most ``n_samples``.

    Returns
    -------
    result : TTestResult
        ``(statistic, pvalue)``, as in :func:`corrected_resampled_ttest`.

    Raises
    ------
    ValueError
        As :func:`corrected_resampled_ttest`, and if ``n_splits`` is not an
        integer in ``[2, n_samples]`` or the number of scores is not a multiple
        of ``n_splits``.

    References
    ----------
    R. R. Bouckaert and E. Frank. "Evaluating the Replicability of
    Significance Tests for Comparing Learning Algorithms". PAKDD 2004.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from sklearn.dummy import DummyClassifier
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import RepeatedKFold, cross_val_score
    >>> from sktopk.model_selection import corrected_repeated_kfold_ttest
    >>> X, y = make_classification(n_samples=200, random_state=0)
    >>> cv = RepeatedKFold(n_splits=5, n_repeats=3, random_state=0)
    >>> a = cross_val_score(LogisticRegression(), X, y, cv=cv)
    >>> b = cross_val_score(DummyClassifier(), X, y, cv=cv)
    >>> t, p = corrected_repeated_kfold_ttest(a, b, n_samples=200, n_splits=5)
    >>> bool(t > 0 and p < 0.01)
    True
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
        raise ValueError(f"n_samples must be an integer, got {n_samples!r}.")
    valid_splits = isinstance(n_splits, Integral) and not isinstance(n_splits, bool)
    if not valid_splits or not 2 <= n_splits <= n_samples:
        raise ValueError(
            f"n_splits must be an integer in [2, n_samples={n_samples}], "
            f"got {n_splits!r}."
        )
    n_scores = np.size(scores_a)
    if n_scores % n_splits:
        raise ValueError(
            f"Expected one score per fold (a multiple of n_splits={n_splits}), "
            f"got {n_scores}."
        )
    n_test = n_samples / n_splits
    return corrected_resampled_ttest(scores_a, scores_b, n_samples - n_test, n_test)
