"""Compiled one-pass kernels of the dual form (optional: numba).

On a training batch the cost of ``stk`` and ``matk`` is the number of tensor
operations, about ten, not their arithmetic. With numba installed (the
``fast`` extra; or ``pip install numba``), small 1-D float32 batches on
CPU go through one compiled loop instead, which makes the value and both
gradients at once (:func:`native_kernel`). It computes in float64 and keeps
full relative precision in the far tail (the SReLU's ``r + x`` is taken as
``delta^2 / (r - x)`` for ``x < 0``), so its results agree with the tensor
kernels to float32 rounding, or are more accurate where a float32 intermediate
of the tensor kernels overflows.

Without numba, for other dtypes or devices, or with ``SKTOPK_NUMBA=0`` in the
environment when sktopk is imported, the tensor kernels of :mod:`._smoothing`
run instead. A kernel
is compiled the first time it is needed, for each memory layout of its
arrays (under a second here; about ten seconds for each of the smooth top-k
SVM's three kernels; once per machine where numba can cache it on disk).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable

import torch
from torch import Tensor

_ENV_ON = os.environ.get("SKTOPK_NUMBA", "1") != "0"  # read once, at import
numba = None
if _ENV_ON:  # pragma: no branch
    try:
        import numba
    except ImportError:  # pragma: no cover - depends on the environment
        numba = None

__all__ = ["describe", "jit", "native_available", "native_kernel"]

# Beyond this delta, x^2 + delta^2 could overflow float64 in the SReLU kernel;
# below the least, delta^2 would underflow (0 / 0 at a tie x = 0): the kernel
# takes the least instead (as the tensor kernels floor delta at float32's
# smallest normal number, a change far below float32's resolution).
_DELTA_MAX = 1e150
_DELTA_MIN = math.sqrt(sys.float_info.min)
# Reassociation vectorises the sums; contraction makes fused multiply-adds.
# No flag assumes finite values: -inf losses and NaN behave as in the tensor
# kernels. numpy's error model (a division by zero gives inf or NaN, no check
# that raises) lets the loops vectorise.
_FLAGS = {"reassoc", "contract", "nsz"}
_LOWEST32 = float(torch.finfo(torch.float32).min)
_HIGHEST32 = -_LOWEST32


# Read once, at import: the small-batch paths ask at every call.
_STATE = {"on": numba is not None}


def describe() -> str:
    """One line for benchmark headers: whether the compiled kernels run."""
    if native_available():
        return f"compiled kernels on (numba {numba.__version__})"
    if numba is None and _ENV_ON:
        return "compiled kernels off (numba not installed)"
    return "compiled kernels off"


def native_available() -> bool:
    """Whether the compiled kernels are used: numba importable, and
    ``SKTOPK_NUMBA`` not ``0`` when sktopk was imported."""
    return _STATE["on"]


def _srelu_loop(losses, lam, d, c, g):  # pragma: no cover - compiled
    """``(sum_i c x_i (n_i + d) / (r_i + d), sum_i g_i)`` with ``g_i = c n_i /
    r_i``, ``x = l - lam``, ``r = hypot(x, d)`` and ``n = r + x`` (``d^2 / (r -
    x)`` for ``x < 0``: no cancellation)."""
    s = 0.0
    gs = 0.0
    dd = d * d
    for i in range(losses.shape[0]):
        x = losses[i] - lam
        if x < _LOWEST32:  # -inf: the lowest float32, as the tensor kernels
            x = _LOWEST32
        # +inf: the ratios at the largest float32 (derivative 1), the value inf
        xc = min(x, _HIGHEST32)
        r = math.sqrt(xc * xc + dd)
        n = r + xc if xc >= 0.0 else dd / (r - xc)
        gi = c * n / r
        s += c * x * (n + d) / (r + d)
        g[i] = gi
        gs += gi
    return s, gs


def _relu_loop(losses, lam, c, g):  # pragma: no cover - compiled
    """``(sum_i c max(x_i, 0), sum_i g_i)`` with ``g_i = c [x_i > 0]``,
    ``x = l - lam`` (a NaN loss gives a NaN value and a zero gradient, as in
    the tensor kernel)."""
    s = 0.0
    gs = 0.0
    for i in range(losses.shape[0]):
        x = losses[i] - lam
        if x > 0.0:
            gi = c
        else:  # the subgradient 0 at 0, and for NaN (as torch.relu's)
            gi = 0.0
            if x <= 0.0:
                x = 0.0  # NaN stays: the value is NaN
        s += c * x
        g[i] = gi
        gs += gi
    return s, gs


def jit(
    fn: Callable | None = None, *, inline: bool = False, refcounts: bool = True
) -> Callable:
    """``fn`` compiled by numba when first called (cached on disk where a
    cache folder is writable; numba keys the cache by the source file, so a
    change of the flags above needs the caches of every kernel module
    cleared), with the flags above; ``fn`` itself without numba (then it is
    never called).
    ``inline=True`` for helpers: inlined where they are called (array
    arguments passed to a call cost more than a short loop).
    ``refcounts=False`` for a loop that only works in arrays its caller made
    and holds (no allocation, nothing returned but scalars): compiled without
    numba's reference counts, whose atomic increments and decrements, one
    pair for each array a helper or a slice takes, would otherwise cost more
    than the arithmetic of a short row."""
    if fn is None:
        return lambda f: jit(f, inline=inline, refcounts=refcounts)
    if numba is None:
        return fn
    flags = dict(nogil=True, fastmath=_FLAGS, error_model="numpy")
    if inline:
        flags["inline"] = "always"
    if not refcounts and _knows_nrt_switch():
        flags["_nrt"] = False  # numba's switch for its runtime's references
    try:
        return numba.njit(cache=True, **flags)(fn)
    except RuntimeError:  # no writable cache folder: compile in each process
        return numba.njit(cache=False, **flags)(fn)


def _knows_nrt_switch() -> bool:
    """Whether numba takes the ``_nrt`` option (private, though kept since
    2015): an option it does not know would fail at the first call."""
    options = getattr(getattr(numba, "core", None), "options", None)
    return "_nrt" in vars(getattr(options, "DefaultOptions", object))


_srelu_jit = jit(_srelu_loop)
_relu_jit = jit(_relu_loop)


def native_kernel(
    name: str, d: float, wn: float, kappa: float, dtype: torch.dtype, device
) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]] | None:
    """The compiled ``(losses, lam) -> (value, gradient in the losses,
    gradient in lam)`` of the dual form ``sum_i wn phi(l_i - lam) + kappa
    lam`` of 1-D float32 losses on CPU, for the smoothing ``name`` ("srelu"
    or "relu"); None where it does not apply (then the tensor kernel runs)."""
    if (
        not native_available()
        or name not in ("srelu", "relu")
        or dtype != torch.float32
        or torch.device(device).type != "cpu"
        or (name == "srelu" and not 0.0 < d <= _DELTA_MAX)
    ):
        return None
    loop = _srelu_jit if name == "srelu" else _relu_jit
    args = (max(float(d), _DELTA_MIN), 0.5 * wn) if name == "srelu" else (float(wn),)
    kappa = float(kappa)

    def run(losses: Tensor, lam: Tensor):
        g = torch.empty_like(losses, requires_grad=False)
        lam_v = lam.item()
        s, gs = loop(losses.detach().numpy(), lam_v, *args, g.numpy())
        value = torch.scalar_tensor(s + kappa * lam_v, dtype=dtype, device="cpu")
        return value, g, torch.scalar_tensor(kappa - gs, dtype=dtype, device="cpu")

    return run
