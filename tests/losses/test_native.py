"""The compiled (numba) kernels of ``stk`` and ``matk`` against float64
references and against the tensor kernels they replace, and the switch that
turns them off."""

import math
import os
import subprocess
import sys

import pytest
import torch

import sktopk.losses._aggregate as aggregate
import sktopk.losses._native as native
from sktopk.losses import matk, srelu, srelu_grad, stk

pytest.importorskip("numba")
pytestmark = pytest.mark.skipif(
    not native.native_available(), reason="compiled kernels off (SKTOPK_NUMBA=0)"
)

F64 = torch.float64


def _value_and_grads(fn, losses, lam):
    x, t = losses.clone().requires_grad_(), lam.clone().requires_grad_()
    v = fn(x, t)
    return (v.detach(), *torch.autograd.grad(v, (x, t)))


def _reference(losses, lam, k, delta):
    """STk in float64 from the public SReLU and its derivative."""
    x = losses.double() - float(lam)
    n = losses.numel()
    value = srelu(x, delta).mean() + k / n * float(lam)
    g = srelu_grad(x, delta) / n
    return value, g, k / n - g.sum()


def test_plans_use_the_compiled_kernel_only_where_it_applies(monkeypatch):
    aggregate._cached_plan.cache_clear()
    ls = torch.rand(16)
    lam = torch.tensor(0.5)
    # float32 on CPU, srelu and relu: compiled (a closure of native_kernel)
    assert (
        "native_kernel" in aggregate._plan(ls, lam, 4, "srelu", 0.01).run.__qualname__
    )
    assert "native_kernel" in aggregate._plan(ls, lam, 4, None, 0.0).run.__qualname__
    for args in [
        (ls.double(), lam.double(), 4, "srelu", 0.01),  # float64
        (ls, lam, 4, "srelu", 1e200),  # delta beyond the float64 square
    ]:
        assert "native_kernel" not in aggregate._plan(*args).run.__qualname__
    monkeypatch.setitem(native._STATE, "on", False)
    aggregate._cached_plan.cache_clear()
    assert not native.native_available()
    assert (
        "native_kernel"
        not in aggregate._plan(ls, lam, 4, "srelu", 0.01).run.__qualname__
    )
    aggregate._cached_plan.cache_clear()


@pytest.mark.parametrize("n", [1, 7, 256, 4096])
@pytest.mark.parametrize("delta", [1e-6, 1e-2, 1.0, 1e6, 1e30])
def test_stk_matches_float64_reference(kernels, n, delta):
    g = torch.Generator().manual_seed(n)
    ls = torch.randn(n, generator=g) * 3
    lam = torch.tensor(0.25)
    k = max(1, n // 4)
    got = _value_and_grads(lambda x, t: stk(x, t, k, delta), ls, lam)
    want = _reference(ls, lam, k, delta)
    scale = want[0].abs().item() + 1.0
    assert abs(got[0].double() - want[0]).item() <= 2e-6 * scale
    torch.testing.assert_close(got[1].double(), want[1], rtol=1e-5, atol=1e-7 / n)
    torch.testing.assert_close(got[2].double(), want[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("delta", [1e-6, 1e-2, 1e6])
def test_stk_far_tail_keeps_relative_precision(delta):
    """Far below lam the gradient is ``wn delta^2 / (4 x^2)``: the compiled
    kernel keeps it to float32 rounding (no cancellation in ``1 + x / r``)."""
    aggregate._cached_plan.cache_clear()
    ls = torch.tensor([-1e4, -1e7, -3e38, 1.0, 2.0])
    lam = torch.tensor(0.0)
    _, g, _ = _value_and_grads(lambda x, t: stk(x, t, 2, delta), ls, lam)
    want = srelu_grad(ls.double(), delta) / 5
    torch.testing.assert_close(g.double(), want, rtol=1e-6, atol=1e-45)


def test_non_finite_losses_behave_alike(kernels):
    ls = torch.tensor([0.5, -math.inf, 2.0, 1.5])
    lam = torch.tensor(1.0)
    v, g, g_lam = _value_and_grads(lambda x, t: stk(x, t, 2, 0.01), ls, lam)
    assert torch.isfinite(v) and g[1] == 0 and torch.isfinite(g_lam)
    v, g, _ = _value_and_grads(lambda x, t: matk(x, t, 2), ls, lam)
    assert v.item() == pytest.approx((0 + 0 + 1.0 + 0.5) / 4 + 0.5) and g[1] == 0
    nan = torch.tensor([0.5, math.nan, 2.0])
    v, g, g_lam = _value_and_grads(lambda x, t: stk(x, t, 1), nan, lam)
    assert v.isnan() and g[1].isnan() and g_lam.isnan() and torch.isfinite(g[0])
    # The ReLU's gradient at NaN is 0, as torch.relu's; the value is NaN.
    v, g, g_lam = _value_and_grads(lambda x, t: matk(x, t, 1), nan, lam)
    assert v.isnan() and g.tolist() == torch.tensor([0.0, 0.0, 1 / 3]).tolist()
    assert g_lam.abs() < 1e-7


@pytest.mark.parametrize("n", [1, 5, 300])
def test_compiled_and_tensor_kernels_agree(n, monkeypatch):
    g = torch.Generator().manual_seed(3)
    ls = torch.rand(n, generator=g) * 4 - 2
    lam = torch.tensor(0.1)
    fns = [
        lambda x, t: stk(x, t, 0.3, 0.05),
        lambda x, t: matk(x, t, 0.3),
        lambda x, t: stk(x, t, 1, 2.0, "srelu"),
    ]
    aggregate._cached_plan.cache_clear()
    compiled = [_value_and_grads(fn, ls, lam) for fn in fns]
    monkeypatch.setitem(native._STATE, "on", False)
    aggregate._cached_plan.cache_clear()
    tensor = [_value_and_grads(fn, ls, lam) for fn in fns]
    aggregate._cached_plan.cache_clear()
    for a, b in zip(compiled, tensor, strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=2e-6, atol=1e-7)


def test_second_backward_and_double_backward_use_the_same_numbers():
    aggregate._cached_plan.cache_clear()
    ls = (torch.rand(20) * 3).requires_grad_()
    lam = torch.tensor(1.2, requires_grad=True)
    v = stk(ls, lam, 5, 0.1)
    (g1,) = torch.autograd.grad(v, ls, retain_graph=True)
    (g2,) = torch.autograd.grad(v, ls, torch.tensor(2.0), retain_graph=True)
    torch.testing.assert_close(g2, 2 * g1)
    (g3,) = torch.autograd.grad(v, ls, create_graph=True)
    torch.testing.assert_close(g3, g1)
    assert g3.requires_grad


def test_the_environment_variable_turns_the_kernels_off():
    code = "import sktopk.losses._native as n; print(n.native_available())"
    for value, want in [("0", "False"), ("1", "True")]:
        env = {**os.environ, "SKTOPK_NUMBA": value}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True
        )
        assert out.stdout.strip() == want, out.stderr
