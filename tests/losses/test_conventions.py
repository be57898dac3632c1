"""torch's conventions: ``dim`` on the aggregates, ``input``/``target`` and
broadcasting on the individual losses, hyper-parameters in ``state_dict``,
value checks only where they read nothing expensive; and the bad values of
issue 13 (large delta in float32, a -inf loss, a non-finite lam)."""

import warnings

import pytest
import torch
import torch.nn.functional as torch_F

import sktopk.losses._fused as fused
from sktopk.losses import (
    ATkLoss,
    MATkLoss,
    STkLoss,
    absolute,
    atk,
    average,
    cross_entropy,
    hinge,
    kth_largest,
    logistic,
    matk,
    maximum,
    multiclass_hinge,
    set_value_checks,
    square,
    stk,
)
from sktopk.losses import functional as F

F64 = torch.float64


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(7)
    return torch.rand(4, 9, generator=g, dtype=F64) * 3


@pytest.fixture
def lams():
    return torch.tensor([0.5, 1.0, 1.5, 2.0], dtype=F64)


# --- dim ----------------------------------------------------------------------------

AGGREGATES = [
    lambda x, t, w, **kw: average(x, w, **kw),
    lambda x, t, w, **kw: maximum(x, w, **kw),
    lambda x, t, w, **kw: atk(x, 3, w, **kw),
    lambda x, t, w, **kw: atk(x, 0.4, w, **kw),
    lambda x, t, w, **kw: matk(x, t, 3, w, **kw),
    lambda x, t, w, **kw: matk(x, t, 0.4, w, **kw),
    lambda x, t, w, **kw: stk(x, t, 3, 0.1, weight=w, **kw),
    lambda x, t, w, **kw: stk(x, t, 0.4, 0.2, "softplus", w, **kw),
    lambda x, t, w, **kw: kth_largest(x, 3, w, **kw) + 0 * t,
]


@pytest.mark.parametrize("fn", AGGREGATES)
@pytest.mark.parametrize("weighted", [False, True])
def test_dim_aggregates_each_row_with_its_lambda(fn, weighted, rows, lams):
    w = torch.arange(1.0, 37.0, dtype=F64).reshape(4, 9) % 4 if weighted else None
    got = fn(rows, lams, w, dim=1)
    want = torch.stack(
        [
            fn(rows[i], lams[i], None if w is None else w[i])
            for i in range(rows.shape[0])
        ]
    )
    torch.testing.assert_close(got, want)
    # the same along dim 0 of the transpose, and along a negative dim
    wt = None if w is None else w.T
    torch.testing.assert_close(fn(rows.T, lams, wt, dim=0), want)
    torch.testing.assert_close(fn(rows, lams, w, dim=-1), want)


def test_dim_keeps_the_other_axes(rows):
    x = rows.reshape(2, 2, 9).transpose(1, 2)  # (2, 9, 2): aggregate dim 1
    lam = torch.tensor([[0.5, 1.0], [1.5, 2.0]], dtype=F64)
    got = stk(x, lam, 3, dim=1)
    assert got.shape == (2, 2)
    torch.testing.assert_close(got, stk(rows, lam.reshape(4), 3, dim=1).reshape(2, 2))


def test_dim_gradients_per_row(rows, lams):
    x, t = rows.clone().requires_grad_(), lams.clone().requires_grad_()
    stk(x, t, 3, dim=1).sum().backward()
    for i in range(4):
        xi, ti = rows[i].clone().requires_grad_(), lams[i].clone().requires_grad_()
        stk(xi, ti, 3).backward()
        torch.testing.assert_close(x.grad[i], xi.grad)
        torch.testing.assert_close(t.grad[i], ti.grad)


def test_one_lambda_shared_by_every_row(rows):
    t = torch.tensor(1.0, dtype=F64, requires_grad=True)
    stk(rows, t, 3, dim=1).sum().backward()
    t2 = torch.tensor([1.0] * 4, dtype=F64, requires_grad=True)
    stk(rows, t2, 3, dim=1).sum().backward()
    torch.testing.assert_close(t.grad, t2.grad.sum())


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x: stk(x, 0.5, 2), ValueError, r"1-D .*pass dim=.*shape=\(4, 9\)"),
        (lambda x: average(x, dim=2), ValueError, r"dim=2 is out of range"),
        (lambda x: atk(x, 2, dim=1.0), TypeError, r"dim must be an int or None"),
        (
            lambda x: stk(x, torch.zeros(3), 2, dim=1),
            ValueError,
            r"lam must be a float or a floating-point tensor that broadcasts to "
            r"the rows' shape \(4,\)",
        ),
        (lambda x: matk(x, 0.5, 10, dim=1), ValueError, r"k=10 .*\[1, n=9\]"),
        (lambda x: average(x[:, :0], dim=1), ValueError, r"non-empty"),
    ],
)
def test_dim_errors(rows, call, error, match):
    with pytest.raises(error, match=match):
        call(rows)


