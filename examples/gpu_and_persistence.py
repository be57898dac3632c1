"""Train on the GPU when there is one, save the model, predict on a CPU-only machine.

What it shows
-------------
- ``device="auto"`` (the default) trains on CUDA when PyTorch sees a GPU and on
  the CPU otherwise; nothing else in the code changes.
- A fitted estimator is saved with ``pickle`` or ``joblib`` like any
  scikit-learn estimator. The saved state holds CPU weights, whatever device
  it was trained on.
- Loading works on a machine without a GPU: the linear model and the MLP
  predict in float64 on the CPU from their fitted arrays, whatever device
  trained them (a callable model uses its fit device if it is there and the
  CPU otherwise). The script checks this
  in a separate Python process started with ``CUDA_VISIBLE_DEVICES=""`` (a
  CPU-only process, even on a GPU machine), and with a model whose ``device``
  parameter says "cuda", as a model trained with ``device="cuda"`` would.

What to expect
--------------
The device used for training, the size of the two files, and a table saying,
for each way of loading, whether the predicted labels are the same as those
of the original model and how far the class scores are from its scores. On a
machine everything is bit-identical (difference 0.0), after a GPU fit too: the
same weights, and the same float64 inference on the CPU. The script exits with
an error if the labels differ or a score moves by more than 1e-9.

Run ``python gpu_and_persistence.py --out DIR`` (the model files are written
there); ``--fast`` (or ``SKTOPK_EXAMPLES_FAST=1``) trains for fewer epochs.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sktopk import STkClassifier
from sktopk.datasets import load_dataset

# Run in a fresh interpreter that cannot see any GPU: load, predict, save.
CPU_ONLY_SCRIPT = """
import sys, joblib, numpy as np, torch
assert not torch.cuda.is_available()
model = joblib.load(sys.argv[1])
X = np.load(sys.argv[2])
np.savez(sys.argv[3], predict=model.predict(X), scores=model.decision_function(X))
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: ``--out DIR`` and ``--fast``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("SKTOPK_EXAMPLES_OUT", ".")),
        help="folder for the model files (default: $SKTOPK_EXAMPLES_OUT or '.')",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        default=os.environ.get("SKTOPK_EXAMPLES_FAST", "0") not in ("", "0"),
        help="fewer epochs (also SKTOPK_EXAMPLES_FAST=1)",
    )
    return parser.parse_args(argv)


def outputs(model, X: np.ndarray) -> dict[str, np.ndarray]:
    """What we compare after a round trip: labels and class scores."""
    return {"predict": model.predict(X), "scores": model.decision_function(X)}


def predict_in_cpu_only_process(path: Path, X: np.ndarray, out: Path) -> dict:
    """Load ``path`` with joblib in a new process that sees no GPU and predict.

    Parameters
    ----------
    path : Path
        A model saved with ``joblib.dump``.
    X : ndarray of shape (n_samples, n_features)
        Data to predict.
    out : Path
        Folder for the temporary input and output arrays.

    Returns
    -------
    outputs : dict of ndarray
        ``predict`` and ``scores`` computed in that process.
    """
    x_path, result_path = out / "cpu_only_X.npy", out / "cpu_only_outputs.npz"
    np.save(x_path, X)
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-c", CPU_ONLY_SCRIPT, str(path), str(x_path)]
    subprocess.run([*cmd, str(result_path)], env=env, check=True)
    with np.load(result_path) as saved:
        result = {name: saved[name] for name in saved.files}
    x_path.unlink()
    result_path.unlink()
    return result


def as_if_trained_on_cuda(model: Pipeline) -> Pipeline:
    """A copy whose estimator says ``device="cuda"``, as after a GPU fit.

    On a CPU-only machine ``predict`` then falls back to the CPU.
    """
    clone = pickle.loads(pickle.dumps(model))
    clone[-1].set_params(device="cuda")
    return clone


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y = load_dataset("wisconsin", return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, stratify=y, random_state=0)
    clf = STkClassifier(k=0.5, max_epochs=5 if args.fast else 200, random_state=0)
    model = make_pipeline(StandardScaler(), clf).fit(X_train, y_train)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f'Trained with device="auto": on {device} (CUDA available: {device != "cpu"})'
    )
    reference = outputs(model, X_test)

    pickle_path, joblib_path = args.out / "stk_model.pkl", args.out / "stk_model.joblib"
    with open(pickle_path, "wb") as f:
        pickle.dump(model, f)
    joblib.dump(model, joblib_path)
    for path in (pickle_path, joblib_path):
        print(f"Saved {path} ({path.stat().st_size / 1024:.1f} KiB)")

    with open(pickle_path, "rb") as f:
        from_pickle = pickle.load(f)
    loaded = {
        "pickle": outputs(from_pickle, X_test),
        "joblib": outputs(joblib.load(joblib_path), X_test),
        "joblib, CPU-only process": predict_in_cpu_only_process(
            joblib_path, X_test, args.out
        ),
        'device="cuda" (CPU if no GPU)': outputs(as_if_trained_on_cuda(model), X_test),
    }
    table = compare(loaded, reference)
    print("\nOutputs after loading, against those of the original model:")
    print(table.to_string())
    # Across devices float64 rounding may differ in the last bits; on one
    # device the outputs are bit-identical.
    if not (table["same labels"].all() and (table["max |score diff|"] < 1e-9).all()):
        sys.exit("The round trip changed the outputs.")


def compare(loaded: dict[str, dict], reference: dict) -> pd.DataFrame:
    """Per round trip: same labels? largest difference of the class scores."""
    rows = {
        name: {
            "same labels": np.array_equal(out["predict"], reference["predict"]),
            "max |score diff|": np.abs(out["scores"] - reference["scores"]).max(),
            "bit-identical": np.array_equal(out["scores"], reference["scores"]),
        }
        for name, out in loaded.items()
    }
    return pd.DataFrame(rows).T.rename_axis("loaded with")


if __name__ == "__main__":
    main()
