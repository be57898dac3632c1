"""Summaries of the runs, the side-by-side table and the Markdown report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..losses import get_aggregate, names
from .protocol import Protocol
from .published import load_published
from .reference import constant_section, constant_summary, with_reference_rows
from .significance import significance_section
from .splits import (
    METRIC_WORDS,
    REGRESSION_METRICS,
    UNSCALED_RMSE,
    paper_scaled_datasets,
)

__all__ = ["summarize", "compare", "format_table", "markdown_table", "render_report"]

KEY = ["table", "dataset", "loss", "aggregate"]
#: A difference beyond this many published stds is called out in the notes.
THRESHOLD = 2.0


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (numpy's, ddof=0) over runs of each cell, and its choice.

    The chosen configuration is the same for every run of a cell (it is
    selected on the mean validation score over runs).
    """
    if runs.empty:
        cols = KEY + ["metric", "runs", "mean", "std", "k", "C", "lr", "delta"]
        return pd.DataFrame(columns=cols)
    grouped = runs.groupby(KEY, sort=False)
    out = grouped.agg(
        metric=("metric", "first"),
        runs=("run", "count"),
        mean=("value", "mean"),
        std=("value", lambda v: float(np.std(v))),
        k=("k", "first"),
        C=("C", "first"),
        lr=("lr", "first"),
        delta=("delta", "first"),
    )
    return out.reset_index()


