"""``cv_results_`` in GridSearchCV's layout, and the choice of the best."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

__all__ = ["results_table", "rank"]


def results_table(
    candidates: list[dict],
    test: dict[str, np.ndarray],
    train: dict[str, np.ndarray],
    fit_time: np.ndarray,
    score_time: np.ndarray,
    multimetric: bool,
) -> dict:
    """GridSearchCV's ``cv_results_`` from ``(n_candidates, n_splits)`` arrays.

    Single-metric searches name their scorer "score" (``mean_test_score``);
    multi-metric ones use the scorers' names (``mean_test_<name>``).
    """
    results: dict = {}
    _mean_std(results, "fit_time", fit_time)
    _mean_std(results, "score_time", score_time)
    for name in sorted({k for c in candidates for k in c}):
        results[f"param_{name}"] = np.ma.masked_array(
            [c.get(name) for c in candidates],
            mask=[name not in c for c in candidates],
            dtype=object,
        )
    results["params"] = candidates
    for name, scores in test.items():
        key = name if multimetric else "score"
        for i in range(scores.shape[1]):
            results[f"split{i}_test_{key}"] = scores[:, i]
        _mean_std(results, f"test_{key}", scores)
        results[f"rank_test_{key}"] = rank(results[f"mean_test_{key}"])
    for name, scores in train.items():
        key = name if multimetric else "score"
        for i in range(scores.shape[1]):
            results[f"split{i}_train_{key}"] = scores[:, i]
        _mean_std(results, f"train_{key}", scores)
    return results


def _mean_std(results: dict, key: str, values: np.ndarray) -> None:
    results[f"mean_{key}"] = values.mean(axis=1)
    results[f"std_{key}"] = values.std(axis=1)


def rank(means: np.ndarray) -> np.ndarray:
    """Rank 1 for the best mean; ties share the smallest rank; NaN (a failed
    configuration) ranks last, as in GridSearchCV.

    Examples
    --------
    >>> rank(np.array([0.5, np.nan, 0.9, 0.5])).tolist()
    [2, 4, 1, 2]
    """
    if np.isnan(means).all():
        return np.ones(len(means), dtype=np.int32)
    filled = np.nan_to_num(means, nan=np.nanmin(means) - 1)
    return rankdata(-filled, method="min").astype(np.int32)
