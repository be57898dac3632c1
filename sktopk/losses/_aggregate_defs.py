"""The aggregates' definitions: value and analytic gradients over the last
axis of ``lead + (B,)`` losses, with per-sample weights and per-member
``lam``, ``kappa`` and ``delta``. The training engine calls them on a
minibatch for every member at once; the public functions of
:mod:`._aggregate` validate their inputs and evaluate the same definitions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._fused import dual_grad, dual_loss_gradient
from ._smoothing import RELU, SMOOTHINGS

__all__ = [
    "ceil_count",
    "average_loss_gradient",
    "maximum_loss_gradient",
    "atk_loss_gradient",
    "matk_loss_gradient",
    "stk_loss_gradient",
    "weight_threshold",
]

# --- definitions: value and gradients over the last axis --------------------------
# losses: lead + (B,); weight: None (every row once) or non-negative, same shape
# (zeros mark padding); lam, kappa, delta: shape lead, or numbers. Each returns
# (value or None, dvalue/dlosses, dvalue/dlam or None).


# A product kappa * n that is an integer in exact arithmetic can land a few
# rounding errors above it (0.3 * 10 = 3.0000000000000004): within this many
# units of the factors' precision, it counts as that integer.
_ROUNDING_ULPS = 8
_EPS64 = torch.finfo(torch.float64).eps


def ceil_count(x: Tensor | float, eps: float | None = None) -> Tensor | int:
    """``ceil(x)`` of a count ``x = kappa * n`` computed in floating point.

    The one rounding rule of every count (:func:`atk`, :func:`kth_largest`,
    their weighted forms, the estimators' ATk and the engine): a value within
    ``8 eps max(x, 1)`` above an integer counts as that integer.

    Parameters
    ----------
    x : Tensor or float
        The non-negative product.
    eps : float, optional
        The relative precision of its factors: by default the machine epsilon
        of the dtype of ``x`` (float64 for a number). A float32 ``kappa``
        multiplied in float64 passes float32's.

    Returns
    -------
    Tensor or int
        A tensor of ``ceil`` values for a tensor, an int for a number.
    """
    if isinstance(x, Tensor):
        eps = torch.finfo(x.dtype).eps if eps is None else eps
        return torch.ceil(x - _ROUNDING_ULPS * eps * x.abs().clamp_min(1.0))
    eps = _EPS64 if eps is None else eps
    return math.ceil(x - _ROUNDING_ULPS * eps * at_least(x, 1.0))


def at_least(x, low):
    """``max(x, low)`` of numbers; compiled or exported, ``torch.sym_max``,
    which puts no guard on a symbolic size (a tenth of the cost in eager)."""
    return torch.sym_max(x, low) if torch.compiler.is_compiling() else max(x, low)


def _precision(kappa) -> float:
    """The relative precision of ``kappa``: its dtype's (float64 for a number)."""
    return torch.finfo(kappa.dtype).eps if isinstance(kappa, Tensor) else _EPS64


def _lightest(w: Tensor) -> Tensor:
    """The smallest positive weight of each row, in float64 (1 in a row of zeros)."""
    least = w.double().masked_fill(w <= 0, math.inf).amin(-1)
    return least.masked_fill(least == math.inf, 1.0)


def _units(kappa, w: Tensor, unit: Tensor) -> Tensor:
    """The fraction ``kappa`` of each row's total weight ``W``, rounded up to
    whole units: ``min(ceil(kappa W / unit), W / unit) unit``, at least one
    unit, in float64. (``W / unit`` sums ``w / unit``: exactly ``n`` for ``n``
    equal weights, whatever their value.)"""
    in_units = (w.double() / unit.unsqueeze(-1)).sum(-1)
    count = ceil_count(kappa * in_units, _precision(kappa)).clamp_min(1.0)
    return torch.minimum(count, in_units) * unit


def weight_threshold(losses: Tensor, w: Tensor, count: Tensor) -> Tensor:
    """The loss at which the weights ``w``, summed from the largest loss
    down, reach ``count`` (float64, one per row, within ``1e-9`` of the
    total weight): the weighted k-th largest, along the last axis."""
    order = torch.argsort(losses, dim=-1, descending=True)
    reached = torch.cumsum(w.gather(-1, order).double(), -1)
    pos = torch.searchsorted(reached, count.unsqueeze(-1) - 1e-9 * reached[..., -1:])
    index = order.gather(-1, pos.clamp(max=losses.shape[-1] - 1))
    return losses.gather(-1, index).squeeze(-1)


def _normalised(losses: Tensor, weight: Tensor | None):
    """Weights summing to one along the last axis (a number when uniform)."""
    if weight is None:
        return 1.0 / losses.shape[-1]
    weight = weight.to(losses.dtype).expand_as(losses)
    wsum = weight.sum(-1, keepdim=True).clamp_min(torch.finfo(losses.dtype).tiny)
    return weight / wsum


def average_loss_gradient(
    losses, weight, lam=None, kappa=None, delta=None, smoothing=None, with_value=True
):
    """The (weighted) mean of the losses."""
    wn = _normalised(losses, weight)
    g = torch.full_like(losses, wn) if isinstance(wn, float) else wn
    value = (g * losses).sum(-1) if with_value else None
    return value, g, None


def maximum_loss_gradient(
    losses, weight, lam=None, kappa=None, delta=None, smoothing=None, with_value=True
):
    """The largest loss among the rows of positive weight (gradient 1 there)."""
    val, j = _masked_max(losses, weight)
    # Out of place: vmap over the weights batches j, not the zeros.
    g = torch.zeros_like(losses).scatter(-1, j, 1.0)
    return val.squeeze(-1), g, None


def _masked_max(losses: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """The largest loss of positive weight and its index (keeping the axis)."""
    masked = losses if weight is None else losses.masked_fill(weight <= 0, -math.inf)
    return masked.max(-1, keepdim=True)


def atk_loss_gradient(
    losses, weight, lam, kappa, delta=None, smoothing=None, with_value=True
):
    """Mean of the top fraction ``kappa`` of the weight, taken from the
    largest loss down, rounded up to whole units of the smallest positive
    weight ``u``: ``k = ceil(kappa sum(w) / u) u``.

    Without weights (or with equal ones) the top ``ceil(kappa n)`` losses;
    scaling the weights changes nothing; integer weights with a 1 among them
    act as repetitions.
    """
    w = torch.ones_like(losses) if weight is None else weight.to(losses.dtype)
    w = w.expand_as(losses)
    return _top_units(losses, w, _units(kappa, w, _lightest(w)), with_value)


def _top_units(losses: Tensor, w: Tensor, k: Tensor, with_value: bool = True):
    """``(value, gradient, None)`` of the mean of the top ``k`` weight units
    (``k`` of the rows' shape, in float64), taken from the largest loss down."""
    k = k.to(losses.dtype).clamp_min(torch.finfo(losses.dtype).tiny).unsqueeze(-1)
    order = losses.detach().masked_fill(w <= 0, -math.inf).argsort(-1, descending=True)
    ws = w.gather(-1, order)
    take = torch.minimum(ws, (k - (ws.cumsum(-1) - ws)).clamp_min(0.0))
    # Out of place: vmap over the weights batches order and take, not the zeros.
    g = torch.zeros_like(losses).scatter(-1, order, take / k)
    return ((g * losses).sum(-1) if with_value else None), g, None


def matk_loss_gradient(
    losses, weight, lam, kappa, delta=None, smoothing=None, with_value=True
):
    """The dual form with the hard ReLU at the threshold ``lam``."""
    return _dual(losses, weight, lam, kappa, RELU, 0.0, with_value)


def stk_loss_gradient(
    losses, weight, lam, kappa, delta, smoothing="srelu", with_value=True
):
    """The dual form with a smoothing of the ReLU at the threshold ``lam``."""
    return _dual(losses, weight, lam, kappa, SMOOTHINGS[smoothing], delta, with_value)


def _dual(losses, weight, lam, kappa, phi, delta, with_value):
    wn = _normalised(losses, weight)
    if with_value:
        return dual_loss_gradient(losses, lam, kappa, wn, phi, delta)
    g, g_lam = dual_grad(losses, lam, kappa, wn, phi, delta)
    return None, g, g_lam
