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

__all__ = ["individual_value_and_grad", "aggregate_value_and_grad", "SMOOTHINGS"]


# --------------------------------------------------------------------------- #
# Individual losses: f has shape lead + (B, out); returns l (lead + (B,)) and
# dl/df (lead + (B, out)).
# --------------------------------------------------------------------------- #
def _logistic(f: Tensor, y: Tensor, params: dict) -> tuple[Tensor, Tensor]:
    m = -y * f[..., 0]
    return F.softplus(m), (-y * torch.sigmoid(m)).unsqueeze(-1)


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
def _srelu(x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    r = torch.sqrt(x * x + d * d)
    # For x < 0 the sum x + r cancels; d^2 / (r - x) is the same number.
    pos = x >= 0
    val = torch.where(pos, (x + r - d) * 0.5, 0.5 * (d * d / (r - x) - d))
    grad = torch.where(pos, 0.5 * (1.0 + x / r), 0.5 * d * d / (r * (r - x)))
    return val, grad


def _softplus(x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    return d * F.softplus(x / d), torch.sigmoid(x / d)


def _elu(x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    neg = d * torch.expm1((x / d).clamp_max(0.0))
    return torch.where(x > 0, x, neg), torch.where(x > 0, 1.0, neg / d + 1.0)


def _leaky_relu(x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    return torch.where(x > 0, x, d * x), torch.where(x > 0, 1.0, d).expand_as(x)


def _relu(x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    return x.clamp_min(0.0), (x > 0).to(x.dtype)


SMOOTHINGS = {
    "srelu": _srelu,
    "softplus": _softplus,
    "elu": _elu,
    "leaky_relu": _leaky_relu,
}


# --------------------------------------------------------------------------- #
# Aggregates over the last axis: l, w of shape lead + (B,) (w >= 0, zeros mark
# padding); lam, kappa, delta of shape lead. Return the objective (lead), its
# gradient w.r.t. l and w.r.t. lam.
# --------------------------------------------------------------------------- #
def _average(ls, w, wsum, lam, kappa, delta, smoothing):
    g = w / wsum.unsqueeze(-1)
    return (g * ls).sum(-1), g, None


def _maximum(ls, w, wsum, lam, kappa, delta, smoothing):
    masked = ls.masked_fill(w <= 0, float("-inf"))
    val, j = masked.max(-1, keepdim=True)
    g = torch.zeros_like(ls).scatter_(-1, j, 1.0)
    return val.squeeze(-1), g, None


def _atk(ls, w, wsum, lam, kappa, delta, smoothing):
    # Weighted top-k of the batch: k = ceil(kappa * sum w) weight units, taken
    # from the largest losses down (integer weights act as repetitions).
    k = torch.ceil(kappa * wsum - 1e-6).clamp_min(1e-12)
    masked = ls.masked_fill(w <= 0, float("-inf"))
    order = masked.argsort(-1, descending=True)
    ws = w.gather(-1, order)
    before = ws.cumsum(-1) - ws
    take = torch.minimum(ws, (k.unsqueeze(-1) - before).clamp_min(0.0))
    g = torch.zeros_like(ls).scatter_(-1, order, take / k.unsqueeze(-1))
    return (g * ls).sum(-1), g, None


def _matk(ls, w, wsum, lam, kappa, delta, smoothing):
    x = ls - lam.unsqueeze(-1)
    wn = w / wsum.unsqueeze(-1)
    above = (x > 0).to(ls.dtype) * wn
    value = (wn * x.clamp_min(0.0)).sum(-1) + kappa * lam
    return value, above, kappa - above.sum(-1)


def _stk(ls, w, wsum, lam, kappa, delta, smoothing):
    phi, dphi = SMOOTHINGS[smoothing](ls - lam.unsqueeze(-1), delta.unsqueeze(-1))
    wn = w / wsum.unsqueeze(-1)
    g = wn * dphi
    return (wn * phi).sum(-1) + kappa * lam, g, kappa - g.sum(-1)


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
    weight: Tensor,
    lam: Tensor,
    kappa: Tensor,
    delta: Tensor,
    smoothing: str = "srelu",
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Minibatch aggregate of method.md §2 for every member.

    Returns ``(value, dvalue/dlosses, dvalue/dlam)``; the last is ``None`` for
    aggregates without a threshold.
    """
    weight = weight.expand_as(losses)
    wsum = weight.sum(-1).clamp_min(torch.finfo(losses.dtype).tiny)
    return _AGGREGATES[name](losses, weight, wsum, lam, kappa, delta, smoothing)
