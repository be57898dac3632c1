"""Compiled passes of a stack's single output unit (optional: numba).

A grid search trains hundreds of small MLPs at once, each with one hidden
layer and one output unit. Their hidden activations lie in the memory order
of the shared input's product, ``(G, B, M, h)`` for the shape ``(G, M, B,
h)``, and the tensor forms of the output unit's passes (its product and sum,
its weights' gradient, the gradient into the hidden units) broadcast one
member's value over its few units, along the innermost axis, which costs two
to three times a plain pass over the activations. With numba installed (the
``fast`` extra), the forward pass is one compiled loop, and the backward pass
another that gives the output's weight and bias gradients, the gradient into
the hidden units (the ReLU's mask applied) and the hidden biases' gradient
together. Results agree with the tensor forms to float rounding (the sums
are taken in another order).

Without numba, with ``SKTOPK_NUMBA=0``, off the CPU, for dtypes other than
float32 and float64 or other memory orders, :func:`output_forward` and
:func:`output_backward` return None and the tensor forms run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..losses._native import jit, native_available

__all__ = ["output_backward", "output_forward"]

_DTYPES = (torch.float32, torch.float64)


def _rows(a: Tensor, W: Tensor) -> Tensor | None:
    """The activations ``a`` (``(G, M, B, h)``) as ``(G, B, M h)`` without a
    copy, where the compiled passes take them with the output weights ``W``
    (``(G, M, h, 1)``); else None."""
    if not native_available() or a.dim() != 4 or W.dim() != 4 or W.shape[-1] != 1:
        return None
    if a.device.type != "cpu" or a.dtype not in _DTYPES or W.dtype != a.dtype:
        return None
    rows = a.detach().transpose(1, 2)
    if not rows.is_contiguous() or W.shape[:2] != a.shape[:2]:
        return None
    G, B, M, h = rows.shape
    return rows.view(G, B, M * h)


def output_forward(a: Tensor, W: Tensor, b: Tensor) -> Tensor | None:
    """``a @ W + b`` of shape ``(G, M, B, 1)`` by the compiled loop (in the
    memory order ``(G, B, M)``), or None where it does not apply."""
    rows = _rows(a, W)
    if rows is None:
        return None
    G, B, M = rows.shape[0], rows.shape[1], a.shape[1]
    z = torch.empty(G, B, M, dtype=a.dtype)
    _forward_loop(
        rows.numpy(),
        _flat_weights(W).numpy(),
        b.detach()[..., 0].numpy(),
        z.numpy(),
    )
    return z.transpose(1, 2).unsqueeze(-1)


def output_backward(
    a: Tensor, g: Tensor, W: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """The backward pass of ``relu`` activations ``a`` through the output
    unit, from the output's gradient ``g`` (``(G, M, B, 1)``): the output
    weights' gradient ``(G, M, h)``, the output bias's ``(G, M, 1)``, the
    gradient into the hidden units' inputs (ReLU's mask applied; ``(G, M, B,
    h)`` in the memory order of ``a``) and its sum over the batch (the hidden
    biases' gradient, ``(G, M, h)``); None where the loop does not apply."""
    rows = _rows(a, W)
    if rows is None or g.dtype != a.dtype or g.shape != (*a.shape[:3], 1):
        return None
    G, M, B, h = a.shape
    grad_in = torch.empty_like(rows)
    grad_w = torch.empty(G, M, h, dtype=a.dtype)
    grad_bias_in = torch.empty(G, M, h, dtype=a.dtype)
    grad_bias_out = torch.empty(G, M, 1, dtype=a.dtype)
    _backward_loop(
        rows.numpy(),
        g.detach()[..., 0].transpose(1, 2).numpy(),
        _flat_weights(W).numpy(),
        grad_in.numpy(),
        grad_w.view(G, M * h).numpy(),
        grad_bias_in.view(G, M * h).numpy(),
        grad_bias_out.view(G, M).numpy(),
    )
    grad_in = grad_in.view(G, B, M, h).transpose(1, 2)
    return grad_w, grad_bias_out, grad_in, grad_bias_in


def _flat_weights(W: Tensor) -> Tensor:
    """Each group's output weights in one row, ``(G, M h)`` (a small copy:
    the weights are views into the members' flat vectors)."""
    G, M, h, _ = W.shape
    return W.detach().reshape(G, M * h).contiguous()


@jit
def _forward_loop(a, w, b, z):  # pragma: no cover - compiled
    """``z[g, i, m] = b[g, m] + sum_j a[g, i, m h + j] w[g, m h + j]``."""
    G, B, MH = a.shape
    M = b.shape[1]
    h = MH // M
    for g in range(G):
        for i in range(B):
            for m in range(M):
                acc = b[g, m]
                for j in range(h):
                    acc += a[g, i, m * h + j] * w[g, m * h + j]
                z[g, i, m] = acc


@jit
def _backward_loop(a, gz, w, gh, gw, gb_in, gb_out):  # pragma: no cover - compiled
    """From the output's gradient ``gz`` (``(G, B, M)``): ``gw = sum_i a
    gz``, ``gb_out = sum_i gz``, ``gh = gz w`` where ``a > 0`` (else 0, as
    ``threshold_backward``), ``gb_in = sum_i gh``. Each batch row's
    gradients are first spread over the members' units (``spread``), so
    that the loop over a group's units runs along contiguous memory."""
    G, B, MH = a.shape
    M = gz.shape[2]
    h = MH // M
    spread = np.empty(MH, a.dtype)
    for g in range(G):
        gw[g, :] = 0
        gb_in[g, :] = 0
        gb_out[g, :] = 0
        for i in range(B):
            for m in range(M):
                v = gz[g, i, m]
                gb_out[g, m] += v
                for j in range(h):
                    spread[m * h + j] = v
            for u in range(MH):
                av = a[g, i, u]
                r = spread[u]
                gw[g, u] += av * r
                x = 0.0 if av <= 0 else r * w[g, u]
                gh[g, i, u] = x
                gb_in[g, u] += x
