"""Regression target scaling: the paper's reading (sinc as generated) or all."""

import numpy as np
import pandas as pd
import pytest

from sktopk.datasets import dataset_info, list_datasets, load_dataset
from sktopk.reproduce import experiment, make_protocol, reference
from sktopk.reproduce.cli import main
from sktopk.reproduce.protocol import Cell
from sktopk.reproduce.splits import (
    PAPER_SCALED_TARGETS,
    TARGET_UNITS,
    make_splits,
    prepare,
    run_seeds,
    scales_target,
)

TABLE6 = ["sinc", "housing", "abalone", "cpusmall"]


def _key(scaled: bool) -> str:
    """The metric key of regression runs (literal here, not sktopk's)."""
    return "rmse_target_scaled_0_1" if scaled else "rmse_target_unscaled"


def _raw_target(dataset: str) -> np.ndarray:
    _, y = load_dataset(dataset, return_X_y=True)
    return np.asarray(y, dtype=np.float64)


def _minmax(y: np.ndarray) -> np.ndarray:
    return (y - y.min()) / (y.max() - y.min())


def _expected_target(dataset: str, target_scaling: str) -> np.ndarray:
    """The target a run should see, computed here without sktopk's code."""
    y = _raw_target(dataset)
    scaled = target_scaling == "all" or dataset != "sinc"
    return _minmax(y) if scaled else y


def test_paper_reading_is_the_default():
    assert make_protocol("quick").target_scaling == "paper"
    assert make_protocol("paper").target_scaling == "paper"
    assert PAPER_SCALED_TARGETS == {"housing", "abalone", "cpusmall"}


@pytest.mark.parametrize("target_scaling", ["paper", "all"])
@pytest.mark.parametrize("dataset", TABLE6)
def test_targets_of_each_dataset(dataset, target_scaling):
    prep = prepare(dataset, runs=2, seed=0, scaling="none",
                   target_scaling=target_scaling)  # fmt: skip
    expected = np.tile(_expected_target(dataset, target_scaling), 2)
    np.testing.assert_allclose(prep.target, expected, rtol=1e-6, atol=1e-6)
    scaled = target_scaling == "all" or dataset != "sinc"
    assert prep.scaled_target is scaled
    assert prep.metric == _key(scaled)


def test_default_leaves_sinc_unscaled_and_scales_the_others():
    sinc = prepare("sinc", runs=1, seed=0, scaling="none")
    assert sinc.target.min() < -0.5 and sinc.target.max() > 1.2  # as generated
    for dataset in ["housing", "abalone", "cpusmall"]:
        prep = prepare(dataset, runs=1, seed=0, scaling="none")
        assert (prep.target.min(), prep.target.max()) == (0.0, 1.0)
    every = prepare("sinc", runs=1, seed=0, scaling="none", target_scaling="all")
    assert (every.target.min(), every.target.max()) == (0.0, 1.0)


def test_classification_targets_do_not_depend_on_the_setting():
    a = prepare("wisconsin", runs=1, seed=0, scaling="none", target_scaling="paper")
    b = prepare("wisconsin", runs=1, seed=0, scaling="none", target_scaling="all")
    np.testing.assert_array_equal(a.target, b.target)
    assert a.metric == b.metric == "error_rate_percent"


def test_unscaled_datasets_are_the_generated_ones():
    # The reports call unscaled targets "as generated": only right for sinc.
    for dataset in list_datasets("regression"):
        unscaled = not scales_target(dataset, "paper")
        assert unscaled == dataset_info(dataset).generated


@pytest.mark.parametrize("bad", ["none", "ALL", "", None])
def test_bad_value_is_a_value_error_naming_the_choices(bad):
    with pytest.raises(ValueError, match=r"target_scaling must be one of.*'paper'"):
        make_protocol("quick", target_scaling=bad or "x")
    with pytest.raises(ValueError, match="'all'"):
        prepare("sinc", runs=1, seed=0, scaling="none", target_scaling=str(bad))


