"""Smooth replacements of the ReLU inside the dual form of the top-k loss.

The STk loss (Xia et al., 2024) replaces ``[x]_+`` in the MATk objective by a
smooth function ``phi_delta``. Its default is the smoothed ReLU (SReLU); the
paper also compares SoftPlus, ELU and LeakyReLU. Each smoothing is defined
here once, as a pair of elementwise functions ``value(x, delta)`` and
``derivative(x, delta)``; the public functions (:func:`srelu`, :func:`stk`),
the fused dual form and the training engine all call these two.

``delta`` is a float or a tensor that broadcasts against ``x`` (the engine
passes one delta per member as a column). A delta below the smallest normal
number of the dtype computed in (about ``1.2e-38`` in float32, ``2.2e-308`` in
float64, ``6.1e-5`` in float16) counts as that number (:func:`floored`):
smaller, it would underflow to 0, and ``0 / 0`` at a tie ``x = 0`` would make
the value and the gradients NaN.

References
----------
.. [1] Xia, Liu, Mao. "ST_k: A Scalable Module for Solving Top-k Problems".
   NeurIPS 2024.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import _batched_or_wrapped

__all__ = [
    "constant",
    "constants",
    "SMOOTHINGS",
    "RELU",
    "Smoothing",
    "check_delta",
    "srelu",
    "srelu_grad",
    "get_smoothing",
]

Delta = float | Tensor


def finite(value: float) -> bool:
    """``math.isfinite`` as comparisons, which ``torch.compile`` traces on the
    symbolic floats it makes of default arguments (False for NaN too)."""
    return -math.inf < value < math.inf


def check_delta(delta: float, name: str = "delta") -> float:
    """Return ``delta`` as a float, raising ``ValueError`` unless it is finite > 0."""
    ok = isinstance(delta, numbers.Real) and not isinstance(delta, bool)
    if not ok or not finite(delta) or delta <= 0:
        raise ValueError(f"{name} must be a finite float > 0; got {name}={delta!r}")
    return float(delta)


def _check_float_tensor(x: Tensor, name: str = "x") -> None:
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor; got {got}")


# --- SReLU ------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _cached(values: tuple[float, ...], dtype, device) -> tuple[Tensor, ...]:
    # Outside inference mode: autograd may save them (hypot's backward does).
    with torch.inference_mode(False):
        return tuple(torch.tensor(v, dtype=dtype, device=device) for v in values)


def constants(x: Tensor, *values: float) -> tuple[Tensor, ...]:
    """Numbers as 0-d tensors of ``x``'s dtype and device.

    An operation with a Python number costs about twice one with a tensor on
    a small batch (the number is wrapped each time), so in eager mode they
    are cached per dtype and device; in a compiled or traced graph, and for
    tensor subclasses (FakeTensor), fresh tensors are made.
    """
    if type(x) is Tensor and not (
        torch.compiler.is_compiling() or torch.jit.is_tracing()
    ):
        return _cached(values, x.dtype, x.device)
    return tuple(torch.full((), v, dtype=x.dtype, device=x.device) for v in values)


def constant(value: Delta, x: Tensor) -> Tensor:
    """``value`` as a tensor of ``x``'s dtype and device (see :func:`constants`)."""
    if isinstance(value, Tensor):
        return value.to(dtype=x.dtype, device=x.device)
    return constants(x, float(value))[0]


_TINY: dict[torch.dtype, float] = {}


def _tiny(dtype: torch.dtype) -> float:
    """The smallest normal number of ``dtype``."""
    if torch.compiler.is_compiling():
        return torch.finfo(dtype).tiny
    if dtype not in _TINY:
        _TINY[dtype] = torch.finfo(dtype).tiny
    return _TINY[dtype]


def floored(d: Delta, x: Tensor) -> Delta:
    """``d`` raised to the smallest normal number of ``x``'s dtype where it is
    below.

    A smaller delta underflows to 0 in that dtype (or to a denormal number,
    which a flush-to-zero mode reads as 0), and the smoothings then divide 0
    by 0 at a tie ``x = 0``. Raised, the values change by less than that
    number, and the derivatives only where ``|x|`` is about as small.
    """
    tiny = _tiny(x.dtype)
    if isinstance(d, Tensor):
        return d.clamp_min(tiny)
    return d if d >= tiny else tiny


