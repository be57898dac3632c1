"""Fast route of the smooth top-k SVM loss (``k <= 10``), analytic backward.

With ``c`` the k-th largest wrong-class score, split the wrong classes into the
top k (``u_i = exp((c - s_i) / (k tau))`` in ``(0, 1]``) and the rest
(``x_r = exp((s_r - c) / (k tau))`` in ``[0, 1]``). With ``a = ESP(u)`` and
``b = ESP(x)``, the scaled ``e_k`` and ``e_{k-1}`` of all wrong classes are
``A = sum_j a_j b_j >= 1`` and ``B = sum_j a_{j+1} b_j >= 1``, so
``log e_k - log e_{k-1} = c / (k tau) + log(A / B)`` with no overflow,
underflow or cancellation, whatever the spread of the scores or the size of
``tau``. ``a`` and ``b`` come from power sums (Newton's identities,
:func:`._esp.split_esp_lags`) and the gradient is a degree-k polynomial in
``x`` (and in ``u``): a custom autograd Function whose backward is analytic,
and differentiable again by recomputation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import direct_apply, plain_eager, transformed
from ._esp import constants, split_esp_lags
from ._svm_common import _F64, _no_autocast, _traced
from ._svm_wrong_topk import _wrong_topk

# The fast route keeps the powers x^1..x^k of every score as one float64
# tensor while n_classes * k is at most _POWERS_MAX (per row, traced) and
# n * n_classes * k at most _POWERS_TOTAL (eager); beyond, it makes passes over
# the scores.
_POWERS_MAX = 64
_POWERS_TOTAL = 8192


class _SmoothTopKSVMCore(torch.autograd.Function):
    """Per-sample smooth top-k SVM loss for ``k <= 10``, analytic backward.

    ``forward`` returns the loss and the intermediates the backward needs (as
    non-differentiable outputs, the form ``torch.func`` requires). The first
    backward evaluates the gradient polynomial from them; a backward that
    builds a graph (``create_graph=True``, ``torch.func.grad``) recomputes the
    gradient from the scores with differentiable operations instead, so that
    every higher derivative is exact. ``vmap`` folds the mapped dimension into
    the batch. This class is the one ``torch.compile`` traces (it does not
    trace a custom ``jvp``); :class:`_SmoothTopKSVM` adds forward mode.
    """

    @staticmethod
    def forward(scores, labels, k, margin, tau):
        loss, *saved = _fast_forward(scores, labels, k, margin, tau)
        return (loss, *saved)

    @staticmethod
    def setup_context(ctx, inputs, output):
        scores, labels, k, margin, tau = inputs
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(scores, labels, *output[1:])
        ctx.params = (k, margin, tau)

    @staticmethod
    def backward(ctx, grad_loss, *_):
        scores, labels, *saved = ctx.saved_tensors
        k, margin, tau = ctx.params
        with _no_autocast(scores.device.type):
            if torch.is_grad_enabled():
                grad = _fast_gradient(scores, labels, k, margin, tau)
                grad = grad * grad_loss[:, None].to(grad.dtype)
            else:
                grad = _fast_backward(grad_loss, saved, k, scores.dtype)
        return grad, None, None, None, None

    @staticmethod
    def vmap(info, in_dims, scores, labels, k, margin, tau):
        size = info.batch_size
        scores = _batch_first(scores, in_dims[0], size)
        labels = _batch_first(labels, in_dims[1], size)
        n = scores.shape[1]
        flat = (scores.reshape(size * n, -1), labels.reshape(-1), k, margin, tau)
        out = _fast_function().apply(*flat)
        out = tuple(o.reshape(size, n, *o.shape[1:]) for o in out)
        return out, (0,) * len(out)


class _SmoothTopKSVM(_SmoothTopKSVMCore):
    """:class:`_SmoothTopKSVMCore` with forward-mode derivatives (``jvp``),
    exact to every order like the backward (``torch.func.hessian``)."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        _SmoothTopKSVMCore.setup_context(ctx, inputs, output)
        ctx.save_for_forward(*inputs[:2])
        ctx.n_outputs = len(output)  # 6 or 7: the powers are kept in one or two

    @staticmethod
    def jvp(ctx, scores_dot, *_):
        scores, labels = ctx.saved_tensors
        with _no_autocast(scores.device.type):
            grad = _fast_gradient(scores, labels, *ctx.params)
        loss_dot = (grad * scores_dot.to(grad.dtype)).sum(1)
        return (loss_dot.to(scores.dtype),) + (None,) * (ctx.n_outputs - 1)


