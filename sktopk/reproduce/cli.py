"""Command line: ``sktopk reproduce --table 3`` (or ``python -m sktopk ...``).

A thin layer over :func:`sktopk.reproduce.runner.reproduce`: it parses the
options, turns user mistakes into a one-line message and a non-zero exit
status, and prints the side-by-side table.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings

import joblib

from .. import __version__
from ..engine.grid import parse_memory
from .backends import BACKENDS, BackendError
from .experiment import members_at_once
from .protocol import (
    MODELS,
    PRESETS,
    SCALINGS,
    STOPPING_UNITS,
    TARGET_SCALINGS,
    make_protocol,
    table_cells,
)
from .store import StoreError, StoreWarning
from .synthetic.command import is_synthetic, parse_job
from .synthetic.command import run as run_synthetic

__all__ = ["main", "build_parser"]

PROG = "sktopk"
#: The command's description in ``sktopk --help``: plain text, not reST.
DESCRIPTION = (
    "The sktopk command line. Example: sktopk reproduce --table 3 "
    "(or python -m sktopk reproduce --table 3)."
)
EPILOG = """\
The output folder is locked while a run uses it: a second run on the same
folder is refused (exit status 2) once its options are checked, before any
work (after a few seconds: it loads torch first). Rerunning the same command
resumes: the cells already in runs.csv are not run again, and a cell that was
interrupted trains only the chunks of its grid it had not finished (kept in
the folder's .sktopk-partial until the cell is whole). Files in the folder
that sktopk did not write, and symbolic links, are never overwritten.

exit status: 0 done; 2 a usage error, or an output folder that cannot be used
(read-only, in use by another run, holding files sktopk did not write, or
results made with other settings), reported before any work; 130 interrupted
(Tables 3, 4 and 6 keep their finished cells and chunks; the synthetic jobs,
Tables 1 and 2 and Figures 3 and 4, write their files only at the end and
keep nothing).
"""
#: Patience used when --patience-unit changes the preset's unit.
DEFAULT_PATIENCE = {"step": 1, "epoch": 5}


class UsageError(Exception):
    """A mistake in the command line (reported without a traceback)."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sktopk`` command."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    rep = sub.add_parser(
        "reproduce",
        help="reproduce a published table (1-4, 6) or figure (3, 4) of Xia et "
        "al. (2024)",
        description="Run the benchmark protocol and compare with the paper.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rep.add_argument("--table", help="3 (logistic), 4 (hinge) or 6 (regression, "
                     "square and absolute); 1 (time of a top-k sum) or 2 "
                     "(imbalanced Gaussian data)")  # fmt: skip
    rep.add_argument("--figure", help="3 (2-D boundaries) or 4 (accuracy against "
                     "the negative ratio)")  # fmt: skip
    # What the synthetic jobs refuse (synthetic/command.py's _NOT_HERE).
    real = rep.add_argument_group(
        "Tables 3, 4 and 6 only",
        "the synthetic jobs (Tables 1, 2, Figures 3, 4) run in this process on "
        "their own data and refuse these options",
    )
    rep.add_argument("--protocol", default="quick",
                     help=f"preset: {', '.join(PRESETS)} (default: quick)")  # fmt: skip
    real.add_argument("--datasets", help="comma-separated datasets (default: all of "
                     "the table)")  # fmt: skip
    rep.add_argument("--runs", type=int, help="random splits per cell, or "
                     "repetitions of a synthetic job (default: the --protocol "
                     f"preset's: {_runs_defaults()})")  # fmt: skip
    rep.add_argument(
        "--seed", type=int, default=0, help="global seed, an integer >= 0 (default 0)"
    )
    real.add_argument("--max-epochs", type=int, help="epoch limit (default: "
                     f"the preset's: {_defaults('max_epochs')})")  # fmt: skip
    real.add_argument(
        "--patience-unit",
        choices=STOPPING_UNITS,
        help="early stopping every 50 steps (the paper's) or per epoch",
    )
    real.add_argument("--patience", type=int, help="evaluations without "
                     f"improvement (default: the preset's: {_patience_defaults()}"
                     "; with the other --patience-unit: "
                     f"{_defaults_of(DEFAULT_PATIENCE)})")  # fmt: skip
    real.add_argument("--model", choices=MODELS, help="mlp (10 ReLU units) or "
                     f"linear (default: the preset's: {_defaults('model')})",
                     )  # fmt: skip
    real.add_argument("--scaling", choices=SCALINGS, help="feature scaling")
    real.add_argument(
        "--target-scaling",
        choices=TARGET_SCALINGS,
        help="regression targets (table 6): paper (default) min-max scales to "
        "[0, 1] the datasets the paper lists as scaled (housing, abalone, "
        "cpusmall) and leaves sinc as generated; all scales every dataset. "
        "Tables 3 and 4 have no targets to scale: it changes nothing there",
    )
    rep.add_argument("--out", help="output folder (default: "
                     "sktopk-results/table<N>-<protocol>); one run at a time: "
                     "a second run on the same folder is refused with status 2 "
                     "before any work")  # fmt: skip
    real.add_argument(
        "--jobs",
        type=int,
        default=-1,
        help="local worker processes (default -1: one per core this process may use)",
    )
    real.add_argument(
        "--max-memory",
        help="memory budget of the members trained at once, e.g. 2GiB or 2GB "
        "(default 1GiB; KiB, MiB, GiB are powers of 1024, KB, MB, GB powers of "
        "1000); larger grids are trained in several batches",
    )
    real.add_argument(
        "--backend",
        default="local",
        choices=BACKENDS,
        help="where the cells run: local worker processes (default) or a Dask "
        "cluster (with --scheduler)",
    )
    real.add_argument("--scheduler", help="Dask scheduler address (--backend dask)")
    rep.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    rep.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _defaults(name: str) -> str:
    """The value of setting ``name`` in each preset, e.g. "quick 10, paper 50"."""
    return ", ".join(f"{p} {getattr(PRESETS[p], name)}" for p in PRESETS)


def _defaults_of(values: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def _patience_defaults() -> str:
    return ", ".join(
        f"{p} {PRESETS[p].patience} ({PRESETS[p].stopping})" for p in PRESETS
    )


def _runs_defaults() -> str:
    """The runs of each preset, for Tables 3, 4 and 6 and each synthetic job."""
    from .synthetic.settings import PRESETS as SYNTHETIC

    parts = [f"{_defaults('runs')} (Tables 3, 4, 6)"]
    for job, presets in SYNTHETIC.items():
        runs = ", ".join(f"{p} {s.runs}" for p, s in presets.items())
        parts.append(f"{runs} ({job[:-1].capitalize()} {job[-1]})")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its message
        return int(exc.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _plain_store_warnings(warnings.showwarning)
            return _reproduce(args, f"{PROG} {shlex.join(argv)}")
    except (UsageError, StoreError, BackendError) as exc:
        print(f"{PROG} reproduce: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = _after_interrupt(args)
        print(f"{PROG} reproduce: interrupted; {kept}", file=sys.stderr)
        return 130


def _after_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted run has kept."""
    if is_synthetic(args):
        return (
            "the synthetic jobs write their files only at the end, so nothing was "
            "kept: run the command again to start over"
        )
    return (
        "finished cells (and the chunks of unfinished ones) are kept: run the "
        "same command again to resume"
    )


def _plain_store_warnings(default):
    """Show warnings about the output folder as one plain line, others as usual."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, StoreWarning):
            print(f"{PROG} reproduce: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _reproduce(args: argparse.Namespace, command: str) -> int:
    from .allocator import keep_heap_memory
    from .runner import format_comparison, reproduce

    keep_heap_memory()  # this process is the command's own

    if (args.backend == "dask") != bool(args.scheduler):
        raise UsageError("--backend dask and --scheduler ADDRESS go together")
    if args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer; got {args.seed}")
    if args.out is not None and not args.out.strip():
        raise UsageError("--out is empty; give an output folder")
    if args.table is None and args.figure is None:
        raise UsageError("give --table N or --figure N")
    if args.table is not None:
        args.table = str(_table(args.table))
    _check_counts(args)
    if is_synthetic(args):
        return _synthetic(args, command)
    table, datasets = int(args.table), _datasets(args.datasets)  # read above
    try:
        protocol = _protocol(args)
        for cell in table_cells(table, datasets):
            members_at_once(cell, protocol)  # the budget holds one member per run
    except ValueError as exc:  # in the command line's words
        raise UsageError(str(exc).replace("max_memory", "--max-memory")) from None
    except MemoryError as exc:
        raise UsageError(_memory_advice(str(exc))) from None
    out = args.out or os.path.join("sktopk-results", f"table{table}-{protocol.name}")
    result = reproduce(
        table, protocol, seed=args.seed, out=out, datasets=datasets,
        backend=args.backend, jobs=_jobs(args.jobs), scheduler=args.scheduler,
        plots=not args.no_plots, progress=not args.quiet, command=command,
    )  # fmt: skip
    print(format_comparison(result.comparison))
    print(f"\nreport: {result.report}")
    return 0


def _synthetic(args: argparse.Namespace, command: str) -> int:
    """Tables 1-2 and Figures 3-4 (Section 4 of the paper)."""
    try:
        job, settings = parse_job(args)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return run_synthetic(job, settings, args, command)


#: Options that count something, as the command line names them.
COUNTS = {"runs": "--runs", "max_epochs": "--max-epochs", "patience": "--patience"}


def _check_counts(args: argparse.Namespace) -> None:
    """``--runs``, ``--max-epochs`` and ``--patience``, when given, are >= 1."""
    for name, flag in COUNTS.items():
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1; got {value}")


def _memory_advice(message: str) -> str:
    """The budget error of the engine, with the command line's remedy."""
    head = message.split("; raise max_memory", 1)[0]
    return f"{head}; raise --max-memory (its default is 1GiB)"


#: The tables that ``reproduce`` makes.
TABLE_NUMBERS = (1, 2, 3, 4, 6)


def _table(text: str) -> int:
    """The table's number from ``--table`` (digits, spaces around allowed)."""
    digits = str(text).strip()
    if digits.isascii() and digits.isdigit() and int(digits) in TABLE_NUMBERS:
        return int(digits)
    choices = ", ".join(map(str, TABLE_NUMBERS))
    raise UsageError(f"unknown table {text!r}; choose one of: {choices}")


def _protocol(args: argparse.Namespace):
    if args.protocol not in PRESETS:
        raise UsageError(
            f"unknown protocol {args.protocol!r}; choose one of: {', '.join(PRESETS)}"
        )
    patience = args.patience
    unit = args.patience_unit
    if unit and patience is None and unit != PRESETS[args.protocol].stopping:
        patience = DEFAULT_PATIENCE[unit]
    return make_protocol(
        args.protocol, runs=args.runs, max_epochs=args.max_epochs, stopping=unit,
        patience=patience, model=args.model, scaling=args.scaling,
        target_scaling=args.target_scaling, max_memory=_memory(args.max_memory),
    )  # fmt: skip


def _memory(text: str | None) -> int | None:
    try:
        return parse_memory(text)
    except ValueError as exc:
        raise UsageError(f"--max-memory: {exc}") from None


def _datasets(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise UsageError("--datasets is empty; give comma-separated dataset names")
    return list(dict.fromkeys(names))  # a name given twice is run once


def _jobs(jobs: int) -> int:
    if jobs == -1:  # the cores this process may use (affinity, cgroup quota)
        return max(1, joblib.cpu_count())
    if jobs < 1:
        raise UsageError(f"--jobs must be -1 (one per core) or at least 1; got {jobs}")
    return jobs
