"""Routes of the smooth top-k SVM loss for ``k = 1`` and for few k-subsets.

Each is a formula of plain autograd operations, differentiable to every order:

* ``k = 1``: ``tau softplus(margin / tau + logsumexp_{j != y} (s_j - s_y) /
  tau)``, which is ``tau`` times the cross-entropy of ``(s - margin onehot_y) /
  tau`` (:func:`_smooth_k1`).
* few k-subsets: the definition itself, one matrix product with a 0/1 subset
  matrix and two log-sum-exps (:func:`_smooth_subsets`).

:func:`_k1_loss_gradient` and :func:`_subsets_loss_gradient` give the same
per-sample losses with their gradient in closed form, without autograd: the
engine's step, and in plain eager mode the forward pass of :class:`_ClosedForm`,
whose backward only scales that gradient (:func:`closed_form_route`).
``CLOSED_ROUTES`` names both by the route names of :func:`._topk_svm._route`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import _PLAIN, direct_apply, plain_eager, transformed
from ._esp import constants
from ._svm_common import _F64, _vector


def _smooth_k1(scores: Tensor, labels: Tensor, margin: float, tau: float) -> Tensor:
    """``k = 1``: ``tau softplus((margin + c - s_y) / tau + log sum_{j != y} x_j)``.

    With one class per subset, ``e_1(exp(z')) / e_0`` is the softmax
    denominator without the true class: the loss is ``tau`` times the
    cross-entropy of ``(s - margin onehot_y) / tau``. It is computed relative
    to the largest wrong score ``c`` (``x_j = exp((s_j - c) / tau)`` in
    ``[0, 1]``, their log-sum-exp in ``[0, log C]``) and through ``softplus``,
    so that a tiny loss and its gradient keep their relative accuracy (the
    cross-entropy's ``softmax - onehot`` loses it), the true class gets exactly
    ``-sigma``, and shifting all scores changes nothing.
    """
    y = labels[:, None]
    c = scores.detach().scatter(1, y, -math.inf).amax(1, keepdim=True)
    shifted = scores - c
    rest = shifted.scatter(1, y, -math.inf)
    if tau != 1.0:
        rest = rest / tau
    gap = torch.cat([torch.logsumexp(rest, 1, keepdim=True), shifted.gather(1, y)], 1)
    weights = constants(_vector, (1.0, -1.0 / tau, margin / tau), gap.dtype, like=gap)
    slack = torch.addmv(weights[2].expand(gap.shape[0]), gap, weights[:2])  # / tau
    loss = F.softplus(slack, threshold=40.0)
    return loss * tau if tau != 1.0 else loss


def _smooth_subsets(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """The definition, over all k-subsets: for small ``C(n_classes, k)``.

    In float64, ``(s - m) @ S`` holds the subset means (``m`` the middle of
    the row's range, :func:`_centred`); the offsets restrict the first
    log-sum-exp to the subsets without ``y`` and the second to those with
    ``y``. The loss is ``tau softplus(z)``, ``z = (t_0 - t_1 + margin) / tau +
    r_0 - r_1``, with ``t_j`` the largest mean of each log-sum-exp and ``r_j``
    the log of its sum relative to that one (:func:`_split`): the largest
    means and the margin meet in the scores' units, before the division by
    ``tau``, so that a tie between them stays exact at any ``tau``, and the
    loss is non-negative and accurate when tiny.
    """
    subsets, offsets, _, _ = constants(
        _subset_constants, scores.shape[1], k, _F64, like=scores
    )
    means = _centred(scores.to(_F64)) @ subsets
    terms = means[:, None, :] + offsets.index_select(0, labels)
    # Relative to each log-sum-exp's largest term (held constant: lse(t) =
    # lse(t - c) + c for any c), so that its backward, exp(term - result), is
    # exact even where 1 / tau makes the terms huge.
    top = terms.detach().amax(2)
    rest = torch.logsumexp((terms - top[:, :, None]) / tau, 2)
    z = _split(top[:, 0] - top[:, 1] + margin, rest[:, 0] - rest[:, 1], tau)
    return F.softplus(z, threshold=40.0) * tau


def _centred(scores: Tensor) -> Tensor:
    """``scores`` minus the middle of each row's range (as a constant): every
    result is at most half the range, finite wherever the scores are (their
    largest minus their smallest may not be, in float32), and a common
    offset of the row is gone."""
    low, high = torch.aminmax(scores.detach(), dim=1, keepdim=True)
    return scores - high.mul_(0.5).add_(low, alpha=0.5)


def _split(hinge: Tensor, rest: Tensor, tau: float) -> Tensor:
    """``z = lse_0 - lse_1 + margin / tau`` from ``lse_j = top_j / tau +
    rest_j``, given ``hinge = top_0 - top_1 + margin`` (formed first, in the
    scores' units) and ``rest = rest_0 - rest_1``: the hinge divided by
    ``tau``, then the rests."""
    return hinge / tau + rest


def _subsets_loss_gradient(
    scores: Tensor,
    labels: Tensor,
    k: int,
    margin: float,
    tau: float,
    dtype: torch.dtype = _F64,
) -> tuple[Tensor, Tensor]:
    """Per-sample loss of :func:`_smooth_subsets` and its gradient, computed in
    ``dtype``: float64 for the public loss (exact and stable in float32), the
    scores' own precision in the training engine, which trains in float32
    throughout (a quarter less time a step there).

    With ``T = (s - m) @ S`` the subset means, ``p_0`` and ``p_1`` the
    softmaxes of ``T / tau`` over the subsets without and with ``y`` and ``z``
    as in :func:`_smooth_subsets`, the loss is ``tau softplus(z)`` and its
    gradient ``sigmoid(z) (p_0 - p_1) @ S^T``: a dozen operations, against
    about fifty for autograd of the formula. The log-sum-exps' rests come
    from the softmaxes: minus the log of the largest probability (at least
    ``1 / n``, so exact to rounding; cheaper than ``torch.logsumexp`` beside
    ``softmax``, and free of ``exp``'s slow path on CPU for ``-inf`` or
    underflowing arguments).
    """
    _, offsets, twice, signed = constants(
        _subset_constants, scores.shape[1], k, dtype, like=scores
    )
    n = scores.shape[0]
    # Both halves' terms in one product: offsets + (s - m) @ [S, S]; the
    # gradient (p_0 - p_1) @ S^T as one product with [S^T; -S^T].
    width = twice.shape[1]
    terms = offsets.index_select(0, labels).view(n, width)
    terms = terms.addmm_(_centred(scores.to(dtype)), twice).view(n, 2, width // 2)
    top = terms.amax(2)  # (n, 2), in the scores' units
    terms = terms.sub_(top[:, :, None])  # <= 0, the largest 0
    if tau != 1.0:
        terms = terms.div_(tau)
    p = torch.softmax(terms, 2)  # p_0 and p_1; exact where terms are -inf
    logs = p.amax(2).log_()  # minus the rests
    hinge, rest = top[:, 0] - top[:, 1] + margin, logs[:, 1] - logs[:, 0]
    z = _split(hinge, rest, tau)
    grad = (p.view(n, width) @ signed).mul_(torch.sigmoid(z)[:, None])
    return _scaled_softplus(z, hinge, rest, tau), grad


def _scaled_softplus(z: Tensor, hinge: Tensor, rest: Tensor, tau: float) -> Tensor:
    """``tau softplus(z)`` for ``z = hinge / tau + rest`` (:func:`_split`); in
    float32, where ``z > 0``, as ``hinge + tau (rest + softplus(-z))``: finite
    wherever the loss is, even where ``z`` overflows (float64 holds ``z`` for
    any float32 scores)."""
    small = F.softplus(z, threshold=40.0)
    if z.dtype == torch.float64:
        return small.mul_(tau) if tau != 1.0 else small
    large = F.softplus(-z, threshold=40.0).add_(rest)
    if tau != 1.0:
        small, large = small.mul_(tau), large.mul_(tau)
    return torch.where(z > 0, large.add_(hinge), small)


def _k1_loss_gradient(
    scores: Tensor, labels: Tensor, margin: float, tau: float
) -> tuple[Tensor, Tensor]:
    """Per-sample loss of :func:`_smooth_k1` and its gradient in closed form:
    ``sigma x_j / sum x`` for the wrong classes, ``-sigma`` for the true one
    (``sigma`` the sigmoid of the softplus argument)."""
    y = labels[:, None]
    wrong = scores.scatter(1, y, -math.inf)
    c = wrong.amax(1, keepdim=True)
    x = wrong.div_(tau) if tau != 1.0 else wrong
    p = torch.softmax(x, 1)  # x_j / sum x, exactly 0 for the true class
    # slack = log sum_j exp((s_j - s_y) / tau) + margin / tau, where the
    # log-sum-exp over the wrong classes is c / tau - log max p.
    gap = c.sub_(scores.gather(1, y)).add_(margin)  # c - s_y + margin
    slack = (gap.div_(tau) if tau != 1.0 else gap).sub_(p.amax(1, keepdim=True).log_())
    loss = F.softplus(slack, threshold=40.0)
    sigma = torch.sigmoid(slack)
    grad = p.mul_(sigma).scatter_(1, y, sigma.neg())
    return (loss.mul_(tau) if tau != 1.0 else loss)[:, 0], grad


class _Route(NamedTuple):
    """A route by its formula (differentiable by autograd) and its closed
    form ``(loss, gradient)``, both of ``(scores, labels, *params)``, where
    ``params`` are ``(k, margin, tau)``, without ``k`` if ``takes_k`` is false."""

    formula: Callable[..., Tensor]
    closed_form: Callable[..., tuple[Tensor, Tensor]]
    takes_k: bool
    takes_dtype: bool = False  # closed_form(..., dtype=) sets its precision

    def params(self, k: int, margin: float, tau: float) -> tuple:
        return (k, margin, tau) if self.takes_k else (margin, tau)

    def training_step(
        self, scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
    ) -> tuple[Tensor, Tensor]:
        """The closed form as the training engine takes it: in the scores'
        precision (the subsets route forms its terms in float64 for the
        public loss)."""
        extra = {"dtype": scores.dtype} if self.takes_dtype else {}
        return self.closed_form(scores, labels, *self.params(k, margin, tau), **extra)


class _ClosedForm(torch.autograd.Function):
    """A route whose forward pass makes the gradient in closed form (a dozen
    operations where autograd of the formula takes thirty to fifty) and whose
    backward only scales it. A backward that builds a graph
    (``create_graph=True``) differentiates the formula instead, so that every
    higher derivative is exact."""

    @staticmethod
    def forward(ctx, scores, labels, route, params):
        loss, ctx.grad = route.closed_form(scores, labels, *params)
        ctx.save_for_backward(scores, labels)
        ctx.route, ctx.params = route, params
        return loss

    @staticmethod
    def backward(ctx, grad_loss):
        scores, labels = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            loss = ctx.route.formula(scores, labels, *ctx.params)
            (grad,) = torch.autograd.grad(loss, scores, grad_loss, create_graph=True)
        else:
            grad = (ctx.grad * grad_loss[:, None]).to(scores.dtype)
        return grad, None, None, None

    @staticmethod
    def jvp(ctx, d_scores, *_):
        return (ctx.grad * d_scores).sum(1)


_closed_apply = direct_apply(_ClosedForm)
CLOSED_ROUTES = {
    "k1": _Route(_smooth_k1, _k1_loss_gradient, takes_k=False),
    "subsets": _Route(
        _smooth_subsets, _subsets_loss_gradient, takes_k=True, takes_dtype=True
    ),
}


def closed_form_route(
    route: _Route, scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample loss by ``route``: :class:`_ClosedForm` in plain eager mode,
    the formula under compile, export, tracing, ``torch.func`` transforms and
    for tensor subclasses."""
    params = route.params(k, margin, tau)
    if type(scores) not in _PLAIN or scores.device.type == "meta":
        return route.formula(scores, labels, *params)
    if _closed_apply is not None and plain_eager(scores, labels):
        return _closed_apply(scores, labels, route, params)
    if transformed():
        return route.formula(scores, labels, *params)
    return _ClosedForm.apply(scores, labels, route, params)  # dead wrappers


def _subset_constants(
    n_classes: int,
    k: int,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, Tensor, Tensor]:
    """In ``dtype``: the subset matrix ``S = (C, n_subsets) / k`` (the means),
    the offsets ``(C, 2, n_subsets)`` of the two log-sum-exps (0 or -inf),
    ``[S, S]`` and ``[S^T; -S^T]`` (contiguous)."""
    subsets = list(itertools.combinations(range(n_classes), k))
    rows = [[float(j in subset) for subset in subsets] for j in range(n_classes)]
    member = torch.tensor(rows, dtype=_F64, device=device)
    scaled = member / k
    offsets = torch.stack([torch.log(1.0 - member), torch.log(member)], 1)
    twice = torch.cat([scaled, scaled], 1)
    signed = torch.cat([scaled.T, -scaled.T], 0).contiguous()
    return tuple(t.to(dtype) for t in (scaled, offsets, twice, signed))
