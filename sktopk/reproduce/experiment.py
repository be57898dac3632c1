"""Run one cell of a table: every run x every configuration, batched.

A cell (dataset, loss, aggregate) trains all runs and all grid configurations
with the batched engine, chooses the configuration with the best mean
validation score over runs and returns one row per run with that
configuration's test error (%) or test RMSE (in the units of the dataset's
targets, which the row's metric key names). The result depends only on the
protocol, the seed and the cell.
"""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..datasets import dataset_info
from ..engine import TrainSpec, one_thread
from ..engine.grid import (
    evaluate,
    make_data,
    member_bytes,
    members_per_chunk,
    train_in_chunks,
)
from .protocol import Cell, Protocol
from .splits import Prepared, prepare

__all__ = [
    "run_cell",
    "chunk_ranges",
    "train_chunk",
    "select_configuration",
    "members_at_once",
    "RUN_COLUMNS",
    "RUN_DTYPES",
]

#: Columns of a run row and their types (also those of the results CSV).
RUN_DTYPES = {
    "identity": str, "table": int, "dataset": str, "loss": str, "aggregate": str,
    "run": int, "seed": "int64", "metric": str, "value": float, "val_score": float,
    "kappa": float, "k": int, "C": float, "lr": float, "delta": float,
    "epochs": int, "diverged": bool, "configs": int, "seconds": float,
}  # fmt: skip
RUN_COLUMNS = tuple(RUN_DTYPES)


def select_configuration(val_scores: np.ndarray) -> int:
    """Index of the configuration with the best mean validation score over runs.

    Parameters
    ----------
    val_scores : ndarray of shape (runs, configurations)
        Validation accuracy (or minus the MSE) of every run and configuration;
        higher is better. Non-finite scores (diverged training) never win.

    Returns
    -------
    int
        The chosen column; ties go to the first (the grid order).
    """
    scores = np.asarray(val_scores, dtype=np.float64)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    return int(np.argmax(scores.mean(axis=0)))


def run_cell(
    cell: Cell, protocol: Protocol, seed: int, saved=None, size: int | None = None
) -> pd.DataFrame:
    """Train and evaluate one cell; one row per run (columns ``RUN_COLUMNS``).

    ``saved`` (a :class:`~.partial.PartialCell`, optional) keeps each finished
    chunk of configurations and gives back those an interrupted run of the
    same cell finished; the row's ``seconds`` count their training time too.
    ``size`` sets the configurations per chunk (by default those of the
    chunks ``saved`` holds, else as many as fit in ``protocol.max_memory``).
    """
    start = time.perf_counter()
    prep, grid = _prepared(cell, protocol, seed)
    # One thread per cell: the steps are tiny, parallelism comes from running
    # cells side by side, and a fixed thread count keeps the floating-point
    # results the same on every machine and backend.
    with one_thread():
        val, test, epochs, diverged = _train_all(
            cell, protocol, prep, grid, saved, size=size
        )
    best = select_configuration(val)
    rows = pd.DataFrame(
        {
            "identity": protocol.identity(seed),
            "table": cell.table,
            "dataset": cell.dataset,
            "loss": cell.loss,
            "aggregate": cell.aggregate,
            "run": np.arange(protocol.runs),
            "seed": prep.seeds,
            "metric": prep.metric,
            "value": _metric(prep.task, test[:, best]),
            "val_score": val[:, best],
            "kappa": grid["kappa"][best],
            "k": max(1, math.ceil(grid["kappa"][best] * prep.n_train - 1e-6)),
            "C": grid["C"][best],
            "lr": grid["lr"][best],
            "delta": grid["delta"][best],
            "epochs": epochs[:, best],
            "diverged": diverged[:, best],
            "configs": len(grid["lr"]),
        }
    )
    resumed = 0.0 if saved is None else saved.resumed_seconds
    rows["seconds"] = round(time.perf_counter() - start + resumed, 3)
    return rows[list(RUN_COLUMNS)].astype(RUN_DTYPES)


def _metric(task: str, score: np.ndarray) -> np.ndarray:
    if task == "classification":
        return 100.0 * (1.0 - score)
    return np.sqrt(np.maximum(-score, 0.0))


def chunk_ranges(
    cell: Cell, protocol: Protocol, seed: int, saved=None
) -> list[tuple[int, int, int]]:
    """The chunks ``(lo, hi, size)`` of configurations that :func:`run_cell`
    trains one after another: of the size of the run it resumes where
    ``saved`` (a :class:`~.partial.PartialCell`) holds chunks, else as many
    configurations as fit in ``protocol.max_memory`` for every run at once."""
    _, grid = _prepared(cell, protocol, seed)
    n_configs, size = len(grid["lr"]), _chunk_size(cell, protocol, saved)
    return [(lo, min(lo + size, n_configs), size) for lo in range(0, n_configs, size)]