def scaled(g: Tensor, wn) -> Tensor:
    """``g * wn``, in place on ``g`` (a temporary) unless ``wn`` is batched or
    wrapped by a transform (``is_grads_batched``, ``vmap`` over the weights),
    which an in-place product with a plain ``g`` cannot take, or the code is
    compiled (where the check is no graph operation, and the compiler fuses
    the product)."""
    if torch.compiler.is_compiling() or (
        isinstance(wn, Tensor) and _batched_or_wrapped(wn)
    ):
        return g * wn
    return g.mul_(wn)


def _clamped(x: Tensor) -> tuple[Tensor, Tensor]:
    """``(x, xc)``: ``x`` raised to the bottom of a finite range, and ``xc``
    clamped into it.

    The ratios of the forms below are taken at ``xc`` (finite: no ``inf /
    inf``) and multiplied by ``x``, so that ``x = -inf`` gives the limit
    ``-d/2`` and ``x = +inf`` gives ``inf``, derivatives 0 and 1. The range
    is the finite floats; in a compiled kernel, where ``r`` is the square
    root of a square (vectorised, unlike hypot), the range where the square
    stays finite (beyond it the derivative is 1 and the value ``x``).
    """
    lim = torch.finfo(x.dtype).max
    if torch.compiler.is_compiling():
        lim = math.sqrt(lim) / 4
    x = x.clamp(min=-lim)
    return x, x.clamp(max=lim)


def _hypot(x: Tensor, d: Delta) -> Tensor:
    """``sqrt(x^2 + d^2)`` of a clamped ``x`` (see :func:`_clamped`) and a
    floored ``d`` (see :func:`floored`), positive.

    Compiled, ``d^2`` is floored in turn at the smallest normal number: where
    it would underflow, ``r`` is then at least its square root, not 0 at
    ``x = 0``.
    """
    if torch.compiler.is_compiling():
        return torch.sqrt(x * x + floored(d * d, x))
    return torch.hypot(x, constant(d, x))


def _srelu_parts(x: Tensor, d: Delta) -> tuple[Tensor, Tensor]:
    """``(r, h)`` with ``r = sqrt(x^2 + d^2)`` and ``h = (r + x) / 2``, for a
    clamped ``x`` (see :func:`_clamped`).

    With ``q = d^2 / (r + |x|) = r - |x|``, the numerator ``r + x`` is taken
    as ``r + x`` for ``x >= 0`` and as ``q`` for ``x < 0``: never a cancelling
    difference. Then ``srelu'(x) = h / r`` (exactly 1/2 at 0, full relative
    precision in the tail) and ``srelu(x) = (x + r - d) / 2 = x (h + d / 2) /
    (r + d)``. ``q / 2`` is ``(d / 2) (d / (r + |x|))``, so that ``d^2`` never
    overflows (a large delta).
    """
    r = _hypot(x, d)
    half_q = (0.5 * d) * (d / (r + x.abs()))
    # Halved before the sum, so that nothing overflows near the largest floats.
    return r, torch.where(x >= 0, torch.add(r * 0.5, x, alpha=0.5), half_q)


def _srelu_exact_value(x: Tensor, d: Delta) -> Tensor:
    d = floored(d, x)
    x, xc = _clamped(x)
    r, h = _srelu_parts(xc, d)
    # x / (r + d) in [-1, 1] first: no denormal quotient in the far left tail,
    # where the value tends to -d/2.
    return (x / (r + d)) * (h + 0.5 * d)


def _srelu_exact_derivative(x: Tensor, d: Delta) -> Tensor:
    r, h = _srelu_parts(_clamped(x)[1], floored(d, x))
    return h / r


# The forms below are what sums of losses use (the STk aggregate and its
# gradients): a few vectorised operations, exact to a few ulps of
# ``max(|x|, d)`` in absolute terms (a sum needs no more), for every delta > 0
# up to the largest floats, and with the limits at -inf (value -d/2 within
# that accuracy, derivative 0) and at +inf (value inf, derivative 1).
# ``srelu`` and ``srelu_grad`` keep full relative precision elementwise, at
# about twice the cost.


def _srelu_r(x: Tensor, d: Delta) -> tuple[Tensor, Tensor, Tensor, Delta]:
    """``(x, xc, r, d)``: see :func:`_clamped`, ``r = hypot(xc, d)``, and
    ``d`` floored (see :func:`floored`)."""
    d = floored(d, x)
    x, xc = _clamped(x)
    return x, xc, _hypot(xc, d), d


