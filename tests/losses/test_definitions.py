"""Each registered definition: its analytic gradient against autograd of its
value, the public functions against it, and the engine's view of it."""

import numpy as np
import pytest
import torch

from sktopk import losses as L
from sktopk.engine.objectives import individual_loss_gradient


def individual_value_and_grad(name, f, y, params=None):
    return individual_loss_gradient(L.get_individual_loss(name), f, y, params or {})


def aggregate_value_and_grad(name, ls, w, lam, kappa, delta, smoothing="srelu"):
    return L.get_aggregate(name).loss_gradient(ls, w, lam, kappa, delta, smoothing)


@pytest.mark.parametrize("name", L.INDIVIDUAL_LOSSES)
def test_individual_gradient_is_the_derivative_of_the_value(name):
    """loss_gradient against autograd of value, batched over members."""
    info = L.get_individual_loss(name)
    g = torch.Generator().manual_seed(4)
    if info.task == "multiclass":
        f = torch.randn(2, 3, 7, 6, generator=g, dtype=torch.float64)
        y = torch.randint(0, 6, (7,), generator=g)
        params = {"k": 2} if "svm" in name else {}
    else:
        f = torch.randn(2, 3, 7, generator=g, dtype=torch.float64)
        y = torch.randn(7, generator=g, dtype=torch.float64)
        if info.task == "binary":
            y = torch.sign(y)
        params = {}
    leaf = f.clone().requires_grad_()
    value = info.value(leaf, y, **params)
    (ref,) = torch.autograd.grad(value.sum(), leaf)
    v2, grad = info.loss_gradient(f, y, **params)
    np.testing.assert_allclose(v2, value.detach(), rtol=1e-12)
    np.testing.assert_allclose(grad, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "name, make_target",
    [
        ("logistic", lambda g, n: torch.randint(0, 2, (n,), generator=g) * 2.0 - 1),
        ("hinge", lambda g, n: torch.randint(0, 2, (n,), generator=g) * 2.0 - 1),
        ("square", lambda g, n: torch.randn(n, generator=g, dtype=torch.float64)),
        ("absolute", lambda g, n: torch.randn(n, generator=g, dtype=torch.float64)),
    ],
)
def test_binary_and_regression_losses(name, make_target):
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 2, 9, 1, generator=g, dtype=torch.float64)
    y = make_target(g, 9).to(torch.float64)
    value, grad = individual_value_and_grad(name, f, y)
    leaf = f.clone().requires_grad_()
    ref = L.get_individual_loss(name)(leaf[..., 0].reshape(-1), y.repeat(6))
    ref.sum().backward()
    np.testing.assert_allclose(value.reshape(-1), ref.detach(), rtol=1e-12)
    np.testing.assert_allclose(grad, leaf.grad, rtol=1e-12)


@pytest.mark.parametrize("name", ["cross_entropy", "multiclass_hinge"])
def test_multiclass_losses(name):
    g = torch.Generator().manual_seed(1)
    f = torch.randn(2, 3, 8, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (8,), generator=g)
    value, grad = individual_value_and_grad(name, f, y)
    leaf = f.clone().requires_grad_()
    ref = L.get_individual_loss(name)(leaf.reshape(-1, 5), y.repeat(6))
    ref.sum().backward()
    np.testing.assert_allclose(value.reshape(-1), ref.detach(), rtol=1e-12)
    np.testing.assert_allclose(grad, leaf.grad, rtol=1e-12)


def _library_value(name, ls, lam, k, delta, smoothing, w):
    fn = L.get_aggregate(name)
    if name in ("average", "maximum"):
        return fn(ls, weight=w)
    if name == "atk":
        return fn(ls, k, weight=w)
    if name == "matk":
        return fn(ls, lam, k, weight=w)
    return fn(ls, lam, k, delta=delta, smoothing=smoothing, weight=w)


CASES = [(a, "srelu") for a in ("average", "maximum", "atk", "matk", "stk")] + [
    ("stk", s) for s in ("softplus", "elu", "leaky_relu")
]


@pytest.mark.parametrize("name, smoothing", CASES)
@pytest.mark.parametrize("weighted", [False, True])
def test_aggregates_match_library(name, smoothing, weighted):
    g = torch.Generator().manual_seed(2)
    n, k = 12, 4
    ls = torch.rand(n, generator=g, dtype=torch.float64) * 3
    w = torch.randint(1, 4, (n,), generator=g).to(torch.float64) if weighted else None
    lam = torch.tensor(1.3, dtype=torch.float64)
    kappa = torch.tensor(k / (w.sum().item() if weighted else n), dtype=torch.float64)
    delta = torch.tensor(0.3, dtype=torch.float64)
    value, g_l, g_lam = aggregate_value_and_grad(
        name, ls, w, lam, kappa, delta, smoothing
    )
    leaf, lam_leaf = ls.clone().requires_grad_(), lam.clone().requires_grad_()
    ref = _library_value(name, leaf, lam_leaf, k, 0.3, smoothing, w)
    ref.backward()
    np.testing.assert_allclose(value, ref.detach(), rtol=1e-9)
    np.testing.assert_allclose(g_l, leaf.grad, rtol=1e-9, atol=1e-12)
    if g_lam is not None:
        np.testing.assert_allclose(g_lam, lam_leaf.grad, rtol=1e-9, atol=1e-12)


def test_weighted_atk_with_fractional_weights_matches_library():
    ls = torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64)
    w = torch.tensor([0.1, 0.2, 0.05, 0.15], dtype=torch.float64)  # sum 0.5 < 1
    kappa = torch.tensor(0.5, dtype=torch.float64)
    value, _, _ = aggregate_value_and_grad("atk", ls, w, None, kappa, kappa)
    np.testing.assert_allclose(value, L.atk(ls, 0.5, weight=w), rtol=1e-12)


def test_aggregates_batched_over_members_with_padding():
    g = torch.Generator().manual_seed(3)
    ls = torch.rand(2, 3, 10, generator=g, dtype=torch.float64)
    w = torch.ones(2, 1, 10, dtype=torch.float64)
    w[1, :, 7:] = 0.0  # group 1 has only 7 rows
    lam = torch.rand(2, 3, generator=g, dtype=torch.float64)
    kappa = torch.full((2, 3), 0.3, dtype=torch.float64)
    delta = torch.full((2, 3), 0.05, dtype=torch.float64)
    value, g_l, g_lam = aggregate_value_and_grad("stk", ls, w, lam, kappa, delta)
    for gi, n in ((0, 10), (1, 7)):
        for m in range(3):
            v1, gl1, glam1 = aggregate_value_and_grad(
                "stk", ls[gi, m, :n], None, lam[gi, m], kappa[gi, m], delta[gi, m]
            )
            np.testing.assert_allclose(value[gi, m], v1, rtol=1e-12)
            np.testing.assert_allclose(g_l[gi, m, :n], gl1, rtol=1e-12)
            np.testing.assert_allclose(g_l[gi, m, n:], 0.0)
            np.testing.assert_allclose(g_lam[gi, m], glam1, rtol=1e-12)