def _batch_first(t: Tensor, dim: int | None, size: int) -> Tensor:
    return t.movedim(dim, 0) if dim is not None else t.expand(size, *t.shape)


def _fast_function() -> type[torch.autograd.Function]:
    return _SmoothTopKSVMCore if torch.compiler.is_compiling() else _SmoothTopKSVM


# In plain eager mode, the C entry point of apply (see direct_apply).
_direct_apply = direct_apply(_SmoothTopKSVM)


def _apply_fast(scores: Tensor, labels: Tensor, k: int, margin: float, tau: float):
    args = (scores, labels, k, margin, tau)
    if _direct_apply is None or not plain_eager(scores, labels):
        return _fast_function().apply(*args)[0]
    return _direct_apply(*args)[0]


def _fast_constants(k: int, tau: float, device: torch.device):
    """Float64 ``alpha [1..k]`` (``alpha = 1 / (k tau)``)."""
    alpha = 1.0 / (k * tau)
    return alpha * torch.arange(1, k + 1, dtype=_F64, device=device)


def _fast_forward(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float, graph=False
):
    """Loss of the fast route and what its backward needs.

    With ``c`` the k-th largest wrong score, ``log u = alpha (c - top)`` and
    ``log x = alpha (s - c)`` (``alpha = 1 / (k tau)``) lie in ``(-inf, 0]``;
    the power sums of ``u`` and ``x`` give ``A``, ``B`` and the gradient
    numerators (:func:`._esp.split_esp_lags`). While a row has few classes,
    the powers are one float64 tensor ``(n, k + C, k)`` (``u`` first); else
    ``x`` is kept in the dtype of the scores and its powers are passes over it.
    ``graph=True`` uses only out-of-place operations and the one-tensor form,
    so that autograd can differentiate the result (:func:`_fast_gradient`).

    Returns the per-sample loss (dtype of ``scores``), then the positions of
    the top k and of the true class ``(n, k + 1)``, ``A, B`` ``(n, 2)``, the
    gradient numerators ``(n, 4 k)``, ``sigmoid(slack / tau)`` ``(n,)``, and the
    powers: ``(n, k + C, k)``, or ``(n, k, k)`` for ``u`` and ``x`` ``(n, C)``.
    """
    powers = constants(_fast_constants, k, tau, like=scores)
    y = labels[:, None]
    top, top_idx = _wrong_topk(scores, y, k)
    if graph:
        top = scores.gather(1, top_idx)
    c = top[:, k - 1 :].detach()  # any constant gives the same loss
    outside = torch.cat([top_idx, y], 1)
    # exp of -inf or of an underflowing argument takes a slow path on CPU (tens
    # of times slower): powers below e^-700 are held at that value (negligible
    # next to A, B >= 1), and so are the classes off the rest.
    floor = -700.0 * tau  # s - c at which x^k = e^-700
    if graph or _powers_route(*scores.shape, k):
        logs = torch.cat([c - top, (scores - c).scatter(1, outside, floor)], 1)
        logs = logs.to(_F64).clamp_min(floor)
        pows = torch.exp(logs[:, :, None] * powers)  # (n, k + C, k)
        sums = torch.stack([pows[:, :k].sum(1), pows[:, k:].sum(1)], 1)
        saved = (pows,)
    else:
        u_pow = torch.exp((c - top).to(_F64).clamp_min_(floor)[:, :, None] * powers)
        x = (scores - c).mul_(1.0 / (k * tau)).exp_().scatter_(1, outside, 0.0)
        sums = torch.stack([u_pow.sum(1), _power_sums(x, k)], 1)
        saved = (u_pow, x)
    lags = split_esp_lags(sums)
    ab = lags[:, :2]
    # The slack's hinge, (c - s_y) / k + margin, in the scores' units before
    # the division by tau: a tie of the two stays exact at any tau.
    hinge = (c.to(_F64) - scores.gather(1, y).to(_F64))[:, 0] / k + margin
    z = hinge / tau + (ab[:, 0].log() - ab[:, 1].log())  # slack / tau
    loss = F.softplus(z, threshold=40.0)  # exact to float64 rounding
    if tau != 1.0:
        loss = loss * tau
    return (loss.to(scores.dtype), outside, ab, lags[:, 2:], torch.sigmoid(z), *saved)