def _half_plus(x: Tensor, num: Tensor, den: Tensor, c: float = 0.5) -> Tensor:
    """``c (1 + num / den)``, as one operation in eager mode."""
    if torch.compiler.is_compiling():
        return c + c * num / den
    return torch.addcdiv(constant(c, x), num, den, value=c)


def _srelu_value(x: Tensor, d: Delta) -> Tensor:
    # srelu = (x + r - d) / 2 = x (1 + x / (r + d)) / 2: r - d = x^2 / (r + d).
    x, xc, r, d = _srelu_r(x, d)
    return x * _half_plus(xc, xc, r + d)


def _srelu_derivative(x: Tensor, d: Delta) -> Tensor:
    _, xc, r, _ = _srelu_r(x, d)
    return _half_plus(xc, xc, r)


def _srelu_both(x: Tensor, d: Delta) -> tuple[Tensor, Tensor]:
    x, xc, r, d = _srelu_r(x, d)
    return x * _half_plus(xc, xc, r + d), _half_plus(xc, xc, r)


_HIGHEST: dict[torch.dtype, float] = {}


def _highest(dtype: torch.dtype) -> float:
    if dtype not in _HIGHEST:
        _HIGHEST[dtype] = torch.finfo(dtype).max
    return _HIGHEST[dtype]


def _fast(x: Tensor, d: Delta, wn, kappa) -> bool:
    """Whether the few-operations form applies: 1-D plain tensors, numbers."""
    return (
        type(wn) is float
        and type(kappa) is float
        and type(x) is Tensor  # not a FakeTensor: the constants are cached
        and x.dim() == 1
        and not isinstance(d, Tensor)
    )


def _finish(s: Tensor, g: Tensor, lam: Tensor, kappa):
    """``(s + kappa lam, g, kappa - sum_i g_i)``."""
    if isinstance(kappa, Tensor):
        return s + kappa * lam, g, kappa - g.sum(-1)
    return torch.add(s, lam, alpha=kappa), g, torch.rsub(g.sum(-1), kappa)


def _srelu_core(d: float, wn: float, kappa: float, dtype, device):
    """The dual form of 1-D losses and its gradients in ten operations, for
    numbers ``d``, ``wn`` and ``kappa`` (constants made once)."""
    c = 0.5 * wn  # folded into the operation that makes each factor
    d = max(float(d), _tiny(dtype))  # see floored
    dt, ct, kt = _cached((d, c, float(kappa)), dtype, device)
    high = _highest(dtype)

    def run(x: Tensor, lam: Tensor):  # x = losses - lam, overwritten
        x = x.clamp_min_(-high)  # as _clamped: ratios at xc, the value by x
        xc = x.clamp_max(high)
        r = torch.hypot(xc, dt)
        s = torch.dot(x, torch.addcdiv(ct, xc, torch.add(r, dt), value=c))
        g = torch.addcdiv(ct, xc, r, value=c)
        return torch.add(s, lam, alpha=kappa), g, torch.sub(kt, g.sum())

    return run


def _from_losses(core: Callable) -> Callable:
    """A kernel of ``(losses, lam)`` from a core of ``(losses - lam, lam)``."""

    def kernel(d: float, wn: float, kappa: float, dtype, device):
        run = core(d, wn, kappa, dtype, device)
        return lambda losses, lam: run(torch.sub(losses, lam), lam)

    return kernel


_srelu_kernel = _from_losses(_srelu_core)


def _srelu_dual(x: Tensor, d: Delta, wn, lam: Tensor, kappa):
    if _fast(x, d, wn, kappa):
        return _srelu_core(d, wn, kappa, x.dtype, x.device)(x, lam)
    x, xc, r, d = _srelu_r(x, d)
    if isinstance(wn, Tensor):
        s = (x * wn * _half_plus(xc, xc, r + d)).sum(-1)
        return _finish(s, scaled(_half_plus(xc, xc, r), wn), lam, kappa)
    c = 0.5 * wn
    s = (x * _half_plus(xc, xc, r + d, c)).sum(-1)
    return _finish(s, _half_plus(xc, xc, r, c), lam, kappa)


