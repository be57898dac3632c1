import math

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

import sktopk.losses._fused as fused
from sktopk.losses import SMOOTHINGS, srelu, srelu_grad, stk
from sktopk.losses._smoothing import get_smoothing

DELTAS = [1e-6, 1e-3, 0.01, 1.0, 10.0]
EPS32 = torch.finfo(torch.float32).eps


def _wide_grid(dtype=torch.float64):
    mags = np.logspace(-8, 6, 141)
    x = np.concatenate([-mags[::-1], [0.0], mags])
    return torch.tensor(x, dtype=dtype)


def _reference(x, d):
    """SReLU in exact-enough arithmetic (float64 on float64 input, long form)."""
    x = x.double()
    r = torch.sqrt(x * x + d * d)
    return torch.where(x >= 0, (x + r - d) / 2, (d * d / (r - x) - d) / 2)


@pytest.mark.parametrize("d", DELTAS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_srelu_at_zero_is_zero(d, dtype):
    assert srelu(torch.zeros(3, dtype=dtype), d).eq(0).all()
    assert srelu_grad(torch.zeros(1, dtype=dtype), d).item() == 0.5


@pytest.mark.parametrize("d", DELTAS)
def test_srelu_gap_to_relu_in_zero_half_delta(d):
    x = _wide_grid() * (d if d < 1 else 1)
    gap = torch.relu(x) - srelu(x, d)
    assert (gap >= 0).all()
    assert (gap < d / 2).all()


@pytest.mark.parametrize("d", [1e-3, 0.1, 1.0])
def test_srelu_derivative_in_open_unit_interval_and_convex(d):
    x = torch.linspace(-50 * d, 50 * d, 2001, dtype=torch.float64)
    g = srelu_grad(x, d)
    assert ((g > 0) & (g < 1)).all()
    assert (torch.diff(g) > 0).all()  # strictly increasing derivative: convex
    v = srelu(x, d)
    second = v[2:] - 2 * v[1:-1] + v[:-2]
    assert (second >= -1e-15).all()


def test_srelu_converges_uniformly_to_relu():
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    gaps = [float((torch.relu(x) - srelu(x, d)).abs().max()) for d in DELTAS[:4]]
    assert all(g <= d / 2 for g, d in zip(gaps, DELTAS[:4], strict=True))
    assert gaps == sorted(gaps)


@pytest.mark.parametrize("d", [1e-3, 0.3, 2.0])
def test_srelu_gradcheck_and_grad_matches_autograd(d):
    x = torch.linspace(-3, 3, 25, dtype=torch.float64).requires_grad_()
    assert gradcheck(lambda t: srelu(t, d), (x,))
    (auto,) = torch.autograd.grad(srelu(x, d).sum(), x)
    torch.testing.assert_close(auto, srelu_grad(x.detach(), d))


@pytest.mark.parametrize("d", DELTAS)
def test_srelu_float32_matches_float64(d):
    x32 = _wide_grid(torch.float32)
    ref = _reference(x32, d)
    err = (srelu(x32, d).double() - ref).abs()
    # Relative precision everywhere (the float64 reference itself is exact to
    # about 1e-16 * d in absolute terms, near 0).
    assert (err <= 4 * EPS32 * ref.abs() + 1e-12 * d).all(), float(err.max())


@pytest.mark.parametrize("d", DELTAS)
def test_srelu_grad_float32_keeps_relative_precision_in_tails(d):
    x32 = _wide_grid(torch.float32)
    x = x32.double()
    r = torch.sqrt(x * x + d * d)
    ref = torch.where(x >= 0, (1 + x / r) / 2, d * d / (2 * r * (r - x)))
    got = srelu_grad(x32, d).double()
    assert ((got - ref).abs() <= 8 * EPS32 * ref).all()


def test_srelu_handles_huge_inputs_in_float32():
    x = torch.tensor([-1e38, -1e30, 0.0, 1e30, 1e38])
    v = srelu(x, 0.01)
    torch.testing.assert_close(v, torch.tensor([-0.005, -0.005, 0.0, 1e30, 1e38]))
    assert torch.isfinite(srelu(torch.tensor([-3e38, 3e38]), 0.01)).all()


def test_srelu_relative_precision_near_zero():
    x = torch.tensor([-1e-9, 1e-9], dtype=torch.float32)
    torch.testing.assert_close(srelu(x, 1.0), x / 2, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", SMOOTHINGS)
@pytest.mark.parametrize("d", [0.05, 0.5])
def test_smoothing_grad_matches_autograd_and_is_monotone(name, d):
    phi = get_smoothing(name, d)
    x = torch.linspace(-4, 4, 80, dtype=torch.float64).requires_grad_()
    (auto,) = torch.autograd.grad(phi.value(x, d).sum(), x)
    torch.testing.assert_close(auto, phi.derivative(x.detach(), d))
    assert ((auto >= 0) & (auto <= 1)).all()
    assert gradcheck(lambda t: phi.value(t, d), (x,))


# The largest gap |phi_d(x) - relu(x)| over x in [-3, 3]: SReLU approaches
# relu - d/2 in both tails (relu - srelu = d^2 / (|x| + d + r) ... -> d/2,
# r = sqrt(x^2 + d^2)); SoftPlus is d ln 2 above relu at 0, its largest gap;
# ELU tends to -d on the left; LeakyReLU is d |x| below: 3 d at x = -3
# (unbounded on the real line).
MAX_GAP = {"srelu": 0.5, "softplus": math.log(2), "elu": 1.0, "leaky_relu": 3.0}


@pytest.mark.parametrize("name", SMOOTHINGS)
def test_smoothing_tends_to_relu(name):
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    x[300] = 0.0  # exactly
    gaps = []
    for d in (0.1, 0.01, 0.001):
        gap = float((get_smoothing(name, d).value(x, d) - torch.relu(x)).abs().max())
        # at most the bound, and within 2% of it on this grid (reached in
        # the tails: 1 - exp(-3/d) for ELU, 1 - d / (3 + sqrt(9 + d^2)) for
        # SReLU)
        bound = MAX_GAP[name] * d
        assert 0.98 * bound <= gap <= bound * (1 + 1e-12)
        gaps.append(gap)
    assert gaps == sorted(gaps, reverse=True)


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, math.nan, math.inf, True, "0.1", None])
def test_bad_delta_raises(bad):
    with pytest.raises(
        ValueError, match=r"delta must be a finite float > 0; got delta="
    ):
        srelu(torch.zeros(2), bad)


