"""Logic shared by the sktopk estimators: parameters, data, calling the engine."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from torch import nn

from .._device import resolve_device
from ..engine import (
    DivergenceError,
    ModuleAdapter,
    StackedMLP,
    TrainSpec,
    to_sequential,
)
from ..engine.grid import make_data, train_grid
from ..engine.hyper import Hyper
from ..engine.optim import OPTIMIZERS
from ..losses import get_aggregate
from ._sklearn_compat import Interval, RegistryOptions, StrOptions

_DTYPE = torch.float32

TRAINING_PARAMETER_CONSTRAINTS: dict = {
    "C": [Interval(Real, 0, None, closed="neither")],
    "model": [StrOptions({"linear", "mlp"}), callable],
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "optimizer": [RegistryOptions(lambda: OPTIMIZERS)],
    "optimizer_params": [dict, None],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_epochs": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "warm_start": ["boolean"],
}


@dataclass
class FitPlan:
    """What a fit trains on, decided before any weights exist."""

    X: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    task: str
    n_out: int
    spec: TrainSpec
    seed: int
    train_idx: np.ndarray
    val_idx: np.ndarray | None
    estimator: object = None


class _TopKEstimatorBase(BaseEstimator):
    """Training and inference shared by all sktopk estimators.

    Subclasses say what to train through ``_task_spec(y)``, which returns the
    encoded targets, the task ("binary" | "multiclass" | "regression"), the
    number of outputs, the individual loss and its parameters.
    """

    _aggregate_name = "average"
    #: Parameters that may differ between the members of one batch (the
    #: batched search and the reproduction train such members together), and
    #: the engine's per-member hyper-parameter each one sets (``_hyper``,
    #: through ``_engine_value``). Every other parameter is the same for a
    #: whole batch.
    _member_params = {"learning_rate": "lr", "C": "C"}

    # -- fitting -------------------------------------------------------------- #
    def _fit(self, X, y, sample_weight=None):
        plan = self._prepare(X, y, sample_weight)
        device = resolve_device(self.device)
        split = [(plan.train_idx, plan.val_idx)]
        data = make_data(plan.X, plan.target, split, plan.weight, device)
        model = self._make_model(plan.X.shape[1], plan.n_out, plan.seed, device)
        hyper = self._hyper(len(plan.train_idx))
        model, result = train_grid(data, plan.spec, model, hyper, [plan.seed])
        self._store(model, result)
        self.device_ = str(device)
        return self

    def _prepare(self, X, y, sample_weight=None) -> FitPlan:
        """Validate the data and decide everything a fit needs but the weights.

        Sets ``n_features_in_`` (and ``classes_`` for classifiers). The batched
        search calls this once per fold, then trains all configurations.
        """
        X, y = validate_data(
            self, X, y, dtype=(np.float64, np.float32), y_numeric=False
        )
        weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self._check_hidden_sizes()
        target, task, n_out, loss, loss_params = self._task_spec(y)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        train_idx, val_idx = self._split(len(X), y, task, rng)
        spec = self._train_spec(loss, task, loss_params)
        return FitPlan(X, target, weight, task, n_out, spec, seed, train_idx, val_idx)

    def _hyper(self, n_train: int) -> dict[str, float]:
        """Per-member hyper-parameters of the engine for ``n_train`` rows: one
        per declared member parameter, and the engine's neutral value for the
        ones the estimator does not have."""
        hyper = dict(Hyper.NEUTRAL)
        for param, key in self._member_params.items():
            hyper[key] = self._engine_value(param, n_train)
        return hyper

    def _engine_value(self, param: str, n_train: int) -> float:
        """The engine's value of member parameter ``param`` (overridden where
        a parameter is not passed on as it is)."""
        return float(getattr(self, param))

    def _train_spec(self, loss: str, task: str, loss_params: dict) -> TrainSpec:
        return TrainSpec(
            loss=loss,
            aggregate=self._aggregate_name,
            task=task,
            optimizer=self.optimizer,
            optimizer_options=dict(self.optimizer_params or {}),
            batch_size=int(self.batch_size),
            max_epochs=int(self.max_epochs),
            early_stopping=bool(self.early_stopping),
            patience=int(self.n_iter_no_change),
            tol=float(self.tol),
            loss_params=loss_params,
            verbose=int(self.verbose),
        )

    def _split(self, n, y, task, rng):
        idx = np.arange(n)
        if not self.early_stopping:
            return idx, None
        stratify = y if task != "regression" else None
        try:
            return train_test_split(
                idx,
                test_size=self.validation_fraction,
                stratify=stratify,
                random_state=rng,
            )
        except ValueError:  # a class too small to stratify
            return train_test_split(
                idx, test_size=self.validation_fraction, random_state=rng
            )

    def _make_model(self, n_features: int, n_out: int, seed: int, device):
        if self.warm_start and hasattr(self, "module_"):
            previous = copy.deepcopy(self.module_).to(device)
            if self.model in ("linear", "mlp"):
                return _stacked_from_module(previous, self._sizes(n_features, n_out))
            return ModuleAdapter(previous)
        gen = torch.Generator().manual_seed(seed)
        if callable(self.model):
            # Built as the user's code builds it: its initial weights come from
            # torch's global generator, which fit neither seeds nor restores
            # (that would race other threads of the process).
            module = self.model(n_features, n_out)
            if not isinstance(module, nn.Module):
                raise TypeError(
                    "model must be 'linear', 'mlp' or a callable returning an "
                    f"nn.Module; the callable returned {type(module).__name__}"
                )
            return ModuleAdapter(module.to(device=device, dtype=_DTYPE))
        sizes = self._sizes(n_features, n_out)
        return StackedMLP.initialize(sizes, [gen], 1, device=device, single=True)

    def _sizes(self, n_features: int, n_out: int) -> tuple[int, ...]:
        if self.model == "linear":
            return (n_features, n_out)
        return (n_features, *_hidden_sizes(self.hidden_layer_sizes), n_out)

    def _check_hidden_sizes(self) -> None:
        sizes = _hidden_sizes(self.hidden_layer_sizes)
        if any(int(h) != h or h < 1 for h in sizes):
            raise ValueError(
                "hidden_layer_sizes must be positive integers; got "
                f"{self.hidden_layer_sizes!r}"
            )

    def _store(self, model, result) -> None:
        if bool(result.diverged.any()):
            raise DivergenceError(
                "Training diverged: the loss became NaN or infinite at epoch "
                f"{int(result.n_epochs)} with learning_rate={self.learning_rate}. "
                "Try a smaller learning_rate, a smaller C penalty weight "
                "(larger C means less penalty), or standardised features."
            )
        if isinstance(model, ModuleAdapter):
            self.module_ = model.module.cpu().eval()
        else:
            self.module_ = to_sequential(model.sizes, model.member_state(())).eval()
        self.n_iter_ = int(result.n_epochs)
        self.loss_curve_ = [float(v) for v in result.loss_curve]
        self.best_epoch_ = self._best_epoch(result)
        self.validation_scores_ = (
            [float(v) for v in result.validation_scores]
            if self.early_stopping
            else None
        )
        if get_aggregate(self._aggregate_name).uses_threshold:
            self.lambda_ = float(result.lam)
        if not bool(result.converged):
            warnings.warn(
                f"{type(self).__name__} reached max_epochs={self.max_epochs} before "
                "converging; increase max_epochs or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _best_epoch(self, result) -> int:
        if not self.early_stopping:
            return self.n_iter_
        steps = int(result.best_step)
        return max(1, -(-steps // result.steps_per_epoch))

    # -- inference ------------------------------------------------------------ #
    def _forward(self, X) -> np.ndarray:
        """Raw model outputs, shape (n_samples, n_outputs)."""
        check_is_fitted(self, "module_")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        device = _inference_device(self.device)
        # Float64 inference: predictions do not depend on the row order or
        # batch size through float32 rounding in the matrix products.
        module = copy.deepcopy(self.module_).to(device, torch.float64).eval()
        with torch.no_grad():
            out = module(torch.as_tensor(X, dtype=torch.float64, device=device))
        out = out.detach().cpu().numpy().astype(np.float64)
        return out.reshape(len(X), -1)

    def __getstate__(self):
        state = super().__getstate__()
        if "module_" in state:  # always pickle CPU weights
            state["module_"] = copy.deepcopy(state["module_"]).cpu()
        return state


def _store_params(estimator, values: dict) -> None:
    """Store every ``__init__`` argument verbatim (scikit-learn's rule)."""
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def _inference_device(device) -> torch.device:
    """The fit-time device when it is still there, else the CPU (a model
    fitted on CUDA predicts on a CPU-only machine)."""
    try:
        return resolve_device(device)
    except ValueError:
        return torch.device("cpu")


def _hidden_sizes(sizes) -> tuple:
    if isinstance(sizes, Integral):
        return (int(sizes),)
    return tuple(sizes)


def _stacked_from_module(module: nn.Module, sizes) -> StackedMLP:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    params = []
    for lin in linears:
        params += [lin.weight.detach().T, lin.bias.detach()]
    return StackedMLP.from_params(sizes, params)
