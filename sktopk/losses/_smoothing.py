"""Smooth replacements of the ReLU inside the dual form of the top-k loss.

The STk loss (Xia et al., 2024) replaces ``[x]_+`` in the MATk objective by a
smooth function ``phi_delta``. Its default is the smoothed ReLU (SReLU); the
paper also compares SoftPlus, ELU and LeakyReLU. Each smoothing is defined
here once, as a pair of elementwise functions ``value(x, delta)`` and
``derivative(x, delta)``; the public functions (:func:`srelu`, :func:`stk`),
the fused dual form and the training engine all call these two.

``delta`` is a float or a tensor that broadcasts against ``x`` (the engine
passes one delta per member as a column).

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

__all__ = [
    "SMOOTHINGS",
    "RELU",
    "Smoothing",
    "check_delta",
    "srelu",
    "srelu_grad",
    "get_smoothing",
]

Delta = float | Tensor


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


# --- SReLU ------------------------------------------------------------------------


def _srelu_parts(x: Tensor, d: Delta) -> tuple[Tensor, Tensor]:
    """``(r, h)`` with ``r = sqrt(x^2 + d^2)`` and ``h = (r + x) / 2``.

    With ``q = d^2 / (r + |x|) = r - |x|``, the numerator ``r + x`` is taken
    as ``r + x`` for ``x >= 0`` and as ``q`` for ``x < 0``: never a cancelling
    difference. Then ``srelu'(x) = h / r`` (exactly 1/2 at 0, full relative
    precision in the tail) and ``srelu(x) = (x + r - d) / 2 = x (h + d / 2) /
    (r + d)``.
    """
    if torch.compiler.is_compiling():
        # In a compiled kernel: the square root of a square (vectorised, unlike
        # hypot) of x clamped so that the square stays finite; beyond the clamp
        # the derivative is 1 and the value x, as in eager mode.
        lim = math.sqrt(torch.finfo(x.dtype).max) / 4
        x = x.clamp(-lim, lim)
        r = torch.sqrt(x * x + d * d)
    else:
        r = torch.hypot(x, torch.as_tensor(d, dtype=x.dtype, device=x.device))
    half_q = (0.5 * d * d) / (r + x.abs())
    # Halved before the sum, so that nothing overflows near the largest floats.
    return r, torch.where(x >= 0, torch.add(r * 0.5, x, alpha=0.5), half_q)


def _srelu_value(x: Tensor, d: Delta) -> Tensor:
    r, h = _srelu_parts(x, d)
    return x * ((h + 0.5 * d) / (r + d))


def _srelu_derivative(x: Tensor, d: Delta) -> Tensor:
    r, h = _srelu_parts(x, d)
    return h / r


def _srelu_both(x: Tensor, d: Delta) -> tuple[Tensor, Tensor]:
    r, h = _srelu_parts(x, d)
    return x * ((h + 0.5 * d) / (r + d)), h / r


def srelu(x: Tensor, delta: float = 0.01) -> Tensor:
    r"""Smoothed ReLU of Xia et al. (2024), elementwise.

    .. math::
        \mathrm{SReLU}_\delta(x) = \frac{x + \sqrt{x^2 + \delta^2} - \delta}{2}

    For ``x < 0`` the sum ``x + sqrt(x^2 + delta^2)`` cancels. It is evaluated
    as ``x (n + delta) / (2 (r + delta))`` with ``r = hypot(x, delta)`` and
    ``n = r + x``, computed as ``delta^2 / (r + |x|)`` for ``x < 0``: the
    result keeps full relative precision in float32 for every ``x`` and
    ``delta``, and stays finite up to the largest floats.

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
    return _srelu_value(x, d)


def srelu_grad(x: Tensor, delta: float = 0.01) -> Tensor:
    r"""Derivative of :func:`srelu`, ``(1 + x / sqrt(x^2 + delta^2)) / 2``.

    Evaluated as ``n / (2 r)`` (see :func:`srelu`), which keeps full relative
    precision in the far tail.

    Examples
    --------
    >>> import torch
    >>> srelu_grad(torch.tensor([-1.0, 0.0, 1.0]), delta=1.0)
    tensor([0.1464, 0.5000, 0.8536])
    """
    d = check_delta(delta)
    _check_float_tensor(x)
    return _srelu_derivative(x, d)


# --- the others -------------------------------------------------------------------


def _softplus(x: Tensor, d: Delta) -> Tensor:
    return d * F.softplus(x / d)


def _elu(x: Tensor, d: Delta) -> Tensor:
    # clamp: the exp of the unselected branch must not overflow.
    return torch.where(x > 0, x, d * torch.expm1(x.clamp(max=0) / d))


def _elu_derivative(x: Tensor, d: Delta) -> Tensor:
    return torch.where(x > 0, 1.0, torch.exp(x.clamp(max=0) / d)).to(x.dtype)


def _leaky_relu(x: Tensor, d: Delta) -> Tensor:
    return torch.where(x > 0, x, d * x)


def _leaky_relu_derivative(x: Tensor, d: Delta) -> Tensor:
    # d * ones: the slope in x's dtype and shape, for a number or a column.
    return torch.where(x > 0, 1.0, d * torch.ones_like(x))


class Smoothing(NamedTuple):
    """A named ReLU replacement: its value and derivative, elementwise.

    Both take ``(x, delta)`` with ``delta`` a float or a tensor that
    broadcasts against ``x``, and neither changes its arguments. ``both``
    returns the pair at once (sharing intermediate results where the
    smoothing defines it so).
    """

    name: str
    value: Callable[[Tensor, Delta], Tensor]
    derivative: Callable[[Tensor, Delta], Tensor]
    shared: Callable[[Tensor, Delta], tuple[Tensor, Tensor]] | None = None

    def both(self, x: Tensor, d: Delta) -> tuple[Tensor, Tensor]:
        """``(value(x, d), derivative(x, d))``."""
        if self.shared is not None:
            return self.shared(x, d)
        return self.value(x, d), self.derivative(x, d)


#: Name -> smoothing; ``delta`` is the smoothing scale, or LeakyReLU's slope.
SMOOTHINGS: dict[str, Smoothing] = {
    "srelu": Smoothing("srelu", _srelu_value, _srelu_derivative, _srelu_both),
    "softplus": Smoothing("softplus", _softplus, lambda x, d: torch.sigmoid(x / d)),
    "elu": Smoothing("elu", _elu, _elu_derivative),
    "leaky_relu": Smoothing("leaky_relu", _leaky_relu, _leaky_relu_derivative),
}

#: The hard ReLU, for MATk and ATk (not a choice of ``stk``); the subgradient
#: at a tie ``x = 0`` is 0, as torch.relu's.
RELU = Smoothing("relu", lambda x, d: torch.relu(x), lambda x, d: (x > 0).to(x.dtype))


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
