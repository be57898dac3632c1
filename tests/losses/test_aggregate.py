import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from torch.autograd import gradcheck

import sktopk.losses._aggregate as aggregate
import sktopk.losses._aggregate_defs as defs
import sktopk.losses._fused as fused
from sktopk.losses import SMOOTHINGS, atk, average, kth_largest, matk, maximum, stk
from sktopk.losses import srelu as srelu_fn

F64 = torch.float64


def _distinct(rng, n, scale=3.0):
    """Tie-free losses: a random permutation of well-separated values."""
    values = np.sort(rng.uniform(0, scale, n))
    values += np.arange(n) * 0.05  # keep gaps >= 0.05
    return torch.tensor(rng.permutation(values), dtype=F64)


def _brute_atk(ls, k):
    return max(np.mean(c) for c in itertools.combinations(ls.tolist(), k))


def _kth(ls, k):
    return float(torch.sort(ls, descending=True).values[k - 1])


# --- ATk -------------------------------------------------------------------------


@pytest.fixture(params=["topk", "selection"])
def atk_path(request, monkeypatch):
    """Run a test on both ATk paths: small inputs use torch.topk."""
    if request.param == "selection":
        monkeypatch.setattr(aggregate, "_SMALL", 0)
    return request.param


@pytest.mark.parametrize("n", [1, 2, 5, 8, 10])
def test_atk_equals_brute_force_over_all_k_subsets(rng, n, device, atk_path):
    ls = _distinct(rng, n)
    for k in range(1, n + 1):
        got = atk(ls.to(device), k).item()
        assert got == pytest.approx(_brute_atk(ls, k), rel=1e-12, abs=1e-12)


def test_atk_gradient_is_one_over_k_on_the_top_k(rng, atk_path):
    ls = _distinct(rng, 9).requires_grad_()
    atk(ls, 4).backward()
    top = torch.topk(ls.detach(), 4).indices
    want = torch.zeros(9, dtype=F64)
    want[top] = 0.25
    torch.testing.assert_close(ls.grad, want)


def test_atk_with_ties_gives_a_subgradient(rng, atk_path):
    ls = torch.tensor([3.0, 1.0, 2.0, 2.0, 2.0, 0.5], dtype=F64, requires_grad=True)
    value = atk(ls, 3)
    assert value.item() == pytest.approx((3 + 2 + 2) / 3)
    value.backward()
    assert ls.grad.sum().item() == pytest.approx(1.0)
    assert ls.grad[0].item() == pytest.approx(1 / 3)
    assert (ls.grad[[1, 5]] == 0).all() and (ls.grad >= 0).all()


@pytest.mark.parametrize("k, count", [(0.1, 1), (0.3, 3), (0.25, 3), (1.0, 10)])
def test_atk_fraction_takes_ceil_k_n(rng, k, count, atk_path):
    ls = _distinct(rng, 10)
    assert atk(ls, k).item() == pytest.approx(_brute_atk(ls, count))


def test_atk_limits_are_average_and_maximum(rng):
    ls = _distinct(rng, 7)
    assert atk(ls, 7).item() == pytest.approx(average(ls).item())
    assert atk(ls, 1.0).item() == pytest.approx(average(ls).item())
    assert atk(ls, 1).item() == maximum(ls).item()


def test_kth_largest(rng):
    ls = _distinct(rng, 10)
    assert kth_largest(ls, 3).item() == _kth(ls, 3)
    assert kth_largest(ls, 0.25).item() == _kth(ls, 3)


# --- MATk and STk against ATk ---------------------------------------------------


def _objective(fn, ls, k, **kw):
    return lambda lam: fn(ls, torch.tensor(lam, dtype=F64), k, **kw).item()


@pytest.mark.parametrize("n, k", [(6, 1), (6, 2), (8, 5), (10, 10), (10, 3)])
def test_matk_minimum_is_k_over_n_atk_attained_at_kth_largest(rng, n, k):
    ls = _distinct(rng, n)
    f = _objective(matk, ls, k)
    target = k / n * _brute_atk(ls, k)
    res = minimize_scalar(
        f, bounds=(-1.0, 10.0), method="bounded", options={"xatol": 1e-10}
    )
    assert res.fun == pytest.approx(target, abs=1e-8)
    assert f(_kth(ls, k)) == pytest.approx(target, rel=1e-12)
    grid = np.linspace(-1.0, 10.0, 2001)
    assert min(f(t) for t in grid) >= target - 1e-12


