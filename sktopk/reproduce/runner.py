"""Reproduce one table: run the missing cells, then write the table, report
and plots. :func:`reproduce` is what the command line calls."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..datasets import dataset_info
from .backends import run_cells
from .experiment import members_at_once
from .plots import have_matplotlib, plot_datasets
from .protocol import TABLES, Cell, Protocol, table_cells
from .report import compare, format_table, render_report, summarize
from .store import ResultStore

__all__ = ["Reproduction", "reproduce"]


@dataclass
class Reproduction:
    """What :func:`reproduce` produced."""

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
        ``table{N}_comparison.csv`` and ``table{N}_{dataset}.png``.
    datasets : list of str, optional
        Some of the table's datasets (default: all).
    backend, jobs, scheduler
        Where cells run, see :func:`~sktopk.reproduce.backends.run_cells`.
    plots : bool, default=True
        Write the PNG plots (skipped with a message without matplotlib).
    progress : bool, default=True
        Show a progress bar (on stderr).
    command : str, default=""
        The command line, recorded in the report.
    """
    start = time.perf_counter()
    cells = table_cells(table, datasets)
    store = ResultStore(out, protocol.identity(seed), protocol.runs)
    todo = sorted((c for c in cells if not store.is_complete(c)), key=_cost(protocol))
    _run(todo, store, protocol, seed, backend, jobs, scheduler, progress)
    runs = store.complete_rows(cells)
    comparison = compare(summarize(runs))
    folder = Path(out)
    comparison.to_csv(folder / f"table{table}_comparison.csv", index=False)
    names, message = _plots(comparison, folder, table, plots)
    seconds = time.perf_counter() - start
    timing = _timing(runs, len(todo), len(cells) - len(todo), seconds, backend, jobs)
    text = render_report(
        comparison, protocol, title=_title(table), command=command, seed=seed,
        timing=timing, plots=names, plot_message=message,
    )  # fmt: skip
    report = folder / f"table{table}.md"
    report.write_text(text, encoding="utf-8")
    return Reproduction(
        comparison, runs, report, [folder / n for n in names], len(todo),
        len(cells) - len(todo), seconds,
    )  # fmt: skip


def _run(todo, store, protocol, seed, backend, jobs, scheduler, progress) -> None:
    if not todo:
        return
    results = run_cells(
        todo, protocol, seed, backend=backend, jobs=jobs, scheduler=scheduler
    )
    bar = tqdm(total=len(todo), unit="cell", file=sys.stderr, disable=not progress,
               desc=f"table {todo[0].table}", dynamic_ncols=True)  # fmt: skip
    with bar:
        for cell, rows in results:
            store.append(rows)
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


def _plots(comparison, folder: Path, table: int, wanted: bool):
    if not wanted:
        return [], "not requested (--no-plots)"
    if comparison.empty:
        return [], "no complete cells"
    if not have_matplotlib():
        message = "skipped: matplotlib is not installed (pip install 'sktopk[plot]')"
        print(f"sktopk reproduce: plots {message}", file=sys.stderr)
        return [], message
    return plot_datasets(comparison, folder, f"table{table}"), None


def _timing(runs, ran: int, resumed: int, seconds: float, backend, jobs) -> dict:
    per_cell = runs.drop_duplicates(["table", "dataset", "loss", "aggregate"])
    where = "local" if backend == "local" else "dask cluster"
    if backend == "local":
        where += f", {jobs} worker process(es)" if jobs != 1 else ", this process"
    return {
        "wall time of this invocation": f"{seconds:.1f} s",
        "cells run now / resumed from runs.csv": f"{ran} / {resumed}",
        "compute time of all cells (sum over cells, one thread each)": (
            f"{per_cell['seconds'].astype(float).sum():.1f} s"
        ),
        "backend": where,
    }


def _title(table: int) -> str:
    spec = TABLES[table]
    losses = " and ".join(spec.losses)
    return f"Table {table} of Xia et al. (2024): {losses} loss, {spec.task}"


def format_comparison(comparison: pd.DataFrame) -> str:
    """The side-by-side table as plain text, for the terminal."""
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        return format_table(comparison).to_string(index=False)
