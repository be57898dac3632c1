"""Top-k multi-class SVM losses over classes (Berrada, Zisserman, Kumar, 2018).

Every route below is exact (no switch to the hard loss, no truncation), and the
route is chosen from the shapes and hyper-parameters only, never from values
(:func:`_route`); under ``torch.compile``, ``torch.export`` and ``jit.trace``
from the size of a row only, so that it does not depend on the batch size:

* ``k = 1``: ``tau softplus(margin / tau + logsumexp_{j != y} (s_j - s_y) /
  tau)``, which is ``tau`` times the cross-entropy of ``(s - margin onehot_y) /
  tau`` (plain autograd).
* few k-subsets (``C(C, k) <= _SUBSET_MAX``): the definition itself, one
  matrix product with a 0/1 subset matrix and two log-sum-exps (plain
  autograd).
* ``k <= _FAST_MAX_K``: with ``c`` the k-th largest wrong-class score, split the
  wrong classes into the top k (``u_i = exp((c - s_i) / (k tau))`` in
  ``(0, 1]``) and the rest (``x_r = exp((s_r - c) / (k tau))`` in ``[0, 1]``).
  With ``a = ESP(u)`` and ``b = ESP(x)``, the scaled ``e_k`` and ``e_{k-1}`` of
  all wrong classes are ``A = sum_j a_j b_j >= 1`` and
  ``B = sum_j a_{j+1} b_j >= 1``, so ``log e_k - log e_{k-1} = c / (k tau) +
  log(A / B)`` with no overflow, underflow or cancellation, whatever the spread
  of the scores or the size of ``tau``. ``a`` and ``b`` come from power sums
  (Newton's identities, :func:`._esp.split_esp_lags`) and the gradient is a
  degree-k polynomial in ``x`` (and in ``u``): a custom autograd Function whose
  backward is analytic, and differentiable again by recomputation.
* larger k: exact product trees (:func:`._esp.esp_unit`) and, where
  ``C(C - 1, k)`` overflows float64, log-space ones (:func:`._esp.log_esp`).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import transformed, value_checks_apply
from ._esp import constants, esp_unit, log_esp, split_esp_lags

__all__ = ["smooth_topk_svm", "topk_svm"]

# Newton's identities and the polynomial gradient lose accuracy as k grows;
# up to k = 10 float32 gradients stay within ~1e-5 of float64 (tests).
_FAST_MAX_K = 10
# Above, linear-space products of values in [0, 1], bounded by C(C - 1, k),
# in float64 while that fits; log-space beyond.
_LINEAR_MAX_LOG = 650.0
# Routes are chosen by size. In eager mode by the work of the whole batch: few
# large operations cost less than many small ones only while tensors are small.
# Under compile, export or tracing by the size of a row only, so that the route
# does not depend on the batch size (one graph for every batch size).
# Enumerate the k-subsets while a row has at most this many, and in eager mode
# while the batch has at most _SUBSET_TOTAL subsets.
_SUBSET_MAX = 256
_SUBSET_TOTAL = 4096
# The fast route keeps the powers x^1..x^k of every score as one float64
# tensor while n_classes * k is at most _POWERS_MAX (per row, traced) and
# n * n_classes * k at most _POWERS_TOTAL (eager); beyond, it makes passes over
# the scores.
_POWERS_MAX = 64
_POWERS_TOTAL = 8192
# k = 1 is a log-sum-exp (plain autograd) up to this many scores in eager mode,
# the fast route's passes beyond.
_K1_TOTAL = 1 << 20
# The top k are found among the top groups of scores (two small topk) from this
# many classes, and in eager mode also from _GROUPED_TOPK_TOTAL scores while
# C < 64 k, where torch.topk takes its slower selection algorithm on CPU.
_GROUPED_TOPK_MIN = 4096
_GROUPED_TOPK_TOTAL = 1 << 15
_REDUCTIONS = ("none", "mean", "sum")
_F64 = torch.float64


def smooth_topk_svm(
    scores: Tensor,
    labels: Tensor,
    k: int = 5,
    margin: float = 1.0,
    tau: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    r"""Smooth top-k SVM loss of Berrada, Zisserman and Kumar (2018).

    For scores ``s`` over ``C`` classes and true class ``y``, with ``A`` ranging
    over the k-subsets of classes and ``Delta(A, y) = margin`` if ``y`` is not in
    ``A`` (else 0)::

        L(s, y) = tau log sum_A exp((Delta(A, y) + sum_{j in A} s_j / k) / tau)
                - tau log sum_{A containing y} exp(sum_{j in A} s_j / (k tau))
                = tau softplus(margin / tau - z_y + log e_k(z') - log e_{k-1}(z'))

    where ``z = s / (k tau)``, ``z'`` is ``z`` without the true class and
    ``e_j`` is the elementary symmetric polynomial of degree ``j`` of
    ``exp(z')``. ``L >= 0``; ``k = 1, margin = 0, tau = 1`` gives the
    cross-entropy; as ``tau -> 0`` it tends to :func:`topk_svm`. It is exact for
    every ``tau > 0`` (no switch to the hard loss), invariant to adding a
    constant to all scores, and costs ``O(k C)`` per sample. The gradient is
    ``-sigma / k`` for the true class and ``(sigma / k)(p_k(j) - p_{k-1}(j))``
    for the others (``sigma`` the sigmoid of the softplus argument, ``p_m(j)``
    the inclusion probability of class ``j`` in a weighted m-subset); it sums to
    zero per sample and is bounded by ``1 / k``.

    Parameters
    ----------
    scores : Tensor of shape (n_samples, n_classes)
        Class scores, finite, floating point, on any device.
    labels : Tensor of shape (n_samples,)
        True classes, integers in ``[0, n_classes - 1]``; moved to the device of
        ``scores``.
    k : int, default=5
        Size of the predicted set, in ``[1, n_classes - 1]``.
    margin : float, default=1.0
        Margin, ``>= 0``.
    tau : float, default=1.0
        Temperature, ``> 0``.
    reduction : {"none", "mean", "sum"}, default="mean"
        ``"none"`` returns the per-sample losses.

    Returns
    -------
    Tensor
        Scalar, or of shape (n_samples,) with ``reduction="none"``; dtype of
        ``scores``, except under ``torch.autocast``, where half-precision
        scores give float32 (as ``torch.nn.functional.cross_entropy`` does).

    Raises
    ------
    ValueError
        For invalid arguments, naming the argument and its allowed range.

    See Also
    --------
    topk_svm : The non-smooth limit ``tau -> 0``.

    Notes
    -----
    Computation (all routes exact): ``k = 1`` is a log-sum-exp of the
    differences to the true score; when there are at most 256 k-subsets (and,
    in eager mode, few in the whole batch), the definition is evaluated over
    them; otherwise, for ``k <= 10``, the wrong
    classes are split at the k-th largest wrong score ``c``, which maps every
    value into ``[0, 1]``, the elementary symmetric polynomials come from power
    sums and the backward pass is analytic (float32 gradients within about
    1e-6 of float64); larger ``k`` uses exact product trees in float64, and
    log-space products once ``C(n_classes - 1, k)`` exceeds float64.
    Half-precision scores are computed in float32, and float64 is used where
    ``1 / (k tau)`` would overflow float32.

    Higher derivatives (a gradient penalty, ``torch.autograd.functional.hessian``)
    are exact on every route for ``k <= 10``; for larger ``k``, the product-tree
    route raises a clear error on a second backward pass. The loss works with
    the ``torch.func`` transforms (``grad``, ``vmap``, ``jacrev``, ``hessian``
    for ``k <= 10``), meta and fake tensors, ``torch.compile(fullgraph=True)``
    and ``torch.export`` (a dynamic batch dimension included). Traced, the
    route depends on the number of classes only, so one graph serves every
    batch size: torch specialises on the first batch size and compiles one
    dynamic graph at the second, then never again
    (``torch._dynamo.mark_dynamic(scores, 0)`` before the first call compiles
    the dynamic graph at once). ``torch.jit.trace`` follows the batch size too.

    Speed (CPU, forward + backward): about 2 to 9 times
    ``torch.nn.functional.cross_entropy`` for ``k = 5`` and 1.2 to 4 times for
    ``k = 1`` (``benchmarks/bench_topk_svm.py``). The exact algorithm takes a
    ``torch.topk`` and tens of small tensor operations, each of which costs
    about as much as a whole small cross-entropy; the ratio is highest for
    small batches and few classes.

    Validation: shapes, dtypes and hyper-parameters are always checked; the
    values (finite scores, labels in range) only in eager mode on tensors in
    host memory (see ``sktopk.losses.set_value_checks``), so that the training
    path never waits for an accelerator.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018.

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 0.5]])
    >>> labels = torch.tensor([0, 2])
    >>> smooth_topk_svm(scores, labels, k=2, tau=0.1, reduction="none")
    tensor([0.0693, 0.7579])
    >>> topk_svm(scores, labels, k=2, reduction="none")  # the tau -> 0 limit
    tensor([0.0000, 0.7500])
    >>> smooth_topk_svm(scores, labels, k=1, margin=0.0)  # cross-entropy
    tensor(1.3385)
    >>> torch.nn.functional.cross_entropy(scores, labels)
    tensor(1.3385)
    """
    _check_hyper(k, margin, tau, reduction)
    labels = _check_data(scores, labels, k)
    margin, tau = float(margin), float(tau)
    out_dtype, device = _result_dtype(scores), scores.device.type
    with _no_autocast(device):
        work = scores.to(_compute_dtype(scores.dtype, k * tau))
        loss = _smooth_per_sample(work, labels, k, margin, tau)
        return _reduce(loss.to(out_dtype), reduction)


def topk_svm(
    scores: Tensor,
    labels: Tensor,
    k: int = 5,
    margin: float = 1.0,
    reduction: str = "mean",
) -> Tensor:
    """Hard top-k SVM loss, the ``tau -> 0`` limit of :func:`smooth_topk_svm`.

    ``l(s, y) = max(0, margin + (s'_[k] - s_y) / k)``, where ``s'_[k]`` is the
    k-th largest score among the wrong classes (note the ``1 / k`` on the score
    difference and none on ``margin``). Zero once the true score beats the k-th
    best wrong score by ``k margin``. Its gradient is sparse: ``-1 / k`` on the
    true class and ``+1 / k`` on the k-th wrong class where the loss is positive.

    Parameters
    ----------
    scores : Tensor of shape (n_samples, n_classes)
        Class scores, finite, floating point, on any device.
    labels : Tensor of shape (n_samples,)
        True classes, integers in ``[0, n_classes - 1]``.
    k : int, default=5
        In ``[1, n_classes - 1]``.
    margin : float, default=1.0
        Margin, ``>= 0``.
    reduction : {"none", "mean", "sum"}, default="mean"

    Returns
    -------
    Tensor
        Scalar, or of shape (n_samples,) with ``reduction="none"``; float32
        under ``torch.autocast`` for half-precision scores.

    See Also
    --------
    smooth_topk_svm : The smooth version.

    Notes
    -----
    Plain autograd operations (every derivative, ``torch.func``, compile and
    export work); validation as in :func:`smooth_topk_svm`. From 4096 classes
    the k-th wrong score is found among the top groups of scores, which is
    exact and about twice as fast as ``torch.topk`` on CPU.

    References
    ----------
    Berrada, Zisserman, Kumar. "Smooth Loss Functions for Deep Top-k
    Classification". ICLR 2018. Lapin, Hein, Schiele. "Top-k Multiclass SVM".
    NeurIPS 2015.

    Examples
    --------
    >>> import torch
    >>> scores = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 3.0, 1.0, 0.5]])
    >>> topk_svm(scores, torch.tensor([0, 2]), k=2, reduction="none")
    tensor([0.0000, 0.7500])
    """
    _check_hyper(k, margin, 1.0, reduction)
    labels = _check_data(scores, labels, k)
    out_dtype = _result_dtype(scores)
    with _no_autocast(scores.device.type):
        work = scores.to(_compute_dtype(scores.dtype, 1.0))
        y = labels[:, None]
        kth = _wrong_topk(work, y, k)[1][:, k - 1 :]
        pair = work.gather(1, torch.cat([kth, y], 1))
        weights = constants(_vector, (1.0 / k, -1.0 / k, margin), work.dtype, like=work)
        slack = torch.addmv(weights[2].expand(pair.shape[0]), pair, weights[:2])
        loss = torch.relu(slack)
        return _reduce(loss.to(out_dtype), reduction)


# --- routes of the smooth loss ------------------------------------------------------


def _smooth_per_sample(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample smooth loss by the route the shapes select."""
    route = _route(*scores.shape, k)
    if route == "k1":
        return _smooth_k1(scores, labels, margin, tau)
    if route == "subsets":
        return _smooth_subsets(scores, labels, k, margin, tau)
    if route == "fast":
        return _apply_fast(scores, labels, k, margin, tau)
    n_classes = scores.shape[1]
    # The product trees have first derivatives only; torch.func transforms get
    # the log-space route, differentiable to every order.
    functorch = transformed() and _functorch_only()
    if _log_binom(n_classes - 1, k) < _LINEAR_MAX_LOG and not functorch:
        return _smooth_topk_svm_tree(scores, labels, k, margin, tau)
    return _smooth_topk_svm_logspace(scores, labels, k, margin, tau)


