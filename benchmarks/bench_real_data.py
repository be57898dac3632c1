"""The estimators with their defaults against scikit-learn's, as users run them.

Three comparisons, each measured whole in one run:

1. regression on raw targets (features standardised in a Pipeline, targets
   as given): 5-fold R^2 of STkRegressor against Ridge (linear) and against
   MLPRegressor (``model="mlp"``, the same hidden layer of 10);
2. the seven bundled classification sets: 5-fold accuracy and wall time of
   STkClassifier() against LogisticRegression();
3. large data, 200,000 x 50: wall time and test accuracy of the default
   STkClassifier against LogisticRegression, and of ``model="mlp"`` against
   MLPClassifier (same hidden sizes and epochs).

    python benchmarks/bench_real_data.py [--part 1 2 3] [--large-n 200000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import pandas as pd
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, cross_validate, train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktopk import STkClassifier, STkRegressor
from sktopk.datasets import list_datasets, load_dataset


def _cv(est, X, y, cv) -> tuple[float, float]:
    out = cross_validate(make_pipeline(StandardScaler(), est), X, y, cv=cv)
    return float(out["test_score"].mean()), float(out["fit_time"].mean())


def regression_table() -> pd.DataFrame:
    """5-fold R^2 on raw targets."""
    sets = {n: load_dataset(n, return_X_y=True) for n in ("housing", "abalone")}
    sets["cpusmall"] = load_dataset("cpusmall", return_X_y=True)
    X, y = make_regression(n_samples=2000, n_features=10, noise=10.0, random_state=0)
    sets["make_regression x100 + 500"] = (X, 100 * y + 500)
    rows = []
    cv = KFold(5, shuffle=True, random_state=0)
    for name, (X, y) in sets.items():
        models = {
            "Ridge": Ridge(),
            "STkRegressor": STkRegressor(random_state=0),
            "STkRegressor(loss='absolute')": STkRegressor(
                loss="absolute", random_state=0
            ),
            "MLPRegressor(10,)": MLPRegressor(
                hidden_layer_sizes=(10,), max_iter=200, random_state=0
            ),
            "STkRegressor(model='mlp')": STkRegressor(model="mlp", random_state=0),
        }
        row = {"dataset": name}
        for label, est in models.items():
            row[label] = round(_cv(est, X, y, cv)[0], 3)
        rows.append(row)
    return pd.DataFrame(rows)


def classification_table() -> pd.DataFrame:
    """5-fold accuracy and fit time on the bundled classification sets."""
    rows = []
    for name in list_datasets(task="classification"):
        X, y = load_dataset(name, return_X_y=True)
        lr_acc, lr_t = _cv(LogisticRegression(max_iter=1000), X, y, 5)
        st_acc, st_t = _cv(STkClassifier(random_state=0), X, y, 5)
        rows.append(
            {
                "dataset": name,
                "n": len(y),
                "LogisticRegression": round(lr_acc, 4),
                "STkClassifier": round(st_acc, 4),
                "difference": round(st_acc - lr_acc, 4),
                "fit s (LR)": round(lr_t, 3),
                "fit s (STk)": round(st_t, 3),
            }
        )
    return pd.DataFrame(rows)


def large_table(n: int) -> pd.DataFrame:
    """Wall time and test accuracy on ``n`` x 50."""
    X, y = make_classification(
        n_samples=n + 20_000, n_features=50, n_informative=20, random_state=0
    )
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=20_000, random_state=0)
    epochs = 20
    models = {
        "LogisticRegression()": LogisticRegression(max_iter=1000),
        "STkClassifier()": STkClassifier(random_state=0),
        f"MLPClassifier((10,), {epochs} epochs)": MLPClassifier(
            hidden_layer_sizes=(10,), max_iter=epochs, random_state=0
        ),
        f"STkClassifier(model='mlp', {epochs} epochs)": STkClassifier(
            model="mlp", max_epochs=epochs, random_state=0
        ),
    }
    rows = []
    for label, est in models.items():
        start = time.perf_counter()
        est.fit(Xtr, ytr)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "model": label,
                "fit s": round(seconds, 2),
                "epochs": getattr(est, "n_iter_", None),
                "test accuracy": round(est.score(Xte, yte), 4),
            }
        )
    out = pd.DataFrame(rows)
    out["time ratio"] = [
        round(out["fit s"][1] / out["fit s"][0], 2),
        round(out["fit s"][1] / out["fit s"][0], 2),
        round(out["fit s"][3] / out["fit s"][2], 2),
        round(out["fit s"][3] / out["fit s"][2], 2),
    ]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--large-n", type=int, default=200_000)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", ConvergenceWarning)
    if 1 in args.part:
        print("## Regression on raw targets (5-fold R^2)\n")
        print(regression_table().to_string(index=False), "\n", flush=True)
    if 2 in args.part:
        print("## Bundled classification sets (5-fold accuracy)\n")
        print(classification_table().to_string(index=False), "\n", flush=True)
    if 3 in args.part:
        print(f"## Large data ({args.large_n:,} x 50)\n")
        print(large_table(args.large_n).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
