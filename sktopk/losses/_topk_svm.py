"""Top-k multi-class SVM losses over classes (Berrada, Zisserman, Kumar, 2018).

The smooth loss is computed from elementary symmetric polynomials (ESP) of the
exponentiated wrong-class scores. With ``c`` the k-th largest wrong-class
score, split the wrong classes into the top
k (``u_i = exp((c - s_i) / (k tau))`` in ``(0, 1]``) and the rest
(``x_r = exp((s_r - c) / (k tau))`` in ``[0, 1]``). With ``a = ESP(u)`` and
``b = ESP(x)``, the scaled ``e_k`` and ``e_{k-1}`` of all wrong classes are

    A = sum_j a_j b_j >= 1,        B = sum_j a_{j+1} b_j >= 1,

so ``log e_k - log e_{k-1} = c / (k tau) + log(A / B)`` with no overflow,
underflow or cancellation, whatever the spread of the scores or the size of
``tau``. For ``k <= _FAST_MAX_K``, ``b`` comes from the k power sums of ``x``
(k passes over the scores) and the gradient is a degree-k polynomial in ``x``
(k more passes). Larger k uses
exact product trees (:func:`._esp.esp_unit`) and, where ``C(C - 1, k)``
overflows float64, log-space ones (:func:`._esp.log_esp`).
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from ._esp import (
    esp_from_power_sums,
    esp_unit,
    lagged_products,
    log_esp,
    power_sums,
    xpolyval,
)

__all__ = ["smooth_topk_svm", "topk_svm"]

# Newton's identities and the polynomial gradient lose accuracy as k grows;
# up to k = 10 float32 gradients stay within ~1e-5 of float64 (tests).
_FAST_MAX_K = 10
# Above, linear-space products of values in [0, 1], bounded by C(C - 1, k),
# in float64 while that fits; log-space beyond.
_LINEAR_MAX_LOG = 650.0
_REDUCTIONS = ("none", "mean", "sum")


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
        ``scores``.

    Raises
    ------
    ValueError
        For invalid arguments, naming the argument and its allowed range.

    See Also
    --------
    topk_svm : The non-smooth limit ``tau -> 0``.

    Notes
    -----
    Computation: the wrong classes are split at the k-th largest wrong score
    ``c``, which maps every value into ``[0, 1]`` and makes the loss exact for
    any spread of scores and any ``tau``. For ``k <= 10``, the elementary
    symmetric polynomials come from power sums by Newton's identities and the
    backward pass is analytic: about ``3 k`` passes over the scores plus a
    ``topk``, about 3 times a cross-entropy at 1000 classes (plus a fixed
    cost of about 0.5 ms on CPU, noticeable for few classes), with float32
    gradients within about 1e-6 of float64. Larger ``k`` uses exact product
    trees in float64 (10 to 30 times slower), and log-space products once
    ``C(n_classes - 1, k)`` exceeds float64. The first two are custom autograd
    functions with first derivatives only. Half-precision scores are computed
    in float32, and float64 is used where ``1 / (k tau)`` would overflow
    float32.

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
    scores, labels = _check_data(scores, labels, k)
    work = scores.to(_compute_dtype(scores.dtype, k * tau))
    if k <= _FAST_MAX_K:
        loss = _SmoothTopKSVM.apply(work, labels, k, float(margin), float(tau))
    elif _log_binom(scores.shape[1] - 1, k) < _LINEAR_MAX_LOG:
        loss = _smooth_topk_svm_tree(work, labels, k, float(margin), float(tau))
    else:
        loss = _smooth_topk_svm_logspace(work, labels, k, float(margin), float(tau))
    return _reduce(loss.to(scores.dtype), reduction)


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
        Scalar, or of shape (n_samples,) with ``reduction="none"``.

    See Also
    --------
    smooth_topk_svm : The smooth version.

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
    scores, labels = _check_data(scores, labels, k)
    y = labels[:, None]
    wrong = scores.scatter(1, y, -math.inf)
    kth = wrong.topk(k, dim=1).values[:, -1]
    loss = torch.relu(margin + (kth - scores.gather(1, y)[:, 0]) / k)
    return _reduce(loss, reduction)


class _SmoothTopKSVM(torch.autograd.Function):
    """Per-sample smooth top-k SVM loss with an analytic backward (k small)."""

    @staticmethod
    def forward(ctx, scores, labels, k, margin, tau):
        x, top_idx, y, small = _split(scores, labels, k, tau)
        loss, saved = _fast_loss(small, power_sums(x, k), k, margin, tau)
        ctx.save_for_backward(x, top_idx, y, *saved)
        return loss.to(scores.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_loss):
        x, top_idx, y, u_pow, esp, lags, sigma = ctx.saved_tensors
        scale = grad_loss.to(torch.float64) * sigma  # sigma / k, per sample
        coef, grad_top = _fast_grad_coefs(u_pow, esp, lags, scale[:, None])
        grad = xpolyval(coef.to(x.dtype), x)
        grad.scatter_(1, top_idx, grad_top.to(x.dtype))
        grad.scatter_(1, y, (-scale[:, None]).to(x.dtype))
        return grad, None, None, None, None


def _split(
    scores: Tensor, labels: Tensor, k: int, tau: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split the wrong classes at the k-th largest wrong score ``c``.

    Returns ``x`` of shape (n, C), ``exp((s - c) / (k tau))`` on the classes
    below the top k and 0 on the top k and the true class; the indices of the
    top k; the labels as a column; and, in float64, the top k scores followed
    by the true-class score, shape (n, k + 1).
    """
    y = labels[:, None]
    work = scores.detach().clone()
    work.scatter_(1, y, -math.inf)
    top, top_idx = work.topk(k, dim=1)
    x = work.sub_(top[:, -1:]).div_(k * tau).exp_()  # inf on the top k: zeroed
    x.scatter_(1, top_idx, 0.0)
    small = torch.cat([top, scores.detach().gather(1, y)], 1).to(torch.float64)
    return x, top_idx, y, small


