import numpy as np
import pandas as pd
import pytest

from sktopk.reproduce import (
    PRESETS,
    TABLES,
    compare,
    load_published,
    make_protocol,
    published_table,
    table_cells,
)
from sktopk.reproduce.report import format_table, markdown_table, outliers


def test_paper_grid_is_the_published_one():
    paper = make_protocol("paper")
    n_train = 200
    stk = paper.grid("stk", n_train)
    assert len(stk["lr"]) == 11 * 6 * 5 * 4
    assert min(stk["kappa"]) == pytest.approx(1 / n_train)
    assert sorted(set(stk["C"])) == [1, 10, 100, 1e3, 1e4, 1e5]
    assert sorted(set(stk["lr"])) == [0.001, 0.005, 0.01, 0.05, 0.1]
    assert sorted(set(stk["delta"])) == [1e-4, 1e-3, 1e-2, 0.1]
    assert len(paper.grid("matk", n_train)["lr"]) == 11 * 6 * 5
    average = paper.grid("average", n_train)
    assert len(average["lr"]) == 6 * 5 and set(average["kappa"]) == {1.0}
    assert paper.runs == 50 and paper.stopping == "step"
    assert (paper.eval_every, paper.patience, paper.tol) == (50, 1, 1e-6)


def test_quick_preset_uses_delta_001_and_one_delta():
    quick = PRESETS["quick"]
    assert quick.delta == (0.01,)
    assert set(quick.grid("stk", 100)["delta"]) == {0.01}


def test_identity_depends_on_settings_and_seed():
    quick = make_protocol("quick")
    assert quick.identity(0) == make_protocol("quick").identity(0)
    assert quick.identity(0) != quick.identity(1)
    assert quick.identity(0) != make_protocol("quick", runs=3).identity(0)


@pytest.mark.parametrize(
    "overrides",
    [{"runs": 0}, {"max_epochs": 0}, {"stopping": "minute"}, {"model": "cnn"}],
)
def test_invalid_settings_raise(overrides):
    with pytest.raises(ValueError):
        make_protocol("quick", **overrides)


def test_unknown_protocol_lists_the_presets():
    with pytest.raises(ValueError, match="quick, paper"):
        make_protocol("slow")


def test_tables_follow_the_published_sources():
    assert TABLES[3].losses == ("logistic",)
    assert TABLES[4].losses == ("hinge",)
    assert TABLES[6].losses == ("square", "absolute")
    assert TABLES[6].datasets == ("sinc", "housing", "abalone", "cpusmall")
    assert len(TABLES[3].datasets) == 7
    assert set(TABLES[4].datasets) == set(published_table(4)["dataset"])
    assert len(table_cells(3)) == 7 * 5
    assert len(table_cells(6)) == 4 * 2 * 4  # no maximum for regression
    assert {c.aggregate for c in table_cells(6)} == {"average", "atk", "matk", "stk"}


@pytest.mark.parametrize(
    ("table", "datasets", "match"),
    [(5, None, "unknown table"), (3, ["sinc"], "not in table 3"),
     (3, ["nope"], "not in table 3")],
)  # fmt: skip
def test_bad_cells_raise(table, datasets, match):
    with pytest.raises(ValueError, match=match):
        table_cells(table, datasets)


def test_published_rows_have_a_table_number():
    pub = load_published()
    assert set(pub["table"]) == {3, 4, 6}
    assert len(pub) == 94
    assert (pub["std"] > 0).all()


def _summary(rows):
    cols = ["table", "dataset", "loss", "aggregate", "metric", "runs", "mean", "std",
            "k", "C", "lr", "delta"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def test_compare_joins_the_published_numbers():
    summary = _summary(
        [
            [3, "wisconsin", "logistic", "stk", "error_rate_percent", 5,
             2.936 + 2 * 0.665, 0.5, 30, 10.0, 0.1, 0.01],
            [6, "sinc", "square", "atk", "rmse_target_scaled_0_1", 5, 0.1, 0.01,
             100, 10.0, 0.1, 0.01],
        ]
    )  # fmt: skip
    out = compare(summary)
    stk = out[out["aggregate"] == "stk"].iloc[0]
    assert stk["paper_mean"] == pytest.approx(2.936)
    assert stk["paper_std"] == pytest.approx(0.665)
    assert stk["diff_std"] == pytest.approx(2.0)
    atk = out[out["aggregate"] == "atk"].iloc[0]
    assert np.isnan(atk["paper_mean"])  # the paper has no ATk regression numbers
    text = format_table(out)
    assert text.loc[text["aggregate"] == "atk", "paper"].item() == "n/a"
    assert text.loc[text["aggregate"] == "stk", "diff / paper std"].item() == "+2.0"
    assert "| wisconsin | logistic | stk |" in markdown_table(text)
    assert outliers(out).empty  # exactly 2 stds is not beyond 2


def test_numbers_in_other_units_than_the_papers_are_not_compared():
    # sinc's RMSE on its targets as generated against the paper's on [0, 1]:
    # no difference in published stds, and no outlier.
    row = [6, "sinc", "square", "stk", "rmse_target_unscaled", 5, 0.21, 0.01,
           100, 10.0, 0.1, 0.01]  # fmt: skip
    out = compare(_summary([row]))
    assert out["paper_mean"].item() == pytest.approx(0.1446)  # shown as published
    assert np.isnan(out["diff_std"].item())
    assert format_table(out)["diff / paper std"].item() == "other units"
    assert outliers(out).empty
    scaled = compare(_summary([row[:4] + ["rmse_target_scaled_0_1"] + row[5:]]))
    assert scaled["diff_std"].item() == pytest.approx((0.21 - 0.1446) / 0.0070)


def test_a_column_constant_on_the_training_rows_is_centred_to_zero():
    from sktopk.reproduce.splits import _scale

    X = np.random.default_rng(0).normal(size=(50, 3))
    X[:40, 1] = 0.1  # its mean over 40 rows is not exactly 0.1
    out = _scale(X, np.arange(40), "standard")
    assert not out[:40, 1].any()
    np.testing.assert_allclose(out[40:, 1], X[40:, 1] - 0.1)
