import math

import numpy as np
import pytest

from sktopk._validation import k_fraction, resolve_k


@pytest.mark.parametrize(
    "k, n, expected",
    [
        (1, 10, 1),
        (10, 10, 10),
        (3, 7, 3),
        (np.int64(4), 9, 4),
        (0.1, 10, 1),
        (0.25, 10, 3),
        (0.3, 10, 3),  # 0.3 * 10 = 3.0000000000000004 must not round up
        (0.7, 10, 7),
        (1.0, 10, 10),
        (1e-9, 10, 1),
        (np.float64(0.5), 5, 3),
    ],
)
def test_resolve_k(k, n, expected):
    assert resolve_k(k, n) == expected
    assert isinstance(resolve_k(k, n), int)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_k_fraction_int_is_count_over_n(k):
    assert k_fraction(k, 5) == pytest.approx(k / 5)


@pytest.mark.parametrize("k", [0.05, 0.3, 1.0])
def test_k_fraction_float_is_itself(k):
    assert k_fraction(k, 7) == k


@pytest.mark.parametrize(
    "k, n, match",
    [
        (0, 5, r"k=0 .*\[1, n=5\]"),
        (-2, 5, r"k=-2 .*\[1, n=5\]"),
        (6, 5, r"k=6 .*\[1, n=5\]"),
        (0.0, 5, r"k=0\.0 .*\(0, 1\]"),
        (-0.5, 5, r"k=-0\.5 .*\(0, 1\]"),
        (1.5, 5, r"k=1\.5 .*\(0, 1\]"),
        (math.nan, 5, r"k=nan .*\(0, 1\]"),
        (math.inf, 5, r"k=inf .*\(0, 1\]"),
    ],
)
@pytest.mark.parametrize("fn", [resolve_k, k_fraction])
def test_bad_k_raises_value_error(fn, k, n, match):
    with pytest.raises(ValueError, match=match):
        fn(k, n)


@pytest.mark.parametrize("k", [True, "3", None, 1 + 2j])
def test_bad_k_type_raises_type_error(k):
    with pytest.raises(TypeError, match="k must be an int"):
        resolve_k(k, 5)


def test_name_appears_in_message():
    with pytest.raises(ValueError, match="top_k=0"):
        resolve_k(0, 5, name="top_k")
