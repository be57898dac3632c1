"""Registry definitions of the top-k SVM losses: batched value and gradient.

``*_value(f, y, **params)`` gives the per-sample losses of scores of shape
``lead + (n, C)``; ``*_loss_gradient`` also their gradient: for the smooth loss
directly, without autograd, in closed form for ``k = 1`` and few k-subsets
(:mod:`._svm_small`) and on the fast route (:mod:`._svm_fast`), by autograd
otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._svm_checks import _check_data, _check_hyper
from ._svm_common import _F64, _compute_dtype, _no_autocast, _result_dtype
from ._svm_compiled import compiled_loss_gradient
from ._svm_fast import _fast_backward, _fast_forward
from ._svm_small import CLOSED_ROUTES
from ._topk_svm import _route, smooth_topk_svm, topk_svm


def _flat(f: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Scores ``lead + (n, C)`` as ``(N, C)`` and the labels beside them."""
    if f.dim() == 2 and y.shape == f.shape[:1]:
        return f, y
    return f.reshape(-1, f.shape[-1]), y.expand(f.shape[:-1]).reshape(-1)


def _batched(fn):
    """``fn(scores_2d, labels_1d, **params)`` over scores ``lead + (n, C)``."""

    def value(f: Tensor, y: Tensor, **params) -> Tensor:
        return fn(*_flat(f, y), **params).reshape(f.shape[:-1])

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
    """Per-sample loss and gradient without autograd (the engine's training
    step): by the compiled kernel where it applies (float32 scores in host
    memory, ``k <= 10``, numba installed), else in closed form where the
    loss's route is ``k = 1`` or the k-subsets, by the fast route where it is
    that one; None otherwise.

    The values are not checked, as for the other losses' definitions: the
    engine trains on validated data and stops a member whose loss is not
    finite."""
    _check_hyper(k, margin, tau, "none")
    compiled = compiled_loss_gradient(scores, labels, k, margin, tau)
    if compiled is not None:
        return compiled
    labels = _check_data(scores, labels, k, values=False)
    margin, tau = float(margin), float(tau)
    route = _route(*scores.shape, k)
    closed = CLOSED_ROUTES.get(route)
    if closed is None and route != "fast":
        return None
    with _no_autocast(scores.device.type):
        work = _as(scores.detach(), _compute_dtype(scores.dtype, k * tau))
        if closed is not None:
            loss, grad = closed.training_step(work, labels, k, margin, tau)
        else:
            loss, *saved = _fast_forward(work, labels, k, margin, tau)
            ones = torch.ones_like(loss, dtype=_F64)
            grad = _fast_backward(ones, saved, k, work.dtype)
    dtype = _result_dtype(scores)
    return _as(loss, dtype), _as(grad, dtype)


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t`` in ``dtype`` (no call where it already is: this is per step)."""
    return t if t.dtype == dtype else t.to(dtype)


def _smooth_loss_gradient(f: Tensor, y: Tensor, **params) -> tuple[Tensor, Tensor]:
    direct = _smooth_direct(*_flat(f, y), **params)
    if direct is None:
        return _autograd_loss_gradient(smooth_topk_svm_value)(f, y, **params)
    loss, grad = direct
    if f.dim() == 2:
        return loss, grad
    return loss.reshape(f.shape[:-1]), grad.reshape(f.shape)


smooth_topk_svm_value = _batched(
    lambda s, t, **p: smooth_topk_svm(s, t, reduction="none", **p)
)
smooth_topk_svm_loss_gradient = _smooth_loss_gradient
topk_svm_value = _batched(lambda s, t, **p: topk_svm(s, t, reduction="none", **p))
topk_svm_loss_gradient = _autograd_loss_gradient(topk_svm_value)
