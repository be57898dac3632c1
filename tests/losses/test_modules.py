import copy
import math
import pickle

import pytest
import torch

from sktopk.losses import (
    ATkLoss,
    AverageLoss,
    MATkLoss,
    MaximumLoss,
    SmoothTopKSVMLoss,
    STkLoss,
    TopKSVMLoss,
    atk,
    average,
    logistic,
    matk,
    maximum,
    smooth_topk_svm,
    stk,
    topk_svm,
)

F64 = torch.float64


@pytest.fixture
def losses(rng):
    return torch.tensor(rng.permutation(rng.uniform(0, 3, 10)), dtype=F64)


def test_forward_equals_functional(losses):
    w = torch.arange(10, dtype=F64)
    torch.testing.assert_close(AverageLoss()(losses, w), average(losses, w))
    torch.testing.assert_close(MaximumLoss()(losses), maximum(losses))
    torch.testing.assert_close(ATkLoss(3)(losses), atk(losses, 3))
    m = MATkLoss(0.3, lam=1.5)
    torch.testing.assert_close(m(losses), matk(losses, 1.5, 0.3))
    s = STkLoss(4, delta=0.1, smoothing="elu", lam=0.7)
    torch.testing.assert_close(s(losses, w), stk(losses, 0.7, 4, 0.1, "elu", w))


@pytest.mark.parametrize("cls", [MATkLoss, STkLoss])
def test_lambda_is_a_trainable_parameter(cls, losses):
    m = cls(k=3)
    assert [n for n, _ in m.named_parameters()] == ["lam"]
    assert "lam" in m.state_dict() and m.lam.requires_grad
    m(losses).backward()
    assert m.lam.grad is not None


@pytest.mark.parametrize("cls", [MATkLoss, STkLoss])
@pytest.mark.parametrize("k, count", [(3, 3), (0.25, 3), (1, 1), (1.0, 10)])
def test_init_lambda_is_kth_largest(cls, losses, k, count):
    m = cls(k=k)
    got = m.init_lambda(losses)
    want = torch.sort(losses, descending=True).values[count - 1].float()
    assert m.lam.item() == pytest.approx(want.item())
    assert got.item() == pytest.approx(want.item())
    # lam starts at the optimum of MATk for these losses
    grid = torch.linspace(-1, 4, 501, dtype=F64)
    best = min(matk(losses, t, k).item() for t in grid)
    assert matk(losses, m.lam.double(), k).item() <= best + 1e-6


def test_init_lambda_weighted_and_clamped():
    ls = torch.tensor([5.0, 1.0, 3.0])
    m = MATkLoss(k=3)
    m.init_lambda(ls, weight=torch.tensor([2.0, 1.0, 1.0]))
    assert m.lam.item() == 3.0  # 5, 5, then 3
    m.init_lambda(torch.tensor([-2.0, -1.0, -3.0]))
    assert m.lam.item() == 0.0


def test_project_clamps_lambda():
    m = STkLoss(k=1, lam=-0.5)
    assert m.project_() is m and m.lam.item() == 0.0
    m = STkLoss(k=1, lam=0.5).project_()
    assert m.lam.item() == 0.5


def test_training_lambda_alone_finds_the_threshold(rng):
    ls = torch.tensor(rng.permutation(rng.uniform(0, 3, 50)), dtype=torch.float32)
    m = MATkLoss(k=10)
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    for _ in range(400):
        opt.zero_grad()
        m(ls).backward()
        opt.step()
        m.project_()
    ranked = torch.sort(ls, descending=True).values
    assert ranked[10] - 0.05 <= m.lam.item() <= ranked[9] + 0.05


def test_joint_training_decreases_the_loss(rng):
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = torch.where(x[:, 0] + 0.3 * torch.randn(64) > 0, 1, -1)
    model, criterion = torch.nn.Linear(3, 1), STkLoss(k=0.2)
    with torch.no_grad():
        criterion.init_lambda(logistic(model(x).squeeze(1), y))
    opt = torch.optim.Adagrad([*model.parameters(), *criterion.parameters()], lr=0.1)
    first = None
    for _ in range(50):
        opt.zero_grad()
        loss = criterion(logistic(model(x).squeeze(1), y))
        loss.backward()
        opt.step()
        criterion.project_()
        first = loss.item() if first is None else first
    assert loss.item() < 0.7 * first


def test_modules_follow_dtype_and_device(device):
    m = STkLoss(k=2).to(device=device, dtype=F64)
    ls = torch.tensor([1.0, 3.0, 2.0], dtype=F64, device=device)
    assert m.lam.device.type == device.type and m.lam.dtype == F64
    assert m(ls).dtype == F64


