"""Fault injection on ``sktopk reproduce``: the results file survives a kill,
Ctrl-C, a cut last line, two runs at once, links and read-only folders, and
every outcome is compared with an uninterrupted run."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from sktopk.reproduce import runner  # noqa: F401 - imported before any user switch
from sktopk.reproduce.cli import main
from sktopk.reproduce.store import MANIFEST_NAME, OutputFolder

REPO = Path(__file__).resolve().parents[2]
KEY = ["dataset", "loss", "aggregate", "run"]
TINY = ["--table", "3", "--datasets", "appendicitis", "--runs", "2",
        "--max-epochs", "2", "--jobs", "1", "--quiet"]  # fmt: skip
# Ten cells of about half a second: long enough to be caught in the middle.
LONGER = ["--table", "3", "--datasets", "wisconsin,australian", "--runs", "2",
          "--max-epochs", "10", "--quiet", "--no-plots"]  # fmt: skip
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX signals and permissions")


def _run(args, out, *extra) -> int:
    return main(["reproduce", *args, "--out", str(out), *extra])


def _rows(out) -> pd.DataFrame:
    frame = pd.read_csv(Path(out) / "runs.csv", dtype={"identity": str})
    return frame.drop(columns="seconds").sort_values(KEY).reset_index(drop=True)


def _assert_same_runs(out, reference) -> None:
    """The same rows as the uninterrupted run, each once, as whole lines."""
    lines = (Path(out) / "runs.csv").read_bytes().split(b"\n")
    expected = (Path(reference) / "runs.csv").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == len(expected)
    pd.testing.assert_frame_equal(_rows(out), _rows(reference), check_exact=True)
    assert not _rows(out).duplicated(KEY).any()
    table = "table3_comparison.csv"  # the same table, to the last digit
    assert (Path(out) / table).read_bytes() == (Path(reference) / table).read_bytes()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    assert _run(TINY, out) == 0
    return out


@pytest.fixture(scope="module")
def longer(tmp_path_factory):
    out = tmp_path_factory.mktemp("longer")
    assert _run(LONGER, out, "--jobs", "1") == 0
    return out


def _copy_runs(reference, out, cut: int = 0) -> bytes:
    """Copy the reference runs.csv into ``out``, less its last ``cut`` bytes."""
    data = (Path(reference) / "runs.csv").read_bytes()
    data = data[: len(data) - cut]
    Path(out).mkdir(exist_ok=True)
    (Path(out) / "runs.csv").write_bytes(data)
    return data


@pytest.mark.parametrize("cut", [1, 3], ids=["no-final-newline", "cut-in-a-number"])
def test_an_incomplete_last_line_is_dropped_and_run_again(tiny, tmp_path, capsys, cut):
    _copy_runs(tiny, tmp_path, cut)
    assert _run(TINY, tmp_path) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "incomplete" in err and "Traceback" not in err
    _assert_same_runs(tmp_path, tiny)
    assert "1 / 4" in (tmp_path / "table3.md").read_text()  # run now / resumed


def test_a_damaged_line_in_the_middle_is_refused(tiny, tmp_path, capsys):
    lines = (tiny / "runs.csv").read_bytes().splitlines(keepends=True)
    lines[3] = lines[3][:30] + b"\n"
    (tmp_path / "runs.csv").write_bytes(b"".join(lines))
    assert _run(TINY, tmp_path) == 2
    err = capsys.readouterr().err
    assert "damaged line 4" in err and "left as it is" in err
    assert (tmp_path / "runs.csv").read_bytes() == b"".join(lines)
    assert not (tmp_path / "table3.md").exists()


def test_a_second_run_on_the_same_folder_exits_at_once(tiny, tmp_path, capsys):
    before = _copy_runs(tiny, tmp_path, cut=0)[:-200]
    (tmp_path / "runs.csv").write_bytes(before)
    with OutputFolder(tmp_path):  # a run in progress
        start = time.perf_counter()
        assert _run(TINY, tmp_path) == 2
        assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert f"another sktopk reproduce (process {os.getpid()})" in err
    assert (tmp_path / "runs.csv").read_bytes() == before
    assert not (tmp_path / "table3.md").exists()


@POSIX
def test_report_files_are_never_written_through_a_link(tmp_path, capsys):
    outside = tmp_path / "outside.md"
    outside.write_text("the user's notes")
    out = tmp_path / "out"
    out.mkdir()
    (out / "table3.md").symlink_to(outside)
    assert _run(TINY, out) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert outside.read_text() == "the user's notes"
    assert not (out / "runs.csv").exists()  # refused before any work


@POSIX
def test_an_output_folder_that_is_a_link_is_used(tiny, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "link").symlink_to(target, target_is_directory=True)
    assert _run(TINY, tmp_path / "link") == 0
    _assert_same_runs(target, tiny)
    assert (target / "table3.md").exists()


def test_files_the_tool_did_not_write_are_never_replaced(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(tiny, out)
    assert _run(TINY, out) == 0  # its own files: replaced
    (out / "table3.md").write_text("edited by the user")
    assert _run(TINY, out) == 2
    assert "table3.md was not written by sktopk" in capsys.readouterr().err
    assert (out / "table3.md").read_text() == "edited by the user"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "table3_comparison.csv").write_text("the user's own table")
    assert _run(TINY, fresh) == 2
    assert (fresh / "table3_comparison.csv").read_text() == "the user's own table"
    assert not (fresh / "runs.csv").exists() and not (fresh / MANIFEST_NAME).exists()


@contextlib.contextmanager
def _ordinary_user():
    """Root ignores file permissions: act as an ordinary user meanwhile."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.fixture
