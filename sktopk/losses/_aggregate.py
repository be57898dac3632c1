"""Aggregate losses over samples: average, maximum, ATk, MATk and STk.

Each aggregate is defined once, by a batched ``*_loss_gradient`` function over
the last axis of ``lead + (B,)`` losses (value and analytic gradients, with
per-sample weights and per-member ``lam``, ``kappa`` and ``delta``): the
training engine calls these on a minibatch for every member at once. The
public functions take a 1-D tensor of individual losses ``l_1..l_n`` (and an
optional per-sample ``weight``), validate it and evaluate the same
definitions; MATk, STk and ATk (at its exact threshold) through the streamed
dual form of ``_fused.py``, which calls the same smoothing definitions.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from .._validation import k_fraction, resolve_k
from ._fused import dual_form, dual_grad, dual_loss_gradient
from ._smoothing import RELU, SMOOTHINGS, get_smoothing

__all__ = [
    "average",
    "maximum",
    "atk",
    "matk",
    "stk",
    "kth_largest",
    "ceil_count",
    "average_loss_gradient",
    "maximum_loss_gradient",
    "atk_loss_gradient",
    "matk_loss_gradient",
    "stk_loss_gradient",
]

# Up to this many losses, ATk sums a torch.topk: faster than selection + dual form.
_SMALL = 1 << 14

# --- validation -----------------------------------------------------------------


def _check_losses(losses: Tensor) -> Tensor:
    if not isinstance(losses, Tensor):
        raise ValueError(
            "losses must be a 1-D floating-point tensor of individual losses; "
            f"got {type(losses).__name__}"
        )
    if not losses.is_floating_point() or losses.ndim != 1 or losses.numel() == 0:
        raise ValueError(
            "losses must be a non-empty 1-D floating-point tensor of individual "
            f"losses; got dtype={losses.dtype}, shape={tuple(losses.shape)}"
        )
    return losses


def _check_weight(weight: Tensor, losses: Tensor) -> tuple[Tensor, float]:
    """Return the weight in the dtype of ``losses`` and its total ``sum(weight)``."""
    if not isinstance(weight, Tensor) or weight.shape != losses.shape:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight)
        raise ValueError(
            f"weight must be a tensor of the shape of losses {tuple(losses.shape)}; "
            f"got {shape}"
        )
    w = weight.detach().to(device=losses.device, dtype=losses.dtype)
    lowest = float(w.min())
    if not lowest >= 0 or not torch.isfinite(w).all():
        raise ValueError(
            f"weight must be finite and >= 0; got a weight with minimum {lowest!r}"
        )
    total = float(w.sum(dtype=torch.float64))
    if total <= 0:
        raise ValueError("weight must have a positive sum; got sum(weight)=0")
    return w, total


def _check_lam(lam: Tensor | float, losses: Tensor) -> Tensor:
    if isinstance(lam, numbers.Real) and not isinstance(lam, bool):
        lam = torch.tensor(float(lam), dtype=losses.dtype, device=losses.device)
    if not isinstance(lam, Tensor) or lam.numel() != 1 or not lam.is_floating_point():
        raise ValueError(
            f"lam must be a float or a one-element floating-point tensor; got {lam!r}"
        )
    return lam


def _weighted_count(k: int | float, total: float, *, ceil: bool) -> float:
    """``k`` in weight units: an int in ``[1, total]`` or a fraction of ``total``.

    With ``ceil`` a fraction becomes ``ceil(k * total)`` (capped at ``total``), as
    ``ceil(k * n)`` without weights, so that integer weights equal repetition.
    """
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        if not 1 <= k <= total * (1 + 1e-9):
            raise ValueError(
                f"k={k} is out of range: with weights an int k counts weight "
                f"units, in [1, sum(weight)={total:g}]"
            )
        return float(min(k, total))
    kappa = k_fraction(k, 1)
    if not ceil:
        return kappa * total
    return min(total, max(1.0, math.ceil(kappa * total - 1e-9 * max(1.0, total))))


def _kappa(k: int | float, n: int, total: float | None) -> float:
    if total is None:
        return k_fraction(k, n)
    return _weighted_count(k, total, ceil=False) / total


# --- definitions: value and gradients over the last axis --------------------------
# losses: lead + (B,); weight: None (every row once) or non-negative, same shape
# (zeros mark padding); lam, kappa, delta: shape lead, or numbers. Each returns
# (value or None, dvalue/dlosses, dvalue/dlam or None).


def ceil_count(x: Tensor) -> Tensor:
    """``ceil(x)`` of a count ``kappa * n`` computed in floating point: a value
    within a relative 1e-6 above an integer (rounding) counts as that integer."""
    return torch.ceil(x - 1e-6 * x.clamp_min(1.0))


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
    g = torch.zeros_like(losses).scatter_(-1, j, 1.0)
    return val.squeeze(-1), g, None


def _masked_max(losses: Tensor, weight: Tensor | None) -> tuple[Tensor, Tensor]:
    """The largest loss of positive weight and its index (keeping the axis)."""
    masked = losses if weight is None else losses.masked_fill(weight <= 0, -math.inf)
    return masked.max(-1, keepdim=True)


def atk_loss_gradient(
    losses, weight, lam, kappa, delta=None, smoothing=None, with_value=True
):
    """Mean of the top ``k = ceil(kappa sum(w))`` weight units of the losses,
    taken from the largest down (integer weights act as repetitions)."""
    w = torch.ones_like(losses) if weight is None else weight.to(losses.dtype)
    w = w.expand_as(losses)
    wsum = w.sum(-1)
    k = torch.minimum(ceil_count(kappa * wsum), wsum)
    k = k.clamp_min(1e-12).unsqueeze(-1)
    order = losses.detach().masked_fill(w <= 0, -math.inf).argsort(-1, descending=True)
    ws = w.gather(-1, order)
    take = torch.minimum(ws, (k - (ws.cumsum(-1) - ws)).clamp_min(0.0))
    g = torch.zeros_like(losses).scatter_(-1, order, take / k)
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


# --- public functions -----------------------------------------------------------


def average(losses: Tensor, weight: Tensor | None = None) -> Tensor:
    r"""Average loss, ``(1/n) sum_i l_i`` (weighted: ``sum_i w_i l_i / sum_i w_i``).

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Individual losses, floating point.
    weight : Tensor of shape (n,), optional
        Non-negative per-sample weights (treated as constants).

    Returns
    -------
    Tensor of shape ()

    Examples
    --------
    >>> import torch
    >>> average(torch.tensor([1.0, 2.0, 6.0]))
    tensor(3.)
    """
    losses = _check_losses(losses)
    if weight is None:
        return losses.mean()
    w, _ = _check_weight(weight, losses)
    return average_loss_gradient(losses, w)[0]


def maximum(losses: Tensor, weight: Tensor | None = None) -> Tensor:
    r"""Maximum loss ``l_[1]`` (weighted: over the samples of positive weight).

    Parameters
    ----------
    losses : Tensor of shape (n,)
    weight : Tensor of shape (n,), optional
        Non-negative weights; a zero weight removes the sample.

    Returns
    -------
    Tensor of shape ()

    Examples
    --------
    >>> import torch
    >>> maximum(torch.tensor([1.0, 2.0, 6.0]), weight=torch.tensor([1.0, 1.0, 0.0]))
    tensor(2.)
    """
    losses = _check_losses(losses)
    w = None if weight is None else _check_weight(weight, losses)[0]
    return _masked_max(losses, w)[0].squeeze(-1)  # no gradient tensor needed


def _weighted_kth(losses: Tensor, w: Tensor, count: float, total: float) -> Tensor:
    """Index of the loss at which the sorted weights reach ``count`` units."""
    order = torch.argsort(losses.detach(), descending=True)
    reached = torch.cumsum(w[order].double(), 0)
    target = torch.tensor(count - 1e-9 * max(1.0, total), dtype=torch.float64)
    pos = torch.searchsorted(reached, target.to(reached.device))
    return order[pos.clamp(max=losses.numel() - 1)]


def kth_largest(losses: Tensor, k: int | float, weight: Tensor | None = None) -> Tensor:
    """The k-th largest loss ``l_[k]``, the optimal ``lam`` of MATk.

    Parameters
    ----------
    losses : Tensor of shape (n,)
    k : int or float
        As in :func:`atk`: an int in ``[1, n]`` or a fraction, ``ceil(k n)``.
    weight : Tensor of shape (n,), optional
        Non-negative weights: the loss at which the weights, summed from the
        largest loss down, reach ``k`` units.

    Returns
    -------
    Tensor of shape (), detached

    Examples
    --------
    >>> import torch
    >>> kth_largest(torch.tensor([1.0, 5.0, 2.0, 3.0]), k=0.5)
    tensor(3.)
    """
    losses = _check_losses(losses)
    return losses.detach()[_kth_index(losses, k, weight)[0]]


def _kth_index(losses, k, weight) -> tuple[Tensor, float, Tensor | None, float]:
    """Index of ``l_[k]``, the count k, the validated weight and its total."""
    n = losses.numel()
    if weight is None:
        count = resolve_k(k, n)
        j = torch.kthvalue(losses.detach(), n - count + 1).indices
        return j, float(count), None, float(n)
    w, total = _check_weight(weight, losses)
    count = _weighted_count(k, total, ceil=True)
    return _weighted_kth(losses, w, count, total), count, w, total


def atk(losses: Tensor, k: int | float, weight: Tensor | None = None) -> Tensor:
    r"""Average of the top-k losses (ATk), Fan et al. (2017).

    .. math::
        \mathrm{ATk} = \frac{1}{k} \sum_{i=1}^{k} l_{[i]}
        = \min_\lambda \; \lambda + \frac{1}{k} \sum_i [l_i - \lambda]_+

    ``k = n`` gives the average, ``k = 1`` the maximum. Beyond ``2**14`` losses it
    is computed from the dual form at the exact threshold ``lam = l_[k]`` (found
    by selection, no sort); the gradient is ``1/k`` on each of the k largest
    losses.

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Individual losses.
    k : int or float
        An int in ``[1, n]`` or a fraction in ``(0, 1]``: the top ``ceil(k n)``.
        On a minibatch a fraction is the only honest form: the loss is then the
        average of the top ``ceil(kappa |B|)`` losses *of the batch*, not an
        unbiased estimate of the full-data ATk.
    weight : Tensor of shape (n,), optional
        Non-negative weights; ``k`` then counts weight units (a fraction means
        ``ceil(k sum(w))`` units), so that integer weights equal repetition.

    Returns
    -------
    Tensor of shape ()

    References
    ----------
    Fan, Lyu, Ying, Hu. "Learning with Average Top-k Loss". NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> atk(torch.tensor([1.0, 5.0, 2.0, 3.0]), k=2)
    tensor(4.)
    """
    losses = _check_losses(losses)
    if weight is None:
        n = losses.numel()
        count = resolve_k(k, n)
        if count == n:
            return losses.mean()
        if n <= _SMALL:  # selection does not pay off yet
            return atk_loss_gradient(losses, None, None, count / n)[0]
    j, count, w, total = _kth_index(losses, k, weight)
    kappa = count / total
    lam = losses.detach()[j]
    return dual_form(losses, lam, kappa, RELU, 0.0, w, total, lam_index=j) / kappa


def matk(
    losses: Tensor, lam: Tensor | float, k: int | float, weight: Tensor | None = None
) -> Tensor:
    r"""Minimum-of-the-dual form of ATk (MATk) at a given threshold ``lam``.

    .. math::
        \mathrm{MATk}(\lambda) = \frac{1}{n} \sum_i [l_i - \lambda]_+
        + \frac{k}{n} \lambda

    Minimised over ``lam`` (jointly with the model) it equals ``(k/n) ATk``, at
    ``lam = l_[k]``. The gradient in ``lam`` is ``k/n`` minus the fraction of
    losses above it. Weighted: ``sum_i w_i [l_i - lam]_+ / W + (k / W) lam``,
    ``W = sum_i w_i``, ``k`` in weight units.

    Parameters
    ----------
    losses : Tensor of shape (n,)
    lam : Tensor of shape () or float
        The threshold, usually a trainable parameter.
    k : int or float
        An int in ``[1, n]`` (``kappa = k / n``) or a fraction ``kappa`` in
        ``(0, 1]``, used as is: on a minibatch the loss is then an unbiased
        estimate of the full-data objective and ``lam`` one global threshold.
    weight : Tensor of shape (n,), optional
        Non-negative weights.

    Returns
    -------
    Tensor of shape ()

    References
    ----------
    Fan, Lyu, Ying, Hu. "Learning with Average Top-k Loss". NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> matk(torch.tensor([1.0, 5.0, 2.0, 3.0]), torch.tensor(3.0), k=2)
    tensor(2.)
    """
    losses = _check_losses(losses)
    lam = _check_lam(lam, losses)
    w, total = (None, None) if weight is None else _check_weight(weight, losses)
    kappa = _kappa(k, losses.numel(), total)
    total = float(losses.numel()) if total is None else total
    return dual_form(losses, lam, kappa, RELU, 0.0, w, total)


def stk(
    losses: Tensor,
    lam: Tensor | float,
    k: int | float,
    delta: float = 0.01,
    smoothing: str = "srelu",
    weight: Tensor | None = None,
) -> Tensor:
    r"""Smoothed top-k loss (STk) of Xia et al. (2024) at a given ``lam``.

    .. math::
        \mathrm{STk}(\lambda) = \frac{1}{n} \sum_i \mathrm{SReLU}_\delta(l_i -
        \lambda) + \frac{k}{n} \lambda, \qquad \mathrm{SReLU}_\delta(x) =
        \frac{x + \sqrt{x^2 + \delta^2} - \delta}{2}

    MATk with the ReLU replaced by a smooth function: ``0 <= MATk - STk <
    delta / 2`` for every ``lam``, and STk -> MATk as ``delta -> 0``. Forward
    and backward are fused (one streamed pass each, nothing saved but the
    inputs): on 1e7 losses on CPU, forward + backward take about 1.5 times as
    long as for the average (``benchmarks/bench_losses.py``). On CPU, from
    ``2**20`` losses on, that pass runs through a kernel that ``torch.compile``
    builds the first time it is needed (a few seconds, once per process; set
    ``SKTOPK_COMPILE=0`` in the environment to use the uncompiled chunks).

    Parameters
    ----------
    losses : Tensor of shape (n,)
    lam : Tensor of shape () or float
        The threshold, usually a trainable parameter.
    k : int or float
        An int in ``[1, n]`` or a fraction in ``(0, 1]``, as in :func:`matk`.
    delta : float, default=0.01
        Smoothing, ``> 0`` (LeakyReLU: its negative slope, in ``(0, 1)``).
    smoothing : {"srelu", "softplus", "elu", "leaky_relu"}, default="srelu"
        The ReLU replacement; the alternatives are those compared in the paper.
        With "leaky_relu" the objective is bounded below in ``lam`` only when
        ``k / n > delta`` (the slope of the loss in ``lam`` is then positive).
    weight : Tensor of shape (n,), optional
        Non-negative weights: ``sum_i w_i phi(l_i - lam) / W + (k / W) lam``.

    Returns
    -------
    Tensor of shape ()

    References
    ----------
    Xia, Liu, Mao. "ST_k: A Scalable Module for Solving Top-k Problems".
    NeurIPS 2024. Fan, Lyu, Ying, Hu. "Learning with Average Top-k Loss".
    NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> l = torch.tensor([1.0, 5.0, 2.0, 3.0])
    >>> round(stk(l, torch.tensor(3.0), k=2, delta=1e-3).item(), 3)
    2.0
    """
    losses = _check_losses(losses)
    phi = get_smoothing(smoothing, delta)
    lam = _check_lam(lam, losses)
    w, total = (None, None) if weight is None else _check_weight(weight, losses)
    kappa = _kappa(k, losses.numel(), total)
    total = float(losses.numel()) if total is None else total
    return dual_form(losses, lam, kappa, phi, float(delta), w, total)
