"""The published numbers of Xia et al. (2024), shipped with the package."""

from __future__ import annotations

import io
from functools import lru_cache
from importlib import resources

import pandas as pd

__all__ = ["load_published", "published_table"]

PUBLISHED_FILE = "published_results.csv"
COLUMNS = ("dataset", "task", "loss", "aggregate", "metric", "mean", "std", "source")


@lru_cache(maxsize=1)
def _read() -> pd.DataFrame:
    text = resources.files(__package__).joinpath(PUBLISHED_FILE).read_text("utf-8")
    frame = pd.read_csv(io.StringIO(text))
    frame["table"] = frame["source"].str.extract(r"Table\s+(\d+)")[0].astype(int)
    return frame


def load_published() -> pd.DataFrame:
    """Every published mean and std, one row per (table, dataset, loss, aggregate).

    Returns
    -------
    frame : DataFrame
        Columns ``dataset, task, loss, aggregate, metric, mean, std, source``
        and ``table`` (the table number, read from ``source``). Error rates are
        in percent; regression RMSEs are on targets scaled to [0, 1].

    Examples
    --------
    >>> from sktopk.reproduce import load_published
    >>> sorted(load_published()["table"].unique().tolist())
    [3, 4, 6]
    """
    return _read().copy()


def published_table(number: int) -> pd.DataFrame:
    """The published rows of one table (an empty frame for an unknown number)."""
    frame = load_published()
    return frame[frame["table"] == number].reset_index(drop=True)