def srelu(x: Tensor, delta: float = 0.01) -> Tensor:
    r"""Smoothed ReLU of Xia et al. (2024), elementwise.

    .. math::
        \mathrm{SReLU}_\delta(x) = \frac{x + \sqrt{x^2 + \delta^2} - \delta}{2}

    For ``x < 0`` the sum ``x + sqrt(x^2 + delta^2)`` cancels. It is evaluated
    as ``x (n + delta) / (2 (r + delta))`` with ``r = hypot(x, delta)`` and
    ``n = r + x``, computed as ``delta^2 / (r + |x|)`` for ``x < 0``: the
    result keeps full relative precision in float32 for every ``x`` and
    ``delta``, and stays finite up to the largest floats. The infinities
    give the limits: ``srelu(-inf) = -delta / 2`` and ``srelu(inf) = inf``,
    with derivatives 0 and 1.

    Properties: ``srelu(0) = 0``; ``0 <= relu(x) - srelu(x) < delta / 2``; it is
    convex with derivative ``(1 + x / sqrt(x^2 + delta^2)) / 2`` in ``(0, 1)``.

    Parameters
    ----------
    x : Tensor of any shape
        Floating-point input.
    delta : float, default=0.01
        Smoothing, ``> 0``; ``srelu -> relu`` uniformly as ``delta -> 0``. A
        delta below the smallest normal number of the dtype of ``x`` counts
        as that number (it would underflow to 0, and ``srelu(0)`` be NaN).

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
    return _srelu_exact_value(x, d)


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
    return _srelu_exact_derivative(x, d)


# --- the others -------------------------------------------------------------------


# Beyond it, softplus(z) = z + log1p(exp(-z)) is z to float64's precision
# (torch's default threshold, 20, leaves an error of exp(-20) d).
_SOFTPLUS_THRESHOLD = 40.0


def _softplus(x: Tensor, d: Delta) -> Tensor:
    d = floored(d, x)
    if isinstance(d, Tensor):
        return d * F.softplus(x / d, threshold=_SOFTPLUS_THRESHOLD)
    # d softplus(x / d), as x itself where x / d is beyond the threshold:
    # x / d, which overflows for a tiny delta, is never multiplied back.
    return F.softplus(x, beta=1.0 / d, threshold=_SOFTPLUS_THRESHOLD)


def _softplus_derivative(x: Tensor, d: Delta) -> Tensor:
    return torch.sigmoid(x / floored(d, x))


def _elu(x: Tensor, d: Delta) -> Tensor:
    d = floored(d, x)
    # clamp: the exp of the unselected branch must not overflow.
    return torch.where(x > 0, x, d * torch.expm1(x.clamp(max=0) / d))


def _elu_derivative(x: Tensor, d: Delta) -> Tensor:
    d = floored(d, x)
    return torch.where(x > 0, 1.0, torch.exp(x.clamp(max=0) / d)).to(x.dtype)


def _leaky_relu(x: Tensor, d: Delta) -> Tensor:
    return torch.where(x > 0, x, d * x)


def _leaky_relu_derivative(x: Tensor, d: Delta) -> Tensor:
    # d * ones: the slope in x's dtype and shape, for a number or a column.
    return torch.where(x > 0, 1.0, d * torch.ones_like(x))


def _relu_core(d: float, wn: float, kappa: float, dtype, device):
    """As :func:`_srelu_core`, for the ReLU."""
    wt, kt = _cached((wn, float(kappa)), dtype, device)

    def run(x: Tensor, lam: Tensor):  # x = losses - lam, overwritten
        # g = wn [x > 0] (the subgradient at 0 is 0), and sum_i wn v_i = v . g.
        v = x.clamp_min_(0)
        g = torch.sign(v).mul_(wt)
        s = torch.dot(v, g)
        return torch.add(s, lam, alpha=kappa), g, torch.sub(kt, g.sum())

    return run


_relu_kernel = _from_losses(_relu_core)


def _relu_dual(x: Tensor, d: Delta, wn, lam: Tensor, kappa):
    if _fast(x, d, wn, kappa):
        return _relu_core(d, wn, kappa, x.dtype, x.device)(x, lam)
    v = x.clamp_min_(0)  # x is the caller's temporary
    s = (v * wn).sum(-1) if isinstance(wn, Tensor) else v.sum(-1) * wn
    return _finish(s, scaled(torch.sign(v), wn), lam, kappa)


def _generic_dual(phi: Smoothing, x: Tensor, d: Delta, wn, lam: Tensor, kappa):
    v, g = phi.both(x, d)
    s = (v * wn).sum(-1) if isinstance(wn, Tensor) else v.sum(-1) * wn
    return _finish(s, scaled(g, wn), lam, kappa)


class Smoothing(NamedTuple):
    """A named ReLU replacement: its value and derivative, elementwise.

    Both take ``(x, delta)`` with ``delta`` a float or a tensor that
    broadcasts against ``x``, and neither changes its arguments. ``both``
    returns the pair at once (sharing intermediate results where the
    smoothing defines it so); ``dual`` the dual form and its gradients.
    ``kernel(d, wn, kappa, dtype, device)``, where defined, returns the
    fewest-operations function ``(losses, lam) -> (value, gradient in
    the losses, gradient in lam)`` of 1-D losses, its constants made once.
    """

    name: str
    value: Callable[[Tensor, Delta], Tensor]
    derivative: Callable[[Tensor, Delta], Tensor]
    shared: Callable[[Tensor, Delta], tuple[Tensor, Tensor]] | None = None
    fused: Callable[..., tuple[Tensor, Tensor, Tensor]] | None = None
    kernel: Callable[..., Callable[[Tensor, Tensor], tuple]] | None = None

    def both(self, x: Tensor, d: Delta) -> tuple[Tensor, Tensor]:
        """``(value(x, d), derivative(x, d))``."""
        if self.shared is not None:
            return self.shared(x, d)
        return self.value(x, d), self.derivative(x, d)

    def dual(self, x: Tensor, d: Delta, wn, lam: Tensor, kappa):
        """The dual form at ``x = l - lam`` and its gradients, over the last
        axis: ``(kappa lam + sum_i wn_i value(x_i), wn_i derivative(x_i),
        kappa - sum_i wn_i derivative(x_i))``; ``wn`` and ``kappa`` are
        numbers or tensors that broadcast (``wn`` against ``x``, ``kappa``
        against ``lam``). In as few operations as the smoothing allows (they,
        not the arithmetic, cost on a small batch); ``x`` is overwritten."""
        if self.fused is not None:
            return self.fused(x, d, wn, lam, kappa)
        return _generic_dual(self, x, d, wn, lam, kappa)


#: Name -> smoothing; ``delta`` is the smoothing scale, or LeakyReLU's slope.
SMOOTHINGS: dict[str, Smoothing] = {
    "srelu": Smoothing(
        "srelu",
        _srelu_value,
        _srelu_derivative,
        _srelu_both,
        _srelu_dual,
        _srelu_kernel,
    ),
    "softplus": Smoothing("softplus", _softplus, _softplus_derivative),
    "elu": Smoothing("elu", _elu, _elu_derivative),
    "leaky_relu": Smoothing("leaky_relu", _leaky_relu, _leaky_relu_derivative),
}


#: The hard ReLU, for MATk and ATk (not a choice of ``stk``); the subgradient
#: at a tie ``x = 0`` is 0, as torch.relu's.
def _relu(x: Tensor, d: Delta) -> Tensor:
    if torch.compiler.is_compiling():
        # x [x > 0] with the indicator from sign (no boolean mask): the same
        # values and subgradient, and a backward that Inductor compiles to
        # about a fifth of the time of relu's on CPU.
        s = torch.sign(x)
        return x * ((s + s.abs()) * 0.5)
    return torch.relu(x)


def _relu_derivative(x: Tensor, d: Delta) -> Tensor:
    """The indicator ``x > 0``; in a graph (a second derivative), as
    torch.relu's backward makes it, so that the gradient keeps a graph (of
    zero derivative in ``x``) as torch's does."""
    if x.requires_grad and torch.is_grad_enabled():
        return torch.ops.aten.threshold_backward(torch.ones_like(x), x, 0.0)
    return (x > 0).to(x.dtype)


RELU = Smoothing(
    "relu",
    _relu,
    _relu_derivative,
    fused=_relu_dual,
    kernel=_relu_kernel,
)


def get_smoothing(name: str, delta: float) -> Smoothing:
    """Look up a smoothing by name and validate ``delta`` for it."""
    if torch.compiler.is_compiling():  # compiled once: no cache needed
        return _get_smoothing(name, delta)
    try:
        return _valid_smoothing(name, type(delta), delta)
    except TypeError:  # unhashable arguments: validate them uncached
        return _get_smoothing(name, delta)


@functools.lru_cache(maxsize=256)
def _valid_smoothing(name: str, kind: type, delta: float) -> Smoothing:
    # Keyed by the type too: delta=True and delta=1 hash alike. Errors are
    # raised again on every call (lru_cache stores results only).
    return _get_smoothing(name, delta)


def _get_smoothing(name: str, delta: float) -> Smoothing:
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
