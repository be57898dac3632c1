import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sktopk.reproduce import make_protocol
from sktopk.reproduce.report import render_report
from sktopk.reproduce.significance import (
    holm,
    paired_comparisons,
    significance_section,
    split_sizes,
)

SIZES = {"a": (100, 50), "b": (200, 100), "c": (40, 20)}


def _holm_brute_force(p):
    """Adjusted p_(i) = max over j <= i of min(1, (m - j) p_(j)), 0-based."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    m, out = len(p), np.empty(len(p))
    for rank, i in enumerate(order):
        out[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
    return out


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> 0.06
    got = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])


@pytest.mark.parametrize("m", [1, 2, 5, 9])
def test_holm_matches_its_definition(m, rng):
    p = rng.uniform(0, 0.3, m) ** 2
    np.testing.assert_allclose(holm(p), _holm_brute_force(p))
    assert (holm(p) >= p).all() and (holm(p) <= 1).all()


def test_holm_leaves_nan_out_of_the_family():
    got = holm([0.01, np.nan, 0.02])
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2]], [0.02, 0.02])


def _runs(rng, shifts, n_runs=12, noise=1.0):
    """Runs of 'stk' and two baselines on the datasets of ``shifts``: per run,
    stk's error is a common base plus the dataset's shift, each baseline's
    that base plus noise (paired by run)."""
    rows = []
    for dataset, shift in shifts.items():
        base = rng.normal(20.0, 3.0, n_runs)
        for agg in ("average", "atk", "stk"):
            if agg == "stk":
                values = base + shift
            else:
                values = base + rng.normal(0, noise, n_runs)
            for run, value in enumerate(values):
                rows.append((3, dataset, "logistic", agg, run, value))
    columns = ["table", "dataset", "loss", "aggregate", "run", "value"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["metric"] = "error_rate_percent"
    return frame


def test_statistics_match_an_independent_paired_test(rng):
    runs = _runs(rng, {"a": -1.0, "b": 0.0, "c": 2.0})
    out = paired_comparisons(runs, sizes=SIZES.__getitem__)
    assert len(out) == 6 and set(out["baseline"]) == {"average", "atk"}
    for r in out.itertuples():
        pick = (runs["dataset"] == r.dataset).to_numpy()
        ref = runs[pick & (runs["aggregate"] == "stk").to_numpy()]["value"]
        other = runs[pick & (runs["aggregate"] == r.baseline).to_numpy()]["value"]
        plain = stats.ttest_rel(ref.to_numpy(), other.to_numpy())
        J = len(ref)
        n_train, n_test = SIZES[r.dataset]
        # Nadeau-Bengio: the paired t with 1/J replaced by 1/J + n_test/n_train.
        t = plain.statistic * np.sqrt((1 / J) / (1 / J + n_test / n_train))
        assert r.t == pytest.approx(t, rel=1e-10)
        assert r.p == pytest.approx(2 * stats.t.sf(abs(t), J - 1), rel=1e-9)
        assert r.diff == pytest.approx(np.mean(ref.to_numpy() - other.to_numpy()))


def test_holm_is_applied_across_datasets_per_baseline(rng):
    runs = _runs(rng, {"a": -1.0, "b": 0.3, "c": 2.0})
    out = paired_comparisons(runs, sizes=SIZES.__getitem__)
    for _, rows in out.groupby("baseline"):
        assert len(rows) == 3
        np.testing.assert_allclose(rows["p_holm"], _holm_brute_force(rows["p"]))


def test_verdicts_win_tie_lose(rng):
    runs = _runs(rng, {"a": -3.0, "b": 0.0, "c": 3.0}, n_runs=30, noise=0.5)
    out = paired_comparisons(runs, sizes=SIZES.__getitem__)
    verdict = out.groupby("dataset")["verdict"].agg(set).to_dict()
    assert verdict == {"a": {"wins"}, "b": {"ties"}, "c": {"loses"}}


def test_identical_runs_tie_with_p_one(rng):
    runs = _runs(rng, {"a": 0.0, "b": 0.0}, noise=0.0)
    out = paired_comparisons(runs, sizes=SIZES.__getitem__)
    assert (out["verdict"] == "ties").all() and (out["p"] == 1.0).all()


def test_a_large_shift_with_few_runs_is_not_called_a_win(rng):
    """Two runs and noisy differences: the corrected test cannot decide."""
    runs = _runs(rng, {"a": -1.0}, n_runs=2, noise=3.0)
    out = paired_comparisons(runs, sizes=SIZES.__getitem__)
    assert (out["verdict"] == "ties").all()


def test_without_the_reference_nothing_is_compared(rng):
    runs = _runs(rng, {"a": -1.0})
    out = paired_comparisons(runs[runs["aggregate"] != "stk"])
    assert out.empty
    assert significance_section(runs[runs["aggregate"] != "stk"]) == []


def test_split_sizes_of_a_bundled_dataset():
    n_train, n_test = split_sizes("wisconsin")  # 683 rows
    assert (n_train, n_test) == (341, 171)


def test_the_report_says_it_in_words(rng, monkeypatch):
    from sktopk.reproduce import significance

    monkeypatch.setattr(significance, "split_sizes", SIZES.__getitem__)
    monkeypatch.setitem(paired_comparisons.__kwdefaults__, "sizes", SIZES.__getitem__)
    runs = _runs(rng, {"a": -3.0, "b": 0.0, "c": 3.0}, n_runs=30, noise=0.5)
    lines = significance_section(runs)
    text = "\n".join(lines)
    assert "**a** (logistic): STk wins beyond noise against average" in text
    assert "**b** (logistic): STk ties with average" in text
    assert "**c** (logistic): STk loses beyond noise to average" in text
    empty = pd.DataFrame(
        columns=["table", "dataset", "loss", "aggregate", "metric"]
        + ["mean", "std", "paper_mean", "paper_std", "diff_std"]
    )
    report = render_report(
        empty, make_protocol("quick"), title="t", command="c", seed=0,
        timing={}, plots=[], runs=runs,
    )  # fmt: skip
    assert "STk wins beyond noise against" in report
    for a, b in itertools.pairwise(["## Plots", "## STk against", "## Notes"]):
        assert report.index(a) < report.index(b)


# --- the constant-predictor reference of the regression reports -------------


def test_constant_predictor_by_hand():
    from sktopk.datasets import load_dataset
    from sktopk.reproduce.reference import constant_predictor_runs
    from sktopk.reproduce.splits import make_splits, run_seeds

    protocol = make_protocol("quick", runs=2)
    got = constant_predictor_runs(["housing"], ["square", "absolute"], protocol, 7)
    _, y = load_dataset("housing", return_X_y=True)
    y = (y - y.min()) / (y.max() - y.min())
    for run, seed in enumerate(run_seeds(7, "housing", 2)):
        train, _, test = make_splits(y, "regression", seed)
        for loss, c in (("square", y[train].mean()), ("absolute", np.median(y[train]))):
            rmse = np.sqrt(np.mean((y[test] - c) ** 2))
            row = got[(got["run"] == run) & (got["loss"] == loss)]
            assert row["value"].item() == pytest.approx(rmse, rel=1e-5)


def test_constant_section_only_for_regression_and_in_words():
    from sktopk.reproduce.reference import constant_section

    protocol = make_protocol("quick", runs=2)
    rows = [
        ("average", 0.50, 0.50), ("stk", 0.05, np.nan),  # paper far worse
    ]  # fmt: skip
    comparison = pd.DataFrame(
        [
            (6, "housing", "square", a, "rmse_target_scaled_0_1", m, p)
            for a, m, p in rows
        ],
        columns=[
            "table",
            "dataset",
            "loss",
            "aggregate",
            "metric",
            "mean",
            "paper_mean",
        ],
    )
    text = "\n".join(constant_section(comparison, protocol, 0))
    assert "**housing** (square): constant (mean)" in text
    assert "our best, stk, 0.0500" in text
    assert "the paper's Average 0.5000, no better than the constant" in text
    classification = comparison.assign(metric="error_rate_percent")
    assert constant_section(classification, protocol, 0) == []
