"""The compiled smooth top-k SVM kernel (numba): the same losses and gradients
as the tensor routes, the same errors, the same autograd behaviour."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD

import sktopk.losses._native as native
import sktopk.losses._svm_kernel as kernel
from sktopk.losses import (
    SmoothTopKSVMLoss,
    matk,
    set_value_checks,
    smooth_topk_svm,
    stk,
)

pytest.importorskip("numba")
pytestmark = pytest.mark.skipif(
    not native.native_available(), reason="compiled kernels off (SKTOPK_NUMBA=0)"
)


@pytest.fixture
def calls(monkeypatch):
    """The number of calls of the kernel."""
    seen = []
    real = kernel.svm_rows

    def spy(*args):
        seen.append(args[2])
        return real(*args)

    monkeypatch.setattr(kernel, "svm_rows", spy)
    return seen


def _problem(n, n_classes, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, n_classes, generator=g) * scale
    return scores, torch.randint(0, n_classes, (n,), generator=g)


def _loss_and_grad(scores, labels, *args, **kwargs):
    s = scores.detach().clone().requires_grad_()
    loss = smooth_topk_svm(s, labels, *args, **kwargs)
    (grad,) = torch.autograd.grad(loss.sum(), s)
    return loss.detach(), grad


def _tensor_routes(monkeypatch):
    monkeypatch.setitem(native._STATE, "on", False)


CASES = [  # n_classes, k, margin, tau
    (2, 1, 1.0, 1.0),
    (11, 1, 0.0, 1.0),
    (11, 2, 1.0, 0.05),
    (11, 10, 1.0, 1.0),
    (40, 5, 0.5, 20.0),
    (40, 7, 1.0, 0.3),
    (100, 5, 1.0, 1.0),  # the top k among the scores reaching a bound
    (600, 10, 2.0, 0.01),
    (600, 1, 1.0, 1.0),  # scanned by blocks for the top k
    (2100, 5, 0.5, 0.5),
]


@pytest.mark.parametrize("n_classes, k, margin, tau", CASES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_kernel_matches_the_tensor_routes(n_classes, k, margin, tau, reduction, calls):
    scores, labels = _problem(9, n_classes, seed=n_classes + k)
    scores[0, :] = 1.5  # ties everywhere
    scores[1, labels[1]] += 50.0  # a tiny loss
    _matches_the_tensor_routes(scores, (labels, k, margin, tau, reduction), calls)


def _matches_the_tensor_routes(scores, args, calls):
    """The kernel's loss and gradient (one call) within float32 rounding of
    the tensor routes' in float64."""
    got = _loss_and_grad(scores, *args)
    assert calls == [args[1]]
    with pytest.MonkeyPatch.context() as patch:
        _tensor_routes(patch)
        want = _loss_and_grad(scores.double(), *args)
    tau = args[3]
    torch.testing.assert_close(got[0].double(), want[0], rtol=2e-6, atol=1e-7 * tau)
    torch.testing.assert_close(got[1].double(), want[1], rtol=1e-5, atol=1e-7)


def test_kernel_is_used_only_where_it_applies(calls):
    scores, labels = _problem(4, 12)
    smooth_topk_svm(scores, labels, 3)
    assert calls == [3]
    smooth_topk_svm(scores.double(), labels, 3)  # float64: the tensor routes
    smooth_topk_svm(scores, labels, 11)  # k > 10
    smooth_topk_svm(scores.half(), labels, 3)  # computed in float32 by the routes
    torch.func.grad(lambda s: smooth_topk_svm(s, labels, 3))(scores)
    torch.compile(smooth_topk_svm, backend="eager")(scores, labels, 3)
    assert calls == [3]


def _rows_with_ties(n_classes, rng):
    yield rng.standard_normal(n_classes)
    yield rng.integers(0, 4, n_classes)  # ties everywhere
    yield np.ones(n_classes)
    yield rng.choice([-0.0, 0.0, -1.0], n_classes)  # -0 and +0 are equal
    yield np.sort(rng.standard_normal(n_classes))
    yield -np.sort(rng.standard_normal(n_classes))


@pytest.mark.parametrize(
    "n_classes, k",
    [(c, k) for c in (2, 3, 9, 80, 101, 700) for k in (1, 2, 5, 10) if k < c],
)
def test_both_selections_give_the_top_k_in_order(n_classes, k):
    rng = np.random.default_rng(11 * n_classes + k)
    for row in _rows_with_ties(n_classes, rng):
        row = row.astype(np.float32)
        for yi in {0, n_classes - 1, int(rng.integers(n_classes))}:
            wrong = [j for j in range(n_classes) if j != yi]
            want = sorted(wrong, key=lambda j: (-row[j], j))[:k]  # first first
            for bounded in (False, True):
                values, classes = kernel.top_k(row, yi, k, bounded)
                assert classes.tolist() == want, (bounded, row, yi)
                assert values.tolist() == row[want].tolist()


