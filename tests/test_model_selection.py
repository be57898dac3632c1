import math
import statistics

import numpy as np
import pytest
from scipy import stats

from sktopk.model_selection import (
    TTestResult,
    corrected_repeated_kfold_ttest,
    corrected_resampled_ttest,
)

A = [0.82, 0.85, 0.80, 0.84, 0.83]
B = [0.80, 0.82, 0.79, 0.83, 0.80]


def _t4_two_sided_p(t):
    """Two-sided p-value of Student's t with 4 degrees of freedom, closed form."""
    s = t * t / (1 + t * t / 4)
    cdf = 0.5 + 3 / 8 * abs(t) / math.sqrt(1 + t * t / 4) * (1 - s / 12)
    return 2 * (1 - cdf)


def test_hand_computed_example():
    # d = [.02, .03, .01, .01, .03]: mean .02, sample variance 1e-4.
    t, p = corrected_resampled_ttest(A, B, n_train=80, n_test=20)
    expected_t = 0.02 / math.sqrt((1 / 5 + 20 / 80) * 1e-4)
    assert t == pytest.approx(expected_t, rel=1e-9)
    assert t == pytest.approx(2.98142397, rel=1e-8)
    assert p == pytest.approx(_t4_two_sided_p(expected_t), rel=1e-9)


def test_against_pure_python(rng):
    a, b = rng.normal(0.8, 0.05, 30), rng.normal(0.78, 0.05, 30)
    d = [x - y for x, y in zip(a.tolist(), b.tolist(), strict=True)]
    n_train, n_test = 140, 60
    denominator = math.sqrt((1 / 30 + n_test / n_train) * statistics.variance(d))
    expected_t = statistics.fmean(d) / denominator
    t, p = corrected_resampled_ttest(a, b, n_train, n_test)
    assert t == pytest.approx(expected_t, rel=1e-9)
    assert p == pytest.approx(2 * stats.t.sf(abs(expected_t), 29), rel=1e-9)


@pytest.mark.parametrize("n_scores", [2, 5, 50])
def test_tiny_correction_is_paired_ttest(rng, n_scores):
    a, b = rng.normal(size=n_scores), rng.normal(size=n_scores)
    t, p = corrected_resampled_ttest(a, b, n_train=1.0, n_test=1e-15)
    reference = stats.ttest_rel(a, b)
    assert t == pytest.approx(reference.statistic, rel=1e-9)
    assert p == pytest.approx(reference.pvalue, rel=1e-9)


@pytest.mark.parametrize("ratio", [0.1, 0.25, 1.0, 3.0])
def test_correction_shrinks_paired_t(rng, ratio):
    a, b = rng.normal(size=10), rng.normal(size=10)
    t, p = corrected_resampled_ttest(a, b, n_train=100, n_test=100 * ratio)
    reference = stats.ttest_rel(a, b)
    shrink = math.sqrt((1 / 10) / (1 / 10 + ratio))
    assert t == pytest.approx(reference.statistic * shrink, rel=1e-9)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df=9), rel=1e-9)
    assert p > reference.pvalue


def test_symmetric_and_named(rng):
    a, b = rng.normal(size=8), rng.normal(size=8)
    result = corrected_resampled_ttest(a, b, 9, 1)
    swapped = corrected_resampled_ttest(b, a, 9, 1)
    assert isinstance(result, TTestResult)
    assert result.statistic == pytest.approx(-swapped.statistic)
    assert result.pvalue == pytest.approx(swapped.pvalue)
    assert 0 <= result.pvalue <= 1
    assert isinstance(result.statistic, float) and isinstance(result.pvalue, float)


def test_all_differences_zero():
    assert corrected_resampled_ttest(A, A, 80, 20) == (0.0, 1.0)


@pytest.mark.parametrize("sign", [1, -1])
def test_constant_nonzero_differences(sign):
    a = np.array([0.5, 0.25, 0.75])
    t, p = corrected_resampled_ttest(a + sign * 0.125, a, 80, 20)
    assert t == sign * math.inf and p == 0.0


@pytest.mark.parametrize(
    "a, b, match",
    [
        ([0.1, 0.2, 0.3], [0.1, 0.2], "same length"),
        ([0.1], [0.2], "At least 2"),
        ([], [], "At least 2"),
        ([[0.1, 0.2]], [[0.1, 0.2]], "1-D"),
        ([0.1, np.nan], [0.1, 0.2], "finite"),
        ([0.1, np.inf], [0.1, 0.2], "finite"),
    ],
)
def test_bad_scores(a, b, match):
    with pytest.raises(ValueError, match=match):
        corrected_resampled_ttest(a, b, 80, 20)


@pytest.mark.parametrize(
    "n_train, n_test, name",
    [(0, 20, "n_train"), (-5, 20, "n_train"), (80, 0, "n_test"),
     (80, -1.5, "n_test"), (80, np.nan, "n_test"), (True, 20, "n_train"),
     ("80", 20, "n_train")],
)  # fmt: skip
def test_bad_sizes(n_train, n_test, name):
    with pytest.raises(ValueError, match=f"{name} must be a positive number"):
        corrected_resampled_ttest(A, B, n_train, n_test)


@pytest.mark.parametrize("n_samples, n_splits", [(100, 5), (103, 10), (10, 2)])
def test_repeated_kfold_uses_fold_sizes(rng, n_samples, n_splits):
    a, b = rng.normal(size=3 * n_splits), rng.normal(size=3 * n_splits)
    result = corrected_repeated_kfold_ttest(
        a, b, n_samples=n_samples, n_splits=n_splits
    )
    # the correction term n_test / n_train of k-fold is 1 / (k - 1)
    expected = corrected_resampled_ttest(a, b, n_train=n_splits - 1, n_test=1)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-12)


@pytest.mark.parametrize(
    "n_samples, n_splits, n_scores, match",
    [(100, 1, 4, "n_splits must be"), (3, 5, 5, "n_splits must be"),
     (100, 5.0, 10, "n_splits must be"), (100, True, 10, "n_splits must be"),
     (100.0, 5, 10, "n_samples must be"), (100, 5, 12, "multiple of n_splits")],
)  # fmt: skip
def test_repeated_kfold_bad_arguments(rng, n_samples, n_splits, n_scores, match):
    a, b = rng.normal(size=n_scores), rng.normal(size=n_scores)
    with pytest.raises(ValueError, match=match):
        corrected_repeated_kfold_ttest(a, b, n_samples=n_samples, n_splits=n_splits)


def test_stk_search_cv_is_also_where_grid_search_users_look():
    import sktopk
    from sktopk.model_selection import STkSearchCV

    assert STkSearchCV is sktopk.STkSearchCV
    assert sktopk.model_selection.STkSearchCV is STkSearchCV  # submodule attribute
    with pytest.raises(AttributeError, match="no attribute 'GridSearchCV'"):
        _ = sktopk.model_selection.GridSearchCV
