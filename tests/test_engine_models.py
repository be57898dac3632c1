"""The batched engine's models: the hand-derived backward of a stack of MLPs
against autograd, and the compiled passes of the single output unit against
the tensor forms, in every layout the engine makes."""

import numpy as np
import pytest
import torch

from sktopk.engine import StackedMLP, compiled, models
from sktopk.losses import _native

needs_numba = pytest.mark.skipif(
    not _native.native_available(), reason="compiled kernels off"
)


@pytest.fixture(autouse=True)
def _one_thread():
    """The compiled passes run with few torch threads: one here, whatever
    the machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.mark.parametrize("with_lam", [False, True])
@pytest.mark.parametrize("compiled_on", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("sizes", "lead", "shape"), CASES)
def test_backward_is_the_gradient_autograd_gives(
    sizes, lead, shape, dtype, compiled_on, with_lam, monkeypatch
):
    if compiled_on and not _native.native_available():
        pytest.skip("compiled kernels off")
    monkeypatch.setitem(_native._STATE, "on", compiled_on)
    model = _stack(sizes, lead, dtype)
    l2 = torch.full(lead, 0.3, dtype=dtype)
    lam = torch.full(lead, 0.7, dtype=dtype) if with_lam else None
    model.attach(lam, l2, torch.zeros(lead, dtype=dtype))
    X = _inputs(shape, dtype)
    out = model.forward(X)
    gen = torch.Generator().manual_seed(2)
    grad_out = torch.randn(out.shape, generator=gen, dtype=dtype)
    grad_lam = torch.randn(lead, generator=gen, dtype=dtype) if with_lam else None
    (grad,) = model.backward(grad_out, grad_lam)
    ref_out, ref_grad = _reference(model, X, grad_out, 0.3, 0.0)
    tol = {} if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, ref_out, **tol)
    torch.testing.assert_close(grad[..., : model.n_params], ref_grad, **tol)
    assert grad.shape[-1] == model.n_params + with_lam
    if with_lam:
        torch.testing.assert_close(grad[..., -1], grad_lam, rtol=0, atol=0)


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


def _tensor_grads(X, a, g, W):
    """The gradients the compiled backward gives, by tensor operations, in
    each member's flat order ``W1, b1, W, b``."""
    grad_in = torch.ops.aten.threshold_backward(g * W.transpose(-1, -2), a, 0.0)
    grad_w1 = X.transpose(-1, -2) @ grad_in  # (G, M, d, h)
    pieces = [grad_w1, grad_in.sum(-2), (a * g).sum(-2), g.sum(-2)]
    return torch.cat([p.flatten(2) for p in pieces], -1)


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    "shape", [(3, 600, 16, 10, 5), (1, 1, 1, 1, 1), (2, 7, 5, 3, 4)]
)
def test_compiled_passes_equal_the_tensor_forms(shape, dtype):
    G, M, B, h, d = shape
    a = _hidden(G, M, B, h, dtype)
    W, b = _weights(G, M, h, dtype)
    X = torch.randn(G, 1, B, d, dtype=dtype)
    z = compiled.output_forward(a, W, b)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}
    torch.testing.assert_close(z, a @ W + b.unsqueeze(-2), **tol)
    assert z.stride() == (M * B, 1, M, 1)  # the memory order (G, B, M)
    width = (d + 2) * h + 2  # one entry more: lambda's, left alone
    # The loss's gradient, in the layout of z and in a contiguous one.
    for g in (torch.randn_like(z), torch.randn(G, M, B, 1, dtype=dtype)):
        out = torch.empty(G, M, width, dtype=dtype)
        got = compiled.hidden_backward(X, a, g, W, out)
        assert got is out
        torch.testing.assert_close(got[..., :-1], _tensor_grads(X, a, g, W), **tol)


@needs_numba
def test_compiled_backward_masks_as_threshold_backward():
    """Zero where the activation is 0 (even with an infinite gradient); a
    NaN activation propagates as in the tensor form."""
    G, M, B, h, d = 1, 3, 4, 2, 2
    a = _hidden(G, M, B, h, torch.float32)
    a[0, 1, 2, 0] = float("nan")
    W, _ = _weights(G, M, h, torch.float32)
    X = torch.randn(G, 1, B, d)
    g = torch.randn(G, M, B, 1)
    g[0, 0, :, 0] = float("inf")
    got = compiled.hidden_backward(X, a, g, W, torch.empty(G, M, (d + 2) * h + 1))
    ref = _tensor_grads(X, a, g, W)
    torch.testing.assert_close(got, ref, equal_nan=True)
    assert torch.isnan(got[0, 1]).any() and not torch.isnan(got[0, 2]).any()


@pytest.mark.parametrize(
    "why",
    [
        "numba off",
        "float16",
        "members' own layout",
        "several outputs",
        "gradient shape",
        "members' own inputs",
        "too narrow",
        "hidden sizes differ",
        "bias shape",
        "more threads",
        "output dtype",
        "output not contiguous",
    ],
)
def test_compiled_passes_decline_what_they_do_not_take(why, monkeypatch):
    G, M, B, h, d = 2, 3, 4, 5, 3
    a, (W, b) = _hidden(G, M, B, h, torch.float32), _weights(G, M, h, torch.float32)
    g, X, width = torch.randn(G, M, B, 1), torch.randn(G, 1, B, d), (d + 2) * h + 1
    if why == "numba off":
        monkeypatch.setitem(_native._STATE, "on", False)
    elif why == "float16":
        a, W, b, g, X = a.half(), W.half(), b.half(), g.half(), X.half()
    elif why == "members' own layout":
        a = a.contiguous()
    elif why == "several outputs":
        W = torch.randn(G, M, h, 2)
    elif why == "gradient shape":
        g = torch.randn(G, M, B)
    elif why == "members' own inputs":
        X = torch.randn(G, M, B, d)
    elif why == "hidden sizes differ":
        W = torch.randn(G, M, h - 1, 1)
    elif why == "bias shape":
        b = torch.randn(G, M, 2)
    elif why == "more threads":
        torch.set_num_threads(compiled.MAX_THREADS + 1)
    elif why == "too narrow":
        width -= 1
    out = torch.empty(G, M, width, dtype=a.dtype)
    if why == "output dtype":
        out = out.double()
    elif why == "output not contiguous":
        out = torch.empty(G, width, M).transpose(1, 2)
    passes = ("gradient shape", "members' own inputs", "too narrow", "output dtype")
    if why not in passes + ("output not contiguous",):
        assert compiled.output_forward(a, W, b) is None
    if why == "bias shape":
        return
    assert compiled.hidden_backward(X, a, g, W, out) is None


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


def test_a_threshold_gradient_without_a_threshold_is_refused():
    model = _stack((5, 7, 1), (3, 4), torch.float32)
    model.attach(None, torch.zeros(3, 4), torch.zeros(3, 4))
    out = model.forward(_inputs((3, 1, 16, 5), torch.float32))
    with pytest.raises(ValueError, match="holds no threshold"):
        model.backward(out, torch.zeros(3, 4))
