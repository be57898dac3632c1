"""The top-k SVM losses as PyTorch code: higher derivatives, torch.func,
meta and fake tensors, torch.compile, torch.export, autocast, jit.trace.

References are independent of the implementation: the definition over all
k-subsets (float64, plain autograd) and torch's cross-entropy.
"""

import io
import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from sktopk.losses import _svm_fast, _svm_wrong_topk, _topk_svm, set_value_checks
from sktopk.losses._svm_modules import SmoothTopKSVMLoss, TopKSVMLoss
from sktopk.losses._topk_svm import _FAST_MAX_K, smooth_topk_svm, topk_svm

F64 = torch.float64

# (n_classes, k, thresholds to force) covering every route on small problems:
# k = 1, the subset enumeration, the fast route with the powers held as one
# tensor, with passes over the scores, and with the grouped top-k search.
BIG = 1 << 40
ROUTES = {
    "k1": (6, 1, {}),
    "subsets": (7, 3, {"_SUBSET_TOTAL": BIG}),
    "fast-small": (13, 4, {"_POWERS_TOTAL": BIG}),
    "fast-large": (13, 4, {"_POWERS_MAX": 0, "_POWERS_TOTAL": 0}),
    "fast-grouped": (
        31,
        3,
        {"_POWERS_MAX": 0, "_POWERS_TOTAL": 0, "_GROUPED_TOPK_MIN": 8},
    ),
    "fast-k1": (13, 1, {"_K1_TOTAL": 0, "_SUBSET_MAX": 0, "_POWERS_TOTAL": 0}),
}
# The module that reads each threshold.
OWNER = {
    "_SUBSET_TOTAL": _topk_svm,
    "_SUBSET_MAX": _topk_svm,
    "_K1_TOTAL": _topk_svm,
    "_POWERS_MAX": _svm_fast,
    "_POWERS_TOTAL": _svm_fast,
    "_GROUPED_TOPK_MIN": _svm_wrong_topk,
}


@pytest.fixture(params=list(ROUTES))
def route(request, monkeypatch):
    """(n_classes, k) of a route, with the thresholds that force it."""
    return use_route(monkeypatch, request.param)


def use_route(monkeypatch, name):
    n_classes, k, force = ROUTES[name]
    for attr, value in force.items():
        monkeypatch.setattr(OWNER[attr], attr, value)
    return n_classes, k


def brute_force(scores, labels, k, margin, tau):
    """Per-sample loss from its definition over all k-subsets (plain autograd)."""
    n_classes = scores.shape[1]
    subsets = torch.tensor(list(itertools.combinations(range(n_classes), k)))
    means = scores[:, subsets].sum(-1) / k
    has_y = (subsets[None] == labels[:, None, None]).any(-1)
    delta = (~has_y).to(scores.dtype) * margin  # float64: no rounded margin
    all_sets = torch.logsumexp((means + delta) / tau, 1)
    with_y = torch.logsumexp((means / tau).masked_fill(~has_y, -math.inf), 1)
    return tau * (all_sets - with_y)


def problem(n, n_classes, dtype=F64, seed=0, scale=2.0):
    gen = torch.Generator().manual_seed(seed)
    scores = scale * torch.randn(n, n_classes, generator=gen, dtype=dtype)
    labels = torch.randint(0, n_classes, (n,), generator=gen)
    return scores, labels


def test_routes_are_taken(monkeypatch):
    assert math.comb(7, 3) <= _topk_svm._SUBSET_MAX < math.comb(13, 4)
    assert 13 * 4 <= _svm_fast._POWERS_MAX
    seen = []
    monkeypatch.setattr(
        _svm_fast, "_power_sums", lambda x, k: seen.append(k) or _power_sums(x, k)
    )
    monkeypatch.setattr(
        _svm_wrong_topk, "_grouped_topk", lambda s, m: seen.append(m) or _gt(s, m)
    )
    for name in ROUTES:
        with monkeypatch.context() as patch:
            n_classes, k = use_route(patch, name)
            smooth_topk_svm(*problem(2, n_classes), k)
    # passes (fast-large), grouped top-k and passes (fast-grouped), k = 1 passes
    assert seen == [4, 3 + 1, 3, 1]


