"""The batched engine's models: the hand-derived backward of a stack of MLPs
against autograd, and the compiled passes of the single output unit against
the tensor forms, in every layout the engine makes."""

import numpy as np
import pytest
import torch

from sktopk.engine import StackedMLP
from sktopk.engine import compiled
from sktopk.engine import models
from sktopk.losses import _native

needs_numba = pytest.mark.skipif(
    not _native.native_available(), reason="compiled kernels off"
)


def _stack(sizes, lead, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n = models._layout(sizes)[-1][1]
    flat = torch.randn(*lead, n, generator=gen, dtype=dtype)
    return StackedMLP(sizes, flat)


def _inputs(shape, dtype, seed=1):
    X = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    X[..., 0, :] = 0.0  # a row of zeros: every ReLU at exactly 0 on its biases
    return X


def _reference(model, X, grad_out, l2, l1):
    """The gradient of ``sum(grad_out * forward(X)) + l2 ||W||^2 / 2`` by
    autograd, through plain matrix products."""
    flat = model.flat.detach().clone().requires_grad_(True)
    a = X
    n_layers = len(model.sizes) - 1
    for i, ((s0, s1, shape_w), (t0, t1, _)) in enumerate(
        zip(model.layout[::2], model.layout[1::2], strict=True)
    ):
        W = flat[..., s0:s1].reshape(*flat.shape[:-1], *shape_w)
        b = flat[..., t0:t1]
        a = a @ W + b.unsqueeze(-2)
        a = a.relu() if i < n_layers - 1 else a
    penalty = sum(
        0.5 * l2 * flat[..., s0:s1].square().sum() for s0, s1, _ in model.layout[::2]
    )
    ((a * grad_out).sum() + penalty).backward()
    return a.detach(), flat.grad


CASES = [
    # sizes, lead, input shape: one member, a shared input, members' own
    ((5, 7, 1), (), (16, 5)),
    ((5, 7, 1), (3, 4), (3, 1, 16, 5)),
    ((5, 10, 1), (2, 30), (2, 1, 9, 5)),
    ((5, 7, 3), (3, 4), (3, 1, 16, 5)),
    ((5, 1), (3, 4), (3, 1, 16, 5)),
    ((5, 6, 4, 1), (3, 4), (3, 1, 16, 5)),
    ((5, 7, 1), (3, 4), (3, 4, 16, 5)),
]


@pytest.mark.parametrize("compiled_on", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("sizes", "lead", "shape"), CASES)
def test_backward_is_the_gradient_autograd_gives(
    sizes, lead, shape, dtype, compiled_on, monkeypatch
):
    if compiled_on and not _native.native_available():
        pytest.skip("compiled kernels off")
    monkeypatch.setitem(_native._STATE, "on", compiled_on)
    model = _stack(sizes, lead, dtype)
    l2 = torch.full(lead, 0.3, dtype=dtype)
    model.attach(None, l2, torch.zeros(lead, dtype=dtype))
    X = _inputs(shape, dtype)
    out = model.forward(X)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    (grad,) = model.backward(grad_out)
    ref_out, ref_grad = _reference(model, X, grad_out, 0.3, 0.0)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out, ref_out, **tol)
    torch.testing.assert_close(grad, ref_grad, **tol)


def _hidden(G, M, B, h, dtype, seed=3):
    """Hidden activations as the shared input's product leaves them: shape
    ``(G, M, B, h)`` in the memory order ``(G, B, M, h)``, a third at 0."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(G, B, M, h, generator=gen, dtype=dtype).relu_()
    return a.transpose(1, 2)


def _weights(G, M, h, dtype, seed=4):
    """Output weights and biases as views into flat vectors (strided)."""
    gen = torch.Generator().manual_seed(seed)
    flat = torch.randn(G, M, h + 3, generator=gen, dtype=dtype)
    return flat[..., :h].unsqueeze(-1), flat[..., h : h + 1]


def _tensor_forms(a, g, W):
    grad_in = torch.ops.aten.threshold_backward(g * W.transpose(-1, -2), a, 0.0)
    grad_w = (a * g).sum(-2)
    return grad_w, g.sum(-2), grad_in, grad_in.sum(-2)


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(3, 600, 16, 10), (1, 1, 1, 1), (2, 7, 5, 3)])
def test_compiled_passes_equal_the_tensor_forms(shape, dtype):
    G, M, B, h = shape
    a = _hidden(G, M, B, h, dtype)
    W, b = _weights(G, M, h, dtype)
    z = compiled.output_forward(a, W, b)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(z, a @ W + b.unsqueeze(-2), **tol)
    assert z.stride() == (M * B, 1, M, 1)  # the memory order (G, B, M)
    # The loss's gradient, in the layout of z and in a contiguous one.
    for g in (torch.randn_like(z), torch.randn(G, M, B, 1, dtype=dtype)):
        got = compiled.output_backward(a, g, W)
        for x, y in zip(got, _tensor_forms(a, g, W), strict=True):
            torch.testing.assert_close(x, y.reshape(x.shape), **tol)
        assert got[2].stride() == a.stride()  # where the next product reads it


@needs_numba
def test_compiled_backward_masks_as_threshold_backward():
    """Zero where the activation is 0 (even with an infinite gradient) and
    where it is NaN propagated as the tensor form does."""
    a = _hidden(1, 3, 4, 2, torch.float32)
    a[0, 1, 2, 0] = float("nan")
    W, _ = _weights(1, 3, 2, torch.float32)
    g = torch.randn(1, 3, 4, 1)
    g[0, 0, :, 0] = float("inf")
    got = compiled.output_backward(a, g, W)
    ref = _tensor_forms(a, g, W)
    for x, y in zip(got, ref, strict=True):
        torch.testing.assert_close(x, y.reshape(x.shape), equal_nan=True)


@pytest.mark.parametrize(
    "why",
    ["numba off", "float16", "members' own layout", "several outputs", "gradient shape"],
)
def test_compiled_passes_decline_what_they_do_not_take(why, monkeypatch):
    G, M, B, h = 2, 3, 4, 5
    a, (W, b) = _hidden(G, M, B, h, torch.float32), _weights(G, M, h, torch.float32)
    g = torch.randn(G, M, B, 1)
    if why == "numba off":
        monkeypatch.setitem(_native._STATE, "on", False)
    elif why == "float16":
        a, W, b, g = a.half(), W.half(), b.half(), g.half()
    elif why == "members' own layout":
        a = a.contiguous()
    elif why == "several outputs":
        W = torch.randn(G, M, h, 2)
    else:
        g = torch.randn(G, M, B)
    if why != "gradient shape":
        assert compiled.output_forward(a, W, b) is None
    assert compiled.output_backward(a, g, W) is None


@needs_numba
def test_a_stack_trains_alike_with_and_without_the_compiled_passes(monkeypatch):
    """Steps of the shared-input stack agree to float32 rounding both ways."""
    X = _inputs((3, 1, 16, 5), torch.float32)
    results = []
    for on in (True, False):
        monkeypatch.setitem(_native._STATE, "on", on)
        model = _stack((5, 10, 1), (3, 50), torch.float32)
        model.attach(None, torch.full((3, 50), 1e-3), torch.zeros(3, 50))
        for _ in range(20):
            out = model.forward(X)
            (grad,) = model.backward(torch.tanh(out))
            model.flat.sub_(0.01 * grad)
        results.append(model.flat.clone())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-5)
