"""Run every example in its fast mode, so that the examples never rot."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"

# Example script -> the files it must write into its output folder.
EXAMPLES = {
    "pipeline_gridsearch.py": ["pipeline_gridsearch.png"],
    "compare_aggregates.py": ["compare_aggregates.png"],
    "robust_regression.py": ["robust_regression.png"],
    "topk_label_noise.py": ["topk_label_noise.png"],
    "gpu_and_persistence.py": ["stk_model.pkl", "stk_model.joblib"],
}


def run_example(script: str, out: Path, *args: str) -> subprocess.CompletedProcess:
    """Run one example in a fresh interpreter, in fast mode, writing into out."""
    env = {
        **os.environ,
        "SKTOPK_EXAMPLES_FAST": "1",
        "MPLBACKEND": "Agg",
        # Two cores are shared: one thread per process keeps the run short.
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / script), "--out", str(out), *args],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES_DIR.glob("*.py")) == sorted(EXAMPLES)


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs_in_fast_mode(script, tmp_path):
    result = run_example(script, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), "an example prints its result"
    for name in EXAMPLES[script]:
        assert (tmp_path / name).is_file(), f"{script} did not write {name}"


def load_example(script: str):
    """Import an example as a module (its ``main`` does not run)."""
    spec = importlib.util.spec_from_file_location(script[:-3], EXAMPLES_DIR / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_documents_itself(script):
    doc = ast.get_docstring(ast.parse((EXAMPLES_DIR / script).read_text()))
    assert doc and "What it shows" in doc and "What to expect" in doc


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_fast_mode_from_flag_or_environment(script, monkeypatch, tmp_path):
    parse_args = load_example(script).parse_args
    monkeypatch.delenv("SKTOPK_EXAMPLES_FAST", raising=False)
    monkeypatch.delenv("SKTOPK_EXAMPLES_OUT", raising=False)
    assert not parse_args([]).fast
    assert parse_args([]).out == Path(".")
    assert parse_args(["--fast", "--out", str(tmp_path)]).fast
    assert parse_args(["--out", str(tmp_path)]).out == tmp_path
    monkeypatch.setenv("SKTOPK_EXAMPLES_FAST", "1")
    monkeypatch.setenv("SKTOPK_EXAMPLES_OUT", str(tmp_path))
    assert parse_args([]).fast
    assert parse_args([]).out == tmp_path
