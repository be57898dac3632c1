"""Gradients of every order and the torch.func transforms, against plain
autograd references written here from the formulas (float64)."""

import itertools

import pytest
import torch
import torch.nn.functional as torch_F
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, vmap

import sktopk.losses._aggregate as aggregate
import sktopk.losses._fused as fused
from sktopk.losses import (
    MATkLoss,
    STkLoss,
    absolute,
    atk,
    average,
    cross_entropy,
    hinge,
    logistic,
    matk,
    maximum,
    multiclass_hinge,
    square,
    stk,
)

F64 = torch.float64


# --- references: the formulas as plain differentiable operations -------------------


def _srelu(x, d):
    return (x + torch.sqrt(x * x + d * d) - d) / 2


def ref_stk(losses, lam, k, d, weight=None):
    n = losses.shape[-1]
    w = torch.ones_like(losses) if weight is None else weight
    kappa = k / w.sum(-1) if isinstance(k, int) else k
    lam_col = lam.unsqueeze(-1) if lam.dim() else lam
    v = (w * _srelu(losses - lam_col, d)).sum(-1) / w.sum(-1)
    del n
    return v + kappa * lam


def ref_matk(losses, lam, k):
    kappa = k / losses.shape[-1] if isinstance(k, int) else k
    lam_col = lam.unsqueeze(-1) if lam.dim() else lam
    return torch.relu(losses - lam_col).mean(-1) + kappa * lam


def ref_atk(losses, k):
    return torch.sort(losses, -1, descending=True).values[..., :k].mean(-1)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(5)
    # well-separated values: no ties, no loss at the threshold
    ls = (torch.randperm(11, generator=g).to(F64) * 0.31 + 0.05).requires_grad_()
    lam = torch.tensor(1.234, dtype=F64, requires_grad=True)
    return ls, lam


@pytest.fixture(params=["one_pass", "streamed"])
def path(request, monkeypatch):
    """Both eager paths: small batches in one pass, large ones streamed."""
    if request.param == "streamed":
        monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
        monkeypatch.setattr(aggregate, "_SMALL", 0)  # ATk: selection + dual form
    return request.param


# --- double backward --------------------------------------------------------------


@pytest.mark.parametrize("smoothing", ["srelu", "softplus", "elu", "leaky_relu"])
def test_gradgradcheck_stk(data, path, smoothing):
    ls, lam = data
    d = 0.05 if smoothing == "leaky_relu" else 0.3
    w = torch.linspace(0.5, 2.0, 11, dtype=F64)
    for weight in (None, w):

        def fn(x, t, weight=weight):
            return stk(x, t, 4, d, smoothing, weight=weight)

        assert gradcheck(fn, (ls, lam), check_forward_ad=True)
        assert gradgradcheck(fn, (ls, lam))


def test_gradgradcheck_matk_atk_average_maximum(data, path):
    ls, lam = data
    w = torch.linspace(0.5, 2.0, 11, dtype=F64)
    assert gradgradcheck(lambda x, t: matk(x, t, 4), (ls, lam))
    assert gradgradcheck(lambda x, t: matk(x, t, 0.3, weight=w), (ls, lam))
    for fn in (lambda x: atk(x, 4), lambda x: atk(x, 0.3, w), average, maximum):
        assert gradcheck(fn, (ls,), check_forward_ad=True)
        assert gradgradcheck(fn, (ls,))


def test_gradgradcheck_per_row(data):
    ls, _ = data
    rows = ls.detach()[:10].reshape(2, 5).requires_grad_()
    lam = torch.tensor([0.4, 1.9], dtype=F64, requires_grad=True)
    assert gradgradcheck(lambda x, t: stk(x, t, 2, 0.3, dim=1), (rows, lam))
    assert gradgradcheck(lambda x, t: matk(x, t, 0.4, dim=-1), (rows, lam))
    assert gradgradcheck(lambda x: atk(x, 2, dim=1), (rows,))


def test_hessian_of_stk_matches_plain_autograd(data, path):
    ls, lam = data
    x0 = torch.cat([ls.detach(), lam.detach().reshape(1)])

    def ours(z):
        return stk(z[:-1], z[-1], 4, 0.3)

    def ref(z):
        return ref_stk(z[:-1], z[-1], 4, 0.3)

    h = torch.autograd.functional.hessian(ours, x0)
    want = torch.autograd.functional.hessian(ref, x0)
    torch.testing.assert_close(h, want)
    assert h.diagonal()[:-1].abs().max() > 1e-3  # not the zeros of a detached backward


