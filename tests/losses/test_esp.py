"""Elementary symmetric polynomials: log-space divide and conquer, fast pieces."""

import itertools
import math

import pytest
import torch

from sktopk.losses._esp import esp_unit, log_esp, power_sums, split_esp_lags


def brute_log_esp(z, k):
    """log e_0..log e_k of exp(z) by enumerating subsets (float64, autograd)."""
    m = z.shape[-1]
    out = [torch.zeros_like(z[..., 0])]
    for j in range(1, k + 1):
        subsets = list(itertools.combinations(range(m), j))
        if not subsets:
            out.append(torch.full_like(z[..., 0], -math.inf))
            continue
        sums = z[..., torch.tensor(subsets)].sum(-1)
        out.append(torch.logsumexp(sums, -1))
    return torch.stack(out, -1)


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 9])
def test_log_esp_matches_brute_force(m, rng):
    z = torch.tensor(rng.normal(scale=3.0, size=(4, m)))
    for k in range(0, m + 2):  # k > m gives -inf for the missing degrees
        got, want = log_esp(z, k), brute_log_esp(z, k)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_log_esp_gradient_is_inclusion_probability(rng):
    # d log e_j / dz_i is the probability that i is in a weighted j-subset:
    # it matches the brute force and sums to j over i.
    z = torch.tensor(rng.normal(size=(3, 7)), requires_grad=True)
    zb = z.detach().clone().requires_grad_()
    for j in range(1, 6):
        (g,) = torch.autograd.grad(log_esp(z, 5)[:, j].sum(), z)
        (gb,) = torch.autograd.grad(brute_log_esp(zb, 5)[:, j].sum(), zb)
        torch.testing.assert_close(g, gb, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(g.sum(1), torch.full((3,), float(j), dtype=g.dtype))


def test_log_esp_zero_entries():
    z = torch.tensor([[0.0, -math.inf, math.log(2.0)], [-math.inf] * 3])
    got = log_esp(z, 3)
    want = torch.tensor(
        [
            [0.0, math.log(3.0), math.log(2.0), -math.inf],
            [0.0, -math.inf, -math.inf, -math.inf],
        ]
    )
    torch.testing.assert_close(got, want)
    z.requires_grad_(True)
    (g,) = torch.autograd.grad(log_esp(z, 2)[0, 1], z)
    assert torch.isfinite(g).all()


def test_log_esp_float32_huge_spread(rng):
    # Row maximum removed first: values of size 1e4 neither overflow nor underflow.
    z64 = torch.tensor(rng.normal(scale=1e4, size=(5, 40)))
    got = log_esp(z64.float(), 6).double()
    want = log_esp(z64.float().double(), 6)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0.0)


def test_log_esp_empty_rows():
    out = log_esp(torch.zeros(2, 0), 2)
    assert out.tolist() == [[0.0, -math.inf, -math.inf]] * 2


def test_power_sums(rng):
    x = torch.tensor(rng.uniform(size=(3, 9)))
    want = torch.stack([(x**j).sum(1) for j in range(1, 7)], 1)
    torch.testing.assert_close(power_sums(x, 6), want)


@pytest.mark.parametrize("m", [1, 2, 7, 16, 33])
def test_esp_unit_matches_log_esp(m, rng):
    x = torch.tensor(rng.uniform(size=(3, m)) ** 3, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    weights = torch.tensor(rng.normal(size=(3, 13)))
    for k in (1, 2, 5, 12):
        got = esp_unit(x, k)
        want = log_esp(x_ref.log(), k).exp()
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-300)
        (g,) = torch.autograd.grad((got * weights[:, : k + 1]).sum(), x)
        (gw,) = torch.autograd.grad((want * weights[:, : k + 1]).sum(), x_ref)
        torch.testing.assert_close(g, gw, rtol=1e-10, atol=1e-12)


