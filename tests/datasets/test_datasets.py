import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import Bunch

from sktopk.datasets import (
    dataset_info,
    list_datasets,
    load_dataset,
    make_sinc,
    sinc_features,
)
from sktopk.datasets._base import _data_dir

REPO = Path(__file__).resolve().parents[2]

# Rows x features of the provenance table in datasets/README.md (and the paper's
# Table 9), written out here so that the registry is checked, not trusted.
SHAPES = {
    "appendicitis": (106, 7),
    "australian": (690, 14),
    "german": (1000, 24),
    "phoneme": (5404, 5),
    "spambase": (4601, 57),
    "titanic": (2201, 3),
    "wisconsin": (683, 9),
    "sinc": (1000, 10),
    "housing": (506, 13),
    "abalone": (4177, 8),
    "cpusmall": (8192, 12),
}
CLASS_COUNTS = {
    "appendicitis": {0: 85, 1: 21},
    "australian": {0: 383, 1: 307},
    "german": {1: 700, 2: 300},
    "phoneme": {0: 3818, 1: 1586},
    "spambase": {0: 2788, 1: 1813},
    "titanic": {-1: 1490, 1: 711},
    "wisconsin": {2: 444, 4: 239},
}
REGRESSION = ["sinc", "housing", "abalone", "cpusmall"]


def test_list_datasets():
    assert sorted(list_datasets()) == sorted(SHAPES)
    assert list_datasets("classification") == list(CLASS_COUNTS)
    assert list_datasets("regression") == REGRESSION
    with pytest.raises(ValueError, match="task must be one of"):
        list_datasets("ranking")


@pytest.mark.parametrize("name", list(SHAPES))
def test_dataset_info(name):
    info = dataset_info(name)
    assert (info.n_samples, info.n_features) == SHAPES[name]
    expected_task = "regression" if name in REGRESSION else "classification"
    assert info.task == expected_task
    assert info.n_classes == (None if name in REGRESSION else 2)
    assert info.generated == (name == "sinc")


@pytest.mark.parametrize("name", list(SHAPES))
def test_load_dataset_bunch(name):
    bunch = load_dataset(name)
    assert isinstance(bunch, Bunch)
    assert bunch.data.shape == SHAPES[name]
    assert bunch.target.shape == (SHAPES[name][0],)
    assert bunch.data.dtype == np.float64
    assert np.isfinite(bunch.data).all() and np.isfinite(bunch.target).all()
    assert len(bunch.feature_names) == SHAPES[name][1]
    assert all(isinstance(f, str) for f in bunch.feature_names)
    assert bunch.frame is None
    assert bunch.name == name and bunch.task == dataset_info(name).task
    rows, cols = SHAPES[name]
    assert f"{rows} samples x {cols} features" in bunch.DESCR
    assert "Source:" in bunch.DESCR


@pytest.mark.parametrize("name", list(CLASS_COUNTS))
def test_classification_targets(name):
    bunch = load_dataset(name)
    labels, counts = np.unique(bunch.target, return_counts=True)
    counted = dict(zip(labels.tolist(), counts.tolist(), strict=True))
    assert counted == CLASS_COUNTS[name]
    np.testing.assert_array_equal(bunch.target_names, labels)
    assert np.issubdtype(bunch.target.dtype, np.integer)


@pytest.mark.parametrize("name", REGRESSION)
def test_regression_targets(name):
    bunch = load_dataset(name)
    assert "target_names" not in bunch
    assert bunch.target.dtype == np.float64
    assert np.unique(bunch.target).size > 10


@pytest.mark.parametrize("name", ["german", "housing", "sinc"])
def test_return_X_y(name):
    bunch = load_dataset(name)
    X, y = load_dataset(name, return_X_y=True)
    assert isinstance(X, np.ndarray) and isinstance(y, np.ndarray)
    np.testing.assert_array_equal(X, bunch.data)
    np.testing.assert_array_equal(y, bunch.target)


@pytest.mark.parametrize("name", ["wisconsin", "german", "cpusmall", "sinc"])
def test_as_frame(name):
    plain = load_dataset(name)
    bunch = load_dataset(name, as_frame=True)
    assert isinstance(bunch.data, pd.DataFrame)
    assert isinstance(bunch.target, pd.Series)
    assert list(bunch.data.columns) == bunch.feature_names
    assert list(bunch.frame.columns) == bunch.feature_names + ["target"]
    np.testing.assert_array_equal(bunch.data.to_numpy(), plain.data)
    np.testing.assert_array_equal(bunch.target.to_numpy(), plain.target)
    X, y = load_dataset(name, return_X_y=True, as_frame=True)
    pd.testing.assert_frame_equal(X, bunch.data)
    pd.testing.assert_series_equal(y, bunch.target)
    # as scikit-learn's loaders: the frame's columns are data and target
    pd.testing.assert_frame_equal(bunch.frame[bunch.feature_names], bunch.data)
    pd.testing.assert_series_equal(bunch.frame["target"], bunch.target)


