"""The constant-predictor reference of the regression tables.

A model that predicts one number for every sample, fitted to each run's
training targets (the mean for the square loss, the median for the absolute
loss), scored like the trained models: test RMSE on the same splits and the
same target scaling. A model that does not beat it has learned nothing of
the features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .protocol import Protocol
from .splits import REGRESSION_METRICS, TARGET_UNITS, prepare

__all__ = [
    "CONSTANTS",
    "constant_predictor_runs",
    "constant_section",
    "constant_summary",
    "with_reference_rows",
]

#: Individual loss -> the constant that minimises it on the training targets.
CONSTANTS = {"square": ("mean", np.mean), "absolute": ("median", np.median)}


def constant_predictor_runs(
    datasets: list[str], losses: list[str], protocol: Protocol, seed: int
) -> pd.DataFrame:
    """Test RMSE of the constant predictor of every run, dataset and loss.

    The splits and target scaling (``protocol.target_scaling``) are those of
    :func:`prepare`, so run ``g`` here is run ``g`` of the table, in the same
    units. Losses without a known constant are left out.

    Returns
    -------
    DataFrame
        Columns ``dataset, loss, statistic, metric, run, value``; ``metric``
        is the key the models' runs of the dataset carry (it names the units).
    """
    rows = []
    for dataset in datasets:
        prep = prepare(dataset, protocol.runs, seed, "none", protocol.target_scaling)
        for run, (train, test) in enumerate(zip(prep.train, prep.test, strict=True)):
            y_train = prep.target[train].astype(np.float64)
            y_test = prep.target[test].astype(np.float64)
            for loss in losses:
                if loss not in CONSTANTS:
                    continue
                name, fit = CONSTANTS[loss]
                rmse = float(np.sqrt(np.mean((y_test - fit(y_train)) ** 2)))
                rows.append((dataset, loss, name, prep.metric, run, rmse))
    columns = ["dataset", "loss", "statistic", "metric", "run", "value"]
    return pd.DataFrame(rows, columns=columns)


def constant_summary(
    comparison: pd.DataFrame, protocol: Protocol, seed: int
) -> pd.DataFrame:
    """Mean and std over runs of the constant predictor for every regression
    dataset and loss of ``comparison`` (empty for a classification table).

    Returns
    -------
    DataFrame
        Columns ``dataset, loss, statistic, metric, mean, std``.
    """
    key = ["dataset", "loss", "statistic", "metric"]
    cells = comparison[comparison["metric"].isin(REGRESSION_METRICS)]
    if cells.empty:
        return pd.DataFrame(columns=[*key, "mean", "std"])
    datasets = list(dict.fromkeys(cells["dataset"]))
    losses = list(dict.fromkeys(cells["loss"]))
    const = constant_predictor_runs(datasets, losses, protocol, seed)
    if const.empty:
        return pd.DataFrame(columns=[*key, "mean", "std"])
    summary = const.groupby(key, sort=False)["value"]
    summary = summary.agg(["mean", lambda v: float(np.std(v))]).reset_index()
    summary.columns = [*key, "mean", "std"]
    return summary


def with_reference_rows(
    comparison: pd.DataFrame, summary: pd.DataFrame
) -> pd.DataFrame:
    """``comparison`` with a row ``constant (mean)`` or ``constant (median)``
    after the aggregates of each regression dataset and loss (no paper number,
    no configuration)."""
    if summary.empty:
        return comparison
    rows = summary.assign(aggregate="constant (" + summary["statistic"] + ")")
    rows = rows.drop(columns="statistic")
    table = comparison.assign(_pos=np.arange(len(comparison), dtype=float))
    last = table.groupby(["dataset", "loss"])["_pos"].max()
    keys = pd.MultiIndex.from_frame(rows[["dataset", "loss"]])
    rows["_pos"] = last.reindex(keys).to_numpy() + 0.5
    if "table" in table:
        rows["table"] = table["table"].iloc[0]
    out = pd.concat([table, rows.dropna(subset=["_pos"])], ignore_index=True)
    out = out.sort_values("_pos", kind="stable").drop(columns="_pos")
    return out.reset_index(drop=True)


def constant_section(
    comparison: pd.DataFrame,
    protocol: Protocol,
    seed: int,
    summary: pd.DataFrame | None = None,
) -> list[str]:
    """Markdown lines comparing each regression cell with the constant
    predictor (none for a classification table); ``summary`` is
    :func:`constant_summary`'s, computed here if not given."""
    cells = comparison[comparison["metric"].isin(REGRESSION_METRICS)]
    if summary is None:
        summary = constant_summary(comparison, protocol, seed)
    if cells.empty or summary.empty:
        return []
    lines = [
        "## Reference: a constant predictor",
        "",
        "The training-target mean (square loss) or median (absolute loss) of "
        "each run, predicted for every test sample, scored as the models are "
        "(test RMSE, same splits and target scaling, so in the units given for "
        'each dataset), mean ± std over runs; the rows "constant" of the '
        "results table. A cell that does not beat it has learned nothing of the "
        "features.",
        "",
    ]
    lines += [_line(r, cells) for r in summary.itertuples(index=False)]
    if any("no better than" in line for line in lines):
        lines += [
            "",
            "Where the paper's Average is no better than the constant, its "
            "number is what a model that learned nothing of the features scores "
            "under our target scaling: either its models did not fit, or its "
            "targets were scaled otherwise than ours.",
        ]
    return lines


def _line(r, cells: pd.DataFrame) -> str:
    mine = cells[(cells["dataset"] == r.dataset) & (cells["loss"] == r.loss)]
    best = mine.loc[mine["mean"].idxmin()]
    text = (
        f"- **{r.dataset}** ({r.loss}): constant ({r.statistic}) "
        f"{r.mean:.4f} ± {r.std:.4f}; our best, {best['aggregate']}, "
        f"{best['mean']:.4f}"
    )
    paper = mine[mine["aggregate"] == "average"]["paper_mean"]
    if len(paper) and pd.notna(paper.iloc[0]):
        p = float(paper.iloc[0])
        verdict = "no better than" if p >= r.mean - r.std else "better than"
        text += f"; the paper's Average {p:.4f}, {verdict} the constant"
    return f"{text} (RMSE on {TARGET_UNITS[r.metric]})."
