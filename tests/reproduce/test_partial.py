"""Finished chunks of an unfinished cell survive an interruption."""

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

from sktopk.engine import grid as engine_grid
from sktopk.reproduce import experiment, make_protocol
from sktopk.reproduce.partial import PARTIAL_NAME, PartialStore
from sktopk.reproduce.protocol import Cell
from sktopk.reproduce.runner import reproduce
from sktopk.reproduce.store import StoreError, StoreWarning

# One member per run at a time: the cell trains in one chunk per configuration.
TIGHT = dataclasses.replace(
    make_protocol("quick", runs=2, max_epochs=2), max_memory=30_000
)
CELL = Cell(3, "appendicitis", "logistic", "average")
COLS = ["value", "val_score", "C", "lr", "epochs"]


@pytest.fixture
def trainings(monkeypatch) -> list:
    """Counts the chunks trained (``train_grid`` calls) in this process."""
    calls = []
    real = engine_grid.train_grid

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_grid, "train_grid", counted)
    return calls


def test_saved_chunks_are_not_trained_again(tmp_path, trainings):
    store = PartialStore(tmp_path, TIGHT.identity(0))
    first = experiment.run_cell(CELL, TIGHT, 0, store.cell(CELL))
    n_chunks = len(trainings)
    files = sorted(os.listdir(store.path))
    assert n_chunks > 1 and len(files) == n_chunks
    os.unlink(store.path / files[0])  # a chunk the interrupted run lacked
    again = store.cell(CELL)
    second = experiment.run_cell(CELL, TIGHT, 0, again)
    assert len(trainings) == n_chunks + 1
    assert again.resumed_seconds > 0
    assert second["seconds"].iloc[0] >= again.resumed_seconds
    pd.testing.assert_frame_equal(first[COLS], second[COLS], check_exact=True)


def test_a_resumed_cell_keeps_the_chunk_size_it_started_with(tmp_path, trainings):
    store = PartialStore(tmp_path, TIGHT.identity(0))
    first = experiment.run_cell(CELL, TIGHT, 0, store.cell(CELL))
    n_chunks = len(trainings)
    roomy = dataclasses.replace(TIGHT, max_memory=2**30)  # one chunk would do
    assert roomy.identity(0) == TIGHT.identity(0)
    second = experiment.run_cell(CELL, roomy, 0, store.cell(CELL))
    assert len(trainings) == n_chunks  # every chunk read back
    pd.testing.assert_frame_equal(first[COLS], second[COLS], check_exact=True)


def test_chunks_of_other_inputs_or_damaged_are_trained_again(tmp_path, trainings):
    store = PartialStore(tmp_path, TIGHT.identity(0))
    experiment.run_cell(CELL, TIGHT, 0, store.cell(CELL))
    n_chunks = len(trainings)
    name = sorted(os.listdir(store.path))[0]
    size, lo, hi = (int(x.lstrip("s")) for x in name[:-4].split("-")[-3:])
    same = store.cell(CELL)
    same.size, same.digest = size, store.cell(CELL).digest
    other = store.cell(CELL)
    other.size, other.digest = size, "another grid, data or version"
    assert other.load(lo, hi) is None
    same.digest = _digest_of(store.path / name)
    assert same.load(lo, hi) is not None  # the control: same inputs load
    (store.path / name).write_bytes(b"not an npz file")
    with pytest.warns(StoreWarning, match="trained again"):
        experiment.run_cell(CELL, TIGHT, 0, store.cell(CELL))
    assert len(trainings) == n_chunks + 1


def _digest_of(path) -> str:
    with np.load(path) as saved:
        return str(saved["digest"])


def test_chunk_size_is_that_of_most_saved_chunks(tmp_path):
    cell = PartialStore(tmp_path, "a" * 12).cell(CELL)
    assert cell.chunk_size() is None
    for size, ranges in ((2, [(0, 2), (2, 4)]), (3, [(0, 3)])):
        cell.size = size
        for lo, hi in ranges:
            cell.save(lo, hi, (np.zeros((2, hi - lo)),), 1.0)
    assert cell.chunk_size() == 2