@pytest.mark.parametrize("bad", ["nope", "German", "", None, 3])
def test_unknown_name(bad):
    with pytest.raises(ValueError, match="Unknown dataset") as excinfo:
        load_dataset(bad)
    for name in SHAPES:
        assert name in str(excinfo.value)
    with pytest.raises(ValueError, match="valid names are"):
        dataset_info(bad)


def test_loads_are_independent():
    first = load_dataset("titanic")
    first.data[:] = 0
    assert load_dataset("titanic").data.any()


def test_data_dir_prefers_packaged_files(tmp_path):
    package = tmp_path / "site" / "sktopk" / "datasets"
    (package / "_data").mkdir(parents=True)
    (package / "_data" / "german.csv.gz").write_bytes(b"")
    assert _data_dir(package) == package / "_data"


def test_data_dir_falls_back_to_checkout(tmp_path):
    package = tmp_path / "repo" / "sktopk" / "datasets"
    package.mkdir(parents=True)
    (tmp_path / "repo" / "datasets").mkdir()
    (tmp_path / "repo" / "datasets" / "german.csv.gz").write_bytes(b"")
    assert _data_dir(package) == tmp_path / "repo" / "datasets"
    shutil.rmtree(tmp_path / "repo" / "datasets")
    with pytest.raises(FileNotFoundError, match="data files are missing"):
        _data_dir(package)


def test_data_dir_of_this_checkout():
    folder = _data_dir()
    for name in SHAPES:
        if name != "sinc":
            assert (folder / f"{name}.csv.gz").is_file()


# --- make_sinc ---------------------------------------------------------------


def _recover_x(X, centers):
    """x from the two largest Gaussian features of each row.

    log f_a - log f_b = 2 x (c_a - c_b) - (c_a^2 - c_b^2), linear in x.
    """
    a, b = np.argsort(X, axis=1)[:, -2:].T
    rows = np.arange(len(X))
    ca, cb = centers[a], centers[b]
    diff = np.log(X[rows, a]) - np.log(X[rows, b])
    return (diff + ca**2 - cb**2) / (2 * (ca - cb))


@pytest.mark.parametrize("n_samples, n_centers", [(1, 10), (250, 10), (40, 25)])
def test_make_sinc_shapes(n_samples, n_centers):
    X, y = make_sinc(n_samples, n_centers=n_centers, random_state=0)
    assert X.shape == (n_samples, n_centers) and y.shape == (n_samples,)
    X, y, x = make_sinc(n_samples, n_centers=n_centers, random_state=0, return_x=True)
    assert x.shape == (n_samples,)


def test_make_sinc_defaults():
    X, y = make_sinc(random_state=0)
    assert X.shape == (1000, 10) and y.shape == (1000,)


def test_make_sinc_deterministic():
    X1, y1 = make_sinc(200, random_state=42)
    X2, y2 = make_sinc(200, random_state=np.random.RandomState(42))
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, y3 = make_sinc(200, random_state=43)
    assert not np.array_equal(y1, y3)


def test_make_sinc_noise_free_target_is_sinc():
    X, y, x = make_sinc(2000, noise=0.0, random_state=1, return_x=True)
    centers = np.linspace(-10, 10, 10)
    np.testing.assert_allclose(_recover_x(X, centers), x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, np.sin(x) / x, rtol=1e-12, atol=1e-15)
    x_from_features = _recover_x(X, centers)
    np.testing.assert_allclose(
        y, np.sin(x_from_features) / x_from_features, rtol=0, atol=1e-9
    )


def test_make_sinc_inputs_and_features():
    X, _, x = make_sinc(5000, n_centers=7, random_state=2, return_x=True)
    assert x.min() >= -10 and x.max() <= 10
    assert x.min() < -9.9 and x.max() > 9.9 and abs(x.mean()) < 0.3
    centers = np.linspace(-10, 10, 7)
    np.testing.assert_allclose(X, np.exp(-((x[:, None] - centers) ** 2)))