def test_esp_unit_gradcheck_and_edges(rng):
    x = torch.tensor(rng.uniform(size=(2, 9)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: esp_unit(v, 4), (x,))
    zeros = torch.zeros(2, 3, dtype=torch.float64)
    assert esp_unit(zeros, 2).tolist() == [[1.0, 0.0, 0.0]] * 2
    assert esp_unit(torch.zeros(2, 0), 2).tolist() == [[1.0, 0.0, 0.0]] * 2


def dp_esp(v, k):
    """e_0..e_k of each row by the recurrence e_j <- e_j + v_i e_{j-1} (float64)."""
    e = torch.zeros(v.shape[0], k + 1, dtype=torch.float64)
    e[:, 0] = 1.0
    for i in range(v.shape[1]):
        e[:, 1:] = e[:, 1:] + v[:, i : i + 1] * e[:, :-1].clone()
    return e


@pytest.mark.parametrize("k", [1, 2, 5, 10])
def test_split_esp_lags_matches_the_recurrence(k, rng):
    u = torch.tensor(rng.uniform(size=(6, k)))
    u[:, -1] = 1.0  # as in the loss: the k-th largest maps to 1
    x = torch.tensor(rng.uniform(size=(6, 40)) ** 3)
    p = torch.stack([power_sums(u, k), power_sums(x, k)], 1)
    got = split_esp_lags(p)
    a, b = dp_esp(u, k), dp_esp(x, k)

    def lag(f, g, d, last=k):  # sum_i f_{i+d} g_i over i + d <= last
        return sum(f[:, i + d] * g[:, i] for i in range(last - d + 1))

    zero = torch.zeros(6, dtype=torch.float64)
    sign = [(-1.0) ** d for d in range(k)]
    want = [(a * b).sum(1), (a[:, 1:] * b[:, :-1]).sum(1)]
    want += [sign[d] * lag(a, b, d + 1) for d in range(k)]  # g_{d+1}
    want += [sign[d] * lag(b, a, d + 1) for d in range(k)]  # h_{d+1}
    want += [-sign[d] * lag(a, b, d + 2) if d + 2 <= k else zero for d in range(k)]
    want += [-sign[d] * lag(b, a, d, last=k - 1) for d in range(k)]  # h'_d
    want = torch.stack(want, 1)
    # Errors relative to the row's scale: A >= 1 and these numerators enter the
    # loss and its gradient against A and B, so absolute accuracy is what counts.
    err = (got - want).abs() / want.abs().amax(1, keepdim=True)
    assert err.max() < 1e-13


def test_esp_unit_batched_backward_matches_one_at_a_time(rng):
    # is_grads_batched (and jacobian(vectorize=True)) run the backward once on
    # a batch of output gradients: the same as one backward per gradient.
    x = torch.tensor(rng.uniform(size=(3, 33)), requires_grad=True)
    out = esp_unit(x, 12)
    vs = torch.tensor(rng.normal(size=(4, 3, 13)))
    (batched,) = torch.autograd.grad(
        out, x, vs, is_grads_batched=True, retain_graph=True
    )
    for v, got in zip(vs, batched, strict=True):
        (want,) = torch.autograd.grad(out, x, v, retain_graph=True)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


# torch.func's batched unfold (the log-space reference) warns that it is slow.
@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_smooth_topk_svm_vectorized_jacobian_on_the_product_tree(rng):
    # 20 classes, k = 12: more than 256 k-subsets and k > 10, the product-tree
    # route; its Jacobian against the log-space route's (torch.func's).
    from sktopk.losses import smooth_topk_svm
    from sktopk.losses._topk_svm import _route

    assert _route(4, 20, 12) == "large"
    scores = torch.tensor(rng.normal(scale=2.0, size=(4, 20)))
    labels = torch.tensor(rng.integers(0, 20, 4))

    def loss(s):
        return smooth_topk_svm(s, labels, k=12, tau=0.5, reduction="none")

    got = torch.autograd.functional.jacobian(loss, scores, vectorize=True)
    want = torch.func.jacrev(loss)(scores)  # the log-space route
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
