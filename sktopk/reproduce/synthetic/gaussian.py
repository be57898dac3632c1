"""Train linear logistic models with each aggregate on the imbalanced
Gaussian data (Table 2, Figures 3 and 4).

Every repetition at every negative ratio is a group of the engine, with its
own data and initial weights drawn from its seed; the groups of a ratio and
all configurations of one aggregate train together as one batch. At each ratio,
the configuration with the best mean validation accuracy over repetitions is
marked as chosen; every configuration's test accuracy, support recovery
(ParaF1, exact zeros) and weights are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ...datasets import make_imbalanced_gaussians
from ...engine import TrainSpec, one_thread
from ...engine.grid import evaluate, make_data, train_in_chunks
from ...losses import get_aggregate
from ...metrics import para_f1_score
from ..experiment import select_configuration
from ..splits import run_seeds
from .settings import COLUMNS, Column, GaussianSettings

__all__ = ["Draws", "draw", "train_column", "run_gaussian"]

#: Features whose learned weights are kept in the runs (a 2-D boundary).
_MAX_KEPT = 10


@dataclass
class Draws:
    """Groups of data (a negative ratio and a seed each), stacked for the engine.

    Group ``g`` owns rows ``train[g]``, ``val[g]`` and ``test[g]`` of ``X``;
    ``target`` holds margins in {-1, +1} (+1: the positive class, of mean
    ``mu_1``). The theory depends on the group's ratio only: ``coef`` (w*)
    is the same for all, the accuracies are per group.
    """

    X: np.ndarray
    target: np.ndarray
    train: list[np.ndarray]
    val: list[np.ndarray]
    test: list[np.ndarray]
    seeds: list[int]
    coef: np.ndarray
    bayes_accuracy: np.ndarray  # closed form, test distribution
    train_rule_accuracy: np.ndarray  # (w*, b* of the training prior) on it
    bayes_test_accuracy: np.ndarray  # the Bayes rule on each test set


def draw(settings: GaussianSettings, groups: list[tuple[float, int]]) -> Draws:
    """The data of ``groups``, each a (training negative ratio, seed) pair."""
    blocks, rows, theory = [], ([], [], []), []
    start = 0
    for ratio, seed in groups:
        data = make_imbalanced_gaussians(
            **settings.data_options(), negative_ratio=ratio, random_state=seed
        )
        parts = [(data.X_train, data.y_train), (data.X_val, data.y_val)]
        parts.append((data.X_test, data.y_test))
        for out, (X, y) in zip(rows, parts, strict=True):
            out.append(np.arange(start, start + len(y)))
            blocks.append((X, y))
            start += len(y)
        rule = data.X_test @ data.coef + data.test_intercept > 0
        found = float(np.mean(rule == (data.y_test == 1)))
        theory.append((data.bayes_accuracy, data.train_rule_accuracy, found))
    X = np.vstack([b[0] for b in blocks]).astype(np.float32)
    y = np.concatenate([b[1] for b in blocks])
    bayes, train_rule, found = (np.asarray(v) for v in zip(*theory, strict=True))
    return Draws(
        X, np.where(y == 1, 1.0, -1.0).astype(np.float32), *rows,
        [seed for _, seed in groups], data.coef, bayes, train_rule, found,
    )  # fmt: skip


def _grid(settings: GaussianSettings, column: Column) -> dict[str, np.ndarray]:
    uses_k = "k" in get_aggregate(column.aggregate).params
    kappas = settings.k if uses_k else (1.0,)
    combos = [(k, c, lr) for k in kappas for c in settings.C for lr in settings.lr]
    kappa, C, lr = (np.asarray(v, dtype=np.float64) for v in zip(*combos, strict=True))
    l1 = 1.0 if settings.penalty == "l1" else 0.0
    ones = np.ones_like(kappa)
    grid = {"kappa": kappa, "C": C, "lr": lr, "delta": column.delta * ones}
    return grid | {"l1_ratio": l1 * ones}


def _spec(settings: GaussianSettings, column: Column) -> TrainSpec:
    return TrainSpec(
        loss="logistic",
        aggregate=column.aggregate,
        task="binary",
        optimizer="adam",
        batch_size=settings.batch_size,
        max_epochs=settings.max_epochs,
        early_stopping=settings.early_stopping,
        eval_every=settings.eval_every,
        patience=settings.patience,
        tol=settings.tol,
        smoothing=column.smoothing,
    )


def train_column(
    draws: Draws, settings: GaussianSettings, column: Column
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Train every repetition x configuration of ``column``.

    Returns
    -------
    scores : dict of ndarray of shape (runs, configs[, features])
        "val" and "test" accuracy, "w" and "b" (the learned weights),
        "epochs" and "diverged".
    grid : dict of ndarray
        The configurations.
    seconds : float
        Wall time of the training.
    """
    grid = _grid(settings, column)
    data = make_data(
        draws.X, draws.target, list(zip(draws.train, draws.val, strict=True))
    )
    val = [torch.as_tensor(v) for v in draws.val]
    test = [torch.as_tensor(t) for t in draws.test]

    def scores(model, result):
        W, b = model.params[0][..., 0], model.params[1][..., 0]
        return (
            evaluate(model, data, val, "binary").numpy(),
            evaluate(model, data, test, "binary").numpy(),
            W.detach().cpu().numpy().copy(),
            b.detach().cpu().numpy().copy(),
            result.n_epochs.numpy(),
            result.diverged.numpy(),
        )

    sizes = (draws.X.shape[1], 1)
    start = time.perf_counter()
    _, out = train_in_chunks(
        data, _spec(settings, column), sizes, grid, draws.seeds, scores
    )
    seconds = time.perf_counter() - start
    names = ("val", "test", "w", "b", "epochs", "diverged")
    return dict(zip(names, out, strict=True)), grid, seconds


