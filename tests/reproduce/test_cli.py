import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sktopk.reproduce.cli import main
from sktopk.reproduce.plots import have_matplotlib

# Without the plot extra (matplotlib) a run skips its plots and says so.
PLOTS = have_matplotlib()
NO_PLOTS = "skipped: matplotlib is not installed"

TINY = ["--table", "3", "--datasets", "appendicitis", "--runs", "2",
        "--max-epochs", "2", "--jobs", "1", "--quiet"]  # fmt: skip
REPO = Path(__file__).resolve().parents[2]


def _run(out, *extra):
    return main(["reproduce", *TINY, "--out", str(out), *extra])


def _runs(out) -> pd.DataFrame:
    frame = pd.read_csv(Path(out) / "runs.csv", dtype={"identity": str})
    key = ["dataset", "loss", "aggregate", "run"]
    return frame.drop(columns="seconds").sort_values(key).reset_index(drop=True)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    out = tmp_path_factory.mktemp("first")
    assert _run(out) == 0
    return out


def test_end_to_end_writes_csv_report_and_plots(first, capsys):
    names = {p.name for p in first.iterdir()}
    assert {"runs.csv", "table3.md", "table3_comparison.csv"} <= names
    assert len(_runs(first)) == 5 * 2
    report = (first / "table3.md").read_text()
    if PLOTS:
        assert "table3_appendicitis.png" in names
    else:
        assert not list(first.glob("*.png")) and NO_PLOTS in report
    for text in ("sktopk reproduce --table 3", "early stopping", "| appendicitis |",
                 "## Notes", "protocol identity"):  # fmt: skip
        assert text in report


def test_printed_table_has_ours_and_the_paper(tmp_path, capsys):
    assert _run(tmp_path, "--no-plots") == 0
    printed = capsys.readouterr().out
    assert "ours" in printed and "paper" in printed and "13.78 ± 6.60" in printed
    assert not list(tmp_path.glob("*.png"))


def test_resume_skips_finished_cells_and_gives_the_same_table(first, tmp_path):
    out = tmp_path / "resumed"
    out.mkdir()
    csv = (first / "runs.csv").read_text().splitlines(keepends=True)
    (out / "runs.csv").write_text("".join(csv[:5]))  # header + 2 cells of 5
    assert _run(out) == 0
    assert "3 / 2" in (out / "table3.md").read_text()  # run now / resumed
    assert _runs(out).equals(_runs(first))
    before = (out / "runs.csv").read_bytes()
    wall = _time_section(out)[0]
    assert _run(out) == 0
    assert (out / "runs.csv").read_bytes() == before
    # Every cell resumed: the report is made again and keeps the times of the
    # run that made the cells, saying so.
    section = _time_section(out)
    assert section[0] == wall and "3 / 2" in section[1]
    assert section[-1].startswith("- **report made again**: from runs.csv in ")
    assert _run(out) == 0  # again: still the run's times, said once
    assert _time_section(out) == section[:-1] + [_time_section(out)[-1]]
    a = pd.read_csv(first / "table3_comparison.csv")
    b = pd.read_csv(out / "table3_comparison.csv")
    pd.testing.assert_frame_equal(a, b)
    # With a second dataset, 5 cells run now; made again, the report keeps
    # those times.
    assert _run(out, "--datasets", "appendicitis,wisconsin") == 0
    assert _run(out, "--datasets", "appendicitis,wisconsin") == 0
    assert "5 / 5" in _time_section(out)[1]
    both = (out / "table3_comparison.csv").read_bytes()
    # A subset rerun still reports every cell of runs.csv, with their times.
    assert _run(out, "--datasets", "wisconsin") == 0
    report = (out / "table3.md").read_text()
    assert "| appendicitis |" in report and "| wisconsin |" in report
    assert "5 / 5" in _time_section(out)[1] and "report made again" in report
    assert (out / "table3_comparison.csv").read_bytes() == both


def _time_section(out) -> list[str]:
    text = (Path(out) / "table3.md").read_text().split("## Time\n", 1)[1]
    return [line for line in text.split("\n## ", 1)[0].splitlines() if line]


def test_same_seed_same_runs_across_processes(first, tmp_path):
    assert _run(tmp_path, "--jobs", "2") == 0
    assert _runs(tmp_path).equals(_runs(first))


