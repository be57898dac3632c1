import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from sktopk.losses import (
    absolute,
    cross_entropy,
    hinge,
    logistic,
    multiclass_hinge,
    square,
)

F64 = torch.float64


@pytest.fixture
def margins(rng):
    f = torch.tensor(rng.normal(0, 2, 20), dtype=F64)
    y = torch.tensor(rng.choice([-1, 1], 20))
    return f, y


def test_logistic_matches_definition(margins, device):
    f, y = margins
    want = np.log1p(np.exp(-(y * f).numpy()))
    got = logistic(f.to(device), y.to(device)).cpu()
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert got.shape == (20,)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logistic_never_overflows(dtype):
    f = torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=dtype, requires_grad=True)
    y = torch.ones(5)
    v = logistic(f, y)
    assert torch.isfinite(v).all()
    assert v[0].item() == pytest.approx(1e4) and v[-1].item() == 0.0
    v.sum().backward()
    assert torch.isfinite(f.grad).all()


def test_hinge_matches_definition(margins):
    f, y = margins
    want = np.maximum(0.0, 1 - (y * f).numpy())
    np.testing.assert_allclose(hinge(f, y).numpy(), want)


def test_regression_losses(rng):
    pred = torch.tensor(rng.normal(size=15), dtype=F64)
    target = torch.tensor(rng.normal(size=15))
    r = (target.double() - pred).numpy()
    np.testing.assert_allclose(square(pred, target).numpy(), r**2)
    np.testing.assert_allclose(absolute(pred, target).numpy(), np.abs(r))


def _scores(rng, n=12, c=5):
    s = torch.tensor(rng.normal(0, 2, (n, c)), dtype=F64)
    labels = torch.tensor(rng.integers(0, c, n))
    return s, labels


def test_cross_entropy_matches_log_softmax(rng, device):
    s, labels = _scores(rng)
    sn = s.numpy()
    m = sn.max(1, keepdims=True)
    lse = (m + np.log(np.exp(sn - m).sum(1, keepdims=True)))[:, 0]
    want = lse - sn[np.arange(12), labels.numpy()]
    got = cross_entropy(s.to(device), labels.to(device)).cpu().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_multiclass_hinge_matches_crammer_singer_loop(rng):
    s, labels = _scores(rng)
    want = []
    for row, y in zip(s.tolist(), labels.tolist(), strict=True):
        other = max(v for j, v in enumerate(row) if j != y)
        want.append(max(0.0, 1 + other - row[y]))
    np.testing.assert_allclose(multiclass_hinge(s, labels).numpy(), want)


def test_multiclass_hinge_two_classes_equals_binary_hinge(rng):
    f = torch.tensor(rng.normal(size=10), dtype=F64)
    y = torch.tensor(rng.choice([-1, 1], 10))
    scores = torch.stack([-f / 2, f / 2], dim=1)  # s_1 - s_0 = f
    labels = (y > 0).long()
    torch.testing.assert_close(multiclass_hinge(scores, labels), hinge(f, y))


def test_gradcheck_individual_losses(rng, margins):
    f, y = margins
    f = f.clone().requires_grad_()
    assert gradcheck(lambda t: logistic(t, y), (f,))
    target = torch.tensor(rng.normal(size=20), dtype=F64)
    assert gradcheck(lambda t: square(t, target), (f,))
    s, labels = _scores(rng)
    s.requires_grad_()
    assert gradcheck(lambda t: cross_entropy(t, labels), (s,))
    assert gradcheck(lambda t: multiclass_hinge(t, labels), (s,))


BAD = [
    (
        lambda: logistic(torch.zeros(3), torch.ones(4)),
        r"y must have the shape of scores \(3,\) or broadcast with it; got y of "
        r"shape \(4,\)",
    ),
    (
        lambda: hinge(torch.zeros(3), torch.tensor([1, 0, -1])),
        r"y must contain only -1 and \+1; got the value 0",
    ),
    (
        lambda: logistic(torch.zeros(2, dtype=torch.long), torch.ones(2)),
        r"scores must be a floating-point tensor; got torch.int64",
    ),
    (
        lambda: square(torch.zeros(3), torch.zeros(2, 1, 2)),
        r"target must have the shape of pred \(3,\) or broadcast with it; got target "
        r"of shape \(2, 1, 2\)",
    ),
    (lambda: absolute([1.0], torch.zeros(1)), r"pred must be a tensor; got list"),
    (
        lambda: cross_entropy(torch.zeros(4), torch.zeros(4, dtype=torch.long)),
        r"scores must be a tensor of shape \(n_samples, n_classes >= 2\); got \(4,\)",
    ),
    (
        lambda: cross_entropy(torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)),
        r"n_classes >= 2\); got \(4, 1\)",
    ),
    (
        lambda: multiclass_hinge(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long)),
        r"labels must be a tensor of shape \(4,\); got \(3,\)",
    ),
    (
        lambda: multiclass_hinge(torch.zeros(2, 3), torch.tensor([0.0, 1.0])),
        r"labels must be an integer tensor; got torch.float32",
    ),
    (
        lambda: cross_entropy(torch.zeros(2, 3), torch.tensor([0, 3])),
        r"labels must be class indices in \[0, 2\]; got values in \[0, 3\]",
    ),
]


