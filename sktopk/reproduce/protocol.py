"""Experimental protocols (presets and grids) and the published tables.

A :class:`Protocol` holds everything that decides the numbers of a
reproduction: runs, hyper-parameter grids, early-stopping rule, epoch limit,
model, feature scaling and regression target scaling. Its
:meth:`Protocol.identity` is a short hash of those settings and the seed; a
results file only ever holds one identity.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .._validation import k_fraction
from ..losses import get_aggregate, names
from .published import published_table
from .splits import TARGET_SCALINGS, check_target_scaling, paper_scaled_datasets

__all__ = [
    "Protocol",
    "Cell",
    "PRESETS",
    "TABLES",
    "make_protocol",
    "table_cells",
    "TARGET_SCALINGS",
]

STOPPING_UNITS = ("step", "epoch")
#: Aggregates a table of this task leaves out (the paper does not run them).
_NOT_RUN = {"regression": ("maximum",)}
MODELS = ("mlp", "linear")
SCALINGS = ("standard", "none")


@dataclass(frozen=True)
class Protocol:
    """Settings of one reproduction.

    Attributes
    ----------
    name : str
        The preset the settings started from ("quick" or "paper").
    runs : int
        Random 50/25/25 splits (each with its own initial weights and data order).
    k : tuple of int or float
        k grid: an int is a number of samples, a float a fraction of n_train.
    C, lr, delta : tuple of float
        Inverse L2 strength, AdaGrad learning rate and STk smoothing grids.
    max_epochs : int
        Epoch limit of every configuration.
    stopping : {"step", "epoch"}
        "step": evaluate on validation every ``eval_every`` minibatches (the
        paper's rule); "epoch": evaluate once per epoch.
    patience : int
        Evaluations without an improvement of more than ``tol`` before a
        configuration stops; it is then rolled back to its best evaluation.
    eval_every : int
        Minibatches between evaluations under the "step" rule.
    tol : float
        Smallest validation improvement that counts.
    model : {"mlp", "linear"}
        One hidden layer of 10 ReLU units, or a linear model.
    scaling : {"standard", "none"}
        Features standardised on each run's training split, or left as they are.
    target_scaling : {"paper", "all"}
        Regression targets min-max scaled to [0, 1] over the dataset for the
        datasets the paper lists as scaled (housing, abalone, cpusmall; sinc's
        targets stay as generated), or for every regression dataset.
    batch_size : int
        Minibatch size.
    max_memory : int or None
        Memory budget in bytes for the members trained at once (default 1 GiB;
        None: half of the available memory).
    """

    name: str
    runs: int
    k: tuple = (1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    C: tuple = (1.0, 1e1, 1e2, 1e3, 1e4, 1e5)
    lr: tuple = (0.1, 0.05, 0.01, 0.005, 0.001)
    delta: tuple = (0.1, 0.01, 0.001, 1e-4)
    max_epochs: int = 100
    stopping: str = "step"
    patience: int = 1
    eval_every: int = 50
    tol: float = 1e-6
    model: str = "mlp"
    scaling: str = "standard"
    target_scaling: str = "paper"
    batch_size: int = 16
    hidden: int = field(default=10)
    #: Memory budget (bytes) of the members trained at once; it changes how
    #: the work is cut, not the numbers, so it is not part of the identity.
    max_memory: int | None = field(default=1 << 30, compare=False)

    def identity(self, seed: int) -> str:
        """Short hash of every setting that changes the numbers, and the seed.

        ``target_scaling="all"`` (every regression target scaled) is what every
        run did before the setting existed, so it is left out of the hash:
        results files written then keep their identity and resume under it.
        """
        settings = {k: v for k, v in asdict(self).items() if k != "max_memory"}
        if settings["target_scaling"] == "all":
            del settings["target_scaling"]
        text = json.dumps([settings, int(seed)], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def sizes(self, n_features: int) -> tuple[int, ...]:
        """Layer sizes of the model for ``n_features`` inputs."""
        if self.model == "linear":
            return (n_features, 1)
        return (n_features, self.hidden, 1)

    def grid(self, aggregate: str, n_train: int) -> dict[str, np.ndarray]:
        """All configurations of ``aggregate`` as arrays "lr", "C", "kappa", "delta".

        k (as the fraction kappa of ``n_train``) is only searched for the
        aggregates that have one, delta only for STk; the others use kappa=1
        and the first delta (unused by them).
        """
        uses = get_aggregate(aggregate).params
        ks = self.k if "k" in uses else (1.0,)
        deltas = self.delta if "delta" in uses else self.delta[:1]
        kappas = sorted({k_fraction(k, n_train) for k in ks})
        combos = list(itertools.product(kappas, self.C, self.lr, deltas))
        cols = zip(*combos, strict=True)
        return {
            name: np.asarray(col, dtype=np.float64)
            for name, col in zip(("kappa", "C", "lr", "delta"), cols, strict=True)
        }

    def describe(self) -> dict[str, str]:
        """Human-readable settings, for the report."""
        k = ", ".join(f"{v} sample" if isinstance(v, int) else f"{v:g}" for v in self.k)
        if self.stopping == "step":
            rule = (
                f"validation score every {self.eval_every} minibatches; stop after "
                f"{self.patience} evaluation(s) without an improvement > {self.tol:g}"
            )
        else:
            rule = (
                f"validation score every epoch; stop after {self.patience} "
                f"epoch(s) without an improvement > {self.tol:g}"
            )
        model = "linear" if self.model == "linear" else f"MLP, {self.hidden} ReLU units"
        return {
            "protocol": self.name,
            "runs": str(self.runs),
            "model": model,
            "feature scaling": self.scaling,
            "target scaling (regression)": _describe_targets(self.target_scaling),
            "k grid (ATk, MATk, STk)": k + " (floats are fractions of n_train)",
            "C grid": ", ".join(f"{v:g}" for v in self.C),
            "learning-rate grid": ", ".join(f"{v:g}" for v in self.lr),
            "delta grid (STk)": ", ".join(f"{v:g}" for v in self.delta),
            "early stopping": rule + "; roll back to the best evaluation",
            "epoch limit": str(self.max_epochs),
            "optimiser": f"AdaGrad, minibatches of {self.batch_size}",
        }


def _describe_targets(target_scaling: str) -> str:
    """The target scaling in words: which regression datasets are scaled."""
    from ..datasets import list_datasets

    span = "min-max scaled to [0, 1] over the dataset"
    if target_scaling == "all":
        return f"all: {span} for every regression dataset"
    scaled = paper_scaled_datasets()
    rest = [d for d in list_datasets("regression") if d not in scaled]
    return (
        f"paper: {span} for {', '.join(scaled)} (those the paper lists as "
        f"scaled); {', '.join(rest)} as generated"
    )


PRESETS: dict[str, Protocol] = {
    # Few runs and a small grid, under the per-epoch rule: a whole table in
    # minutes on two cores (see docs/results for the measured times).
    "quick": Protocol(
        name="quick",
        runs=10,
        k=(1, 0.1, 0.3, 0.5, 1.0),
        C=(1e1, 1e3, 1e5),
        lr=(0.1, 0.01),
        delta=(0.01,),
        max_epochs=40,
        stopping="epoch",
        patience=5,
    ),
    # The published protocol of Xia et al. (2024), as stated.
    "paper": Protocol(name="paper", runs=50, max_epochs=100, stopping="step"),
}


def make_protocol(name: str, **overrides) -> Protocol:
    """A preset with some settings replaced (``None`` values are ignored).

    Raises
    ------
    ValueError
        For an unknown preset or an invalid setting.
    """
    if name not in PRESETS:
        raise ValueError(
            f"unknown protocol {name!r}; choose one of: {', '.join(PRESETS)}"
        )
    changes = {k: v for k, v in overrides.items() if v is not None}
    protocol = replace(PRESETS[name], **changes)
    _check(protocol)
    return protocol


def _check(p: Protocol) -> None:
    positive = {"runs": p.runs, "max_epochs": p.max_epochs, "patience": p.patience}
    for key, value in positive.items():
        if int(value) < 1:
            raise ValueError(f"{key} must be at least 1; got {value}")
    if p.stopping not in STOPPING_UNITS:
        raise ValueError(
            f"stopping must be one of {STOPPING_UNITS}; got {p.stopping!r}"
        )
    if p.model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {p.model!r}")
    if p.scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}; got {p.scaling!r}")
    check_target_scaling(p.target_scaling)


@dataclass(frozen=True)
class Cell:
    """One entry of a table: a dataset, an individual loss and an aggregate."""

    table: int
    dataset: str
    loss: str
    aggregate: str

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.loss}/{self.aggregate}"


@dataclass(frozen=True)
class TableSpec:
    """Which losses, task and datasets make up a published table."""

    number: int
    task: str
    losses: tuple[str, ...]
    datasets: tuple[str, ...]
    aggregates: tuple[str, ...]


def _table_spec(number: int) -> TableSpec:
    from ..datasets import list_datasets

    rows = published_table(number)
    order = list_datasets()
    datasets = sorted(set(rows["dataset"]), key=order.index)
    losses = tuple(dict.fromkeys(rows["loss"]))
    task = rows["task"].iloc[0]
    # Every registered aggregate, but the maximum on regression tables, which
    # the paper leaves out (an outlier-fitting loss).
    skip = _NOT_RUN.get(task, ())
    aggregates = tuple(a for a in names("aggregate") if a not in skip)
    return TableSpec(number, task, losses, tuple(datasets), aggregates)


TABLES: dict[int, TableSpec] = {n: _table_spec(n) for n in (3, 4, 6)}


def table_cells(number: int, datasets: list[str] | None = None) -> list[Cell]:
    """The cells of table ``number``, for some of its datasets (default: all).

    Raises
    ------
    ValueError
        For an unknown table or a dataset that is not part of the table.
    """
    if number not in TABLES:
        valid = ", ".join(str(n) for n in TABLES)
        raise ValueError(f"unknown table {number!r}; choose one of: {valid}")
    spec = TABLES[number]
    chosen = list(spec.datasets) if not datasets else list(datasets)
    unknown = [d for d in chosen if d not in spec.datasets]
    if unknown:
        raise ValueError(
            f"dataset(s) {', '.join(map(repr, unknown))} not in table {number}; "
            f"its datasets are: {', '.join(spec.datasets)}"
        )
    return [
        Cell(number, d, loss, agg)
        for d in chosen
        for loss in spec.losses
        for agg in spec.aggregates
    ]
