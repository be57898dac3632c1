"""The smooth and hard top-k SVM losses (Berrada, Zisserman, Kumar, 2018)."""

import functools
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sktopk.losses._svm_large import _smooth_topk_svm_logspace, _smooth_topk_svm_tree
from sktopk.losses._svm_modules import SmoothTopKSVMLoss, TopKSVMLoss
from sktopk.losses._topk_svm import _FAST_MAX_K, smooth_topk_svm, topk_svm

F64 = torch.float64


def brute_force(scores, labels, k, margin, tau):
    """Per-sample loss from its definition, over all k-subsets (float64)."""
    n, n_classes = scores.shape
    subsets = torch.tensor(list(itertools.combinations(range(n_classes), k)))
    means = scores[:, subsets].sum(-1) / k  # (n, n_subsets)
    has_y = (subsets[None] == labels[:, None, None]).any(-1)
    delta = margin * (~has_y).to(scores.dtype)
    all_sets = torch.logsumexp((means + delta) / tau, 1)
    with_y = torch.logsumexp((means / tau).masked_fill(~has_y, -math.inf), 1)
    return tau * (all_sets - with_y)


SMOOTH = functools.partial(smooth_topk_svm, reduction="none")
HARD = functools.partial(topk_svm, reduction="none")
LOGSPACE = _smooth_topk_svm_logspace
TREE = _smooth_topk_svm_tree


def loss_and_grad(fn, scores, labels, *args):
    """Per-sample losses ``fn(scores, labels, *args)`` and their gradient."""
    s = scores.detach().clone().requires_grad_(True)
    loss = fn(s, labels, *args)
    (grad,) = torch.autograd.grad(loss.sum(), s)
    return loss.detach(), grad


def row_rel_error(got, want, floor=1e-25):
    """Largest error per row relative to the row's largest |gradient|."""
    err = (got.double() - want).abs().amax(1)
    return (err / want.abs().amax(1).clamp_min(floor)).max().item()


def random_problem(rng, n, n_classes, scale=1.0):
    scores = torch.tensor(rng.normal(scale=scale, size=(n, n_classes)))
    labels = torch.tensor(rng.integers(0, n_classes, size=n))
    return scores, labels


# --------------------------------------------------------------- exactness


@pytest.mark.parametrize("n_classes", range(2, 10))
def test_matches_brute_force(n_classes, rng):
    for k in range(1, n_classes):
        scores, labels = random_problem(rng, 6, n_classes, scale=2.0)
        margin, tau = rng.uniform(0, 2), math.exp(rng.uniform(-3, 1))
        got = loss_and_grad(SMOOTH, scores, labels, k, margin, tau)
        want = loss_and_grad(brute_force, scores, labels, k, margin, tau)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_classes=st.integers(2, 6),
    tau=st.floats(1e-3, 10.0),
    margin=st.floats(0.0, 3.0),
    ties=st.booleans(),
)
def test_brute_force_property(data, n_classes, tau, margin, ties):
    # Wide spreads and exact ties, every k: value and gradient as defined.
    k = data.draw(st.integers(1, n_classes - 1))
    values = st.integers(-3, 3) if ties else st.floats(-300.0, 300.0)
    rows = data.draw(
        st.lists(
            st.lists(values, min_size=n_classes, max_size=n_classes),
            min_size=1,
            max_size=3,
        )
    )
    scores = torch.tensor(rows, dtype=F64)
    labels = torch.tensor(
        data.draw(
            st.lists(
                st.integers(0, n_classes - 1), min_size=len(rows), max_size=len(rows)
            )
        )
    )
    loss, grad = loss_and_grad(SMOOTH, scores, labels, k, margin, tau)
    want_loss, want_grad = loss_and_grad(brute_force, scores, labels, k, margin, tau)
    scale = 1.0 + scores.abs().max() / k  # the loss is of the size of the slack
    torch.testing.assert_close(loss, want_loss, rtol=1e-9, atol=1e-12 * scale)
    torch.testing.assert_close(grad, want_grad, rtol=1e-7, atol=1e-9)
    assert grad.sum(1).abs().max() < 1e-12