_power_sums, _gt = _svm_fast._power_sums, _svm_wrong_topk._grouped_topk


# ------------------------------------------------------- higher derivatives


@pytest.mark.parametrize("name", ["k1", "subsets", "fast-small"])
def test_hessian_matches_brute_force(name):
    n_classes, k, _ = ROUTES[name]
    scores, labels = problem(2, n_classes)
    for margin, tau in [(0.7, 0.5), (1.0, 0.05)]:

        def loss(s, fn, margin=margin, tau=tau):
            return fn(s, labels, k, margin, tau).sum()

        def ours(s):
            return loss(s, lambda *a: smooth_topk_svm(*a, reduction="none"))

        got = torch.autograd.functional.hessian(ours, scores)
        want = torch.autograd.functional.hessian(lambda s: loss(s, brute_force), scores)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


def test_gradcheck_and_gradgradcheck(route):
    # The first backward is analytic (each route's own); a backward that
    # builds a graph recomputes the gradient with differentiable operations.
    n_classes, k = route
    scores, labels = problem(2, n_classes, scale=1.0)
    scores.requires_grad_(True)

    def fn(s):
        return smooth_topk_svm(s, labels, k, 0.6, 0.4, reduction="none")

    assert torch.autograd.gradcheck(fn, (scores,), atol=1e-8)
    assert torch.autograd.gradgradcheck(fn, (scores,), atol=1e-8)


def test_gradgradcheck_hard_loss():
    scores, labels = problem(4, 9)
    scores.requires_grad_(True)
    fn = lambda s: topk_svm(s, labels, 3, reduction="none")  # noqa: E731
    assert torch.autograd.gradgradcheck(fn, (scores,))


def gradient_penalty(loss_fn, weight, x, labels):
    """d/dW of ||dL/dW||^2 through a linear model (create_graph=True)."""
    w = weight.detach().clone().requires_grad_(True)
    loss = loss_fn(x @ w, labels)
    (g,) = torch.autograd.grad(loss, w, create_graph=True)
    (gp,) = torch.autograd.grad((g**2).sum(), w)
    return loss.detach(), gp


def test_gradient_penalty_k1_is_cross_entropys():
    # smooth_topk_svm(k=1, margin=0) equals cross-entropy, to second order.
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(32, 5, generator=gen, dtype=F64)
    weight = torch.randn(5, 10, generator=gen, dtype=F64)
    labels = torch.randint(0, 10, (32,), generator=gen)
    ce = gradient_penalty(F.cross_entropy, weight, x, labels)
    svm = gradient_penalty(
        lambda s, y: smooth_topk_svm(s, y, k=1, margin=0.0), weight, x, labels
    )
    torch.testing.assert_close(svm, ce, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("name", ["subsets", "fast-small", "fast-large"])
def test_gradient_penalty_matches_brute_force(name, monkeypatch):
    n_classes, k = use_route(monkeypatch, name)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(8, 4, generator=gen, dtype=F64)
    weight = torch.randn(4, n_classes, generator=gen, dtype=F64)
    labels = torch.randint(0, n_classes, (8,), generator=gen)
    got = gradient_penalty(
        lambda s, y: smooth_topk_svm(s, y, k, 0.8, 0.3), weight, x, labels
    )
    want = gradient_penalty(
        lambda s, y: brute_force(s, y, k, 0.8, 0.3).mean(), weight, x, labels
    )
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-13)