def test_modules_with_dim_and_a_lambda_per_row(rows):
    m = STkLoss(k=3, dim=1, lam=torch.zeros(4))
    got = m.init_lambda(rows)
    torch.testing.assert_close(got, kth_largest(rows, 3, dim=1).float())
    torch.testing.assert_close(m(rows.float()), stk(rows.float(), got, 3, dim=1))
    assert repr(m) == "STkLoss(k=3, delta=0.01, smoothing='srelu', dim=1)"
    assert ATkLoss(2, dim=0)(rows).shape == (9,)
    with pytest.raises(ValueError, match=r"lam=torch.zeros\(\(4,\)\)"):
        MATkLoss(k=3, dim=1).init_lambda(rows)


# --- state_dict ---------------------------------------------------------------------


def test_state_dict_holds_the_hyper_parameters():
    m = STkLoss(k=0.2, delta=0.05, smoothing="elu", lam=1.5)
    state = m.state_dict()
    assert set(state) == {"lam", "_extra_state"}
    other = STkLoss(k=7, delta=0.3)
    other.load_state_dict(state)
    assert (other.k, other.delta, other.smoothing, other.dim) == (
        0.2,
        0.05,
        "elu",
        None,
    )
    assert other.lam.item() == 1.5
    for cls in (MATkLoss, ATkLoss):
        loaded = cls(k=5)
        loaded.load_state_dict(cls(k=0.3).state_dict())
        assert loaded.k == 0.3


def test_state_dict_without_hyper_parameters_is_refused():
    with pytest.raises(RuntimeError, match="_extra_state"):
        STkLoss(k=3).load_state_dict({"lam": torch.tensor(1.0)})
    with pytest.raises(ValueError, match=r"delta must be a finite float > 0"):
        STkLoss(k=3).set_extra_state(
            {"k": 3, "delta": -1.0, "smoothing": "srelu", "dim": None}
        )
    with pytest.raises(ValueError, match=r"must hold \('k', 'dim'\)"):
        MATkLoss(k=3).set_extra_state({"k": 3})


# --- individual losses: torch's names, broadcasting, reduction ---------------------

PAIRS = [
    (logistic, lambda s, t: torch_F.soft_margin_loss(s, t, reduction="none")),
    (hinge, lambda s, t: torch.relu(1 - s * t)),
    (square, lambda s, t: torch_F.mse_loss(s, t, reduction="none")),
    (absolute, lambda s, t: torch_F.l1_loss(s, t, reduction="none")),
]


@pytest.mark.parametrize("fn, ref", PAIRS)
def test_input_and_target_keywords(fn, ref):
    s = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
    t = torch.tensor([1.0, -1.0, -1.0], dtype=F64)
    want = ref(s, t)
    torch.testing.assert_close(fn(s, t), want)
    torch.testing.assert_close(fn(input=s, target=t), want)
    torch.testing.assert_close(fn(s, target=t), want)
    for reduction, reduce in (("mean", torch.mean), ("sum", torch.sum)):
        torch.testing.assert_close(fn(s, t, reduction=reduction), reduce(want))
    with pytest.raises(TypeError, match="got both"):
        fn(s, t, input=s)
    with pytest.raises(TypeError, match="missing a required argument"):
        fn(input=s)
    with pytest.raises(ValueError, match="reduction must be one of"):
        fn(s, t, reduction="batchmean")


@pytest.mark.parametrize("fn, ref", PAIRS)
def test_broadcasting_as_torch_with_its_warning(fn, ref):
    s = torch.tensor([[0.5], [-1.0], [2.0]], dtype=F64)  # (3, 1) against (3,)
    t = torch.tensor([1.0, -1.0, -1.0], dtype=F64)
    with pytest.warns(UserWarning, match="target size .* different to the input"):
        got = fn(s, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = torch_F.mse_loss(s, t, reduction="none")  # torch's broadcast shape
    assert got.shape == want.shape == (3, 3)
    torch.testing.assert_close(got, ref(*torch.broadcast_tensors(s, t)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(t, t)  # same shapes: no warning


@pytest.mark.parametrize("fn", [cross_entropy, multiclass_hinge])
def test_multiclass_keywords_and_reduction(fn):
    s = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]], dtype=F64)
    c = torch.tensor([0, 1])
    torch.testing.assert_close(fn(input=s, target=c), fn(s, c))
    torch.testing.assert_close(fn(s, c, reduction="sum"), fn(s, c).sum())