@pytest.mark.parametrize("n, k", [(6, 2), (9, 4), (10, 10)])
def test_matk_minimiser_set_is_between_kplus1th_and_kth(rng, n, k):
    ls = _distinct(rng, n)
    lam = torch.tensor(_kth(ls, k) - 1e-3, dtype=F64, requires_grad=True)
    matk(ls, lam, k).backward()
    assert lam.grad.item() == pytest.approx(0.0, abs=1e-12)
    lam = torch.tensor(_kth(ls, k) + 1e-3, dtype=F64, requires_grad=True)
    matk(ls, lam, k).backward()
    assert lam.grad.item() == pytest.approx(1 / n)  # k/n - (k-1)/n


@pytest.mark.parametrize("n, k", [(6, 2), (8, 5), (10, 1)])
@pytest.mark.parametrize("d", [0.3, 0.05])
def test_stk_minimum_within_half_delta_below_matk(rng, n, k, d):
    ls = _distinct(rng, n)
    matk_min = k / n * _brute_atk(ls, k)
    res = minimize_scalar(
        _objective(stk, ls, k, delta=d),
        bounds=(-1.0, 10.0),
        method="bounded",
        options={"xatol": 1e-10},
    )
    assert matk_min - d / 2 <= res.fun <= matk_min + 1e-9
    # the STk optimum has soft count k, its lam between l_[k+1] and l_[k]
    lo = _kth(ls, k + 1) if k < n else -np.inf
    assert lo - 2 * d <= res.x <= _kth(ls, k) + 2 * d


def test_stk_minimum_converges_to_matk_as_delta_vanishes(rng):
    ls = _distinct(rng, 8)
    target = 3 / 8 * _brute_atk(ls, 3)
    gaps = []
    for d in (1.0, 0.1, 0.01, 0.001):
        res = minimize_scalar(
            _objective(stk, ls, 3, delta=d),
            bounds=(-1, 10),
            method="bounded",
            options={"xatol": 1e-12},
        )
        gaps.append(target - res.fun)
    assert all(
        0 <= g < d / 2 + 1e-9 for g, d in zip(gaps, (1, 0.1, 0.01, 0.001), strict=True)
    )
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3


@pytest.mark.parametrize("lam", [-1.0, 0.0, 0.7, 2.0, 5.0])
def test_matk_minus_stk_in_zero_half_delta_for_every_lam(rng, lam):
    ls = _distinct(rng, 12)
    for d in (1e-3, 0.1, 2.0):
        gap = matk(ls, lam, 4).item() - stk(ls, lam, 4, delta=d).item()
        assert 0 <= gap < d / 2


def test_matk_and_stk_k_conventions(rng):
    ls = _distinct(rng, 10)
    # an int k counts losses, a fraction is kappa itself (no rounding)
    assert matk(ls, 1.0, 3).item() == pytest.approx(matk(ls, 1.0, 0.3).item())
    v = matk(ls, 1.0, 0.35).item()
    assert v == pytest.approx(torch.relu(ls - 1).mean().item() + 0.35)


# --- gradients ------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
def test_gradcheck_atk_matk_stk(rng, weighted, atk_path):
    ls = _distinct(rng, 9).requires_grad_()
    w = torch.tensor(rng.uniform(0.5, 2, 9), dtype=F64) if weighted else None
    lam = torch.tensor(1.234, dtype=F64, requires_grad=True)  # tie-free
    assert gradcheck(lambda x: atk(x, 4, weight=w), (ls,))
    assert gradcheck(lambda x, t: matk(x, t, 4, weight=w), (ls, lam))
    for name in SMOOTHINGS:
        d = 0.05 if name == "leaky_relu" else 0.3
        assert gradcheck(
            lambda x, t, s=name, d=d: stk(x, t, 0.4, d, s, weight=w), (ls, lam)
        )


def _plain(ls, lam, kappa, d, w=None):
    v = srelu_fn(ls - lam, d)
    w = torch.ones_like(ls) if w is None else w
    return (w * v).sum() / w.sum() + kappa * lam


