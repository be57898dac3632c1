"""torch's conventions: ``dim`` on the aggregates, ``input``/``target`` and
broadcasting on the individual losses, hyper-parameters in ``state_dict``,
value checks only where they read nothing expensive; and the bad values of
issue 13 (large delta in float32, a -inf loss, a non-finite lam)."""

import io
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as torch_F

import sktopk.losses._fused as fused
from sktopk.losses import (
    SMOOTHINGS,
    ATkLoss,
    AverageLoss,
    MATkLoss,
    MaximumLoss,
    SmoothTopKSVMLoss,
    STkLoss,
    TopKSVMLoss,
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
    srelu,
    srelu_grad,
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


# Numbers of numpy types, as a grid search or a config file gives them.
NUMPY_HYPER = [
    *((STkLoss, {"k": k}) for k in np.linspace(0.1, 0.5, 5)),
    (ATkLoss, {"k": np.int64(3)}),
    (ATkLoss, {"k": np.float32(0.25)}),
    (MATkLoss, {"k": np.int32(2)}),
    (MATkLoss, {"k": np.float64(1.0)}),  # a fraction: all the losses
    (STkLoss, {"k": np.int64(3), "delta": np.float32(0.05)}),
    (STkLoss, {"k": np.float32(0.3), "smoothing": np.str_("elu")}),
    (
        SmoothTopKSVMLoss,
        {
            "k": np.int64(2),
            "margin": np.float32(0.5),
            "tau": np.float64(0.2),
            "reduction": np.str_("sum"),
        },
    ),
    (TopKSVMLoss, {"k": np.int16(3), "margin": np.float64(2.0)}),
]
_DEFAULT = {
    STkLoss: lambda: STkLoss(k=1),
    ATkLoss: lambda: ATkLoss(k=1),
    MATkLoss: lambda: MATkLoss(k=1),
    SmoothTopKSVMLoss: SmoothTopKSVMLoss,
    TopKSVMLoss: TopKSVMLoss,
}


def _weights_only_round_trip(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("cls, kwargs", NUMPY_HYPER)
def test_numpy_hyper_parameters_are_saved_as_python_numbers(cls, kwargs):
    # numpy's own conversion is the reference: an integer stays an int (a
    # count), a float a float (a fraction), a string a str.
    want = {name: value.item() for name, value in kwargs.items()}
    module = cls(**kwargs)
    state = _weights_only_round_trip(module.state_dict())
    restored = _DEFAULT[cls]()
    restored.load_state_dict(state)
    for name, value in want.items():
        for got in (getattr(module, name), state["_extra_state"][name]):
            assert type(got) is type(value) and got == value
        assert getattr(restored, name) == value
    assert "np." not in repr(module) and repr(restored) == repr(module)


@pytest.mark.parametrize("cls, reduce", [(AverageLoss, "mean"), (MaximumLoss, "amax")])
def test_average_and_maximum_save_their_dim(cls, reduce, rows):
    saved = cls(dim=0)
    state = _weights_only_round_trip(saved.state_dict())
    assert state == {"_extra_state": {"dim": 0}}
    restored = cls()
    restored.load_state_dict(state)
    assert restored.dim == 0 and repr(restored) == f"{cls.__name__}(dim=0)"
    torch.testing.assert_close(restored(rows), getattr(rows, reduce)(0))
    with pytest.raises(TypeError, match="dim must be an int or None"):
        cls().load_state_dict({"_extra_state": {"dim": 1.5}})


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


REGRESSION = [
    (square, lambda p, t: torch_F.mse_loss(p, t, reduction="none")),
    (absolute, lambda p, t: torch_F.l1_loss(p, t, reduction="none")),
]
F16, BF16, F32 = torch.float16, torch.bfloat16, torch.float32
DTYPES = [
    (F32, F64),
    (F16, F32),
    (BF16, F64),
    (F16, BF16),
    (F64, F32),
    (F32, F16),
    (F32, torch.int64),
    (F16, torch.int32),
]


def _prediction_and_target(pred_dtype, target_dtype):
    # 2**24 + 1 is no float32, 1 + 2**-20 no float16: a target cast down to
    # the prediction's dtype would lose the difference.
    big = 2.0**24 if pred_dtype == F32 else 1.0
    pred = torch.tensor([big, 0.5, -2.0], dtype=pred_dtype, requires_grad=True)
    values = [big + 1, 0.25, 3.0] if big > 1 else [1 + 2**-20, 0.25, 3.0]
    if not target_dtype.is_floating_point:
        values = [1, 0, 3]
    return pred, torch.tensor(values, dtype=F64).to(target_dtype)


@pytest.mark.parametrize("fn, ref", REGRESSION)
@pytest.mark.parametrize("pred_dtype, target_dtype", DTYPES)
def test_regression_losses_promote_the_target_as_torch(
    fn, ref, pred_dtype, target_dtype
):
    pred, target = _prediction_and_target(pred_dtype, target_dtype)
    got, want = fn(pred, target), ref(pred, target)
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # dtype included
    (g_got,) = torch.autograd.grad(got.sum(), pred)
    (g_want,) = torch.autograd.grad(want.sum(), pred)
    torch.testing.assert_close(g_got, g_want, rtol=0, atol=0)


@pytest.mark.parametrize("fn, ref", REGRESSION)
@pytest.mark.parametrize("target_dtype", [BF16, F32, F64, torch.int64])
def test_regression_losses_under_autocast_as_torch(fn, ref, target_dtype):
    # Half-precision predictions are computed in float32, as torch's autocast
    # computes mse_loss and l1_loss; a float64 target still promotes.
    pred, target = _prediction_and_target(BF16, target_dtype)
    with torch.autocast("cpu", dtype=BF16):
        got, want = fn(pred, target), ref(pred, target)
    assert got.dtype == want.dtype == torch.promote_types(F32, target.dtype)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


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


# --- weights are constants ----------------------------------------------------------

WEIGHTED = {
    "average": lambda x, w: average(x, w),
    "maximum": lambda x, w: maximum(x, w),
    "atk int": lambda x, w: atk(x, 2, w),
    "atk fraction": lambda x, w: atk(x, 0.5, w),
    "matk": lambda x, w: matk(x, 0.8, 0.5, w),
    **{
        f"stk {name}": lambda x, w, s=name: stk(x, 0.8, 2, 0.1, s, w)
        for name in SMOOTHINGS
    },
    "rows": lambda x, w: stk(x.view(2, 3), 0.8, 2, 0.1, weight=w.view(2, 3), dim=1),
    "AverageLoss": lambda x, w: AverageLoss()(x, w),
    "MaximumLoss": lambda x, w: MaximumLoss()(x, w),
    "ATkLoss": lambda x, w: ATkLoss(k=0.5)(x, w),
    "MATkLoss": lambda x, w: MATkLoss(k=0.5, lam=0.8)(x, w),
    "STkLoss": lambda x, w: STkLoss(k=2, lam=0.8)(x, w),
}


@pytest.mark.parametrize("name", WEIGHTED)
def test_weights_are_constants_no_gradient_flows_to_them(name):
    # As documented: a weight that requires grad is detached.
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, generator=g, dtype=F64, requires_grad=True)
    w = (torch.rand(6, generator=g, dtype=F64) + 0.5).requires_grad_()
    fn = WEIGHTED[name]
    g_x, g_w = torch.autograd.grad(fn(x, w).sum(), (x, w), allow_unused=True)
    assert g_w is None and g_x is not None
    fn(x, w).sum().backward()
    assert w.grad is None
    if not name.endswith("Loss"):  # the modules' lam requires grad
        assert not fn(x.detach(), w).requires_grad


# --- a delta that underflows ----------------------------------------------------------


def _tie_value_and_grads(smoothing, delta, dtype, weighted, rows):
    ls = torch.tensor([0.5, 1.0, 0.2, 0.7, 3.0, -2.0], dtype=dtype)
    x, lam = ls.clone().requires_grad_(), torch.tensor(0.5, dtype=dtype)
    lam.requires_grad_()
    w = torch.ones(6, dtype=dtype) if weighted else None
    if rows:
        v = stk(x.view(1, 6), lam.view(1), 2, delta, smoothing, w, dim=1).sum()
    else:
        v = stk(x, lam, 2, delta, smoothing, w)
    return (v.detach(), *torch.autograd.grad(v, (x, lam)))


@pytest.mark.parametrize("delta", [1e-46, 1e-200, 5e-324])
@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("path", ["plain", "weighted", "rows", "streamed"])
def test_a_delta_that_underflows_is_matk_at_a_tie(
    delta, smoothing, dtype, path, kernels, monkeypatch
):
    # The loss 0.5 ties with lam: as delta -> 0 every smoothing tends to the
    # ReLU, so the value is MATk's, (0.5 + 0.2 + 2.5) / 6 + (2 / 6) 0.5, and
    # the gradient 1/6 on the losses above lam, 0 below, in [0, 1/6] at the
    # tie (1/12 for SReLU and SoftPlus, 1/6 for ELU, delta/6 for LeakyReLU).
    if path == "streamed":
        monkeypatch.setattr(fused, "_ONE_PASS_MAX", 0)
    v, g, g_lam = _tie_value_and_grads(
        smoothing, delta, dtype, path == "weighted", path == "rows"
    )
    assert math.isfinite(v.item()) and math.isfinite(g_lam.item())
    assert torch.isfinite(g).all()
    assert v.item() == pytest.approx(3.2 / 6 + 1 / 6, rel=1e-6)
    above = torch.tensor([0, 1, 0, 1, 1, 0], dtype=F64) / 6
    torch.testing.assert_close(g[1:].double(), above[1:])
    tie = {"srelu": 1 / 12, "softplus": 1 / 12, "elu": 1 / 6, "leaky_relu": 0.0}
    assert g[0].item() == pytest.approx(tie[smoothing], abs=1e-7)
    assert g_lam.item() == pytest.approx(2 / 6 - g.double().sum().item(), abs=1e-7)


@pytest.mark.parametrize("delta", [1e-46, 1e-200, 5e-324])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_srelu_of_a_delta_that_underflows_is_relu(delta, dtype):
    x = torch.tensor([-1.0, 0.0, 1e-30, 2.0], dtype=dtype)
    torch.testing.assert_close(srelu(x, delta), torch.relu(x), rtol=0, atol=1e-38)
    want = torch.tensor([0.0, 0.5, 1.0, 1.0], dtype=dtype)
    torch.testing.assert_close(srelu_grad(x, delta), want, rtol=0, atol=1e-38)
