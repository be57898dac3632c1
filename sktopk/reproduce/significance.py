"""Paired comparison of STk with each baseline over the same splits.

Every aggregate of a table is trained on the same random splits (the run
seeds depend only on the global seed and the dataset), so the test errors of
two aggregates are paired by run. The differences are tested with the
corrected resampled t-test of Nadeau and Bengio (2003), which accounts for
the overlap of the training sets of the repeated splits, and the p-values of
each (loss, baseline) pair are corrected across datasets with Holm's
step-down method. A comparison is a *win* (or a *loss*) only when its
corrected p-value is below ``alpha``; otherwise it is a *tie*: the data do
not tell the two apart.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ..losses import names
from ..model_selection import corrected_resampled_ttest

__all__ = [
    "holm",
    "split_sizes",
    "paired_comparisons",
    "verdict_sentences",
    "significance_section",
]

#: Family-wise error rate of the corrected tests.
ALPHA = 0.05
REFERENCE = "stk"
_GROUP = ["table", "dataset", "loss"]


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control).

    The ``i``-th smallest of ``m`` p-values is multiplied by ``m - i`` (``i``
    from 0), the running maximum is taken in that order and the results are
    capped at 1; a hypothesis is rejected at level ``alpha`` when its adjusted
    p-value is at most ``alpha``. NaN p-values stay NaN and do not count in
    ``m``.

    Parameters
    ----------
    pvalues : array-like of shape (m,)

    Returns
    -------
    ndarray of shape (m,)
        The adjusted p-values, in the input order.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).round(2)
    array([0.03, 0.06, 0.06])
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def split_sizes(dataset: str) -> tuple[int, int]:
    """Training and test rows of a 50/25/25 split of a bundled dataset."""
    from ..datasets import dataset_info

    n = dataset_info(dataset).n_samples
    n_train = n // 2
    rest = n - n_train
    return n_train, rest - rest // 2


def paired_comparisons(
    runs: pd.DataFrame,
    *,
    reference: str = REFERENCE,
    sizes: Callable[[str], tuple[int, int]] = split_sizes,
    alpha: float = ALPHA,
) -> pd.DataFrame:
    """Test ``reference`` against every other aggregate, per dataset and loss.

    Parameters
    ----------
    runs : DataFrame
        One row per run with columns ``table, dataset, loss, aggregate, run,
        value`` (a test error or RMSE: lower is better). Runs with the same
        ``run`` number of a dataset share their split.
    reference : str, default="stk"
        The aggregate compared with each of the others.
    sizes : callable, default=split_sizes
        ``sizes(dataset) -> (n_train, n_test)`` for the test's correction.
    alpha : float, default=0.05
        Level of the Holm-corrected tests.

    Returns
    -------
    DataFrame
        One row per (table, dataset, loss, baseline): ``runs`` (the paired
        runs), ``diff`` (mean of reference minus baseline: negative when the
        reference errs less), ``diff_std`` (std of the differences, ddof=1),
        ``t``, ``p`` (the corrected resampled t-test, two-sided), ``p_holm``
        (Holm-corrected across the datasets of each table, loss and baseline)
        and ``verdict`` ("wins", "ties" or "loses", for the reference).
        Empty when the reference was not run.
    """
    rows = [
        _compare(key, group, reference, sizes)
        for key, group in runs.groupby(_GROUP, sort=True)
        if reference in set(group["aggregate"])
    ]
    rows = [r for part in rows for r in part]
    columns = _GROUP + ["baseline", "runs", "diff", "diff_std", "t", "p"]
    out = pd.DataFrame(rows, columns=columns)
    out["p_holm"] = out.groupby(["table", "loss", "baseline"])["p"].transform(holm)
    pairs = zip(out["diff"], out["p_holm"], strict=True)
    out["verdict"] = [_verdict(d, p, alpha) for d, p in pairs]
    return out


def _compare(key: tuple, group: pd.DataFrame, reference: str, sizes) -> list[list]:
    values = group.pivot_table(index="run", columns="aggregate", values="value")
    n_train, n_test = sizes(key[1])
    rows = []
    for baseline in _in_registry_order(values.columns):
        if baseline == reference:
            continue
        pair = values[[reference, baseline]].dropna()
        diff = (pair[reference] - pair[baseline]).to_numpy()
        if len(diff) < 2:
            continue
        t, p = corrected_resampled_ttest(
            pair[reference], pair[baseline], n_train, n_test
        )
        spread = float(np.std(diff, ddof=1))
        rows.append([*key, baseline, len(diff), float(diff.mean()), spread, t, p])
    return rows


def _in_registry_order(aggregates) -> list[str]:
    order = {a: i for i, a in enumerate(names("aggregate"))}
    return sorted(aggregates, key=lambda a: (order.get(a, len(order)), a))


def _verdict(diff: float, p: float, alpha: float) -> str:
    if not p <= alpha or diff == 0:
        return "ties"
    return "wins" if diff < 0 else "loses"


def verdict_sentences(
    comparisons: pd.DataFrame, reference_label: str = "STk", digits: int = 2
) -> list[str]:
    """One sentence per (dataset, loss): where the reference wins beyond
    noise, ties, or loses, with the mean differences and corrected p-values."""
    lines = []
    for (_, dataset, loss), rows in comparisons.groupby(_GROUP, sort=False):
        parts = []
        for verdict, phrase in (
            ("wins", "wins beyond noise against"),
            ("loses", "loses beyond noise to"),
            ("ties", "ties with"),
        ):
            chosen = rows[rows["verdict"] == verdict]
            if len(chosen):
                items = ", ".join(_item(r, digits) for r in chosen.itertuples())
                parts.append(f"{phrase} {items}")
        text = "; ".join(parts)
        lines.append(f"- **{dataset}** ({loss}): {reference_label} {text}.")
    return lines


def _item(r, digits: int) -> str:
    return f"{r.baseline} ({r.diff:+.{digits}f}, Holm p = {_p(r.p_holm)})"


def _p(p: float) -> str:
    return "n/a" if not np.isfinite(p) else f"{p:.3f}" if p >= 0.001 else "< 0.001"


def significance_section(
    runs: pd.DataFrame, *, reference: str = REFERENCE, alpha: float = ALPHA
) -> list[str]:
    """Markdown lines of the report's significance section (none without runs
    of the reference aggregate)."""
    comparisons = paired_comparisons(runs, reference=reference, alpha=alpha)
    if comparisons.empty:
        return []
    n_runs = int(comparisons["runs"].min())
    digits = 2 if (runs["metric"] == "error_rate_percent").all() else 4
    return [
        "## STk against each baseline, paired over the same splits",
        "",
        f"Per dataset, the mean over {n_runs} paired runs of STk's test error "
        "minus the baseline's (negative: STk errs less), tested with the "
        "corrected resampled t-test of Nadeau and Bengio (2003; "
        "`sktopk.model_selection.corrected_resampled_ttest`, n_test / n_train "
        "of the 50/25/25 split), its p-value Holm-corrected across the "
        "datasets of each loss and baseline. STk *wins* or *loses* only where "
        f"the corrected p-value is at most {alpha:g}; otherwise it *ties*.",
        "",
        *verdict_sentences(comparisons, digits=digits),
    ]
