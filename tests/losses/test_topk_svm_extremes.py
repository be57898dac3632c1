"""The smooth top-k SVM loss at extreme scales, against its definition
computed in 200-digit decimal arithmetic: scores near float32's largest value,
a large common offset, tiny temperatures. Every route that computes the loss
(the compiled kernel, the tensor routes, the formulas that autograd
differentiates, the training engine's closed forms) must keep the loss and
its gradient to float tolerance, as shifting all scores changes nothing."""

import decimal
import itertools

import numpy as np
import pytest
import torch

from sktopk.losses import get_individual_loss
from sktopk.losses._svm_small import _smooth_k1, _smooth_subsets
from sktopk.losses._topk_svm import _route, smooth_topk_svm

F64 = torch.float64
_CONTEXT = decimal.Context(prec=200, Emax=10**8, Emin=-(10**8))


def exact(row, label, k, margin, tau):
    """Loss and gradient of one row from the definition, in decimal.

    ``tau (lse_S((Delta_S + mean_S) / tau) - lse_{S with y}(mean_S / tau))``
    over the k-subsets ``S``, taken as ``tau log(1 + exp(lse_{S without y} -
    lse_{S with y}))`` (no cancellation: a tiny loss keeps its digits); the
    gradient is ``(P(j in S) - P_y(j in S)) / k`` under the two softmaxes.
    Every float converts exactly."""
    with decimal.localcontext(_CONTEXT):
        s = [decimal.Decimal(float(v)) for v in row]
        tau_, margin_ = decimal.Decimal(tau), decimal.Decimal(margin)
        subsets = list(itertools.combinations(range(len(s)), k))
        with_y = [subset for subset in subsets if label in subset]
        mean = {subset: sum(s[j] for j in subset) / k for subset in subsets}
        every = {S: (mean[S] + (0 if S in with_y else margin_)) / tau_ for S in subsets}
        own = {S: mean[S] / tau_ for S in with_y}
        others = [t for S, t in every.items() if S not in own]
        gap = _lse(others) - _lse(own.values())
        loss = tau_ * (max(gap, 0) + (1 + (-abs(gap)).exp()).ln())  # softplus
        p_all, p_y = _softmax(every), _softmax(own)
        grad = [
            sum(p_all[S] - p_y.get(S, 0) for S in subsets if j in S) / k
            for j in range(len(s))
        ]
    return float(loss), [float(g) for g in grad]


def _lse(terms):
    top = max(terms)
    return top + sum((t - top).exp() for t in terms).ln()


def _softmax(terms):
    top = max(terms.values())
    weights = {key: (t - top).exp() for key, t in terms.items()}
    total = sum(weights.values())
    return {key: w / total for key, w in weights.items()}


M = float(np.float32(3.4e38))
# (scores, label, k, margin, tau): each row exact in float32.
CASES = {
    "equal scores, tau 1e-30": ([7.0] * 5, 0, 2, 0.0, 1e-30),
    "equal scores, tau 1e-30, margin tau": ([7.0] * 5, 3, 2, 1e-30, 1e-30),
    "near float32 max, k 4": ([M, -M, M, -M, M], 1, 4, 1.0, 1.0),
    "near float32 max, k 4, label high": ([M, -M, M, -M, M], 0, 4, 1.0, 1.0),
    "near float32 max, k 2": ([M, -M, M, -M, M, M], 3, 2, 1.0, 0.5),
    "near float32 max, k 1": ([M, -M, M, -M, M], 0, 1, 1.0, 1.0),
    "offset 1e6, tau 0.01": (
        [1e6 + 0.0625 * j for j in (3, 0, 5, 1, 2, 4)],
        2,
        3,
        1.0,
        0.01,
    ),
    "offset 1e6, tiny loss": (
        [1e6 + 0.0625 * j for j in (90, 0, 5, 1, 2, 4)],
        0,
        2,
        1.0,
        0.01,
    ),
    "offset -1e30, k 3": (
        [-1e30 * (1 + 2.0**-20 * j) for j in range(6)],
        4,
        3,
        1.0,
        1e24,
    ),
    # The best subsets with and without y tie once the margin is added.
    "hinge tie, tau 1e-15": ([0.0, 1.0, 2.0, 3.0, 4.0], 4, 2, 1.0, 1e-15),
    "hinge tie, tau 1e-20": ([0.0, 0.0, -2.0, 2.0], 3, 2, 1.0, 1e-20),
    "hinge tie, k 3": ([0.0, 3.0, 6.0, 9.0, 12.0, 1.0], 4, 3, 3.0, 1e-15),
}


