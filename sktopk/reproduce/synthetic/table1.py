"""Table 1: the time to sum the top 5 of 10,000 N(0, 1) samples."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from ...engine import one_thread
from ..report import markdown_table
from ..splits import run_seeds
from .output import closing_lines, opening_lines, pm
from .published import published_value
from .settings import TimingSettings
from .topk_sum import (
    bubble_sort_sum,
    exact_sum,
    heap_sort_sum,
    prepare_inputs,
    threshold_descent,
    user_calls,
)

__all__ = ["run", "summarize", "render", "plot", "units"]

#: The paper's methods: name -> (label, the paper's column).
PAPER_METHODS = {
    "bubble_sort": ("BubbleSort (pure Python)", "BubbleSort"),
    "heap_sort": ("HeapSort (pure Python)", "HeapSort"),
    "atk_descent": ("ATk (descent on the threshold)", "ATk"),
    "stk_descent": ("STk (descent on the threshold, SReLU)", "STk"),
}
#: sktopk and torch calls, also timed on one torch thread (suffix ONE_THREAD).
TORCH_CALLS = ("torch_topk", "sktopk_atk", "sktopk_stk")
ONE_THREAD = "_1thread"
RUN_COLUMNS = [
    "identity", "method", "kind", "run", "seed", "n", "k", "seconds", "value",
    "exact", "abs_error", "iterations",
]  # fmt: skip


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _paper_methods(s: TimingSettings, x: np.ndarray, exact: float, run: int):
    """(method, n, seconds, value, iterations) of the paper's four methods."""
    rows = []
    if run < s.bubble_runs:
        head = x[: s.bubble_n]
        sec, val = _timed(lambda: bubble_sort_sum(head.tolist(), s.k))
        rows.append(("bubble_sort", len(head), sec, val, np.nan))
    values = x.tolist()
    sec, val = _timed(lambda: heap_sort_sum(values, s.k))
    rows.append(("heap_sort", len(x), sec, val, np.nan))
    for name, delta in (("atk_descent", None), ("stk_descent", s.delta)):
        sec, (val, its) = _timed(
            lambda d=delta: threshold_descent(
                x, s.k, exact, delta=d, lr=s.lr, tol=s.tol, max_iter=s.max_iter
            )
        )
        rows.append((name, len(x), sec, val, its))
    return rows


def _user_methods(s: TimingSettings, x: np.ndarray):
    """The user's calls with torch's thread count as it is, and the torch
    ones also on one thread (small inputs can lose time to threading)."""
    inputs = prepare_inputs(x, s.k)
    rows = []
    for name, (_, call) in user_calls(s.k, s.delta).items():
        rows.append((name, len(x), *_time_call(call, inputs), np.nan))
        if name in TORCH_CALLS and torch.get_num_threads() > 1:
            with one_thread():
                found = _time_call(call, inputs)
            rows.append((name + ONE_THREAD, len(x), *found, np.nan))
    return rows


def _time_call(call, inputs) -> tuple[float, float]:
    call(inputs)  # warm-up: first-call costs are not what a loop pays
    return _timed(lambda: call(inputs))


def run(settings: TimingSettings, seed: int, progress=None) -> pd.DataFrame:
    """Time every method on ``settings.runs`` fresh samples; one row per
    (method, run)."""
    s = settings
    rows = []
    for run_, run_seed in enumerate(run_seeds(seed, "table1", s.runs)):
        x = np.random.default_rng(run_seed).standard_normal(s.n)
        exact = exact_sum(x, s.k)
        for kind, found in (
            ("paper", _paper_methods(s, x, exact, run_)),
            ("user", _user_methods(s, x)),
        ):
            for method, n, sec, val, its in found:
                truth = exact if n == s.n else exact_sum(x[:n], s.k)
                rows.append(
                    [s.identity(seed), method, kind, run_, run_seed, n, s.k, sec,
                     float(val), truth, abs(float(val) - truth), its]
                )  # fmt: skip
        if progress is not None:
            progress(1)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def summarize(runs: pd.DataFrame, settings: TimingSettings) -> pd.DataFrame:
    """Mean and std (ddof=0) of the seconds per method, beside the paper's;
    the bubble sort also scaled to ``settings.n`` (quadratic time)."""
    labels = {k: v[0] for k, v in PAPER_METHODS.items()}
    for name, (label, _) in user_calls(settings.k, settings.delta).items():
        labels |= {name: label, name + ONE_THREAD: f"{label}, 1 thread"}
    out = []
    for method, rows in runs.groupby("method", sort=False):
        column = PAPER_METHODS.get(method, (None, ""))[1]
        paper_mean, paper_std = published_value("table1", "time_seconds", column)
        row = {
            "method": method, "label": labels[method], "kind": rows["kind"].iloc[0],
            "runs": len(rows), "k": int(rows["k"].iloc[0]), "n": int(rows["n"].iloc[0]),
            "mean_seconds": rows["seconds"].mean(),
            "std_seconds": float(np.std(rows["seconds"])),
            "mean_iterations": rows["iterations"].mean(),
            "max_abs_error": rows["abs_error"].max(),
            "paper_mean": paper_mean, "paper_std": paper_std,
        }  # fmt: skip
        if method == "bubble_sort" and row["n"] != settings.n:
            out.append(row | {"paper_mean": np.nan, "paper_std": np.nan})
            row = _scaled(row, settings.n)
        out.append(row)
    return pd.DataFrame(out)