@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_large_k_second_derivative_is_a_clear_error():
    scores, labels = problem(2, 30)
    scores.requires_grad_(True)
    k = _FAST_MAX_K + 1
    with pytest.raises(RuntimeError, match="first derivatives only"):
        torch.autograd.grad(
            smooth_topk_svm(scores, labels, k), scores, create_graph=True
        )
    # torch.func takes the log-space route, exact to every order.
    hess = torch.func.hessian(lambda s: smooth_topk_svm(s, labels, k))(scores.detach())
    assert torch.isfinite(hess).all() and hess.abs().sum() > 0
    torch.testing.assert_close(hess, hess.reshape(60, 60).T.reshape(2, 30, 2, 30))


# ------------------------------------------------------------- torch.func


def test_torch_func_grad_jacrev_hessian(route):
    n_classes, k = route
    scores, labels = problem(3, n_classes)

    def per_sample(s):
        return smooth_topk_svm(s, labels, k, 0.9, 0.7, reduction="none")

    leaf = scores.clone().requires_grad_(True)
    (want_grad,) = torch.autograd.grad(per_sample(leaf).sum(), leaf)
    got_grad = torch.func.grad(lambda s: per_sample(s).sum())(scores)
    torch.testing.assert_close(got_grad, want_grad, rtol=1e-12, atol=1e-14)
    jac = torch.func.jacrev(per_sample)(scores)  # (n, n, C), block diagonal
    torch.testing.assert_close(jac.diagonal(dim1=0, dim2=1).T, want_grad)
    if n_classes <= 7:
        hess = torch.func.hessian(lambda s: per_sample(s).sum())(scores)
        want = torch.autograd.functional.hessian(
            lambda s: brute_force(s, labels, k, 0.9, 0.7).sum(), scores
        )
        torch.testing.assert_close(hess, want, rtol=1e-9, atol=1e-12)


def test_vmap(route):
    n_classes, k = route
    scores, labels = problem(12, n_classes)
    want = smooth_topk_svm(scores, labels, k, 0.5, 0.8, reduction="none")

    def one(s, y):  # a single sample: a batch of one row
        return smooth_topk_svm(s[None], y[None], k, 0.5, 0.8)

    torch.testing.assert_close(torch.vmap(one)(scores, labels), want)
    # A batch of problems sharing the labels (labels not mapped).
    stacked = torch.stack([scores[:6], scores[6:] + 1.0])
    got = torch.vmap(
        lambda s: smooth_topk_svm(s, labels[:6], k, 0.5, 0.8, reduction="none")
    )(stacked)
    for i, part in enumerate((scores[:6], scores[6:] + 1.0)):
        want_part = smooth_topk_svm(part, labels[:6], k, 0.5, 0.8, reduction="none")
        torch.testing.assert_close(got[i], want_part)
    # Per-sample gradients: vmap of grad.
    per_grad = torch.vmap(torch.func.grad(one))(scores, labels)
    leaf = scores.clone().requires_grad_(True)
    smooth_topk_svm(leaf, labels, k, 0.5, 0.8, reduction="sum").backward()
    torch.testing.assert_close(per_grad, leaf.grad, rtol=1e-12, atol=1e-14)
    hard = torch.vmap(lambda s, y: topk_svm(s[None], y[None], k))(scores, labels)
    torch.testing.assert_close(hard, topk_svm(scores, labels, k, reduction="none"))


# --------------------------------------------------- meta and fake tensors


