"""Registry definitions of the top-k SVM losses: batched value and gradient.

``*_value(f, y, **params)`` gives the per-sample losses of scores of shape
``lead + (n, C)``; ``*_loss_gradient`` also their gradient: for the smooth loss
directly from the fast route (:mod:`._svm_fast`) where it applies, by autograd
otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._svm_checks import _check_data, _check_hyper
from ._svm_common import _F64, _compute_dtype, _no_autocast, _result_dtype
from ._svm_fast import _fast_backward, _fast_forward
from ._topk_svm import _route, smooth_topk_svm, topk_svm


def _batched(fn):
    """``fn(scores_2d, labels_1d, **params)`` over scores ``lead + (n, C)``."""

    def value(f: Tensor, y: Tensor, **params) -> Tensor:
        y_full = y.expand(f.shape[:-1])
        out = fn(f.reshape(-1, f.shape[-1]), y_full.reshape(-1), **params)
        return out.reshape(f.shape[:-1])

    return value


def _autograd_loss_gradient(value):
    """Value and gradient of a loss whose gradient is its autograd backward."""

    def loss_gradient(f: Tensor, y: Tensor, **params) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            leaf = f.detach().requires_grad_(True)
            loss = value(leaf, y, **params)
            (grad,) = torch.autograd.grad(loss.sum(), leaf)
        return loss.detach(), grad

    return loss_gradient


def _smooth_direct(
    scores: Tensor, labels: Tensor, k: int = 5, margin: float = 1.0, tau: float = 1.0
) -> tuple[Tensor, Tensor] | None:
    """Per-sample loss and gradient of the fast route, without autograd (the
    engine's training step); None where another route applies."""
    _check_hyper(k, margin, tau, "none")
    labels = _check_data(scores, labels, k)
    if _route(*scores.shape, k) != "fast":
        return None
    margin, tau = float(margin), float(tau)
    with torch.no_grad(), _no_autocast(scores.device.type):
        work = scores.to(_compute_dtype(scores.dtype, k * tau))
        loss, *saved = _fast_forward(work, labels, k, margin, tau)
        grad = _fast_backward(torch.ones_like(loss, dtype=_F64), saved, k, work.dtype)
    dtype = _result_dtype(scores)
    return loss.to(dtype), grad.to(dtype)


def _smooth_loss_gradient(f: Tensor, y: Tensor, **params) -> tuple[Tensor, Tensor]:
    flat = f.reshape(-1, f.shape[-1])
    direct = _smooth_direct(flat, y.expand(f.shape[:-1]).reshape(-1), **params)
    if direct is None:
        return _autograd_loss_gradient(smooth_topk_svm_value)(f, y, **params)
    loss, grad = direct
    return loss.reshape(f.shape[:-1]), grad.reshape(f.shape)


smooth_topk_svm_value = _batched(
    lambda s, t, **p: smooth_topk_svm(s, t, reduction="none", **p)
)
smooth_topk_svm_loss_gradient = _smooth_loss_gradient
topk_svm_value = _batched(lambda s, t, **p: topk_svm(s, t, reduction="none", **p))
topk_svm_loss_gradient = _autograd_loss_gradient(topk_svm_value)
