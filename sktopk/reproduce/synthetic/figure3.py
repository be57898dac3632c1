"""Figure 3: the 2-D Gaussian example, each aggregate's learned boundary
beside the theoretical one (w* = [1.111, 1.111], b* = -0.836)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...datasets import make_imbalanced_gaussians
from ...losses import get_aggregate
from ..report import markdown_table
from .gaussian import run_gaussian
from .output import closing_lines, opening_lines, pm
from .settings import COLUMNS, GaussianSettings
from .summary import chosen_text, summarize_chosen

__all__ = ["run", "summarize", "render", "plot", "units", "theory"]


def units(settings: GaussianSettings) -> int:
    """Progress units of :func:`run` (repetitions x columns)."""
    return settings.runs * len(settings.columns)


def theory(settings: GaussianSettings, ratio: float | None = None) -> dict:
    """w*, b* (of the training prior) and the accuracy of that rule on the
    test distribution."""
    ratio = settings.negative_ratios[0] if ratio is None else ratio
    data = make_imbalanced_gaussians(
        **{**settings.data_options(), "n_train": 1, "n_val": 0, "n_test": 0},
        negative_ratio=ratio,
        random_state=0,
    )
    return {
        "coef": data.coef,
        "intercept": data.intercept,
        "accuracy": 100 * data.train_rule_accuracy,
    }


def run(settings: GaussianSettings, seed: int, progress=None) -> pd.DataFrame:
    """Every repetition x column x configuration, with the learned weights."""
    return run_gaussian(settings, seed, progress=progress)


def _geometry(runs: pd.DataFrame, coef: np.ndarray) -> pd.DataFrame:
    """Angle (degrees) between each learned w and w*, and the boundary's
    signed distance from the origin along its normal, -b / |w|."""
    w = runs[[f"w{j}" for j in range(len(coef))]].to_numpy()
    norm = np.linalg.norm(w, axis=1)
    cos = (w @ coef) / np.where(norm > 0, norm, np.nan) / np.linalg.norm(coef)
    out = runs.copy()
    out["angle_degrees"] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    out["offset"] = -runs["intercept"] / np.where(norm > 0, norm, np.nan)
    return out


def summarize(runs: pd.DataFrame, settings: GaussianSettings) -> pd.DataFrame:
    """Per column: accuracy, angle to w*, offset and mean weights of the chosen
    configuration; then the theory row."""
    t = theory(settings)
    geo = _geometry(runs[runs["chosen"].astype(bool)], t["coef"])
    out = summarize_chosen(runs, ["column"])
    stats = geo.groupby("column", sort=False).agg(
        angle_mean=("angle_degrees", "mean"),
        angle_std=("angle_degrees", lambda v: float(np.std(v))),
        offset_mean=("offset", "mean"),
        offset_std=("offset", lambda v: float(np.std(v))),
        w0_mean=("w0", "mean"),
        w1_mean=("w1", "mean"),
        b_mean=("intercept", "mean"),
    )
    out = out.merge(stats.reset_index(), on="column", how="left")
    coef, b = t["coef"], t["intercept"]
    limit = {
        "column": "theory", "label": "theory (w*, b*)", "accuracy_mean": t["accuracy"],
        "angle_mean": 0.0, "offset_mean": -b / np.linalg.norm(coef),
        "w0_mean": coef[0], "w1_mean": coef[1], "b_mean": b,
    }  # fmt: skip
    return pd.concat([out, pd.DataFrame([limit])], ignore_index=True)


def _table(summary: pd.DataFrame) -> str:
    rows = []
    for r in summary.itertuples(index=False):
        limit = r.column == "theory"
        rows.append(
            [
                f"*{r.label}*" if limit else r.label,
                pm(r.accuracy_mean, r.accuracy_std, 2),
                pm(r.angle_mean, r.angle_std, 1),
                pm(r.offset_mean, r.offset_std, 3),
                f"[{r.w0_mean:.3f}, {r.w1_mean:.3f}]",
                f"{r.b_mean:.3f}",
                "Bayes rule" if limit else chosen_text(r),
            ]
        )
    columns = ["column", "accuracy %", "angle to w* (deg)", "offset -b/|w|"]
    columns += ["mean w", "mean b", "chosen"]
    return markdown_table(pd.DataFrame(rows, columns=columns))


def render(summary, runs, settings, *, command, seed, seconds, plot_name) -> str:
    """The Markdown report."""
    title = "Figure 3 of Xia et al. (2024): learned boundaries in 2-D"
    lines = opening_lines(title, command, seed, settings)
    lines += ["", "## Results", "", _legend(settings), "", _table(summary), ""]
    k_table = _k_table(runs, theory(settings)["coef"])
    if k_table:
        lines += ["Every k of the grid (means over repetitions):", "", k_table, ""]
    lines += closing_lines(seconds, plot_name, _notes(summary))
    return "\n".join(lines) + "\n"


def _legend(s: GaussianSettings) -> str:
    return (
        "Per aggregate, the configuration with the best mean validation accuracy, "
        "mean ± std over repetitions: test accuracy (%; validation and test sets "
        f"at the training prior, negative ratio {s.test_negative_ratio:g}), the "
        "angle between the learned w and w*, and the boundary's signed distance "
        "from the origin along its normal (-b / |w|). The last row is the "
        "theory: w* = Sigma^-1 (mu_1 - mu_0) and b* with the log prior odds "
        "(the paper prints w* = [1.111, 1.111] and b* = -0.836). The paper's "
        "Figure 3 gives no numbers; its picture is to be compared with the plot."
    )


def _notes(summary: pd.DataFrame) -> list[str]:
    model = summary[summary["column"] != "theory"]
    t = summary[summary["column"] == "theory"].iloc[0]
    notes = [
        f"- {r.label}: {r.angle_mean:.1f} degrees from w*, offset "
        f"{r.offset_mean:+.3f} (theory {t.offset_mean:+.3f}), accuracy "
        f"{r.accuracy_mean - t.accuracy_mean:+.2f} points from the Bayes rule's "
        "expected accuracy (a finite test set can land above it)."
        for r in model.itertuples(index=False)
    ]
    return notes + [
        "- The logistic model is well specified here (two Gaussians with a "
        "shared covariance have linear log-odds w*.x + b*), so the average "
        "logistic loss estimates w* and b* themselves; the top-k aggregates "
        "weight the largest losses more and move the boundary."
    ]


def _k_table(runs: pd.DataFrame, coef: np.ndarray) -> str:
    """Every k of the top-k aggregates: mean accuracy, angle and offset."""
    uses_k = [("k" in get_aggregate(a).params) for a in runs["aggregate"]]
    geo = _geometry(runs[np.asarray(uses_k, dtype=bool)], coef)
    if geo.empty:
        return ""
    stats = geo.groupby(["column", "kappa"], sort=False).agg(
        accuracy=("accuracy_percent", "mean"),
        val=("val_accuracy_percent", "mean"),
        angle=("angle_degrees", "mean"),
        offset=("offset", "mean"),
    )
    rows = [
        [COLUMNS[c].label, f"{k:g}", f"{r.val:.2f}", f"{r.accuracy:.2f}",
         f"{r.angle:.1f}", f"{r.offset:+.3f}"]
        for (c, k), r in stats.iterrows()
    ]  # fmt: skip
    columns = ["column", "k / n_train", "validation %", "test %", "angle (deg)"]
    return markdown_table(pd.DataFrame(rows, columns=columns + ["offset"]))


def plot(summary: pd.DataFrame, runs: pd.DataFrame, settings: GaussianSettings):
    """The training data of the first repetition with the theoretical
    boundary and, left, each column's learned one (chosen configuration),
    right, STk's at every k of the grid."""
    from matplotlib.figure import Figure

    data = make_imbalanced_gaussians(
        **settings.data_options(), negative_ratio=settings.negative_ratios[0],
        random_state=int(runs["seed"].iloc[0]),
    )  # fmt: skip
    first = runs[runs["run"] == runs["run"].iloc[0]]
    fig = Figure(figsize=(12, 5.6))
    left, right = fig.subplots(1, 2)
    chosen = first[first["chosen"].astype(bool)]
    labels = [COLUMNS[c].label for c in chosen["column"]]
    _panel(left, data, chosen, labels, "each aggregate, chosen configuration")
    stk = first[first["aggregate"] == "stk"]
    labels = [f"STk, k = {k:g} n" for k in stk["kappa"]]
    _panel(right, data, stk, labels, "STk at every k of the grid")
    fig.tight_layout()
    return fig


