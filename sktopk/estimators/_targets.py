"""Standardising regression targets for training, equivariantly."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..losses import get_individual_loss

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


def target_scale(y: np.ndarray, degree: float) -> tuple[float, float]:
    """Centre and scale of ``y`` for training with a loss of ``degree``.

    The centre is the constant that minimises the loss (the mean for
    ``degree >= 2``, the median below), the scale the matching spread (the
    standard deviation, or the mean absolute deviation from the median); a
    constant ``y`` gets scale 1. Both are equivariant: ``a y + b`` gives
    ``a scale`` and ``a centre + b`` for ``a > 0``.

    Examples
    --------
    >>> target_scale(np.array([1.0, 2.0, 3.0, 10.0]), 1.0)
    (2.5, 2.5)
    """
    if degree >= 2:
        centre, spread = float(np.mean(y)), float(np.std(y))
    else:
        centre = float(np.median(y))
        spread = float(np.mean(np.abs(y - centre)))
    if not spread > 1e-12 * max(1.0, abs(centre)):
        spread = 1.0
    return centre, spread
