"""Random 50/25/25 splits, targets and feature scaling of the benchmarks.

Everything here depends only on the seed, the dataset and the run number, so
every aggregate (and every table) sees the same splits: the comparison between
aggregates is paired, and a cell gives the same numbers wherever it runs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from ..datasets import dataset_info, load_dataset

__all__ = ["Prepared", "run_seeds", "make_splits", "prepare"]


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


def encode_target(y: np.ndarray, task: str) -> np.ndarray:
    """Margins in {-1, +1} (the larger label is +1) or targets min-max scaled
    to [0, 1] over the whole dataset (the paper's scaling; the map is the same
    for every run, so the RMSE of every run is in the same units)."""
    if task == "classification":
        classes = np.unique(y)
        return np.where(y == classes[1], 1.0, -1.0).astype(np.float32)
    y = np.asarray(y, dtype=np.float64)
    span = y.max() - y.min()
    return ((y - y.min()) / (span if span > 0 else 1.0)).astype(np.float32)


def _scale(X: np.ndarray, train: np.ndarray, scaling: str) -> np.ndarray:
    if scaling == "none":
        return X
    mean = X[train].mean(axis=0)
    std = X[train].std(axis=0)
    return (X - mean) / np.where(std > 0, std, 1.0)


def prepare(dataset: str, runs: int, seed: int, scaling: str) -> Prepared:
    """Load ``dataset`` and lay out ``runs`` splits for :func:`make_data`."""
    task = dataset_info(dataset).task
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
    target = np.tile(encode_target(y, task), runs)
    Xs = np.vstack(blocks).astype(np.float32)
    return Prepared(Xs, target, task, train, val, test, seeds)
