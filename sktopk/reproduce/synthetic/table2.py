"""Table 2: accuracy, support recovery and time on the d = 200 Gaussian data,
with the Bayes-optimal rule as the limit row."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..report import markdown_table
from .gaussian import run_gaussian
from .output import closing_lines, num, opening_lines, pm
from .published import published_value
from .settings import GaussianSettings
from .summary import by_learning_rate, chosen_text, summarize_chosen

__all__ = ["run", "summarize", "render", "plot", "units"]


def units(settings: GaussianSettings) -> int:
    """Progress units of :func:`run` (repetitions x columns)."""
    return settings.runs * len(settings.columns)


def run(settings: GaussianSettings, seed: int, progress=None) -> pd.DataFrame:
    """Every repetition x column x configuration (one negative ratio)."""
    return run_gaussian(settings, seed, progress=progress)


def summarize(runs: pd.DataFrame, settings: GaussianSettings) -> pd.DataFrame:
    """The chosen configuration of each column beside the paper's numbers,
    then the limit rows of the theory."""
    out = summarize_chosen(runs, ["column"])
    for key, row in (("accuracy", "accuracy_percent"), ("para_f1", "para_f1")):
        out[f"paper_{key}"] = [
            published_value("table2", row, c)[0] for c in out["column"]
        ]
    out["paper_seconds"] = [
        published_value("table2", "time_seconds", c)[0] for c in out["column"]
    ]
    return pd.concat([out, _limits(runs)], ignore_index=True)


def _limits(runs: pd.DataFrame) -> pd.DataFrame:
    """The Bayes rule (w*, b* of the test prior) and the Bayes rule of the
    training prior, both with the support of w*."""
    first = runs.iloc[0]
    support = int(first["true_support"])
    per_run = runs.drop_duplicates("run")["bayes_rule_test_accuracy_percent"]
    rows = [
        ("bayes", "Bayes-optimal rule (w*, b* of the test prior)",
         first["bayes_accuracy_percent"], float(np.std(per_run))),
        ("train_rule", "w*, b* of the training prior",
         first["train_rule_accuracy_percent"], np.nan),
    ]  # fmt: skip
    return pd.DataFrame(
        {
            "column": [r[0] for r in rows],
            "label": [r[1] for r in rows],
            "accuracy_mean": [r[2] for r in rows],
            "accuracy_std": [r[3] for r in rows],
            "para_f1_mean": 1.0,
            "support_mean": support,
        }
    )


def _table(summary: pd.DataFrame) -> str:
    rows = []
    for r in summary.itertuples(index=False):
        limit = r.column in ("bayes", "train_rule")
        rows.append(
            [
                f"*{r.label}*" if limit else r.label,
                pm(r.accuracy_mean, r.accuracy_std, 2),
                num(r.paper_accuracy, 2),
                pm(r.para_f1_mean, getattr(r, "para_f1_std", np.nan), 3),
                num(r.paper_para_f1, 4),
                f"{r.support_mean:.1f}",
                "" if limit else f"{r.seconds_per_model:.2f}",
                num(r.paper_seconds, 1),
                "theory" if limit else chosen_text(r),
            ]
        )
    columns = ["column", "accuracy % (ours)", "paper", "ParaF1 (ours)", "paper"]
    columns += ["support size", "s per model (ours)", "paper s", "chosen"]
    return markdown_table(pd.DataFrame(rows, columns=columns))


def render(summary, runs, settings, *, command, seed, seconds, plot_name) -> str:
    """The Markdown report."""
    title = "Table 2 of Xia et al. (2024): imbalanced Gaussian data"
    lines = opening_lines(title, command, seed, settings)
    lines += ["", "## Results", "", _legend(summary), "", _table(summary), ""]
    lines += closing_lines(seconds, plot_name, _notes(summary, runs, settings))
    return "\n".join(lines) + "\n"


def _legend(summary: pd.DataFrame) -> str:
    support = int(summary.loc[summary["column"] == "bayes", "support_mean"].iloc[0])
    return (
        "Test accuracy (%, on the 1:1 test set) and ParaF1 (the F1 score of the "
        "support of the learned w against that of w*, exact zeros) of the "
        "configuration with the best mean validation accuracy, mean ± std over "
        'repetitions; "support size" is the mean number of non-zero weights '
        f'(w* has {support}); "s per model" is the training time of one model, '
        "measured as the wall time of the batch that trained all repetitions "
        "and configurations of a column together, divided by their number. The "
        "paper's time is its training time per model on its machine. The last "
        "two rows are the theory: the Bayes-optimal rule on the test "
        "distribution (with the std of its accuracy over our test sets), and "
        "the Bayes rule of the training distribution, the best a model fitted "
        "to the 8:2 training data without reweighting can do on the 1:1 test set."
    )


def _notes(summary: pd.DataFrame, runs: pd.DataFrame, s: GaussianSettings) -> list[str]:
    model = summary[~summary["column"].isin(["bayes", "train_rule"])]
    bayes = summary.loc[summary["column"] == "bayes", "accuracy_mean"].iloc[0]
    best = model.loc[model["accuracy_mean"].idxmax()]
    paper_best = model["paper_accuracy"].max()
    notes = [
        f"- Our best column, {best['label']}, reaches {best['accuracy_mean']:.1f}% "
        f"(the Bayes limit is {bayes:.1f}%); the paper's columns span "
        f"{model['paper_accuracy'].min():.1f}-{paper_best:.1f}%, far below the "
        "limit (the paper gives neither its learning rate nor its penalty "
        "strength).",
        f"- Columns whose accuracy differs by less than about two stds over "
        f"{int(model['runs'].min())} repetitions are not told apart by this run.",
    ]
    return notes + _lr_note(runs, s)


def _lr_note(runs: pd.DataFrame, s: GaussianSettings) -> list[str]:
    if len(s.lr) < 2:
        return []
    per_lr = by_learning_rate(runs, ["column"]).groupby("lr")
    means = per_lr[["accuracy_percent", "epochs"]].mean()
    parts = [
        f"{r.accuracy_percent:.1f}% at lr = {lr:g} (after {r.epochs:.0f} epochs "
        "on average)"
        for lr, r in means.iterrows()
    ]
    return [
        "- Restricted to one Adam learning rate, the configuration with the best "
        "validation accuracy reaches, averaged over the columns, "
        + ", ".join(parts)
        + ". Adam's default is 0.001."
    ]


def plot(summary: pd.DataFrame, runs: pd.DataFrame, settings: GaussianSettings):
    """Accuracy and ParaF1 per column, ours and the paper's, with the limits."""
    from matplotlib.figure import Figure

    model = summary[~summary["column"].isin(["bayes", "train_rule"])]
    limits = summary.set_index("column")
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    x = np.arange(len(model))
    for ax, key, title in (
        (axes[0], "accuracy", "test accuracy (%)"),
        (axes[1], "para_f1", "ParaF1"),
    ):
        ax.bar(x - 0.2, model[f"{key}_mean"], 0.4, yerr=model[f"{key}_std"],
               capsize=3, label="sktopk")  # fmt: skip
        ax.bar(x + 0.2, model[f"paper_{key}"], 0.4, label="paper")
        ax.axhline(limits.loc["bayes", f"{key}_mean"], color="k", ls="--", lw=1,
                   label="Bayes rule")  # fmt: skip
        ax.set_xticks(x, model["label"], rotation=35, ha="right", fontsize="small")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(50, 100)
    axes[1].set_ylim(0, 1.05)
    axes[1].legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig
