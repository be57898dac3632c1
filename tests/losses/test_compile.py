"""torch.compile (one graph), torch.export, torch.jit.trace and torch.jit.script
on the losses, against eager."""

import warnings

import pytest
import torch

from sktopk.losses import (
    ATkLoss,
    AverageLoss,
    MATkLoss,
    MaximumLoss,
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


def _inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, 4, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (n,), generator=g)
    y = (labels % 2).float() * 2 - 1
    lam = torch.tensor(0.7, requires_grad=True)
    return scores, labels, y, lam


def _everything(scores, labels, y, lam):
    """Every public loss of this module in one function (one graph when compiled)."""
    f = scores[:, 0]
    ce = cross_entropy(scores, labels)
    per_sample = (
        logistic(f, y)
        + hinge(f, y)
        + square(f, y)
        + absolute(f, y)
        + ce
        + multiclass_hinge(scores, labels)
    )
    rows = per_sample.reshape(2, -1)
    return (
        stk(per_sample, lam, 3)
        + stk(per_sample, lam, 0.25, delta=0.1, weight=torch.ones_like(y))
        + matk(per_sample, lam, 0.2)
        + atk(ce, 0.3)
        + average(per_sample)
        + maximum(per_sample)
        + stk(rows, lam.expand(2), 2, dim=1).sum()
        + atk(rows, 2, dim=1).sum()
    )


def _value_and_grads(fn, n):
    scores, labels, y, lam = _inputs(n)
    value = fn(scores, labels, y, lam)
    grads = torch.autograd.grad(
        value, (scores, lam), allow_unused=True, materialize_grads=True
    )
    return (value.detach(), *grads)


def test_compile_fullgraph_of_every_loss_matches_eager():
    compiled = torch.compile(_everything, fullgraph=True, dynamic=True)
    for n in (16, 24):  # another batch size: the same dynamic graph
        got = _value_and_grads(compiled, n)
        want = _value_and_grads(_everything, n)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_compiled_value_checks_read_nothing():
    # A label outside {-1, +1} is not checked (no host read) inside a graph.
    fn = torch.compile(lambda f, y: logistic(f, y), fullgraph=True)
    out = fn(torch.zeros(3), torch.tensor([1.0, 3.0, -1.0]))
    torch.testing.assert_close(out, torch.nn.functional.softplus(torch.zeros(3)))


class _Model(torch.nn.Module):
    def __init__(self, criterion):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)
        self.criterion = criterion

    def forward(self, x, y):
        return self.criterion(logistic(self.linear(x).squeeze(1), y))


CRITERIA = [
    lambda: STkLoss(k=3),
    lambda: ATkLoss(k=0.25),
    pytest.param(lambda: STkLoss(k=0.2, smoothing="softplus"), marks=pytest.mark.slow),
    pytest.param(lambda: MATkLoss(k=0.3), marks=pytest.mark.slow),
    pytest.param(lambda: AverageLoss(), marks=pytest.mark.slow),
    pytest.param(lambda: MaximumLoss(), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("make", CRITERIA)
def test_export_with_a_dynamic_batch(make):
    torch.manual_seed(0)
    model = _Model(make())
    x, y = torch.randn(32, 3), (torch.randint(0, 2, (32,)) * 2 - 1).float()
    # Down to 4 rows (k=3 needs 3): the count of a fractional k adds no guard
    # on the batch size (it added k n > 1).
    batch = torch.export.Dim("batch", min=4)
    program = torch.export.export(
        model, (x, y), dynamic_shapes={"x": {0: batch}, "y": {0: batch}}
    )
    for n in (32, 20, 4):
        got = program.module()(x[:n], y[:n])
        torch.testing.assert_close(got, model(x[:n], y[:n]))


@pytest.mark.parametrize("k", [6, 0.1])
@pytest.mark.parametrize("cls", [STkLoss, MATkLoss])
def test_jit_trace_follows_the_batch_size(cls, k):
    criterion = cls(k=k, lam=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # trace is deprecated
        traced = torch.jit.trace(criterion, torch.rand(64))
    for n in (64, 32, 7):
        losses = torch.rand(n)
        torch.testing.assert_close(traced(losses), criterion(losses))


def test_jit_trace_of_individual_losses():
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(
            lambda s, c: cross_entropy(s, c), (torch.rand(8, 3), torch.zeros(8).long())
        )
    s, c = torch.rand(5, 3), torch.tensor([0, 2, 1, 1, 0])
    torch.testing.assert_close(traced(s, c), cross_entropy(s, c))


@pytest.mark.parametrize("make", CRITERIA)
def test_jit_script_fails_clearly(make):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(TypeError, match="does not support torch.jit.script.*"):
            torch.jit.script(make())
        with pytest.raises(TypeError, match="does not support torch.jit.script"):
            torch.jit.script(_Model(make()))  # also inside a model


@pytest.mark.slow
@pytest.mark.parametrize(
    "fn",
    [
        lambda s, c, y, t: stk(s[:, 0] ** 2, t, 3),
        lambda s, c, y, t: matk(s[:, 0] ** 2, t, 0.3),
        lambda s, c, y, t: atk(s[:, 0] ** 2, 3),
        lambda s, c, y, t: average(s[:, 0] ** 2),
        lambda s, c, y, t: maximum(s[:, 0] ** 2),
        lambda s, c, y, t: logistic(s[:, 0], y).sum(),
        lambda s, c, y, t: hinge(s[:, 0], y).sum(),
        lambda s, c, y, t: square(s[:, 0], y).sum(),
        lambda s, c, y, t: absolute(s[:, 0], y).sum(),
        lambda s, c, y, t: cross_entropy(s, c).sum(),
        lambda s, c, y, t: multiclass_hinge(s, c).sum(),
    ],
)
def test_compile_fullgraph_each_loss(fn):
    compiled = torch.compile(fn, fullgraph=True)
    for a, b in zip(
        _value_and_grads(compiled, 12), _value_and_grads(fn, 12), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