def test_hessian_of_matk_is_zero_away_from_ties(data, path):
    ls, lam = data
    h = torch.autograd.functional.hessian(lambda x: matk(x, lam.detach(), 4), ls)
    assert torch.equal(h, torch.zeros_like(h))


def test_gradient_of_matk_keeps_a_graph_as_relus_does(data, path):
    # torch.relu's gradient is a graph (of zero derivative) in the losses, so
    # that a penalty on it can be differentiated; MATk's was a constant.
    ls, lam = data
    for t in (lam.detach(), lam):
        (g,) = torch.autograd.grad(matk(ls, t, 4), ls, create_graph=True)
        (want,) = torch.autograd.grad(ref_matk(ls, t, 4), ls, create_graph=True)
        torch.testing.assert_close(g, want)
        (h,) = torch.autograd.grad(g.pow(2).sum(), ls)
        assert torch.equal(h, torch.zeros_like(h))


def _penalised_gradient(aggregate_fn, individual):
    """d/d(W, b) of ||d aggregate / d(W, b, lam)||^2 through Linear -> loss."""
    g = torch.Generator().manual_seed(3)
    lin = torch.nn.Linear(4, 3, dtype=F64)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 4, generator=g, dtype=F64))
        lin.bias.copy_(torch.randn(3, generator=g, dtype=F64))
    x = torch.randn(12, 4, generator=g, dtype=F64)
    y = torch.randint(0, 3, (12,), generator=g)
    lam = torch.tensor(0.9, dtype=F64, requires_grad=True)
    value = aggregate_fn(individual(lin(x), y), lam)
    params = [lin.weight, lin.bias, lam]
    grads = torch.autograd.grad(value, params, create_graph=True)
    penalty = sum(gr.pow(2).sum() for gr in grads)
    return torch.autograd.grad(penalty, params[:2])


@pytest.mark.parametrize(
    "ours, ref",
    [
        (lambda ls, t: stk(ls, t, 3, 0.2), lambda ls, t: ref_stk(ls, t, 3, 0.2)),
        (lambda ls, t: matk(ls, t, 0.25), lambda ls, t: ref_matk(ls, t, 0.25)),
        (lambda ls, t: atk(ls, 3) + 0 * t, lambda ls, t: ref_atk(ls, 3) + 0 * t),
    ],
)
def test_gradient_penalty_through_linear_and_cross_entropy(ours, ref, path):
    torch_ce = lambda s, y: torch_F.cross_entropy(s, y, reduction="none")  # noqa: E731
    got = _penalised_gradient(ours, cross_entropy)
    want = _penalised_gradient(ref, torch_ce)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    assert got[0].abs().max() > 1e-4


# --- torch.func -------------------------------------------------------------------


def test_func_grad_matches_autograd(data):
    ls, lam = data
    for fn, ref in [
        (lambda x, t: stk(x, t, 4, 0.3), lambda x, t: ref_stk(x, t, 4, 0.3)),
        (lambda x, t: matk(x, t, 4), lambda x, t: ref_matk(x, t, 4)),
        (lambda x, t: atk(x, 4) + 0 * t, lambda x, t: ref_atk(x, 4) + 0 * t),
        (lambda x, t: average(x) + 0 * t, lambda x, t: x.mean() + 0 * t),
        (lambda x, t: maximum(x) + 0 * t, lambda x, t: x.max() + 0 * t),
    ]:
        got = grad(fn, argnums=(0, 1))(ls.detach(), lam.detach())
        want = grad(ref, argnums=(0, 1))(ls.detach(), lam.detach())
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)


def test_vmap_equals_dim_and_row_by_row():
    g = torch.Generator().manual_seed(0)
    rows = torch.rand(6, 9, generator=g, dtype=F64) * 3
    lam = torch.rand(6, generator=g, dtype=F64)
    cases = [
        (lambda x, t: stk(x, t, 3, 0.1), lambda x, t: stk(x, t, 3, 0.1, dim=1)),
        (lambda x, t: matk(x, t, 0.3), lambda x, t: matk(x, t, 0.3, dim=1)),
        (lambda x, t: atk(x, 3) + 0 * t, lambda x, t: atk(x, 3, dim=1)),
        (lambda x, t: average(x) + 0 * t, lambda x, t: average(x, dim=1)),
        (lambda x, t: maximum(x) + 0 * t, lambda x, t: maximum(x, dim=1)),
    ]
    for one, batched in cases:
        got = vmap(one)(rows, lam)
        torch.testing.assert_close(got, batched(rows, lam))
        each = torch.stack([one(r, t) for r, t in zip(rows, lam, strict=True)])
        torch.testing.assert_close(got, each)