@pytest.mark.parametrize("n", [5, 70_001])  # one chunk and several
@pytest.mark.parametrize("weighted", [False, True])
def test_fused_stk_matches_plain_autograd(rng, device, n, weighted):
    ls = torch.tensor(rng.exponential(1.0, n), dtype=F64, device=device)
    w = torch.tensor(rng.integers(0, 3, n), dtype=F64, device=device)
    w = w if weighted else None
    lam = torch.tensor(0.8, dtype=F64, device=device)
    got = _value_and_grads(lambda x, t: stk(x, t, 0.2, 0.05, weight=w), ls, lam)
    want = _value_and_grads(lambda x, t: _plain(x, t, 0.2, 0.05, w), ls, lam)
    for g, h in zip(got, want, strict=True):
        torch.testing.assert_close(g, h)


def _value_and_grads(fn, ls, lam):
    ls, lam = ls.clone().requires_grad_(), lam.clone().requires_grad_()
    v = fn(ls, lam)
    return (v.detach(), *torch.autograd.grad(v, (ls, lam)))


@pytest.mark.slow
def test_compiled_kernels_match_chunked(rng, monkeypatch):
    ls = torch.tensor(rng.exponential(1.0, 5000), dtype=torch.float32)
    w = torch.rand(5000)
    lam = torch.tensor(0.9)
    cases = [
        lambda x, t: stk(x, t, 0.1),
        lambda x, t: matk(x, t, 0.1),
        lambda x, t: stk(x, t, 50, weight=w),
        lambda x, t: atk(x, 0.2) + 0 * t,
    ]
    want = [_value_and_grads(f, ls, lam) for f in cases]
    monkeypatch.setattr(fused, "_COMPILE_MIN_SIZE", 0)
    monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    got = [_value_and_grads(f, ls, lam) for f in cases]
    assert not fused._compile_state["failed"]
    for g, h in zip(got, want, strict=True):
        for a, b in zip(g, h, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_compiled_kernel_of_large_inputs_matches_eager(rng, monkeypatch):
    # The kernel torch.compile builds from 2**20 losses on (_sum_whole and
    # _grad_whole), forced on a small input: against the one-pass eager form,
    # at a tie with a delta that underflows too. The first compilation in a
    # process takes a few seconds.
    ls = torch.tensor(rng.exponential(1.0, 3000), dtype=torch.float32)
    ls[:3] = 0.9
    lam = torch.tensor(0.9)
    cases = [
        lambda x, t: stk(x, t, 0.1),
        lambda x, t: stk(x, t, 7, 1e-46),
        lambda x, t: stk(x, t, 0.3, 0.5),
    ]
    want = [_value_and_grads(f, ls, lam) for f in cases]
    compiled = []
    monkeypatch.setattr(fused, "_COMPILE_MIN_SIZE", 0)
    monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    monkeypatch.setattr(fused, "_compile_state", {"failed": False})
    monkeypatch.delenv("SKTOPK_COMPILE", raising=False)
    real = fused._compiled
    monkeypatch.setattr(
        fused, "_compiled", lambda fn, phi: compiled.append(fn) or real(fn, phi)
    )
    got = [_value_and_grads(f, ls, lam) for f in cases]
    assert not fused._compile_state["failed"]
    assert {fn.__name__ for fn in compiled} == {"_sum_whole", "_grad_whole"}
    for g, h in zip(got, want, strict=True):
        assert all(torch.isfinite(a).all() for a in g)
        # The gradient in the losses is of the order of 1/n: a few float32
        # rounding errors of that in absolute terms.
        for a, b, atol in zip(g, h, (1e-7, 1e-9, 1e-7), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=atol)


def test_compilation_is_never_used_on_small_inputs(monkeypatch):
    def forbidden(*args):
        raise AssertionError("compiled kernel called on a small input")

    monkeypatch.setattr(fused, "_compiled", forbidden)
    assert fused._COMPILE_MIN_SIZE >= 1 << 16
    x = torch.rand(5000, requires_grad=True)
    (stk(x, 0.5, 0.1) + matk(x, 0.5, 0.1) + atk(x, 0.1)).backward()


def test_failed_compilation_falls_back_to_chunks(monkeypatch, rng):
    ls = torch.tensor(rng.exponential(1.0, 3000), dtype=torch.float32)
    lam = torch.tensor(0.9)
    want = _value_and_grads(lambda x, t: stk(x, t, 0.1), ls, lam)

    def broken(kernel, **kwargs):
        raise RuntimeError("no compiler")

    monkeypatch.setattr(fused, "_compile_state", {"failed": False})
    monkeypatch.setattr(fused, "_COMPILE_MIN_SIZE", 0)
    monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(RuntimeWarning, match="using the chunked implementation"):
        got = _value_and_grads(lambda x, t: stk(x, t, 0.1), ls, lam)
    assert fused._compile_state["failed"]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_compilation_can_be_disabled(monkeypatch):
    monkeypatch.setenv("SKTOPK_COMPILE", "0")
    monkeypatch.setattr(fused, "_COMPILE_MIN_SIZE", 0)
    assert not fused._use_compiled(torch.rand(10))


# --- precision ------------------------------------------------------------------


@pytest.mark.parametrize("d", [1e-6, 1e-2, 10.0])
@pytest.mark.parametrize("lam", [0.0, 3e5, 1e6])
def test_stk_float32_matches_float64(rng, d, lam):
    # x = ls - lam covers [-1e6, 1e6]
    l32 = torch.tensor(rng.uniform(0, 1e6, 20_000), dtype=torch.float32)
    l32[:50] = torch.tensor(rng.uniform(0, 1e-3, 50))
    lam32 = torch.tensor(lam, dtype=torch.float32)
    v32, g32, gl32 = _value_and_grads(lambda x, t: stk(x, t, 0.1, d), l32, lam32)
    v64, g64, gl64 = _value_and_grads(
        lambda x, t: stk(x, t, 0.1, d), l32.double(), lam32.double()
    )
    scale = l32.double().abs().mean() + lam  # size of the terms summed
    assert abs(v32.double() - v64) <= 1e-6 * scale + 1e-6 * d
    torch.testing.assert_close(g32.double(), g64, rtol=1e-5, atol=1e-6 / 20_000)
    assert abs(gl32.double() - gl64) <= 1e-5


def test_stk_is_finite_for_extreme_inputs():
    ls = torch.tensor([0.0, 1e-30, 1e30, 3e38])
    for lam in (0.0, 1e30, -1e30):
        assert torch.isfinite(stk(ls, lam, 2, delta=1e-6))


# --- weights --------------------------------------------------------------------


def _repeat(ls, counts):
    return torch.repeat_interleave(ls, torch.as_tensor(counts))


@pytest.mark.parametrize("k_int, k_frac", [(1, 0.1), (4, 0.35), (7, 0.8), (11, 1.0)])
def test_integer_weights_equal_repetition(rng, k_int, k_frac):
    ls = _distinct(rng, 6)
    counts = [3, 1, 0, 2, 4, 1]  # sum 11
    w = torch.tensor(counts, dtype=F64)
    rep = _repeat(ls, counts)
    lam = torch.tensor(1.1, dtype=F64)
    pairs = [
        (average(ls, w), average(rep)),
        (maximum(ls, w), maximum(rep)),
        (atk(ls, k_int, w), atk(rep, k_int)),
        (atk(ls, k_frac, w), atk(rep, k_frac)),
        (matk(ls, lam, k_int, w), matk(rep, lam, k_int)),
        (matk(ls, lam, k_frac, w), matk(rep, lam, k_frac)),
        (stk(ls, lam, k_int, 0.1, "srelu", w), stk(rep, lam, k_int, 0.1)),
        (
            stk(ls, lam, k_frac, 0.2, "softplus", w),
            stk(rep, lam, k_frac, 0.2, "softplus"),
        ),
    ]
    for a, b in pairs:
        assert a.item() == pytest.approx(b.item(), rel=1e-12)


@pytest.mark.parametrize("fn", ["average", "atk", "matk", "stk"])
def test_weighted_gradient_sums_the_gradients_of_the_copies(rng, fn):
    ls = _distinct(rng, 5).requires_grad_()
    counts = [2, 1, 3, 1, 2]
    rep = _repeat(ls.detach(), counts).requires_grad_()
    w = torch.tensor(counts, dtype=F64)
    call = {
        "average": lambda x, w=None: average(x, w),
        "atk": lambda x, w=None: atk(x, 4, w),
        "matk": lambda x, w=None: matk(x, 1.3, 4, w),
        "stk": lambda x, w=None: stk(x, 1.3, 4, 0.1, weight=w),
    }[fn]
    call(ls, w).backward()
    call(rep).backward()
    torch.testing.assert_close(ls.grad, _sum_copies(rep.grad, counts))


def _sum_copies(grad, counts):
    idx = torch.repeat_interleave(torch.arange(len(counts)), torch.as_tensor(counts))
    return torch.zeros(len(counts), dtype=grad.dtype).index_add_(0, idx, grad)


def test_unit_weights_equal_no_weights(rng):
    ls = _distinct(rng, 10)
    w = torch.ones(10, dtype=F64)
    for k in (1, 3, 0.25, 0.55):
        assert atk(ls, k, w).item() == pytest.approx(atk(ls, k).item())
        assert stk(ls, 0.5, k, weight=w).item() == pytest.approx(stk(ls, 0.5, k).item())


def test_zero_weight_removes_a_sample(rng):
    ls = _distinct(rng, 6)
    w = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0, 1.0], dtype=F64)
    kept = ls[w > 0]
    assert maximum(ls, w).item() == maximum(kept).item()
    assert atk(ls, 2, w).item() == pytest.approx(atk(kept, 2).item())


