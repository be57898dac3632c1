"""``cv_results_`` in GridSearchCV's layout, and the choice of the best."""

from __future__ import annotations

import warnings

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
    for name in dict.fromkeys(k for c in candidates for k in c):
        results[f"param_{name}"] = param_array(candidates, name)
    results["params"] = candidates
    for name, scores in test.items():
        key = name if multimetric else "score"
        _scores(results, f"test_{key}", scores)
        results[f"rank_test_{key}"] = rank(results[f"mean_test_{key}"])
        if name in train:
            _scores(results, f"train_{key}", train[name])
    return results


def param_array(candidates: list[dict], name: str) -> np.ma.MaskedArray:
    """The values of parameter ``name``, masked where a candidate lacks it, of
    the dtype GridSearchCV gives them: numpy's for numbers and booleans,
    object for strings, sequences and values numpy cannot put in one array.

    Examples
    --------
    >>> param_array([{"k": 0.5}, {"k": 1}, {"C": 2.0}], "k")
    masked_array(data=[0.5, 1.0, --],
                 mask=[False, False,  True],
           fill_value=1e+20)
    """
    given = {i: c[name] for i, c in enumerate(candidates) if name in c}
    try:
        probe = np.array(list(given.values()))
    except ValueError:  # ragged sequences
        dtype = np.dtype(object)
    else:
        one_d = probe.dtype.kind != "U" and probe.ndim == 1
        dtype = probe.dtype if one_d else np.dtype(object)
    out = np.ma.MaskedArray(np.empty(len(candidates), dtype=dtype), mask=True)
    for i, value in given.items():
        out[i] = value
    return out


def _warn_non_finite(results: dict, key: str) -> None:
    means = results[f"mean_{key}"]
    if not np.isfinite(means).all():
        side = key.split("_")[0]
        warnings.warn(
            f"One or more of the {side} scores are non-finite: {means}",
            UserWarning,
            stacklevel=3,
        )


def _scores(results: dict, key: str, scores: np.ndarray) -> None:
    """Each split's scores, their mean and std (GridSearchCV's order)."""
    for i in range(scores.shape[1]):
        results[f"split{i}_{key}"] = scores[:, i]
    _mean_std(results, key, scores)
    _warn_non_finite(results, key)


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
