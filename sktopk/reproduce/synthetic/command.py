"""The command-line side of the synthetic jobs: ``sktopk reproduce --table 1``,
``--table 2``, ``--figure 3`` and ``--figure 4``."""

from __future__ import annotations

import argparse
import os

from .runner import run_job
from .settings import make_settings

__all__ = ["SYNTHETIC_TABLES", "SYNTHETIC_FIGURES", "is_synthetic", "parse_job", "run"]

SYNTHETIC_TABLES = ("1", "2")
SYNTHETIC_FIGURES = ("3", "4")
#: Options of the benchmark tables that do not apply here, and their defaults.
_NOT_HERE = {
    "datasets": None, "max_epochs": None, "patience_unit": None, "patience": None,
    "model": None, "scaling": None, "max_memory": None, "scheduler": None,
    "target_scaling": None, "backend": "local", "jobs": -1,
}  # fmt: skip


def is_synthetic(args: argparse.Namespace) -> bool:
    """Whether the arguments ask for a synthetic job."""
    figure = getattr(args, "figure", None)
    return figure is not None or str(args.table).strip() in SYNTHETIC_TABLES


def parse_job(args: argparse.Namespace) -> tuple[str, object]:
    """The job and its settings; ValueError for a usage mistake."""
    figure = getattr(args, "figure", None)
    if figure is not None and args.table is not None:
        raise ValueError("give either --table or --figure, not both")
    if figure is not None and figure.strip() not in SYNTHETIC_FIGURES:
        raise ValueError(f"unknown figure {figure!r}; choose one of: 3, 4")
    job = f"figure{figure.strip()}" if figure is not None else f"table{args.table}"
    flags = [
        "--" + name.replace("_", "-")
        for name, default in _NOT_HERE.items()
        if getattr(args, name, default) != default
    ]
    if flags:
        them = "it" if len(flags) == 1 else "them"
        raise ValueError(
            f"{', '.join(flags)}: not used by {_name(job)}, which runs in this "
            f"process on its own synthetic data; leave {them} out"
        )
    return job, make_settings(job, args.protocol, args.runs)


def _name(job: str) -> str:
    return f"{job[:-1].capitalize()} {job[-1]}"


def run(job: str, settings, args: argparse.Namespace, command: str) -> int:
    """Run the job, print its results table and the report's path."""
    out = args.out or os.path.join("sktopk-results", f"{job}-{settings.name}")
    result = run_job(
        job, settings, seed=args.seed, out=out, plots=not args.no_plots,
        progress=not args.quiet, command=command,
    )  # fmt: skip
    text = result.report.read_text(encoding="utf-8")
    start = text.index("## Results")
    end = text.index("\n## ", start + 1)
    print(text[start:end].strip())
    print(f"\nreport: {result.report}")
    return 0
