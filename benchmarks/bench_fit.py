"""Time per epoch of the sktopk estimators against baselines, in one run.

``--case phoneme`` (default): STkClassifier against scikit-learn's
MLPClassifier, both an MLP with one hidden layer of 10 ReLU units and
minibatches of 16 on data of phoneme's training-split size (2700 x 5); the
ratio sktopk / scikit-learn (target <= 1).

``--case digits``: SmoothTopKSVMClassifier (k = 1 and 5) against
STkClassifier(aggregate="average"), i.e. cross-entropy, on digits (10 classes,
1797 x 64), the same MLP(10) and minibatches of 16; the ratio to
cross-entropy per step (target <= 1.5).

    python benchmarks/bench_fit.py [--case phoneme|digits] [--epochs 20]
        [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sktopk import SmoothTopKSVMClassifier, STkClassifier


def _time_fit(make, X, y, epochs: int, seed: int) -> float:
    """Seconds per epoch of one fit."""
    est = make(seed)
    start = time.perf_counter()
    est.fit(X, y)
    return (time.perf_counter() - start) / epochs


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["phoneme", "digits"], default="phoneme")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.case == "digits":
        return digits_case(args)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2700, 5))
    y = (X[:, 0] + X[:, 1] ** 2 + 0.5 * rng.normal(size=2700) > 1).astype(int)
    E = args.epochs
    common = dict(hidden_layer_sizes=(10,), batch_size=16)
    makers = {
        f"sktopk STk ({a})": lambda s, a=a: STkClassifier(
            aggregate=a,
            model="mlp",
            max_epochs=E,
            tol=0.0,
            n_iter_no_change=E + 1,
            device="cpu",
            random_state=s,
            **common,
        )
        for a in ("average", "stk")
    }
    makers["scikit-learn MLPClassifier (adam)"] = lambda s: MLPClassifier(
        max_iter=E, tol=0.0, n_iter_no_change=E + 1, random_state=s, **common
    )
    return _timing_table(makers, X, y, args, 2700, "ratio to scikit-learn")


def _timing_table(makers, X, y, args, n_rows: int, ratio: str) -> pd.DataFrame:
    """Seconds per epoch of each estimator of ``makers`` (batches of 16 over
    ``n_rows`` rows), with its ratio to the last one; printed and returned.

    Each repeat fits every estimator once, in a rotating order, so that noise
    on a shared machine hits them alike; the ratio is the median over repeats
    of the ratio within a repeat (its min and max beside it)."""
    names = list(makers)
    times = {name: [] for name in names}
    with warnings.catch_warnings(), threadpool_limits(args.threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for seed in range(args.repeats):
            shift = seed % len(names)
            for name in names[shift:] + names[:shift]:
                times[name].append(_time_fit(makers[name], X, y, args.epochs, seed))
    frame = pd.DataFrame(times)
    ratios = frame.div(frame[names[-1]], axis=0)
    table = pd.DataFrame(
        {
            "s/epoch": frame.median(),
            "us/step": frame.median() / np.ceil(n_rows / 16) * 1e6,
            ratio: ratios.median(),
            "min": ratios.min(),
            "max": ratios.max(),
        }
    )
    table.index.name = "estimator"
    print(table.round(4).to_string())
    return table


def digits_case(args) -> pd.DataFrame:
    """The smooth top-k SVM against cross-entropy per step on digits."""
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    E = args.epochs
    common = dict(
        model="mlp",
        hidden_layer_sizes=(10,),
        batch_size=16,
        max_epochs=E,
        tol=0.0,
        n_iter_no_change=E + 1,
        device="cpu",
    )
    makers = {
        "STkClassifier (stk)": lambda s: STkClassifier(random_state=s, **common),
        "SmoothTopKSVMClassifier (k=5)": lambda s: SmoothTopKSVMClassifier(
            k=5, random_state=s, **common
        ),
        "SmoothTopKSVMClassifier (k=1)": lambda s: SmoothTopKSVMClassifier(
            k=1, random_state=s, **common
        ),
        "STkClassifier (average: cross-entropy)": lambda s: STkClassifier(
            aggregate="average", random_state=s, **common
        ),
    }
    return _timing_table(makers, X, y, args, len(y), "ratio to cross-entropy")


if __name__ == "__main__":
    main()