def _scaled(row: dict, n: int) -> dict:
    """A bubble-sort row scaled to ``n`` samples by its n^2 comparisons."""
    f = (n / row["n"]) ** 2
    return row | {
        "method": row["method"] + "_scaled",
        "label": f"{row['label']}, scaled x (n / {row['n']})^2",
        "n": n,
        "mean_seconds": row["mean_seconds"] * f,
        "std_seconds": row["std_seconds"] * f,
        "max_abs_error": np.nan,
    }


def _table(summary: pd.DataFrame) -> str:
    rows = []
    for r in summary.itertuples(index=False):
        its = "" if pd.isna(r.mean_iterations) else f"{r.mean_iterations:.0f}"
        err = "" if pd.isna(r.max_abs_error) else f"{r.max_abs_error:.2g}"
        rows.append(
            [r.label, r.n, r.runs, _sec(r.mean_seconds, r.std_seconds),
             _sec(r.paper_mean, r.paper_std), its, err]
        )  # fmt: skip
    columns = ["method", "n", "runs", "ours (s)", "paper (s)", "iterations"]
    return markdown_table(pd.DataFrame(rows, columns=columns + ["max |error|"]))


def _sec(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "n/a"
    digits = max(2, int(np.ceil(-np.log10(max(mean, 1e-12)))) + 1)
    return pm(mean, std, min(digits, 7))


def render(summary, runs, settings, *, command, seed, seconds, plot_name) -> str:
    """The Markdown report."""
    title = "Table 1 of Xia et al. (2024): time of a top-k sum"
    lines = opening_lines(title, command, seed, settings)
    lines += ["", "## Results", "", _legend(settings), "", _table(summary), ""]
    lines += closing_lines(seconds, plot_name, _notes(summary, settings))
    return "\n".join(lines) + "\n"


def _legend(s: TimingSettings) -> str:
    return (
        f"Seconds per call, mean ± std over runs (numpy's std), to sum the top "
        f"{s.k} of n samples. The first rows are the paper's four methods as it "
        "describes them; the others are what a user calls today. The paper's "
        "numbers (its Table 1) are for n = 10,000 and 50 runs on its own "
        'machine: compare orders of magnitude, not digits. "iterations" is the '
        'mean number of threshold steps; "max |error|" the largest distance '
        "of the returned value from the exact sum."
    )


def _notes(summary: pd.DataFrame, s: TimingSettings) -> list[str]:
    by = summary.set_index("method")
    ratio = (
        by.loc["atk_descent", "mean_seconds"] / by.loc["stk_descent", "mean_seconds"]
    )
    us = {m: f"{v * 1e6:.0f} us" for m, v in by["mean_seconds"].items()}
    return [
        f"- The bubble sort ran on n = {int(by.loc['bubble_sort', 'n'])} samples, "
        f"{int(by.loc['bubble_sort', 'runs'])} runs (a pure-Python bubble sort of "
        "10,000 numbers takes tens of seconds); the scaled row multiplies its "
        "time by (10,000 / n)^2, its number of comparisons.",
        f"- ATk and STk solve min over lam of k lam + sum_i phi(x_i - lam) by "
        f"gradient descent on lam (step {s.lr:g} on the mean form, from lam = 0), "
        "stopping when the top-k sum at lam is within "
        f"{s.tol:g} of the exact one (the paper's stopping rule; the exact sum is "
        "computed outside the timed region). Here STk takes "
        f"{1 / ratio:.2g} times as long as ATk; in the paper ATk took 17 times "
        "as long as STk. With "
        f"delta = {s.delta:g} the SReLU is close to the ReLU, so the two "
        "descents take about the same steps; STk's square root makes each "
        "step dearer.",
        f"- What a user calls: torch.topk takes {us['torch_topk']}; one forward "
        f"and backward of sktopk's atk {us['sktopk_atk']}, of its stk "
        f"{us['sktopk_stk']} at a given threshold (one training step; the "
        "threshold is learned with the model)"
        + _one_thread_note(us)
        + ". The value of stk is the smoothed objective times n, which lies up to "
        f"n delta / 2 = {s.n * s.delta / 2:g} below the top-k sum by "
        "construction (SReLU < ReLU), hence its large |error|: STk is a "
        "training loss, not a way to compute a top-k sum.",
        "- Times are wall-clock on a machine shared with other work: expect "
        "noise of tens of percent.",
    ]


def units(settings: TimingSettings) -> int:
    """Progress units of :func:`run` (one per repetition)."""
    return settings.runs


def _one_thread_note(us: dict[str, str]) -> str:
    name = "sktopk_stk" + ONE_THREAD
    if name not in us:
        return ""
    return (
        f"; on one torch thread stk takes {us[name]} (on a busy machine, "
        "threads that wait for each other can cost more than the work itself)"
    )


def plot(summary: pd.DataFrame, runs: pd.DataFrame, settings: TimingSettings):
    """Bar chart of the seconds per call (log scale), ours and the paper's."""
    from matplotlib.figure import Figure

    rows = summary[summary["method"] != "bubble_sort"]
    fig = Figure(figsize=(8, 4.2))
    ax = fig.subplots()
    y = np.arange(len(rows))
    ax.barh(y + 0.2, rows["mean_seconds"], 0.4, xerr=rows["std_seconds"],
            label="sktopk (this machine)")  # fmt: skip
    ax.barh(y - 0.2, rows["paper_mean"], 0.4, xerr=rows["paper_std"], label="paper")
    ax.set_yticks(y, [f"{lab} (n={n})" for lab, n in zip(rows["label"], rows["n"],
                                                         strict=True)])  # fmt: skip
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("seconds per call (log scale)")
    ax.set_title(f"Sum of the top {settings.k} of {settings.n} N(0, 1) samples")
    ax.legend(loc="lower right", fontsize="small")
    ax.tick_params(axis="y", labelsize="small")
    fig.tight_layout()
    return fig