def shared_tmp():
    """A folder every user can enter (pytest's are private to their owner)."""
    path = Path(tempfile.mkdtemp(prefix="sktopk-faults-"))
    path.chmod(0o755)
    yield path
    for p in (path, *path.rglob("*")):
        if not p.is_symlink():
            p.chmod(0o755 if p.is_dir() else 0o644)
    shutil.rmtree(path)


@POSIX
@pytest.mark.parametrize("case", ["folder", "folder-with-runs", "runs.csv"])
def test_read_only_output_is_refused_before_any_work(tiny, shared_tmp, capsys, case):
    out = shared_tmp / "out"
    before = _copy_runs(tiny, out, cut=0)[:-200] if case != "folder" else None
    if before is not None:
        (out / "runs.csv").write_bytes(before)
        (out / "runs.csv").chmod(0o444)
    out.mkdir(exist_ok=True)
    out.chmod(0o777 if case == "runs.csv" else 0o555)
    with _ordinary_user():
        start = time.perf_counter()
        assert _run(TINY, out) == 2
        assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert "cannot write" in err and "nothing was run" in err
    assert "Traceback" not in err
    if before is not None:
        assert (out / "runs.csv").read_bytes() == before
    assert not (out / "table3.md").exists()


def _start(out: Path) -> subprocess.Popen:
    """``sktopk reproduce`` with 2 workers, in a new session (its own group)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "sktopk", "reproduce", *LONGER, "--jobs", "2"]
    log = open(out.parent / f"{out.name}.log", "wb")
    with log:
        return subprocess.Popen(
            [*argv, "--out", str(out)], stdout=log, stderr=subprocess.STDOUT,
            env=env, cwd=out.parent, start_new_session=True,
        )  # fmt: skip


def _wait_for_a_cell(proc: subprocess.Popen, out: Path) -> None:
    """Until a finished cell is on disk (runs.csv: header + 2 runs)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(FileNotFoundError):
            if (out / "runs.csv").read_bytes().count(b"\n") >= 3:
                break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"


def _still_running(processes, seconds: float) -> list:
    import psutil

    deadline = time.monotonic() + seconds
    while True:
        alive = []
        for p in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


@contextlib.contextmanager
def _killed_at_the_end(proc: subprocess.Popen):
    try:
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@POSIX
def test_kill_9_mid_run_then_resume(longer, tmp_path, capsys):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    proc = _start(out)
    with _killed_at_the_end(proc):
        _wait_for_a_cell(proc, out)
        assert _run(LONGER, out, "--jobs", "1") == 2  # the folder is in use
        assert "another sktopk reproduce" in capsys.readouterr().err
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) >= 2
        proc.kill()  # SIGKILL to the parent alone
        proc.wait()
        assert _still_running(workers, 10) == []
    assert _run(LONGER, out, "--jobs", "1") == 0
    _assert_same_runs(out, longer)


@POSIX
@pytest.mark.slow
def test_ctrl_c_stops_the_workers_and_exits_cleanly(longer, tmp_path):
    psutil = pytest.importorskip("psutil")
    out = tmp_path / "out"
    proc = _start(out)
    with _killed_at_the_end(proc):
        _wait_for_a_cell(proc, out)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal: to all
        assert proc.wait(timeout=60) == 130
        assert _still_running(workers, 10) == []
    log = (tmp_path / "out.log").read_text()
    assert "interrupted; finished cells (and the chunks of unfinished ones)" in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log
    assert _run(LONGER, out, "--jobs", "1") == 0
    _assert_same_runs(out, longer)