LANE_CLASSES = [kernel._LANES_FROM, 40, 100, kernel._LANES_BELOW - 1]


@pytest.mark.parametrize("n_classes", LANE_CLASSES)
@pytest.mark.parametrize("k", [1, 2, 5])
def test_lanes_give_the_top_k_in_order(n_classes, k):
    # Two blocks of rows, every kind of ties among them, the true class first,
    # last or anywhere: the same top k, in the same order, as a sort.
    rng = np.random.default_rng(7 * n_classes + k)
    kinds = list(_rows_with_ties(n_classes, rng))
    rows = np.stack([kinds[i % len(kinds)] for i in range(2 * kernel._LANES)])
    rows = rows.astype(np.float32)
    labels = rng.integers(0, n_classes, len(rows))
    labels[:3] = [0, n_classes - 1, 0]
    values, classes = kernel.top_k_lanes(rows, labels, k)
    for row, yi, got_values, got in zip(rows, labels, values, classes, strict=True):
        wrong = [j for j in range(n_classes) if j != yi]
        want = sorted(wrong, key=lambda j: (-row[j], j))[:k]  # first first
        assert got.tolist() == want, (row, yi)
        assert got_values.tolist() == row[want].tolist()


@pytest.mark.parametrize("n_classes, k", [(300, 2), (100, 7), (10, 3)])
def test_lanes_helper_refuses_what_the_kernel_never_selects_in_lanes(n_classes, k):
    scores, labels = _problem(4, n_classes)
    with pytest.raises(ValueError, match="no lanes' selection"):
        kernel.top_k_lanes(scores.numpy(), labels.numpy(), k)


@pytest.mark.parametrize("n_classes", [6, 100, 20000])
def test_no_rows_give_a_total_of_zero(n_classes):
    s, y = np.zeros((0, n_classes), np.float32), np.zeros(0, np.int64)
    grad = np.empty((0, n_classes), np.float32)
    assert kernel.svm_rows(s, y, 3, 1.0, 1.0, 1.0, np.empty(0), grad, True) == 0.0


@pytest.mark.parametrize("n_classes", LANE_CLASSES)
@pytest.mark.parametrize(
    "k, margin, tau", [(1, 1.0, 1.0), (3, 0.5, 0.05), (5, 1.0, 1.0)]
)
def test_kernel_in_blocks_of_rows_matches_the_tensor_routes(
    n_classes, k, margin, tau, calls
):
    # Two full blocks of rows and a part of one, each selecting its top k in
    # lanes: every row as the tensor routes give it.
    n = 2 * kernel._LANES + 11
    scores, labels = _problem(n, n_classes, seed=n_classes + k)
    scores[0, :] = 1.5  # ties everywhere
    scores[5, labels[5]] += 50.0  # a tiny loss
    scores[40, :] = torch.arange(n_classes) % 3.0  # ties, in another block
    _matches_the_tensor_routes(scores, (labels, k, margin, tau, "none"), calls)


def test_softplus_of_the_ratio_is_exact_at_every_scale():
    # tau softplus(log ratio + w_tau / tau) and its sigmoid, against float64
    # formulas taken where each is exact, on both sides of z = 0 and where
    # w_tau / tau overflows.
    def want(ratio, w_tau, tau):
        z = math.log(ratio) + w_tau / tau
        if z > 0:
            return tau * z + tau * math.log1p(math.exp(-z)), 1 / (1 + math.exp(-z))
        return tau * math.log1p(math.exp(z)), math.exp(z) / (1 + math.exp(z))

    for ratio in (1e-6, 0.3, 1.0, 1.7, 40.0):
        for w_tau in (-800.0, -30.0, -1.2, -1e-9, 0.0, 1e-9, 0.4, 25.0, 900.0):
            for tau in (0.01, 1.0, 30.0):
                got = kernel.softplus(ratio, w_tau, tau)
                np.testing.assert_allclose(got, want(ratio, w_tau, tau), rtol=1e-13)
    loss, sigma = kernel.softplus(2.0, 3.0, 1e-300)  # w overflows: z = inf
    assert loss == 3.0 + 1e-300 * math.log(2.0) and sigma == 1.0
    loss, sigma = kernel.softplus(2.0, -3.0, 1e-300)
    assert loss == 0.0 and sigma == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_are_refused(bad):
    scores, labels = _problem(3, 8)
    scores[2, 5] = bad
    with pytest.raises(ValueError, match="scores must be finite"):
        smooth_topk_svm(scores, labels, 2)


