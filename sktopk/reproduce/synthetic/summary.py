"""Summaries of the Gaussian runs: the chosen configuration of each column,
its mean ± std over repetitions, and what other learning rates would give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...losses import get_aggregate
from .settings import COLUMNS

__all__ = ["summarize_chosen", "by_learning_rate", "chosen_text"]


def _std(values: pd.Series) -> float:
    return float(np.std(values))


def summarize_chosen(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Mean and std (ddof=0) over repetitions of the chosen configuration,
    per group of ``by`` (e.g. ``["negative_ratio", "column"]``)."""
    chosen = runs[runs["chosen"].astype(bool)]
    out = chosen.groupby(by, sort=False).agg(
        runs=("run", "count"),
        accuracy_mean=("accuracy_percent", "mean"),
        accuracy_std=("accuracy_percent", _std),
        para_f1_mean=("para_f1", "mean"),
        para_f1_std=("para_f1", _std),
        support_mean=("support", "mean"),
        epochs_mean=("epochs", "mean"),
        diverged=("diverged", "sum"),
        seconds_per_model=("seconds_per_model", "first"),
        kappa=("kappa", "first"),
        C=("C", "first"),
        lr=("lr", "first"),
        aggregate=("aggregate", "first"),
    )
    out = out.reset_index()
    out.insert(out.columns.get_loc("column") + 1, "label", _labels(out["column"]))
    return out


def _labels(columns: pd.Series) -> list[str]:
    return [COLUMNS[c].label if c in COLUMNS else c for c in columns]


def by_learning_rate(runs: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group of ``by`` and learning rate: the test accuracy and epochs
    (means over repetitions) of the configuration with the best mean
    validation accuracy among those of that learning rate."""
    keys = by + ["lr", "config"]
    values = ["val_accuracy_percent", "accuracy_percent", "epochs"]
    means = runs.groupby(keys, sort=False)[values]
    means = means.mean().reset_index()
    best = means.loc[
        means.groupby(by + ["lr"], sort=False)["val_accuracy_percent"].idxmax()
    ]
    return best.drop(columns="config").reset_index(drop=True)


def chosen_text(row) -> str:
    """The chosen configuration in words (k as a fraction of n_train)."""
    uses_k = "k" in get_aggregate(row.aggregate).params
    parts = [f"k={row.kappa:g}"] if uses_k else []
    return " ".join(parts + [f"C={row.C:g}", f"lr={row.lr:g}"])