@pytest.mark.parametrize("route", [TREE, LOGSPACE], ids=["tree", "logspace"])
@pytest.mark.parametrize("n_classes", [2, 5, 9])
def test_large_k_routes_match_brute_force(route, n_classes, rng):
    # The routes smooth_topk_svm takes for k > _FAST_MAX_K (product trees) and
    # for C(n_classes - 1, k) beyond float64 (log-space), on small problems.
    for k in range(1, n_classes):
        scores, labels = random_problem(rng, 4, n_classes, scale=2.0)
        got = loss_and_grad(route, scores, labels, k, 0.7, 0.3)
        want = loss_and_grad(brute_force, scores, labels, k, 0.7, 0.3)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("k", [_FAST_MAX_K + 1, 16])
def test_large_k_route_float32(k, rng):
    # k above the fast route's limit: exact log-space route, float32 results.
    scores, labels = random_problem(rng, 8, 40, scale=3.0)
    s32 = scores.float()
    got = loss_and_grad(SMOOTH, s32, labels, k, 1.0, 0.2)
    want = loss_and_grad(LOGSPACE, s32.double(), labels, k, 1.0, 0.2)
    assert got[0].dtype == got[1].dtype == torch.float32
    torch.testing.assert_close(got[0].double(), want[0], rtol=1e-5, atol=1e-7)
    assert row_rel_error(got[1], want[1]) < 1e-5


def test_routes_agree(rng):
    scores, labels = random_problem(rng, 16, 60, scale=4.0)
    for k in (1, 3, _FAST_MAX_K, 20):
        want = loss_and_grad(LOGSPACE, scores, labels, k, 0.5, 0.1)
        for route in (SMOOTH, TREE):
            got = loss_and_grad(route, scores, labels, k, 0.5, 0.1)
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


def test_huge_k_logspace_route():
    # C(1199, 600) ~ 1e359 overflows float64: the log-space route takes over.
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(3, 1200, generator=gen, dtype=F64)
    labels = torch.tensor([0, 5, 1199])
    loss, grad = loss_and_grad(SMOOTH, scores, labels, 600, 1.0, 1.0)
    assert torch.isfinite(loss).all() and (loss > 0).all()
    assert grad.sum(1).abs().max() < 1e-12
    loss32, grad32 = loss_and_grad(SMOOTH, scores.float(), labels, 600, 1.0, 1.0)
    torch.testing.assert_close(loss32.double(), loss, rtol=1e-6, atol=0.0)
    assert row_rel_error(grad32, grad) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n_classes", [2, 10, 1000])
def test_k1_alpha0_tau1_is_cross_entropy(dtype, n_classes, rng):
    scores, labels = random_problem(rng, 32, n_classes, scale=3.0)
    scores = scores.to(dtype)
    got = loss_and_grad(SMOOTH, scores, labels, 1, 0.0, 1.0)
    want = loss_and_grad(
        functools.partial(F.cross_entropy, reduction="none"), scores, labels
    )
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


# ------------------------------------------------------ float32 robustness


@pytest.mark.parametrize("tau", [0.1, 1.0])
@pytest.mark.parametrize("k", [1, 5])
def test_shift_by_1e3_float32(tau, k, rng, kernels):
    # Scores on a 2^-10 grid, so that s + 1000 is exact in float32 and any
    # change comes from the loss computation itself.
    scores, labels = random_problem(rng, 64, 50, scale=3.0)
    scores = (scores * 1024).round().div(1024).float()
    loss, grad = loss_and_grad(SMOOTH, scores, labels, k, 1.0, tau)
    loss_s, grad_s = loss_and_grad(SMOOTH, scores + 1000, labels, k, 1.0, tau)
    torch.testing.assert_close(loss_s, loss, rtol=1e-4, atol=1e-6)
    assert row_rel_error(grad_s, grad.double()) < 1e-4