def test_float32_lambda_with_float64_losses():
    m = STkLoss(k=2, lam=1.0)
    ls = torch.tensor([1.0, 3.0, 2.0], dtype=F64)
    m(ls).backward()
    assert m.lam.grad.dtype == torch.float32


def test_copy_pickle_and_repr():
    m = STkLoss(k=0.1, delta=0.05, smoothing="softplus", lam=1.25)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert clone.lam.item() == 1.25 and clone.smoothing == "softplus"
    assert repr(m) == "STkLoss(k=0.1, delta=0.05, smoothing='softplus')"
    assert repr(ATkLoss(3)) == "ATkLoss(k=3)"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ATkLoss(0), r"k=0 is out of range: an int k must be >= 1"),
        (lambda: MATkLoss(-3), r"k=-3 is out of range"),
        (lambda: STkLoss(1.5), r"k=1\.5 is out of range.*\(0, 1\]"),
        (lambda: STkLoss(0.0), r"k=0\.0 is out of range"),
        (lambda: STkLoss(2, delta=0), r"delta must be a finite float > 0; got delta=0"),
        (lambda: STkLoss(2, smoothing="tanh"), r"smoothing='tanh' is unknown"),
    ],
)
def test_bad_hyper_parameters_raise_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_k_larger_than_the_batch_raises_at_forward():
    with pytest.raises(ValueError, match=r"k=5 is out of range.*\[1, n=3\]"):
        MATkLoss(5)(torch.tensor([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("cls", [MATkLoss, STkLoss])
@pytest.mark.parametrize(
    "bad, counts", [(math.nan, "1 NaN and 0"), (math.inf, "0 NaN and 1")]
)
@pytest.mark.parametrize("dim", [None, 1])
def test_init_lambda_refuses_nan_and_inf_losses(cls, bad, counts, dim):
    # The threshold would be NaN or inf, which the constructor refuses.
    losses = torch.tensor([[1.0, 2.0, 3.0], [bad, 1.0, 2.0]])
    losses = losses[1] if dim is None else losses
    m = cls(k=1, dim=dim, lam=0.25 if dim is None else torch.full((2,), 0.25))
    match = rf"init_lambda: losses must not be NaN or \+inf .*got {counts} \+inf"
    with pytest.raises(ValueError, match=match):
        m.init_lambda(losses)
    assert bool((m.lam == 0.25).all())  # unchanged
    with pytest.raises(ValueError, match="lam must be finite"):
        cls(k=1, lam=bad)


def test_init_lambda_accepts_minus_inf_losses():
    ls = torch.tensor([-math.inf, 1.0, 3.0])
    for k, want in [(1, 3.0), (3, 0.0)]:  # the k-th largest, at least 0
        assert STkLoss(k=k).init_lambda(ls).item() == want


@pytest.mark.parametrize("cls", [SmoothTopKSVMLoss, TopKSVMLoss])
@pytest.mark.parametrize("k", [0, -1])
def test_svm_modules_reject_k_below_one_at_construction(cls, k):
    # As the functional form, which names the bound n_classes - 1 of the data.
    match = rf"k must be in \[1, n_classes - 1\].*; got {k}\."
    with pytest.raises(ValueError, match=match):
        cls(k=k)
    fn = smooth_topk_svm if cls is SmoothTopKSVMLoss else topk_svm
    with pytest.raises(ValueError, match=match):
        fn(torch.zeros(2, 5), torch.tensor([0, 1]), k=k)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (SmoothTopKSVMLoss, {"k": 3, "margin": 0.5, "tau": 0.2, "reduction": "sum"}),
        (TopKSVMLoss, {"k": 2, "margin": 2.0, "reduction": "none"}),
    ],
)
def test_svm_modules_restore_their_hyper_parameters(cls, kwargs):
    saved = cls(**kwargs)
    restored = cls()
    restored.load_state_dict(saved.state_dict())
    assert {name: getattr(restored, name) for name in kwargs} == kwargs
    scores, labels = torch.randn(4, 6), torch.tensor([0, 1, 2, 5])
    torch.testing.assert_close(restored(scores, labels), saved(scores, labels))
    with pytest.raises(ValueError, match="saved state must hold"):
        cls().load_state_dict({"_extra_state": {"k": 3}})
    with pytest.raises(ValueError, match="margin"):
        cls().load_state_dict({"_extra_state": {**kwargs, "margin": -1.0}})
