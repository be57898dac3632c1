"""The engine's optimizers: torch.optim's updates, exact masking, selection."""

import inspect
import itertools

import numpy as np
import pytest
import torch

from sktopk.engine.optim import OPTIMIZERS, make_optimizer, optimizer_options

TORCH = {
    "adagrad": torch.optim.Adagrad,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}

CASES = [
    ("adagrad", {}),
    ("adagrad", {"eps": 1e-3, "initial_accumulator_value": 0.5}),
    ("adam", {}),
    ("adam", {"betas": (0.5, 0.9), "eps": 1e-4}),
    ("adam", {"betas": (0.0, 0.0)}),
    ("sgd", {}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.8, "dampening": 0.3}),
    ("sgd", {"momentum": 0.7, "nesterov": True}),
]
IDS = [",".join([name] + [f"{k}={v}" for k, v in opt.items()]) for name, opt in CASES]
SHAPES = [(4, 3), (5,)]  # each member's parameters
LEAD = (2, 3)
STEPS = 20


def _params(lead, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(lead + s, generator=gen, dtype=dtype) for s in SHAPES]


def _grads(lead, n, seed=1, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(lead + s, generator=gen, dtype=dtype) for s in SHAPES]
        for _ in range(n)
    ]


def _lrs(lead, seed=2):
    gen = torch.Generator().manual_seed(seed)
    return 0.01 + 0.2 * torch.rand(lead, generator=gen, dtype=torch.float64)


def _masks(lead, n, seed=3):
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(lead, generator=gen) < 0.5 for _ in range(n)]


def _torch_run(name, options, params, grads, lr):
    """``params`` after torch.optim steps on ``grads`` (one member)."""
    ps = [p.clone().requires_grad_() for p in params]
    opt = TORCH[name](ps, lr=lr, **options)
    for gs in grads:
        for p, g in zip(ps, gs, strict=True):
            p.grad = g.clone()
        opt.step()
    return [p.detach() for p in ps]


def _state(opt):
    """Every per-member state tensor of ``opt`` (buffers, then the step counts)."""
    out = [b for name in opt.buffers for b in getattr(opt, name)]
    return out + ([torch.as_tensor(opt.t)] if opt.counts else [])


def _member(ts, idx):
    return [t[idx] for t in ts]