def test_jacrev_jacfwd_and_hessian_of_stk(data):
    ls, lam = data
    rows = ls.detach()[:10].reshape(2, 5)
    lams = torch.tensor([0.4, 1.9], dtype=F64)
    want = jacrev(lambda x: ref_stk(x, lams, 2, 0.3))(rows)

    def per_row(x):
        return stk(x, lams, 2, 0.3, dim=1)

    torch.testing.assert_close(jacrev(per_row)(rows), want)
    torch.testing.assert_close(jacfwd(per_row)(rows), want)
    one, t = ls.detach(), lam.detach()
    h = hessian(lambda x: stk(x, t, 4, 0.3))(one)
    torch.testing.assert_close(h, hessian(lambda x: ref_stk(x, t, 4, 0.3))(one))
    j = jacrev(lambda x: matk(x, t, 4))(one)
    torch.testing.assert_close(j, jacrev(lambda x: ref_matk(x, t, 4))(one))


def test_vmap_over_per_sample_gradients(data):
    """Per-example gradients of a batch of problems (vmap of grad)."""
    ls, lam = data
    rows = ls.detach()[:10].reshape(2, 5)
    lams = torch.tensor([0.4, 1.9], dtype=F64)
    got = vmap(grad(lambda x, t: stk(x, t, 2, 0.3), argnums=(0, 1)))(rows, lams)
    want = vmap(grad(lambda x, t: ref_stk(x, t, 2, 0.3), argnums=(0, 1)))(rows, lams)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("cls", [STkLoss, MATkLoss])
def test_func_grad_of_modules(cls, data):
    ls, _ = data
    module = cls(k=4, lam=0.8).double()
    params = {name: p.detach() for name, p in module.named_parameters()}
    got = grad(lambda p, x: functional_call(module, p, (x,)))(params, ls.detach())
    value = module(ls.detach())
    (want,) = torch.autograd.grad(value, module.lam)
    torch.testing.assert_close(got["lam"], want)
    rows = ls.detach()[:10].reshape(2, 5)
    batched = vmap(lambda x: functional_call(module, params, (x,)))(rows)
    torch.testing.assert_close(batched, torch.stack([module(r) for r in rows]).detach())


@pytest.mark.parametrize("fn", [stk, matk])
def test_tensor_escaped_from_a_transform_takes_the_unwrapping_path(fn):
    # A tensor kept from inside torch.func.grad stays wrapped after it: the
    # small path's direct entry to the autograd function must not take it.
    kept = []

    def f(x):
        kept.append(x)
        return x.sum()

    x = torch.rand(8, generator=torch.Generator().manual_seed(3))
    grad(f)(x)
    assert torch._C._functorch.is_functorch_wrapped_tensor(kept[0])
    lam = torch.tensor(0.5)
    assert aggregate._plan(kept[0], lam, 2, "srelu", 0.01) is None
    assert aggregate._plan(x, lam, 2, "srelu", 0.01) is not None
    out = fn(kept[0], lam, 2)
    assert out.grad_fn is None
    torch.testing.assert_close(out, fn(x, lam, 2))


def test_individual_losses_under_vmap_grad_and_jacrev():
    g = torch.Generator().manual_seed(1)
    f = torch.randn(4, 6, generator=g, dtype=F64)
    y = torch.randint(0, 2, (4, 6), generator=g).to(F64) * 2 - 1
    target = torch.randn(4, 6, generator=g, dtype=F64)
    pairs = [
        (logistic, y, lambda s, t: torch_F.softplus(-t * s)),
        (hinge, y, lambda s, t: torch.relu(1 - t * s)),
        (square, target, lambda s, t: (s - t) ** 2),
        (absolute, target, lambda s, t: (s - t).abs()),
    ]
    for fn, t, ref in pairs:
        torch.testing.assert_close(vmap(fn)(f, t), ref(f, t))
        got = vmap(grad(lambda s, tt, fn=fn: fn(s, tt).sum()))(f, t)
        want = vmap(grad(lambda s, tt, ref=ref: ref(s, tt).sum()))(f, t)
        torch.testing.assert_close(got, want)
    scores = torch.randn(3, 5, 4, generator=g, dtype=F64)
    labels = torch.randint(0, 4, (3, 5), generator=g)
    ce = lambda s, c: torch_F.cross_entropy(s, c, reduction="none")  # noqa: E731
    want = vmap(ce)(scores, labels)
    torch.testing.assert_close(vmap(cross_entropy)(scores, labels), want)
    torch.testing.assert_close(
        jacrev(cross_entropy)(scores[0], labels[0]), jacrev(ce)(scores[0], labels[0])
    )
    assert vmap(multiclass_hinge)(scores, labels).shape == (3, 5)