@pytest.mark.parametrize("noise", [0.2, 1.0])
def test_make_sinc_noise_level(noise):
    _, y, x = make_sinc(20000, noise=noise, random_state=3, return_x=True)
    residual = y - np.sin(x) / x
    assert abs(residual.std() - noise) < 0.03 * noise
    assert abs(residual.mean()) < 4 * noise / np.sqrt(len(y))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_samples": 0},
        {"n_samples": 2.5},
        {"n_samples": True},
        {"noise": -0.1},
        {"noise": float("nan")},
        {"noise": "0.2"},
        {"n_centers": 0},
    ],
)
def test_make_sinc_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="must be"):
        make_sinc(**kwargs)


def test_sinc_features():
    X = sinc_features(np.array([-10.0, 0.0, 10.0]), n_centers=3)
    np.testing.assert_allclose(np.diag(X), 1.0)
    with pytest.raises(ValueError, match="1-D"):
        sinc_features(np.zeros((2, 2)))


def test_load_sinc_is_make_sinc_seed_0():
    bunch = load_dataset("sinc")
    X, y, x = make_sinc(random_state=0, return_x=True)
    np.testing.assert_array_equal(bunch.data, X)
    np.testing.assert_array_equal(bunch.target, y)
    np.testing.assert_array_equal(bunch.x, x)
    np.testing.assert_array_equal(bunch.centers, np.linspace(-10, 10, 10))


# --- the data ship inside the wheel ---------------------------------------------

_CHECK_INSTALLED = """
import json, sys
from pathlib import Path
import sktopk
from sktopk.datasets import list_datasets, load_dataset
from sktopk.datasets._base import _data_dir
shapes = {}
for name in list_datasets():
    bunch = load_dataset(name)
    shapes[name] = list(bunch.data.shape)
from sktopk.reproduce.published import load_published
print(json.dumps({"module": sktopk.__file__, "data_dir": str(_data_dir()),
                  "shapes": shapes, "published": len(load_published())}))
"""


def _copy_project(dest):
    """A clean copy of what the wheel is built from (no caches, no build output)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")
    shutil.copytree(REPO / "sktopk", dest / "sktopk", ignore=ignore)
    shutil.copytree(REPO / "datasets", dest / "datasets")
    shutil.copy2(REPO / "pyproject.toml", dest)
    readme = REPO / "README.md"
    if readme.is_file():
        shutil.copy2(readme, dest)
    else:  # the project README is not this test's concern; the metadata needs one
        (dest / "README.md").write_text("sktopk\n")


def _run(args, cwd, pythonpath=None):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_wheel_ships_the_data(tmp_path):
    source, wheels = tmp_path / "project", tmp_path / "wheels"
    target = tmp_path / "installed"
    _copy_project(source)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels]
    if importlib.util.find_spec("hatchling") is not None:
        build.append("--no-build-isolation")
    _run([*build, source], cwd=tmp_path)
    (wheel,) = wheels.glob("sktopk-*.whl")
    # The wheel alone in a folder first on the path; its dependencies from this
    # environment (a new venv would see the base interpreter's packages, not
    # this environment's).
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index"]
    _run([*install, "-q", "--target", target, wheel], tmp_path)
    # Run from a folder outside the repository so the source tree is not imported.
    check = [sys.executable, "-c", textwrap.dedent(_CHECK_INSTALLED)]
    report = json.loads(_run(check, tmp_path, pythonpath=target))
    assert Path(report["module"]).resolve().is_relative_to(target.resolve())
    assert Path(report["data_dir"]).parts[-3:] == ("sktopk", "datasets", "_data")
    assert report["shapes"] == {name: list(SHAPES[name]) for name in SHAPES}
    assert report["published"] == 94  # the published numbers ship too


@pytest.mark.parametrize("name", list_datasets())
def test_arrays_are_writable_and_c_ordered_as_sklearn_loaders(name):
    X, y = load_dataset(name, return_X_y=True)
    bunch = load_dataset(name)
    for a in (X, y, bunch.data, bunch.target):
        assert a.flags.writeable
    assert X.flags.c_contiguous and bunch.data.flags.c_contiguous
    y[:] = y[::-1]  # the user's copy: the next load is unchanged
    np.testing.assert_array_equal(load_dataset(name).target, bunch.target)


def test_descr_counts_duplicate_rows():
    frame = load_dataset("titanic", as_frame=True).frame
    expected = int(frame.duplicated().sum())  # 24 distinct rows of 2201
    assert expected == 2201 - len(frame.drop_duplicates())
    assert f"Duplicate rows: {expected} of 2201" in load_dataset("titanic").DESCR
    assert "Citation" in load_dataset("wisconsin").DESCR
    assert "Citation" not in load_dataset("sinc").DESCR  # synthetic
