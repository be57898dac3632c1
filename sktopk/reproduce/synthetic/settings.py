"""Settings of the synthetic experiments (Section 4 of Xia et al., 2024).

Each job (Table 1, Table 2, Figure 3, Figure 4) has a "quick" preset, which
runs in a few minutes on two cores, and a "paper" preset with the paper's
data sizes and 50 repetitions. :meth:`identity` hashes every setting that
changes the numbers, with the seed, as the tables' protocols do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

__all__ = [
    "JOBS",
    "Column",
    "COLUMNS",
    "TimingSettings",
    "GaussianSettings",
    "make_settings",
]

#: The jobs, as the command line names them.
JOBS = ("table1", "table2", "figure3", "figure4")
PROTOCOLS = ("quick", "paper")


@dataclass(frozen=True)
class Column:
    """One trained variant: an aggregate, and for STk its smoothing.

    ``delta`` is the smoothing's scale (LeakyReLU: its negative slope).
    """

    name: str
    aggregate: str
    smoothing: str = "srelu"
    delta: float = 0.01

    @property
    def label(self) -> str:
        names = {"average": "Average", "maximum": "Maximum", "atk": "ATk"}
        names |= {"matk": "MATk", "stk": "STk"}
        label = names.get(self.aggregate, self.aggregate)
        if self.aggregate == "stk":
            smooth = {"srelu": "SReLU", "elu": "ELU", "softplus": "SoftPlus"}
            label += f" ({smooth.get(self.smoothing, 'Leaky-ReLU')})"
        return label


#: Table 2's columns. ELU, SoftPlus and Leaky-ReLU "at their defaults" are
#: torch's (alpha = 1, beta = 1, negative slope 0.01); SReLU with delta = 0.01.
COLUMNS: dict[str, Column] = {
    c.name: c
    for c in (
        Column("average", "average"),
        Column("maximum", "maximum"),
        Column("atk", "atk"),
        Column("matk", "matk"),
        Column("stk_elu", "stk", "elu", 1.0),
        Column("stk_softplus", "stk", "softplus", 1.0),
        Column("stk_leaky_relu", "stk", "leaky_relu", 0.01),
        Column("stk_srelu", "stk", "srelu", 0.01),
    )
}


def _identity(settings, seed: int) -> str:
    text = json.dumps([asdict(settings), int(seed)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TimingSettings:
    """Table 1: the sum of the top ``k`` of ``n`` standard normal samples.

    Attributes
    ----------
    name : str
        The preset ("quick" or "paper").
    runs : int
        Repetitions of every method (a fresh sample each).
    n, k : int
        Samples and how many of the largest are summed (the paper's 10,000 and 5).
    bubble_n : int
        Samples given to the pure-Python bubble sort (quadratic time: the
        time at ``n`` is also extrapolated from it).
    bubble_runs : int
        Repetitions of the bubble sort.
    tol : float
        The iterative threshold methods stop when their top-k sum is within
        ``tol`` of the exact one (the paper's "error less than 1e-2").
    lr : float
        Step size of the gradient descent on the threshold (on the mean form
        ``k lam / n + mean([x - lam]_+)``).
    delta : float
        STk's SReLU smoothing.
    max_iter : int
        Iteration limit of the iterative methods.
    """

    name: str
    runs: int = 50
    n: int = 10_000
    k: int = 5
    bubble_n: int = 10_000
    bubble_runs: int = 3
    tol: float = 1e-2
    lr: float = 1.0
    delta: float = 0.01
    max_iter: int = 100_000

    def identity(self, seed: int) -> str:
        """Short hash of the settings and the seed."""
        return _identity(self, seed)

    def describe(self) -> dict[str, str]:
        """Human-readable settings, for the report."""
        return {
            "protocol": self.name,
            "repetitions": f"{self.runs} (bubble sort: {self.bubble_runs})",
            "data": f"top {self.k} of n = {self.n} N(0, 1) samples, fresh each run",
            "bubble sort": f"n = {self.bubble_n} (quadratic: scaled to n = {self.n})",
            "ATk / STk": (
                f"gradient descent on the threshold, step {self.lr:g}, until the "
                f"top-k sum is within {self.tol:g} of the exact one (at most "
                f"{self.max_iter} iterations); STk: SReLU, delta = {self.delta:g}"
            ),
        }


@dataclass(frozen=True)
class GaussianSettings:
    """Table 2 and Figures 3-4: logistic models on two imbalanced Gaussians.

    Attributes
    ----------
    name : str
        The preset ("quick" or "paper").
    runs : int
        Repetitions, each a fresh draw of the data and of the initial weights.
    n_train, n_val, n_test : int
        Rows of each set.
    n_features, n_informative, shift, rho, scale
        The data, see :func:`sktopk.datasets.make_imbalanced_gaussians`.
    negative_ratios : tuple of float
        Fractions of negatives in the training set (one value but for Figure 4).
    test_negative_ratio : float
        The same for the validation and test sets.
    columns : tuple of str
        Names in :data:`COLUMNS`: the aggregates (and smoothings) trained.
    k : tuple of float
        k grid of ATk, MATk and STk, as fractions of ``n_train``.
    C : tuple of float
        Grid of the inverse penalty strength; the penalty is
        ``||w||_1 / C`` ("l1") or ``||w||^2 / (2 C)`` ("l2").
    lr : tuple of float
        Adam learning-rate grid.
    penalty : {"l1", "l2"}
        The l1 penalty takes a proximal (soft-thresholding) step after each
        update, so that the weights have exact zeros.
    batch_size, max_epochs : int
    early_stopping : bool
        True: validation accuracy every ``eval_every`` minibatches; stop
        after ``patience`` evaluations without an improvement > ``tol`` and
        roll back to the best one. False: train until the training objective
        has not improved by ``tol`` for ``patience`` epochs (convergence).
    eval_every, patience : int
    tol : float
    groups_at_once : int
        Repetitions of one negative ratio trained in one batch (memory only;
        not in the identity).
    """

    name: str
    runs: int = 50
    n_train: int = 10_000
    n_val: int = 2_500
    n_test: int = 2_500
    n_features: int = 200
    n_informative: int = 10
    shift: float = 1.0
    rho: float = 0.25
    scale: float | None = None
    negative_ratios: tuple = (0.2,)
    test_negative_ratio: float = 0.5
    columns: tuple = tuple(COLUMNS)
    k: tuple = (0.1, 0.3, 0.5, 0.7, 0.9)
    C: tuple = (1.0, 10.0, 100.0, 1000.0)
    lr: tuple = (1e-3, 1e-2)
    penalty: str = "l1"
    batch_size: int = 512
    max_epochs: int = 200
    early_stopping: bool = True
    eval_every: int = 20
    patience: int = 10
    tol: float = 1e-4
    groups_at_once: int = field(default=20, compare=False)

    def identity(self, seed: int) -> str:
        """Short hash of the settings that change the numbers, and the seed."""
        return _identity(replace(self, groups_at_once=0), seed)

    def data_options(self) -> dict:
        """Keyword arguments of :func:`make_imbalanced_gaussians` but the
        negative ratio and the seed."""
        return {
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
            "n_features": self.n_features,
            "n_informative": self.n_informative,
            "shift": self.shift,
            "rho": self.rho,
            "scale": self.scale,
            "test_negative_ratio": self.test_negative_ratio,
        }

    def describe(self) -> dict[str, str]:
        """Human-readable settings, for the report."""
        scale = f"{self.rho:g}^0.5" if self.scale is None else f"{self.scale:g}"
        steps = self.eval_every * self.patience
        return {
            "protocol": self.name,
            "repetitions": f"{self.runs} (fresh data and initial weights each)",
            "data": (
                f"d = {self.n_features}, Sigma_jk = {scale} * {self.rho:g}^|j-k|, "
                f"mu_0 = 0, mu_1 = {self.shift:g} on the first "
                f"{self.n_informative} features; train {self.n_train} rows at "
                f"negative ratio {', '.join(f'{r:g}' for r in self.negative_ratios)}"
                f"; validation {self.n_val} and test {self.n_test} rows at "
                f"negative ratio {self.test_negative_ratio:g}"
            ),
            "model": f"logistic regression (linear, logistic loss), {self.penalty} "
            "penalty"
            + (" with a proximal step (exact zeros)" * (self.penalty == "l1")),
            "k grid (ATk, MATk, STk)": ", ".join(f"{k:g}" for k in self.k)
            + " (fractions of n_train)",
            "C grid (penalty 1/C)": ", ".join(f"{c:g}" for c in self.C),
            "learning-rate grid": ", ".join(f"{v:g}" for v in self.lr),
            "optimiser": f"Adam (torch's defaults), minibatches of "
            f"{self.batch_size}, one torch thread",
            "stopping": (
                f"validation accuracy every {self.eval_every} steps; stop after "
                f"{self.patience} evaluations ({steps} steps) without an "
                f"improvement > {self.tol:g}; roll back to the best"
                if self.early_stopping
                else "no early stopping: train until the training objective has "
                f"not improved by {self.tol:g} for {self.patience} epochs"
            ),
            "epoch limit": str(self.max_epochs),
            "selection": "the configuration with the best mean validation accuracy "
            "over repetitions (the test set is scored once, for reporting)",
        }


_TABLE2_QUICK = GaussianSettings(
    name="quick", runs=3, k=(0.1, 0.5), C=(100.0, 1000.0), lr=(1e-3, 1e-2),
    max_epochs=100,
)  # fmt: skip
_FIGURE3 = dict(
    n_train=1000, n_val=500, n_test=2000, n_features=2, n_informative=2,
    shift=2.0, rho=0.8, scale=1.0, test_negative_ratio=0.2, penalty="l2",
    columns=("average", "maximum", "atk", "matk", "stk_srelu"), C=(1e4,),
    lr=(0.01,), batch_size=64, early_stopping=False, tol=1e-6, patience=10,
    max_epochs=300,
)  # fmt: skip
_FIGURE4 = dict(
    negative_ratios=(0.5, 0.1, 0.05, 0.01, 0.005, 0.001),
    columns=("average", "atk", "stk_srelu"),
)

PRESETS: dict[str, dict[str, object]] = {
    "table1": {
        "quick": TimingSettings(name="quick", runs=50, bubble_n=1000, bubble_runs=5),
        "paper": TimingSettings(name="paper"),
    },
    "table2": {"quick": _TABLE2_QUICK, "paper": GaussianSettings(name="paper")},
    "figure3": {
        "quick": GaussianSettings(name="quick", runs=5, k=(0.1, 0.5, 0.9), **_FIGURE3),
        "paper": GaussianSettings(name="paper", **_FIGURE3),
    },
    "figure4": {
        "quick": replace(
            _TABLE2_QUICK,
            k=(0.1,),
            C=(1000.0,),
            lr=(1e-2,),
            max_epochs=60,
            **_FIGURE4,
        ),  # fmt: skip
        "paper": GaussianSettings(name="paper", **_FIGURE4),
    },
}


def make_settings(job: str, protocol: str = "quick", runs: int | None = None):
    """The settings of ``job`` under ``protocol``, with ``runs`` if given.

    Raises
    ------
    ValueError
        For an unknown job or protocol, or ``runs < 1``.
    """
    if job not in PRESETS:
        raise ValueError(f"unknown job {job!r}; choose one of: {', '.join(JOBS)}")
    if protocol not in PRESETS[job]:
        raise ValueError(
            f"unknown protocol {protocol!r}; choose one of: {', '.join(PROTOCOLS)}"
        )
    settings = PRESETS[job][protocol]
    if runs is None:
        return settings
    if int(runs) < 1:
        raise ValueError(f"runs must be at least 1; got {runs}")
    return replace(settings, runs=int(runs))
