"""The batched engine: members equal single runs; compaction changes nothing."""

import os

import numpy as np
import pytest
import torch

from sktopk.engine import Hyper, StackedMLP, TrainData, TrainSpec
from sktopk.engine.grid import evaluate, make_data, parse_memory, train_grid


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=300) > 0, 1.0, -1.0)
    splits = [(rng.permutation(300)[:n], rng.permutation(300)[:80]) for n in (200, 190)]
    return X, y.astype(np.float32), splits


GRID = {
    "lr": np.array([0.1, 0.05, 0.01, 0.1, 0.2, 0.001]),
    "C": np.array([1e3, 10.0, 1e3, 1e5, 1e3, 1e3]),
    "kappa": np.array([0.5, 1.0, 0.2, 0.8, 0.3, 0.5]),
    "delta": np.array([0.01, 0.1, 0.01, 0.001, 0.01, 0.5]),
}


@pytest.mark.parametrize("early_stopping", [False, True])
def test_compaction_changes_nothing(problem, early_stopping, monkeypatch):
    X, y, splits = problem
    calls = []
    select = StackedMLP.select
    monkeypatch.setattr(
        StackedMLP,
        "select",
        lambda self, keep: calls.append(keep.shape[-1]) or select(self, keep),
    )
    out = []
    for compact in (False, True):
        spec = TrainSpec(
            loss="logistic",
            aggregate="stk",
            task="binary",
            max_epochs=25,
            early_stopping=early_stopping,
            eval_every=7,
            patience=2,
            tol=1e-3,
            compact=compact,
        )
        data = make_data(X, y, splits)
        model, res = train_grid(data, spec, (4, 6, 1), GRID, seeds=[3, 4])
        out.append((model.flat.clone(), res))
    (w0, r0), (w1, r1) = out
    torch.testing.assert_close(w1, w0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(r1.lam, r0.lam, rtol=1e-5, atol=1e-6)
    assert torch.equal(r1.n_epochs, r0.n_epochs)
    assert torch.equal(r1.best_step, r0.best_step)
    assert calls and min(calls) < len(GRID["lr"])  # the batch did shrink


def test_member_equals_single_run(problem):
    X, y, splits = problem
    spec = TrainSpec(
        loss="hinge", aggregate="matk", task="binary", max_epochs=8, patience=100
    )
    data = make_data(X, y, splits[:1])
    model, res = train_grid(data, spec, (4, 1), GRID, seeds=[5])
    for m in (0, 3):
        one = StackedMLP.initialize(
            (4, 1), [torch.Generator().manual_seed(5)], 1, single=True
        )
        hyper = {k: float(v[m]) for k, v in GRID.items()}
        single = TrainData(data.X, data.y, data.w, data.train_idx)
        _, r = train_grid(single, spec, one, hyper, [5])
        torch.testing.assert_close(model.flat[0, m], one.flat, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(res.lam[0, m], r.lam, rtol=1e-4, atol=1e-5)


def test_evaluate_and_memory_sizes(problem):
    X, y, splits = problem
    data = make_data(X, y, splits)
    spec = TrainSpec(loss="logistic", aggregate="average", task="binary", max_epochs=3)
    model, _ = train_grid(data, spec, (4, 1), GRID, seeds=[0, 1])
    acc = evaluate(model, data, [torch.as_tensor(v) for _, v in splits], "binary")
    assert acc.shape == (2, 6) and bool(((acc >= 0) & (acc <= 1)).all())
    assert parse_memory("1.5KiB") == 1536


@pytest.mark.parametrize(
    ("text", "size"),
    [("2GB", 2 * 10**9), ("512MiB", 2**29), ("1TB", 10**12), ("1 tib", 2**40),
     ("1e9", 10**9), (".5G", 5 * 10**8), ("100", 100), (1000, 1000), (None, None)],
)  # fmt: skip
def test_memory_sizes_in_every_unit(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    "text", ["lots", "inf", "nan", "1e400", "-1GB", "0", "GB", "1XB", "1.2.3", -5, True]
)
def test_memory_sizes_that_are_not_positive_sizes_are_refused(text):
    with pytest.raises(ValueError, match="not understood"):
        parse_memory(text)


def test_typed_contracts_refuse_unknown_names():
    with pytest.raises(ValueError, match="task must be one of"):
        TrainSpec(loss="hinge", aggregate="stk", task="classification")
    with pytest.raises(ValueError, match="validation_error must be"):
        TrainSpec(loss="square", aggregate="stk", task="regression",
                  validation_error="median")  # fmt: skip
    with pytest.raises(ValueError, match="unknown: \\['k'\\]"):
        Hyper.build({"lr": 0.1, "C": 1.0, "k": 0.5}, (1, 2))
    with pytest.raises(ValueError, match="missing: \\['C'\\]"):
        Hyper.build({"lr": 0.1}, ())
    h = Hyper.build({"lr": [0.1, 0.2], "C": 1.0, "kappa": 0.5}, (3, 2))
    assert h.lead == (3, 2) and float(h.delta[2, 1]) == 1.0
    assert h.select(torch.tensor([1])).lr.tolist() == [[np.float32(0.2)]] * 3


@pytest.mark.parametrize("task, out", [("regression", 1), ("binary", 1),
                                       ("multiclass", 3)])  # fmt: skip
def test_scores_by_row_chunks_equal_one_pass(task, out, monkeypatch):
    from sktopk.engine import scoring

    gen = torch.Generator().manual_seed(0)
    G, M, n, d = 3, 5, 37, 4
    model = StackedMLP.initialize((d, 6, out), [gen] * G, M)
    model.flat.add_(0.3 * torch.randn(model.flat.shape, generator=gen))
    X = torch.randn(G, 1, n, d, generator=gen)
    y = torch.randint(0, 3, (G, 1, n), generator=gen).float()
    y = y if task != "binary" else 2 * (y > 0) - 1.0
    w = torch.rand(G, 1, n, generator=gen)
    w[:, :, -5:] = 0.0  # padding rows of shorter groups weigh nothing
    whole = scoring.score(task, model.forward(X, cache=False), y, w)
    monkeypatch.setattr(scoring, "_CHUNK_ELEMENTS", G * M * 6 * 4)  # 4 rows
    assert scoring.chunk_rows(model, n) == 4
    chunked = scoring.score_rows(model, X, y, w, task)
    assert chunked.shape == (G, M)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss, task", [("logistic", "binary"), ("square", "regression")]
)
def test_initial_lambda_by_row_chunks_equals_one_pass(problem, loss, task, monkeypatch):
    # lambda starts at the k-th largest initial loss, computed by chunks of
    # rows: the same numbers as in one pass, up to float rounding.
    from sktopk.engine import scoring, trainer

    X, y, splits = problem
    spec = TrainSpec(loss=loss, aggregate="stk", task=task, max_epochs=0)
    chunks = []
    real = scoring.forward_rows

    def recorded(model, X):
        for lo, hi, f in real(model, X):
            chunks.append(hi - lo)
            yield lo, hi, f

    monkeypatch.setattr(trainer, "forward_rows", recorded)
    out = []
    for elements in (1 << 20, 2 * 6 * 6 * 7):  # one chunk; chunks of 7 rows
        monkeypatch.setattr(scoring, "_CHUNK_ELEMENTS", elements)
        chunks.clear()
        _, res = train_grid(
            make_data(X, y, splits), spec, (4, 6, 1), GRID, seeds=[3, 4]
        )
        out.append((res.lam.clone(), list(chunks)))
    (whole, one), (chunked, sevens) = out
    assert one == [200] and sevens == [7] * 28 + [4]
    torch.testing.assert_close(chunked, whole, rtol=1e-6, atol=1e-7)
    assert bool((whole > 0).all())  # a real threshold, not the clamp at 0


def test_host_memory_is_what_the_kernel_says_is_available(tmp_path, monkeypatch):
    from sktopk.engine.grid import host_available

    meminfo, no_cgroup = tmp_path / "meminfo", str(tmp_path / "no-cgroup")
    meminfo.write_text(
        "MemTotal:       24684000 kB\nMemFree:         1000000 kB\n"
        "MemAvailable:   22000000 kB\nCached:         20000000 kB\n"
    )
    assert host_available(str(meminfo), no_cgroup) == 22000000 * 1024  # not MemFree
    monkeypatch.setattr(os, "sysconf", lambda name: 4096 if "SIZE" in name else 1000)
    meminfo.write_text("MemTotal: 1 kB\n")  # older kernels: the free pages
    assert host_available(str(meminfo), no_cgroup) == 4096 * 1000
    assert host_available(str(tmp_path / "none"), no_cgroup) == 4096 * 1000


def test_host_memory_is_at_most_what_the_cgroup_leaves(tmp_path):
    from sktopk.engine.grid import host_available

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemAvailable:   22000000 kB\n")
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    v2.mkdir()
    (v2 / "memory.max").write_text(f"{4 * 2**30}\n")
    (v2 / "memory.current").write_text(f"{2**30}\n")
    assert host_available(str(meminfo), str(v2)) == 3 * 2**30  # a container's
    (v2 / "memory.max").write_text("max\n")
    assert host_available(str(meminfo), str(v2)) == 22000000 * 1024
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{2**31}\n")
    (v1 / "memory" / "memory.usage_in_bytes").write_text(f"{2**30}\n")
    assert host_available(str(meminfo), str(v1)) == 2**30
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert host_available(str(meminfo), str(v1)) == 22000000 * 1024
    assert host_available(str(meminfo), str(tmp_path / "none")) == 22000000 * 1024


def test_weighted_initial_lambda_counts_weights_as_repetitions():
    # The threshold the engine starts from, with integer weights, is the
    # k-th largest of the losses repeated that many times (a sort of them).
    from sktopk.engine.trainer import _weighted_threshold

    gen = torch.Generator().manual_seed(0)
    for kappa in (0.05, 0.3, 0.5, 1.0):
        losses = torch.rand(3, 40, generator=gen)
        w = torch.randint(0, 4, (3, 40), generator=gen).double()
        w[:, 0] = 1.0  # a unit weight: repetitions
        got = _weighted_threshold(losses, w, torch.full((3,), kappa))
        for row in range(3):
            repeated = losses[row].repeat_interleave(w[row].long())
            k = int(np.ceil(kappa * len(repeated) - 1e-9))
            expected = repeated.sort(descending=True).values[k - 1]
            assert got[row] == expected


@pytest.mark.parametrize("aggregate", ["matk", "stk"])
def test_weighted_fit_equals_the_fit_on_repeated_rows(aggregate):
    # Full batch (no shuffling): integer sample weights are repetitions, the
    # threshold's starting point included (it ranked unweighted losses).
    from sktopk import STkClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=60) > 0).astype(int)
    w = rng.integers(1, 4, 60)
    kw = dict(aggregate=aggregate, k=0.3, max_epochs=3, tol=0.0, random_state=0)
    weighted = STkClassifier(batch_size=60, **kw).fit(X, y, sample_weight=w)
    repeated = STkClassifier(batch_size=int(w.sum()), **kw)
    repeated.fit(np.repeat(X, w, 0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.lambda_, repeated.lambda_, rtol=1e-6)
    np.testing.assert_allclose(
        weighted.decision_function(X), repeated.decision_function(X), atol=1e-6
    )


@pytest.mark.parametrize("aggregate", ["maximum", "stk", "matk", "average"])
def test_a_shorter_groups_curve_is_its_single_runs(problem, aggregate):
    # Training rows 100 and 70 (7 and 5 minibatches of 16): the shorter group
    # skips two steps, which add nothing to its objective (on their
    # all-padding batches the maximum is -inf and the dual forms kappa lam).
    X, y, splits = problem
    splits = [(splits[0][0][:100], splits[0][1]), (splits[1][0][:70], splits[1][1])]
    spec = TrainSpec(
        loss="logistic", aggregate=aggregate, task="binary", max_epochs=4,
        batch_size=16, tol=0.0, patience=100,
    )  # fmt: skip
    hyper = {k: v[:2] for k, v in GRID.items()}
    _, res = train_grid(make_data(X, y, splits), spec, (4, 1), hyper, seeds=[5, 6])
    assert not res.diverged.any()
    for g, seed in ((0, 5), (1, 6)):
        for m in range(2):
            one = StackedMLP.initialize(
                (4, 1), [torch.Generator().manual_seed(seed)], 1, single=True
            )
            single = make_data(X, y, splits[g : g + 1])
            member = {k: float(v[m]) for k, v in hyper.items()}
            _, r = train_grid(single, spec, one, member, [seed])
            batched = torch.stack([c[g, m] for c in res.loss_curve])
            alone = torch.stack(r.loss_curve)
            torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_inputs_constant_on_a_groups_training_rows_start_and_stay_at_zero(problem):
    X, y, _ = problem
    X = X.copy()
    w = np.ones(len(X), np.float32)
    splits = [(np.arange(0, 150), None), (np.arange(150, 300), None)]
    X[:150, 2] = 0.0  # constant (centred, as the estimators give it) on
    X[150:, 3] = 0.0  # group 0's training rows, and on group 1's of weight > 0
    X[150:157, 3], w[150:157] = 4.0, 0.0
    spec = TrainSpec(loss="hinge", aggregate="average", task="binary", max_epochs=3)
    data = make_data(X, y, splits, w)
    model, _ = train_grid(data, spec, (4, 3, 1), GRID, seeds=[1, 2])
    W1 = model.params[0]  # (groups, members, inputs, hidden)
    assert not W1[0, :, 2].any() and W1[1, :, 2].abs().min() > 0
    assert not W1[1, :, 3].any() and W1[0, :, 3].abs().min() > 0