@pytest.mark.parametrize("name", [*ROUTES, "tree"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_meta_and_fake_tensors(name, reduction, monkeypatch):
    n_classes, k = (40, 12) if name == "tree" else use_route(monkeypatch, name)
    shape = (7,) if reduction == "none" else ()
    for fn in (smooth_topk_svm, topk_svm):
        out = fn(
            torch.empty(7, n_classes, device="meta"),
            torch.empty(7, dtype=torch.long, device="meta"),
            k=k,
            reduction=reduction,
        )
        assert out.shape == shape and out.device.type == "meta"
        with FakeTensorMode():
            scores = torch.empty(7, n_classes, requires_grad=True)
            out = fn(scores, torch.empty(7, dtype=torch.long), k=k, reduction=reduction)
            out.sum().backward()
            assert out.shape == shape and scores.grad.shape == scores.shape
    # Constants made under the fake mode were not cached for real tensors.
    real, labels = problem(3, n_classes)
    torch.testing.assert_close(
        smooth_topk_svm(real, labels, k, reduction="none"),
        smooth_topk_svm(real.clone(), labels, k, reduction="none"),
    )


# ------------------------------------------------------- compile and export


class GraphCounter:
    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


def compiled_matches_eager(fn, n_classes, batch_sizes):
    torch._dynamo.reset()
    counter = GraphCounter()
    compiled = torch.compile(fn, fullgraph=True, backend=counter)
    for i, n in enumerate(batch_sizes):
        scores, labels = problem(n, n_classes, dtype=torch.float32, seed=i)
        got_leaf = scores.clone().requires_grad_(True)
        got = compiled(got_leaf, labels)
        got.backward()
        want_leaf = scores.clone().requires_grad_(True)
        want = fn(want_leaf, labels)
        want.backward()
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(got_leaf.grad, want_leaf.grad)
    return counter.graphs


@pytest.mark.parametrize(
    "name",
    [
        n if n == "fast-small" else pytest.param(n, marks=pytest.mark.slow)
        for n in ROUTES
    ],
)
def test_compile_fullgraph_one_dynamic_graph(name, monkeypatch):
    # No graph break, no data-dependent guard; a new batch size compiles one
    # dynamic graph, after which no batch size recompiles.
    n_classes, k = use_route(monkeypatch, name)
    sizes = [16, 32, 48, 80, 256]
    for fn in (
        lambda s, y: smooth_topk_svm(s, y, k, 1.0, 0.5),
        lambda s, y: topk_svm(s, y, k),
    ):
        assert compiled_matches_eager(fn, n_classes, sizes) <= 2


@pytest.mark.parametrize("k, n_classes", [(2, 10), (3, 10), (5, 100), (12, 20)])
@pytest.mark.parametrize("fullgraph", [False, True])
def test_compile_with_a_dynamic_class_dimension(k, n_classes, fullgraph):
    # The number of classes is specialised (k >= 2 picks a route and builds
    # its constants from it): dynamic=True, or another class count later,
    # recompiles for it, and the values are eager's (the subsets route once
    # built its constants from a symbolic count: NaN).
    torch._dynamo.reset()
    fn = torch.compile(
        lambda s, y: smooth_topk_svm(s, y, k, 1.0, 0.5, reduction="none"),
        dynamic=True,
        fullgraph=fullgraph,
        backend="eager",
    )
    for c in (n_classes, n_classes + 3):
        scores, labels = problem(8, c, dtype=torch.float32, seed=c)
        got_leaf = scores.clone().requires_grad_(True)
        got = fn(got_leaf, labels)
        got.sum().backward()
        want_leaf = scores.clone().requires_grad_(True)
        want = smooth_topk_svm(want_leaf, labels, k, 1.0, 0.5, reduction="none")
        want.sum().backward()
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(got_leaf.grad, want_leaf.grad)


@pytest.mark.parametrize(
    "name",
    [
        n if n == "fast-small" else pytest.param(n, marks=pytest.mark.slow)
        for n in ROUTES
    ],
)
def test_export_with_a_dynamic_batch(name, monkeypatch):
    n_classes, k = use_route(monkeypatch, name)
    batch = torch.export.Dim("batch", min=2, max=1 << 16)
    for module in (SmoothTopKSVMLoss(k=k, tau=0.5), TopKSVMLoss(k=k)):
        scores, labels = problem(16, n_classes, dtype=torch.float32)
        program = torch.export.export(
            module, (scores, labels), dynamic_shapes=({0: batch}, {0: batch})
        )
        scores, labels = problem(37, n_classes, dtype=torch.float32, seed=1)
        torch.testing.assert_close(
            program.module()(scores, labels), module(scores, labels)
        )


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ["subsets", "fast-small", "fast-grouped"])
def test_jit_trace_follows_the_batch_size(name, monkeypatch):
    n_classes, k = use_route(monkeypatch, name)
    for _ in range(1):
        module = SmoothTopKSVMLoss(k=k)
        traced = torch.jit.trace(module, problem(64, n_classes, torch.float32))
        scores, labels = problem(32, n_classes, torch.float32, seed=2)
        torch.testing.assert_close(traced(scores, labels), module(scores, labels))


# ------------------------------------------------------ autocast, checks


@pytest.mark.parametrize("name", [*ROUTES, "tree"])
def test_autocast_returns_float32_like_cross_entropy(name, monkeypatch):
    n_classes, k = (40, 12) if name == "tree" else use_route(monkeypatch, name)
    scores, labels = problem(8, n_classes, dtype=torch.float32)
    half = scores.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.cross_entropy(half, labels).dtype == torch.float32
        loss = smooth_topk_svm(half, labels, k)
        hard = topk_svm(half, labels, k)
        full = smooth_topk_svm(scores, labels, k)
    assert loss.dtype == hard.dtype == full.dtype == torch.float32
    # Computed in full precision: equal to float32 on the rounded scores.
    rounded = half.detach().float()
    torch.testing.assert_close(loss, smooth_topk_svm(rounded, labels, k))
    torch.testing.assert_close(hard, topk_svm(rounded, labels, k))
    torch.testing.assert_close(full, smooth_topk_svm(scores, labels, k))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss.backward()
    leaf = rounded.clone().requires_grad_(True)
    smooth_topk_svm(leaf, labels, k).backward()
    torch.testing.assert_close(half.grad.float(), leaf.grad, rtol=1e-2, atol=1e-3)


def test_value_checks_follow_the_switch():
    scores, labels = problem(4, 9, dtype=torch.float32)
    bad = labels.clone()
    bad[0] = 9
    with pytest.raises(ValueError, match="labels must be in"):
        smooth_topk_svm(scores, bad, 3)
    previous = set_value_checks(False)
    try:
        with pytest.raises((IndexError, RuntimeError)):  # from the indexing kernel
            smooth_topk_svm(scores, bad, 3)
        # NaN scores are not looked for: a NaN loss, no error.
        nan = scores.clone()
        nan[1, 2] = math.nan
        assert smooth_topk_svm(nan, labels, 3).isnan()
    finally:
        set_value_checks(previous)


def test_no_value_reads_under_vmap():
    # vmap raises on any .item() or data-dependent branch in the checks.
    scores, labels = problem(5, 30, dtype=torch.float32)
    batched = torch.stack([scores, -scores])
    out = torch.vmap(lambda s: topk_svm(s, labels, 3) + smooth_topk_svm(s, labels, 3))(
        batched
    )
    assert out.shape == (2,)


class _ScriptedNet(torch.nn.Module):
    def __init__(self, loss):
        super().__init__()
        self.linear = torch.nn.Linear(5, 9)
        self.loss = loss

    def forward(self, x, y):
        return self.loss(self.linear(x), y)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("module", [SmoothTopKSVMLoss(k=3), TopKSVMLoss(k=3)])
def test_jit_script_calls_the_loss_in_python(module):
    # TorchScript cannot compile the loss; a scripted model calls it back in
    # Python (so it cannot be saved, which raises a clear error).
    net = _ScriptedNet(module)
    scripted = torch.jit.script(net)
    x, labels = torch.randn(6, 5), torch.randint(0, 9, (6,))
    torch.testing.assert_close(scripted(x, labels), net(x, labels))
    with pytest.raises(RuntimeError, match="Python function"):
        torch.jit.save(scripted, io.BytesIO())
