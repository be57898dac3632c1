"""Figure 4: accuracy and support recovery against the negative ratio of the
training set, for Average, ATk and STk."""

from __future__ import annotations

import pandas as pd

from ..report import markdown_table
from .gaussian import run_gaussian
from .output import closing_lines, num, opening_lines, pm
from .published import published_value
from .settings import COLUMNS, GaussianSettings
from .summary import chosen_text, summarize_chosen

__all__ = ["run", "summarize", "render", "plot", "units"]

#: The paper's column names in ``published_synthetic.csv``.
_PAPER = {"average": "average", "atk": "atk", "stk_srelu": "stk"}


def units(settings: GaussianSettings) -> int:
    """Progress units of :func:`run` (ratios x repetitions x columns)."""
    return len(settings.negative_ratios) * settings.runs * len(settings.columns)


def run(settings: GaussianSettings, seed: int, progress=None) -> pd.DataFrame:
    """Every ratio x repetition x column x configuration."""
    return run_gaussian(settings, seed, progress=progress)


def _paper(ratio: float, column: str, row: str) -> float:
    name = _PAPER.get(column, column)
    return published_value("figure4", f"{row}@{ratio:g}", name)[0]


def summarize(runs: pd.DataFrame, settings: GaussianSettings) -> pd.DataFrame:
    """The chosen configuration per (ratio, column) beside the paper's points,
    with the limits of the theory at each ratio."""
    out = summarize_chosen(runs, ["negative_ratio", "column"])
    out = out.sort_values("negative_ratio", ascending=False, kind="stable")
    out = out.reset_index(drop=True)
    pairs = list(zip(out["negative_ratio"], out["column"], strict=True))
    out["paper_accuracy"] = [_paper(r, c, "accuracy_percent") for r, c in pairs]
    out["paper_para_f1"] = [_paper(r, c, "para_f1") for r, c in pairs]
    limits = runs.groupby("negative_ratio", sort=False)[
        ["bayes_accuracy_percent", "train_rule_accuracy_percent"]
    ].first()
    return out.merge(limits.reset_index(), on="negative_ratio", how="left")


def _table(summary: pd.DataFrame) -> str:
    rows = [
        [
            f"{r.negative_ratio:g}",
            r.label,
            pm(r.accuracy_mean, r.accuracy_std, 2),
            num(r.paper_accuracy, 1),
            pm(r.para_f1_mean, r.para_f1_std, 3),
            num(r.paper_para_f1, 2),
            f"{r.support_mean:.1f}",
            f"{r.train_rule_accuracy_percent:.2f}",
            chosen_text(r),
        ]
        for r in summary.itertuples(index=False)
    ]
    columns = ["negative ratio", "column", "accuracy % (ours)", "paper"]
    columns += ["ParaF1 (ours)", "paper", "support size", "w*, b* train prior %"]
    return markdown_table(pd.DataFrame(rows, columns=columns + ["chosen"]))


def render(summary, runs, settings, *, command, seed, seconds, plot_name) -> str:
    """The Markdown report."""
    title = "Figure 4 of Xia et al. (2024): accuracy against imbalance"
    lines = opening_lines(title, command, seed, settings)
    lines += ["", "## Results", "", _legend(summary), "", _table(summary), ""]
    lines += closing_lines(seconds, plot_name, _notes(summary))
    return "\n".join(lines) + "\n"


def _legend(summary: pd.DataFrame) -> str:
    bayes = summary["bayes_accuracy_percent"].iloc[0]
    return (
        "Test accuracy (%, 1:1 test set) and ParaF1 of the configuration with the "
        "best mean validation accuracy at each negative ratio of the training "
        "set, mean ± std over repetitions. The paper's values are read from "
        "its plotted points (approximate; its Figure 4 has no Average point at "
        "0.001). The Bayes-optimal accuracy on the test set is "
        f'{bayes:.2f}% at every ratio; "w*, b* train prior" is the accuracy '
        "of the Bayes rule of the training distribution on the test set, the "
        "best a model fitted to the training data without reweighting can do."
    )


def _notes(summary: pd.DataFrame) -> list[str]:
    notes = []
    for ratio, rows in summary.groupby("negative_ratio", sort=False):
        best = rows.loc[rows["accuracy_mean"].idxmax()]
        spread = rows["accuracy_mean"].max() - rows["accuracy_mean"].min()
        noise = rows["accuracy_std"].max()
        verdict = "within the noise" if spread <= 2 * noise else "beyond the noise"
        notes.append(
            f"- Negative ratio {ratio:g}: best {best['label']} "
            f"({best['accuracy_mean']:.1f}%); the columns span {spread:.1f} points, "
            f"{verdict} (largest std {noise:.1f})."
        )
    return notes


def plot(summary: pd.DataFrame, runs: pd.DataFrame, settings: GaussianSettings):
    """Accuracy and ParaF1 against the negative ratio (log scale)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    for i, (name, rows) in enumerate(summary.groupby("column", sort=False)):
        color = f"C{i}"
        label = COLUMNS[name].label
        for ax, key in zip(axes, ("accuracy", "para_f1"), strict=True):
            ax.errorbar(rows["negative_ratio"], rows[f"{key}_mean"],
                        yerr=rows[f"{key}_std"], color=color, marker="o",
                        capsize=3, label=f"{label} (sktopk)")  # fmt: skip
            ax.plot(rows["negative_ratio"], rows[f"paper_{key}"], color=color, ls=":",
                    marker="s", mfc="none", label=f"{label} (paper)")  # fmt: skip
    limits = summary.drop_duplicates("negative_ratio").sort_values("negative_ratio")
    axes[0].plot(limits["negative_ratio"], limits["train_rule_accuracy_percent"],
                 "k--", lw=1, label="w*, b* of the training prior")  # fmt: skip
    axes[0].axhline(limits["bayes_accuracy_percent"].iloc[0], color="k", lw=1,
                    label="Bayes-optimal")  # fmt: skip
    for ax, title in zip(axes, ("test accuracy (%)", "ParaF1"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("negative ratio of the training set")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(0, 1.05)
    axes[0].legend(fontsize="x-small", loc="lower right")
    fig.tight_layout()
    return fig
