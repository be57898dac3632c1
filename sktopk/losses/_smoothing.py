"""Smooth replacements of the ReLU inside the dual form of the top-k loss.

The STk loss (Xia et al., 2024) replaces ``[x]_+`` in the MATk objective by a
smooth function ``phi_delta``. Its default is the smoothed ReLU (SReLU); the
paper also compares SoftPlus, ELU and LeakyReLU. Each smoothing here is a pair
(value, derivative) of elementwise functions, plus in-place "kernel" forms used
by the fused aggregate loss in ``_aggregate.py`` on chunks of a large tensor.

References
----------
.. [1] Xia, Liu, Mao. "ST_k: A Scalable Module for Solving Top-k Problems".
   NeurIPS 2024.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SMOOTHINGS", "check_delta", "srelu", "srelu_grad", "get_smoothing"]


def check_delta(delta: float, name: str = "delta") -> float:
    """Return ``delta`` as a float, raising ``ValueError`` unless it is finite > 0."""
    ok = isinstance(delta, numbers.Real) and not isinstance(delta, bool)
    if not ok or not math.isfinite(delta) or delta <= 0:
        raise ValueError(f"{name} must be a finite float > 0; got {name}={delta!r}")
    return float(delta)


def _check_float_tensor(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor; got {got}")


def srelu(x: Tensor, delta: float = 0.01) -> Tensor:
    r"""Smoothed ReLU of Xia et al. (2024), elementwise.

    .. math::
        \mathrm{SReLU}_\delta(x) = \frac{x + \sqrt{x^2 + \delta^2} - \delta}{2}

    For ``x < 0`` the sum ``x + sqrt(x^2 + delta^2)`` cancels; it equals
    ``delta^2 / (sqrt(x^2 + delta^2) - x)``. Here both branches are written as
    products of non-cancelling factors, with ``r = hypot(x, delta)`` and
    ``u = |x| / (r + delta)``: ``(x / 2)(1 + u)`` for ``x >= 0``, times
    ``delta / (r - x)`` for ``x < 0``. The result keeps full relative precision
    in float32 for every ``x`` (no overflow up to ``|x| ~ 1e38``) and ``delta``.

    Properties: ``srelu(0) = 0``; ``0 <= relu(x) - srelu(x) < delta / 2``; it is
    convex with derivative ``(1 + x / sqrt(x^2 + delta^2)) / 2`` in ``(0, 1)``.

    Parameters
    ----------
    x : Tensor of any shape
        Floating-point input.
    delta : float, default=0.01
        Smoothing, ``> 0``; ``srelu -> relu`` uniformly as ``delta -> 0``.

    Returns
    -------
    Tensor of the shape of ``x``

    References
    ----------
    Xia, Liu, Mao. "ST_k: A Scalable Module for Solving Top-k Problems".
    NeurIPS 2024.

    Examples
    --------
    >>> import torch
    >>> srelu(torch.tensor([-1e6, 0.0, 1.0]), delta=0.1)
    tensor([-0.0500,  0.0000,  0.9525])
    """
    d = check_delta(delta)
    _check_float_tensor(x)
    a = x.abs()
    r = torch.hypot(x, x.new_tensor(d))
    half = x / 2 * (1 + a / (r + d))
    # r + |x| >= delta > 0: no branch divides by zero (a NaN in the unselected
    # branch of ``where`` would still poison the gradient).
    return torch.where(x >= 0, half, half * (d / (r + a)))


def srelu_grad(x: Tensor, delta: float = 0.01) -> Tensor:
    r"""Derivative of :func:`srelu`, ``(1 + x / sqrt(x^2 + delta^2)) / 2``.

    For ``x < 0`` it is evaluated as ``delta^2 / (2 r (r - x))``, ``r = hypot(x,
    delta)``, which keeps full relative precision in the far tail.

    Examples
    --------
    >>> import torch
    >>> srelu_grad(torch.tensor([-1.0, 0.0, 1.0]), delta=1.0)
    tensor([0.1464, 0.5000, 0.8536])
    """
    d = check_delta(delta)
    _check_float_tensor(x)
    r = torch.hypot(x, x.new_tensor(d))
    tail = (d * d) / (2 * r * (r + x.abs()))
    return torch.where(x >= 0, (1 + x / r) / 2, tail)


def _softplus(x: Tensor, delta: float) -> Tensor:
    return delta * F.softplus(x / delta)


def _elu(x: Tensor, delta: float) -> Tensor:
    return delta * F.elu(x / delta)


def _elu_grad(x: Tensor, delta: float) -> Tensor:
    # clamp: exp of the unselected branch must not overflow.
    return torch.where(x > 0, 1.0, torch.exp(torch.clamp(x, max=0) / delta))


def _leaky_relu(x: Tensor, delta: float) -> Tensor:
    return F.leaky_relu(x, negative_slope=delta)


def _leaky_relu_grad(x: Tensor, delta: float) -> Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, delta))


# --- in-place kernels on chunks (used by the fused dual form) -------------------


def _srelu_sum_(x: Tensor, d: float, w: Tensor | None, scratch: Tensor) -> Tensor:
    """``sum w * (srelu(x) + d / 2)``, overwriting ``x`` and ``scratch``.

    Uses ``srelu(x) + d/2 = relu(x) + q/2`` with ``q = d^2 / (hypot(x, d) + |x|)``:
    every term is non-negative, so nothing cancels (the caller subtracts
    ``d/2`` once, from the total).
    """
    a = torch.abs(x, out=scratch)
    x.clamp_(min=0)
    relu_sum = x.sum() if w is None else torch.dot(x, w)
    q = torch.hypot(a, a.new_tensor(d), out=x).add_(a).reciprocal_()
    q_sum = q.sum() if w is None else torch.dot(q, w)
    return relu_sum + (d * d / 2) * q_sum


def _srelu_grad_(x: Tensor, d: float, scale: float, scratch: Tensor) -> Tensor:
    """Overwrite ``x`` with ``scale * srelu'(x)`` (three passes, no allocation)."""
    r = torch.hypot(x, x.new_tensor(d), out=scratch)
    return torch.addcdiv(x.new_tensor(scale / 2), x, r, value=scale / 2, out=x)