@pytest.mark.parametrize("n_classes", [10, 100, 1000])
@pytest.mark.parametrize("tau", [0.1, 1.0])
@pytest.mark.parametrize("scale", [3.0, 30.0, 300.0])
def test_float32_matches_float64(n_classes, tau, scale, rng, kernels):
    scores, labels = random_problem(rng, 64, n_classes, scale=scale)
    s32 = scores.float()
    loss32, grad32 = loss_and_grad(SMOOTH, s32, labels, 5, 1.0, tau)
    loss64, grad64 = loss_and_grad(SMOOTH, s32.double(), labels, 5, 1.0, tau)
    assert torch.allclose(loss32.double(), loss64, rtol=1e-5, atol=1e-6 * tau)
    # The issue asks for 1e-3; the computation does far better (about 1e-6).
    assert row_rel_error(grad32, grad64) < 1e-4


@pytest.mark.parametrize("k", [1, 2, 5, 8, _FAST_MAX_K])
def test_float32_adversarial_ties_and_clusters(k, rng, kernels):
    # Many wrong scores tied with, or just below, the k-th largest: the regime
    # where Newton's identities and polynomial deflation would lose accuracy.
    levels = np.array([0.0, -0.5, -1.0, -2.0, -4.0, -30.0])
    for _ in range(20):
        n_classes = int(rng.integers(k + 1, 4 * k + 40))
        probs = rng.dirichlet(np.ones(len(levels)))
        idx = rng.choice(len(levels), size=(16, n_classes), p=probs)
        tau = float(rng.uniform(0.01, 2.0)) / k
        scores = torch.tensor(levels[idx] * k * tau).float()
        labels = torch.tensor(rng.integers(0, n_classes, size=16))
        loss32, grad32 = loss_and_grad(SMOOTH, scores, labels, k, 1.0, tau)
        loss64, grad64 = loss_and_grad(SMOOTH, scores.double(), labels, k, 1.0, tau)
        assert torch.allclose(loss32.double(), loss64, rtol=1e-5, atol=1e-7)
        assert row_rel_error(grad32, grad64) < 1e-4


def test_huge_scores_float32(rng, kernels):
    scores, labels = random_problem(rng, 16, 30, scale=1e30)
    s32 = scores.float()
    loss, grad = loss_and_grad(SMOOTH, s32, labels, 3, 1.0, 1.0)
    loss64, grad64 = loss_and_grad(SMOOTH, s32.double(), labels, 3, 1.0, 1.0)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    torch.testing.assert_close(loss.double(), loss64, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(grad.double(), grad64, rtol=0.0, atol=1e-6)


# ---------------------------------------------------- limits and gradients


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("k", [3, _FAST_MAX_K + 1])
def test_tau_to_zero_converges_to_hard_loss(dtype, k, rng):
    scores, labels = random_problem(rng, 64, 12, scale=2.0)
    scores = scores.to(dtype)
    hard = topk_svm(scores, labels, k, 0.8, reduction="none")
    log_n_subsets = math.log(math.comb(12, k))
    for tau in (1.0, 1e-1, 1e-2, 1e-4, 1e-8, 1e-20, 1e-45):
        smooth = smooth_topk_svm(scores, labels, k, 0.8, tau, reduction="none")
        assert torch.isfinite(smooth).all()
        # Both log-sum-exps lie within tau * log(#subsets) of their maxima.
        gap = (smooth - hard).abs().max().item()
        assert gap <= tau * log_n_subsets + 1e-6
    torch.testing.assert_close(smooth, hard)


def test_hard_loss_closed_form(rng):
    scores, labels = random_problem(rng, 200, 11, scale=2.0)
    s, y = scores.float().numpy(), labels.numpy()
    for k in (1, 4, 10):
        for margin in (0.0, 1.0):
            wrong = s.copy()
            wrong[np.arange(len(y)), y] = -np.inf
            kth = np.sort(wrong, axis=1)[:, -k]
            want = np.maximum(0.0, margin + (kth - s[np.arange(len(y)), y]) / k)
            got = topk_svm(scores.float(), labels, k, margin, reduction="none")
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-7)


