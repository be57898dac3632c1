"""Aggregates at their edges: ties on the large-n ATk path, batched
gradients of the streamed dual form, the count rounding with and without
weights, meta and fake tensors, and the scale of the weights."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.autograd import gradcheck

import sktopk.losses._aggregate as aggregate
import sktopk.losses._fused as fused
from sktopk.losses import atk, atk_loss_gradient, kth_largest, matk, stk
from sktopk.losses._aggregate_defs import ceil_count, matk_loss_gradient

F64 = torch.float64
BIG = aggregate._SMALL + 1  # the smallest input of the selection path


def _exact_count(k, n):
    """``ceil(k n)`` in exact arithmetic, for the decimal ``k`` a user writes."""
    return max(1, math.ceil(Fraction(repr(k)) * n))


def _sorted_top_mean(losses, count):
    """The reference ATk: the mean of the first ``count`` sorted losses."""
    ranked = np.sort(losses.detach().cpu().double().numpy())[::-1]
    return float(np.mean(ranked[:count]))


def _subgradient_of_ties(losses, count):
    """The ATk gradient whose tied losses at the threshold share equally:
    ``1/count`` above ``l_[count]``, zero below, the rest spread evenly."""
    values = losses.detach().cpu().double().numpy()
    t = np.sort(values)[::-1][count - 1]
    above, tied = values > t, values == t
    g = np.where(above, 1.0 / count, 0.0)
    g[tied] = (count - above.sum()) / (tied.sum() * count)
    return g


# --- ties on the selection path --------------------------------------------------


@pytest.mark.parametrize(
    "make, k",
    [
        (lambda g: torch.ones(20_000), 10),
        (lambda g: torch.randint(0, 4, (BIG,), generator=g).float(), BIG - 1),
        (lambda g: torch.randint(0, 4, (40_000,), generator=g).double(), 0.3),
        (lambda g: torch.randint(0, 50, (70_000,), generator=g).double(), 7),
    ],
)
def test_atk_ties_share_the_gradient_on_large_inputs(make, k, device):
    losses = make(torch.Generator().manual_seed(0)).to(device).requires_grad_()
    n = losses.numel()
    count = k if isinstance(k, int) else _exact_count(k, n)
    value = atk(losses, k)
    value.backward()
    assert value.item() == pytest.approx(_sorted_top_mean(losses, count), rel=1e-6)
    g = losses.grad.double().cpu().numpy()
    assert g.sum() == pytest.approx(1.0, rel=1e-6)
    assert g.min() >= 0 and g.max() <= (1 + 1e-6) / count
    want = _subgradient_of_ties(losses, count)
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 4, 6])
@pytest.mark.parametrize("streamed", [False, True])
def test_atk_tie_gradient_agrees_in_every_mode(monkeypatch, k, streamed):
    monkeypatch.setattr(aggregate, "_SMALL", 0)  # the selection path
    if streamed:
        monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    losses = torch.tensor([3.0, 1.0, 2.0, 2.0, 2.0, 0.5, 3.0], dtype=F64)
    want = torch.tensor(_subgradient_of_ties(losses, k), dtype=F64)
    x = losses.clone().requires_grad_()
    (g,) = torch.autograd.grad(atk(x, k), x)
    (g2,) = torch.autograd.grad(atk(x, k), x, create_graph=True)
    torch.testing.assert_close(g, want)
    torch.testing.assert_close(g2, want)
    d = torch.linspace(-1.0, 2.0, 7, dtype=F64)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(losses, d)
        tangent = torch.autograd.forward_ad.unpack_dual(atk(dual, k)).tangent
    assert tangent.item() == pytest.approx(float(want @ d), rel=1e-12)


# --- batched gradients of the streamed form --------------------------------------

_STREAMED = [
    ("stk", 40_000, lambda x: stk(x, 0.5, 0.1)),
    ("matk", 40_000, lambda x: matk(x, 0.5, 0.1)),
    ("stk weighted", 40_000, lambda x: stk(x, 0.5, 0.1, weight=torch.ones_like(x))),
    ("atk", 20_000, lambda x: atk(x, 0.1)),
    ("atk streamed", 40_000, lambda x: atk(x, 0.1)),
]


@pytest.mark.parametrize("name, n, fn", _STREAMED, ids=[c[0] for c in _STREAMED])
def test_batched_gradients_equal_one_at_a_time(name, n, fn, device):
    x = torch.rand(n, generator=torch.Generator().manual_seed(1), dtype=F64)
    x = x.to(device).requires_grad_()
    scales = torch.tensor([1.0, -2.0, 0.5], dtype=F64, device=device)
    (batched,) = torch.autograd.grad(fn(x), x, scales, is_grads_batched=True)
    (single,) = torch.autograd.grad(fn(x), x)
    torch.testing.assert_close(batched, scales[:, None] * single)
    jac = torch.autograd.functional.jacobian(fn, x, vectorize=True)
    torch.testing.assert_close(jac, single)


@pytest.mark.parametrize("fn", [stk, matk])
def test_gradcheck_of_streamed_form_with_batched_grad(monkeypatch, rng, fn):
    monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)  # stream small inputs
    x = torch.tensor(rng.permutation(9) * 0.3 + 0.1, dtype=F64, requires_grad=True)
    lam = torch.tensor(1.234, dtype=F64, requires_grad=True)
    assert gradcheck(lambda a, t: fn(a, t, 4), (x, lam), check_batched_grad=True)
    monkeypatch.setattr(aggregate, "_SMALL", 0)
    assert gradcheck(lambda a: atk(a, 4), (x,), check_batched_grad=True)


def test_dual_gradient_under_vmap_over_weights(rng):
    losses = torch.tensor(rng.exponential(1.0, 12), dtype=F64)
    weights = torch.tensor(rng.uniform(0.5, 2.0, (3, 12)), dtype=F64)
    lam, kappa = torch.tensor(0.8, dtype=F64), 0.25

    def grads(w):
        return matk_loss_gradient(losses, w, lam, kappa, with_value=False)[1:]

    batched = torch.func.vmap(grads)(weights)
    for i, w in enumerate(weights):
        for got, want in zip(batched, grads(w), strict=True):
            torch.testing.assert_close(got[i], want)


# --- one count rule, with or without weights ---------------------------------------

_COUNTS = [(10, 0.3), (10, 0.1000001), (7, 0.7), (1_000_001, 0.5), (999, 0.001)]


@pytest.mark.parametrize("n, k", _COUNTS)
def test_unit_weights_take_the_count_of_no_weights(n, k):
    losses = torch.arange(n, dtype=F64).flip(0)
    ones = torch.ones(n, dtype=F64)
    count = _exact_count(k, n)
    want = _sorted_top_mean(losses, count)
    assert atk(losses, k).item() == pytest.approx(want, rel=1e-12)
    assert atk(losses, k, weight=ones).item() == pytest.approx(want, rel=1e-12)
    kth = float(n - count)  # the losses are n-1, ..., 0
    assert kth_largest(losses, k).item() == kth
    assert kth_largest(losses, k, weight=ones).item() == kth


@pytest.mark.parametrize("n", [3, 10, 16, 200, 1_000_001])
@pytest.mark.parametrize("k", [0.1, 0.25, 0.3, 0.5, 0.7, 0.1000001, 0.99])
def test_ceil_count_of_numbers_and_tensors_agree_with_exact(n, k):
    want = _exact_count(k, n)
    assert aggregate._count(k, n) == want
    assert ceil_count(k * n) == want
    assert int(ceil_count(torch.tensor(k, dtype=F64) * n)) == want


def test_integer_weights_are_repetitions_on_many_losses(rng):
    n = 300_001
    losses = torch.tensor(rng.exponential(1.0, n), dtype=F64)
    counts = torch.tensor(rng.integers(1, 4, n))
    repeated = torch.repeat_interleave(losses, counts)
    w = counts.to(F64)
    for k in (0.5, 0.1, 0.3):
        got = atk(losses, k, weight=w).item()
        assert got == pytest.approx(atk(repeated, k).item(), rel=1e-12)
        want = kth_largest(repeated, k).item()
        assert kth_largest(losses, k, weight=w).item() == want


# --- meta and fake tensors ----------------------------------------------------------


@pytest.mark.parametrize("n", [BIG, 40_000, (1 << 20) + 3])
def test_atk_on_meta_tensors_gives_shapes(n):
    x = torch.empty(n, device="meta", requires_grad=True)
    value = atk(x, 0.1)
    assert value.shape == () and value.device.type == "meta"
    value.backward()
    assert x.grad.shape == (n,)


@pytest.mark.parametrize("n", [BIG, (1 << 20) + 3])
def test_aggregates_on_fake_tensors_give_shapes(monkeypatch, n):
    monkeypatch.setattr(fused, "_compile_state", {"failed": False})
    with FakeTensorMode():
        x = torch.rand(n, requires_grad=True)
        value = atk(x, 0.1) + stk(x, 0.5, 0.1)
        value.backward()
        assert value.shape == () and x.grad.shape == (n,)
    assert not fused._compile_state["failed"]
    assert set(fused._compile_state) == {"failed"}  # nothing compiled for fakes


# --- the scale of the weights -------------------------------------------------------

_SCALES = [1e-3, 1 / 200, 0.5, 3.0, 1e4]


@pytest.mark.parametrize("c", _SCALES)
@pytest.mark.parametrize("kappa", [0.1, 0.25, 0.5])
def test_engine_atk_with_equal_weights_is_the_unweighted_top_k(rng, c, kappa):
    n = 16
    losses = torch.tensor(rng.exponential(1.0, n), dtype=F64)
    w = torch.full((n,), c, dtype=F64)
    value, g, _ = atk_loss_gradient(losses, w, None, torch.tensor(kappa, dtype=F64))
    count = _exact_count(kappa, n)
    assert value.item() == pytest.approx(_sorted_top_mean(losses, count), rel=1e-12)
    top = torch.topk(losses, count).indices
    want = torch.zeros(n, dtype=F64).index_fill_(0, top, 1.0 / count)
    torch.testing.assert_close(g, want)


@pytest.mark.parametrize("c", _SCALES)
@pytest.mark.parametrize("kappa", [0.1, 0.35, 0.8])
def test_engine_atk_integer_weights_are_repetitions_at_any_scale(rng, c, kappa):
    counts = [1, 3, 2, 1, 4, 2, 1]
    losses = torch.tensor(rng.permutation(7) + rng.uniform(0, 0.5, 7), dtype=F64)
    repeated = torch.repeat_interleave(losses, torch.tensor(counts))
    w = torch.tensor(counts, dtype=F64) * c
    value = atk_loss_gradient(losses, w, None, torch.tensor(kappa, dtype=F64))[0]
    want = _sorted_top_mean(repeated, _exact_count(kappa, len(repeated)))
    assert value.item() == pytest.approx(want, rel=1e-12)


def test_engine_atk_rows_with_padding_scale_free(rng):
    losses = torch.tensor(rng.exponential(1.0, (2, 3, 10)), dtype=F64)
    w = torch.ones(2, 1, 10, dtype=F64)
    w[1, :, 7:] = 0.0  # padding: row group 1 has 7 rows
    kappa = torch.full((2, 3), 0.3, dtype=torch.float32)  # as the engine holds it
    ref = atk_loss_gradient(losses, w, None, kappa)
    for c in _SCALES:
        got = atk_loss_gradient(losses, w * c, None, kappa)
        torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=0)
        torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-15)
    for gi, n in ((0, 10), (1, 7)):
        for m in range(3):
            want = _sorted_top_mean(losses[gi, m, :n], _exact_count(0.3, n))
            assert ref[0][gi, m].item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("c", [1.0, 0.5, 1 / 7, 1e-4])
@pytest.mark.parametrize("k", [0.1, 0.3, 0.5, 0.75])
def test_public_atk_weights_below_one_are_scale_free(rng, c, k):
    counts = [2, 1, 3, 1, 2, 5]
    losses = torch.tensor(rng.permutation(6) + rng.uniform(0, 0.5, 6), dtype=F64)
    repeated = torch.repeat_interleave(losses, torch.tensor(counts))
    w = torch.tensor(counts, dtype=F64) * c
    want = _sorted_top_mean(repeated, _exact_count(k, len(repeated)))
    assert atk(losses, k, weight=w).item() == pytest.approx(want, rel=1e-12)
    want_kth = np.sort(repeated.numpy())[::-1][_exact_count(k, len(repeated)) - 1]
    assert kth_largest(losses, k, weight=w).item() == want_kth
