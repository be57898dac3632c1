"""Compiled passes of a stack of one-hidden-layer MLPs with one output
(optional: numba).

A grid search trains hundreds of small MLPs at once, each with one hidden
layer and one output unit, on inputs shared by the members of a group. Their
hidden activations lie in the memory order of the shared input's product,
``(G, B, M, h)`` for the shape ``(G, M, B, h)``, and the tensor forms of the
output unit's passes (its product and sum, its weights' gradient, the
gradient into the hidden units) broadcast one member's value over its few
units, along the innermost axis, which costs two to three times a plain pass
over the activations; the backward pass then takes a batched product for the
first layer's weights, a copy into the members' order and a concatenation.
With numba installed (the ``fast`` extra), the output unit's forward pass is
one compiled loop (:func:`output_forward`), and the whole backward pass
another (:func:`hidden_backward`), which writes every member's gradient in
the order of its flat weights. Results agree with the tensor forms to float
rounding: the sums are taken in another order, those over the batch rows one
row after another in the weights' dtype (at a batch of 4096 rows, float32
gradients within 3.4e-6 of float64's, against 2.4e-7 for the tensor forms;
the batches of training are at most 1000 rows by default). A single model
(``lead = ()``) is trained by plain matrix products and never comes here.

The loops run on one thread, where torch's operations share their work
among torch's threads. They are taken where torch runs on at most
``MAX_THREADS`` threads: the workers of ``STkSearchCV(n_jobs=k)`` and of
``sktopk reproduce`` (one thread each), or a process on two cores (measured
there with two threads: the model's passes 429 µs against 679 at 3 x 600
members, 9.7 ms against 13.7 at 3 x 6000). With more threads the tensor
forms run, as they did before the loops: how they compare there has not been
measured.

Without numba, with ``SKTOPK_NUMBA=0``, with more threads, off the CPU, for
dtypes other than float32 and float64, other shapes or memory orders, both
return None and the tensor forms run.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..losses._native import jit, native_available

__all__ = ["hidden_backward", "output_forward"]

_DTYPES = (torch.float32, torch.float64)
MAX_THREADS = 2  # the most torch threads with which the loops are taken


def _applies() -> bool:
    """Whether the compiled loops may run: numba on, few torch threads."""
    return native_available() and torch.get_num_threads() <= MAX_THREADS


def _rows(a: Tensor, W: Tensor) -> Tensor | None:
    """The activations ``a`` (``(G, M, B, h)``) as ``(G, B, M h)`` without a
    copy, where the compiled passes take them with the output weights ``W``
    (``(G, M, h, 1)``, checked); else None."""
    if not _applies() or a.dim() != 4 or W.dim() != 4 or W.shape[-1] != 1:
        return None
    if a.device.type != "cpu" or a.dtype not in _DTYPES or W.dtype != a.dtype:
        return None
    rows = a.detach().transpose(1, 2)
    if not rows.is_contiguous() or W.shape[:3] != a.shape[:2] + a.shape[3:]:
        return None
    G, B, M, h = rows.shape
    return rows.view(G, B, M * h)


def output_forward(a: Tensor, W: Tensor, b: Tensor) -> Tensor | None:
    """``a @ W + b`` of shape ``(G, M, B, 1)`` by the compiled loop (in the
    memory order ``(G, B, M)``), or None where it does not apply."""
    rows = _rows(a, W)
    if rows is None or b.dtype != a.dtype or b.shape != (*a.shape[:2], 1):
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


def hidden_backward(
    X: Tensor, a: Tensor, g: Tensor, W: Tensor, out: Tensor
) -> Tensor | None:
    """The gradient of ``sum(g * (relu(X W1 + b1) W + b))`` in every weight
    of a one-hidden-layer stack with one output, by the compiled loop, from
    the shared inputs ``X`` (``(G, 1, B, d)``), the hidden activations ``a``
    (``(G, M, B, h)`` in the memory order ``(G, B, M, h)``) and the output's
    gradient ``g`` (``(G, M, B, 1)``), written into ``out`` (``(G, M,
    width)``, contiguous, returned): each member's gradient in the flat
    order of its weights ``W1, b1, W, b`` (entries past them left to the
    caller); None where the loop does not apply."""
    rows = _rows(a, W)
    if rows is None or g.dtype != a.dtype or g.shape != (*a.shape[:3], 1):
        return None
    G, M, B, h = a.shape
    if X.dtype != a.dtype or X.dim() != 4 or X.shape[:3] != (G, 1, B):
        return None
    if X.device.type != "cpu" or out.shape[-1] < (X.shape[3] + 2) * h + 1:
        return None
    if out.shape[:2] != (G, M) or out.dtype != a.dtype or out.device.type != "cpu":
        return None
    if not out.is_contiguous():
        return None
    _backward_loop(
        X.detach()[:, 0].numpy(),
        rows.numpy(),
        g.detach()[..., 0].transpose(1, 2).numpy(),
        _flat_weights(W).numpy(),
        out.numpy(),
    )
    return out


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
def _backward_loop(x, a, gz, w, out):  # pragma: no cover - compiled
    """With ``u = m h + j`` (member ``m``, hidden unit ``j``), from the
    output's gradient ``gz`` (``(G, B, M)``): the output weights' gradient
    ``sum_i a gz``, its bias's ``sum_i gz``, the gradient into the hidden
    units ``gh = gz w``, 0 where ``a <= 0`` (as ``threshold_backward``: a
    NaN activation lets the gradient through),
    the hidden biases' ``sum_i gh`` and the first layer's ``sum_i x_k gh``,
    summed over the batch rows ``i`` in rows of a group's units (contiguous
    memory: each row's gradients are first spread over the members' units),
    then written into each member's flat gradient in ``out``."""
    G, B, MH = a.shape
    M, d = gz.shape[2], x.shape[2]
    h = MH // M
    spread = np.empty(MH, a.dtype)
    gh = np.empty(MH, a.dtype)
    acc = np.empty((d + 2, MH), a.dtype)  # by input, then b1, then w
    acc_b = np.empty(M, a.dtype)
    for g in range(G):
        acc[:] = 0
        acc_b[:] = 0
        for i in range(B):
            for m in range(M):
                v = gz[g, i, m]
                acc_b[m] += v
                for j in range(h):
                    spread[m * h + j] = v
            for u in range(MH):
                av = a[g, i, u]
                r = spread[u]
                acc[d + 1, u] += av * r
                gh_u = 0.0 if av <= 0 else r * w[g, u]
                gh[u] = gh_u
                acc[d, u] += gh_u
            for k in range(d):
                xk = x[g, i, k]
                for u in range(MH):
                    acc[k, u] += xk * gh[u]
        for m in range(M):
            for k in range(d + 2):
                for j in range(h):
                    out[g, m, k * h + j] = acc[k, m * h + j]
            out[g, m, (d + 2) * h] = acc_b[m]