def _relu_sum_(x: Tensor, d: float, w: Tensor | None, scratch: Tensor) -> Tensor:
    x.clamp_(min=0)
    return x.sum() if w is None else torch.dot(x, w)


def _relu_grad_(x: Tensor, d: float, scale: float, scratch: Tensor) -> Tensor:
    # The subgradient 0 at a tie x = 0, as torch.relu.
    return x.gt_(0).mul_(scale)


class Smoothing(NamedTuple):
    """A named ReLU replacement: value, derivative, and chunk kernels.

    ``offset`` is what ``sum_`` adds per unit of weight (subtracted once by the
    caller); ``sum_``/``grad_`` may overwrite their tensor arguments.
    """

    fn: Callable[[Tensor, float], Tensor]
    grad: Callable[[Tensor, float], Tensor]
    sum_: Callable[..., Tensor] | None = None
    grad_: Callable[..., Tensor] | None = None
    offset: Callable[[float], float] = lambda d: 0.0


def _generic_sum_(fn: Callable) -> Callable[..., Tensor]:
    def sum_(x: Tensor, d: float, w: Tensor | None, scratch: Tensor) -> Tensor:
        v = fn(x, d)
        return v.sum() if w is None else torch.dot(v, w)

    return sum_


def _generic_grad_(grad: Callable) -> Callable[..., Tensor]:
    def grad_(x: Tensor, d: float, scale: float, scratch: Tensor) -> Tensor:
        return x.copy_(grad(x, d)).mul_(scale)

    return grad_


def _make(fn, grad, sum_=None, grad_=None, offset=lambda d: 0.0) -> Smoothing:
    return Smoothing(
        fn, grad, sum_ or _generic_sum_(fn), grad_ or _generic_grad_(grad), offset
    )


#: Name -> smoothing; ``delta`` is the smoothing scale, or LeakyReLU's slope.
SMOOTHINGS: dict[str, Smoothing] = {
    "srelu": _make(srelu, srelu_grad, _srelu_sum_, _srelu_grad_, lambda d: d / 2),
    "softplus": _make(_softplus, lambda x, d: torch.sigmoid(x / d)),
    "elu": _make(_elu, _elu_grad),
    "leaky_relu": _make(_leaky_relu, _leaky_relu_grad),
}

#: The hard ReLU, for MATk and ATk (not a choice of ``stk``).
RELU = _make(
    lambda x, d: torch.relu(x),
    lambda x, d: (x > 0).to(x.dtype),
    _relu_sum_,
    _relu_grad_,
)


def get_smoothing(name: str, delta: float) -> Smoothing:
    """Look up a smoothing by name and validate ``delta`` for it."""
    if name not in SMOOTHINGS:
        raise ValueError(
            f"smoothing={name!r} is unknown; valid names are {tuple(SMOOTHINGS)}"
        )
    check_delta(delta)
    if name == "leaky_relu" and delta >= 1:
        raise ValueError(
            f"delta={delta!r} is out of range: for smoothing='leaky_relu' it is the "
            "negative slope, in (0, 1)"
        )
    return SMOOTHINGS[name]
