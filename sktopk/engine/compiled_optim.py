"""A compiled Adagrad step (optional: numba).

Adagrad's update by tensor operations, ``s += g g``, ``d = sqrt(s) + eps``,
``p += (-lr g) / d``, makes four passes over the weights and two
temporaries; a grid search steps hundreds of members' weights at every
minibatch, where those passes cost about a tenth of a step. With numba
installed (the ``fast`` extra) :class:`AdagradLoop` makes them in one
compiled pass, with the same roundings as the tensor operations on the CPU
(``s`` by a fused multiply-add, as torch's ``addcmul_``; ``p`` from the same
product and quotient) but the square root, which is correctly rounded here
and not always in torch's vectorised form (measured: 18% of float32 roots
and 1.2% of float64 ones one unit in the last place apart; after one step
7% of float32 weights and 0.5% of float64 ones differ by one unit). A
single run and a batch of members take the same path, and agree bit for
bit.

It runs under the same conditions as the loops of :mod:`.compiled`: numba
on, torch on at most ``MAX_THREADS`` threads, CPU tensors of one dtype
(float32 or float64), contiguous; elsewhere it declines and the tensor
operations run. Its cost outside the loop is a few microseconds (a step of
100 weights measured 13.3 µs, where the tensor operations take 15.0):
it is taken for a single model's few weights as for a grid's many, so that
both round alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..losses._native import jit, native_available
from .compiled import _DTYPES, _applies

__all__ = ["AdagradLoop"]


class AdagradLoop:
    """The compiled Adagrad step of one parameter ``p`` and its sums ``s``
    (made once, kept by the optimizer: the arrays' numpy views are made
    here, not at every step).

    Use :meth:`make`, which returns None where the loop does not apply to
    ``p`` and ``s``; a call returns False where it does not apply to a
    step's gradient, step size or mask (then nothing has changed).

    Parameters
    ----------
    p, s : Tensor
        The weights and the accumulated squared gradients (CPU, one shape
        and dtype, float32 or float64, contiguous).
    eps : float
        Added to the root of the sums.
    """

    def __init__(self, p: Tensor, s: Tensor, eps: float) -> None:
        self.p, self.s = p, s
        self._p = p.detach().numpy()  # a parameter may require grad
        self._s = s.detach().numpy()
        self.kind = self._p.dtype.type
        self.eps = self.kind(eps)  # in the weights' dtype, as the tensor form's
        self._lr: tuple = (None, None)  # the last number given as lr, as array

    @classmethod
    def make(cls, p: Tensor, s: Tensor, eps: float) -> AdagradLoop | None:
        """The loop for ``p`` and ``s``, or None where it does not apply."""
        if not native_available() or not _same(p, s):
            return None
        return cls(p, s, eps)

    def __call__(
        self, g: Tensor, lr: Tensor | float, mask: Tensor | None = None
    ) -> bool:
        """One step of ``p`` (in place, with ``s``) by the gradient ``g``.

        Parameters
        ----------
        g : Tensor
            The gradient, shaped like ``p``.
        lr : float or Tensor
            The step size: a number, or one per member (a tensor of shape
            ``lead``, a prefix of ``p``'s shape).
        mask : Tensor or None, default=None
            Which members step (bool, broadcast to ``lead``): the others'
            gradients are multiplied by 0, as in the tensor form.
        """
        if not _applies() or not _same(self.p, g):
            return False
        lead = _lead(self.p, lr, mask)
        if lead is None:
            return False
        step, on = self._step_sizes(lr), _per_member(mask, self.kind, lead)
        if step is None or on is None:
            return False
        rows = math.prod(lead)
        _adagrad_loop(
            self._p.reshape(rows, -1),
            g.detach().numpy().reshape(rows, -1),
            self._s.reshape(rows, -1),
            step,
            on,
            self.eps,
        )
        torch.autograd.graph.increment_version(self.p)  # changed in place
        return True

    def _step_sizes(self, lr) -> np.ndarray | None:
        if isinstance(lr, Tensor):
            return _per_member(lr, self.kind)
        if self._lr[0] != lr:  # one number through a fit: made once
            self._lr = (lr, np.full(1, lr, self.kind))
        return self._lr[1]


def _same(first: Tensor, *ts: Tensor) -> bool:
    """CPU tensors of one shape and dtype (float32 or float64), contiguous."""
    return first.numel() > 0 and all(
        t.device.type == "cpu"
        and t.dtype == first.dtype
        and t.dtype in _DTYPES
        and t.shape == first.shape
        and t.is_contiguous()
        for t in (first, *ts)
    )


def _lead(p: Tensor, lr, mask) -> tuple[int, ...] | None:
    """The members' shape (that of the step sizes, else of the mask), a
    prefix of ``p``'s shape; None where it is not one."""
    lead = lr.shape if isinstance(lr, Tensor) and lr.dim() else ()
    lead = lead or (mask.shape if mask is not None else ())
    return tuple(lead) if p.shape[: len(lead)] == lead else None


def _per_member(x, kind, lead=None) -> np.ndarray | None:
    """``x`` as a flat numpy array for the loop: None (meaning 1) as one
    value of type ``kind``; a per-member step size as it is (the loop
    promotes as torch does); a mask, broadcast to ``lead``, as numbers of
    type ``kind``. None where ``x`` is on another device, of another dtype,
    or does not broadcast."""
    if x is None:
        return _ONE[kind]
    if x.device.type != "cpu":
        return None
    if lead is not None:  # a mask
        try:
            if torch.broadcast_shapes(x.shape, lead) != lead:
                return None
        except RuntimeError:  # shapes that do not broadcast
            return None
        dtype = torch.float32 if kind is np.float32 else torch.float64
        x = x.expand(lead).to(dtype).contiguous()
    if x.dtype not in _DTYPES:
        return None
    return x.detach().reshape(-1).numpy()


_ONE = {np.float32: np.ones(1, np.float32), np.float64: np.ones(1, np.float64)}


@jit(refcounts=False)
def _adagrad_loop(p, g, s, step, on, eps):  # pragma: no cover - compiled
    """Per member ``m`` and weight ``i``, with ``c = g on[m]``: ``s += c c``
    (a fused multiply-add) and ``p -= (c step[m]) / (sqrt(s) + eps)`` (a
    single value of ``step`` or ``on`` serves every member)."""
    rows, n = p.shape
    for m in range(rows):
        a = step[m if step.shape[0] > 1 else 0]
        f = on[m if on.shape[0] > 1 else 0]
        for i in range(n):
            c = g[m, i] * f
            si = s[m, i] + c * c
            s[m, i] = si
            p[m, i] -= (c * a) / (np.sqrt(si) + eps)
