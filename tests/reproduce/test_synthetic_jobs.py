"""The synthetic jobs end to end: files, reports and the command line."""

from dataclasses import replace

import pandas as pd
import pytest

from sktopk.reproduce.cli import main
from sktopk.reproduce.store import OutputFolder, StoreError
from sktopk.reproduce.synthetic import make_settings, run_job
from sktopk.reproduce.synthetic import settings as settings_module

SMALL = {
    "table1": dict(runs=2, n=300, bubble_n=60, bubble_runs=1),
    "table2": dict(runs=1, n_train=200, n_val=100, n_test=100, n_features=6,
                   n_informative=2, k=(0.5,), C=(1e3,), lr=(0.05,), batch_size=64,
                   max_epochs=3),
    "figure3": dict(runs=1, n_train=100, n_val=50, n_test=100, k=(0.5,),
                    max_epochs=3),
    "figure4": dict(runs=1, n_train=300, n_val=100, n_test=100, n_features=6,
                    n_informative=2, k=(0.5,), C=(1e3,), lr=(0.05,), batch_size=64,
                    max_epochs=3, negative_ratios=(0.5, 0.05)),
}  # fmt: skip


def _small(job):
    return replace(make_settings(job, "quick"), **SMALL[job])


@pytest.mark.parametrize("job", list(SMALL))
def test_each_job_writes_its_files(job, tmp_path):
    result = run_job(job, _small(job), out=tmp_path, progress=False, command="cmd")
    names = {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")}
    assert names == {f"{job}_runs.csv", f"{job}_summary.csv", f"{job}.md", f"{job}.png"}
    assert (tmp_path / f"{job}.png").read_bytes()[:4] == b"\x89PNG"
    runs = pd.read_csv(tmp_path / f"{job}_runs.csv")
    assert len(runs) == len(result.runs) > 0
    text = result.report.read_text(encoding="utf-8")
    assert "`cmd`" in text and "wall time of this invocation" in text
    assert f"![{job}.png]({job}.png)" in text
    # The same job again in the same folder replaces its own files.
    run_job(job, _small(job), out=tmp_path, progress=False, plots=False)


def test_a_foreign_file_is_never_replaced(tmp_path):
    (tmp_path / "table1.md").write_text("mine")
    with pytest.raises(StoreError, match="not written by sktopk"):
        run_job("table1", _small("table1"), out=tmp_path, progress=False)
    assert (tmp_path / "table1.md").read_text() == "mine"
    assert not (tmp_path / "table1_runs.csv").exists()  # checked before any work


def test_table2_report_names_the_limit(tmp_path):
    result = run_job("table2", _small("table2"), out=tmp_path, progress=False)
    text = result.report.read_text(encoding="utf-8")
    assert "*Bayes-optimal rule (w*, b* of the test prior)*" in text
    bayes = next(line for line in text.splitlines() if "*Bayes-optimal" in line)
    assert "| 3.0 |" in bayes  # w* of 2 informative features has 3 non-zeros


def test_cli_runs_a_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(settings_module.PRESETS["figure3"], "quick", _small("figure3"))
    out = tmp_path / "f3"
    code = main(["reproduce", "--figure", "3", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "theory (w*, b*)" in printed and "report:" in printed
    report = (out / "figure3.md").read_text(encoding="utf-8")
    assert "sktopk reproduce --figure 3 --out" in report


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--figure", "5"], "unknown figure"),
        (["--table", "2", "--figure", "3"], "not both"),
        (["--table", "1", "--jobs", "2"], "--jobs: not used by Table 1"),
        (["--figure", "4", "--datasets", "sinc"], "--datasets: not used"),
        (["--table", "2", "--protocol", "slow"], "unknown protocol"),
        (["--table", "1", "--runs", "0"], "--runs must be at least 1"),
        (["--table", "1", "--target-scaling", "all"], "--target-scaling: not used"),
        ([], "give --table N or --figure N"),
    ],
)
def test_cli_usage_errors(argv, message, tmp_path, capsys):
    code = main(["reproduce", *argv, "--out", str(tmp_path / "x")])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing created before the check


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("change", [{"runs": 1}, {"seed": 3}])
def test_a_rerun_with_other_settings_is_refused_before_any_work(change, tmp_path):
    job = "table1"
    run_job(job, _small(job), out=tmp_path, progress=False, command="first")
    before = _files(tmp_path)
    settings = replace(_small(job), runs=change.get("runs", 2))
    with pytest.raises(StoreError, match="other settings") as info:
        run_job(job, settings, seed=change.get("seed", 0), out=tmp_path,
                progress=False, plots=False)  # fmt: skip
    assert "made by `first` (table1.md)" in str(info.value)
    assert _files(tmp_path) == before


def test_a_job_of_another_seed_is_refused_in_a_folder_of_one_seed(tmp_path):
    with OutputFolder(tmp_path) as folder:  # as a table's run at seed 0 leaves
        folder.write("table3.md", b"# T\n\n## Settings\n\n- **seed**: 0\n")
    with pytest.raises(StoreError, match="seed 0 .*this run's seed is 1"):
        run_job("table1", _small("table1"), seed=1, out=tmp_path, progress=False)
    assert not (tmp_path / "table1_runs.csv").exists()
    run_job("table1", _small("table1"), seed=0, out=tmp_path, progress=False)


def test_a_rerun_without_plot_removes_its_own_stale_plot(tmp_path):
    job = "figure3"
    run_job(job, _small(job), out=tmp_path, progress=False)
    assert (tmp_path / f"{job}.png").exists()
    run_job(job, _small(job), out=tmp_path, progress=False, plots=False)
    assert not (tmp_path / f"{job}.png").exists()
    (tmp_path / f"{job}.png").write_bytes(b"the user's")
    run_job(job, _small(job), out=tmp_path, progress=False, plots=False)
    assert (tmp_path / f"{job}.png").read_bytes() == b"the user's"