def test_other_seed_other_runs(first, tmp_path):
    assert _run(tmp_path, "--seed", "1") == 0
    assert not _runs(tmp_path)["value"].equals(_runs(first)["value"])


def _bad_cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "runs.csv").write_text("name,age\nann,3\n")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "runs.csv").write_bytes(b"\x00\xff\xfe garbage")
    base = ["reproduce", "--table", "3", "--quiet", "--out", str(tmp_path / "o")]
    dask = TINY_BASE + ["--out", str(tmp_path / "d"), "--backend", "dask"]
    dask.append("--scheduler")
    return {
        "table": (["reproduce", "--table", "9"], "unknown table"),
        "table-word": (["reproduce", "--table", "three"], "unknown table"),
        "table-5": (["reproduce", "--table", "5"], "choose one of: 1, 2, 3, 4, 6"),
        "table-sign": (["reproduce", "--table", "+3"], "unknown table '+3'"),
        "memory-inf": (base + ["--max-memory", "inf"], "--max-memory"),
        "memory-negative": (base + ["--max-memory=-1GB"], "positive number"),
        "memory-unit": (base + ["--max-memory", "1XB"], "KiB, MiB"),
        "dataset": (base + ["--datasets", "nope"], "not in table 3"),
        "dataset-other-table": (base + ["--datasets", "sinc"], "not in table 3"),
        "protocol": (base + ["--protocol", "slow"], "unknown protocol"),
        "runs": (base + ["--runs", "0"], "--runs must be at least 1; got 0"),
        "max-epochs": (base + ["--max-epochs", "0"], "--max-epochs must be at least"),
        "patience": (base + ["--patience", "0"], "--patience must be at least 1"),
        "memory-tiny": (
            base + ["--max-memory", "1KB"],
            "1,000 bytes (0.00 MiB); raise --max-memory",
        ),
        "out-broken-link": (
            base[:-1] + [str(tmp_path / "dangling")],
            "is a broken symbolic link",
        ),
        "target-scaling": (base + ["--target-scaling", "x"], "--target-scaling"),
        "jobs": (base + ["--jobs", "0"], "--jobs"),
        "out-is-file": (TINY_BASE + ["--out", str(a_file)], "not a folder"),
        "foreign": (TINY_BASE + ["--out", str(foreign)], "columns"),
        "corrupt": (TINY_BASE + ["--out", str(corrupt)], "left as it is"),
        "dask-no-scheduler": (base + ["--backend", "dask"], "--scheduler"),
        "seed-negative": (base + ["--seed", "-1"], "--seed must be a non-negative"),
        "seed-word": (base + ["--seed", "one"], "invalid int value"),
        "out-empty": (["reproduce", "--table", "3", "--out", ""], "--out is empty"),
        "out-blank": (["reproduce", "--table", "3", "--out", " "], "--out is empty"),
        "scheduler-malformed": (dask + ["not a url"], "not a Dask scheduler"),
        "scheduler-scheme": (dask + ["foo://h:8786"], "unknown address scheme"),
        "command": (["frobnicate"], "invalid choice"),
        "no-table": (["reproduce"], "--table"),
    }, {
        "a_file": a_file,
        "foreign": foreign / "runs.csv",
        "corrupt": corrupt / "runs.csv",
    }