# --- bad input ------------------------------------------------------------------

L = torch.tensor([1.0, 2.0, 3.0])

BAD = [
    (lambda: atk(L, 0), r"k=0 is out of range.*\[1, n=3\]"),
    (lambda: atk(L, 4), r"k=4 is out of range.*\[1, n=3\]"),
    (lambda: matk(L, 0.0, -1), r"k=-1 is out of range"),
    (lambda: stk(L, 0.0, 1.5), r"k=1\.5 is out of range.*\(0, 1\]"),
    (lambda: stk(L, 0.0, 0.0), r"k=0\.0 is out of range.*\(0, 1\]"),
    (lambda: stk(L, 0.0, math.nan), r"k=nan is out of range"),
    (
        lambda: stk(L, 0.0, 1, delta=0.0),
        r"delta must be a finite float > 0; got delta=0",
    ),
    (lambda: stk(L, 0.0, 1, delta=-1), r"got delta=-1"),
    (lambda: stk(L, 0.0, 1, smoothing="relu6"), r"smoothing='relu6' is unknown"),
    (lambda: average(torch.arange(3)), r"losses must be .*floating.*dtype=torch.int64"),
    (lambda: atk(L.reshape(3, 1), 1), r"losses must be .*1-D.*shape=\(3, 1\)"),
    (lambda: maximum(torch.zeros(0)), r"losses must be a non-empty.*shape=\(0,\)"),
    (
        lambda: stk([1.0, 2.0], 0.0, 1),
        r"losses must be a .*1-D floating-point tensor.*list",
    ),
    (
        lambda: average(L, torch.tensor([1.0, -1.0, 1.0])),
        r"weight must be finite and >= 0.*-1",
    ),
    (
        lambda: atk(L, 1, torch.ones(4)),
        r"weight must be a tensor of the shape of losses \(3,\); got \(4,\)",
    ),
    (lambda: matk(L, 0.0, 1, torch.zeros(3)), r"weight must have a positive sum"),
    (
        lambda: atk(L, 5, torch.tensor([1.0, 2.0, 1.0])),
        r"k=5 is out of range.*weight units, in \[1, sum\(weight\)=4\]",
    ),
    (
        lambda: matk(L, torch.zeros(2), 1),
        r"lam must be a float or a one-element floating-point tensor",
    ),
    (
        lambda: stk(L, torch.tensor(1), 1),
        r"lam must be a float or a one-element floating",
    ),
]