def _panel(ax, data, rows: pd.DataFrame, labels: list[str], title: str) -> None:
    X, y = data.X_train, data.y_train
    ax.scatter(*X[y == 0].T, s=10, c="0.2", marker="x", lw=0.8, alpha=0.6,
               label="negative (y=0)")  # fmt: skip
    ax.scatter(*X[y == 1].T, s=6, c="0.6", alpha=0.4, label="positive (y=1)")
    lo, hi = np.percentile(X, [0.5, 99.5], axis=0)
    xs = np.linspace(lo[0], hi[0], 2)
    for i, (r, label) in enumerate(zip(rows.itertuples(), labels, strict=True)):
        _line(ax, xs, r.w0, r.w1, r.intercept, f"C{i + 2}", label)
    _line(ax, xs, *data.coef, data.intercept, "k", "theory (w*, b*)", lw=2.5, ls="--")
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ratio = float(np.mean(y == 0))
    ax.set_title(f"2-D Gaussians, {ratio:.0%} negatives: {title}", fontsize="medium")
    ax.legend(fontsize="x-small", loc="lower right")


def _line(ax, xs, w0, w1, b, color, label, lw=1.5, ls="-") -> None:
    """The line w0 x1 + w1 x2 + b = 0 (skipped when w1 = 0)."""
    if w1 == 0:
        return
    ax.plot(xs, -(w0 * xs + b) / w1, color=color, lw=lw, ls=ls, label=label)