def test_hard_loss_gradient(rng):
    scores, labels = random_problem(rng, 50, 8)
    k = 3
    loss, grad = loss_and_grad(HARD, scores, labels, k, 1.0)
    active = loss > 0
    rows = torch.arange(50)
    assert torch.allclose(grad[rows, labels], -active.double() / k)
    assert torch.allclose(grad.sum(1), torch.zeros(50, dtype=F64))
    assert ((grad > 0).sum(1) == active.long()).all()


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("k", [1, 3, 7])
@pytest.mark.parametrize("tau", [0.01, 1.0])
def test_gradient_sums_to_zero_and_is_bounded(dtype, k, tau, rng):
    scores, labels = random_problem(rng, 64, 20, scale=3.0)
    _, grad = loss_and_grad(SMOOTH, scores.to(dtype), labels, k, 1.0, tau)
    eps = 1e-6 if dtype == torch.float32 else 1e-12
    assert grad.sum(1).abs().max() <= eps
    assert grad.abs().max() <= 1.0 / k + eps
    rows = torch.arange(64)
    assert (grad[rows, labels] <= 0).all()
    assert (grad.index_put((rows, labels), torch.zeros(64, dtype=dtype)) >= -eps).all()


def test_loss_is_nonnegative(rng):
    scores, labels = random_problem(rng, 500, 15, scale=5.0)
    for k, tau in [(1, 0.1), (4, 1.0), (14, 0.5)]:
        loss = smooth_topk_svm(scores, labels, k, 0.0, tau, reduction="none")
        assert (loss >= 0).all()


@pytest.mark.parametrize("k", [1, 4, 11])
@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_gradcheck(k, tau, rng):
    scores, labels = random_problem(rng, 5, 13, scale=2.0)
    scores.requires_grad_(True)

    def fn(s):
        return smooth_topk_svm(s, labels, k, 0.7, tau, reduction="none")

    assert torch.autograd.gradcheck(fn, (scores,), eps=1e-6, atol=1e-8)


def crossing_path(k, tau, steps=4001):
    """Scores along which the (k+1)-th wrong score overtakes the k-th one.

    It crosses the gap ``k tau ln(1000)`` at which the published code switches
    per sample to the hard loss, with the hard slack at 0 there, so that such
    a switch would jump by ``tau ln 2``, hundreds of times the step bound.
    """
    gap = k * tau * math.log(1000.0)
    base = torch.linspace(-3.0, -5.0, 10, dtype=F64)
    base[1 : k + 1] = 0.2 + 0.1 * torch.arange(k, 0, -1, dtype=F64) - 0.1  # top-k
    base[0] = 0.2 + 1.0 * k  # true class: margin + (s'_[k] - s_y) / k = 0
    path = base.repeat(steps, 1)
    path[:, k + 1] = 0.2 + torch.linspace(-3 * gap, 0.5 * gap, steps, dtype=F64)
    return path, torch.zeros(steps, dtype=torch.long)


def increments_within_lipschitz(loss, path, k, slack):
    # The loss is (2/k)-Lipschitz in the max norm: its gradient has l1 norm
    # 2 sigma / k (-sigma / k on the true class, >= 0 on the others).
    step = (path[1:].double() - path[:-1].double()).abs().amax(1)
    jumps = (loss[1:].double() - loss[:-1].double()).abs()
    return bool((jumps <= 2.0 / k * step + slack).all())


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("tau", [1e-2, 1e-4])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_no_jumps_along_a_path(dtype, tau, k, rng):
    slack = 1e-7 * tau if dtype == torch.float32 else 1e-14
    path, labels = crossing_path(k, tau)
    loss = smooth_topk_svm(path.to(dtype), labels, k, 1.0, tau, reduction="none")
    assert increments_within_lipschitz(loss, path.to(dtype), k, slack)
    # A random smooth path through all the classes.
    start, end = (torch.tensor(rng.normal(size=(1, 12))) for _ in range(2))
    t = torch.linspace(0.0, 1.0, 4001, dtype=F64)[:, None]
    path = (start + t * (end - start) + 0.3 * torch.sin(7 * t * end)).to(dtype)
    labels = torch.full((4001,), 3)
    loss = smooth_topk_svm(path, labels, k, 1.0, tau, reduction="none")
    assert increments_within_lipschitz(
        loss, path, k, 1e-7 if dtype == torch.float32 else 1e-14
    )