def compare(summary: pd.DataFrame) -> pd.DataFrame:
    """Join our summary with the published numbers of the same cells.

    Adds ``paper_mean``, ``paper_std`` (NaN where the paper has no number),
    ``paper_metric`` and ``diff_std`` = (ours - paper) / paper std, NaN where
    the two are in different units (sinc's RMSE on its targets as generated,
    the paper's on targets scaled to [0, 1]).
    """
    pub = load_published()[KEY + ["metric", "mean", "std"]]
    pub = pub.rename(
        columns={"metric": "paper_metric", "mean": "paper_mean", "std": "paper_std"}
    )
    summary = summary.astype({"table": int})
    out = summary.merge(pub, on=KEY, how="left")
    diff = (out["mean"] - out["paper_mean"]) / out["paper_std"]
    out["diff_std"] = diff.where(~_units_differ(out))
    order = {a: i for i, a in enumerate(names("aggregate"))}
    out["_order"] = out["aggregate"].map(order)
    out = out.sort_values(["table", "dataset", "loss", "_order"], kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


def _pm(mean: float, std: float, digits: int) -> str:
    if pd.isna(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_table(comparison: pd.DataFrame) -> pd.DataFrame:
    """The comparison as strings: ours and the paper's mean ± std, the
    difference in published stds and the chosen configuration."""
    rows = []
    units_differ = _units_differ(comparison)
    for r, differ in zip(comparison.itertuples(index=False), units_differ, strict=True):
        digits = 2 if r.metric == "error_rate_percent" else 4
        rows.append(
            {
                "dataset": r.dataset,
                "loss": r.loss,
                "aggregate": r.aggregate,
                "ours": _pm(r.mean, r.std, digits),
                "paper": _pm(r.paper_mean, r.paper_std, digits),
                "diff / paper std": _diff(r.diff_std, differ),
                "chosen": _chosen(r),
            }
        )
    return pd.DataFrame(rows)


def _units_differ(comparison: pd.DataFrame) -> pd.Series:
    """Rows whose published number is in other units than ours."""
    if "paper_metric" not in comparison:
        return pd.Series(False, index=comparison.index)
    has_paper = comparison["paper_metric"].notna()
    return has_paper & (comparison["metric"] != comparison["paper_metric"])


def _diff(value: float, units_differ: bool = False) -> str:
    if units_differ:
        return "other units"
    return "n/a" if pd.isna(value) else f"{value:+.1f}"


def _chosen(r) -> str:
    if r.aggregate.startswith("constant"):
        return "no features"
    parts = []
    uses = get_aggregate(r.aggregate).params
    if "k" in uses:
        parts.append(f"k={int(r.k)}")
    parts += [f"C={r.C:g}", f"lr={r.lr:g}"]
    if "delta" in uses:
        parts.append(f"delta={r.delta:g}")
    return " ".join(parts)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of the frame's string values."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in frame.to_numpy()]
    return "\n".join([header, rule, *body])


def outliers(comparison: pd.DataFrame) -> pd.DataFrame:
    """Cells whose mean is more than THRESHOLD published stds from the paper's."""
    return comparison[comparison["diff_std"].abs() > THRESHOLD]


def render_report(
    comparison: pd.DataFrame,
    protocol: Protocol,
    *,
    title: str,
    command: str,
    seed: int,
    timing: dict[str, str],
    plots: list[str],
    plot_message: str | None = None,
    runs: pd.DataFrame | None = None,
    reference: pd.DataFrame | None = None,
    made_by: list[str] | None = None,
) -> str:
    """The Markdown report: settings, table, timing, plots and notes; with
    ``runs``, also STk's paired comparison with each baseline; for regression
    cells, the constant predictor's scores beside them (``reference``, from
    :func:`.reference.constant_summary`, computed here if not given).
    ``made_by`` lists the commands that made the runs, when they are not
    ``command`` alone (None: not said)."""
    settings = {"command": f"`{command}`"}
    if made_by is not None and made_by != [command]:
        settings["runs made by"] = _commands(made_by)
    settings |= {"seed": str(seed)} | protocol.describe()
    settings["protocol identity"] = protocol.identity(seed)
    lines = [f"# {title}", "", "## Settings", ""]
    lines += [f"- **{k}**: {v}" for k, v in settings.items()]
    if reference is None:
        reference = constant_summary(comparison, protocol, seed)
    table = with_reference_rows(comparison, reference)
    lines += ["", "## Results", "", _legend(comparison, reference), ""]
    lines += [markdown_table(format_table(table)), "", "## Time", ""]
    lines += [f"- **{k}**: {v}" for k, v in timing.items()]
    lines += ["", "## Plots", ""]
    lines += [f"![{p}]({p})" for p in plots] or [plot_message or "none"]
    if runs is not None and not runs.empty:
        lines += ["", *significance_section(runs)]
    words = constant_section(comparison, protocol, seed, reference)
    if words:
        lines += ["", *words]
    lines += ["", "## Notes", "", *_notes(comparison, protocol)]
    return "\n".join(lines) + "\n"


def _commands(commands: list[str]) -> str:
    """The commands that made the runs, for the settings section."""
    if not commands:
        return "not recorded (the runs were in runs.csv before this command)"
    return "; ".join(f"`{c}`" for c in commands)


def _legend(comparison: pd.DataFrame, reference: pd.DataFrame) -> str:
    text = (
        f"Mean ± std over runs of the {_units(comparison)} (lower is better), for "
        "the configuration with the best mean validation score over runs. "
        '"diff / paper std" is (ours - paper) / paper std; "chosen" is the '
        "selected configuration (k in samples of the training split)."
    )
    if reference.empty:
        return text
    return text + (
        ' The rows "constant" are a reference, not a model: the training-target '
        "mean (square loss) or median (absolute loss) predicted for every test "
        "sample, on the same splits."
    )


def _units(comparison: pd.DataFrame) -> str:
    """What the numbers are, naming the datasets of each regression unit:
    e.g. "test RMSE on ... [0, 1] ... (housing, abalone) and test RMSE on the
    targets as generated, not scaled (sinc)"."""
    metrics = comparison.groupby("metric", sort=False)["dataset"].unique()
    if len(metrics) == 1 and metrics.index[0] not in REGRESSION_METRICS:
        return METRIC_WORDS.get(metrics.index[0], metrics.index[0])
    parts = [
        f"{METRIC_WORDS.get(metric, metric)} ({', '.join(datasets)})"
        for metric, datasets in metrics.items()
    ]
    return " and ".join(parts)


def _notes(comparison: pd.DataFrame, protocol: Protocol) -> list[str]:
    notes = [
        "- Selection uses the validation split only; the test split is scored "
        "once, for reporting.",
        f"- Early-stopping rule of this table: {protocol.describe()['early stopping']}"
        ".",
    ]
    notes += _unscaled_note(comparison)
    off = outliers(comparison)
    if off.empty:
        notes.append(
            f"- Every cell with a published number is within {THRESHOLD:g} "
            "published stds of it."
        )
        return notes
    cells = ", ".join(
        f"{r.dataset}/{r.loss}/{r.aggregate} ({r.diff_std:+.1f})"
        for r in off.itertuples(index=False)
    )
    notes.append(f"- More than {THRESHOLD:g} published stds from the paper: {cells}.")
    smaller = (
        ""
        if protocol.name == "paper"
        else "this protocol's smaller grids, runs and epoch limit; "
    )
    notes.append(
        f"  Likely causes, in general: {smaller}the early-stopping rule (the "
        "paper's step rule stops at the first evaluation without improvement; "
        "the per-epoch rule trains longer); what the paper does not state (feature "
        "and target scaling, splits, initialisation); for the maximum loss, that "
        "it is the maximum over each minibatch of 16 and that early stopping rolls "
        "back to the best validation point, so it cannot end near chance. The "
        "committed results of the sktopk repository (docs/results/README.md) "
        "discuss each such cell."
    )
    return notes


def _unscaled_note(comparison: pd.DataFrame) -> list[str]:
    """A note on the regression datasets whose targets were not scaled."""
    unscaled = comparison.loc[comparison["metric"] == UNSCALED_RMSE]
    if unscaled.empty:
        return []
    names = ", ".join(dict.fromkeys(unscaled["dataset"]))
    scaled = ", ".join(paper_scaled_datasets())
    return [
        f"- Targets not scaled ({names}): the paper lists only {scaled} as "
        "min-max scaled to [0, 1], so these RMSEs are on the targets as "
        "generated; the paper's numbers are shown as published, not compared "
        '("other units"). `--target-scaling all` scales them too.'
    ]
