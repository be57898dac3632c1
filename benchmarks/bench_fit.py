"""Time per epoch of STkClassifier against scikit-learn's MLPClassifier.

Both train an MLP with one hidden layer of 10 ReLU units with minibatches of 16
on data of phoneme's training-split size (2700 x 5), in the same run. Prints
the median time per epoch and the ratio sktopk / scikit-learn (target <= 1).

    python benchmarks/bench_fit.py [--epochs 20] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from sktopk import STkClassifier


def _time_fit(make, X, y, epochs: int, repeats: int) -> float:
    times = []
    for seed in range(repeats):
        est = make(seed)
        start = time.perf_counter()
        est.fit(X, y)
        times.append((time.perf_counter() - start) / epochs)
    return float(np.median(times))


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
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
    rows = []
    with warnings.catch_warnings(), threadpool_limits(args.threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, make in makers.items():
            rows.append((name, _time_fit(make, X, y, E, args.repeats)))
    table = pd.DataFrame(rows, columns=["estimator", "s/epoch"]).set_index("estimator")
    table["us/step"] = table["s/epoch"] / np.ceil(2700 / 16) * 1e6
    table["ratio to scikit-learn"] = table["s/epoch"] / table["s/epoch"].iloc[-1]
    print(table.round(4).to_string())
    return table


if __name__ == "__main__":
    main()
