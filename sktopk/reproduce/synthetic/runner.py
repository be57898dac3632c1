"""Run one synthetic job and write its files: the runs, the summary beside
the paper's numbers, the Markdown report and the PNG."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..plots import NO_MATPLOTLIB, have_matplotlib
from ..store import OutputFolder, check_seed, check_settings
from .output import csv_bytes, file_names, png_bytes
from .settings import JOBS

__all__ = ["SyntheticResult", "run_job"]


@dataclass
class SyntheticResult:
    """What :func:`run_job` produced."""

    job: str
    runs: pd.DataFrame
    summary: pd.DataFrame
    report: Path
    plot: Path | None
    seconds: float


def run_job(
    job: str,
    settings,
    *,
    seed: int = 0,
    out: str | Path = "sktopk-results",
    plots: bool = True,
    progress: bool = True,
    command: str = "",
) -> SyntheticResult:
    """Run ``job`` ("table1", "table2", "figure3" or "figure4") and write
    ``{job}_runs.csv``, ``{job}_summary.csv``, ``{job}.md`` and ``{job}.png``
    in ``out``.

    The folder is locked while the job runs, and checked before any work:
    files of those names that this tool did not write are never replaced
    (see :class:`~sktopk.reproduce.store.OutputFolder`), nor files of the job
    made with other settings, nor a folder holding results of another seed.
    Every file is written to a temporary name, then renamed over the target.
    Without a plot, the job's plot of an earlier run is removed (if this
    tool wrote it and it is unchanged; a file of the user is left).

    Parameters
    ----------
    job : str
    settings : TimingSettings or GaussianSettings
        From :func:`~sktopk.reproduce.synthetic.make_settings`.
    seed : int, default=0
    out : path
    plots : bool, default=True
        Write the PNG (skipped with a message when matplotlib is missing).
    progress : bool, default=True
        A progress bar on stderr.
    command : str, default=""
        The command line, recorded in the report.

    Raises
    ------
    StoreError
        Before any work, if the folder cannot be used (see above).
    """
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; choose one of: {', '.join(JOBS)}")
    module = import_module(f"{__package__}.{job}")
    plots = plots and _can_plot()
    names = file_names(job, plots)
    start = time.perf_counter()
    with OutputFolder(out) as folder:
        folder.check_replaceable(list(names.values()))
        check_settings(folder, _own_files(job), settings.identity(seed))
        check_seed(folder, seed)
        bar = tqdm(total=module.units(settings), desc=job, file=sys.stderr,
                   disable=not progress, dynamic_ncols=True)  # fmt: skip
        with bar:
            runs = module.run(settings, seed, bar.update)
        summary = module.summarize(runs, settings)
        folder.write(names["runs"], csv_bytes(runs))
        folder.write(names["summary"], csv_bytes(summary))
        plot = None
        if plots:
            figure = module.plot(summary, runs, settings)
            plot = folder.write(names["plot"], png_bytes(figure))
        else:  # an earlier run's plot would not match this report
            folder.remove(file_names(job, True)["plot"])
        seconds = time.perf_counter() - start
        text = module.render(
            summary, runs, settings, command=command, seed=seed, seconds=seconds,
            plot_name=names.get("plot"),
        )  # fmt: skip
        report = folder.write(names["report"], text.encode("utf-8"))
    return SyntheticResult(job, runs, summary, report, plot, seconds)


def _own_files(job: str) -> list[str]:
    """The files of ``job`` that record the settings that made them."""
    names = file_names(job, True)
    return [names["report"], names["runs"]]


def _can_plot() -> bool:
    if have_matplotlib():
        return True
    print(f"sktopk reproduce: plot {NO_MATPLOTLIB}", file=sys.stderr)
    return False