def test_links_are_neither_read_nor_written(tmp_path):
    store = PartialStore(tmp_path, TIGHT.identity(0))
    cell = store.cell(CELL)
    outside = tmp_path / "outside.npz"
    outside.write_bytes(b"theirs")
    os.symlink(outside, store.path / cell._name(0, 1))
    assert cell.load(0, 1) is None
    cell.save(0, 1, (np.zeros((2, 1)),), 1.0)
    assert outside.read_bytes() == b"theirs"
    store.clear(CELL)
    assert outside.read_bytes() == b"theirs"
    linked = tmp_path / "linked"
    linked.mkdir()
    os.symlink(tmp_path / "elsewhere", linked / PARTIAL_NAME)
    with pytest.raises(StoreError, match="symbolic link"):
        PartialStore(linked, "x")


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    (tmp_path / PARTIAL_NAME).write_text("theirs")
    with pytest.raises(StoreError, match="not a folder"):
        PartialStore(tmp_path, "x")
    assert (tmp_path / PARTIAL_NAME).read_text() == "theirs"


def test_clear_removes_only_that_cells_chunk_files(tmp_path):
    store = PartialStore(tmp_path, TIGHT.identity(0))
    mine, theirs = store.cell(CELL), store.cell(Cell(3, "wisconsin", "logistic", "stk"))
    for cell in (mine, theirs):
        cell.save(0, 1, (np.zeros((2, 1)),), 1.0)
    (store.path / f"{mine.prefix}notes.txt").write_text("a user's file")
    store.clear(CELL)
    assert sorted(os.listdir(store.path)) == sorted(
        [f"{mine.prefix}notes.txt", theirs._name(0, 1)]
    )


def test_a_run_interrupted_mid_cell_resumes_from_its_chunks(tmp_path, monkeypatch):
    out = tmp_path / "out"
    calls, stopped, real = [], [], engine_grid.train_grid

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3 and not stopped:  # the third chunk of the first cell
            stopped.append(1)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine_grid, "train_grid", interrupted)
    kwargs = dict(out=out, datasets=["appendicitis"], plots=False, progress=False)
    with pytest.raises(KeyboardInterrupt):
        reproduce(3, TIGHT, **kwargs)
    assert len(os.listdir(out / PARTIAL_NAME)) == 2  # two chunks finished
    whole = reproduce(3, TIGHT, **{**kwargs, "out": tmp_path / "whole"})
    n_whole = len(calls) - 3
    calls.clear()
    resumed = reproduce(3, TIGHT, **kwargs)
    assert len(calls) == n_whole - 2
    assert not (out / PARTIAL_NAME).exists()  # removed once every cell is in
    key = ["dataset", "aggregate", "run"]
    a = resumed.runs.sort_values(key).reset_index(drop=True)
    b = whole.runs.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + COLS], b[key + COLS], check_exact=True)


def test_a_run_interrupted_before_any_chunk_leaves_no_empty_folder(
    tmp_path, monkeypatch
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine_grid, "train_grid", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        reproduce(3, TIGHT, out=out, datasets=["appendicitis"], plots=False)
    assert not (out / PARTIAL_NAME).exists()


def test_chunks_of_a_finished_cell_or_another_seed_are_removed(tmp_path):
    out = tmp_path / "out"
    kwargs = dict(out=out, datasets=["appendicitis"], plots=False, progress=False)
    reproduce(3, TIGHT, **kwargs)
    partial = PartialStore(out, TIGHT.identity(0))
    partial.cell(CELL).save(0, 1, (np.zeros((2, 1)),), 1.0)  # a finished cell's
    other = PartialStore(out, TIGHT.identity(5), owned=True).cell(CELL)
    other.save(0, 1, (np.zeros((2, 1)),), 1.0)  # another seed's
    reproduce(3, TIGHT, **kwargs)
    assert not (out / PARTIAL_NAME).exists()


def test_chunks_of_an_unfinished_run_with_other_settings_are_kept(tmp_path):
    # No runs.csv yet: the chunks are the only trace of hours of training by a
    # run with another seed; a run with other settings is refused, as it is
    # by a runs.csv of other settings, and the files stay.
    out = tmp_path / "out"
    out.mkdir()
    other = PartialStore(out, TIGHT.identity(5)).cell(CELL)
    other.save(0, 1, (np.zeros((2, 1)),), 1.0)
    before = sorted(os.listdir(out / PARTIAL_NAME))
    with pytest.raises(StoreError, match="unfinished run made with other settings"):
        reproduce(3, TIGHT, out=out, datasets=["appendicitis"], plots=False)
    assert sorted(os.listdir(out / PARTIAL_NAME)) == before
    assert not (out / "runs.csv").exists()


def test_workers_share_the_chunks_of_a_cell(tmp_path, monkeypatch):
    # Two workers train the cells' chunks side by side: the same rows as one
    # process training each cell alone.
    from sktopk.reproduce import backends, schedule

    started = []

    class Recorded(schedule.CellTasks):
        def next(self):
            task = super().next()
            started.append(task)
            return task

    monkeypatch.setattr(backends, "CellTasks", Recorded)
    from sktopk.reproduce import runner

    shown = []

    class Bar(runner.tqdm):
        def set_postfix_str(self, s="", refresh=True):
            shown.append(s)
            super().set_postfix_str(s, refresh)

    monkeypatch.setattr(runner, "tqdm", Bar)
    protocol = dataclasses.replace(TIGHT, max_memory=120_000)
    assert len(experiment.chunk_ranges(CELL, protocol, 0)) > 1
    kwargs = dict(datasets=["appendicitis"], plots=False, progress=False)
    shared = reproduce(3, protocol, out=tmp_path / "two", jobs=2, **kwargs)
    assert any(t is not None and t.chunk is not None for t in started)
    n_chunks = len(experiment.chunk_ranges(CELL, protocol, 0))
    done = f"{CELL.label}, chunk {n_chunks} of {n_chunks} done"
    assert done in shown  # the bar shows the shared cell's chunks
    alone = reproduce(3, protocol, out=tmp_path / "one", jobs=1, **kwargs)
    assert not (tmp_path / "two" / PARTIAL_NAME).exists()
    key = ["dataset", "aggregate", "run"]
    a = shared.runs.sort_values(key).reset_index(drop=True)
    b = alone.runs.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[key + COLS], b[key + COLS], check_exact=True)


