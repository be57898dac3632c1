"""Validation scores of every member, computed over row chunks.

Scoring a validation or test split runs the model on all of its rows at once
for every member: for a few thousand members and a few thousand rows the
hidden activations are hundreds of megabytes, written and read back from main
memory. :func:`score_rows` takes the rows in chunks whose activations stay
about ``_CHUNK_ELEMENTS`` numbers (a few megabytes, in cache), which is
several times faster there and needs a fraction of the memory; with few
members or rows it is one chunk, as before.
"""

from __future__ import annotations

import math

from torch import Tensor

__all__ = ["forward_rows", "score", "score_rows"]

#: Activations per chunk of rows (float32: 4 MB).
_CHUNK_ELEMENTS = 1 << 20


def score(task: str, f: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """Weighted validation score per member: accuracy, or minus the MSE."""
    total, weight = _sums(task, f, y, w)
    return total / weight.clamp_min(1e-12)


def _sums(
    task: str, f: Tensor, y: Tensor, w: Tensor, top: int = 1, absolute: bool = False
) -> tuple[Tensor, Tensor]:
    """Weighted sum of the per-row scores and the sum of the weights; for a
    multi-class ``task`` with ``top > 1``, top-``top`` accuracy (the true
    class among the ``top`` highest scores: fewer than ``top`` above it);
    for regression minus the squared error, or with ``absolute`` minus the
    absolute error."""
    w = w.expand(f.shape[:-1])
    if task == "regression":
        diff = f[..., 0] - y
        err = -diff.abs() if absolute else -(diff**2)
    elif task == "binary":
        err = ((f[..., 0] > 0) == (y > 0)).to(f.dtype)
    elif top > 1:
        true = f.gather(-1, y.long().expand(f.shape[:-1]).unsqueeze(-1))
        err = ((f > true).sum(-1) < top).to(f.dtype)
    else:
        err = (f.argmax(-1) == y).to(f.dtype)
    return (err * w).sum(-1), w.sum(-1)


def chunk_rows(model, n_rows: int) -> int:
    """Rows per chunk for ``model`` (a :class:`.models.StackedMLP` or an
    adapter): the widest layer of all members within ``_CHUNK_ELEMENTS``."""
    members = math.prod(model.lead)
    width = max(getattr(model, "sizes", (1, 1))[1:])
    return max(1, min(n_rows, _CHUNK_ELEMENTS // (members * width)))


def forward_rows(model, X: Tensor):
    """``(lo, hi, model.forward(X[..., lo:hi, :]))`` for the chunks of rows of
    :func:`chunk_rows`, in order (one chunk with few members or rows). The
    outputs equal those of one pass up to float rounding: a product's
    kernel, and so the order of its sums, can depend on its number of rows.
    """
    n = X.shape[-2]
    step = chunk_rows(model, n)
    for lo in range(0, n, step):
        hi = min(lo + step, n)
        yield lo, hi, model.forward(X[..., lo:hi, :], cache=False)


def score_rows(
    model,
    X: Tensor,
    y: Tensor,
    w: Tensor,
    task: str,
    top: int = 1,
    absolute: bool = False,
) -> Tensor:
    """:func:`score` of ``model`` on the rows of ``X``, forward pass by chunks
    of rows (top-``top`` accuracy for a multi-class ``task``; minus the mean
    absolute error for regression with ``absolute``).

    ``X`` has shape ``lead + (n, d)`` (or a broadcastable one), ``y`` and
    ``w`` shape ``lead + (n,)``; returns the score of every member."""
    total = weight = 0.0
    for lo, hi, f in forward_rows(model, X):
        t, s = _sums(task, f, y[..., lo:hi], w[..., lo:hi], top, absolute)
        total, weight = total + t, weight + s
    return total / weight.clamp_min(1e-12)
