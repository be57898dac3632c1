"""The smooth top-k SVM loss through its compiled kernel (:mod:`._svm_kernel`).

With numba installed (the ``fast`` extra), a plain eager call on float32
scores in host memory with ``k <= 10`` computes the per-sample losses and
their gradient in one compiled pass, validating the values in the same pass
(finite scores, labels in range), and hands the gradient over in the backward
pass (:class:`_Compiled`). A backward pass that builds a graph
(``create_graph=True``) differentiates the tensor routes instead, so that
higher derivatives stay exact. Every other call takes the tensor routes of
:mod:`._topk_svm`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor

from ._checks import _PLAIN, direct_apply, is_one, plain_eager, value_checks_apply
from ._native import native_available
from ._svm_checks import _check_values

_MAX_K = 10  # as the fast route: Newton's identities up to k = 10


def compiled_smooth_topk_svm(
    scores: Tensor, labels, k: int, margin: float, tau: float, reduction: str
) -> Tensor | None:
    """The loss by the compiled kernel, or None where it does not apply
    (hyper-parameters already checked; shapes and dtypes that the kernel does
    not take go to the tensor routes, which raise for the invalid ones).

    Every line here runs at each training step, beside a cross-entropy of a
    few tens of microseconds: the checks are the cheapest that decide."""
    labels = _kernel_labels(scores, labels, k)
    if labels is None:
        return None
    params = (k, float(margin), float(tau), reduction)
    # Forward mode (a dual level open) needs the gradient too: the jvp.
    with_grad = (scores.requires_grad and torch.is_grad_enabled()) or _dual_level()
    out = _run(scores, labels, params, with_grad)
    if out is None:
        if value_checks_apply(scores, labels):
            _check_values(scores, labels, scores.shape[1])  # raises
        return None  # unchecked: the tensor routes, as without the kernel
    if not with_grad:
        return _value(out, reduction)
    return _compiled_apply(scores, labels, out, params)


def compiled_loss_gradient(
    scores: Tensor, labels, k: int, margin: float, tau: float
) -> tuple[Tensor, Tensor] | None:
    """Per-sample losses and their gradients (float32, no autograd) by the
    kernel, for the engine's training step; None where the kernel does not
    apply. A row with a non-finite score gets a NaN loss and gradient (the
    engine stops its member; the other members' rows are unaffected).
    Hyper-parameters already checked."""
    labels = _kernel_labels(scores, labels, k)
    if labels is None:
        return None
    params = (k, float(margin), float(tau), "sum")
    loss, _, grad = _run(scores, labels, params, True, nan_rows=True)
    return torch.from_numpy(loss).float(), grad


def _kernel_labels(scores: Tensor, labels, k: int) -> Tensor | None:
    """The labels as int64 where the kernel applies to these arguments, else
    None (shapes and dtypes that it does not take go to the tensor routes,
    which raise for the invalid ones)."""
    if not (
        native_available()
        and type(scores) in _PLAIN
        and type(labels) in _PLAIN
        and scores.dtype is torch.float32
        and scores.layout is torch.strided
        and labels.dtype in _LABEL_DTYPES
        and scores.is_cpu
        and labels.is_cpu
        and scores.dim() == 2
        and labels.dim() == 1
        and type(k) is int
        and 1 <= k <= _MAX_K
    ):
        return None
    n, n_classes = scores.shape
    if not (0 < n == labels.shape[0] and k < n_classes and plain_eager(scores, labels)):
        return None
    return labels if labels.dtype is torch.int64 else labels.long()


_LABEL_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)
_LABEL_DTYPES += tuple(  # torch >= 2.3
    getattr(torch, name)
    for name in ("uint16", "uint32", "uint64")
    if hasattr(torch, name)
)


def _dual_level() -> bool:
    """Whether a forward-mode level is open (``forward_ad.dual_level``)."""
    return getattr(fwAD, "_current_level", -1) >= 0


def _run(
    scores: Tensor, labels: Tensor, params: tuple, with_grad: bool, nan_rows=False
):
    """``(loss, total, gradient)`` by the kernel: the per-sample losses
    (float64 numpy), their sum and the gradient of the reduced loss (None
    without ``with_grad``); None for bad values, or with ``nan_rows`` NaN in
    their rows."""
    k, margin, tau, reduction = params
    n, n_classes = scores.shape
    loss = np.empty(n)
    grad = np.empty((n if with_grad else 1, n_classes), np.float32)
    gscale = 1.0 / n if reduction == "mean" else 1.0
    s, y = scores.numpy(force=True), labels.numpy()
    args = (k, margin, tau, gscale, loss, grad, with_grad, nan_rows)
    total = _kernel().svm_rows(s, y, *args)
    if total < 0.0:  # a status: bad labels or values
        return None
    return loss, total, torch.from_numpy(grad) if with_grad else None


def _kernel():
    """The kernel's module, imported on first use (so that ``import sktopk``
    does not create numba's dispatchers)."""
    if not _KERNEL:
        from . import _svm_kernel

        _KERNEL.append(_svm_kernel)
    return _KERNEL[0]


_KERNEL: list = []


def _value(out: tuple, reduction: str) -> Tensor:
    """The reduced loss from :func:`_run`'s ``out``, float32 in host memory
    (whatever the defaults)."""
    loss, total, _ = out
    if reduction == "none":
        return torch.from_numpy(loss).float()
    value = total / loss.shape[0] if reduction == "mean" else total
    return torch.from_numpy(np.array(value, np.float32))


class _Compiled(torch.autograd.Function):
    """The loss made by the kernel, whose forward pass also made the gradient
    (scaled by ``1 / n`` for the mean); the backward pass hands it over or
    scales it."""

    @staticmethod
    def forward(ctx, scores, labels, out, params):
        ctx.save_for_backward(scores, labels)
        ctx.grad, ctx.params = out[2], params
        return _value(out, params[3])

    @staticmethod
    def backward(ctx, grad_out):
        # Unpacking raises autograd's error if the scores were changed in place.
        scores, labels = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the tensor routes
            return _graph_gradient(scores, labels, ctx.params, grad_out), *_NONES
        grad, ctx.grad = ctx.grad, None
        if grad is None:  # a second backward through a retained graph
            grad = _run(scores, labels, ctx.params, True)[2]
        if ctx.params[3] == "none":
            return grad * grad_out[:, None], *_NONES
        if is_one(grad_out):
            return grad, *_NONES
        return grad * grad_out, *_NONES

    @staticmethod
    def jvp(ctx, d_scores, *_):
        out = (ctx.grad * d_scores).sum(1)
        return out if ctx.params[3] == "none" else out.sum()


_NONES = (None, None, None)
_compiled_apply = direct_apply(_Compiled) or _Compiled.apply


def _graph_gradient(scores, labels, params, grad_out) -> Tensor:
    """The gradient by the tensor routes, differentiable again."""
    from ._topk_svm import smooth_topk_svm_by_routes

    loss = smooth_topk_svm_by_routes(scores, labels, *params)
    (grad,) = torch.autograd.grad(loss, scores, grad_out, create_graph=True)
    return grad
