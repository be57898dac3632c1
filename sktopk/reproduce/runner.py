"""Reproduce one table: run the missing cells, then write the table, report
and plots. :func:`reproduce` is what the command line calls."""

from __future__ import annotations

import re
import sys
import time
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..datasets import dataset_info
from .backends import run_cells
from .experiment import members_at_once
from .partial import PartialStore
from .plots import NO_MATPLOTLIB, have_matplotlib, plot_datasets, plot_name
from .protocol import TABLES, TARGET_SCALINGS, Cell, Protocol, table_cells
from .reference import constant_summary, with_reference_rows
from .report import compare, format_table, render_report, summarize
from .schedule import ChunkDone
from .store import OutputFolder, ResultStore, check_seed

__all__ = ["Reproduction", "reproduce"]


@dataclass
class Reproduction:
    """What :func:`reproduce` produced.

    ``comparison`` is the table of ``table{N}_comparison.csv`` and of the
    report: every cell of the table complete in the folder, with the
    constant-predictor reference rows of a regression table.
    """

    comparison: pd.DataFrame
    runs: pd.DataFrame
    report: Path
    plots: list[Path]
    cells_run: int
    cells_resumed: int
    seconds: float


def reproduce(
    table: int,
    protocol: Protocol,
    *,
    seed: int = 0,
    out: str | Path = "sktopk-results",
    datasets: list[str] | None = None,
    backend: str = "local",
    jobs: int = 1,
    scheduler: str | None = None,
    plots: bool = True,
    progress: bool = True,
    command: str = "",
) -> Reproduction:
    """Run the cells of ``table`` that ``out/runs.csv`` lacks, then report.

    The report, the comparison and the plots cover every cell of the table
    whose runs are complete in ``out/runs.csv``, not only those of
    ``datasets``; the report names the commands that made those runs.
    A classification table (3, 4) has no targets to scale, so
    ``protocol.target_scaling`` does not change which runs it uses.

    Parameters
    ----------
    table : {3, 4, 6}
        The published table.
    protocol : Protocol
        Settings, e.g. ``make_protocol("quick")``.
    seed : int, default=0
        Seed of the splits, initial weights and data order.
    out : path, default="sktopk-results"
        Output folder: ``runs.csv`` (every run), ``table{N}.md`` (the report),
        ``table{N}_comparison.csv`` and ``table{N}_{dataset}.png``. It is
        locked while the function runs and checked before any work: see
        :class:`~sktopk.reproduce.store.OutputFolder`.
    datasets : list of str, optional
        Some of the table's datasets (default: all).
    backend, jobs, scheduler
        Where cells run, see :func:`~sktopk.reproduce.backends.run_cells`.
    plots : bool, default=True
        Write the PNG plots (skipped with a message without matplotlib).
        Without them, this tool's plots of an earlier run of the report's
        datasets are removed (a file of the user is left as it is).
    progress : bool, default=True
        Show a progress bar (on stderr).
    command : str, default=""
        The command line, recorded in the report.

    Raises
    ------
    StoreError
        Before any work, if the folder cannot be used: not writable, in use by
        another run, holding a damaged or foreign ``runs.csv``, runs or
        reports made with other settings or another seed, or holding a file
        of an output name that this tool did not write, or a link.
    """
    start = time.perf_counter()
    cells = table_cells(table, datasets)
    with OutputFolder(out) as folder:
        protocol, store = _open_store(folder, table, protocol, seed)
        shown = _report_cells(table, cells, store)
        folder.check_replaceable(_outputs(table, shown, plots))
        check_seed(folder, seed)
        complete = {c for c in cells if store.is_complete(c)}
        todo = sorted((c for c in cells if c not in complete), key=_cost(protocol))
        owned = len(store.frame) > 0  # runs.csv holds this run's rows
        partial = PartialStore(folder.path, store.identity, owned)
        for cell in complete:  # left by a run stopped just after the cell's rows
            partial.clear(cell)
        try:
            where = (backend, jobs, scheduler, partial)
            _run(todo, store, protocol, seed, where, progress)
        finally:  # also when interrupted: no empty folder left behind
            partial.remove_if_empty()
        runs = store.complete_rows(shown)
        comparison = compare(summarize(runs))
        reference = constant_summary(comparison, protocol, seed)
        rows = with_reference_rows(comparison, reference)
        csv = rows.to_csv(index=False, lineterminator="\n")
        folder.write(f"table{table}_comparison.csv", csv.encode("utf-8"))
        names, message = _plots(comparison, folder, table, plots)
        _remove_stale_plots(folder, table, shown, names)
        seconds = time.perf_counter() - start
        ran, resumed = len(todo), len(shown) - len(todo)
        timing = _timing(runs, ran, resumed, seconds, backend, jobs)
        earlier = _earlier_report(folder.path / f"table{table}.md", store.identity)
        if not todo:  # a report made again from runs.csv keeps the run's times
            timing = _earlier_timing(earlier, seconds, timing, len(shown))
        makers = _makers(earlier, command, ran, resumed)
        text = render_report(
            comparison, protocol, title=_title(table), command=command, seed=seed,
            timing=timing, plots=names, plot_message=message, runs=runs,
            reference=reference, made_by=makers,
        )  # fmt: skip
        report = folder.write(f"table{table}.md", text.encode("utf-8"))
    paths = [Path(out) / n for n in names]
    return Reproduction(rows, runs, report, paths, ran, resumed, seconds)