def test_path_check_detects_a_switch_to_the_hard_loss():
    # The check above fails for a loss that switches as the published code does.
    k, tau = 2, 1e-2
    path, labels = crossing_path(k, tau)
    wrong = path.scatter(1, labels[:, None], -math.inf).topk(k + 1, dim=1).values
    switched = torch.where(
        wrong[:, k - 1] - wrong[:, k] > k * tau * math.log(1000.0),
        topk_svm(path, labels, k, 1.0, reduction="none"),
        smooth_topk_svm(path, labels, k, 1.0, tau, reduction="none"),
    )
    assert not increments_within_lipschitz(switched, path, k, 1e-14)


# ------------------------------------------------------- API and plumbing


def test_reductions(rng):
    scores, labels = random_problem(rng, 7, 6)
    none = smooth_topk_svm(scores, labels, 2, reduction="none")
    assert none.shape == (7,)
    torch.testing.assert_close(smooth_topk_svm(scores, labels, 2), none.mean())
    torch.testing.assert_close(
        smooth_topk_svm(scores, labels, 2, reduction="sum"), none.sum()
    )
    hard = topk_svm(scores, labels, 2, reduction="none")
    assert hard.shape == (7,)
    torch.testing.assert_close(topk_svm(scores, labels, 2, reduction="sum"), hard.sum())


def test_edge_shapes(rng):
    scores, labels = random_problem(rng, 3, 2)
    torch.testing.assert_close(
        smooth_topk_svm(scores, labels, 1, 1.0, 0.5, reduction="none"),
        brute_force(scores, labels, 1, 1.0, 0.5),
    )
    empty = torch.zeros(0, 5)
    no_labels = torch.zeros(0, dtype=torch.long)
    assert smooth_topk_svm(empty, no_labels, 2, reduction="none").shape == (0,)
    assert smooth_topk_svm(empty, no_labels, 2, reduction="sum").item() == 0.0
    assert topk_svm(empty, no_labels, 2, reduction="none").shape == (0,)


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.int64])
def test_label_dtypes(dtype, rng):
    scores, labels = random_problem(rng, 5, 6)
    want = smooth_topk_svm(scores, labels, 2)
    torch.testing.assert_close(smooth_topk_svm(scores, labels.to(dtype), 2), want)
    torch.testing.assert_close(smooth_topk_svm(scores, labels.numpy(), 2), want)


_INTEGER_DTYPES = [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8] + [
    getattr(torch, name)
    for name in ("uint16", "uint32", "uint64")
    if hasattr(torch, name)
]


@pytest.mark.parametrize("dtype", _INTEGER_DTYPES, ids=str)
def test_every_integer_label_dtype(dtype, kernels, rng):
    # uint16/32/64 once failed in the range check (no CPU aminmax for them)
    scores, labels = random_problem(rng, 5, 6)
    scores = scores.float()  # the compiled kernel's dtype
    want = smooth_topk_svm(scores, labels, 2)
    torch.testing.assert_close(smooth_topk_svm(scores, labels.to(dtype), 2), want)
    labels[0] = 6
    with pytest.raises(ValueError, match=r"labels must be in \[0, n_classes - 1\]"):
        smooth_topk_svm(scores, labels.to(dtype), 2)


def test_half_precision_scores(rng):
    scores, labels = random_problem(rng, 5, 6)
    s16 = scores.to(torch.bfloat16).requires_grad_(True)
    loss = smooth_topk_svm(s16, labels, 2)
    loss.backward()
    assert loss.dtype == s16.grad.dtype == torch.bfloat16
    want = smooth_topk_svm(s16.detach().double(), labels, 2)
    torch.testing.assert_close(loss.double(), want, rtol=1e-2, atol=1e-2)


def test_modules(rng):
    scores, labels = random_problem(rng, 9, 7)
    crit = SmoothTopKSVMLoss(k=3, margin=0.5, tau=0.2, reduction="sum")
    torch.testing.assert_close(
        crit(scores, labels), smooth_topk_svm(scores, labels, 3, 0.5, 0.2, "sum")
    )
    hard = TopKSVMLoss(k=3, margin=0.5, reduction="none")
    torch.testing.assert_close(
        hard(scores, labels), topk_svm(scores, labels, 3, 0.5, "none")
    )
    for module in (crit, hard):
        assert not list(module.buffers()) and not list(module.parameters())
        assert "k=3" in repr(module)
    with pytest.raises(ValueError, match="tau"):
        SmoothTopKSVMLoss(tau=0.0)
    with pytest.raises(ValueError, match="reduction"):
        TopKSVMLoss(reduction="max")


