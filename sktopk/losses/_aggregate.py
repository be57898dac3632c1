"""Aggregate losses over samples: average, maximum, ATk, MATk and STk.

Each aggregate is defined once, by a batched ``*_loss_gradient`` function over
the last axis of ``lead + (B,)`` losses (value and analytic gradients, with
per-sample weights and per-member ``lam``, ``kappa`` and ``delta``), in
:mod:`._aggregate_defs`: the training engine calls these on a minibatch for
every member at once. The
public functions take a 1-D tensor of individual losses ``l_1..l_n`` (or,
with ``dim``, a batch of rows, aggregated row by row with a ``lam`` per row)
and an optional per-sample ``weight``, validate them and evaluate the same
definitions; MATk, STk and ATk (at its exact threshold) through the dual form
of ``_fused.py``, which calls the same smoothing definitions.

Validation reads no tensor values except where :mod:`._checks` allows it
(eager mode, host memory): shapes, dtypes and hyper-parameters (a float
``lam`` included) are always checked, the weights' values there; a tensor
``lam`` is never read (a non-finite one gives a non-finite loss).
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
from torch import Tensor

from . import _fused
from ._aggregate_defs import (
    _lightest,
    _masked_max,
    _top_units,
    _units,
    at_least,
    average_loss_gradient,
    ceil_count,
    weight_threshold,
)
from ._checks import _PLAIN, plain_eager, transformed, value_checks_apply
from ._fused import (
    Plan,
    dual_form,
    small_form,
    small_plan,
    tied_threshold,
)
from ._smoothing import RELU, constant, finite, get_smoothing

__all__ = [
    "average",
    "maximum",
    "atk",
    "matk",
    "stk",
    "kth_largest",
]

# Up to this many losses, ATk averages a torch.topk: faster than selection + dual
# form (and the only form under compile, export, jit.trace and torch.func).
_SMALL = 1 << 14

# --- validation -----------------------------------------------------------------


def _losses_error(losses) -> ValueError:
    got = (
        f"dtype={losses.dtype}, shape={tuple(losses.shape)}"
        if isinstance(losses, Tensor)
        else type(losses).__name__
    )
    return ValueError(
        "losses must be a non-empty 1-D floating-point tensor of individual losses "
        f"(or pass dim= to aggregate each row of a batch); got {got}"
    )


def _empty(losses: Tensor) -> bool:
    # Under jit.trace sizes are traced tensors: no Python bool of them.
    return not torch.jit.is_tracing() and losses.numel() == 0


def _check_losses(losses: Tensor, dim: int | None) -> Tensor:
    """The losses, the aggregated axis last."""
    if not isinstance(losses, Tensor) or not losses.is_floating_point():
        raise _losses_error(losses)
    if dim is None:
        if losses.dim() != 1 or _empty(losses):
            raise _losses_error(losses)
        return losses
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int or None; got {dim!r}")
    nd = losses.dim()
    if not -nd <= dim < nd:
        raise ValueError(
            f"dim={dim} is out of range for losses of shape {tuple(losses.shape)}"
        )
    if _empty(losses):
        raise _losses_error(losses)
    dim %= nd
    return losses if dim == nd - 1 else losses.movedim(dim, -1)


def _weights(weight: Tensor, losses: Tensor, dim: int | None) -> Tensor:
    """The weight, detached, in the dtype of ``losses``, the axis last."""
    if not isinstance(weight, Tensor) or (
        not torch.jit.is_tracing() and weight.shape != losses.shape
    ):
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight)
        raise ValueError(
            f"weight must be a tensor of the shape of losses {tuple(losses.shape)}; "
            f"got {shape}"
        )
    w = weight.detach().to(device=losses.device, dtype=losses.dtype)
    if dim is not None and dim % w.dim() != w.dim() - 1:
        w = w.movedim(dim, -1)
    if value_checks_apply(w):
        if not bool(torch.isfinite(w).all()):
            raise ValueError(f"weight must be finite and >= 0; got {_first_bad(w)}")
        lowest = float(w.min())
        if not lowest >= 0:
            raise ValueError(
                f"weight must be finite and >= 0; got a weight with minimum {lowest!r}"
            )
        if not float(w.sum(-1).min()) > 0:
            raise ValueError("weight must have a positive sum; got sum(weight)=0")
    return w


def _first_bad(w: Tensor) -> str:
    """The first non-finite weight, named by its index."""
    index = tuple(int(i) for i in (~torch.isfinite(w)).nonzero()[0])
    return f"weight[{', '.join(map(str, index))}] = {float(w[index])!r}"


def _lam_error(lam, rows: tuple[int, ...]) -> ValueError:
    got = (
        f"a tensor of dtype={lam.dtype}, shape={tuple(lam.shape)}"
        if isinstance(lam, Tensor)
        else repr(lam)
    )
    want = (
        f"a floating-point tensor that broadcasts to the rows' shape {rows}"
        if rows
        else "a one-element floating-point tensor"
    )
    return ValueError(f"lam must be a float or {want}; got {got}")


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        return tuple(torch.broadcast_shapes(a, b))
    except RuntimeError:
        return None


def _check_lam(lam: Tensor | float, losses: Tensor) -> Tensor:
    """``lam`` as a tensor of the rows' shape (0-d for 1-D losses).

    A float must be finite; a tensor is not read (a non-finite threshold
    gives a non-finite loss, as a non-finite input does in torch's losses).
    """
    if isinstance(lam, Tensor):
        if lam.dim() == 0 and losses.dim() == 1 and lam.is_floating_point():
            return lam  # the common case, first
        rows = tuple(losses.shape[:-1])
        if not lam.is_floating_point():
            raise _lam_error(lam, rows)
        if not rows:
            if lam.numel() != 1:
                raise _lam_error(lam, rows)
            return lam.reshape(())
        if not torch.jit.is_tracing() and _broadcast(lam.shape, rows) != rows:
            raise _lam_error(lam, rows)
        return lam
    if isinstance(lam, numbers.Real) and not isinstance(lam, bool):
        if not finite(lam):
            raise ValueError(f"lam must be finite; got lam={lam!r}")
        return constant(float(lam), losses)
    raise _lam_error(lam, tuple(losses.shape[:-1]))


def _is_int(k) -> bool:
    return isinstance(k, numbers.Integral) and not isinstance(k, bool)


def _count(k: int | float, n: int) -> int:
    """The number of losses ``k`` stands for among ``n``: an int in ``[1, n]``,
    or a fraction in ``(0, 1]`` that becomes ``ceil(k n)`` (at least 1). As
    ``sktopk._validation.resolve_k``, in plain comparisons (which
    ``torch.compile`` traces on the symbolic floats it makes of arguments)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise TypeError(f"k must be an int in [1, n] or a float in (0, 1]; got {k!r}")
    if _is_int(k):
        if not 1 <= k <= n:
            raise ValueError(f"k={k} is out of range: an int k must be in [1, n={n}]")
        return int(k)
    if not 0.0 < k <= 1.0:  # False for NaN too
        raise ValueError(f"k={k!r} is out of range: a float k is a fraction in (0, 1]")
    return at_least(ceil_count(k * n), 1)


def _fraction_of(k: int | float, n: int) -> float:
    """``k`` as a fraction of ``n``: ``k / n`` for an int, else ``k`` itself."""
    count = _count(k, n)
    return count / n if _is_int(k) else float(k)


def _int_k_in_weight_units(k: int, total: Tensor, w: Tensor) -> Tensor:
    """``k`` as a fraction of each row's total weight (an int k counts units)."""
    if k < 1:
        raise ValueError(f"k={k} is out of range: an int k must be >= 1")
    if value_checks_apply(w):
        least = float(total.min())
        if k > least * (1 + 1e-9):
            raise ValueError(
                f"k={k} is out of range: with weights an int k counts weight "
                f"units, in [1, sum(weight)={least:g}]"
            )
    return (k / total).clamp(max=1.0)


@functools.lru_cache(maxsize=1024)
def _cached_fraction(kind: type, k, n: int) -> float:
    # Keyed by the type too: k=1 (one loss) and k=1.0 (all of them) hash alike.
    return _fraction_of(k, n)


def _fraction(kind: type, k, n: int) -> float:
    if torch.compiler.is_compiling():  # compiled once: no cache needed
        return _fraction_of(k, n)
    return _cached_fraction(kind, k, n)


_NUMBER = (int, float)


def _plan(losses, lam, k, phi_name: str | None, delta) -> Plan | None:
    """The plan of the training loop's call (plain eager, 1-D, a 0-d ``lam``
    of the losses' dtype, numbers, no weight), validated once per batch size;
    None for any other call (the general path validates it)."""
    if (
        type(losses) not in _PLAIN
        or type(lam) not in _PLAIN
        or losses.dim() != 1
        or lam.dim() != 0
        or lam.dtype is not losses.dtype
        or type(k) not in _NUMBER
        or type(delta) not in _NUMBER
        or not plain_eager(losses, lam)
    ):
        return None
    n = losses.shape[0]
    if not 0 < n <= _fused._ONE_PASS_MAX:
        return None
    key = (phi_name, type(delta), delta, type(k), k, n, losses.dtype, losses.device)
    return _cached_plan(*key)


@functools.lru_cache(maxsize=512)
def _cached_plan(phi_name, _dk, delta, _kk, k, n, dtype, device) -> Plan | None:
    # Keyed by the types too (k=1 and k=1.0 hash alike); errors are raised
    # again on every call (lru_cache stores results only).
    phi = RELU if phi_name is None else get_smoothing(phi_name, delta)
    return small_plan(phi, float(delta), n, _fraction_of(k, n), dtype, device)


def _scales(losses: Tensor, k, w: Tensor | None):
    """``(wn, kappa)``: weights summing to one per row (``1/n`` without
    weights) and ``k`` as a fraction (a number, or a tensor of the rows' shape)."""
    n = losses.shape[-1]
    if w is None:
        if type(n) is not int:
            # A traced (jit.trace) or symbolic (export) size: an int k stays a
            # count, with no guard on the size.
            kappa = _count(k, math.inf) / n if _is_int(k) else _fraction_of(k, 1)
            return 1.0 / n, kappa
        return 1.0 / n, _fraction(type(k), k, n)
    total = w.sum(-1, keepdim=True)
    wn = w / total
    if _is_int(k):
        return wn, _int_k_in_weight_units(k, total.squeeze(-1), w)
    return wn, _fraction_of(k, 1)


# --- public functions -----------------------------------------------------------


def average(
    losses: Tensor, weight: Tensor | None = None, *, dim: int | None = None
) -> Tensor:
    r"""Average loss, ``(1/n) sum_i l_i`` (weighted: ``sum_i w_i l_i / sum_i w_i``).

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Individual losses, floating point.
    weight : Tensor of shape (n,), optional
        Non-negative per-sample weights, treated as constants: no gradient
        flows to them (a weight that requires grad is detached).
    dim : int, optional
        Aggregate each row of a batch along this axis (the other axes are
        kept); by default ``losses`` must be 1-D.

    Returns
    -------
    Tensor of shape ()
        Or the shape of ``losses`` without ``dim``.

    Examples
    --------
    >>> import torch
    >>> average(torch.tensor([1.0, 2.0, 6.0]))
    tensor(3.)
    >>> average(torch.tensor([[1.0, 2.0], [3.0, 5.0]]), dim=1)
    tensor([1.5000, 4.0000])
    """
    x = _check_losses(losses, dim)
    if weight is None:
        return x.mean(-1)
    return average_loss_gradient(x, _weights(weight, losses, dim))[0]


def maximum(
    losses: Tensor, weight: Tensor | None = None, *, dim: int | None = None
) -> Tensor:
    r"""Maximum loss ``l_[1]`` (weighted: over the samples of positive weight).

    Parameters
    ----------
    losses : Tensor of shape (n,)
    weight : Tensor of shape (n,), optional
        Non-negative weights; a zero weight removes the sample. The weights
        are treated as constants: no gradient flows to them.
    dim : int, optional
        Aggregate each row of a batch along this axis; by default ``losses``
        must be 1-D.

    Returns
    -------
    Tensor of shape ()
        Or the shape of ``losses`` without ``dim``.

    Examples
    --------
    >>> import torch
    >>> maximum(torch.tensor([1.0, 2.0, 6.0]), weight=torch.tensor([1.0, 1.0, 0.0]))
    tensor(2.)
    """
    x = _check_losses(losses, dim)
    w = None if weight is None else _weights(weight, losses, dim)
    return _masked_max(x, w)[0].squeeze(-1)  # no gradient tensor needed


def kth_largest(
    losses: Tensor,
    k: int | float,
    weight: Tensor | None = None,
    *,
    dim: int | None = None,
) -> Tensor:
    """The k-th largest loss ``l_[k]``, the optimal ``lam`` of MATk.

    Parameters
    ----------
    losses : Tensor of shape (n,)
    k : int or float
        As in :func:`atk`: an int in ``[1, n]`` or a fraction, ``ceil(k n)``.
    weight : Tensor of shape (n,), optional
        Non-negative weights: the loss at which the weights, summed from the
        largest loss down, reach the units ``k`` stands for (as in :func:`atk`);
        treated as constants: no gradient flows to them.
    dim : int, optional
        One value per row of a batch, along this axis; by default ``losses``
        must be 1-D.

    Returns
    -------
    Tensor of shape (), detached
        Or the shape of ``losses`` without ``dim``.

    Examples
    --------
    >>> import torch
    >>> kth_largest(torch.tensor([1.0, 5.0, 2.0, 3.0]), k=0.5)
    tensor(3.)
    """
    x = _check_losses(losses, dim).detach()
    n = x.shape[-1]
    if weight is None:
        return x.kthvalue(n - _count(k, n) + 1, dim=-1).values
    w = _weights(weight, losses, dim)
    return weight_threshold(x, w, _weighted_count(k, w))


def _weighted_count(k: int | float, w: Tensor) -> Tensor:
    """The weight units ``k`` stands for in each row of weights ``w`` (float64).

    An int counts units. A fraction ``kappa`` is ``ceil(kappa W / u) u`` of
    the total ``W``, ``u = min(1, smallest positive weight)``: integer
    weights act as repetitions, and weights below one are first scaled so
    that the smallest is one (a fraction of the weight, whatever its scale).
    """
    if _is_int(k):
        total = w.sum(-1, dtype=torch.float64)
        return _int_k_in_weight_units(k, total, w) * total
    return _units(_fraction_of(k, 1), w, _lightest(w).clamp(max=1.0))


def atk(
    losses: Tensor,
    k: int | float,
    weight: Tensor | None = None,
    *,
    dim: int | None = None,
) -> Tensor:
    r"""Average of the top-k losses (ATk), Fan et al. (2017).

    .. math::
        \mathrm{ATk} = \frac{1}{k} \sum_{i=1}^{k} l_{[i]}
        = \min_\lambda \; \lambda + \frac{1}{k} \sum_i [l_i - \lambda]_+

    ``k = n`` gives the average, ``k = 1`` the maximum. The gradient is ``1/k``
    on each of the k largest losses; on ties it is a subgradient (every entry
    in ``[0, 1/k]``, summing to one). Up to ``2**14`` losses it averages a
    ``torch.topk`` (which picks the tied losses it takes); beyond, in eager
    mode, it evaluates the dual form at the exact threshold ``lam = l_[k]``
    (found by selection, no sort), and the losses tied at the threshold share
    what is left of the gradient equally. With weights it sorts.

    Parameters
    ----------
    losses : Tensor of shape (n,)
        Individual losses.
    k : int or float
        An int in ``[1, n]`` or a fraction in ``(0, 1]``: the top ``ceil(k n)``.
        On a minibatch a fraction is the only honest form: the loss is then the
        average of the top ``ceil(kappa |B|)`` losses *of the batch*, not an
        unbiased estimate of the full-data ATk. ``torch.jit.trace`` records
        the count ``ceil(k n)`` of the traced batch (with a warning); use
        ``torch.compile`` or ``torch.export`` for other batch sizes.
    weight : Tensor of shape (n,), optional
        Non-negative weights; ``k`` then counts weight units, so that integer
        weights equal repetition. A fraction means ``ceil(k W / u) u`` of the
        total weight ``W``, with ``u = min(1, smallest positive weight)``:
        weights below one count in units of the smallest, so that the result
        does not depend on their scale. The weights are treated as
        constants: no gradient flows to them.
    dim : int, optional
        Aggregate each row of a batch along this axis; by default ``losses``
        must be 1-D.

    Returns
    -------
    Tensor of shape ()
        Or the shape of ``losses`` without ``dim``.

    References
    ----------
    Fan, Lyu, Ying, Hu. "Learning with Average Top-k Loss". NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> atk(torch.tensor([1.0, 5.0, 2.0, 3.0]), k=2)
    tensor(4.)
    >>> atk(torch.tensor([[1.0, 5.0, 2.0], [3.0, 0.0, 1.0]]), k=2, dim=1)
    tensor([3.5000, 2.0000])
    """
    x = _check_losses(losses, dim)
    if weight is not None:
        w = _weights(weight, losses, dim)
        return _top_units(x, w, _weighted_count(k, w))[0]
    n = x.shape[-1]
    count = _count(k, n)
    if type(n) is not int:
        # A symbolic size (compile, export): a sort and a mask, which put no
        # guard on it (topk would need count <= n proven).
        ranked = torch.sort(x, dim=-1, descending=True).values
        top = torch.arange(n, device=x.device) < count
        return torch.where(top, ranked, 0.0).sum(-1) / count
    if count == n:
        return x.mean(-1)
    elif x.dim() == 1 and n > _SMALL and not transformed():
        return _atk_at_threshold(x, count)
    return torch.topk(x, count, dim=-1, sorted=False).values.mean(-1)


def _atk_at_threshold(x: Tensor, count: int) -> Tensor:
    """ATk of 1-D losses as the dual form at its exact threshold ``l_[count]``
    (found by selection, no sort). The threshold is the mean of the losses
    tied with it, so that on ties they share its subgradient equally."""
    n = x.shape[-1]
    t = torch.kthvalue(x.detach(), n - count + 1).values
    kappa = count / n
    return dual_form(x, tied_threshold(x, t), kappa, RELU, 0.0, 1.0 / n) / kappa


def matk(
    losses: Tensor,
    lam: Tensor | float,
    k: int | float,
    weight: Tensor | None = None,
    *,
    dim: int | None = None,
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
        The threshold, usually a trainable parameter; finite. With ``dim``, a
        tensor that broadcasts to the rows' shape (one threshold per row).
    k : int or float
        An int in ``[1, n]`` (``kappa = k / n``) or a fraction ``kappa`` in
        ``(0, 1]``, used as is: on a minibatch the loss is then an unbiased
        estimate of the full-data objective and ``lam`` one global threshold.
    weight : Tensor of shape (n,), optional
        Non-negative weights, treated as constants: no gradient flows to them.
    dim : int, optional
        Aggregate each row of a batch along this axis; by default ``losses``
        must be 1-D.

    Returns
    -------
    Tensor of shape ()
        Or the shape of ``losses`` without ``dim``.

    References
    ----------
    Fan, Lyu, Ying, Hu. "Learning with Average Top-k Loss". NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> matk(torch.tensor([1.0, 5.0, 2.0, 3.0]), torch.tensor(3.0), k=2)
    tensor(2.)
    """
    if weight is None and dim is None:
        plan = _plan(losses, lam, k, None, 0.0)
        if plan is not None:
            return small_form(losses, lam, plan)
    x = _check_losses(losses, dim)
    lam = _check_lam(lam, x)
    w = None if weight is None else _weights(weight, losses, dim)
    wn, kappa = _scales(x, k, w)
    return dual_form(x, lam, kappa, RELU, 0.0, wn)


def stk(
    losses: Tensor,
    lam: Tensor | float,
    k: int | float,
    delta: float = 0.01,
    smoothing: str = "srelu",
    weight: Tensor | None = None,
    *,
    dim: int | None = None,
) -> Tensor:
    r"""Smoothed top-k loss (STk) of Xia et al. (2024) at a given ``lam``.

    .. math::
        \mathrm{STk}(\lambda) = \frac{1}{n} \sum_i \mathrm{SReLU}_\delta(l_i -
        \lambda) + \frac{k}{n} \lambda, \qquad \mathrm{SReLU}_\delta(x) =
        \frac{x + \sqrt{x^2 + \delta^2} - \delta}{2}

    MATk with the ReLU replaced by a smooth function: ``0 <= MATk - STk <
    delta / 2`` for every ``lam``, and STk -> MATk as ``delta -> 0``.

    In eager mode the forward pass computes the value and the gradients at once
    and the backward pass scales them: on CPU, forward + backward of a float32
    training batch take about 1.6 to 2 times as long as ``losses.mean()``
    (depending on the machine) with numba installed (one compiled loop; the
    ``fast`` extra), about twice without (a dozen tensor operations; see
    :ref:`performance`). From ``2**15`` losses on, forward and backward are
    streamed, saving only the inputs; on CPU, from ``2**20`` losses on, through
    a kernel that ``torch.compile`` builds the first time it is needed (a few
    seconds, once per process; set ``SKTOPK_COMPILE=0`` in the environment to
    use the uncompiled chunks). Under ``torch.compile`` and ``torch.export`` it
    is the plain formula, for the compiler to fuse; under ``torch.func``
    transforms an ``autograd.Function`` with a vmap rule and a ``jvp``.
    Gradients of every order are exact (``create_graph=True``). A loss of
    ``-inf`` gives a finite value (its term within ``delta/2`` of the limit
    ``-delta/2``) and a zero gradient.

    Parameters
    ----------
    losses : Tensor of shape (n,)
    lam : Tensor of shape () or float
        The threshold, usually a trainable parameter; finite. With ``dim``, a
        tensor that broadcasts to the rows' shape (one threshold per row).
    k : int or float
        An int in ``[1, n]`` or a fraction in ``(0, 1]``, as in :func:`matk`.
        Under ``torch.jit.trace`` an int k stays a count (``k / n`` follows
        the traced batch size).
    delta : float, default=0.01
        Smoothing, ``> 0`` (LeakyReLU: its negative slope, in ``(0, 1)``).
        A delta below the smallest normal number of the dtype computed in
        (about ``1.2e-38`` in float32) counts as that number, so that it
        never underflows to 0: the value and gradients stay finite.
    smoothing : {"srelu", "softplus", "elu", "leaky_relu"}, default="srelu"
        The ReLU replacement; the alternatives are those compared in the paper.
        With "leaky_relu" the objective is bounded below in ``lam`` only when
        ``k / n > delta`` (the slope of the loss in ``lam`` is then positive).
    weight : Tensor of shape (n,), optional
        Non-negative weights: ``sum_i w_i phi(l_i - lam) / W + (k / W) lam``;
        treated as constants: no gradient flows to them.
    dim : int, optional
        Aggregate each row of a batch along this axis (one value and one
        ``lam`` per row); by default ``losses`` must be 1-D.

    Returns
    -------
    Tensor of shape ()
        Or the shape of ``losses`` without ``dim``.

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

    One threshold per row of a batch:

    >>> rows = torch.tensor([[1.0, 5.0, 2.0, 3.0], [0.0, 1.0, 4.0, 2.0]])
    >>> stk(rows, torch.tensor([3.0, 2.0]), k=2, delta=1e-3, dim=1).round(decimals=3)
    tensor([2.0000, 1.5000])
    """
    if weight is None and dim is None:
        plan = _plan(losses, lam, k, smoothing, delta)
        if plan is not None:
            return small_form(losses, lam, plan)
    phi = get_smoothing(smoothing, delta)
    x = _check_losses(losses, dim)
    lam = _check_lam(lam, x)
    w = None if weight is None else _weights(weight, losses, dim)
    wn, kappa = _scales(x, k, w)
    return dual_form(x, lam, kappa, phi, float(delta), wn)