def _join(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def run_gaussian(
    settings: GaussianSettings,
    seed: int,
    columns: tuple[str, ...] | None = None,
    progress=None,
) -> pd.DataFrame:
    """Every negative ratio x repetition x column x configuration, one row
    each; ``chosen`` marks each (ratio, column)'s selected configuration.

    Repetition ``r`` has the same seed at every ratio; the groups of one
    ratio train in blocks of at most ``settings.groups_at_once``.
    """
    columns = settings.columns if columns is None else columns
    seeds = run_seeds(seed, "gaussian", settings.runs)
    groups = [(q, r) for q in settings.negative_ratios for r in range(settings.runs)]
    step = max(1, settings.groups_at_once)
    found = {c: ([], 0.0) for c in columns}
    theory = []
    # Blocks never mix ratios: a batch trains until its last member stops,
    # and the epochs needed differ much between ratios.
    blocks = [
        [(q, r) for r in range(lo, min(lo + step, settings.runs))]
        for q in settings.negative_ratios
        for lo in range(0, settings.runs, step)
    ]
    for block in blocks:
        draws = draw(settings, [(q, seeds[r]) for q, r in block])
        theory.append(draws)
        for name in columns:
            # One thread: these steps are small, and threads that wait for
            # each other on a busy machine cost more than they bring.
            with one_thread():
                scores, _, sec = train_column(draws, settings, COLUMNS[name])
            parts, total = found[name]
            found[name] = (parts + [scores], total + sec)
            if progress is not None:
                progress(len(block))
    return _assemble(settings, seed, groups, found, theory)


def _assemble(settings, seed, groups, found, theory) -> pd.DataFrame:
    """The rows of every (ratio, column), with the theory beside them."""
    ratio = np.array([q for q, _ in groups])
    frames = []
    for name, (parts, sec) in found.items():
        joined, grid = _join(parts), _grid(settings, COLUMNS[name])
        per_model = sec / joined["val"].size
        for q in settings.negative_ratios:
            scores = {k: v[ratio == q] for k, v in joined.items()}
            frame = _rows(COLUMNS[name], scores, grid, per_model)
            frames.append(frame.assign(negative_ratio=q))
    out = pd.concat(frames, ignore_index=True)
    index = {g: i for i, g in enumerate(groups)}
    g = np.array([index[(q, r)] for q, r in zip(out["negative_ratio"], out["run"],
                                                strict=True)])  # fmt: skip
    out.insert(0, "identity", settings.identity(seed))
    out.insert(1, "negative_ratio", out.pop("negative_ratio"))
    out.insert(out.columns.get_loc("run") + 1, "seed", _cat(theory, "seeds")[g])
    out["bayes_rule_test_accuracy_percent"] = (
        100 * _cat(theory, "bayes_test_accuracy")[g]
    )
    out["bayes_accuracy_percent"] = 100 * _cat(theory, "bayes_accuracy")[g]
    out["train_rule_accuracy_percent"] = 100 * _cat(theory, "train_rule_accuracy")[g]
    out["true_support"] = int(np.count_nonzero(theory[0].coef))
    return _with_para_f1(out, theory[0].coef)


def _cat(draws: list[Draws], field: str) -> np.ndarray:
    return np.concatenate([np.asarray(getattr(d, field)) for d in draws])


def _rows(column: Column, s: dict, grid: dict, per_model: float) -> pd.DataFrame:
    """One row per (repetition, configuration) of one ratio; ``chosen`` marks
    the configuration with the best mean validation accuracy."""
    runs, configs = s["val"].shape
    run, config = (a.ravel() for a in np.indices((runs, configs)))
    rows = pd.DataFrame(
        {
            "column": column.name,
            "aggregate": column.aggregate,
            "smoothing": column.smoothing if column.aggregate == "stk" else "",
            "delta": column.delta,
            "run": run,
            "config": config,
            "chosen": config == select_configuration(s["val"]),
            "accuracy_percent": 100 * s["test"].ravel(),
            "val_accuracy_percent": 100 * s["val"].ravel(),
            "kappa": grid["kappa"][config],
            "C": grid["C"][config],
            "lr": grid["lr"][config],
            "epochs": s["epochs"].ravel(),
            "diverged": s["diverged"].ravel(),
            "configs": configs,
            "seconds_per_model": per_model,
            "intercept": s["b"].ravel(),
        }
    )
    rows["w"] = list(s["w"].reshape(runs * configs, -1))
    return rows


def _with_para_f1(rows: pd.DataFrame, coef: np.ndarray) -> pd.DataFrame:
    """ParaF1 and the support size of each learned ``w`` (exact zeros), and
    the weights themselves for low-dimensional data."""
    w = np.stack(rows.pop("w").to_list())
    rows["support"] = np.count_nonzero(w, axis=1)
    rows["para_f1"] = [para_f1_score(coef, v, zero_division=0.0) for v in w]
    if w.shape[1] <= _MAX_KEPT:
        for j in range(w.shape[1]):
            rows[f"w{j}"] = w[:, j]
    return rows
