"""The dual form ``sum_i w_i phi(l_i - lam) / W + kappa lam``, defined once.

MATk, STk and ATk (at its exact threshold) are all this form, with ``phi`` the
ReLU or a smoothing of :mod:`._smoothing`. :func:`dual_value` and
:func:`dual_grad` define it over the last axis of batched losses; the training
engine calls them on a minibatch for every member at once, and the public
functions through :class:`DualForm`, which streams a large 1-D tensor through
the same two functions:

* on CPU, in chunks below torch's parallel grain size, so that every operation
  runs inside the cache, on the calling thread (no OpenMP barrier per chunk,
  which degrades badly on a loaded machine);
* on CPU and large inputs (``>= 2**20`` losses), through the same functions
  compiled once per process by ``torch.compile`` (dynamic shapes, so one
  compilation serves every size; it takes seconds, the first time only). If
  compilation fails the chunked path is used; ``SKTOPK_COMPILE=0`` in the
  environment disables it;
* on accelerators, in one pass over the whole tensor.

Nothing is saved for backward but the inputs.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor

from ._smoothing import Smoothing

__all__ = ["dual_form", "dual_value", "dual_grad", "dual_loss_gradient"]

# Below at::internal::GRAIN_SIZE (32768): each op runs serially, in L1/L2 cache.
_CPU_CHUNK = 32704
_COMPILE_MIN_SIZE = 1 << 20
_compile_state: dict = {"failed": False}


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
    v, dv = phi.both(losses - _column(lam), _column(delta))
    g = dv.mul_(wn)
    return _weighted_sum(v, wn).add_(kappa * lam), g, kappa - g.sum(-1)


def dual_grad(losses: Tensor, lam, kappa, wn, phi: Smoothing, delta):
    """Gradients of :func:`dual_value`: ``(wn_i phi'(l_i - lam), kappa - sum_i
    wn_i phi'(l_i - lam))``, the first of the shape of ``losses``."""
    g = phi.derivative(losses - _column(lam), _column(delta)).mul_(wn)
    return g, kappa - g.sum(-1)


def _column(t):
    """Per-member values against a batch axis (numbers stay as they are)."""
    return t.unsqueeze(-1) if isinstance(t, Tensor) and t.dim() else t


def _weighted_sum(v: Tensor, wn, dtype: torch.dtype | None = None) -> Tensor:
    """``sum_i wn_i v_i`` over the last axis, accumulated in ``dtype``."""
    if isinstance(wn, Tensor):
        return (v * wn).sum(-1, dtype=dtype)
    return v.sum(-1, dtype=dtype).mul_(wn)


def _times(kappa, lam):
    lam = lam.double() if isinstance(lam, Tensor) else lam
    return kappa * lam


# --- streaming a large 1-D tensor -------------------------------------------------


def _chunks(losses: Tensor):
    n = losses.numel()
    size = _CPU_CHUNK if losses.device.type == "cpu" else n
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _chunk_weights(weight: Tensor | None, s: int, e: int, scale: float):
    return scale if weight is None else weight[s:e] * scale


def _sum_chunked(losses, lam, weight, phi, delta) -> Tensor:
    """``sum_i w_i phi(l_i - lam)`` in float64."""
    parts = [
        dual_value(
            losses[s:e],
            lam,
            0.0,
            _chunk_weights(weight, s, e, 1.0),
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
        g, minus_sum = dual_grad(
            losses[s:e], lam, 0.0, _chunk_weights(weight, s, e, scale), phi, delta
        )
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
    return (
        losses.device.type == "cpu"
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
                stacklevel=4,
            )
    return chunked(losses, lam, weight, phi, delta, *extra)


# --- the autograd function ------------------------------------------------------


def _threshold(lam: Tensor, losses: Tensor) -> Tensor:
    return lam.detach().to(device=losses.device, dtype=losses.dtype).reshape(())


class DualForm(torch.autograd.Function):
    r"""``sum_i w_i phi(l_i - lam) / W + kappa lam``, saving only its inputs.

    With ``lam_index`` the threshold is ``losses[lam_index]`` (ATk at its exact
    threshold) and the gradient with respect to it goes to that entry.
    """

    @staticmethod
    def forward(ctx, losses, lam, weight, total, kappa, phi, delta, lam_index):
        lam_t = _threshold(lam, losses)
        acc = _run(_sum_chunked, _sum_whole, losses.detach(), lam_t, weight, phi, delta)
        ctx.save_for_backward(losses, lam, weight)
        ctx.args = (total, kappa, phi, delta, lam_index)
        return (acc.double() / total + kappa * lam_t.double()).to(losses.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        losses, lam, weight = ctx.saved_tensors
        total, kappa, phi, delta, lam_index = ctx.args
        scale = float(grad) / total
        lam_t = _threshold(lam, losses)
        out, acc = _run(
            _grad_chunked,
            _grad_whole,
            losses.detach(),
            lam_t,
            weight,
            phi,
            delta,
            scale,
        )
        grad_lam = (grad.double() * kappa - acc.to(grad.device)).to(losses.dtype)
        nones = (None,) * 6
        if lam_index is not None:
            out[lam_index] += grad_lam
            return out, None, *nones
        return out, grad_lam.reshape(lam.shape).to(lam), *nones


def dual_form(
    losses: Tensor,
    lam: Tensor,
    kappa: float,
    phi: Smoothing,
    delta: float,
    weight: Tensor | None,
    total: float,
    lam_index: Tensor | None = None,
) -> Tensor:
    """Evaluate the dual form of a 1-D tensor (inputs already validated)."""
    if torch.compiler.is_compiling():
        # Inside a user's torch.compile: the definition itself, for it to fuse.
        lam = losses[lam_index] if lam_index is not None else lam.reshape(())
        wn = 1.0 / total if weight is None else weight / total
        return dual_value(losses, lam, kappa, wn, phi, delta)
    return DualForm.apply(losses, lam, weight, total, kappa, phi, delta, lam_index)