def _fast_loss(
    small: Tensor, p_rest: Tensor, k: int, margin: float, tau: float
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Per-sample loss (float64) from the top k, true score and power sums."""
    u = ((small[:, k - 1 : k] - small[:, :k]) / (k * tau)).exp()  # in (0, 1]
    u_pow = F.pad(u[:, :, None].expand(-1, k, k).cumprod(-1), (1, 0), value=1.0)
    esp = esp_from_power_sums(torch.stack([u_pow[:, :, 1:].sum(1), p_rest.double()]))
    lags = lagged_products(esp, esp.flip(0))  # g = lags[0], h = lags[1]
    # e_k / e_{k-1} of the wrong classes is exp(c / (k tau)) g_0 / g_1.
    slack = torch.log(lags[0, :, 0] / lags[0, :, 1]).mul_(tau).add_(margin)
    slack = slack.add_(small[:, k - 1] - small[:, k], alpha=1.0 / k)
    soft = F.softplus(slack.abs().div_(-tau)).mul_(tau)  # tau log(1 + e^(-|m|/tau))
    loss = soft.add_(slack.relu())
    sigma = torch.sigmoid(slack / tau).div_(k)
    return loss, (u_pow, esp, lags, sigma)


def _fast_grad_coefs(
    u_pow: Tensor, esp: Tensor, lags: Tensor, scale: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradient of ``log(g_0 / g_1)``, times ``scale``, in a stable form.

    From ``d e_j(v) / dv_i = sum_l (-v_i)^l e_{j-1-l}(v)`` (stable for
    ``v_i <= 1``): on the rest, ``x_r sum_l coef_l x_r^l``; on the top k,
    ``grad_top = -u_i sum_l c_l u_i^l``.
    """
    k = u_pow.shape[1]
    (a, b), (g, h) = esp, lags
    sign = scale * _signs(k, g.device)
    inv_a, inv_b = 1.0 / g[:, :1], 1.0 / g[:, 1:2]
    coef = sign * (g[:, 1:] * inv_a - F.pad(g[:, 2:], (0, 1)) * inv_b)
    h_rest = h[:, :k] - b[:, k:] * a.flip(1)[:, :k]  # h without the b_k term
    coef_top = sign * (h[:, 1:] * inv_a - h_rest * inv_b)
    grad_top = (u_pow[:, :, 1:] @ coef_top[:, :, None])[:, :, 0].neg_()
    return coef, grad_top


@functools.lru_cache(maxsize=64)
def _signs(k: int, device: torch.device) -> Tensor:
    """``(-1)^l`` for ``l = 0..k-1``, in float64."""
    return 1.0 - 2.0 * (torch.arange(k, dtype=torch.float64, device=device) % 2)


def _smooth_topk_svm_tree(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample loss for large k: the same split, ESP by product trees.

    Float64 throughout; autograd through :func:`._esp.esp_unit`.
    """
    s = scores.to(torch.float64)
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
    s = scores.to(torch.float64)
    y = labels[:, None]
    wrong = s.scatter(1, y, -math.inf)
    kth = wrong.detach().topk(k, dim=1).values[:, -1:]
    log_e = log_esp((wrong - kth) / (k * tau), k)
    slack = margin + (kth[:, 0] - s.gather(1, y)[:, 0]) / k
    slack = slack + tau * (log_e[:, k] - log_e[:, k - 1])
    return tau * torch.logaddexp(torch.zeros_like(slack), slack / tau)


def _compute_dtype(dtype: torch.dtype, k_tau: float) -> torch.dtype:
    """float32 or float64; float64 where ``1 / (k tau)`` overflows float32."""
    if k_tau < torch.finfo(torch.float32).tiny or dtype == torch.float64:
        return torch.float64
    return torch.float32


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


def _check_data(scores: Tensor, labels: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Validate scores, labels and k against the data; return int64 labels."""
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
    labels = torch.as_tensor(labels, device=scores.device)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor; got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(
            f"labels must have shape (n_samples,) = ({n},); got {tuple(labels.shape)}"
        )
    if n == 0:
        return scores, labels.long()
    # One reduction instead of a full isfinite pass; the sum may also overflow.
    if not math.isfinite(scores.sum().item()) and not torch.isfinite(scores).all():
        raise ValueError("scores must be finite; got NaN or infinite values")
    low, high = torch.stack(torch.aminmax(labels)).tolist()
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"labels must be in [0, n_classes - 1] = [0, {n_classes - 1}]; "
            f"got values in [{low}, {high}]"
        )
    return scores, labels.long()


# --- definitions for the registry: batched value and gradient ----------------------


def _batched(fn):
    """``fn(scores_2d, labels_1d, **params)`` over scores ``lead + (n, C)``."""

    def value(f: Tensor, y: Tensor, **params) -> Tensor:
        y_full = y.expand(f.shape[:-1])
        out = fn(f.reshape(-1, f.shape[-1]), y_full.reshape(-1), **params)
        return out.reshape(f.shape[:-1])

    return value


def _autograd_loss_gradient(value):
    """Value and gradient of a loss whose gradient is its autograd backward
    (the analytic one, inside its ``autograd.Function``)."""

    def loss_gradient(f: Tensor, y: Tensor, **params) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            leaf = f.detach().requires_grad_(True)
            loss = value(leaf, y, **params)
            (grad,) = torch.autograd.grad(loss.sum(), leaf)
        return loss.detach(), grad

    return loss_gradient


smooth_topk_svm_value = _batched(
    lambda s, t, **p: smooth_topk_svm(s, t, reduction="none", **p)
)
smooth_topk_svm_loss_gradient = _autograd_loss_gradient(smooth_topk_svm_value)
topk_svm_value = _batched(lambda s, t, **p: topk_svm(s, t, reduction="none", **p))
topk_svm_loss_gradient = _autograd_loss_gradient(topk_svm_value)
