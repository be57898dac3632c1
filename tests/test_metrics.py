import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import f1_score

from sktopk.metrics import para_f1_score


@pytest.mark.parametrize(
    "w_true, w_est, tol, expected",
    [
        # same support, different values
        ([1.0, 0.0, -2.0], [0.1, 0.0, -5.0], 0.0, 1.0),
        # precision 1/2, recall 1/2
        ([1.0, -1.0, 0.0, 0.0], [3.0, 0.0, 0.5, 0.0], 0.0, 0.5),
        # precision 2/2, recall 2/4: F1 = 2 * 1 * 0.5 / 1.5
        ([1.0, 1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 2.0, 0.0, 0.0], 0.0, 2 / 3),
        # precision 1/4, recall 1/1
        ([0.0, 0.0, 7.0, 0.0], [1.0, 1.0, 1.0, 1.0], 0.0, 0.4),
        # disjoint supports
        ([1.0, 0.0, 0.0], [0.0, 1.0, 1.0], 0.0, 0.0),
        # an empty estimate scores 0 (no division by its empty support)
        ([1.0, 0.0, 2.0], [0.0, 0.0, 0.0], 0.0, 0.0),
        # tol removes |w| <= tol from both supports: {0} vs {0}
        ([1.0, 0.5, 0.0], [0.9, 0.0, 0.5], 0.5, 1.0),
        # ... and only those: {0, 1} vs {0, 2}
        ([1.0, 0.5, 0.0], [0.9, 0.0, 0.5], 0.49, 0.5),
        # 2-D weights (one row per output) compare entry by entry
        ([[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [0.0, 1.0]], 0.0, 0.8),
    ],
)
def test_hand_computed(w_true, w_est, tol, expected):
    assert para_f1_score(w_true, w_est, tol) == pytest.approx(expected, abs=1e-15)


def test_equals_sklearn_f1_of_support_indicators(rng):
    for _ in range(50):
        d = int(rng.integers(1, 30))
        w_true = rng.normal(size=d) * (rng.random(d) < 0.4)
        w_est = rng.normal(size=d) * (rng.random(d) < 0.4)
        tol = float(rng.choice([0.0, 0.3]))
        expected = f1_score(
            np.abs(w_true) > tol, np.abs(w_est) > tol, zero_division=1.0
        )
        got = para_f1_score(w_true, w_est, tol, zero_division=1.0)
        assert got == pytest.approx(expected, abs=1e-12)
        assert para_f1_score(w_est, w_true, tol, zero_division=1.0) == got


def test_accepts_lists_ints_and_float32():
    w = np.array([1, 0, 3], dtype=np.int64)
    assert para_f1_score(w, w.astype(np.float32)) == 1.0
    assert isinstance(para_f1_score([1, 0], [1, 0]), float)


def test_both_supports_empty():
    zeros = np.zeros(3)
    with pytest.warns(UndefinedMetricWarning, match="zero_division"):
        assert para_f1_score(zeros, zeros) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert para_f1_score(zeros, zeros, zero_division=1.0) == 1.0
        assert para_f1_score(zeros, zeros, zero_division=0.0) == 0.0
        assert np.isnan(para_f1_score(zeros, zeros, zero_division=np.nan))
        # below the tolerance counts as empty too
        assert para_f1_score([0.1, 0.0], [0.0, -0.1], 0.1, zero_division=1.0) == 1.0


@pytest.mark.parametrize(
    "w_true, w_est, kwargs, match",
    [
        ([1.0, 0.0], [1.0, 0.0, 0.0], {}, r"same shape, got \(2,\) and \(3,\)"),
        ([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], {}, "same shape"),
        ([], [], {}, "0 sample"),
        ([1.0, np.nan], [1.0, 0.0], {}, "w_true contains NaN"),
        ([1.0, 0.0], [np.inf, 0.0], {}, "w_est contains infinity"),
        (["a", "b"], [1.0, 0.0], {}, "numeric|convert"),
        (np.ones((2, 2, 2)), np.ones((2, 2, 2)), {}, "dim"),
        ([1.0], [1.0], {"tol": -0.1}, "tol must be a finite number >= 0"),
        ([1.0], [1.0], {"tol": np.nan}, "tol must be"),
        ([1.0], [1.0], {"tol": "0"}, "tol must be"),
        ([1.0], [1.0], {"tol": True}, "tol must be"),
        ([1.0], [1.0], {"zero_division": 0.5}, "zero_division must be"),
        ([1.0], [1.0], {"zero_division": "nan"}, "zero_division must be"),
    ],
)
def test_bad_input(w_true, w_est, kwargs, match):
    with pytest.raises(ValueError, match=match):
        para_f1_score(w_true, w_est, **kwargs)


def test_a_binary_coef_goes_with_a_flat_true_weight():
    # STkClassifier's and LogisticRegression's coef_ are (1, n_features).
    w_true = np.array([1.0, 0.0, 2.0, 0.0])
    w_est = np.array([[0.5, 0.3, 0.0, 0.0]])
    expected = f1_score(w_true != 0, w_est.ravel() != 0)
    assert para_f1_score(w_true, w_est) == expected == para_f1_score(w_est, w_true)
    with pytest.raises(ValueError, match="same shape"):
        para_f1_score(w_true, np.ones((2, 2)))