@pytest.mark.parametrize("label", [-1, 8, 1000])
def test_labels_out_of_range_are_refused(label):
    scores, labels = _problem(3, 8)
    labels[1] = label
    with pytest.raises(ValueError, match=r"labels must be in \[0, n_classes - 1\]"):
        smooth_topk_svm(scores, labels, 2)


def test_unchecked_bad_values_take_the_tensor_routes(calls):
    scores, labels = _problem(3, 8)
    scores[0, 0] = math.nan
    previous = set_value_checks(False)
    try:
        loss = smooth_topk_svm(scores, labels, 2, reduction="none")
    finally:
        set_value_checks(previous)
    assert calls == [2]  # the kernel found the NaN and wrote nothing
    assert loss[0].isnan() and torch.isfinite(loss[1:]).all()


def test_status_is_returned_before_anything_is_written():
    s = np.ones((2, 4), np.float32)
    loss, grad = np.full(2, 7.0), np.full((2, 4), 7.0, np.float32)
    assert kernel.svm_rows(s, np.array([0, 4]), 2, 1.0, 1.0, 1.0, loss, grad, True) < 0
    s[1, 1] = np.inf
    assert kernel.svm_rows(s, np.array([0, 3]), 2, 1.0, 1.0, 1.0, loss, grad, True) < 0
    assert (loss == 7.0).all() and (grad == 7.0).all()


@pytest.mark.parametrize("n_classes", [6, 30, 300])
def test_nan_rows_mark_bad_labels_and_scores_in_every_block(n_classes):
    # Bad labels (out of range: no index is taken from them) and non-finite
    # scores give NaN in their own rows only, whether the rows are computed
    # together or one by one; the other rows are as in a clean call.
    scores, labels = _problem(2 * kernel._LANES + 5, n_classes, seed=3)
    s, y = scores.numpy(), labels.numpy().copy()
    n = len(y)
    want_loss, want_grad = np.empty(n), np.empty((n, n_classes), np.float32)
    kernel.svm_rows(s, y, 3, 1.0, 1.0, 1.0, want_loss, want_grad, True)
    bad = [1, 33, 40, n - 1]
    y[1], y[33] = n_classes, -1
    s = s.copy()
    s[40, 2], s[n - 1, 0] = np.nan, -np.inf
    loss, grad = np.empty(n), np.empty((n, n_classes), np.float32)
    total = kernel.svm_rows(s, y, 3, 1.0, 1.0, 1.0, loss, grad, True, nan_rows=True)
    assert math.isnan(total)
    good = np.setdiff1d(np.arange(n), bad)
    assert np.isnan(loss[bad]).all() and np.isnan(grad[bad]).all()
    np.testing.assert_array_equal(loss[good], want_loss[good])
    np.testing.assert_array_equal(grad[good], want_grad[good])


def test_exp_is_accurate_over_its_range():
    t = -np.linspace(0.0, 700.0, 200001)
    out = np.empty_like(t)
    kernel.exp_into(t, 0.0, 1.0, -700.0, out)
    np.testing.assert_allclose(out, np.exp(t), rtol=1e-13, atol=0.0)
    kernel.exp_into(np.array([-800.0, 5.0]), 0.0, 1.0, -700.0, out[:2])
    np.testing.assert_allclose(out[:2], [math.exp(-700.0), 1.0], rtol=1e-13)


def test_gradient_penalty_and_second_backward(monkeypatch):
    scores, labels = _problem(6, 15)

    def penalty_and_grad():
        s = scores.clone().requires_grad_()
        loss = smooth_topk_svm(s, labels, 4, 1.0, 0.5)
        (g,) = torch.autograd.grad(loss, s, create_graph=True)
        (gg,) = torch.autograd.grad(g.pow(2).sum(), s)
        return g.detach(), gg

    got = penalty_and_grad()
    with monkeypatch.context() as patch:
        _tensor_routes(patch)
        want = penalty_and_grad()
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_retained_graph_scaled_outputs_and_forward_mode():
    scores, labels = _problem(5, 9)
    s = scores.clone().requires_grad_()
    loss = smooth_topk_svm(s, labels, 3)
    (g1,) = torch.autograd.grad(loss, s, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, s, torch.tensor(3.0), retain_graph=True)
    (g3,) = torch.autograd.grad(loss, s)
    torch.testing.assert_close(g2, 3 * g1)
    torch.testing.assert_close(g3, g1)
    per_sample = smooth_topk_svm(s, labels, 3, reduction="none")
    w = torch.arange(5.0)
    (g4,) = torch.autograd.grad(per_sample, s, w)
    torch.testing.assert_close(g4, (g1 * 5) * w[:, None], rtol=1e-5, atol=1e-7)
    tangent = torch.randn(5, 9)
    with fwAD.dual_level():
        dual = fwAD.make_dual(scores, tangent)
        out = fwAD.unpack_dual(smooth_topk_svm(dual, labels, 3)).tangent
    torch.testing.assert_close(out, (g1 * tangent).sum(), rtol=1e-5, atol=1e-7)


