"""Training on the Gaussian data (Table 2, Figures 3-4) at a tiny size."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sktopk.datasets import make_imbalanced_gaussians
from sktopk.engine import one_thread
from sktopk.reproduce.splits import run_seeds
from sktopk.reproduce.synthetic import figure3, figure4, make_settings, table2
from sktopk.reproduce.synthetic.gaussian import draw, run_gaussian, train_column
from sktopk.reproduce.synthetic.settings import COLUMNS, GaussianSettings

TINY = GaussianSettings(
    name="test", runs=2, n_train=300, n_val=200, n_test=400, n_features=6,
    n_informative=2, shift=1.5, columns=("average", "stk_srelu"), k=(0.2, 0.8),
    C=(0.5, 1e3), lr=(0.05,), batch_size=64, max_epochs=15, eval_every=5,
    patience=4, groups_at_once=1,
)  # fmt: skip


def test_draw_lays_out_each_repetition():
    d = draw(TINY, [(0.25, 3), (0.25, 4)])
    assert d.X.shape == (2 * 900, 6) and d.X.dtype == np.float32
    rows = np.concatenate(d.train + d.val + d.test)
    assert np.array_equal(np.sort(rows), np.arange(1800))  # disjoint, complete
    for tr, te in zip(d.train, d.test, strict=True):
        assert np.mean(d.target[tr] < 0) == pytest.approx(0.25)
        assert np.mean(d.target[te] < 0) == pytest.approx(0.5)
        # Positives (+1) have the mean mu_1 = shift on the informative features.
        pos = d.X[tr][d.target[tr] > 0]
        assert pos[:, :2].mean() == pytest.approx(1.5, abs=0.25)
    assert np.count_nonzero(d.coef) == 3  # tridiagonal precision: one more
    assert d.bayes_test_accuracy.shape == d.train_rule_accuracy.shape == (2,)


def test_train_column_shapes_and_the_l1_penalty_gives_exact_zeros():
    d = draw(TINY, [(0.2, 5), (0.2, 6)])
    with one_thread():
        scores, grid, seconds = train_column(d, TINY, COLUMNS["stk_srelu"])
    configs = len(TINY.k) * len(TINY.C)
    assert scores["val"].shape == scores["test"].shape == (2, configs)
    assert scores["w"].shape == (2, configs, 6) and seconds > 0
    assert set(grid["l1_ratio"]) == {1.0} and set(grid["delta"]) == {0.01}
    strong = grid["C"] == 0.5
    zeros = (scores["w"] == 0).sum(-1)
    assert (zeros[:, strong] > 0).all()  # a strong l1 penalty: exact zeros
    with one_thread():
        dense, _, _ = train_column(d, replace(TINY, penalty="l2"), COLUMNS["stk_srelu"])
    assert (dense["w"] != 0).all()


@pytest.fixture(scope="module")
def runs():
    return run_gaussian(TINY, seed=1)


def test_the_chosen_configuration_has_the_best_mean_validation(runs):
    for _, rows in runs.groupby("column"):
        means = rows.groupby("config")["val_accuracy_percent"].mean()
        chosen = set(rows.loc[rows["chosen"], "config"])
        assert chosen == {means.idxmax()}
        assert rows["chosen"].sum() == TINY.runs


def test_para_f1_and_support_from_the_kept_weights(runs):
    w = runs[[f"w{j}" for j in range(6)]].to_numpy()
    true = np.array([1, 1, 1, 0, 0, 0], dtype=bool)  # 2 informative + 1
    found = w != 0
    tp = (found & true).sum(1)
    f1 = np.where(found.sum(1) > 0, 2 * tp / (true.sum() + found.sum(1)), 0.0)
    np.testing.assert_allclose(runs["para_f1"], f1)
    np.testing.assert_array_equal(runs["support"], found.sum(1))


def test_table2_summary_has_the_limit_rows(runs):
    summary = table2.summarize(runs, TINY).set_index("column")
    assert list(summary.index) == ["average", "stk_srelu", "bayes", "train_rule"]
    assert summary.loc["bayes", "support_mean"] == 3
    assert (
        summary.loc["bayes", "accuracy_mean"]
        > summary.loc["train_rule", "accuracy_mean"]
    )
    assert summary.loc["stk_srelu", "paper_accuracy"] == pytest.approx(76.104)
    chosen = runs[runs["chosen"] & (runs["column"] == "average")]
    assert summary.loc["average", "accuracy_mean"] == pytest.approx(
        chosen["accuracy_percent"].mean()
    )
    text = table2.render(summary.reset_index(), runs, TINY, command="c", seed=1,
                         seconds=2.0, plot_name="table2.png")  # fmt: skip
    assert "Bayes-optimal rule" in text and "STk (SReLU)" in text


def test_figure4_summary_joins_the_paper_points():
    settings = replace(TINY, negative_ratios=(0.5, 0.001), runs=1)
    runs = figure4.run(settings, seed=0)
    summary = figure4.summarize(runs, settings)
    assert len(summary) == 4
    paper = summary.set_index(["negative_ratio", "column"])["paper_accuracy"]
    assert paper[(0.5, "stk_srelu")] == 87.5
    assert np.isnan(paper[(0.001, "average")])  # no such point in the paper
    for q, rows in runs.groupby("negative_ratio"):
        data = make_imbalanced_gaussians(
            **settings.data_options(), negative_ratio=q, random_state=0
        )
        assert (
            rows["train_rule_accuracy_percent"] == 100 * data.train_rule_accuracy
        ).all()
        assert set(rows["seed"]) == set(run_seeds(0, "gaussian", 1))


def test_figure3_geometry_by_hand():
    coef = np.array([1.0, 1.0])
    runs = pd.DataFrame(
        {"w0": [2.0, -1.0, 1.0], "w1": [2.0, -1.0, -1.0], "intercept": [-2.0, 0.0, 3.0]}
    )
    geo = figure3._geometry(runs, coef)
    np.testing.assert_allclose(geo["angle_degrees"], [0.0, 180.0, 90.0], atol=1e-6)
    np.testing.assert_allclose(geo["offset"], [2 / np.sqrt(8), 0.0, -3 / np.sqrt(2)])


def test_figure3_theory_is_the_printed_example():
    t = figure3.theory(make_settings("figure3", "quick"))
    np.testing.assert_allclose(t["coef"], [1.111, 1.111], atol=1e-3)
    assert t["intercept"] == pytest.approx(-0.836, abs=1e-3)