@pytest.mark.parametrize("call, match", BAD)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_k_of_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="k must be an int"):
        atk(L, "2")


# --- properties (hypothesis) ----------------------------------------------------

_losses = st.lists(
    st.floats(0, 100, allow_nan=False, allow_subnormal=False), min_size=1, max_size=30
)
_settings = settings(max_examples=60, deadline=None)


@_settings
@given(values=_losses, lam=st.floats(0, 100))
def test_property_monotone_in_k(values, lam):
    ls = torch.tensor(values, dtype=F64)
    n = len(values)
    a = [atk(ls, k).item() for k in range(1, n + 1)]
    assert (np.diff(a) <= 1e-9).all()  # ATk decreases with k
    for fn in (matk, stk):  # lam >= 0: the dual forms increase with k
        v = [fn(ls, lam, k).item() for k in range(1, n + 1)]
        assert (np.diff(v) >= -1e-9).all()


@_settings
@given(values=_losses, lam=st.floats(0, 100), data=st.data())
def test_property_permutation_invariant(values, lam, data):
    ls = torch.tensor(values, dtype=F64)
    n = len(values)
    k = data.draw(st.integers(1, n))
    perm = torch.tensor(data.draw(st.permutations(range(n))))
    calls = [
        average,
        maximum,
        lambda x: atk(x, k),
        lambda x: matk(x, lam, k),
        lambda x: stk(x, lam, k, 0.1),
    ]
    for fn in calls:
        assert fn(ls[perm]).item() == pytest.approx(fn(ls).item(), rel=1e-12)
    # the gradient permutes with the losses (tie-free values only)
    if len(set(values)) == n:
        g = torch.autograd.grad(stk(ls.requires_grad_(), lam, k, 0.1), ls)[0]
        x = ls.detach()[perm].requires_grad_()
        (gp,) = torch.autograd.grad(stk(x, lam, k, 0.1), x)
        torch.testing.assert_close(gp, g[perm])


