"""Standardising regression targets for training, equivariantly."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..losses import get_individual_loss
from ._statistics import rms_deviation

__all__ = ["loss_degree", "target_scale"]


def loss_degree(name: str) -> float:
    """Degree ``p`` of a regression loss: ``l(a r) = a^p l(r)`` for ``a > 0``.

    Read from the loss's own definition (its value at residuals 1 and 2), so a
    registered loss needs no entry here: 2 for the square loss, 1 for the
    absolute loss.

    Examples
    --------
    >>> loss_degree("square"), loss_degree("absolute")
    (2.0, 1.0)
    """
    value = get_individual_loss(name).value
    f = torch.zeros(2, dtype=torch.float64)
    out = value(f, torch.tensor([1.0, 2.0], dtype=torch.float64))
    return float(round(math.log2(float(out[1] / out[0])), 6))


def target_scale(
    y: np.ndarray, degree: float, weight: np.ndarray | None = None
) -> tuple[float, float]:
    """Centre and scale of ``y`` for training with a loss of ``degree``.

    The centre is the constant that minimises the loss (the mean for
    ``degree >= 2``, the median below), the scale the matching spread: the
    standard deviation, or the median absolute deviation from the median,
    which a few huge outliers do not move (the mean absolute deviation where
    more than half the targets equal the median). Both are weighted by
    ``weight`` (a sample of weight 0 does not move them); a constant ``y`` (a
    spread below 1e-12 times the centre) gets scale 1. Both are equivariant:
    ``a y + b`` gives ``a scale`` and ``a centre + b`` for ``a > 0``.

    Examples
    --------
    >>> target_scale(np.array([1.0, 2.0, 3.0, 10.0]), 1.0)
    (2.5, 1.0)
    >>> target_scale(np.array([1.0, 2.0, 3.0, 1e9]), 1.0)  # not 2.5e8
    (2.5, 1.0)
    >>> target_scale(np.array([1.0, 2.0, 3.0, 1e9]), 2.0, np.array([1, 1, 1, 0]))
    (2.0, 0.816496580927726)
    """
    if weight is None or np.ptp(weight) == 0:  # the plain forms, to the last bit
        weight = None
    # An overflow is reported below, as what it means (numpy's warnings of
    # the same overflow would come first and say less).
    with np.errstate(over="ignore", invalid="ignore"):
        centre, spread = _centre_spread(y, degree, weight)
    if not (math.isfinite(centre) and math.isfinite(spread)):
        raise ValueError(
            f"y is too large to train on: its centre ({centre}) or spread "
            f"({spread}) overflows float64 (|y| up to {np.abs(y).max():.3g}); "
            "rescale the targets, e.g. divide them by a power of ten"
        )
    if not spread > 1e-12 * abs(centre):
        spread = 1.0
    return centre, spread


def _centre_spread(
    y: np.ndarray, degree: float, weight: np.ndarray | None
) -> tuple[float, float]:
    """The centre and spread of :func:`target_scale`, not yet checked."""
    if degree >= 2:
        centre = float(np.average(y, weights=weight))
        deviation = rms_deviation(y[:, None], np.array([centre]), weight)
        return centre, float(deviation[0])
    centre = _median(y, weight)
    deviation = np.abs(y - centre)
    spread = _median(deviation, weight)
    if not spread > 0:  # more than half the targets at the median
        spread = float(np.average(deviation, weights=weight))
    return centre, spread


def _median(y: np.ndarray, weight: np.ndarray | None) -> float:
    return float(np.median(y) if weight is None else _weighted_median(y, weight))


def _weighted_median(y: np.ndarray, weight: np.ndarray) -> float:
    """The median of ``y`` with ``weight`` as repetitions: the value where
    half the weight is reached (the middle of two values where it is reached
    exactly, as ``np.median`` for equal weights)."""
    order = np.argsort(y, kind="stable")
    values, cumulative = y[order], np.cumsum(weight[order])
    half, tol = cumulative[-1] / 2, 1e-9 * cumulative[-1]  # sums' rounding
    i = int(np.searchsorted(cumulative, half - tol))
    if cumulative[i] <= half + tol:  # half reached exactly: the next value
        j = i + 1 + int(np.argmax(weight[order][i + 1 :] > 0))
        return (values[i] + values[j]) / 2
    return values[i]
