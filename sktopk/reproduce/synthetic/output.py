"""What every synthetic job writes: file names, the report's common parts,
the hardware note and PNG bytes of a figure."""

from __future__ import annotations

import io
import os
import platform

import numpy as np
import pandas as pd
import torch

__all__ = [
    "file_names",
    "hardware",
    "opening_lines",
    "png_bytes",
    "pm",
    "csv_bytes",
]


def file_names(job: str, plots: bool) -> dict[str, str]:
    """The files of ``job`` in its output folder, by role."""
    names = {
        "runs": f"{job}_runs.csv",
        "summary": f"{job}_summary.csv",
        "report": f"{job}.md",
    }
    if plots:
        names["plot"] = f"{job}.png"
    return names


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _load() -> str:
    """The system load: other work on the machine slows the timings."""
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except (OSError, AttributeError):  # not available on this system
        return "unknown"


def hardware() -> dict[str, str]:
    """The machine and software the numbers were measured with."""
    return {
        "CPU": f"{_cpu_name()}, {os.cpu_count()} logical core(s) visible",
        "torch threads of the process": str(torch.get_num_threads()),
        "load average (1, 5, 15 min) when written": _load(),
        "software": (
            f"Python {platform.python_version()}, numpy {np.__version__}, "
            f"torch {torch.__version__}, {platform.system()} {platform.machine()}"
        ),
    }


def opening_lines(title: str, command: str, seed: int, settings) -> list[str]:
    """The report's title and settings section (with the settings' identity)."""
    items = {"command": f"`{command}`", "seed": str(seed)}
    items |= settings.describe()
    items["settings identity"] = settings.identity(seed)
    return [
        f"# {title}",
        "",
        "## Settings",
        "",
        *(f"- **{k}**: {v}" for k, v in items.items()),
    ]


def closing_lines(seconds: float, plot_name: str | None, notes: list[str]) -> list[str]:
    """The report's last sections: time and hardware, the plot, the notes."""
    items = {"wall time of this invocation": f"{seconds:.1f} s"} | hardware()
    lines = ["## Time and hardware", ""]
    lines += [f"- **{k}**: {v}" for k, v in items.items()]
    lines += [
        "",
        "## Plot",
        "",
        f"![{plot_name}]({plot_name})" if plot_name else "none",
    ]
    return lines + ["", "## Notes", "", *notes]


def num(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals; empty when missing."""
    return "" if pd.isna(value) else f"{value:.{digits}f}"


def pm(mean: float, std: float, digits: int) -> str:
    """``mean ± std`` (``n/a`` for a missing mean; the mean alone without std)."""
    if pd.isna(mean):
        return "n/a"
    if pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def png_bytes(figure) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as CSV bytes (10 significant digits, ``\\n`` line ends)."""
    text = frame.to_csv(index=False, float_format="%.10g", lineterminator="\n")
    return text.encode("utf-8")
