"""The dual form ``sum_i wn_i phi(l_i - lam) + kappa lam``, defined once.

MATk, STk and ATk (at its exact threshold) are all this form, with ``phi`` the
ReLU or a smoothing of :mod:`._smoothing` and ``wn`` weights that sum to one
(``1 / n`` without weights). :func:`dual_value`, :func:`dual_grad` and
:func:`dual_loss_gradient` define it over the last axis of batched losses;
the training engine calls them on a minibatch for every member at once.

The public functions evaluate the same definitions through :func:`dual_form`:

* in eager mode, up to ``_ONE_PASS_MAX`` losses a row, through
  :class:`_OnePass`, whose forward computes the value and both gradients in
  one pass (about ten operations: on training batches the cost is the number
  of operations) and whose backward only scales them. Larger 1-D inputs go
  through :class:`_Streamed`, saving only the inputs: on CPU in chunks below torch's
  parallel grain size (every operation in cache, on the calling thread), and
  from ``2**20`` losses on through the same functions compiled once per
  process by ``torch.compile`` (``SKTOPK_COMPILE=0`` disables it; a failed
  compilation falls back to the chunks); on accelerators in one pass;
* under ``torch.func`` transforms, through :class:`DualForm` (``setup_context``,
  a generated vmap rule and a ``jvp``);
* under ``torch.compile``, ``torch.export`` and ``torch.jit.trace``, as the
  plain definition, for the compiler to fuse.

Every backward is differentiable again (``create_graph=True``: Hessians,
gradient penalties), by recomputing the gradient from the saved inputs with
differentiable operations.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ._checks import _PLAIN, _batched_or_wrapped, direct_apply, is_one, transformed
from ._native import native_kernel
from ._smoothing import Smoothing, scaled

__all__ = [
    "dual_form",
    "dual_value",
    "dual_grad",
    "dual_loss_gradient",
    "DualForm",
    "tied_threshold",
]

# Below at::internal::GRAIN_SIZE (32768): each op runs serially, in L1/L2 cache.
_CPU_CHUNK = 32704
# Up to this many losses a row, one pass computes the value and the gradients.
_ONE_PASS_MAX = _CPU_CHUNK
_COMPILE_MIN_SIZE = 1 << 20
_compile_state: dict = {"failed": False}
_HALF = (torch.float16, torch.bfloat16)


# --- the definition ---------------------------------------------------------------


def dual_value(
    losses: Tensor, lam, kappa, wn, phi: Smoothing, delta, dtype=None
) -> Tensor:
    """``sum_i wn_i phi(l_i - lam) + kappa lam`` over the last axis.

    ``lam``, ``kappa`` and ``delta`` broadcast against ``losses[..., 0]``
    (numbers or tensors of the leading shape); ``wn`` is a number (every row
    counts ``wn``) or normalised weights of the shape of ``losses``. The sum
    is accumulated in float64 and returned in ``dtype`` (by default that of
    ``losses``).
    """
    v = phi.value(losses - _column(lam), _column(delta))
    total = _weighted_sum(v, wn, torch.float64)
    return (total + _times(kappa, lam)).to(dtype or losses.dtype)


def dual_loss_gradient(losses: Tensor, lam, kappa, wn, phi: Smoothing, delta):
    """:func:`dual_value` (summed in the dtype of ``losses``) and
    :func:`dual_grad` at once, sharing the smoothing's intermediate results:
    what a training step needs."""
    return phi.dual(losses - _column(lam), _column(delta), wn, lam, kappa)


def dual_grad(losses: Tensor, lam, kappa, wn, phi: Smoothing, delta):
    """Gradients of :func:`dual_value`: ``(wn_i phi'(l_i - lam), kappa - sum_i
    wn_i phi'(l_i - lam))``, the first of the shape of ``losses``."""
    g = scaled(phi.derivative(losses - _column(lam), _column(delta)), wn)
    return g, kappa - g.sum(-1)


def _column(t):
    """Per-row values against the last axis (numbers stay as they are)."""
    return t.unsqueeze(-1) if isinstance(t, Tensor) and t.dim() else t


def _weighted_sum(v: Tensor, wn, dtype: torch.dtype | None = None) -> Tensor:
    """``sum_i wn_i v_i`` over the last axis, accumulated in ``dtype``."""
    if isinstance(wn, Tensor):
        return (v * wn).sum(-1, dtype=dtype)
    return v.sum(-1, dtype=dtype) * wn


def _times(kappa, lam):
    lam = lam.double() if isinstance(lam, Tensor) else lam
    return kappa * lam


# --- one pass: value and gradients ------------------------------------------------


def _one_pass(losses: Tensor, lam: Tensor, wn, kappa, phi: Smoothing, delta):
    """The value, its gradient in the losses and in ``lam``: the fewest
    operations (they, not the arithmetic, cost on a training batch)."""
    dtype = losses.dtype
    if dtype in _HALF:
        losses = losses.float()
    if lam.dtype != losses.dtype:
        lam = lam.to(losses.dtype)
    x = torch.sub(losses, _column(lam))
    value, g, g_lam = phi.dual(x, _column(delta), wn, lam, kappa)
    if dtype in _HALF:
        value, g = value.to(dtype), g.to(dtype)
    return value, g, g_lam


# --- streaming a large 1-D tensor -------------------------------------------------


def _chunks(losses: Tensor):
    n = losses.numel()
    size = _CPU_CHUNK if losses.device.type == "cpu" else n
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _sum_chunked(losses, lam, weight, phi, delta) -> Tensor:
    """``sum_i w_i phi(l_i - lam)`` in float64 (``w = 1`` without weights)."""
    parts = [
        dual_value(
            losses[s:e],
            lam,
            0.0,
            1.0 if weight is None else weight[s:e],
            phi,
            delta,
            torch.float64,
        )
        for s, e in _chunks(losses)
    ]
    return parts[0] if len(parts) == 1 else torch.stack(parts).sum()


def _grad_chunked(losses, lam, weight, phi, delta, scale) -> tuple[Tensor, Tensor]:
    """``scale * w_i phi'(l_i - lam)`` for every i, and its sum (float64)."""
    out, parts = torch.empty_like(losses), []
    for s, e in _chunks(losses):
        wn = scale if weight is None else weight[s:e] * scale
        g, minus_sum = dual_grad(losses[s:e], lam, 0.0, wn, phi, delta)
        out[s:e] = g
        parts.append(-minus_sum.double())
    return out, parts[0] if len(parts) == 1 else torch.stack(parts).sum()


def _compiled(fn, phi: Smoothing):
    """``fn`` (:func:`_sum_whole` or :func:`_grad_whole`) compiled for ``phi``."""
    key = (fn.__name__, phi.name)
    if key not in _compile_state:
        _compile_state[key] = torch.compile(fn, dynamic=True)
    return _compile_state[key]


def _sum_whole(losses, lam, weight, phi, delta):
    wn = 1.0 if weight is None else weight
    return dual_value(losses, lam, 0.0, wn, phi, delta, torch.float64)


def _grad_whole(losses, lam, weight, phi, delta, scale):
    wn = scale if weight is None else weight * scale
    g, minus_sum = dual_grad(losses, lam, 0.0, wn, phi, delta)
    return g, -minus_sum


def _use_compiled(losses: Tensor) -> bool:
    # Not for meta or fake tensors (shapes only: nothing to compile for).
    return (
        type(losses) in _PLAIN
        and losses.device.type == "cpu"
        and losses.numel() >= _COMPILE_MIN_SIZE
        and not _compile_state["failed"]
        and os.environ.get("SKTOPK_COMPILE", "1") != "0"
    )


def _run(chunked, whole, losses, lam, weight, phi, delta, *extra):
    """``whole(losses, lam, weight, phi, delta, *extra)`` compiled where it
    applies and compiles, else ``chunked`` with the same arguments."""
    if _use_compiled(losses):
        try:
            # delta as a tensor: one compilation serves every value.
            d = torch.tensor(delta or 1.0, dtype=losses.dtype)
            return _compiled(whole, phi)(losses, lam, weight, phi, d, *extra)
        except Exception as exc:  # no C++ compiler, unsupported platform, ...
            _compile_state["failed"] = True
            warnings.warn(
                f"sktopk: compiling the fused loss kernel failed ({exc!r}); using "
                "the chunked implementation instead",
                RuntimeWarning,
                stacklevel=5,
            )
    return chunked(losses, lam, weight, phi, delta, *extra)


def _streamed(losses: Tensor) -> bool:
    return losses.dim() == 1 and losses.shape[0] > _ONE_PASS_MAX


def _streamed_value(losses, lam, wn, kappa, phi, delta) -> Tensor:
    weight = wn if isinstance(wn, Tensor) else None
    acc = _run(_sum_chunked, _sum_whole, losses, lam, weight, phi, delta)
    scale = 1.0 if weight is not None else wn
    return (acc * scale + _times(kappa, lam)).to(losses.dtype)


def _streamed_grad(losses, lam, wn, kappa, phi, delta, grad):
    if _batched_or_wrapped(grad):
        # A batch of gradients (is_grads_batched, jacobian(vectorize=True)):
        # the chunks are written into one plain tensor, so they take the
        # gradient of a unit grad, scaled out of place afterwards.
        unit = torch.ones((), dtype=losses.dtype, device=losses.device)
        out, g_lam = _streamed_grad(losses, lam, wn, kappa, phi, delta, unit)
        return out * grad, g_lam * grad
    weight = wn if isinstance(wn, Tensor) else None
    scale = grad if weight is not None else grad * wn
    out, acc = _run(_grad_chunked, _grad_whole, losses, lam, weight, phi, delta, scale)
    return out, (grad.double() * kappa - acc).to(losses.dtype)


# --- backward, differentiable -----------------------------------------------------


def _backward_graph(losses, lam, wn, kappa, phi, delta, grad):
    """The gradients as differentiable operations of the inputs and ``grad``
    (for ``create_graph=True`` and the ``torch.func`` transforms)."""
    g = phi.derivative(losses - _column(lam), _column(delta)) * wn
    return g * _column(grad), grad * (kappa - g.sum(-1))


# --- the autograd functions -------------------------------------------------------


class _OnePass(torch.autograd.Function):
    """The dual form of at most ``_ONE_PASS_MAX`` losses a row, eager: the
    forward computes the value and the gradients, the backward scales them.

    Written with ``forward(ctx, ...)``: ``Function.apply`` binds the
    arguments of a ``setup_context`` function by signature inspection, a cost
    that shows on small batches; :class:`DualForm` is the same function for
    the ``torch.func`` transforms.
    """

    @staticmethod
    def forward(ctx, losses, lam, wn, kappa, phi, delta):
        ctx.save_for_backward(losses, lam)
        ctx.args = (wn, kappa, phi, delta)
        value, ctx.g, ctx.g_lam = _one_pass(losses, lam, wn, kappa, phi, delta)
        return value

    @staticmethod
    def backward(ctx, grad):
        losses, lam = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True
            out = _backward_graph(losses, lam, *ctx.args, grad)
            return *out, None, None, None, None
        out = _saved_gradients(ctx, grad, lambda: _one_pass(losses, lam, *ctx.args))
        return *out, None, None, None, None

    @staticmethod
    def jvp(ctx, d_losses, d_lam, *_):
        # Forward mode (torch.autograd.forward_ad): the saved gradients.
        return _tangent(ctx.g, ctx.g_lam, d_losses, d_lam)


class Plan(NamedTuple):
    """What a small 1-D eager call needs, made once per batch size: the
    smoothing's kernel with its constants, and the scalars of the form."""

    run: Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
    phi: Smoothing
    delta: float
    wn: float
    kappa: float


def small_plan(
    phi: Smoothing, delta: float, n: int, kappa: float, dtype, device
) -> Plan | None:
    """The plan of ``n`` 1-D losses, ``n <= _ONE_PASS_MAX`` (None where the
    smoothing has no kernel, or for other dtypes)."""
    if phi.kernel is None or dtype not in (torch.float32, torch.float64):
        return None
    run = native_kernel(phi.name, delta, 1.0 / n, kappa, dtype, device)
    run = run or phi.kernel(delta, 1.0 / n, kappa, dtype, device)
    return Plan(run, phi, delta, 1.0 / n, kappa)


class _Small(torch.autograd.Function):
    """:class:`_OnePass` for a :class:`Plan`: the least Python per call (the
    training loop's case, where the call costs more than the arithmetic)."""

    @staticmethod
    def forward(ctx, losses, lam, plan):
        ctx.save_for_backward(losses, lam)
        ctx.plan = plan
        value, ctx.g, ctx.g_lam = plan.run(losses, lam)
        return value

    @staticmethod
    def backward(ctx, grad):
        if ctx.g is not None and is_one(grad) and not torch.is_grad_enabled():
            # loss.backward(): the saved gradients, unscaled (the common case,
            # first and with the fewest steps). Unpacking the inputs raises
            # autograd's error if one was changed in place since the forward.
            _ = ctx.saved_tensors
            g, g_lam, ctx.g, ctx.g_lam = ctx.g, ctx.g_lam, None, None
            return g, g_lam, None
        losses, lam = ctx.saved_tensors
        p = ctx.plan
        if torch.is_grad_enabled():  # create_graph=True
            out = _backward_graph(losses, lam, p.wn, p.kappa, p.phi, p.delta, grad)
            return *out, None
        out = _saved_gradients(ctx, grad, lambda: p.run(losses, lam))
        return *out, None

    @staticmethod
    def jvp(ctx, d_losses, d_lam, _):
        return _tangent(ctx.g, ctx.g_lam, d_losses, d_lam)


def _saved_gradients(ctx, grad: Tensor, recompute: Callable) -> tuple[Tensor, Tensor]:
    """The gradients in the losses and lam from those the forward pass saved
    in ``ctx.g`` and ``ctx.g_lam``, scaled by ``grad``.

    For ``loss.backward()`` (``grad`` is 1) they are handed over as they are:
    no product, and no copy when autograd accumulates them. A second backward
    through a retained graph then gets the same numbers from ``recompute()``,
    which returns ``(value, g, g_lam)`` as the forward pass did.
    """
    g, g_lam = ctx.g, ctx.g_lam
    if g is None:
        _, g, g_lam = recompute()
    elif is_one(grad):
        ctx.g, ctx.g_lam = None, None
        return g, g_lam
    column = grad.unsqueeze(-1) if grad.dim() else grad
    return g * column, g_lam * grad


# The C entry point of apply: Function.apply would first map the arguments,
# the plan's fields included, through functorch's unwrapping (about a quarter
# of the time of losses.mean() on a training batch). The plans are made only
# for plain eager calls with no functorch-wrapped tensor (see _plan).
_small_apply = direct_apply(_Small) or _Small.apply


def small_form(losses: Tensor, lam: Tensor, plan: Plan) -> Tensor:
    """The dual form of a :class:`Plan` (eager, 1-D, ``lam`` 0-d, one dtype,
    no tensor wrapped by a ``torch.func`` transform)."""
    return _small_apply(losses, lam, plan)


class _Streamed(torch.autograd.Function):
    """The dual form of a large 1-D tensor, eager, saving only the inputs."""

    @staticmethod
    def forward(ctx, losses, lam, wn, kappa, phi, delta):
        ctx.save_for_backward(losses, lam)
        ctx.save_for_forward(losses, lam)
        ctx.args = (wn, kappa, phi, delta)
        return _streamed_value(losses, lam, wn, kappa, phi, delta)

    @staticmethod
    def backward(ctx, grad):
        losses, lam = ctx.saved_tensors
        wn, kappa, phi, delta = ctx.args
        nones = (None,) * 4
        if torch.is_grad_enabled():  # create_graph=True
            out = _backward_graph(losses, lam, wn, kappa, phi, delta, grad)
            return *out, *nones
        out, g_lam = _streamed_grad(losses, lam, wn, kappa, phi, delta, grad)
        return out, g_lam.reshape(lam.shape).to(lam.dtype), *nones

    @staticmethod
    def jvp(ctx, d_losses, d_lam, *_):
        losses, lam = ctx.saved_tensors
        wn, kappa, phi, delta = ctx.args
        g = phi.derivative(losses - lam, delta) * wn
        return _tangent(g, kappa - g.sum(), d_losses, d_lam)


class _TiedThreshold(torch.autograd.Function):
    """A threshold ``t`` equal to some of the losses, as their mean: its
    gradient is shared equally by the losses tied with it (computed in the
    backward pass only)."""

    @staticmethod
    def forward(ctx, losses, t):
        ctx.save_for_backward(losses, t)
        ctx.save_for_forward(losses, t)
        return t.clone()

    @staticmethod
    def backward(ctx, grad):
        losses, t = ctx.saved_tensors
        tied = losses == t
        return torch.where(tied, grad / tied.sum(), 0.0), None

    @staticmethod
    def jvp(ctx, d_losses, _):
        losses, t = ctx.saved_tensors
        tied = losses == t
        return torch.where(tied, d_losses, 0.0).sum() / tied.sum()


def tied_threshold(losses: Tensor, t: Tensor) -> Tensor:
    """``t`` (0-d, detached, a value of the 1-D ``losses``) as the mean of the
    losses equal to it: the subgradient of a threshold at a tie, shared
    equally (eager only)."""
    return _TiedThreshold.apply(losses, t)


def _tangent(g: Tensor, g_lam: Tensor, d_losses, d_lam) -> Tensor:
    """The directional derivative ``sum_i g_i dl_i + g_lam dlam``."""
    out = torch.zeros_like(g_lam)
    if d_losses is not None:
        out = out + (g * d_losses).sum(-1)
    if d_lam is not None:
        out = out + g_lam * d_lam
    return out


class DualForm(torch.autograd.Function):
    r"""``sum_i wn_i phi(l_i - lam) + kappa lam`` over the last axis, for the
    ``torch.func`` transforms: ``setup_context``, a generated vmap rule, a
    ``jvp`` (forward mode, ``jacfwd``, ``hessian``) and a backward that is
    differentiable again. ``wn`` and ``kappa`` are constants (numbers or
    tensors without gradient)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(losses, lam, wn, kappa, phi, delta):
        return dual_value(losses, lam, kappa, wn, phi, delta)

    @staticmethod
    def setup_context(ctx, inputs, output):
        losses, lam, wn, kappa, phi, delta = inputs
        tensors = [t if isinstance(t, Tensor) else None for t in (wn, kappa)]
        ctx.save_for_backward(losses, lam, *tensors)
        ctx.save_for_forward(losses, lam, *tensors)
        ctx.args = (wn, kappa, phi, delta)

    @staticmethod
    def backward(ctx, grad):
        losses, lam, wn, kappa, phi, delta = _restore(ctx)
        out = _backward_graph(losses, lam, wn, kappa, phi, delta, grad)
        return *out, None, None, None, None

    @staticmethod
    def jvp(ctx, d_losses, d_lam, *_):
        losses, lam, wn, kappa, phi, delta = _restore(ctx)
        g = phi.derivative(losses - _column(lam), _column(delta)) * wn
        return _tangent(g, kappa - g.sum(-1), d_losses, d_lam)


def _restore(ctx):
    losses, lam, wn_t, kappa_t = ctx.saved_tensors
    wn, kappa, phi, delta = ctx.args
    wn = wn_t if wn_t is not None else wn
    kappa = kappa_t if kappa_t is not None else kappa
    return losses, lam, wn, kappa, phi, delta


def dual_form(
    losses: Tensor, lam: Tensor, kappa, phi: Smoothing, delta: float, wn
) -> Tensor:
    """Evaluate the dual form over the last axis (inputs already validated).

    ``lam`` has the leading shape of ``losses`` (0-d for 1-D losses),
    ``kappa`` is a number or a tensor of that shape, ``wn`` a number or
    normalised weights of the shape of ``losses``.
    """
    if not transformed():
        if losses.shape[-1] <= _ONE_PASS_MAX:
            return _OnePass.apply(losses, lam, wn, kappa, phi, delta)
        if losses.dim() == 1:
            return _Streamed.apply(losses, lam, wn, kappa, phi, delta)
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        # The definition itself, for the compiler to fuse.
        return dual_value(losses, lam, kappa, wn, phi, delta)
    return DualForm.apply(losses, lam, wn, kappa, phi, delta)
