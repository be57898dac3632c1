"""Validation helpers shared by the losses, the engine and the estimators."""

from __future__ import annotations

import math
import numbers


def resolve_k(k: int | float, n: int, name: str = "k") -> int:
    """Turn ``k`` (an int count or a float fraction of ``n``) into a count.

    Parameters
    ----------
    k : int or float
        An integer in ``[1, n]`` or a float fraction in ``(0, 1]``; a fraction
        becomes ``ceil(k * n)`` (at least 1).
    n : int
        The number of items ``k`` is relative to.
    name : str, default="k"
        Name used in error messages.

    Returns
    -------
    int
        The count, in ``[1, n]``.

    Raises
    ------
    ValueError
        If ``k`` is out of range.
    TypeError
        If ``k`` is neither an int nor a float.

    Examples
    --------
    >>> resolve_k(3, 10), resolve_k(0.25, 10), resolve_k(1.0, 10)
    (3, 3, 10)
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise TypeError(
            f"{name} must be an int in [1, n] or a float in (0, 1]; got {k!r}"
        )
    if isinstance(k, numbers.Integral):
        if not 1 <= k <= n:
            raise ValueError(
                f"{name}={k} is out of range: an int {name} must be in [1, n={n}]"
            )
        return int(k)
    if not (0.0 < k <= 1.0) or math.isnan(k):
        raise ValueError(
            f"{name}={k!r} is out of range: a float {name} is a fraction in (0, 1]"
        )
    # Guard against 0.3 * 10 = 3.0000000000000004 rounding up to 4.
    return max(1, math.ceil(k * n - 1e-9))


def k_fraction(k: int | float, n: int, name: str = "k") -> float:
    """Return ``k`` as a fraction of ``n`` (``kappa = k / n``), validating it."""
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        return resolve_k(k, n, name) / n
    resolve_k(k, n, name)
    return float(k)