# --------------------------------------------------------------- bad input

BAD_INPUTS = [
    (dict(scores=torch.zeros(4)), "scores must be a 2-D"),
    (dict(scores=torch.zeros(2, 3, 4)), "scores must be a 2-D"),
    (dict(scores=torch.zeros(4, 5, dtype=torch.long)), "floating-point"),
    (dict(scores=torch.zeros(4, 1)), "at least 2 classes"),
    (dict(scores=torch.eye(4, 5).to_sparse()), "scores must be a dense tensor"),
    (dict(scores=torch.tensor([[0.0, math.nan, 1.0, 2.0, 3.0]] * 4)), "finite"),
    (dict(scores=torch.tensor([[0.0, math.inf, 1.0, 2.0, 3.0]] * 4)), "finite"),
    (dict(scores=torch.tensor([[0.0, -math.inf, 1.0, 2.0, 3.0]] * 4)), "finite"),
    (dict(labels=torch.tensor([0, 1, 2, 5])), r"labels must be in .* = \[0, 4\]"),
    (dict(labels=torch.tensor([0, -1, 2, 3])), r"labels must be in .* = \[0, 4\]"),
    (dict(labels=torch.tensor([0.0, 1.0, 2.0, 3.0])), "labels must be an integer"),
    (dict(labels=torch.tensor([True, False, True, True])), "labels must be an integer"),
    (dict(labels=torch.tensor([0, 1, 2])), r"labels must have shape \(n_samples,\)"),
    (dict(labels=torch.tensor([[0, 1, 2, 3]])), r"labels must have shape"),
    (dict(k=0), r"k must be in \[1, n_classes - 1\] = \[1, 4\]"),
    (dict(k=5), "k = n_classes is meaningless"),
    (dict(k=7), r"\[1, 4\]; got 7. k = n_classes is meaningless"),
    (dict(k=2.0), "k must be an integer"),
    (dict(k=True), "k must be an integer"),
    (
        dict(k=torch.tensor(2)),
        r"k must be an integer \(an int or a numpy integer; not a bool, float or "
        r"tensor\) in \[1, n_classes - 1\]; got tensor\(2\) \(Tensor\)",
    ),
    (dict(margin=-0.1), "margin must be a finite number >= 0"),
    (dict(margin=math.nan), "margin must be a finite number >= 0"),
    (dict(tau=0.0), "tau must be a finite number > 0"),
    (dict(tau=-1.0), "tau must be a finite number > 0"),
    (dict(tau=math.inf), "tau must be a finite number > 0"),
    (dict(tau=1e-320), r"tau must be larger than about 2.78e-309 for k = 2"),
    (dict(k=10**400), r"k must be in \[1, n_classes - 1\] = \[1, 4\]"),
    (dict(reduction="max"), "reduction must be one of"),
]


