"""Loading the bundled benchmark datasets as scikit-learn ``Bunch`` objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from ._registry import REGISTRY, TASKS, DatasetInfo, check_name, describe
from ._sinc import X_RANGE, make_sinc

TARGET_COLUMN = "target"
SINC_SEED = 0


def _data_dir(package_dir: Path | None = None) -> Path:
    """Folder holding the ``NAME.csv.gz`` files.

    An installed wheel has them in ``sktopk/datasets/_data``; a source checkout or
    an editable install has them in the repository's top-level ``datasets/``.
    ``package_dir`` (this package's folder by default) exists for the tests.
    """
    here = Path(__file__).resolve().parent if package_dir is None else package_dir
    candidates = (here / "_data", here.parents[1] / "datasets")
    for folder in candidates:
        if (folder / "german.csv.gz").is_file():
            return folder
    tried = " or ".join(str(folder) for folder in candidates)
    raise FileNotFoundError(f"The sktopk data files are missing (looked in {tried}).")


def list_datasets(task: str | None = None) -> list[str]:
    """Names of the benchmark datasets, in the order of the paper's tables.

    Parameters
    ----------
    task : {"classification", "regression"} or None, default=None
        Only the datasets of this task; all of them when None.

    Returns
    -------
    names : list of str
        Names accepted by :func:`load_dataset`.

    Examples
    --------
    >>> from sktopk.datasets import list_datasets
    >>> list_datasets("regression")
    ['sinc', 'housing', 'abalone', 'cpusmall']
    >>> len(list_datasets())
    11
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} or None, got {task!r}.")
    return [name for name, info in REGISTRY.items() if task in (None, info.task)]


def dataset_info(name: str) -> DatasetInfo:
    """Task, shape and provenance of a dataset, without loading it.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.

    Returns
    -------
    info : DatasetInfo
        With attributes ``task``, ``n_samples``, ``n_features``, ``n_classes``,
        ``target``, ``source``, ``preprocessing`` and ``licence``.

    Examples
    --------
    >>> from sktopk.datasets import dataset_info
    >>> info = dataset_info("german")
    >>> info.task, info.n_samples, info.n_features
    ('classification', 1000, 24)
    """
    return check_name(name)


def load_dataset(
    name: str, *, return_X_y: bool = False, as_frame: bool = False
) -> Bunch | tuple:
    """Load one of the benchmark datasets of Xia et al. (2024).

    The files keep the class labels and raw regression targets of their
    sources; nothing is scaled. ``"sinc"`` has no file: it is
    ``make_sinc(random_state=0)``, so that all 11 datasets load the same way.

    Parameters
    ----------
    name : str
        A name from :func:`list_datasets`.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.
    as_frame : bool, default=False
        Give ``data`` as a pandas DataFrame and ``target`` as a Series, and fill
        ``frame`` with both.

    Returns
    -------
    data : Bunch
        Dictionary-like object with the attributes

        data : ndarray of shape (n_samples, n_features), or DataFrame
            The features, as float64.
        target : ndarray of shape (n_samples,), or Series
            Class labels (int) or regression target (float).
        feature_names : list of str
            Names of the feature columns.
        target_names : ndarray of shape (n_classes,)
            Sorted class labels, as they appear in ``target``;
            classification only.
        frame : DataFrame or None
            Features and target together when ``as_frame=True``, else None.
        DESCR : str
            Source, task, shape and preprocessing of the dataset.
        name, task : str
            The dataset's name and ``"classification"`` or ``"regression"``.
        x, centers : ndarray
            Sinc only: the scalar inputs and the feature centres.
    (data, target) : tuple
        When ``return_X_y=True``.

    Raises
    ------
    ValueError
        If ``name`` is not a known dataset.

    See Also
    --------
    list_datasets, dataset_info, make_sinc

    Examples
    --------
    >>> from sktopk.datasets import load_dataset
    >>> bunch = load_dataset("wisconsin")
    >>> bunch.data.shape, bunch.task, bunch.target_names.tolist()
    ((683, 9), 'classification', [2, 4])
    >>> X, y = load_dataset("housing", return_X_y=True, as_frame=True)
    >>> X.shape, y.name
    ((506, 13), 'target')
    """
    info = check_name(name)
    frame, extras = _sinc_frame(info) if info.generated else (_read_frame(info), {})
    data = frame.drop(columns=TARGET_COLUMN).astype(np.float64)
    target = frame[TARGET_COLUMN]
    if return_X_y:
        return (data, target) if as_frame else _arrays(data, target)
    X, y = (data, target) if as_frame else _arrays(data, target)
    bunch = Bunch(
        data=X,
        target=y,
        feature_names=list(data.columns),
        # as scikit-learn's loaders: data is frame[feature_names], same dtypes
        frame=pd.concat([data, target], axis=1) if as_frame else None,
        DESCR=describe(info, frame),
        name=info.name,
        task=info.task,
        **extras,
    )
    if info.task == "classification":
        bunch.target_names = np.unique(target.to_numpy())
    return bunch


def _arrays(data: pd.DataFrame, target: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """New, writable, C-ordered arrays (pandas' copy-on-write hands out
    read-only views)."""
    return np.array(data.to_numpy(), order="C"), np.array(target.to_numpy())


def _read_frame(info: DatasetInfo) -> pd.DataFrame:
    frame = pd.read_csv(_data_dir() / f"{info.name}.csv.gz")
    if info.task == "regression":
        frame[TARGET_COLUMN] = frame[TARGET_COLUMN].astype(np.float64)
    return frame


def _sinc_frame(info: DatasetInfo) -> tuple[pd.DataFrame, dict]:
    X, y, x = make_sinc(
        info.n_samples, n_centers=info.n_features, random_state=SINC_SEED,
        return_x=True,
    )  # fmt: skip
    columns = [f"rbf_{j}" for j in range(info.n_features)]
    frame = pd.DataFrame(X, columns=columns).assign(**{TARGET_COLUMN: y})
    return frame, {"x": x, "centers": np.linspace(*X_RANGE, info.n_features)}