def test_inputs_as_users_pass_them():
    scores, labels = _problem(7, 13)
    want = smooth_topk_svm(scores, labels, 4, reduction="none")
    view = scores.T.contiguous().T  # same values, column-major
    torch.testing.assert_close(smooth_topk_svm(view, labels, 4, reduction="none"), want)
    torch.testing.assert_close(
        smooth_topk_svm(scores, labels.int(), 4, reduction="none"), want
    )
    with torch.no_grad():
        torch.testing.assert_close(
            smooth_topk_svm(scores, labels, 4).view(1), want.mean().view(1)
        )
    module = SmoothTopKSVMLoss(k=4)
    torch.testing.assert_close(module(scores, labels), want.mean())


# --- as a PyTorch user meets them (a review's findings) ------------------------------


def test_output_can_be_changed_in_place(kernels):
    scores, labels = _problem(8, 40)
    s = scores.clone().requires_grad_()
    loss = smooth_topk_svm(s, labels, 5)
    loss /= 4  # gradient accumulation
    loss.backward()
    torch.testing.assert_close(s.grad, _loss_and_grad(scores, labels, 5)[1] / 4)


def test_scores_changed_in_place_after_the_forward_are_an_error(kernels):
    s = _problem(4, 12)[0].requires_grad_()
    labels = torch.tensor([0, 1, 2, 3])
    x = s * 1  # a non-leaf the user may change
    loss = smooth_topk_svm(x, labels, 3)
    with torch.no_grad():
        x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_result_is_float32_in_host_memory_whatever_the_defaults(kernels):
    scores, labels = _problem(4, 12)
    lam = torch.tensor(0.5, requires_grad=True)
    ls = torch.rand(10, requires_grad=True)
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        with torch.device("meta"):
            for reduction in ("mean", "sum", "none"):
                s = scores.clone().requires_grad_()
                out = smooth_topk_svm(s, labels, 3, reduction=reduction)
                assert out.dtype == torch.float32 and out.device.type == "cpu"
                out.sum().backward()
                assert s.grad.device.type == "cpu"
            for fn in (stk, matk):
                out = fn(ls, lam, 3)
                assert out.dtype == torch.float32 and out.device.type == "cpu"
                out.backward()
    finally:
        torch.set_default_dtype(previous)


def test_batched_backward(kernels):
    scores, labels = _problem(3, 9)
    jac = torch.autograd.functional.jacobian(
        lambda s: smooth_topk_svm(s, labels, 3), scores, vectorize=True
    )
    torch.testing.assert_close(jac, _loss_and_grad(scores, labels, 3)[1])
    ls, lam = torch.rand(12), torch.tensor(0.3)
    jac = torch.autograd.functional.jacobian(
        lambda x: stk(x, lam, 3), ls, vectorize=True
    )
    x = ls.clone().requires_grad_()
    (want,) = torch.autograd.grad(stk(x, lam, 3), x)
    torch.testing.assert_close(jac, want)


def test_double_backward_with_a_tiny_tau_stays_finite(kernels):
    scores, labels = _problem(4, 30, scale=3.0)
    s = scores.requires_grad_()
    (g,) = torch.autograd.grad(
        smooth_topk_svm(s, labels, 1, 1.0, 1e-40), s, create_graph=True
    )
    assert torch.isfinite(g).all()


def test_forward_mode_of_the_tensor_fast_route():
    scores, labels = _problem(5, 40)
    scores = scores.double()  # float64: the tensor routes (the fast one here)
    tangent = torch.randn(5, 40, dtype=torch.float64)
    with fwAD.dual_level():
        dual = fwAD.make_dual(scores, tangent)
        out = fwAD.unpack_dual(smooth_topk_svm(dual, labels, 5)).tangent
    grad = _loss_and_grad(scores, labels, 5)[1]
    torch.testing.assert_close(out, (grad * tangent).sum())