@_settings
@given(values=_losses, lam=st.floats(0, 100), c=st.floats(0.01, 100), data=st.data())
def test_property_scale_equivariant(values, lam, c, data):
    ls = torch.tensor(values, dtype=F64)
    k = data.draw(st.integers(1, len(values)))
    pairs = [
        (atk(c * ls, k), c * atk(ls, k)),
        (matk(c * ls, c * lam, k), c * matk(ls, lam, k)),
        (stk(c * ls, c * lam, k, delta=0.1 * c), c * stk(ls, lam, k, delta=0.1)),
    ]
    for a, b in pairs:
        assert a.item() == pytest.approx(b.item(), rel=1e-9, abs=1e-12)


@_settings
@given(values=_losses, c=st.floats(0.01, 100), data=st.data())
def test_property_weights_scale_free_for_fractions(values, c, data):
    ls = torch.tensor(values, dtype=F64)
    w = torch.tensor(
        data.draw(
            st.lists(st.floats(0.1, 10), min_size=len(values), max_size=len(values))
        ),
        dtype=F64,
    )
    kappa = data.draw(st.floats(0.01, 1.0))
    for fn in (matk, stk):
        a, b = fn(ls, 1.0, kappa, weight=c * w), fn(ls, 1.0, kappa, weight=w)
        assert a.item() == pytest.approx(b.item(), rel=1e-9)


# --- torch.func.vmap over the weights ------------------------------------------


def _rows_of_weights(seed=0):
    g = torch.Generator().manual_seed(seed)
    losses = torch.rand(6, generator=g, dtype=F64)
    losses[1] = losses[4]  # a tie
    return losses, torch.rand(3, 6, generator=g, dtype=F64) + 0.5


@pytest.mark.parametrize("k", [1, 3, 0.5, 1.0])
def test_atk_vmaps_over_weights_as_a_loop(k):
    losses, weights = _rows_of_weights()
    got = torch.func.vmap(lambda w: atk(losses, k, weight=w))(weights)
    want = torch.stack([atk(losses, k, weight=w) for w in weights])
    torch.testing.assert_close(got, want)
    grad = torch.func.grad(lambda x, w: atk(x, k, weight=w))
    got = torch.func.vmap(grad, in_dims=(None, 0))(losses, weights)
    want = torch.stack([grad(losses, w) for w in weights])
    torch.testing.assert_close(got, want)


DEFINITIONS = {
    "average": lambda x, w, wv: defs.average_loss_gradient(x, w, with_value=wv),
    "maximum": lambda x, w, wv: defs.maximum_loss_gradient(x, w, with_value=wv),
    "atk": lambda x, w, wv: defs.atk_loss_gradient(x, w, None, 0.5, with_value=wv),
    "matk": lambda x, w, wv: defs.matk_loss_gradient(x, w, 0.4, 0.5, with_value=wv),
    **{
        f"stk {name}": lambda x, w, wv, s=name: defs.stk_loss_gradient(
            x, w, torch.tensor(0.4, dtype=F64), 0.5, 0.1, s, with_value=wv
        )
        for name in SMOOTHINGS
    },
}


@pytest.mark.parametrize("with_value", [True, False])
@pytest.mark.parametrize("name", DEFINITIONS)
def test_definitions_vmap_over_weights_as_a_loop(name, with_value):
    losses, weights = _rows_of_weights(1)

    def parts(w):
        return tuple(
            t for t in DEFINITIONS[name](losses, w, with_value) if t is not None
        )

    got = torch.func.vmap(parts)(weights)
    want = [torch.stack(ts) for ts in zip(*map(parts, weights), strict=True)]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