def _assert_same(a, b):
    """Equal bit for bit (up to the sign of zeros); counts may be ints."""
    b = torch.as_tensor(b, dtype=a.dtype)
    assert torch.equal(a, b), (a - b).abs().max()


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_single_member_matches_torch(name, options):
    params, grads = _params(()), _grads((), STEPS)
    opt = make_optimizer(name, params, **options)
    for gs in grads:
        opt.step(gs, 0.1)
    expected = _torch_run(name, options, _params(()), grads, 0.1)
    for p, e in zip(params, expected, strict=True):
        torch.testing.assert_close(p, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_members_match_torch_each_with_its_lr(name, options):
    params, grads, lr = _params(LEAD), _grads(LEAD, STEPS), _lrs(LEAD)
    opt = make_optimizer(name, params, LEAD, **options)
    for gs in grads:
        opt.step(gs, lr)
    start = _params(LEAD)
    for idx in itertools.product(*map(range, LEAD)):
        member_grads = [_member(gs, idx) for gs in grads]
        expected = _torch_run(
            name, options, _member(start, idx), member_grads, float(lr[idx])
        )
        for p, e in zip(_member(params, idx), expected, strict=True):
            torch.testing.assert_close(p, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("float_mask", [False, True])
@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_masked_members_follow_their_own_steps(name, options, float_mask):
    """Each member ends where a single run stepped only under its mask ends,
    whatever the (finite) gradients of the steps it skipped."""
    params, grads, lr = _params(LEAD), _grads(LEAD, STEPS), _lrs(LEAD)
    masks = _masks(LEAD, STEPS)
    masks[0][0, 0] = False  # a member whose first step is masked ...
    for m in masks:
        m[1, 2] = False  # ... and one that steps only without a mask
    masks[5] = None  # every member steps (after some masked steps)
    masks[6] = torch.ones(LEAD, dtype=torch.bool)
    masks[7] = torch.zeros(LEAD, dtype=torch.bool)
    opt = make_optimizer(name, params, LEAD, **options)
    for gs, m in zip(grads, masks, strict=True):
        if m is not None:  # skipped members' gradients must not leak
            gs = [
                torch.where(m.view(LEAD + (1,) * len(s)), g, 1e6 * g - 7)
                for g, s in zip(gs, SHAPES, strict=True)
            ]
            m = m.double() if float_mask else m
        opt.step(gs, lr, m)
    start = _params(LEAD)
    for idx in itertools.product(*map(range, LEAD)):
        ref = _member(start, idx)
        single = make_optimizer(name, ref, **options)
        for gs, m in zip(grads, masks, strict=True):
            if m is None or m[idx]:
                single.step(_member(gs, idx), float(lr[idx]))
        for p, e in zip(_member(params, idx), ref, strict=True):
            _assert_same(p, e)
        for s, e in zip(_state(opt), _state(single), strict=True):
            _assert_same(s[idx], e)


def test_adam_long_masked_run_equals_single_runs():
    """Past the first table of bias corrections (1024 steps), still exact."""
    lead, n = (1, 2), 1500
    params, grads, lr = _params(lead), _grads(lead, n), _lrs(lead)
    masks = _masks(lead, n)
    opt = make_optimizer("adam", params, lead)
    for gs, m in zip(grads, masks, strict=True):
        opt.step(gs, lr, m)
    start = _params(lead)
    for idx in [(0, 0), (0, 1)]:
        ref = _member(start, idx)
        single = make_optimizer("adam", ref)
        for gs, m in zip(grads, masks, strict=True):
            if m[idx]:
                single.step(_member(gs, idx), float(lr[idx]))
        assert single.t > 600
        for p, e in zip(_member(params, idx), ref, strict=True):
            _assert_same(p, e)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_single_member_with_a_mask(name, options):
    params, grads = _params(()), _grads((), STEPS)
    masks = [torch.tensor(bool(b)) for b in _masks((STEPS,), 1)[0]]
    masks[0] = torch.tensor(False)
    opt = make_optimizer(name, params, **options)
    for gs, m in zip(grads, masks, strict=True):
        opt.step(gs, 0.1, m)
    ref = _params(())
    single = make_optimizer(name, ref, **options)
    for gs, m in zip(grads, masks, strict=True):
        if m:
            single.step(gs, 0.1)
    for p, e in zip(params, ref, strict=True):
        _assert_same(p, e)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_all_true_mask_equals_no_mask(name, options):
    lr, grads = _lrs(LEAD), _grads(LEAD, STEPS)
    a, b = _params(LEAD), _params(LEAD)
    opt_a = make_optimizer(name, a, LEAD, **options)
    opt_b = make_optimizer(name, b, LEAD, **options)
    for gs in grads:
        opt_a.step(gs, lr)
        opt_b.step(gs, lr, torch.ones(LEAD))
    for p, q in zip(a, b, strict=True):
        _assert_same(p, q)


@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_masked_out_step_changes_nothing(name, options):
    params, lr = _params(LEAD), _lrs(LEAD)
    opt = make_optimizer(name, params, LEAD, **options)
    opt.step(_grads(LEAD, 1)[0], lr, torch.ones(LEAD))  # per-member counts
    before = [t.clone() for t in params + _state(opt)]
    garbage = [1e6 * g + 3 for g in _grads(LEAD, 1, seed=5)[0]]
    opt.step(garbage, lr, torch.zeros(LEAD, dtype=torch.bool))
    for t, b in zip(params + _state(opt), before, strict=True):
        assert torch.equal(t, b)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("name", "options"), CASES, ids=IDS)
def test_select_keeps_the_members_trajectories(name, options, masked):
    lead, keep = (2, 4), torch.tensor([0, 2, 3])
    grads, lr = _grads(lead, STEPS), _lrs(lead)
    masks = _masks(lead, STEPS) if masked else [None] * STEPS
    full, cut = _params(lead), _params(lead)
    opt_full = make_optimizer(name, full, lead, **options)
    opt_cut = make_optimizer(name, cut, lead, **options)
    for i, (gs, m) in enumerate(zip(grads, masks, strict=True)):
        opt_full.step(gs, lr, m)
        if i == 8:
            cut = [p[:, keep].contiguous() for p in cut]
            opt_cut.select(keep, cut)
            assert opt_cut.lead == (2, 3)
        if i >= 8:
            gs, m = [g[:, keep] for g in gs], None if m is None else m[:, keep]
            opt_cut.step(gs, lr[:, keep], m)
        else:
            opt_cut.step(gs, lr, m)
    for p, q in zip(cut, full, strict=True):
        assert torch.equal(p, q[:, keep])
    for s, t in zip(_state(opt_cut), _state(opt_full), strict=True):
        assert torch.equal(s, t if t.dim() < 2 else t[:, keep])


def test_float32_stays_float32():
    params = _params(LEAD, dtype=torch.float32)
    opt = make_optimizer("adam", params, LEAD)
    lr = _lrs(LEAD).float()
    opt.step(_grads(LEAD, 1, dtype=torch.float32)[0], lr, _masks(LEAD, 1)[0])
    buffers = [b for name in opt.buffers for b in getattr(opt, name)]
    assert all(t.dtype == torch.float32 for t in params + buffers)
    assert opt.t.dtype == torch.long and opt.t.shape == LEAD


def test_defaults_are_torchs_and_the_signatures():
    for name, cls in OPTIMIZERS.items():
        signature = inspect.signature(cls).parameters
        torch_signature = inspect.signature(TORCH[name]).parameters
        assert optimizer_options(name) == cls.defaults
        for option, value in cls.defaults.items():
            assert signature[option].default == value
            assert torch_signature[option].default == value
    options = optimizer_options("adam")
    options["eps"] = 1.0
    assert OPTIMIZERS["adam"].defaults["eps"] == 1e-8


def test_betas_any_pair_of_numbers():
    opt = make_optimizer("adam", [torch.zeros(2)], betas=[0.5, np.float32(0.75)])
    assert opt.betas == (0.5, 0.75)


def test_lead_defaults_to_one_member():
    params = [torch.zeros(3)]
    opt = make_optimizer("adam", params)
    assert opt.lead == ()
    opt.step([torch.ones(3)], 0.1)
    assert torch.allclose(params[0], torch.full((3,), -0.1))


@pytest.mark.parametrize(
    ("name", "options", "match"),
    [
        ("adagrad", {"lr_decay": 0.1}, r"'lr_decay'.*'adagrad'.*eps.*initial_acc"),
        ("adam", {"amsgrad": True}, r"'amsgrad'.*'adam'.*betas, eps"),
        ("sgd", {"eps": 1.0}, r"'eps'.*'sgd'.*momentum, nesterov, dampening"),
        ("adagrad", {"eps": 0.0}, "eps must be a number > 0"),
        ("adagrad", {"initial_accumulator_value": -1}, "initial_accumulator_value"),
        ("adam", {"eps": -1e-8}, "eps must be a number > 0"),
        ("adam", {"eps": float("nan")}, "eps"),
        ("adam", {"betas": (1.0, 0.9)}, r"betas\[0\] must be a number in \[0, 1\)"),
        ("adam", {"betas": (0.9, -0.1)}, r"betas\[1\]"),
        ("adam", {"betas": 0.9}, "betas must be a pair"),
        ("sgd", {"momentum": -0.5}, r"momentum must be a number in \[0, 1\)"),
        ("sgd", {"dampening": 2.0}, r"dampening must be a number in \[0, 1\]"),
        ("sgd", {"nesterov": True}, "nesterov=True needs momentum > 0"),
        ("sgd", {"nesterov": True, "momentum": 0.9, "dampening": 0.1}, "nesterov"),
        ("sgd", {"nesterov": "yes", "momentum": 0.9}, "nesterov must be True"),
        ("sgd", {"momentum": "0.9"}, "momentum"),
    ],
)
def test_bad_options_raise(name, options, match):
    with pytest.raises(ValueError, match=match):
        make_optimizer(name, [torch.zeros(2)], **options)


def test_unknown_optimizer_lists_the_known_ones():
    for call in (
        lambda: make_optimizer("lbfgs", [torch.zeros(2)]),
        lambda: optimizer_options("lbfgs"),
    ):
        with pytest.raises(ValueError, match=r"'lbfgs'") as info:
            call()
        assert str(tuple(OPTIMIZERS)) in str(info.value)