@pytest.mark.parametrize("call, match", BAD)
def test_bad_input_raises_a_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- autocast: torch's autocast runs all these losses in float32 -------------------


def _binary(g, n):
    return torch.randn(n, generator=g), torch.randint(0, 2, (n,), generator=g) * 2 - 1


def _regression(g, n):
    return torch.randn(n, generator=g), torch.randn(n, generator=g)


def _multiclass(c):
    def make(g, n):
        labels = torch.randint(0, c, (n,), generator=g)
        return torch.randn(n, c, generator=g) * 3, labels

    return make


NONE = {"reduction": "none"}


def _two_class_margin(s, y):
    # Crammer-Singer with two classes is twice torch's multi_margin_loss (which
    # sums over the wrong classes and divides by C); s_1 - s_0 = f.
    pair = torch.stack([-s / 2, s / 2], 1)
    return 2 * F.multi_margin_loss(pair, (y > 0).long(), **NONE)


AUTOCAST = [
    (logistic, _binary, lambda s, y: F.soft_margin_loss(s, y.float(), **NONE)),
    (hinge, _binary, _two_class_margin),
    (square, _regression, lambda s, y: F.mse_loss(s, y, **NONE)),
    (absolute, _regression, lambda s, y: F.l1_loss(s, y, **NONE)),
    (cross_entropy, _multiclass(1000), lambda s, y: F.cross_entropy(s, y, **NONE)),
    (
        multiclass_hinge,
        _multiclass(2),
        lambda s, y: 2 * F.multi_margin_loss(s, y, **NONE),
    ),
]


@pytest.mark.parametrize(
    "loss, make, torch_loss", AUTOCAST, ids=[c[0].__name__ for c in AUTOCAST]
)
@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_autocast_computes_in_float32_as_torch(loss, make, torch_loss, half):
    g = torch.Generator().manual_seed(0)
    scores, target = make(g, 64)
    scores = scores.to(half)
    with torch.autocast("cpu", dtype=half):
        got, want = loss(scores, target), torch_loss(scores, target)
        mean = loss(scores, target, reduction="mean")
    assert got.dtype == want.dtype == mean.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(mean, want.mean(), rtol=1e-6, atol=1e-6)
    # Outside autocast, half-precision scores give half precision (as torch's
    # cross_entropy does), except where a float target promotes them (as in
    # torch's mse_loss and l1_loss; labels never do).
    regression = loss in (square, absolute)
    assert loss(scores, target).dtype == (torch.float32 if regression else half)
    if regression:
        assert torch_loss(scores, target).dtype == torch.float32


def test_autocast_keeps_float64_and_the_gradient_dtype():
    s = torch.randn(5, 3, dtype=F64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cross_entropy(s, torch.tensor([0, 1, 2, 0, 1])).dtype == F64
        h = torch.randn(5, 3, dtype=torch.bfloat16, requires_grad=True)
        cross_entropy(h, torch.tensor([0, 1, 2, 0, 1])).sum().backward()
    assert h.grad.dtype == torch.bfloat16


# --- label dtypes ------------------------------------------------------------------


@pytest.mark.parametrize("loss", [logistic, hinge])
def test_uint8_labels_holding_a_wrapped_minus_one_raise(loss):
    y = torch.tensor([1, 0, 1], dtype=torch.uint8) * 2 - 1  # [1, 255, 1]
    with pytest.raises(ValueError, match=r"y must contain only -1 and \+1; got the "
                       r"value 255 \(y has the unsigned dtype uint8"):  # fmt: skip
        loss(torch.full((3,), 0.5), y)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.uint16, torch.uint32, torch.bool])
def test_unsigned_labels_of_ones_are_plus_one(dtype):
    f = torch.tensor([0.5, -2.0, 3.0])
    y = torch.ones(3, dtype=dtype)
    want = F.soft_margin_loss(f, torch.ones(3), reduction="none")
    torch.testing.assert_close(logistic(f, y), want)
    torch.testing.assert_close(hinge(f, y), torch.relu(1 - f))


UNSIGNED = [torch.uint8, torch.uint16, torch.uint32, torch.uint64]


@pytest.mark.parametrize("dtype", UNSIGNED)
def test_unsigned_class_labels_match_int64(dtype, rng):
    s, labels = _scores(rng)
    got = cross_entropy(s, labels.to(dtype))
    torch.testing.assert_close(got, F.cross_entropy(s, labels, reduction="none"))
    margin = multiclass_hinge(s, labels.to(dtype))
    torch.testing.assert_close(margin, multiclass_hinge(s, labels))


@pytest.mark.parametrize("dtype", UNSIGNED)
@pytest.mark.parametrize("loss", [cross_entropy, multiclass_hinge])
def test_unsigned_class_labels_out_of_range_raise(loss, dtype):
    labels = torch.tensor([0, 7]).to(dtype)
    with pytest.raises(ValueError, match=r"labels must be class indices in \[0, 4\]; "
                       r"got values in \[0, 7\]"):  # fmt: skip
        loss(torch.zeros(2, 5), labels)
