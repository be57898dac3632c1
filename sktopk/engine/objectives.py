"""Batched individual losses and aggregates with hand-derived gradients.

The training engine works on a grid of independent members with leading shape
``lead = (G, Mg)``: ``G`` data groups (each with its own data order) and ``Mg``
members per group sharing it. These functions evaluate one minibatch for all
members at once and return values together with gradients, so the engine needs
no autograd graph for the built-in losses. The public, autograd-based loss
functions live in :mod:`sktopk.losses`; tests check these against them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from .optim import _const

__all__ = ["individual_value_and_grad", "aggregate_value_and_grad", "SMOOTHINGS"]


# --------------------------------------------------------------------------- #
# Individual losses: f has shape lead + (B, out); returns l (lead + (B,)) and
# dl/df (lead + (B, out)).
# --------------------------------------------------------------------------- #
def _logistic(f: Tensor, y: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    neg_y = -y
    m = f[..., 0] * neg_y
    return F.softplus(m), (torch.sigmoid(m) * neg_y).unsqueeze(-1)


def _hinge(f: Tensor, y: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    m = 1.0 - y * f[..., 0]
    active = (m > 0).to(f.dtype)
    return m.clamp_min(0.0), (-y * active).unsqueeze(-1)


def _square(f: Tensor, y: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    r = y - f[..., 0]
    return r * r, (-2.0 * r).unsqueeze(-1)


def _absolute(f: Tensor, y: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    r = y - f[..., 0]
    return r.abs(), (-torch.sign(r)).unsqueeze(-1)


def _onehot(f: Tensor, y: Tensor) -> Tensor:
    return F.one_hot(y, f.shape[-1]).to(f.dtype).expand_as(f)


def _cross_entropy(f: Tensor, y: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    logz = torch.logsumexp(f, dim=-1, keepdim=True)
    onehot = _onehot(f, y)
    loss = logz.squeeze(-1) - (f * onehot).sum(-1)
    return loss, torch.exp(f - logz) - onehot


def _multiclass_hinge(f: Tensor, y: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    onehot = _onehot(f, y)
    f_true = (f * onehot).sum(-1)
    other = f.masked_fill(onehot.bool(), float("-inf"))
    f_other, j = other.max(-1)
    m = 1.0 + f_other - f_true
    active = (m > 0).to(f.dtype).unsqueeze(-1)
    grad = (F.one_hot(j, f.shape[-1]).to(f.dtype) - onehot) * active
    return m.clamp_min(0.0), grad


def _autograd_loss(fn: Callable) -> Callable:
    """Wrap a per-sample torch loss ``fn(scores_2d, labels_1d)`` (autograd)."""

    def value_and_grad(f: Tensor, y: Tensor, params: dict):
        with torch.enable_grad():
            leaf = f.detach().requires_grad_(True)
            y_full = y.expand(f.shape[:-1])
            loss = fn(leaf.reshape(-1, f.shape[-1]), y_full.reshape(-1), **params)
            loss = loss.reshape(f.shape[:-1])
            (grad,) = torch.autograd.grad(loss.sum(), leaf)
        return loss.detach(), grad

    return value_and_grad


def _smooth_topk_svm(f: Tensor, y: Tensor, params: dict):
    from ..losses._topk_svm import smooth_topk_svm

    return _autograd_loss(
        lambda s, t, **p: smooth_topk_svm(s, t, reduction="none", **p)
    )(f, y, params)


def _topk_svm(f: Tensor, y: Tensor, params: dict):
    from ..losses._topk_svm import topk_svm

    p = {k: v for k, v in params.items() if k != "tau"}
    return _autograd_loss(lambda s, t, **q: topk_svm(s, t, reduction="none", **q))(
        f, y, p
    )


_INDIVIDUAL = {
    "logistic": _logistic,
    "hinge": _hinge,
    "square": _square,
    "absolute": _absolute,
    "cross_entropy": _cross_entropy,
    "multiclass_hinge": _multiclass_hinge,
    "smooth_topk_svm": _smooth_topk_svm,
    "topk_svm": _topk_svm,
}


def individual_value_and_grad(
    name: str, f: Tensor, y: Tensor, params: dict | None = None
) -> tuple[Tensor, Tensor]:
    """Per-sample losses and their gradient with respect to the scores ``f``."""
    return _INDIVIDUAL[name](f, y, params or {})


# --------------------------------------------------------------------------- #
# Smoothings phi(x) of the STk form, with derivative. delta broadcasts.
# --------------------------------------------------------------------------- #
def _srelu(x: Tensor, d: Tensor, with_value: bool, scale: float = 1.0):
    # The direct forms lose relative (not absolute) precision for x << 0:
    # errors stay below |x| * eps, harmless for training. The public
    # sktopk.losses.srelu is the exact one. The derivative comes multiplied
    # by ``scale`` (saves one operation in the training step).
    r = torch.hypot(x, d)
    half = 0.5 * scale
    phi = (x + r).sub_(d).mul_(_const(0.5, x)) if with_value else None
    return phi, torch.addcdiv(_const(half, x), x, r, value=half)


def _softplus(x: Tensor, d: Tensor, with_value: bool) -> tuple[Tensor | None, Tensor]:
    z = x / d
    return (d * F.softplus(z) if with_value else None), torch.sigmoid(z)


def _elu(x: Tensor, d: Tensor, with_value: bool) -> tuple[Tensor | None, Tensor]:
    neg = d * torch.expm1((x / d).clamp_max(0.0))
    phi = torch.where(x > 0, x, neg) if with_value else None
    return phi, torch.where(x > 0, 1.0, neg / d + 1.0)


def _leaky_relu(x: Tensor, d: Tensor, with_value: bool) -> tuple[Tensor | None, Tensor]:
    phi = torch.where(x > 0, x, d * x) if with_value else None
    return phi, torch.where(x > 0, 1.0, d)


SMOOTHINGS = {
    "srelu": _srelu,
    "softplus": _softplus,
    "elu": _elu,
    "leaky_relu": _leaky_relu,
}


# --------------------------------------------------------------------------- #
# Aggregates over the last axis: ls of shape lead + (B,); lam, kappa, delta of
# shape lead. ``w`` is None (all rows count once) or non-negative weights of
# the same shape as ls (zeros mark padding) and ``wn`` the normalised weights
# (or 1/B). Each returns the objective (lead), its gradient w.r.t. ls, and
# w.r.t. lam (None without a threshold).
# --------------------------------------------------------------------------- #
def _average(ls, w, wn, lam, kappa, delta, smoothing, with_value):
    g = wn * torch.ones_like(ls) if w is None else wn
    return (_weighted_sum(ls, wn) if with_value else None), g, None


def _maximum(ls, w, wn, lam, kappa, delta, smoothing, with_value):
    masked = ls if w is None else ls.masked_fill(w <= 0, float("-inf"))
    val, j = masked.max(-1, keepdim=True)
    g = torch.zeros_like(ls).scatter_(-1, j, 1.0)
    return val.squeeze(-1), g, None


def _atk(ls, w, wn, lam, kappa, delta, smoothing, with_value):
    # Weighted top-k of the batch: k = ceil(kappa * sum w) weight units, taken
    # from the largest losses down (integer weights act as repetitions).
    w = torch.ones_like(ls) if w is None else w
    wsum = w.sum(-1)
    k = torch.minimum(torch.ceil(kappa * wsum - 1e-6), wsum)
    k = k.clamp_min(1e-12).unsqueeze(-1)
    masked = ls.masked_fill(w <= 0, float("-inf"))
    order = masked.argsort(-1, descending=True)
    ws = w.gather(-1, order)
    take = torch.minimum(ws, (k - (ws.cumsum(-1) - ws)).clamp_min(0.0))
    g = torch.zeros_like(ls).scatter_(-1, order, take / k)
    return ((g * ls).sum(-1) if with_value else None), g, None


def _matk(ls, w, wn, lam, kappa, delta, smoothing, with_value):
    x = ls - lam.unsqueeze(-1)
    above = (x > 0).to(ls.dtype) * wn
    value = (above * x).sum(-1) + kappa * lam if with_value else None
    return value, above, kappa - above.sum(-1)


def _stk(ls, w, wn, lam, kappa, delta, smoothing, with_value):
    x = ls - lam.unsqueeze(-1)
    if smoothing == "srelu" and isinstance(wn, float):
        phi, g = _srelu(x, _column(delta), with_value, scale=wn)
    else:
        phi, dphi = SMOOTHINGS[smoothing](x, _column(delta), with_value)
        g = dphi.mul_(wn)
    value = torch.addcmul(_weighted_sum(phi, wn), kappa, lam) if with_value else None
    return value, g, kappa - g.sum(-1)


def _column(t):
    """Per-member values against a batch axis (a Python number as it is)."""
    return t.unsqueeze(-1) if isinstance(t, Tensor) else t


def _weighted_sum(t: Tensor, wn) -> Tensor:
    if isinstance(wn, float):  # (a small tensor's mean is slow; this is not)
        return t.sum(-1).mul_(_const(wn, t))
    return (t * wn).sum(-1)


_AGGREGATES = {
    "average": _average,
    "maximum": _maximum,
    "atk": _atk,
    "matk": _matk,
    "stk": _stk,
}

AGGREGATES_WITH_LAMBDA = ("matk", "stk")
AGGREGATE_NAMES = tuple(_AGGREGATES)
INDIVIDUAL_NAMES = tuple(_INDIVIDUAL)


def aggregate_value_and_grad(
    name: str,
    losses: Tensor,
    weight: Tensor | None,
    lam: Tensor,
    kappa: Tensor,
    delta: Tensor,
    smoothing: str = "srelu",
    with_value: bool = True,
) -> tuple[Tensor | None, Tensor, Tensor | None]:
    """Minibatch aggregate of method.md §2 for every member.

    Returns ``(value, dvalue/dlosses, dvalue/dlam)``; the last is ``None`` for
    aggregates without a threshold, the first when ``with_value=False`` (the
    training step needs only gradients). ``weight=None`` counts rows once.
    """
    if weight is None:
        wn = 1.0 / losses.shape[-1]
    else:
        weight = weight.expand_as(losses)
        wsum = weight.sum(-1, keepdim=True).clamp_min(torch.finfo(losses.dtype).tiny)
        wn = weight / wsum
    return _AGGREGATES[name](
        losses, weight, wn, lam, kappa, delta, smoothing, with_value
    )