def _fast_backward(
    grad_loss: Tensor, saved: list[Tensor], k: int, dtype: torch.dtype
) -> Tensor:
    """``grad_loss * dL/ds`` from the saved intermediates."""
    outside, ab, numer, sigma, *pows = saved
    n = ab.shape[0]
    g_true = sigma * grad_loss * (1.0 / k)  # -dL/ds_y, float64
    scale = g_true[:, None] / ab  # divides by A and by B
    coef = (scale[:, None, :] @ numer.view(n, 2, 2 * k)).view(n, 2, k)  # x | u
    if len(pows) == 1:
        both = pows[0] @ coef.mT  # (n, k + C, 2)
        grad_top, grad_rest = both[:, :k, 1], both[:, k:, 0].to(dtype)
    else:
        u_pow, x = pows
        grad_top = (u_pow @ coef[:, 1, :, None])[:, :, 0]
        grad_rest = _xpoly(coef[:, 0].to(x.dtype), x).to(dtype)
    values = torch.cat([grad_top, g_true[:, None]], 1).neg_().to(dtype)
    if transformed():  # vmap has a batching rule for scatter, not for scatter_
        return grad_rest.scatter(1, outside, values)
    return grad_rest.scatter_(1, outside, values)


def _fast_gradient(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """``dL/ds`` as a differentiable function of ``scores`` (exact Hessian).

    The same formulas as :func:`_fast_forward` and :func:`_fast_backward`,
    recorded by autograd: with the split point held constant (the loss does not
    depend on it), they are the exact gradient around ``scores``.
    """
    out = _fast_forward(scores, labels, k, margin, tau, graph=True)
    ones = torch.ones_like(out[0], dtype=_F64)
    return _fast_backward(ones, list(out[1:]), k, scores.dtype)


def _power_sums(x: Tensor, k: int) -> Tensor:
    """``sum_i x_i^j`` for ``j = 1..k`` over rows, as float64 ``(n, k)``."""
    sums = [x.sum(1)]
    xp = x * x if k > 1 else x
    for j in range(1, k):
        if j > 1:
            xp.mul_(x)
        sums.append(xp.sum(1))
    return torch.stack(sums, 1).to(_F64)


def _xpoly(coef: Tensor, x: Tensor) -> Tensor:
    """``sum_l coef[:, l] x^(l + 1)`` by Horner's rule, ``k`` passes."""
    k = coef.shape[1]
    out = x * coef[:, k - 1 :]
    for deg in range(k - 2, -1, -1):
        out.add_(coef[:, deg : deg + 1]).mul_(x)
    return out


def _powers_route(n: int, n_classes: int, k: int) -> bool:
    """Whether the fast route holds the powers as one tensor."""
    if _traced():
        return n_classes * k <= _POWERS_MAX
    return n * n_classes * k <= _POWERS_TOTAL