def test_tasks_give_rows_first_then_chunks_then_whole_cells(tmp_path):
    from sktopk.reproduce.schedule import CellTasks

    small = Cell(3, "appendicitis", "logistic", "maximum")  # no k: few configs
    protocol = dataclasses.replace(TIGHT, max_memory=60_000)
    one = experiment.chunk_ranges(small, protocol, 0)
    tasks = CellTasks([CELL, small], protocol, 0, PartialStore(tmp_path, "a" * 12))
    ranges = experiment.chunk_ranges(CELL, protocol, 0)
    assert len(ranges) > 1 and len(one) > 1
    assert ranges[0][0] == 0 and len({r[2] for r in ranges}) == 1
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    first = [tasks.next() for _ in ranges]  # the costliest cell's chunks first
    assert [t.chunk for t in first] == ranges and tasks.total == len(ranges) + len(
        one
    ) + 2
    progress = [tasks.done(task) for task in first]
    assert progress == [(i + 1, len(ranges)) for i in range(len(ranges))]
    # CELL's rows come before small's chunks; small's rows come last.
    assert tasks.next() == (CELL, None, ranges[0][2])
    rest = [tasks.next() for _ in one]
    assert [t.chunk for t in rest] == one and tasks.next() is None
    for task in rest:
        tasks.done(task)
    assert tasks.next() == (small, None, one[0][2]) and tasks.next() is None


def test_cells_of_one_chunk_or_without_a_folder_are_whole_tasks(tmp_path):
    from sktopk.reproduce.schedule import CellTasks

    roomy = dataclasses.replace(TIGHT, max_memory=2**30)
    whole = CellTasks([CELL], roomy, 0, PartialStore(tmp_path, "b" * 12))
    assert whole.total == 1 and [whole.next(), whole.next()] == [
        (CELL, None, None),
        None,
    ]
    unsplit = CellTasks([CELL], TIGHT, 0, None)  # nowhere to keep chunks
    assert [unsplit.next(), unsplit.next()] == [(CELL, None, None), None]


@pytest.mark.parametrize("name", [".sktopk-tmp-notes", "notes.txt", "a.npz"])
def test_a_folder_of_the_user_in_its_place_is_refused_and_kept(tmp_path, name):
    (tmp_path / PARTIAL_NAME).mkdir()
    (tmp_path / PARTIAL_NAME / name).write_text("the user's")
    with pytest.raises(StoreError, match="sktopk did not write"):
        PartialStore(tmp_path, TIGHT.identity(0), owned=True)
    assert (tmp_path / PARTIAL_NAME / name).read_text() == "the user's"


def test_a_folder_of_its_own_chunks_and_temporaries_is_used(tmp_path):
    store = PartialStore(tmp_path, TIGHT.identity(0))
    store.cell(CELL).save(0, 1, (np.zeros((2, 1)),), 1.0)
    stale = store.path / ".sktopk-tmp-99-0123456789abcdef"
    stale.write_text("half a chunk")
    again = PartialStore(tmp_path, TIGHT.identity(0))
    assert os.listdir(again.path) == [store.cell(CELL)._name(0, 1)]
