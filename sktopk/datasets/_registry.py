"""What is known about each benchmark dataset: task, shape, source.

The entries follow the provenance table of the top-level ``datasets/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

_UCI = "UCI Machine Learning Repository (CC BY 4.0)"
_KEEL = "KEEL repository (free for research use, no explicit licence)"


@dataclass(frozen=True)
class DatasetInfo:
    """Description of one benchmark dataset.

    Attributes
    ----------
    name : str
        The name accepted by :func:`load_dataset`.
    task : {"classification", "regression"}
        The learning task.
    n_samples, n_features : int
        Shape of the data matrix.
    n_classes : int or None
        Number of classes, None for regression.
    target : str
        What the target is: class labels and counts, or the regression variable.
    source : str
        Where the data come from.
    preprocessing : str
        What was changed relative to the source.
    licence : str
        Licence of the underlying data, as far as it is known.
    """

    name: str
    task: str
    n_samples: int
    n_features: int
    n_classes: int | None
    target: str
    source: str
    preprocessing: str
    licence: str

    @property
    def generated(self) -> bool:
        """Whether the dataset is synthetic (made on the fly, no data file)."""
        return self.name == "sinc"


def _clf(name, n_samples, n_features, target, source, preprocessing, licence):
    return DatasetInfo(
        name, "classification", n_samples, n_features, 2, target, source,
        preprocessing, licence,
    )  # fmt: skip


def _reg(name, n_samples, n_features, target, source, preprocessing, licence):
    return DatasetInfo(
        name, "regression", n_samples, n_features, None, target, source,
        preprocessing, licence,
    )  # fmt: skip


# Order of the tables of Xia et al. (2024): classification first, then regression.
# Arguments: name, n_samples, n_features, target, source, preprocessing, licence.
# fmt: off
_INFOS = (
    _clf(
        "appendicitis", 106, 7, "class labels 0: 85, 1: 21",
        "KEEL appendicitis, via PMLB (EpistasisLab/pmlb)", "none", _KEEL,
    ),
    _clf(
        "australian", 690, 14, "class labels 0: 383, 1: 307",
        "UCI Statlog (Australian Credit Approval), via KEEL and PMLB",
        "none; nominal attributes are integer-coded in the source", _UCI,
    ),
    _clf(
        "german", 1000, 24, "class labels 1 (good): 700, 2 (bad): 300",
        "UCI Statlog (German Credit Data), all-numeric file german.data-numeric",
        "none; the source has no column names, so they are x0..x23", _UCI,
    ),
    _clf(
        "phoneme", 5404, 5, "class labels 0: 3818, 1: 1586",
        "KEEL/ELENA phoneme, via PMLB", "none", _KEEL,
    ),
    _clf(
        "spambase", 4601, 57, "class labels 0: 2788, 1 (spam): 1813",
        "UCI Spambase, via PMLB", "columns named as in UCI spambase.names", _UCI,
    ),
    _clf(
        "titanic", 2201, 3, "class labels -1: 1490, 1: 711",
        "KEEL titanic, via PMLB",
        "none; features are KEEL's numeric codes of Class, Age and Sex", _KEEL,
    ),
    _clf(
        "wisconsin", 683, 9, "class labels 2 (benign): 444, 4 (malignant): 239",
        "UCI Breast Cancer Wisconsin (Original)",
        "dropped the 16 of 699 rows with a missing Bare_Nuclei and the id column",
        _UCI,
    ),
    _reg(
        "sinc", 1000, 10, "sin(x)/x plus Gaussian noise of std 0.2",
        "synthetic: make_sinc(random_state=0), as in Xia et al. (2024)",
        "features exp(-(x - c_j)^2) for 10 evenly spaced centres c_j in [-10, 10]",
        "not applicable (synthetic)",
    ),
    _reg(
        "housing", 506, 13, "MEDV (raw) in [5, 50]", "UCI/StatLib Boston housing",
        "none; note that feature B is race-derived", "StatLib (no explicit licence)",
    ),
    _reg(
        "abalone", 4177, 8, "Rings (raw) in [1, 29]", "UCI Abalone",
        "nominal Sex coded as integers M=1, F=2, I=3 (LIBSVM's coding)", _UCI,
    ),
    _reg(
        "cpusmall", 8192, 12, "usr (raw) in [0, 99]",
        "Delve comp-activ cpuSmall, via PMLB (same data as LIBSVM cpusmall)",
        "none", "Delve (no explicit licence)",
    ),
)
# fmt: on

REGISTRY: dict[str, DatasetInfo] = {info.name: info for info in _INFOS}
TASKS = ("classification", "regression")


def check_name(name: str) -> DatasetInfo:
    """Return the entry of ``name`` or raise a ValueError listing the valid names."""
    if not isinstance(name, str) or name not in REGISTRY:
        valid = ", ".join(REGISTRY)
        raise ValueError(f"Unknown dataset {name!r}; valid names are: {valid}.")
    return REGISTRY[name]


def describe(info: DatasetInfo, frame=None) -> str:
    """The DESCR text of a dataset; with its ``frame`` (features and target),
    also its count of duplicate rows."""
    title = f"{info.name} dataset"
    lines = [
        title,
        "-" * len(title),
        f"Task: {info.task}",
        f"Shape: {info.n_samples} samples x {info.n_features} features",
        f"Target: {info.target}",
        f"Source: {info.source}",
        f"Preprocessing: {info.preprocessing}",
        f"Licence: {info.licence}",
        "Benchmark of: Xia, Liu, Mao, 'ST_k: A Scalable Module for Solving Top-k "
        "Problems', NeurIPS 2024 (Table 9).",
    ]
    if frame is not None:
        duplicates = int(frame.duplicated().sum())
        lines.append(
            f"Duplicate rows: {duplicates} of {len(frame)}"
            + (" (kept as in the source: equal rows can fall on both sides of a "
               "split)" if duplicates else "")
        )  # fmt: skip
    if not info.generated:
        lines.append(
            "Citation: cite the original donors of the source when publishing."
        )
    return "\n".join(lines) + "\n"
