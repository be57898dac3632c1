"""Per-dataset error-bar plots, ours beside the paper's (needs matplotlib)."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..losses import get_aggregate
from .splits import METRIC_AXES

__all__ = ["plot_datasets", "plot_name", "have_matplotlib", "NO_MATPLOTLIB"]


#: Why plots are skipped without matplotlib, and how to get it (true from
#: an index and from a clone alike).
NO_MATPLOTLIB = (
    "skipped: matplotlib is not installed (install matplotlib: pip install "
    "matplotlib, or the [plot] extra, pip install -e '.[plot]' in a clone)"
)


def have_matplotlib() -> bool:
    """Whether the ``plot`` extra (matplotlib) is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_name(prefix: str, dataset: str) -> str:
    """The file name of the plot of ``dataset``."""
    return f"{prefix}_{dataset}.png"


def plot_datasets(
    comparison: pd.DataFrame, write: Callable[[str, bytes], object], prefix: str
) -> list[str]:
    """One PNG per dataset, given to ``write(name, png_bytes)``; returns the names.

    Each figure has one panel per individual loss with, for every aggregate,
    our mean ± std beside the published mean ± std. ``write`` decides where
    and how the file is saved (e.g. :meth:`OutputFolder.write`, atomically).
    """
    # A bare Figure (no pyplot): the process's backend and figure registry
    # are the user's, and are left alone.
    from matplotlib.figure import Figure

    names = []
    for dataset, rows in comparison.groupby("dataset", sort=False):
        buffer = io.BytesIO()
        _figure(Figure, dataset, rows).savefig(buffer, format="png", dpi=100)
        name = plot_name(prefix, dataset)
        write(name, buffer.getvalue())
        names.append(name)
    return names


def _figure(figure_class, dataset: str, rows: pd.DataFrame):
    losses = list(dict.fromkeys(rows["loss"]))
    fig = figure_class(figsize=(4.5 * len(losses), 3.4))
    axes = fig.subplots(1, len(losses), squeeze=False)
    for ax, loss in zip(axes[0], losses, strict=True):
        _panel(ax, rows[rows["loss"] == loss])
        ax.set_title(f"{dataset}, {loss} loss")
    metric = rows["metric"].iloc[0]
    axes[0][0].set_ylabel(METRIC_AXES.get(metric, metric))
    axes[0][-1].legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def _panel(ax, rows: pd.DataFrame) -> None:
    x = np.arange(len(rows))
    ax.errorbar(x - 0.12, rows["mean"], yerr=rows["std"], fmt="o", capsize=3,
                label="sktopk")  # fmt: skip
    ax.errorbar(x + 0.12, rows["paper_mean"], yerr=rows["paper_std"], fmt="s",
                capsize=3, label="paper")  # fmt: skip
    ax.set_xticks(x, [get_aggregate(a).label for a in rows["aggregate"]])
    ax.grid(axis="y", alpha=0.3)
