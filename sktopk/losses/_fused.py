"""The fused dual form ``sum_i w_i phi(l_i - lam) / W + kappa lam``.

MATk, STk and ATk (at its exact threshold) all evaluate this one form. Written
as a plain autograd composition it allocates several full-size temporaries in
forward and backward (about 30 times the cost of an average on 1e7 losses).
:class:`DualForm` instead saves only its inputs and streams over the data:

* on CPU, in chunks below torch's parallel grain size, so that every operation
  runs in place, inside the cache, on the calling thread (no OpenMP barrier per
  chunk, which degrades badly on a loaded machine);
* on CPU and large inputs (``>= 2**20`` losses), with ReLU or SReLU, through a
  kernel compiled once per process by ``torch.compile`` (dynamic shapes, so one
  compilation serves every size; it takes seconds, the first time only). If
  compilation fails the chunked path is used; ``SKTOPK_COMPILE=0`` in the
  environment disables it;
* on accelerators, in one pass over the whole tensor.

The only full-size allocation is the gradient itself.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor

from ._smoothing import RELU, SMOOTHINGS, Smoothing

__all__ = ["dual_form"]

# Below at::internal::GRAIN_SIZE (32768): each op runs serially, in L1/L2 cache.
_CPU_CHUNK = 32704
_COMPILE_MIN_SIZE = 1 << 20
_compile_state: dict = {"failed": False}


# --- compiled kernels (CPU, large inputs) ---------------------------------------


def _wsum(v: Tensor, weight: Tensor | None) -> Tensor:
    return (v if weight is None else v * weight).sum(dtype=torch.float64)


def _weighted(g: Tensor, weight: Tensor | None) -> Tensor:
    return g if weight is None else g * weight


# Forward kernels return sum w phi(x) (+ offset) and sum w phi'(x), so that the
# backward kernel is a pure elementwise store: (x = l - lam).


def _relu_fwd(losses, lam, d, weight):
    x = losses - lam
    return _wsum(torch.clamp(x, min=0), weight), _wsum((x > 0).to(x.dtype), weight)


def _relu_bwd(losses, lam, d, scale, weight):
    return _weighted((losses > lam).to(losses.dtype) * scale, weight)


def _srelu_fwd(losses, lam, d, weight):
    x = losses - lam
    xc = torch.clamp(x, -1e18, 1e18)  # keeps x * x finite in float32
    # sqrt, not hypot: inductor does not vectorise hypot.
    r = torch.sqrt(xc * xc + d * d)
    # srelu(x) + d/2 = relu(x) + d^2 / (2 (r + |x|)): no cancellation.
    v = torch.clamp(x, min=0) + (d * d / 2) / (r + x.abs())
    return _wsum(v, weight), _wsum((1 + xc / r) / 2, weight)


def _srelu_bwd(losses, lam, d, scale, weight):
    x = torch.clamp(losses - lam, -1e18, 1e18)
    return _weighted((1 + x / torch.sqrt(x * x + d * d)) * (scale / 2), weight)


_KERNELS = {
    id(RELU): (_relu_fwd, _relu_bwd),
    id(SMOOTHINGS["srelu"]): (_srelu_fwd, _srelu_bwd),
}


def _use_compiled(losses: Tensor, phi: Smoothing) -> bool:
    return (
        losses.device.type == "cpu"
        and losses.numel() >= _COMPILE_MIN_SIZE
        and id(phi) in _KERNELS
        and not _compile_state["failed"]
        and os.environ.get("SKTOPK_COMPILE", "1") != "0"
    )


def _run_compiled(phi: Smoothing, which: int, *args):
    """Call the compiled kernel, or return None (and stop trying) if it fails."""
    kernel = _KERNELS[id(phi)][which]
    fn = _compile_state.get(kernel)
    try:
        if fn is None:
            fn = _compile_state[kernel] = torch.compile(kernel, dynamic=True)
        return fn(*args)
    except Exception as exc:  # no C++ compiler, unsupported platform, ...
        _compile_state["failed"] = True
        warnings.warn(
            f"sktopk: compiling the fused loss kernel failed ({exc!r}); using the "
            "chunked implementation instead",
            RuntimeWarning,
            stacklevel=4,
        )
        return None


# --- chunked kernels ------------------------------------------------------------


def _chunks(losses: Tensor):
    n = losses.numel()
    size = _CPU_CHUNK if losses.device.type == "cpu" else n
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _work_buffers(losses: Tensor, count: int) -> list[Tensor]:
    size = min(losses.numel(), _CPU_CHUNK if losses.device.type == "cpu" else 1 << 62)
    return [losses.new_empty(size) for _ in range(count)]


def _total(parts: list[Tensor]) -> Tensor:
    if len(parts) == 1:
        return parts[0].double()
    return torch.stack(parts).sum(dtype=torch.float64)


def _sum_chunked(losses, lam, weight, phi, delta) -> Tensor:
    buf, scratch = _work_buffers(losses, 2)
    parts = []
    for s, e in _chunks(losses):
        x = torch.sub(losses[s:e], lam, out=buf[: e - s])
        w = None if weight is None else weight[s:e]
        parts.append(phi.sum_(x, delta, w, scratch[: e - s]))
    return _total(parts)


def _grad_chunked(losses, lam, weight, phi, delta, scale) -> tuple[Tensor, Tensor]:
    out, (scratch,) = torch.empty_like(losses), _work_buffers(losses, 1)
    parts = []
    for s, e in _chunks(losses):
        o = torch.sub(losses[s:e], lam, out=out[s:e])
        phi.grad_(o, delta, scale, scratch[: e - s])
        if weight is not None:
            o.mul_(weight[s:e])
        parts.append(o.sum())
    return out, _total(parts)


# --- the autograd function ------------------------------------------------------


def _forward_sum(losses, lam, weight, phi, delta):
    """``sum_i w_i (phi(l_i - lam) + offset)`` in float64, and ``sum w phi'``
    when the compiled kernel gives it for free (else None)."""
    if _use_compiled(losses, phi):
        d = torch.tensor(delta or 1.0, dtype=losses.dtype)
        out = _run_compiled(phi, 0, losses, lam, d, weight)
        if out is not None:
            return out
    return _sum_chunked(losses, lam, weight, phi, delta), None


def _backward_grad(losses, lam, weight, phi, delta, scale, dsum):
    """``scale * w_i * phi'(l_i - lam)`` for every i, and its sum (float64)."""
    if dsum is not None and _use_compiled(losses, phi):
        d = torch.tensor(delta or 1.0, dtype=losses.dtype)
        s = torch.tensor(scale, dtype=losses.dtype)
        out = _run_compiled(phi, 1, losses, lam, d, s, weight)
        if out is not None:
            return out, dsum * scale
    return _grad_chunked(losses, lam, weight, phi, delta, scale)


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
        acc, dsum = _forward_sum(losses.detach(), lam_t, weight, phi, delta)
        mean = (acc - phi.offset(delta) * total) / total
        ctx.save_for_backward(losses, lam, weight)
        ctx.args = (total, kappa, phi, delta, lam_index, dsum)
        return (mean + kappa * lam_t.double()).to(losses.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        losses, lam, weight = ctx.saved_tensors
        total, kappa, phi, delta, lam_index, dsum = ctx.args
        scale = float(grad) / total
        lam_t = _threshold(lam, losses)
        out, acc = _backward_grad(losses, lam_t, weight, phi, delta, scale, dsum)
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
    """Evaluate the dual form (inputs already validated)."""
    if torch.compiler.is_compiling():
        # Inside a user's torch.compile: the plain formula, for it to fuse.
        lam = losses[lam_index] if lam_index is not None else lam.reshape(())
        v = phi.fn(losses - lam, delta)
        s = v.sum() if weight is None else torch.dot(v, weight)
        return s / total + kappa * lam
    return DualForm.apply(losses, lam, weight, total, kappa, phi, delta, lam_index)