def _route(n: int, n_classes: int, k: int) -> str:
    """Which route computes the smooth loss: from the shapes only."""
    traced = transformed() and not _functorch_only()
    if k == 1 and (traced or n * n_classes <= _K1_TOTAL):
        return "k1"
    subsets = math.comb(n_classes, k)
    if subsets <= _SUBSET_MAX and (traced or n * subsets <= _SUBSET_TOTAL):
        return "subsets"
    if k <= _FAST_MAX_K:
        return "fast"
    return "large"


def _functorch_only() -> bool:
    """A torch.func transform, not compile, export or jit tracing."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


def _powers_route(n: int, n_classes: int, k: int) -> bool:
    """Whether the fast route holds the powers as one tensor."""
    if transformed() and not _functorch_only():
        return n_classes * k <= _POWERS_MAX
    return n * n_classes * k <= _POWERS_TOTAL


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

    In float64, ``(s - max s) @ S`` holds the subset means over ``tau``; the
    offsets restrict the first log-sum-exp to the subsets without ``y`` (plus
    ``margin / tau``) and the second to those with ``y``, so that the loss is
    ``tau softplus(lse_1 - lse_2)``, non-negative and accurate when tiny.
    """
    subsets, offsets = constants(
        _subset_constants, scores.shape[1], k, margin, tau, like=scores
    )
    shifted = (scores - scores.detach().amax(1, keepdim=True)).to(_F64)
    terms = (shifted @ subsets)[:, None, :] + offsets.index_select(0, labels)
    # Each log-sum-exp relative to its own largest term: its backward,
    # exp(term - result), is then exact even where 1 / tau makes terms huge.
    top = terms.detach().amax(2, keepdim=True)
    both = torch.logsumexp(terms - top, 2) + top[:, :, 0]
    slack = torch.mv(both, torch.tensor([tau, -tau], dtype=_F64, device=both.device))
    return F.softplus(slack, beta=1.0 / tau, threshold=40.0)