def _prepared(cell: Cell, protocol: Protocol, seed: int) -> tuple[Prepared, dict]:
    """The cell's splits and data, and its grid of configurations."""
    prep = prepare(
        cell.dataset, protocol.runs, seed, protocol.scaling, protocol.target_scaling
    )
    return prep, protocol.grid(cell.aggregate, prep.n_train)


def _chunk_size(cell: Cell, protocol: Protocol, saved=None) -> int:
    """Configurations per chunk: those of the chunks ``saved`` holds (the run
    it resumes), else as many as fit in ``protocol.max_memory``."""
    held = None if saved is None else saved.chunk_size()
    return held or members_at_once(cell, protocol) // protocol.runs


def train_chunk(
    cell: Cell, protocol: Protocol, seed: int, saved, chunk: tuple[int, int, int]
) -> None:
    """Train the configurations ``lo:hi`` of ``cell``, one of its chunks of
    ``size`` (``chunk = (lo, hi, size)``, from :func:`chunk_ranges`), and keep
    their scores in ``saved`` (nothing to do if it holds them already): a
    :func:`run_cell` of the cell then reads every chunk back."""
    prep, grid = _prepared(cell, protocol, seed)
    with one_thread():
        _train_all(cell, protocol, prep, grid, saved, only=chunk[:2], size=chunk[2])


def _train_all(
    cell: Cell,
    protocol: Protocol,
    prep: Prepared,
    grid: dict,
    saved,
    only=None,
    size: int | None = None,
):
    """Validation and test scores, epochs and divergence, each (runs, configs);
    with ``only=(lo, hi)``, of the configurations ``lo:hi`` only. ``size``
    (configurations per chunk) defaults to :func:`_chunk_size`."""
    spec = _spec(cell, protocol, prep.task)
    splits = list(zip(prep.train, prep.val, strict=True))
    data = make_data(prep.X, prep.target, splits)
    sizes = protocol.sizes(prep.X.shape[1])
    task = "binary" if prep.task == "classification" else "regression"
    val_idx = [torch.as_tensor(v) for v in prep.val]
    test_idx = [torch.as_tensor(t) for t in prep.test]

    def scores(model, res):
        return (
            evaluate(model, data, val_idx, task).numpy(),
            evaluate(model, data, test_idx, task).numpy(),
            res.n_epochs.numpy(),
            res.diverged.numpy(),
        )

    size = size or _chunk_size(cell, protocol, saved)
    if saved is not None:
        saved.digest = _inputs_digest(data, spec, sizes, grid, prep.seeds)
        saved.size = size
    _, out = train_in_chunks(
        data, spec, sizes, grid, prep.seeds, scores, size, saved=saved, only=only
    )
    return tuple(out)


def members_at_once(cell: Cell, protocol: Protocol) -> int:
    """Members (runs x configurations) of ``cell`` trained together within
    ``protocol.max_memory``; the rest of the grid follows in further batches."""
    info = dataset_info(cell.dataset)
    n_configs = len(protocol.grid(cell.aggregate, info.n_samples)["lr"])
    per_member = member_bytes(
        protocol.sizes(info.n_features), info.n_samples // 2 + 1, protocol.batch_size
    )
    per_run = members_per_chunk(
        n_configs, protocol.runs, per_member, torch.device("cpu"), protocol.max_memory
    )
    return per_run * protocol.runs


def _spec(cell: Cell, protocol: Protocol, task: str) -> TrainSpec:
    step_rule = protocol.stopping == "step"
    return TrainSpec(
        loss=cell.loss,
        aggregate=cell.aggregate,
        task="binary" if task == "classification" else "regression",
        optimizer="adagrad",
        batch_size=protocol.batch_size,
        max_epochs=protocol.max_epochs,
        early_stopping=True,
        eval_every=protocol.eval_every if step_rule else None,
        patience=protocol.patience,
        tol=protocol.tol,
    )


def _inputs_digest(data, spec, sizes, grid: dict, seeds) -> str:
    """A digest of everything a cell's chunks depend on: the rows and splits
    of ``data`` (a :class:`~sktopk.engine.TrainData`), the training settings,
    the layer sizes, the whole grid, the seeds and the package version."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            [__version__, repr(spec), list(sizes), list(map(int, seeds))]
        ).encode()
    )
    for t in (data.X, data.y, data.w, *data.train_idx, *(data.val_idx or [])):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    for key in sorted(grid):
        h.update(key.encode())
        h.update(np.ascontiguousarray(grid[key]).tobytes())
    return h.hexdigest()