def test_functional_cross_entropy_is_per_sample():
    s = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 3.0]], dtype=F64)
    c = torch.tensor([0, 1])
    torch.testing.assert_close(
        F.cross_entropy(s, c), torch_F.cross_entropy(s, c, reduction="none")
    )
    torch.testing.assert_close(
        F.cross_entropy(s, c, reduction="mean"), torch_F.cross_entropy(s, c)
    )
    assert "per sample" in F.__doc__ and "reduction" in F.cross_entropy.__doc__


# --- value checks -------------------------------------------------------------------


def test_value_checks_can_be_switched_off_and_on():
    bad = torch.tensor([1.0, 3.0])
    with pytest.raises(ValueError, match="y must contain only -1 and"):
        logistic(torch.zeros(2), bad)
    previous = set_value_checks(False)
    try:
        assert previous is None
        torch.testing.assert_close(
            logistic(torch.zeros(2), bad), torch_F.softplus(torch.zeros(2))
        )
        average(torch.ones(2), weight=torch.tensor([-1.0, 1.0]))  # not read
    finally:
        set_value_checks(previous)
    with pytest.raises(TypeError, match="mode must be True, False or None"):
        set_value_checks("yes")


def test_value_checks_read_nothing_under_vmap():
    labels = torch.tensor([[1.0, 3.0], [-1.0, 1.0]])  # 3 is not checked here
    out = torch.func.vmap(logistic)(torch.zeros(2, 2), labels)
    assert out.shape == (2, 2)


# --- issue 13: bad values ------------------------------------------------------------


@pytest.mark.parametrize("delta", [1e-6, 1e-2, 1.0, 1e6, 1e12, 1e30, 1e38, 1e300])
@pytest.mark.parametrize("one_pass", [True, False])
def test_stk_float32_is_accurate_for_every_delta(delta, one_pass, monkeypatch):
    if not one_pass:
        monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    g = torch.Generator().manual_seed(0)
    ls = torch.rand(32, generator=g) * 3
    lam = torch.tensor(1.0)

    def value_and_grads(x, t):
        x, t = x.clone().requires_grad_(), t.clone().requires_grad_()
        v = stk(x, t, 4, delta)
        return (v.detach(), *torch.autograd.grad(v, (x, t)))

    got = value_and_grads(ls, lam)
    want = value_and_grads(ls.double(), lam.double())
    assert all(torch.isfinite(a).all() for a in got)
    scale = want[0].abs().item() + 1.0
    assert abs(got[0].double() - want[0]).item() <= 2e-6 * scale
    torch.testing.assert_close(got[1].double(), want[1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got[2].double(), want[2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("one_pass", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(
    "smoothing, limit", [("srelu", -0.005), ("softplus", 0.0), ("elu", -0.01)]
)
def test_minus_inf_loss_counts_as_its_limit(
    one_pass, dtype, smoothing, limit, monkeypatch
):
    if not one_pass:
        monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    ls = torch.tensor([0.5, -torch.inf, 2.0, 1.5], dtype=dtype, requires_grad=True)
    lam = torch.tensor(1.0, dtype=dtype, requires_grad=True)
    value = stk(ls, lam, 2, 0.01, smoothing)
    # (phi over the finite losses + phi(-inf)) / 4 + (2/4) lam
    finite = torch.tensor([0.5, 2.0, 1.5], dtype=F64)
    rest = stk(finite, 1.0, 0.5, 0.01, smoothing).item() - 0.5
    want = (3 * rest + limit) / 4 + 0.5
    assert abs(value.item() - want) <= 0.01 / 2 / 4 + 1e-6
    g_l, g_lam = torch.autograd.grad(value, (ls, lam))
    assert torch.isfinite(g_l).all() and torch.isfinite(g_lam) and g_l[1] == 0
    value = matk(ls, lam, 2)
    g_l, g_lam = torch.autograd.grad(value, (ls, lam))
    assert value.item() == pytest.approx((0 + 0 + 1.0 + 0.5) / 4 + 0.5)
    assert torch.isfinite(g_l).all() and g_l[1] == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_lambda_is_refused(bad):
    for make in (lambda: MATkLoss(k=2, lam=bad), lambda: STkLoss(k=2, lam=bad)):
        with pytest.raises(ValueError, match=r"lam must be finite; got lam="):
            make()
    with pytest.raises(ValueError, match=r"lam must be finite"):
        MATkLoss(k=2, lam=torch.tensor([1.0, bad]))
    ls = torch.tensor([1.0, 2.0, 3.0])
    for fn in (stk, matk):
        with pytest.raises(ValueError, match=r"lam must be finite; got lam="):
            fn(ls, bad, 2)