def _open_store(folder, table: int, protocol: Protocol, seed: int):
    """The protocol and the store of its runs. A classification table has no
    targets to scale: its runs are those of either target scaling, recorded
    under the identity of the folder's ``runs.csv`` (the default's for a new
    one), and the protocol is given that scaling, so that its report and rows
    say what the folder holds."""
    if TABLES[table].task == "regression":
        return protocol, ResultStore(folder, protocol.identity(seed), protocol.runs)
    variants = [replace(protocol, target_scaling=t) for t in TARGET_SCALINGS]
    by_identity = {v.identity(seed): v for v in variants}
    first, *also = by_identity
    store = ResultStore(folder, first, protocol.runs, also=tuple(also))
    return by_identity[store.identity], store


def _report_cells(table: int, cells: list[Cell], store: ResultStore) -> list[Cell]:
    """The cells of the report: those asked for, and every other cell of the
    table whose runs are complete in the folder's ``runs.csv``."""
    asked = set(cells)
    return [c for c in table_cells(table) if c in asked or store.is_complete(c)]


def _outputs(table: int, cells: list[Cell], plots: bool) -> list[str]:
    """Names of the files this call may replace (checked before any work)."""
    names = [f"table{table}_comparison.csv", f"table{table}.md"]
    if plots:
        datasets = dict.fromkeys(c.dataset for c in cells)
        names += [plot_name(f"table{table}", d) for d in datasets]
    return names


def _run(todo, store, protocol, seed, where, progress) -> None:
    """Run the cells ``todo`` and append their rows as each one finishes;
    ``where`` is ``(backend, jobs, scheduler, partial)``."""
    if not todo:
        return
    backend, jobs, scheduler, partial = where
    results = run_cells(
        todo, protocol, seed, backend=backend, jobs=jobs, scheduler=scheduler,
        partial=partial,
    )  # fmt: skip
    bar = tqdm(total=len(todo), unit="cell", file=sys.stderr, disable=not progress,
               desc=f"table {todo[0].table}", dynamic_ncols=True)  # fmt: skip
    # closing: on any error here the workers stop now, not when collected.
    with bar, closing(results):
        for cell, rows in results:
            if isinstance(rows, ChunkDone):  # a chunk of a cell shared by workers
                text = f"{cell.label}, chunk {rows.done} of {rows.total} done"
                bar.set_postfix_str(text)
                continue
            store.append(rows)
            partial.clear(cell)
            members = members_at_once(cell, protocol)
            text = f"{cell.label}, {members} members at once"
            bar.set_postfix_str(text, refresh=False)
            bar.update()


def _cost(protocol: Protocol):
    """Sort key: the most expensive cells first, for better load balance."""

    def key(cell: Cell) -> float:
        info = dataset_info(cell.dataset)
        configs = len(protocol.grid(cell.aggregate, info.n_samples)["lr"])
        return -float(info.n_samples * (info.n_features + 10) * configs)

    return key


