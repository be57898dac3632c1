"""Table 1's ways to sum the top k, against sorted() in float64."""

import numpy as np
import pytest

from sktopk.reproduce.synthetic import table1
from sktopk.reproduce.synthetic.published import published_value
from sktopk.reproduce.synthetic.settings import TimingSettings
from sktopk.reproduce.synthetic.topk_sum import (
    bubble_sort_sum,
    exact_sum,
    heap_sort_sum,
    prepare_inputs,
    threshold_descent,
    user_calls,
)


def _reference(values, k):
    return sum(sorted(values, reverse=True)[:k])


@pytest.mark.parametrize("sort", [bubble_sort_sum, heap_sort_sum])
@pytest.mark.parametrize("n, k", [(1, 1), (2, 1), (7, 3), (50, 50), (101, 5)])
def test_sorts_sum_the_k_largest(sort, n, k, rng):
    values = list(rng.integers(-5, 5, n).astype(float))  # ties included
    assert sort(values, k) == _reference(values, k)
    before = list(values)
    sort(values, k)
    assert values == before  # the caller's list is left alone


@pytest.mark.parametrize("delta", [None, 0.01, 0.5])
def test_threshold_descent_reaches_the_tolerance(delta, rng):
    x = rng.standard_normal(3000)
    exact = _reference(list(x), 5)
    value, its = threshold_descent(x, 5, exact, delta=delta, tol=1e-2)
    assert abs(value - exact) < 1e-2
    assert 1 <= its < 100_000


def test_threshold_descent_says_when_it_stops_early(rng):
    x = rng.standard_normal(1000)
    value, its = threshold_descent(x, 5, exact_sum(x, 5), max_iter=3)
    assert its == 3 and abs(value - exact_sum(x, 5)) > 1e-2


def test_user_calls_give_the_top_k_sum(rng):
    x, k, delta = rng.standard_normal(5000), 5, 0.01
    exact = _reference(list(x), k)
    inputs = prepare_inputs(x, k)
    for name, (_, call) in user_calls(k, delta).items():
        value = call(inputs)
        if name == "sktopk_stk":
            # n * STk at lam = the k-th largest: the top-k sum less between 0
            # and n delta / 2 (SReLU lies below ReLU by less than delta / 2).
            assert exact - len(x) * delta / 2 - 1e-3 < value <= exact + 1e-3
        else:
            assert value == pytest.approx(exact, abs=1e-4), name


TINY = TimingSettings(name="test", runs=2, n=400, k=3, bubble_n=100, bubble_runs=1)


def test_table1_rows_summary_and_report():
    runs = table1.run(TINY, seed=0)
    per_method = runs.groupby("method")["run"].count()
    assert per_method["bubble_sort"] == 1 and per_method["heap_sort"] == 2
    exact = ~runs["method"].str.startswith("sktopk_stk")  # stk: a smooth surrogate
    assert (runs.loc[exact, "abs_error"] < 1e-2).all()
    assert (runs["seconds"] > 0).all()
    summary = table1.summarize(runs, TINY).set_index("method")
    bubble = runs.loc[runs["method"] == "bubble_sort", "seconds"].mean()
    scaled = summary.loc["bubble_sort_scaled"]
    assert scaled["mean_seconds"] == pytest.approx(bubble * (400 / 100) ** 2)
    assert scaled["paper_mean"] == pytest.approx(20.42196)
    assert np.isnan(summary.loc["bubble_sort", "paper_mean"])
    assert summary.loc["stk_descent", "paper_mean"] == pytest.approx(0.0127)
    text = table1.render(summary.reset_index(), runs, TINY, command="c", seed=0,
                         seconds=1.0, plot_name=None)  # fmt: skip
    assert "| HeapSort (pure Python) | 400 | 2 |" in text
    assert "CPU" in text and "torch threads" in text


def test_published_values_of_the_paper():
    assert published_value("table1", "time_seconds", "HeapSort") == (0.1243, 0.0446)
    assert published_value("table2", "para_f1", "stk_srelu")[0] == 0.3446
    assert np.isnan(published_value("figure4", "accuracy_percent@0.001", "average")[0])