def test_no_writable_cache_folder_compiles_without_caching():
    code = """
import numba
real = numba.njit
def njit(*args, **kwargs):
    if kwargs.get("cache"):
        raise RuntimeError("cannot cache function: no locator available")
    return real(*args, **kwargs)
numba.njit = njit
import torch
from sktopk.losses import smooth_topk_svm, stk
s, y = torch.randn(3, 6, requires_grad=True), torch.tensor([0, 1, 2])
smooth_topk_svm(s, y, 2).backward()
stk(torch.rand(5, requires_grad=True), torch.tensor(0.1), 2).backward()
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert out.stdout.strip() == "ok", out.stderr


def test_row_loop_takes_no_reference_counts():
    # Each array a row's helpers take would otherwise cost an atomic increment
    # and decrement of numba's reference counts: more than a short row's
    # arithmetic (256 x 10, k = 1: 65 us with them, 21 us without).
    if not native._knows_nrt_switch():
        pytest.skip("this numba has no _nrt option: the fallback keeps the counts")
    for size in (1, 5, 10):
        assert getattr(kernel, f"_rows_{size}").targetoptions["_nrt"] is False
        assert "_nrt" not in getattr(kernel, f"_svm_rows_{size}").targetoptions


def test_a_numba_without_the_switch_keeps_the_reference_counts(monkeypatch):
    monkeypatch.setattr(native, "_knows_nrt_switch", lambda: False)

    def double(a):  # pragma: no cover - compiled
        return 2.0 * a[0]

    compiled = native.jit(double, refcounts=False)
    assert "_nrt" not in compiled.targetoptions
    assert compiled(np.array([1.5])) == 3.0


def test_compiled_with_a_changing_tau_is_one_graph():
    scores, labels = _problem(5, 40)
    fn = torch.compile(
        lambda s, y, tau: smooth_topk_svm(s, y, 5, tau=tau),
        fullgraph=True,
        backend="eager",
    )
    for tau in (1.0, 0.5, 0.25):  # a symbolic tau from the second call on
        torch.testing.assert_close(
            fn(scores, labels, tau), smooth_topk_svm(scores, labels, 5, tau=tau)
        )


# ------------------------------------------------- the engine's training step


@pytest.mark.parametrize("n_classes, k, margin, tau", CASES)
def test_engine_step_takes_the_kernel(n_classes, k, margin, tau, calls):
    # The estimators' step (per-sample losses and gradients, no autograd) on a
    # grid of 3 members: the kernel, within float32 rounding of float64.
    from sktopk.losses._svm_registry import smooth_topk_svm_loss_gradient

    scores, labels = _problem(3 * 7, n_classes)
    scores = scores.reshape(3, 7, n_classes)
    params = dict(k=k, margin=margin, tau=tau)
    loss, grad = smooth_topk_svm_loss_gradient(scores, labels[:7], **params)
    assert calls == [k]
    assert loss.dtype == grad.dtype == torch.float32
    assert loss.shape == (3, 7) and grad.shape == scores.shape
    want, want_grad = smooth_topk_svm_loss_gradient(
        scores.double(), labels[:7], **params
    )
    torch.testing.assert_close(loss.double(), want, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grad.double(), want_grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("n_rows, n_classes", [(4, 6), (kernel._LANES, 40)])
def test_engine_step_gives_nan_in_the_rows_of_bad_values_only(n_rows, n_classes, calls):
    # The engine does not check values: it stops a member whose loss is not
    # finite. The kernel gives NaN in that member's rows and the other rows
    # their own values (one diverged member does not send the grid's every
    # step to the tensor routes), also among rows selected together.
    from sktopk.losses._svm_registry import smooth_topk_svm_loss_gradient

    scores, labels = _problem(3 * n_rows, n_classes)
    scores = scores.reshape(3, n_rows, n_classes)
    labels = labels[:n_rows]
    params = dict(k=2, margin=1.0, tau=1.0)
    want, want_grad = smooth_topk_svm_loss_gradient(scores, labels, **params)
    scores[1, 2, 3] = math.nan
    scores[2, 0, 0] = math.inf
    loss, grad = smooth_topk_svm_loss_gradient(scores, labels, **params)
    assert calls == [2, 2]
    bad = torch.zeros(3, n_rows, dtype=torch.bool)
    bad[1, 2] = bad[2, 0] = True
    assert loss[bad].isnan().all() and grad[bad].isnan().all()
    assert torch.equal(loss[~bad], want[~bad])
    assert torch.equal(grad[~bad], want_grad[~bad])