def test_bad_value_on_the_command_line_is_a_usage_error(tmp_path, capsys):
    argv = ["reproduce", "--table", "6", "--datasets", "sinc", "--quiet",
            "--out", str(tmp_path / "o"), "--target-scaling", "some"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--target-scaling" in err and "'paper', 'all'" in err
    assert not (tmp_path / "o").exists()


def test_identity_differs_between_the_settings():
    paper = make_protocol("quick")
    every = make_protocol("quick", target_scaling="all")
    assert paper.identity(0) != every.identity(0)
    same = make_protocol("quick", target_scaling="paper")
    assert paper.identity(0) == same.identity(0)
    assert "sinc as generated" in paper.describe()["target scaling (regression)"]
    assert "every" in every.describe()["target scaling (regression)"]


def test_all_keeps_the_identity_of_results_written_before_the_setting():
    # docs/results/table3, table4 and table6 (quick, seed 0) and table3-step
    # were written when every target was scaled; they must still resume.
    assert make_protocol("quick", target_scaling="all").identity(0) == "78ec6997ffdf"
    step = make_protocol("quick", stopping="step", patience=1, target_scaling="all")
    assert step.identity(0) == "a529b0659df8"


def _constant_by_hand(dataset: str, target_scaling: str, runs: int, seed: int):
    y = _expected_target(dataset, target_scaling)
    out = {}
    for run, s in enumerate(run_seeds(seed, dataset, runs)):
        train, _, test = make_splits(y, "regression", s)
        for loss, c in (("square", y[train].mean()), ("absolute", np.median(y[train]))):
            out[run, loss] = np.sqrt(np.mean((y[test] - c) ** 2))
    return out


@pytest.mark.parametrize("target_scaling", ["paper", "all"])
def test_constant_predictor_in_the_units_of_the_models(target_scaling, monkeypatch):
    protocol = make_protocol("quick", runs=2, max_epochs=2, C=(1e3,), lr=(0.1,),
                             target_scaling=target_scaling)  # fmt: skip
    const = reference.constant_predictor_runs(
        ["sinc"], ["square", "absolute"], protocol, 5
    )
    expected = _constant_by_hand("sinc", target_scaling, 2, 5)
    for r in const.itertuples(index=False):
        assert r.value == pytest.approx(expected[r.run, r.loss], rel=1e-5)
    # The models' rows carry the same metric key, and train on the same targets.
    seen = []
    real = experiment.prepare

    def spy(*args, **kwargs):
        prep = real(*args, **kwargs)
        seen.append(prep.target.copy())
        return prep

    monkeypatch.setattr(experiment, "prepare", spy)
    rows = experiment.run_cell(Cell(6, "sinc", "square", "average"), protocol, 5)
    key = _key(target_scaling == "all")
    assert set(rows["metric"]) == set(const["metric"]) == {key}
    np.testing.assert_allclose(
        seen[0], np.tile(_expected_target("sinc", target_scaling), 2), atol=1e-6
    )


def _comparison(target_scaling: str) -> pd.DataFrame:
    metric = _key(target_scaling == "all")
    rows = [
        (6, "sinc", "square", "average", metric, 0.2, 0.01, 0.1603, 0.0065),
        (6, "housing", "square", "average", "rmse_target_scaled_0_1", 0.1, 0.01,
         0.5, 0.05),
    ]  # fmt: skip
    cols = ["table", "dataset", "loss", "aggregate", "metric", "mean", "std",
            "paper_mean", "paper_std"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=cols)
    frame["diff_std"] = (frame["mean"] - frame["paper_mean"]) / frame["paper_std"]
    return frame.assign(k=1, C=10.0, lr=0.1, delta=0.01)


@pytest.mark.parametrize("target_scaling", ["paper", "all"])
def test_report_says_the_units_of_each_dataset(target_scaling):
    from sktopk.reproduce.report import render_report

    protocol = make_protocol("quick", runs=2, target_scaling=target_scaling)
    text = render_report(_comparison(target_scaling), protocol, title="t",
                         command="c", seed=0, timing={}, plots=[])  # fmt: skip
    sinc_units = TARGET_UNITS[_key(target_scaling == "all")]
    assert "**sinc** (square): constant (mean)" in text
    sinc_line = next(line for line in text.splitlines() if "**sinc**" in line)
    assert sinc_line.endswith(f"(RMSE on {sinc_units}).")
    housing = next(line for line in text.splitlines() if "**housing**" in line)
    assert housing.endswith("(RMSE on targets in [0, 1]).")
    if target_scaling == "paper":
        assert "targets as generated, not scaled (sinc)" in text
        assert "[0, 1] over the dataset (housing)" in text
        assert "Targets not scaled (sinc)" in text
    else:
        assert "[0, 1] over the dataset (sinc, housing)" in text
        assert "not scaled" not in text
    assert f"**target scaling (regression)**: {target_scaling}:" in text


@pytest.mark.parametrize("target_scaling", ["paper", "all"])
def test_plot_axis_names_the_units(target_scaling):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from sktopk.reproduce.plots import _figure

    rows = _comparison(target_scaling).query("dataset == 'sinc'")
    label = _figure(Figure, "sinc", rows).axes[0].get_ylabel()
    scaled = target_scaling == "all"
    assert label == f"test RMSE (targets {'in [0, 1]' if scaled else 'as generated'})"


@pytest.mark.parametrize("target_scaling", [None, "all"])
def test_command_line_reaches_the_runs_and_the_report(target_scaling, tmp_path):
    out = tmp_path / "o"
    argv = ["reproduce", "--table", "6", "--datasets", "sinc", "--runs", "2",
            "--max-epochs", "1", "--jobs", "1", "--no-plots", "--quiet",
            "--out", str(out)]  # fmt: skip
    if target_scaling:
        argv += ["--target-scaling", target_scaling]
    assert main(argv) == 0
    runs = pd.read_csv(out / "runs.csv", dtype={"identity": str})
    setting = target_scaling or "paper"
    protocol = make_protocol("quick", runs=2, max_epochs=1, target_scaling=setting)
    assert set(runs["identity"]) == {protocol.identity(0)}
    scaled = setting == "all"
    key = _key(scaled)
    assert set(runs["metric"]) == {key}
    report = (out / "table6.md").read_text()
    assert f"**target scaling (regression)**: {setting}:" in report
    assert f"(RMSE on {TARGET_UNITS[key]})." in report


def test_results_table_has_a_constant_row_after_each_dataset_and_loss():
    from sktopk.reproduce.reference import constant_predictor_runs
    from sktopk.reproduce.report import render_report

    protocol = make_protocol("quick", runs=2)
    comparison = _comparison("paper")
    text = render_report(comparison, protocol, title="t", command="c", seed=0,
                         timing={}, plots=[])  # fmt: skip
    rows = [line for line in text.splitlines() if line.startswith("| ")][1:]
    names = [(r.split(" | ")[0][2:], r.split(" | ")[2]) for r in rows]
    expected_names = [
        ("sinc", "average"),
        ("sinc", "constant (mean)"),
        ("housing", "average"),
        ("housing", "constant (mean)"),
    ]
    assert names == expected_names
    const = constant_predictor_runs(["housing"], ["square"], protocol, 0)
    expected = f"{const['value'].mean():.4f} ± {np.std(const['value']):.4f}"
    housing = rows[3].split(" | ")
    assert housing[3] == expected
    assert housing[4:] == ["n/a", "n/a", "no features |"]


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_notes_blame_smaller_grids_only_for_the_quick_protocol(name):
    from sktopk.reproduce.report import render_report

    protocol = make_protocol(name, runs=2)
    text = render_report(_comparison("paper"), protocol, title="t", command="c",
                         seed=0, timing={}, plots=[])  # fmt: skip
    assert "More than 2 published stds" in text  # housing: (0.1 - 0.5) / 0.05
    assert ("smaller grids" in text) == (name == "quick")
