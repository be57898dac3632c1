"""The published numbers of the synthetic experiments (Section 4 of Xia et
al., 2024), shipped with the package: Tables 1 and 2 as printed, Figure 4
read from the plotted points (approximate)."""

from __future__ import annotations

import io
from functools import lru_cache
from importlib import resources

import pandas as pd

__all__ = ["load_published_synthetic", "published_value"]

FILE = "published_synthetic.csv"


@lru_cache(maxsize=1)
def _read() -> pd.DataFrame:
    text = resources.files(__package__).joinpath(FILE).read_text("utf-8")
    return pd.read_csv(io.StringIO(text))


def load_published_synthetic(experiment: str | None = None) -> pd.DataFrame:
    """The published rows (columns ``experiment, row, column, value, std,
    note``), of one experiment ("table1", "table2", "figure4") or all.

    Examples
    --------
    >>> from sktopk.reproduce.synthetic import load_published_synthetic
    >>> load_published_synthetic("table2").query(
    ...     "row == 'accuracy_percent' and column == 'stk_srelu'")["value"].item()
    76.104
    """
    frame = _read().copy()
    if experiment is not None:
        frame = frame[frame["experiment"] == experiment].reset_index(drop=True)
    return frame


def published_value(experiment: str, row: str, column: str) -> tuple[float, float]:
    """The published ``(value, std)`` of one cell; NaNs where the paper has none."""
    frame = load_published_synthetic(experiment)
    hit = frame[(frame["row"] == row) & (frame["column"] == column)]
    if hit.empty:
        return float("nan"), float("nan")
    return float(hit["value"].iloc[0]), float(hit["std"].iloc[0])