def test_leaky_relu_slope_must_be_below_one():
    with pytest.raises(ValueError, match=r"delta=1\.5 .*negative slope, in \(0, 1\)"):
        get_smoothing("leaky_relu", 1.5)


def test_unknown_smoothing_lists_valid_names():
    with pytest.raises(ValueError, match=r"smoothing='huber' is unknown.*'srelu'"):
        get_smoothing("huber", 0.1)


def test_srelu_rejects_integer_tensor():
    with pytest.raises(ValueError, match="x must be a floating-point tensor; got"):
        srelu(torch.arange(3), 0.1)


# --- infinities: the limits of the definition ------------------------------------


@pytest.mark.parametrize("d", DELTAS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_srelu_at_the_infinities_takes_its_limits(d, dtype):
    # (x + sqrt(x^2 + d^2) - d) / 2 -> -d/2 as x -> -inf, and -> inf as x -> inf;
    # its derivative tends to 0 and 1.
    x = torch.tensor([-math.inf, math.inf], dtype=dtype)
    v, g = srelu(x, d), srelu_grad(x, d)
    assert v[1].item() == math.inf
    assert v[0].item() == pytest.approx(-d / 2, rel=4 * EPS32)
    assert g.tolist() == [0.0, 1.0]


@pytest.mark.parametrize("d", [1e-3, 1.0])
def test_srelu_sum_forms_at_the_infinities(d):
    # The forms behind stk: a finite value within d/2 of the limit at -inf,
    # inf at +inf, derivatives 0 and 1, and the dual form's gradients finite.
    phi = get_smoothing("srelu", d)
    x = torch.tensor([-math.inf, 0.5, math.inf], dtype=torch.float64)
    value, derivative = phi.both(x, d)
    torch.testing.assert_close(value, phi.value(x, d))
    assert value[2].item() == math.inf and -d / 2 <= value[0].item() <= 0
    assert derivative.tolist() == [0.0, srelu_grad(x[1:2], d).item(), 1.0]
    dual, g, g_lam = phi.dual(
        x.clone(), d, 1 / 3, torch.tensor(0.0, dtype=x.dtype), 0.5
    )
    assert dual.item() == math.inf
    torch.testing.assert_close(g, derivative / 3)
    assert math.isfinite(g_lam.item())


def _derivative(name, x, d):
    """The smoothings' derivatives from their definitions, float64."""
    x = x.double()
    if name == "srelu":
        return (1 + x / torch.sqrt(x * x + d * d)) / 2
    if name == "softplus":
        return torch.sigmoid(x / d)
    if name == "elu":
        return torch.where(x > 0, 1.0, torch.exp(x.clamp(max=0) / d))
    return torch.where(x > 0, 1.0, torch.full_like(x, d))  # leaky_relu


@pytest.mark.parametrize("n", [5, 2**15 + 3])  # one pass, streamed
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", SMOOTHINGS)
def test_stk_of_an_infinite_loss_is_infinite_with_finite_gradients(
    name, dtype, n, kernels
):
    # As matk: the value is inf; the infinite loss has derivative 1 (times
    # 1/n), the others their smoothing's, and lam gets k/n minus their sum.
    d, lam0, k = 0.05, 0.5, 2
    g = torch.Generator().manual_seed(0)
    losses = torch.rand(n, generator=g, dtype=dtype)
    losses[1] = math.inf
    losses.requires_grad_()
    lam = torch.tensor(lam0, dtype=dtype, requires_grad=True)
    value = stk(losses, lam, k, d, name)
    value.backward()
    assert value.item() == math.inf
    want = _derivative(name, losses.detach() - lam0, d)
    want[1] = 1.0
    tol = {"rtol": 1e-5, "atol": 1e-9} if dtype == torch.float32 else {}
    torch.testing.assert_close(losses.grad.double(), want / n, **tol)
    torch.testing.assert_close(lam.grad.double(), k / n - want.sum() / n, **tol)


# --- STk of every smoothing against its definition -------------------------------


def _phi(name, x, d):
    """The smoothings of the ReLU, as the STk paper defines them, float64."""
    if name == "srelu":
        return (x + torch.sqrt(x * x + d * d) - d) / 2
    if name == "softplus":
        return d * torch.log1p(torch.exp(x / d))
    if name == "elu":
        return torch.where(x > 0, x, d * (torch.exp(x.clamp(max=0) / d) - 1))
    return torch.where(x > 0, x, d * x)  # leaky_relu: slope d below 0


def _stk_definition(name, losses, lam, k, d, weight=None):
    """``sum_i w_i phi(l_i - lam) / W + kappa lam`` over the last axis, with
    ``kappa = k / W`` for an int k (``W = n`` without weights), else ``k``."""
    w = torch.ones_like(losses) if weight is None else weight
    total = w.sum(-1)
    kappa = k / total if isinstance(k, int) else k
    v = _phi(name, losses - lam.unsqueeze(-1), d)
    return (w * v).sum(-1) / total + kappa * lam


def _stk_cases(rng, n, rows):
    shape = (rows, n) if rows else (n,)
    losses = torch.tensor(rng.uniform(0, 3, shape), dtype=torch.float64)
    lam = torch.tensor(rng.uniform(0.8, 1.6, shape[:-1]), dtype=torch.float64)
    weight = torch.tensor(rng.integers(0, 4, shape), dtype=torch.float64)
    weight[..., 0] = 1.0  # a positive sum
    return losses, lam, weight


def _both_value_and_grads(fn, losses, lam):
    x, t = losses.clone().requires_grad_(), lam.clone().requires_grad_()
    value = fn(x, t)
    return (value.detach(), *torch.autograd.grad(value.sum(), (x, t)))


@pytest.mark.parametrize("name", SMOOTHINGS)
@pytest.mark.parametrize("d", [0.05, 0.5])
@pytest.mark.parametrize("k", [3, 0.3])
@pytest.mark.parametrize(
    "path", ["one pass", "weighted", "rows", "weighted rows", "streamed"]
)
def test_stk_matches_its_definition(rng, name, d, k, path, kernels, monkeypatch):
    # Values and gradients, float64, on every path (one pass, through the
    # compiled loop or the tensor kernels; weighted; batched rows; streamed).
    if path == "streamed":
        monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    rows = 3 if "rows" in path else 0
    losses, lam, w = _stk_cases(rng, 11, rows)
    w = w if "weighted" in path else None
    dim = 1 if rows else None

    def got(x, t):
        return stk(x, t, k, d, name, w, dim=dim)

    def want(x, t):
        return _stk_definition(name, x, t, k, d, w)

    for a, b in zip(
        _both_value_and_grads(got, losses, lam),
        _both_value_and_grads(want, losses, lam),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", SMOOTHINGS)
def test_stk_float32_matches_its_definition(rng, name, kernels):
    # The training case: float32 losses, a float32 threshold (the compiled
    # loop for SReLU where numba is installed).
    losses, lam, _ = _stk_cases(rng, 64, 0)
    got = _both_value_and_grads(
        lambda x, t: stk(x, t, 0.2, 0.05, name), losses.float(), lam.float()
    )
    want = _both_value_and_grads(
        lambda x, t: _stk_definition(name, x, t, 0.2, 0.05), losses, lam
    )
    for a, b in zip(got, want, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a.double(), b, rtol=2e-6, atol=1e-7)