# --- shape inference: meta and fake tensors ---------------------------------------


def _every_loss(x, lam):
    n = x.shape[-1]
    y = torch.ones(n, dtype=x.dtype, device=x.device)
    s = torch.zeros(n, 3, dtype=x.dtype, device=x.device)
    c = torch.zeros(n, dtype=torch.long, device=x.device)
    return [
        stk(x, lam, 2),
        stk(x, lam, 2, weight=y),
        matk(x, lam, 0.3),
        atk(x, 2),
        average(x),
        maximum(x),
        logistic(x, y),
        hinge(x, y),
        square(x, y),
        absolute(x, y),
        cross_entropy(s, c),
        multiclass_hinge(s, c),
        stk(x.reshape(1, -1), lam.reshape(1), 2, dim=1),
    ]


def test_meta_tensors_give_shapes():
    x = torch.empty(6, device="meta", requires_grad=True)
    lam = torch.empty((), device="meta", requires_grad=True)
    out = _every_loss(x, lam)
    assert [tuple(o.shape) for o in out] == [()] * 6 + [(6,)] * 6 + [(1,)]
    assert all(o.device.type == "meta" for o in out)
    out[0].backward()
    assert x.grad.shape == (6,) and lam.grad.shape == ()


def test_fake_tensors_give_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x, lam = torch.rand(6, requires_grad=True), torch.tensor(0.5)
        out = _every_loss(x, lam)
        assert [tuple(o.shape) for o in out] == [()] * 6 + [(6,)] * 6 + [(1,)]
        out[0].backward()
        assert x.grad.shape == (6,)


def test_brute_force_reference_agrees_with_sort():
    # ref_atk (a sort) against all k-subsets, so that it can serve as reference.
    ls = torch.tensor([0.3, 2.0, 1.1, 0.7, 1.6], dtype=F64)
    for k in range(1, 6):
        best = max(sum(c) / k for c in itertools.combinations(ls.tolist(), k))
        assert ref_atk(ls, k).item() == pytest.approx(best)


# --- backward more than once, and scaled -------------------------------------------


@pytest.mark.parametrize("dim", [None, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("fn", ["stk", "matk"])
def test_backward_again_and_scaled(fn, dtype, dim):
    """``loss.backward()`` hands the saved gradients over; a second backward
    through a retained graph, and a backward scaled by ``c``, recompute them:
    every one equals the plain-autograd reference."""
    shape = (3, 40) if dim else (40,)
    gen = torch.Generator().manual_seed(3)
    base = torch.rand(shape, generator=gen, dtype=F64).mul(3)
    lam0 = torch.full(shape[:-1], 1.7, dtype=F64)

    def grads(impl, scales):
        losses = base.to(dtype).requires_grad_()
        lam = lam0.to(dtype).requires_grad_()
        value = impl(losses, lam)
        out = value if dim is None else value.sum()
        for i, c in enumerate(scales):
            (out * c).backward(retain_graph=i < len(scales) - 1)
        return losses.grad.double(), lam.grad.double()

    mine = getattr(aggregate, fn)

    def ours(losses, lam):
        return mine(losses, lam, 9, **({"delta": 0.05} if fn == "stk" else {}), dim=dim)

    def reference(losses, lam):
        losses, lam = losses.double(), lam.double()
        lam_col = lam.unsqueeze(-1) if dim else lam
        x = losses - lam_col
        phi = _srelu(x, 0.05) if fn == "stk" else torch.relu(x)
        value = phi.mean(-1) + (9 / shape[-1]) * lam
        return value

    tol = {
        torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2},
        torch.float32: {"rtol": 1e-5, "atol": 1e-6},
        F64: {},
    }[dtype]
    for scales in ([1.0], [1.0, 1.0], [1.0, 2.5], [-3.0]):
        got = grads(ours, scales)
        want = grads(reference, scales)
        torch.testing.assert_close(got[0], want[0], **tol)
        torch.testing.assert_close(got[1], want[1], **tol)