@pytest.mark.parametrize("kwargs, match", BAD_INPUTS)
def test_bad_input(kwargs, match):
    args = dict(scores=torch.zeros(4, 5), labels=torch.tensor([0, 1, 2, 3]), k=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        smooth_topk_svm(**args)
    if "tau" not in kwargs:
        with pytest.raises(ValueError, match=match):
            topk_svm(**args)


def test_non_tensor_scores():
    with pytest.raises(TypeError, match="scores must be a torch.Tensor"):
        smooth_topk_svm([[0.0, 1.0]], torch.tensor([0]), 1)


# ----------------------------------------------------------------- devices


def test_device(device, rng):
    scores, labels = random_problem(rng, 32, 50, scale=3.0)
    want = loss_and_grad(SMOOTH, scores.float(), labels, 5, 1.0, 0.1)
    # Labels stay on the CPU: the loss moves them, whatever the scores' device.
    got = loss_and_grad(SMOOTH, scores.float().to(device), labels, 5, 1.0, 0.1)
    torch.testing.assert_close((got[0].cpu(), got[1].cpu()), want, rtol=1e-5, atol=1e-6)
    hard = topk_svm(scores.to(device), labels, 5, reduction="none")
    torch.testing.assert_close(
        hard.cpu(), topk_svm(scores, labels, 5, reduction="none")
    )
    big = loss_and_grad(SMOOTH, scores.to(device), labels, 12, 1.0, 0.1)
    assert big[0].device == scores.to(device).device


def test_module_follows_device(device, rng):
    scores, labels = random_problem(rng, 8, 10)
    crit = SmoothTopKSVMLoss(k=3).to(device)
    loss = crit(scores.to(device), labels.to(device))
    torch.testing.assert_close(loss.cpu(), smooth_topk_svm(scores, labels, 3))


@pytest.mark.parametrize(
    "n_classes, k", [(30, 5), (200, 3), (14, 10), (9, 2), (10, 5), (40, 1), (300, 1)]
)
def test_registry_loss_gradient(n_classes, k, rng):
    # The engine's value and gradient (batched over members, in closed form
    # over the k-subsets and on the fast route) against autograd of the
    # independent log-space route.
    from sktopk.losses import get_individual_loss

    info = get_individual_loss("smooth_topk_svm")
    f = torch.tensor(rng.normal(scale=2.0, size=(2, 3, 7, n_classes)))
    y = torch.tensor(rng.integers(0, n_classes, size=7))
    value, grad = info.loss_gradient(f, y, k=k, margin=0.7, tau=0.4)
    flat, labels = f.reshape(-1, n_classes), y.repeat(6)
    want = loss_and_grad(LOGSPACE, flat, labels, k, 0.7, 0.4)
    torch.testing.assert_close(value.reshape(-1), want[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad.reshape(flat.shape), want[1], rtol=1e-9, atol=1e-12)
    assert grad.shape == f.shape


def test_registry_route_follows_batch_size(rng):
    # Few k-subsets but a large batch: the engine takes the fast route, as the
    # loss does; same values as the log-space route.
    from sktopk.losses import get_individual_loss
    from sktopk.losses._topk_svm import _route

    f = torch.tensor(rng.normal(size=(100, 20, 10)))
    y = torch.tensor(rng.integers(0, 10, size=20))
    assert _route(2000, 10, 5) == "fast" and _route(20, 10, 5) == "subsets"
    info = get_individual_loss("smooth_topk_svm")
    value, grad = info.loss_gradient(f, y, k=5, margin=0.7, tau=0.4)
    want = loss_and_grad(LOGSPACE, f.reshape(-1, 10), y.repeat(100), 5, 0.7, 0.4)
    torch.testing.assert_close(value.reshape(-1), want[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad.reshape(-1, 10), want[1], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tau", [1e-3, 1.0, 50.0])
def test_registry_subsets_float32(tau, rng):
    # The engine's closed form over the k-subsets, computed in float32 for
    # float32 scores, against float64: large scores and a small tau make the
    # terms huge; the results stay accurate to float32's rounding of them.
    from sktopk.losses import get_individual_loss

    info = get_individual_loss("smooth_topk_svm")
    f = torch.tensor(rng.normal(scale=30.0, size=(2, 16, 10)))
    y = torch.tensor(rng.integers(0, 10, size=16))
    value, grad = info.loss_gradient(f.float(), y, k=5, margin=1.0, tau=tau)
    want = info.loss_gradient(f, y, k=5, margin=1.0, tau=tau)
    assert value.dtype == grad.dtype == torch.float32
    torch.testing.assert_close(value.double(), want[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), want[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_classes, k", [(5, 2), (40, 1), (40, 5), (300, 12)])
def test_empty_batch_reduces_as_cross_entropy(n_classes, k):
    s = torch.zeros(0, n_classes, requires_grad=True)
    labels = torch.zeros(0, dtype=torch.long)
    assert smooth_topk_svm(s, labels, k, reduction="none").shape == (0,)
    assert smooth_topk_svm(s, labels, k, reduction="sum").item() == 0.0
    loss = smooth_topk_svm(s, labels, k)
    assert loss.isnan()
    loss.backward()
    assert s.grad.shape == (0, n_classes)