def _plots(comparison, folder: OutputFolder, table: int, wanted: bool):
    if not wanted:
        return [], "not requested (--no-plots)"
    if comparison.empty:
        return [], "no complete cells"
    if not have_matplotlib():
        print(f"sktopk reproduce: plots {NO_MATPLOTLIB}", file=sys.stderr)
        return [], NO_MATPLOTLIB
    return plot_datasets(comparison, folder.write, f"table{table}"), None


def _timing(runs, ran: int, resumed: int, seconds: float, backend, jobs) -> dict:
    per_cell = runs.drop_duplicates(["table", "dataset", "loss", "aggregate"])
    where = "local" if backend == "local" else "dask cluster"
    if backend == "local":
        # at most: there are no more workers than chunks to train
        where += f", up to {jobs} worker processes" if jobs != 1 else ", this process"
    return {
        "wall time of this invocation": f"{seconds:.1f} s",
        "cells run now / resumed from runs.csv": f"{ran} / {resumed}",
        "compute time of all cells (sum over cells, one thread each)": (
            f"{per_cell['seconds'].astype(float).sum():.1f} s"
        ),
        "backend": where,
    }


def _earlier_report(report: Path, identity: str) -> dict[str, dict[str, str]]:
    """The settings and Time sections of the report already in the folder
    (written by this tool: checked before any work) if it is of the runs of
    ``identity``; empty sections otherwise."""
    sections = {"Settings": {}, "Time": {}}
    if not report.is_file():
        return sections
    name = ""
    for line in report.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            name = line[3:]
        elif name in sections and line.startswith("- **") and "**: " in line:
            key, value = line[4:].split("**: ", 1)
            sections[name][key] = value
    if sections["Settings"].get("protocol identity") != identity:
        return {"Settings": {}, "Time": {}}
    return sections


def _earlier_timing(earlier: dict, seconds: float, timing: dict, n_cells: int) -> dict:
    """The Time section of the earlier report (see :func:`_earlier_report`),
    where every cell was resumed: the times of the run that made the cells,
    not of this invocation, which only made the report again. ``timing``
    where there is no such section, where it counts other cells than
    ``n_cells`` (a report of other datasets) or where it ran none of them."""
    earlier = dict(earlier["Time"])
    earlier.pop("report made again", None)
    counts = earlier.get("cells run now / resumed from runs.csv", "").split(" / ")
    if not all(c.isdigit() for c in counts) or sum(map(int, counts)) != n_cells:
        return timing
    if int(counts[0]) == 0:  # that report was itself made from runs.csv alone
        return timing
    return earlier | {
        "report made again": f"from runs.csv in {seconds:.1f} s, every cell "
        "resumed; the times above are those of the run that made the cells"
    }


def _makers(earlier: dict, command: str, ran: int, resumed: int) -> list[str]:
    """The commands that made the runs of the report: those the earlier
    report names (when this one resumes cells) and this one (when it ran
    some)."""
    before = []
    if resumed:
        settings = earlier["Settings"]
        before = re.findall(r"`([^`]*)`", settings.get("runs made by", ""))
        counts = earlier["Time"].get("cells run now / resumed from runs.csv", "")
        if not before and not counts.startswith("0 ") and "command" in settings:
            before = re.findall(r"`([^`]*)`", settings["command"])
    return list(dict.fromkeys(before + ([command] if ran else [])))


def _remove_stale_plots(folder, table: int, cells: list[Cell], kept: list[str]):
    """Remove this tool's plots of the report's datasets that were not made
    now (an earlier run's, which would not match the report)."""
    for dataset in dict.fromkeys(c.dataset for c in cells):
        name = plot_name(f"table{table}", dataset)
        if name not in kept:
            folder.remove(name)


def _title(table: int) -> str:
    spec = TABLES[table]
    losses = " and ".join(spec.losses)
    return f"Table {table} of Xia et al. (2024): {losses} loss, {spec.task}"


def format_comparison(comparison: pd.DataFrame) -> str:
    """The side-by-side table as plain text, for the terminal."""
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        return format_table(comparison).to_string(index=False)
