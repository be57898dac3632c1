"""The compiled Adagrad step against the tensor operations it replaces."""

import numpy as np
import pytest
import torch

import sktopk.losses._native as native
from sktopk.engine import compiled_optim
from sktopk.engine.optim import make_optimizer

pytestmark = pytest.mark.skipif(
    not native.native_available(), reason="numba is not installed (the fast extra)"
)

LEAD = (3, 5)
WIDTH = 37
STEPS = 12


def _data(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(LEAD + (WIDTH,), generator=gen, dtype=torch.float64)
    grads = [
        3.0 * torch.randn(LEAD + (WIDTH,), generator=gen, dtype=torch.float64)
        for _ in range(STEPS)
    ]
    lr = 0.01 + 0.5 * torch.rand(LEAD, generator=gen, dtype=torch.float64)
    masks = [torch.rand(LEAD, generator=gen) < 0.6 for _ in range(STEPS)]
    return p.to(dtype), [g.to(dtype) for g in grads], lr.to(torch.float32), masks


def _run(p, grads, lr, masks, compiled, monkeypatch, **options):
    """The weights and sums after Adagrad's steps (masked where ``masks``)."""
    with monkeypatch.context() as m:
        m.setitem(native._STATE, "on", compiled)
        p = p.clone()
        opt = make_optimizer("adagrad", [p], p.shape[:-1], **options)
        for i, g in enumerate(grads):
            opt.step([g], lr, None if masks is None else masks[i])
    return p, opt.sums[0]


def test_one_step_rounds_as_the_tensor_operations_but_the_root(monkeypatch):
    """One step from the same state: the sums equal bit for bit, the weights
    equal those of the tensor operations with a correctly rounded root."""
    p, grads, lr, _ = _data(torch.float32)
    s = torch.rand(p.shape, generator=torch.Generator().manual_seed(5))
    p1, s1 = p.clone(), s.clone()
    assert _step(p1, grads[0], s1, lr, 1e-3)
    s0 = s.addcmul(grads[0], grads[0])
    root = torch.from_numpy(np.sqrt(s0.numpy()))  # correctly rounded
    step = grads[0] * (-lr).unsqueeze(-1)
    assert torch.equal(s1, s0)
    assert torch.equal(p1, p.addcdiv(step, root + torch.tensor(1e-3)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("masked", [False, True])
def test_compiled_step_matches_the_tensor_operations(dtype, masked, monkeypatch):
    p, grads, lr, masks = _data(dtype)
    masks = masks if masked else None
    p1, s1 = _run(p, grads, lr, masks, True, monkeypatch, eps=1e-3)
    p0, s0 = _run(p, grads, lr, masks, False, monkeypatch, eps=1e-3)
    assert torch.equal(s1, s0)  # a fused multiply-add, as addcmul_
    # torch's vectorised square root may round apart from the correctly
    # rounded one by a unit in the last place: the weights drift by rounding.
    tol = {} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-12}
    torch.testing.assert_close(p1, p0, **tol)
    assert not torch.equal(p1, p)


def test_masked_out_members_keep_weights_and_sums(monkeypatch):
    p, grads, lr, _ = _data(torch.float32)
    mask = torch.zeros(LEAD, dtype=torch.bool)
    mask[1, 2] = True
    p1, s1 = _run(p, grads[:1], lr, [mask], True, monkeypatch)
    keep = ~mask
    assert torch.equal(p1[keep], p[keep])
    assert torch.equal(s1[keep], torch.zeros_like(s1[keep]))
    assert not torch.equal(p1[1, 2], p[1, 2])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_members_equal_single_runs_bit_for_bit(dtype, monkeypatch):
    """Each member with its own step size ends where a single run (a Python
    number as step size) ends."""
    p, grads, lr, _ = _data(dtype)
    batch, _ = _run(p, grads, lr, None, True, monkeypatch)
    for idx in [(0, 0), (1, 3), (2, 4)]:
        with monkeypatch.context() as m:
            m.setitem(native._STATE, "on", True)
            q = p[idx].clone()
            opt = make_optimizer("adagrad", [q])
            for g in grads:
                opt.step([g[idx].clone()], float(lr[idx]))
        assert torch.equal(batch[idx], q)


def _step(p, g, s, lr, eps=1e-10, mask=None):
    loop = compiled_optim.AdagradLoop.make(p, s, eps)
    return loop is not None and loop(g, lr, mask)


def _declines(p, g, s, lr, mask=None):
    before = (p.clone(), s.clone())
    done = _step(p, g, s, lr, mask=mask)
    assert torch.equal(p, before[0]) and torch.equal(s, before[1])
    return not done


@pytest.mark.parametrize(
    "case",
    ["float16", "mixed dtypes", "not contiguous", "lr of other shape", "mask shape"],
)
def test_declines_what_it_does_not_handle(case):
    p, grads, lr, masks = _data(torch.float32)
    g, s, mask = grads[0], torch.zeros_like(p), None
    if case == "float16":
        p, g, s = p.half(), g.half(), s.half()
    elif case == "mixed dtypes":
        g = g.double()
    elif case == "not contiguous":
        p = p.transpose(0, 1)
        g, s = g.transpose(0, 1), s.transpose(0, 1)
    elif case == "lr of other shape":
        lr = lr[:, :2]
    else:
        mask = masks[0][:, :2]
    assert _declines(p, g, s, lr, mask)


def test_declines_with_many_threads_or_numba_off(monkeypatch):
    p, grads, lr, _ = _data(torch.float32)
    s = torch.zeros_like(p)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    assert _declines(p, grads[0], s, lr)
    monkeypatch.undo()
    monkeypatch.setitem(native._STATE, "on", False)
    assert _declines(p, grads[0], s, lr)


def test_optimizer_steps_by_tensor_operations_where_it_declines(monkeypatch):
    """With many threads the optimizer takes the tensor form: the same result
    as with numba off."""
    p, grads, lr, masks = _data(torch.float32)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    p1, _ = _run(p, grads, lr, masks, True, monkeypatch)
    p0, _ = _run(p, grads, lr, masks, False, monkeypatch)
    assert torch.equal(p1, p0)
