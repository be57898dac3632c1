"""Random 50/25/25 splits, targets and feature scaling of the benchmarks.

Everything here depends only on the seed, the dataset and the run number, so
every aggregate (and every table) sees the same splits: the comparison between
aggregates is paired, and a cell gives the same numbers wherever it runs.

Regression targets are min-max scaled to [0, 1] over the whole dataset for the
datasets the paper lists as scaled (:data:`PAPER_SCALED_TARGETS`), or for every
regression dataset under ``target_scaling="all"``; the metric key of a run
(:func:`metric_name`) says which.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from ..datasets import dataset_info, list_datasets, load_dataset

__all__ = [
    "Prepared",
    "run_seeds",
    "make_splits",
    "prepare",
    "encode_target",
    "scales_target",
    "check_target_scaling",
    "paper_scaled_datasets",
    "metric_name",
    "TARGET_SCALINGS",
    "PAPER_SCALED_TARGETS",
    "METRIC_WORDS",
    "METRIC_AXES",
    "TARGET_UNITS",
    "REGRESSION_METRICS",
    "SCALED_RMSE",
    "UNSCALED_RMSE",
]

#: Values of ``Protocol.target_scaling``: "paper" scales the targets of
#: :data:`PAPER_SCALED_TARGETS` only; "all" scales every regression dataset.
TARGET_SCALINGS = ("paper", "all")
#: Regression datasets whose targets Xia et al. (2024) list as min-max scaled
#: to [0, 1]. The synthetic sinc is not among them: its targets stay as generated.
PAPER_SCALED_TARGETS = frozenset({"housing", "abalone", "cpusmall"})
#: Metric keys of the regression runs: the test RMSE on targets min-max scaled
#: to [0, 1] (the key of every regression run before sinc could stay unscaled)
#: or on the targets as generated.
SCALED_RMSE = "rmse_target_scaled_0_1"
UNSCALED_RMSE = "rmse_target_unscaled"
REGRESSION_METRICS = (SCALED_RMSE, UNSCALED_RMSE)
#: Metric key of a run -> what it measures, in words (for the reports).
METRIC_WORDS = {
    "error_rate_percent": "test error in %",
    SCALED_RMSE: "test RMSE on targets min-max scaled to [0, 1] over the dataset",
    UNSCALED_RMSE: "test RMSE on the targets as generated, not scaled",
}
#: Regression metric key -> the units of its RMSE, in a few words.
TARGET_UNITS = {SCALED_RMSE: "targets in [0, 1]", UNSCALED_RMSE: "targets as generated"}
#: Metric key of a run -> a short axis label (for the plots).
METRIC_AXES = {
    "error_rate_percent": "test error (%)",
    **{key: f"test RMSE ({units})" for key, units in TARGET_UNITS.items()},
}


@dataclass
class Prepared:
    """A dataset ready for the batched engine: one copy of the rows per run.

    Run ``g`` owns rows ``g * n .. (g + 1) * n - 1`` of ``X`` (features scaled
    with that run's training split); ``train``, ``val`` and ``test`` hold each
    run's indices into ``X``.
    """

    X: np.ndarray
    target: np.ndarray
    task: str
    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]
    seeds: list[int]
    #: Whether the regression targets were min-max scaled to [0, 1].
    scaled_target: bool = False

    @property
    def metric(self) -> str:
        """The metric key of this dataset's runs, see :func:`metric_name`."""
        return metric_name(self.task, self.scaled_target)

    @property
    def n_train(self) -> int:
        return len(self.train[0])


def run_seeds(seed: int, dataset: str, runs: int) -> list[int]:
    """One 31-bit seed per run, from the global seed and the dataset name."""
    key = zlib.crc32(dataset.encode("utf-8"))
    state = np.random.SeedSequence([int(seed), key]).generate_state(runs)
    return [int(s) & 0x7FFFFFFF for s in state]


def make_splits(
    y: np.ndarray, task: str, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of a random 50/25/25 train/validation/test split.

    Classification splits are stratified on ``y``; regression splits are not.
    """
    idx = np.arange(len(y))
    strat = y if task == "classification" else None
    train, rest = train_test_split(
        idx, train_size=0.5, random_state=seed, stratify=strat
    )
    strat = y[rest] if task == "classification" else None
    val, test = train_test_split(
        rest, train_size=0.5, random_state=seed + 1, stratify=strat
    )
    return np.sort(train), np.sort(val), np.sort(test)


def check_target_scaling(target_scaling: str) -> None:
    """Raise a ValueError naming the allowed values unless ``target_scaling``
    is one of :data:`TARGET_SCALINGS`."""
    if target_scaling not in TARGET_SCALINGS:
        raise ValueError(
            f"target_scaling must be one of {TARGET_SCALINGS}; got {target_scaling!r}"
        )


def paper_scaled_datasets() -> list[str]:
    """:data:`PAPER_SCALED_TARGETS` in the order of the paper's tables."""
    return [d for d in list_datasets("regression") if d in PAPER_SCALED_TARGETS]


def scales_target(dataset: str, target_scaling: str) -> bool:
    """Whether the regression targets of ``dataset`` are min-max scaled to [0, 1].

    Parameters
    ----------
    dataset : str
        A regression dataset.
    target_scaling : {"paper", "all"}
        "paper": only the datasets of :data:`PAPER_SCALED_TARGETS`; "all":
        every dataset.

    Returns
    -------
    bool
    """
    check_target_scaling(target_scaling)
    return target_scaling == "all" or dataset in PAPER_SCALED_TARGETS


def metric_name(task: str, scaled_target: bool = True) -> str:
    """The metric key of the runs of a ``task`` ("classification" or
    "regression"), in the units of its targets (a key of :data:`METRIC_WORDS`)."""
    if task == "classification":
        return "error_rate_percent"
    return SCALED_RMSE if scaled_target else UNSCALED_RMSE


def encode_target(y: np.ndarray, task: str, *, scale: bool = True) -> np.ndarray:
    """Margins in {-1, +1} (the larger label is +1), or regression targets.

    With ``scale`` (the default), regression targets are min-max scaled to
    [0, 1] over the whole dataset (the map is the same for every run, so the
    RMSE of every run is in the same units); without, they are left as they
    are. ``scale`` does not apply to classification.
    """
    if task == "classification":
        classes = np.unique(y)
        return np.where(y == classes[1], 1.0, -1.0).astype(np.float32)
    y = np.asarray(y, dtype=np.float64)
    if not scale:
        return y.astype(np.float32)
    span = y.max() - y.min()
    return ((y - y.min()) / (span if span > 0 else 1.0)).astype(np.float32)


def _scale(X: np.ndarray, train: np.ndarray, scaling: str) -> np.ndarray:
    if scaling == "none":
        return X
    rows = X[train]
    # A column constant on the training rows is centred to exactly 0 (its
    # mean and deviation can round off the constant and 0), so that its
    # weights, which start at 0, get no gradient.
    constant = (rows == rows[:1]).all(axis=0)
    mean = np.where(constant, rows[0], rows.mean(axis=0))
    std = np.where(constant, 1.0, rows.std(axis=0))
    return (X - mean) / np.where(std > 0, std, 1.0)


def prepare(
    dataset: str, runs: int, seed: int, scaling: str, target_scaling: str = "paper"
) -> Prepared:
    """Load ``dataset`` and lay out ``runs`` splits for :func:`make_data`.

    Parameters
    ----------
    dataset : str
        A benchmark dataset.
    runs, seed : int
        Number of runs and the global seed (see :func:`run_seeds`).
    scaling : {"standard", "none"}
        Feature scaling, fitted on each run's training split.
    target_scaling : {"paper", "all"}, default="paper"
        Which regression targets are min-max scaled, see :func:`scales_target`.
    """
    task = dataset_info(dataset).task
    scaled = scales_target(dataset, target_scaling) and task == "regression"
    X, y = load_dataset(dataset, return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    n, seeds = len(X), run_seeds(seed, dataset, runs)
    blocks, train, val, test = [], [], [], []
    for g, s in enumerate(seeds):
        tr, va, te = make_splits(y, task, s)
        blocks.append(_scale(X, tr, scaling))
        train.append(tr + g * n)
        val.append(va + g * n)
        test.append(te + g * n)
    target = np.tile(encode_target(y, task, scale=scaled), runs)
    Xs = np.vstack(blocks).astype(np.float32)
    return Prepared(Xs, target, task, train, val, test, seeds, scaled)
