"""Grid search: GridSearchCV (n_jobs=2) against STkSearchCV, in one run.

Two cases; both searches get the same grid, folds and seeds, and the script
prints the wall times, the speed-up and the agreement of the two searches.

- ``--case phoneme``: STkClassifier(model="mlp", hidden_layer_sizes=(10,),
  batch_size=16) on phoneme, both searches with ``n_jobs`` workers (2 by
  default; STkSearchCV splits its one batch of configurations between them);
- ``--case pipeline``: a Pipeline (ColumnTransformer of OneHotEncoder and
  StandardScaler, then STkClassifier) on a mixed-type DataFrame of 5,000 rows,
  72 configurations x 5 folds, at batch size 16 (the paper's) and "auto".

    python benchmarks/bench_search.py [--case phoneme|pipeline]
        [--grid small|medium|large] [--folds 3] [--max-epochs 30] [--sample N]
        [--n-jobs 2]

``--sample N`` times GridSearchCV on N random configurations of the grid only
and extrapolates its time linearly to the whole grid (said so in the output);
the batched search always runs the whole grid. The worker processes are
started (and import sktopk) before either search is timed.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, ParameterGrid, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sktopk import STkClassifier, STkSearchCV
from sktopk.datasets import load_dataset

GRIDS = {
    "small": {"k": [0.2, 0.6, 1.0], "C": [10.0, 1000.0], "learning_rate": [0.1, 0.01]},
    "medium": {
        "k": [0.1, 0.3, 0.5, 0.7, 0.9, 1.0],
        "C": [10.0, 1000.0],
        "learning_rate": [0.1, 0.05, 0.01],
        "delta": [0.1, 0.01],
    },
    "large": {
        "k": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        "C": [1.0, 10.0, 100.0, 1e3, 1e4, 1e5],
        "learning_rate": [0.1, 0.05, 0.01, 0.005, 0.001],
        "delta": [0.1, 0.01, 0.001, 1e-4],
    },
}


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["phoneme", "pipeline"], default="phoneme")
    parser.add_argument("--grid", choices=sorted(GRIDS), default="medium")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--sample", type=int, default=None)
    parser.add_argument("--n-jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.case == "pipeline":
        return pipeline_case(args.max_epochs)
    X, y = load_dataset("phoneme", return_X_y=True)
    X = StandardScaler().fit_transform(X)
    est = STkClassifier(
        model="mlp",
        batch_size=16,
        max_epochs=args.max_epochs,
        device="cpu",
        random_state=0,
    )
    grid, cv = (
        GRIDS[args.grid],
        StratifiedKFold(args.folds, shuffle=True, random_state=0),
    )
    n_configs, jobs = len(ParameterGrid(grid)), args.n_jobs
    _start_workers(jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        ours = STkSearchCV(est, grid, cv=cv, refit=False, n_jobs=jobs).fit(X, y)
        t_ours = time.perf_counter() - start
        ref_grid = _sample(grid, args.sample)
        start = time.perf_counter()
        ref = GridSearchCV(est, ref_grid, cv=cv, n_jobs=jobs, refit=False).fit(X, y)
        t_ref = (time.perf_counter() - start) * n_configs / len(ref_grid)
    diff = _agreement(ours, ref)
    rows = [
        (f"GridSearchCV (n_jobs={jobs})", t_ref, 1.0),
        (f"STkSearchCV (batched, n_jobs={jobs})", t_ours, t_ref / t_ours),
    ]
    table = pd.DataFrame(rows, columns=["search", "wall time (s)", "speed-up"])
    note = "" if args.sample is None else f" (GridSearchCV timed on {len(ref_grid)} "
    note += "" if args.sample is None else "configurations, extrapolated)"
    print(f"phoneme, {n_configs} configurations x {args.folds} folds{note}")
    print(table.round(2).to_string(index=False))
    print(f"largest |mean test score difference| over compared configs: {diff:.4f}")
    return table


def _import_sktopk() -> int:
    # The estimators and the engine (with torch): `import sktopk` alone does
    # not import them (they load on first use).
    import sktopk.engine  # noqa: F401
    import sktopk.estimators  # noqa: F401

    return 0


def _start_workers(n_jobs: int) -> None:
    """Start joblib's worker processes and import sktopk's estimators and
    engine in them, untimed."""
    if n_jobs > 1:
        Parallel(n_jobs=n_jobs)(delayed(_import_sktopk)() for _ in range(4 * n_jobs))


def mixed_frame(n: int = 5000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Numbers on different scales, a pandas categorical and a string column."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 12, n),
            "income": rng.lognormal(10, 1, n),
            "score": rng.normal(size=n),
            "region": pd.Categorical(rng.choice(list("ABCDE"), n)),
            "plan": rng.choice(["basic", "plus", "pro"], n),
        }
    )
    logit = (
        0.04 * (df.age - 40)
        + df.score
        + 0.8 * (df.region == "A")
        - 0.5 * (df.plan == "basic")
    )
    y = (logit + rng.logistic(size=n) * 0.7 > 0.2).to_numpy().astype(int)
    return df, y


def pipeline_case(max_epochs: int) -> pd.DataFrame:
    """The Pipeline on a mixed DataFrame, 72 configurations x 5 folds."""
    X, y = mixed_frame()
    pre = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "plan"]),
            ("num", StandardScaler(), ["age", "income", "score"]),
        ]
    )
    grid = {
        "stkclassifier__k": [0.1, 0.3, 0.5, 0.7, 0.9, 1.0],
        "stkclassifier__C": [10.0, 1000.0],
        "stkclassifier__learning_rate": [0.1, 0.03],
        "stkclassifier__delta": [0.1, 0.01, 0.001],
    }
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    rows = []
    for batch in (16, "auto"):
        est = STkClassifier(
            batch_size=batch, max_epochs=max_epochs, device="cpu", random_state=0
        )
        pipe = make_pipeline(pre, est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            ours = STkSearchCV(pipe, grid, cv=cv, refit=False).fit(X, y)
            t_ours = time.perf_counter() - start
            start = time.perf_counter()
            ref = GridSearchCV(pipe, grid, cv=cv, n_jobs=2, refit=False).fit(X, y)
            t_ref = time.perf_counter() - start
        best_same = _best(ours) == _best(ref)
        rows.append(
            (batch, t_ref, t_ours, t_ref / t_ours, best_same, _agreement(ours, ref))
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "batch_size",
            "GridSearchCV n_jobs=2 (s)",
            "STkSearchCV (s)",
            "speed-up",
            "same best",
            "max |score diff|",
        ],
    )
    print(f"Pipeline on a 5,000-row mixed DataFrame, {len(ParameterGrid(grid))} "
          f"configurations x 5 folds, {max_epochs} epochs at most")  # fmt: skip
    print(table.round(4).to_string(index=False))
    return table


def _best(search) -> dict:
    r = search.cv_results_
    return r["params"][int(np.argmin(r["rank_test_score"]))]


def _sample(grid: dict, n: int | None) -> list[dict]:
    configs = list(ParameterGrid(grid))
    if n is None or n >= len(configs):
        return [{k: [v] for k, v in c.items()} for c in configs]
    pick = np.random.default_rng(0).choice(len(configs), n, replace=False)
    return [{k: [v] for k, v in configs[i].items()} for i in sorted(pick)]


def _agreement(ours, ref) -> float:
    lookup = {
        tuple(sorted(p.items())): s
        for p, s in zip(
            ours.cv_results_["params"], ours.cv_results_["mean_test_score"], strict=True
        )
    }
    return max(
        abs(lookup[tuple(sorted(p.items()))] - s)
        for p, s in zip(
            ref.cv_results_["params"], ref.cv_results_["mean_test_score"], strict=True
        )
    )


if __name__ == "__main__":
    main()