def _cases():
    # Rows rounded to float32 here: the reference sees the scores the loss sees.
    return [
        pytest.param(np.float32(row).tolist(), *rest, id=name)
        for name, (row, *rest) in CASES.items()
    ]


def _check(loss, grad, row, label, k, margin, tau, rtol, dtype=F64):
    """Loss to ``rtol`` (or below the dtype's smallest normal number) and
    gradient to ``rtol`` of its largest entry, about 1."""
    want_loss, want_grad = exact(row, label, k, margin, tau)
    loss, grad = float(loss), torch.as_tensor(grad, dtype=F64).reshape(-1)
    tiny = torch.finfo(dtype).tiny
    assert loss == pytest.approx(want_loss, rel=rtol, abs=tiny)
    torch.testing.assert_close(
        grad, torch.tensor(want_grad, dtype=F64), rtol=0, atol=rtol
    )


def _public(row, label, k, margin, tau, dtype, n=1):
    scores = torch.tensor([row] * n, dtype=dtype, requires_grad=True)
    labels = torch.full((n,), label)
    loss = smooth_topk_svm(scores, labels, k, margin, tau, reduction="none")
    loss.sum().backward()
    return loss[0].item(), scores.grad[0]


@pytest.mark.parametrize("row, label, k, margin, tau", _cases())
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_public_loss(row, label, k, margin, tau, dtype, kernels):
    # One row: the kernel (float32, compiled) or the route of its shape.
    rtol = 1e-5 if dtype == torch.float32 else 1e-9
    got = _public(row, label, k, margin, tau, dtype)
    _check(*got, row, label, k, margin, tau, rtol, dtype)


@pytest.mark.parametrize("row, label, k, margin, tau", _cases())
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fast_route(row, label, k, margin, tau, dtype, kernels):
    # A batch too large for the k-subsets: the fast route (or k = 1's); in
    # float32 the compiled kernel where it applies.
    n = 5000
    assert _route(n, len(row), k) in ("fast", "k1")
    rtol = 1e-5 if dtype == torch.float32 else 1e-9
    got = _public(row, label, k, margin, tau, dtype, n)
    _check(*got, row, label, k, margin, tau, rtol, dtype)


@pytest.mark.parametrize("row, label, k, margin, tau", _cases())
def test_formulas(row, label, k, margin, tau):
    # The formulas autograd differentiates (higher order, compile, torch.func).
    scores = torch.tensor([row], dtype=F64, requires_grad=True)
    labels = torch.tensor([label])
    if k == 1:
        loss = _smooth_k1(scores, labels, margin, tau)
    else:
        loss = _smooth_subsets(scores, labels, k, margin, tau)
    (grad,) = torch.autograd.grad(loss.sum(), scores)
    _check(loss[0].item(), grad, row, label, k, margin, tau, 1e-9)


@pytest.mark.parametrize("row, label, k, margin, tau", _cases())
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_engine_step(row, label, k, margin, tau, dtype, kernels):
    # The training engine's value and gradient, without autograd: in float32
    # by the compiled kernel, or without it by the closed forms in float32.
    info = get_individual_loss("smooth_topk_svm")
    f = torch.tensor([row], dtype=dtype)
    value, grad = info.loss_gradient(
        f, torch.tensor([label]), k=k, margin=margin, tau=tau
    )
    rtol = 1e-5 if dtype == torch.float32 else 1e-9
    _check(value.item(), grad, row, label, k, margin, tau, rtol, dtype)


def test_reference_agrees_with_the_plain_formula():
    # The decimal reference against the definition in float64 on moderate
    # scores, where float64 has no trouble: it is the definition.
    rng = np.random.default_rng(0)
    for _ in range(20):
        row = rng.normal(size=6).tolist()
        label, k = int(rng.integers(6)), int(rng.integers(1, 6))
        loss, grad = exact(row, label, k, 0.7, 0.4)
        scores = torch.tensor([row], dtype=F64, requires_grad=True)
        subsets = torch.tensor(list(itertools.combinations(range(6), k)))
        means = scores[:, subsets].sum(-1) / k
        has_y = (subsets == label).any(-1)
        every = torch.logsumexp((means + 0.7 * (~has_y).to(F64)) / 0.4, 1)
        with_y = torch.logsumexp((means / 0.4).masked_fill(~has_y, -torch.inf), 1)
        want = 0.4 * (every - with_y)
        (want_grad,) = torch.autograd.grad(want.sum(), scores)
        assert loss == pytest.approx(want.item(), rel=1e-12)
        torch.testing.assert_close(torch.tensor(grad, dtype=F64), want_grad[0])