TINY_BASE = ["reproduce", *TINY]
CASES = ["table", "table-word", "table-5", "table-sign", "memory-inf",
         "memory-negative", "memory-unit", "dataset", "dataset-other-table",
         "protocol", "runs", "max-epochs", "patience", "memory-tiny",
         "out-broken-link",
         "target-scaling", "jobs", "out-is-file", "foreign", "corrupt",
         "dask-no-scheduler", "seed-negative", "seed-word", "out-empty", "out-blank",
         "scheduler-malformed", "scheduler-scheme", "command", "no-table"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_nonzero_with_a_message(case, tmp_path, capsys, monkeypatch):
    if case.startswith("scheduler"):
        pytest.importorskip("distributed", reason="the dask extra is not installed")
    monkeypatch.chdir(tmp_path)  # a default output folder would appear here
    cases, files = _bad_cases(tmp_path)
    before = {k: p.read_bytes() for k, p in files.items()}
    argv, message = cases[case]
    start = time.perf_counter()
    assert main(argv) != 0
    assert time.perf_counter() - start < 10  # refused before any work
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert {k: p.read_bytes() for k, p in files.items()} == before
    assert not (tmp_path / "sktopk-results").exists()


@pytest.mark.slow
def test_malformed_scheduler_exits_at_once(tmp_path):
    # A Client that failed on a malformed address used to stall the exit of
    # the interpreter for 30 s, then print "Exception ignored ... TimeoutError".
    pytest.importorskip("distributed")
    argv = TINY + ["--out", str(tmp_path), "--backend", "dask", "--scheduler", "x y"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "sktopk", "reproduce", *argv], capture_output=True,
        text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and "not a Dask scheduler" in proc.stderr
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr
    assert time.perf_counter() - start < 30


@pytest.mark.parametrize("module", ["sktopk", "sktopk.reproduce"])
def test_module_entry_points_report_without_traceback(module):
    args = (
        ["--table", "9"]
        if module.endswith("reproduce")
        else ["reproduce", "--table", "9"]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True,
        env=env, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "unknown table" in proc.stderr and "Traceback" not in proc.stderr


def test_without_matplotlib_plots_are_skipped_with_a_message(
    tmp_path, capsys, monkeypatch
):
    from sktopk.reproduce import runner

    monkeypatch.setattr(runner, "have_matplotlib", lambda: False)
    assert _run(tmp_path) == 0
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
    assert "skipped: matplotlib" in (tmp_path / "table3.md").read_text()


def test_max_memory_splits_the_grid_without_changing_results(tmp_path, capsys):
    from sktopk.reproduce import cli
    from sktopk.reproduce.experiment import members_at_once
    from sktopk.reproduce.protocol import make_protocol, table_cells

    args = ["reproduce", "--table", "3", "--datasets", "wisconsin", "--runs", "2",
            "--max-epochs", "2", "--no-plots", "--quiet"]  # fmt: skip
    assert cli.main(args + ["--out", str(tmp_path / "a")]) == 0
    assert cli.main(args + ["--out", str(tmp_path / "b"), "--max-memory", "200KB"]) == 0
    keys = ["aggregate", "run"]
    a, b = (
        pd.read_csv(tmp_path / d / "runs.csv").sort_values(keys).reset_index(drop=True)
        for d in "ab"
    )
    pd.testing.assert_frame_equal(  # the same runs, but for the timing column
        a.drop(columns="seconds"), b.drop(columns="seconds"), rtol=1e-4
    )
    small = make_protocol("quick", runs=2, max_memory=200_000)
    cell = table_cells(3, ["wisconsin"])[-1]
    assert members_at_once(cell, small) < members_at_once(
        cell, make_protocol("quick", runs=2)
    )
    assert cli.main(args + ["--out", str(tmp_path / "c"), "--max-memory", "10"]) != 0
    assert "raise --max-memory" in capsys.readouterr().err


@pytest.mark.parametrize("text", [" 3", "3 ", "03"])
def test_a_table_number_is_read_as_a_number(text, tmp_path):
    assert main(["reproduce", *_with_table(text), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "table3.md").exists()


def _with_table(text: str) -> list[str]:
    return [text if a == "3" and i == 1 else a for i, a in enumerate(TINY)]


def test_a_dataset_named_twice_runs_once(tmp_path):
    argv = [a if a != "appendicitis" else "appendicitis,appendicitis" for a in TINY]
    assert main(["reproduce", *argv, "--out", str(tmp_path), "--no-plots"]) == 0
    assert "5 / 0" in (tmp_path / "table3.md").read_text()  # cells run / resumed


@pytest.mark.parametrize(
    ("argv", "kept"),
    [(["--table", "3"], "are kept: run the same command"),
     (["--table", "1"], "nothing was kept"),
     (["--figure", "3"], "nothing was kept")],
)  # fmt: skip
def test_an_interrupted_run_says_what_it_kept(
    argv, kept, tmp_path, capsys, monkeypatch
):
    from sktopk.reproduce import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_reproduce", interrupted)
    assert main(["reproduce", *argv, "--out", str(tmp_path)]) == 130
    assert kept in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity")
def test_jobs_minus_one_counts_the_cores_this_process_may_use():
    # A child limited to one core: -1 means one worker, not os.cpu_count().
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from sktopk.reproduce.cli import _jobs; print(_jobs(-1))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "1"


def _settings(out) -> dict:
    text = (Path(out) / "table3.md").read_text().split("## Results", 1)[0]
    lines = [line[4:].split("**: ", 1) for line in text.splitlines()]
    return {k: v for k, v in (x for x in lines if len(x) == 2)}


def test_the_report_names_the_commands_that_made_its_runs(tmp_path):
    out = tmp_path / "o"
    assert _run(out) == 0
    first = _settings(out)["command"]
    assert "runs made by" not in _settings(out)  # this command alone
    assert _run(out, "--no-plots") == 0  # a report-only rerun
    assert _settings(out)["runs made by"] == first
    assert _run(out, "--datasets", "appendicitis,wisconsin") == 0
    made = _settings(out)["runs made by"]
    assert made.startswith(first + "; `") and "wisconsin" in made
    assert _run(out, "--datasets", "wisconsin") == 0  # nothing to run
    assert _settings(out)["runs made by"] == made


def test_a_rerun_without_plots_removes_its_own_stale_plots(tmp_path, capsys):
    assert _run(tmp_path) == 0
    plot = tmp_path / "table3_appendicitis.png"
    if PLOTS:
        assert plot.exists()
    else:
        assert f"plots {NO_PLOTS}" in capsys.readouterr().err
    assert _run(tmp_path, "--no-plots") == 0
    assert not plot.exists()
    assert "not requested (--no-plots)" in (tmp_path / "table3.md").read_text()


def test_help_states_the_defaults_it_applies(capsys):
    from sktopk.engine.grid import parse_memory
    from sktopk.reproduce.cli import build_parser
    from sktopk.reproduce.protocol import Protocol

    text = " ".join(build_parser()._subparsers._group_actions[0].choices[
        "reproduce"].format_help().split())  # fmt: skip
    assert "(default 1GiB;" in text and "1GB)" not in text
    assert parse_memory("1GiB") == Protocol.__dataclass_fields__["max_memory"].default
    assert "quick 10, paper 50 (Tables 3, 4, 6)" in text
    assert "epoch limit (default: the preset's: quick 40, paper 100)" in text
    assert "quick 5 (epoch), paper 1 (step)" in text
    assert "linear (default: the preset's: quick mlp, paper mlp)" in text
    assert "exits at once" not in text and "refused" in text


def test_target_scaling_changes_nothing_on_a_classification_table(tmp_path):
    assert _run(tmp_path, "--no-plots") == 0
    before = _runs(tmp_path)
    assert _run(tmp_path, "--no-plots", "--target-scaling", "all") == 0
    assert _runs(tmp_path).equals(before)  # no cell run again, one identity
    other = tmp_path / "other"
    assert _run(other, "--no-plots", "--target-scaling", "all") == 0
    assert _runs(other).equals(before)  # the same identity in a new folder


@pytest.mark.parametrize("target", ["paper", "all"])
def test_committed_classification_results_are_still_recognised(tmp_path, target):
    import shutil

    out = tmp_path / "table3"
    shutil.copytree(REPO / "docs" / "results" / "table3", out)
    before = (out / "runs.csv").read_bytes()
    argv = ["reproduce", "--table", "3", "--jobs", "1", "--quiet", "--no-plots",
            "--out", str(out), "--target-scaling", target]  # fmt: skip
    assert main(argv) == 0
    assert (out / "runs.csv").read_bytes() == before
    report = (out / "table3.md").read_text()
    assert "35 / 0" in report and "- **report made again**: from runs.csv" in report
    made = "- **runs made by**: `sktopk reproduce --table 3 --jobs 1 --out "
    assert made + "docs/results/table3 --quiet`\n" in report


def test_regression_tables_print_and_save_the_constant_rows(tmp_path, capsys):
    argv = ["reproduce", "--table", "6", "--datasets", "sinc", "--runs", "2",
            "--max-epochs", "1", "--jobs", "1", "--quiet", "--no-plots",
            "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    saved = pd.read_csv(tmp_path / "table6_comparison.csv")
    report = (tmp_path / "table6.md").read_text()
    for name in ("constant (mean)", "constant (median)"):
        assert name in printed and name in set(saved["aggregate"])
        assert f"| {name} |" in report


def test_help_groups_the_options_the_synthetic_jobs_refuse():
    from sktopk.reproduce.cli import build_parser
    from sktopk.reproduce.synthetic.command import _NOT_HERE

    rep = build_parser()._subparsers._group_actions[0].choices["reproduce"]
    (group,) = [g for g in rep._action_groups if g.title == "Tables 3, 4 and 6 only"]
    assert {a.dest for a in group._group_actions} == set(_NOT_HERE)