def _subset_constants(
    n_classes: int, k: int, margin: float, tau: float, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Subset matrix ``(C, n_subsets) / (k tau)`` and offsets ``(C, 2, n_subsets)``."""
    subsets = list(itertools.combinations(range(n_classes), k))
    rows = [[float(j in subset) for subset in subsets] for j in range(n_classes)]
    member = torch.tensor(rows, dtype=_F64, device=device)
    without = torch.log(1.0 - member) + margin / tau  # -inf where y is in
    return member / (k * tau), torch.stack([without, torch.log(member)], 1)


# --- the fast route: custom autograd Function ---------------------------------------


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

    @staticmethod
    def jvp(ctx, scores_dot, *_):
        scores, labels = ctx.saved_tensors
        with _no_autocast(scores.device.type):
            grad = _fast_gradient(scores, labels, *ctx.params)
        loss_dot = (grad * scores_dot.to(grad.dtype)).sum(1)
        return (loss_dot.to(scores.dtype),) + (None,) * 6


def _batch_first(t: Tensor, dim: int | None, size: int) -> Tensor:
    return t.movedim(dim, 0) if dim is not None else t.expand(size, *t.shape)


def _fast_function() -> type[torch.autograd.Function]:
    return _SmoothTopKSVMCore if torch.compiler.is_compiling() else _SmoothTopKSVM


_functorch_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
# Function.apply binds the arguments with inspect.signature on every call (tens
# of microseconds, as much as a whole small cross-entropy); in plain eager mode
# the C entry point it ends in is called directly.
_direct_apply = getattr(super(torch.autograd.Function, _SmoothTopKSVM), "apply", None)


def _apply_fast(scores: Tensor, labels: Tensor, k: int, margin: float, tau: float):
    args = (scores, labels, k, margin, tau)
    if (
        _direct_apply is None
        or _functorch_wrapped is None
        or transformed()
        or _functorch_wrapped(scores)
        or _functorch_wrapped(labels)
    ):
        return _fast_function().apply(*args)[0]
    return _direct_apply(*args)[0]


def _fast_constants(k: int, tau: float, margin: float, device: torch.device):
    """Float64 ``alpha [1..k]``, the slack weights and ``margin / tau``."""
    alpha = 1.0 / (k * tau)
    f64 = dict(dtype=_F64, device=device)
    powers = alpha * torch.arange(1, k + 1, **f64)
    weights = torch.tensor([1.0, -1.0, alpha], **f64)  # log A, log B, c - s_y
    return powers, weights, torch.tensor(margin / tau, **f64)


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
    powers, weights, margin_tau = constants(
        _fast_constants, k, tau, margin, like=scores
    )
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
    gap = torch.cat([ab.log(), c - scores.gather(1, y)], 1)  # promoted to float64
    z = torch.addmv(margin_tau.expand(gap.shape[0]), gap, weights)  # slack / tau
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


# --- top k of the wrong classes -------------------------------------------------------


def _wrong_topk(scores: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Values and indices ``(n, k)`` of the k largest wrong-class scores
    (detached), largest first."""
    scores = scores.detach()
    n, n_classes = scores.shape
    traced = transformed() and not _functorch_only()
    grouped = n_classes >= _GROUPED_TOPK_MIN or (
        not traced and n_classes < 64 * k and n * n_classes >= _GROUPED_TOPK_TOTAL
    )
    if not grouped or scores.stride(1) != 1:
        return scores.scatter(1, y, -math.inf).topk(k, 1)
    idx = _grouped_topk(scores, k + 1)
    values = scores.gather(1, idx).masked_fill_(idx == y, -math.inf)
    top, pos = values.topk(k, 1)
    return top, idx.gather(1, pos)


def _grouped_topk(scores: Tensor, m: int) -> Tensor:
    """Indices of the ``m`` largest scores per row, by groups of columns.

    The ``m`` largest scores lie in the ``m`` groups with the largest maxima
    (a group holding one of them has a maximum at least as large, and at most
    ``m`` groups can contain one). So one vectorised maximum over groups and
    two small ``topk`` replace a ``topk`` over all the classes. Columns past the
    last full group form a last window, ``C - g .. C``, whose first entries
    (already in the previous group) are masked.
    """
    n, n_classes = scores.shape
    g = max(m, math.isqrt(n_classes // m))
    full = n_classes // g
    gmax = scores[:, : full * g].view(n, full, g).amax(2)
    if full * g < n_classes:
        gmax = torch.cat([gmax, scores[:, full * g :].amax(1, keepdim=True)], 1)
    groups = gmax.topk(min(m, gmax.shape[1]), 1).indices
    start = (groups * g).clamp_max(n_classes - g)
    cand = start[:, :, None] + torch.arange(g, device=scores.device)
    values = scores.gather(1, cand.view(n, -1)).view(cand.shape)
    if full * g < n_classes:
        values = values.masked_fill(
            (groups == full)[:, :, None] & (cand < full * g), -math.inf
        )
    best = values.view(n, -1).topk(m, 1).indices
    return cand.view(n, -1).gather(1, best)


# --- large k: product trees and log-space ---------------------------------------------


def _smooth_topk_svm_tree(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample loss for large k: the same split, ESP by product trees.

    Float64 throughout; autograd through :func:`._esp.esp_unit`.
    """
    s = scores.to(_F64)
    y = labels[:, None]
    wrong = s.scatter(1, y, -math.inf)
    top_idx = wrong.detach().topk(k, dim=1).indices
    kth = wrong.detach().gather(1, top_idx[:, -1:])
    z = (wrong - kth) / (k * tau)
    # -inf before exp, not 0 after: exp(inf) * 0 would make the gradient NaN.
    x = z.scatter(1, top_idx, -math.inf).exp()  # in [0, 1], 0 on the top k
    a = esp_unit(torch.exp(-z.gather(1, top_idx)), k)  # u in (0, 1]
    b = esp_unit(x, k)
    log_ratio = torch.log((a * b).sum(1) / (a[:, 1:] * b[:, :-1]).sum(1))
    slack = margin + (kth[:, 0] - s.gather(1, y)[:, 0]) / k + tau * log_ratio
    return tau * torch.logaddexp(torch.zeros_like(slack), slack / tau)


def _log_binom(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _smooth_topk_svm_logspace(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample loss by log-space divide and conquer, float64, autograd."""
    s = scores.to(_F64)
    y = labels[:, None]
    wrong = s.scatter(1, y, -math.inf)
    kth = wrong.detach().topk(k, dim=1).values[:, -1:]
    log_e = log_esp((wrong - kth) / (k * tau), k)
    slack = margin + (kth[:, 0] - s.gather(1, y)[:, 0]) / k
    slack = slack + tau * (log_e[:, k] - log_e[:, k - 1])
    return tau * torch.logaddexp(torch.zeros_like(slack), slack / tau)


# --- dtypes, reductions, validation --------------------------------------------------


def _compute_dtype(dtype: torch.dtype, k_tau: float) -> torch.dtype:
    """float32 or float64; float64 where ``1 / (k tau)`` overflows float32."""
    if k_tau < torch.finfo(torch.float32).tiny or dtype == _F64:
        return _F64
    return torch.float32


def _result_dtype(scores: Tensor) -> torch.dtype:
    """The dtype of the scores; float32 for half precision under autocast."""
    if scores.dtype in (torch.float16, torch.bfloat16) and _autocast_on(
        scores.device.type
    ):
        return torch.float32
    return scores.dtype


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except (RuntimeError, TypeError):  # a device type without autocast
        return False


def _no_autocast(device_type: str):
    """Autocast off inside the loss (its products need full precision)."""
    if _autocast_on(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _vector(values: tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A constant vector (for :func:`._esp.constants`)."""
    return torch.tensor(values, dtype=dtype, device=device)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_hyper(k: int, margin: float, tau: float, reduction: str) -> None:
    """Validate the hyper-parameters that do not depend on the data."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be an integer in [1, n_classes - 1]; got {k!r}")
    if not _is_real(margin) or not 0.0 <= float(margin) < math.inf:
        raise ValueError(f"margin must be a finite number >= 0; got {margin!r}")
    if not _is_real(tau) or not 0.0 < float(tau) < math.inf:
        raise ValueError(f"tau must be a finite number > 0; got {tau!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_data(scores: Tensor, labels: Tensor, k: int) -> Tensor:
    """Validate scores, labels and k against the data; return int64 labels.

    Shapes and dtypes always; values (finite scores, labels in range) where
    :func:`._checks.value_checks_apply` allows reading them.
    """
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor; got {type(scores).__name__}")
    if scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError(
            "scores must be a 2-D floating-point tensor of shape (n_samples, "
            f"n_classes); got shape {tuple(scores.shape)} and dtype {scores.dtype}"
        )
    n, n_classes = scores.shape
    if n_classes < 2:
        raise ValueError(f"scores must have at least 2 classes; got {n_classes}")
    if not 1 <= k <= n_classes - 1:
        why = (
            " k = n_classes is meaningless: the only k-subset, all the classes, "
            "contains the true class, so the loss would be identically zero "
            "(and a larger k has no k-subsets at all)."
            if k >= n_classes
            else ""
        )
        raise ValueError(
            f"k must be in [1, n_classes - 1] = [1, {n_classes - 1}]; got {k}.{why}"
        )
    if not isinstance(labels, Tensor) or labels.device != scores.device:
        labels = torch.as_tensor(labels, device=scores.device)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor; got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(
            f"labels must have shape (n_samples,) = ({n},); got {tuple(labels.shape)}"
        )
    if n and value_checks_apply(scores, labels):
        _check_values(scores, labels, n_classes)
    return labels.long()


def _check_values(scores: Tensor, labels: Tensor, n_classes: int) -> None:
    low, high = torch.aminmax(scores.detach())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("scores must be finite; got NaN or infinite values")
    low, high = (int(v) for v in torch.aminmax(labels))
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"labels must be in [0, n_classes - 1] = [0, {n_classes - 1}]; "
            f"got values in [{low}, {high}]"
        )


# --- definitions for the registry: batched value and gradient ----------------------


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
