"""Logic shared by the sktopk estimators: parameters, data, calling the engine."""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import (
    _check_sample_weight,
    validate_data,
)
from torch import nn

from .._device import resolve_device
from ..engine import (
    DivergenceError,
    ModuleAdapter,
    StackedMLP,
    TrainSpec,
)
from ..engine.grid import constant_columns, make_data, train_grid
from ..engine.hyper import Hyper
from ..engine.models import evaluating
from ..engine.optim import OPTIMIZERS, make_optimizer
from ..engine.trainer import Resume, largest_training_loss
from ..losses import get_aggregate
from ._fitted import FittedNetwork
from ._sklearn_compat import Interval, RegistryOptions, StrOptions
from ._statistics import constant_values, rms_deviation, row_blocks, weighted_mean

_DTYPE = torch.float32

TRAINING_PARAMETER_CONSTRAINTS: dict = {
    "C": [Interval(Real, 0, None, closed="right")],
    "penalty": [StrOptions({"l2", "l1", "elasticnet"})],
    "l1_ratio": [Interval(Real, 0, 1, closed="both")],
    "model": [StrOptions({"linear", "mlp"}), callable],
    "hidden_layer_sizes": [
        "array-like",
        Interval(Integral, 1, None, closed="left"),
        None,
    ],
    "optimizer": [RegistryOptions(lambda: OPTIMIZERS)],
    "optimizer_params": [dict, None],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
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

#: ``class_weight`` of the classifiers, as in scikit-learn's.
CLASS_WEIGHT_CONSTRAINT = {"class_weight": [dict, StrOptions({"balanced"}), None]}


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


class _TopKEstimatorBase(FittedNetwork, BaseEstimator):
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
    _member_params = {"learning_rate": "lr", "C": "C", "l1_ratio": "l1_ratio"}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # densified: the models are dense
        return tags

    # -- fitting -------------------------------------------------------------- #
    def _fit(self, X, y, sample_weight=None, *, warn: bool = True):
        """Fit; ``warn=False`` leaves out the ConvergenceWarnings (a search's
        members report none)."""
        with self._kept_if_failing():
            return self._fit_checked(X, y, sample_weight, warn)

    @contextlib.contextmanager
    def _kept_if_failing(self):
        """Put the estimator back as it was if the fit fails or is refused
        (interrupted too): a fitted estimator keeps its model with its own
        ``classes_``, feature counts and target scale, not the refused data's."""
        saved = dict(self.__dict__)
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit_checked(self, X, y, sample_weight=None, warn: bool = True):
        previous = self._previous_fit()
        plan = self._prepare(X, y, sample_weight)
        device = resolve_device(self.device)
        split = [(plan.train_idx, plan.val_idx)]
        data = make_data(plan.X, plan.target, split, plan.weight, device)
        model = self._make_model(plan, data, previous)
        units = weight_units(plan)
        self._check_k_units(plan, units)
        hyper = self._hyper(units)
        model, result = train_grid(data, plan.spec, model, hyper, [plan.seed])
        self._store(model, result, warn=warn)
        if warn:
            self._warn_if_stalled(model, data, plan, result, hyper)
        self._continue_curves(previous)
        self.device_ = str(device)
        return self

    def _partial_fit(self, X, y, classes=None, sample_weight=None):
        """One pass over ``(X, y)``, continuing the weights, optimizer state
        and threshold of the previous ``partial_fit`` calls (the weights
        alone after a ``fit``); nothing changes if it fails."""
        with self._kept_if_failing():
            return self._partial_fit_checked(X, y, classes, sample_weight)

    def _partial_fit_checked(self, X, y, classes=None, sample_weight=None):
        first = "n_iter_" not in self.__dict__  # after fit, continue from it
        if getattr(self, "class_weight", None) == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: a chunk's "
                "class counts are not the data's. Compute the weights once, e.g. "
                "dict(zip(classes, compute_class_weight('balanced', "
                "classes=classes, y=y_sample))) from a large enough sample of y, "
                "and pass them as class_weight."
            )
        if is_classifier(self):
            self._set_partial_classes(classes, first)
        previous = None if first else self._fitted_summary()
        keep = not first or is_classifier(self)  # classes_ set from `classes`
        plan = self._prepare(X, y, sample_weight, reset=first, keep=keep)
        plan.spec.max_epochs, plan.spec.early_stopping = 1, False
        plan.train_idx, plan.val_idx = np.arange(len(plan.X)), None
        device = resolve_device(self.device)
        data = make_data(
            plan.X, plan.target, [(plan.train_idx, None)], plan.weight, device
        )
        model = self._make_model(plan, data, previous)
        state = self.__dict__.get("_partial_state") or {}
        resume = Resume(state["lam"], state["optimizer"]) if state else None
        # An integer k counts the first call's rows; later chunks, of any
        # size, keep that fraction.
        if state:
            k_rows = state["k_rows"]
        else:
            k_rows = weight_units(plan)
            self._check_k_units(plan, k_rows)
        hyper = self._hyper(k_rows)
        model, result = train_grid(data, plan.spec, model, hyper, [plan.seed], resume)
        self._store(model, result, warn=False)
        self._partial_state = {
            "lam": float(result.lam) if self._uses_lambda() else None,
            "optimizer": result.optimizer_state,
            "k_rows": k_rows,
        }
        self._continue_curves(previous)
        self.device_ = str(device)
        return self

    def _set_partial_classes(self, classes, first: bool) -> None:
        if first and classes is None:
            raise ValueError(
                "classes must be given to the first partial_fit call: every "
                "label y can take, e.g. classes=np.unique(y_all)"
            )
        if classes is None:
            return
        given = np.unique(classes)
        if first:
            if len(given) < 2:
                raise ValueError(
                    f"classes must hold at least two labels; got {given.tolist()}"
                )
            self.classes_ = given
        elif not np.array_equal(given, self.classes_):
            raise ValueError(
                f"classes={given.tolist()} differs from the fitted classes "
                f"{self.classes_.tolist()}"
            )

    def _uses_lambda(self) -> bool:
        return get_aggregate(self._aggregate_name).uses_threshold

    def _check_params(self) -> None:
        """Validate the parameters, alone and together, before any data is
        seen (also called by the batched search on every grid point)."""
        self._validate_params()
        self._hidden_sizes()
        # the optimizer's options, built on a scalar (no data needed)
        make_optimizer(self.optimizer, [torch.zeros(())], **self._optimizer_options())

    def _optimizer_options(self) -> dict:
        return dict(self.optimizer_params or {})

    def _prepare(
        self, X, y, sample_weight=None, reset: bool = True, keep: bool = False
    ) -> FitPlan:
        """Validate the data and decide everything a fit needs but the weights.

        Sets ``n_features_in_`` (and ``classes_`` for classifiers). The batched
        search calls this once per fold, then trains all configurations.
        ``reset=False`` checks ``X`` against the fitted ``n_features_in_``;
        ``keep=True`` encodes ``y`` with the fitted classes (or target scale).
        """
        self._check_params()
        X, y = validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=(np.float64, np.float32),
            accept_sparse=("csr", "csc", "coo"),
            y_numeric=not is_classifier(self),
        )
        X = _densified(X)
        weight = _check_weight(sample_weight, X)
        task_spec = self._task_spec(y, keep=keep, weight=weight)
        target, task, n_out, loss, loss_params = task_spec
        if getattr(self, "class_weight", None) is not None:
            weight = weight * _class_weights(self.class_weight, y, self.classes_)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        train_idx, val_idx = self._split(len(X), y, task, rng)
        if reset or "_x_shift" not in self.__dict__:  # later partial_fit: kept
            # Weighted as the losses are (class weights are sample weights),
            # on the training rows (the validation rows weigh 0 here).
            counted = weight if val_idx is None else _without(weight, val_idx)
            self._x_shift, self._x_scale = _input_standardisation(
                X, self.model, counted
            )
        X = _standardised(X, self._x_shift, self._x_scale)
        self.n_outputs_ = n_out
        spec = self._train_spec(loss, task, loss_params, len(train_idx))
        return FitPlan(X, target, weight, task, n_out, spec, seed, train_idx, val_idx)

    def _hyper(self, n_train: int) -> dict[str, float]:
        """Per-member hyper-parameters of the engine for ``n_train`` rows: one
        per declared member parameter, and the engine's neutral value for the
        ones the estimator does not have."""
        hyper = dict(Hyper.NEUTRAL)
        for param, key in self._member_params.items():
            hyper[key] = self._engine_value(param, n_train)
        return hyper

    def _check_k_units(self, plan: FitPlan, units: int | float) -> None:
        """Warn where an integer ``k`` counts weight units far from the rows
        (overridden where the estimator has such a ``k``)."""

    def _engine_value(self, param: str, n_train: int) -> float:
        """The engine's value of member parameter ``param`` (overridden where
        a parameter is not passed on as it is)."""
        if param == "l1_ratio":  # the share of the penalty that is l1
            return {"l2": 0.0, "l1": 1.0}.get(self.penalty, float(self.l1_ratio))
        return float(getattr(self, param))

    def _batch_size(self, n_train: int) -> int:
        """``batch_size``, with "auto" resolved for ``n_train`` rows.

        "auto": ``n_train // 10`` clipped to [16, 200] up to 20,000 rows (ten
        minibatches an epoch on small data, so that the epoch's objective is
        a stable stopping signal; 200, MLPClassifier's, above 2,000 rows),
        then ``n_train // 100`` clipped to [200, 1000] (a hundred an epoch:
        on large data a step costs little more at 1000 rows than at 200).
        Never more than ``n_train``: a larger integer is clipped with a
        warning, as ``MLPClassifier`` does.
        """
        if self.batch_size != "auto":
            if self.batch_size > n_train:
                warnings.warn(
                    f"batch_size={self.batch_size} is larger than the "
                    f"{n_train} training rows; it is clipped to {n_train}.",
                    UserWarning,
                    stacklevel=4,
                )
                return n_train
            return int(self.batch_size)
        if n_train <= 20_000:
            size = min(200, max(16, n_train // 10))
        else:
            size = min(1000, max(200, n_train // 100))
        return max(1, min(n_train, size))

    def _train_spec(
        self, loss: str, task: str, loss_params: dict, n_train: int
    ) -> TrainSpec:
        return TrainSpec(
            loss=loss,
            aggregate=self._aggregate_name,
            task=task,
            optimizer=self.optimizer,
            optimizer_options=self._optimizer_options(),
            batch_size=self._batch_size(n_train),
            max_epochs=int(self.max_epochs),
            early_stopping=bool(self.early_stopping),
            patience=int(self.n_iter_no_change),
            tol=float(self.tol),
            loss_params=loss_params,
            verbose=int(self.verbose),
            validation_error=self._validation_error(),
        )

    def _validation_error(self) -> str:
        """The regression error the early-stopping score measures."""
        return "squared"

    def _split(self, n, y, task, rng):
        idx = np.arange(n)
        if not self.early_stopping:
            return idx, None
        fraction = self.validation_fraction
        if task == "regression":
            return train_test_split(idx, test_size=fraction, random_state=rng)
        n_val, n_classes = math.ceil(fraction * n), len(np.unique(y))
        if n_val < n_classes:  # as MLPClassifier
            raise ValueError(
                f"early_stopping: the validation split (validation_fraction="
                f"{fraction} of {n} samples: {n_val}) is smaller than the "
                f"number of classes ({n_classes}); raise validation_fraction or "
                "set early_stopping=False"
            )
        try:
            return train_test_split(
                idx, test_size=fraction, stratify=y, random_state=rng
            )
        except ValueError:  # a class too small to stratify
            warnings.warn(
                "early_stopping: a class has too few samples to stratify the "
                f"validation split (validation_fraction={fraction}); the split "
                "is drawn without stratification, so a small class may be "
                "missing from training",
                UserWarning,
                stacklevel=4,
            )
            return train_test_split(idx, test_size=fraction, random_state=rng)

    # -- the model ------------------------------------------------------------ #
    def _previous_fit(self) -> dict | None:
        """What a warm start continues from (None for a fresh fit)."""
        self.__dict__.pop("_partial_state", None)  # fit ends a partial_fit run
        if not (self.warm_start and "n_iter_" in self.__dict__):
            return None
        return self._fitted_summary()

    def _fitted_summary(self) -> dict:
        """The fitted model's kind, sizes, classes and curves."""
        return {
            **self._network_summary(),
            "classes": getattr(self, "classes_", None),
            "n_iter": self.n_iter_,
            "loss_curve": list(self.loss_curve_),
            "validation_scores": getattr(self, "validation_scores_", None),
        }

    def _continue_curves(self, previous: dict | None) -> None:
        """After a warm fit or a later ``partial_fit`` call, the epochs and
        curves count on from the earlier ones (as MLPClassifier's)."""
        if previous is None:
            return
        self.best_epoch_ += previous["n_iter"]
        self.n_iter_ += previous["n_iter"]
        self.loss_curve_ = previous["loss_curve"] + self.loss_curve_
        earlier = previous["validation_scores"]
        if earlier is not None and self.validation_scores_ is not None:
            self.validation_scores_ = list(earlier) + self.validation_scores_

    def _make_model(self, plan: FitPlan, data, previous: dict | None = None):
        device = data.X.device
        n_features, n_out = plan.X.shape[1], plan.n_out
        if previous is not None:
            self._check_warm_start(previous, n_features, n_out)
            if previous["model"] == "callable":
                # module_ is in eval mode: trained, it trains in train mode
                module = self.module_.train()
                return ModuleAdapter(module.to(device=device, dtype=_DTYPE))
            return self._stacked_weights(device, self._x_shift, self._x_scale)
        if callable(self.model):
            return ModuleAdapter(self._user_module(n_features, n_out, device))
        gen = torch.Generator().manual_seed(plan.seed)
        sizes = self._sizes(n_features, n_out)
        model = StackedMLP.initialize(sizes, [gen], 1, device=device, single=True)
        model.silence_inputs(constant_columns(data)[0])
        return model

    def _user_module(self, n_features: int, n_out: int, device) -> nn.Module:
        """The callable model's module, checked to give ``n_out`` outputs.

        Built as the user's code builds it: its initial weights come from
        torch's global generator, which fit neither seeds nor restores (that
        would race other threads of the process).
        """
        module = self.model(n_features, n_out)
        if not isinstance(module, nn.Module):
            raise TypeError(
                "model must be 'linear', 'mlp' or a callable returning an "
                f"nn.Module; the callable returned {type(module).__name__}"
            )
        module = module.to(device=device, dtype=_DTYPE)
        with torch.no_grad(), evaluating(module):  # no statistics, no draws
            probe = module(torch.zeros(2, n_features, device=device, dtype=_DTYPE))
        width = 1 if probe.dim() == 1 else probe.shape[-1]
        if probe.dim() > 2 or probe.shape[0] != 2 or width != n_out:
            raise ValueError(
                f"model(n_features={n_features}, n_outputs={n_out}) must map "
                f"(n_samples, {n_features}) inputs to (n_samples, {n_out}) "
                f"outputs; it gave shape {tuple(probe.shape)} for 2 samples"
            )
        return module

    def _check_warm_start(self, previous: dict, n_features: int, n_out: int) -> None:
        """A clear ValueError when a warm start cannot reuse the weights."""
        kind = self.model if isinstance(self.model, str) else "callable"
        sizes = (n_features, n_out) if kind == "callable" else None
        sizes = sizes or self._sizes(n_features, n_out)
        changes = []
        if previous["classes"] is not None and not np.array_equal(
            previous["classes"], self.classes_
        ):
            changes.append(
                f"classes {np.asarray(previous['classes']).tolist()} -> "
                f"{self.classes_.tolist()}"
            )
        if kind != previous["model"]:
            changes.append(f"model {previous['model']!r} -> {kind!r}")
        elif previous["sizes"] != sizes:
            changes.append(f"layer sizes {previous['sizes']} -> {sizes}")
        if changes:
            raise ValueError(
                "warm_start=True cannot continue from the previous fit: "
                + "; ".join(changes)
                + ". Fit with warm_start=False to start afresh."
            )

    def _sizes(self, n_features: int, n_out: int) -> tuple[int, ...]:
        return (n_features, *self._hidden_sizes(), n_out)

    def _hidden_sizes(self) -> tuple[int, ...]:
        """The hidden layers: none for "linear", ``hidden_layer_sizes`` (by
        default one layer of 10, the paper's MLP) for "mlp"."""
        return hidden_layers(self.model, self.hidden_layer_sizes)

    # -- the fitted state ----------------------------------------------------- #
    def _store(self, model, result, index: tuple = (), warn: bool = True) -> None:
        """Keep member ``index`` of a trained ``model`` as this estimator's
        fitted state; DivergenceError if it diverged."""
        curve = [float(v[index]) for v in result.loss_curve]
        if bool(result.diverged[index]):
            raise DivergenceError(
                "Training diverged: the loss became NaN or infinite at epoch "
                f"{int(result.n_epochs[index])} with "
                f"learning_rate={self.learning_rate}. {self._divergence_advice()}"
            )
        low, high = _blow_up(curve)
        if high is not None:
            raise DivergenceError(
                f"Training diverged: the training objective grew from {low:.4g} "
                f"to {high:.4g} with learning_rate={self.learning_rate}. "
                f"{self._divergence_advice()}"
            )
        self._store_weights(model, index, self._x_shift, self._x_scale)
        self.n_iter_ = int(result.n_epochs[index])
        self.loss_curve_ = curve
        self.best_epoch_ = self._best_epoch(result, index)
        self.validation_scores_ = (
            [float(v[index]) for v in result.validation_scores]
            if self.early_stopping
            else None
        )
        if self._uses_lambda():
            self.lambda_ = self._user_lambda(float(result.lam[index]))
        else:  # a refit with an aggregate that has no threshold
            self.__dict__.pop("lambda_", None)
        if warn and not bool(result.converged[index]):
            warnings.warn(
                f"{type(self).__name__} reached max_epochs={self.max_epochs} before "
                "converging (the training objective still moved by more than "
                "tol); increase max_epochs or tol, or, where loss_curve_ "
                "oscillates, lower learning_rate.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _divergence_advice(self) -> str:
        """What to change after a divergence."""
        advice = (
            "Try a smaller learning_rate (for a callable model, standardised "
            "features too)."
        )
        ratio = self.learning_rate / self.C
        if self.optimizer == "sgd" and ratio >= 0.5:
            advice += (
                f" With optimizer='sgd' the penalty's own step, learning_rate / C "
                f"= {ratio:.3g}, overshoots from 1 on: a larger C or a smaller "
                "learning_rate."
            )
        return advice

    def _warn_if_stalled(self, model, data, plan, result, hyper) -> None:
        """Warn when the threshold ended above every training loss (by more
        than the smoothing ``delta``): the aggregate's gradient then vanishes
        and training stops learning, which the objective's plateau hides (a
        small k under AdaGrad: lambda's steps, k / n, cannot bring it down)."""
        if not self._uses_lambda():
            return
        lam, top = float(result.lam), largest_training_loss(model, data, plan.spec)
        if lam > top + float(hyper.get("delta", 0.0)):
            warnings.warn(
                f"{type(self).__name__}: the threshold lambda_ ended above every "
                f"training loss ({self._user_lambda(lam):.4g} > "
                f"{self._user_lambda(top):.4g}): the gradient of "
                f"aggregate={self._aggregate_name!r} vanished there and training "
                "stalled. Use aggregate='atk' (the same average of the k largest "
                "losses, without a threshold), or let training run longer (a "
                "smaller tol, a larger n_iter_no_change).",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _user_lambda(self, lam: float) -> float:
        """The threshold in the units of the user's losses (overridden where
        the targets are rescaled for training)."""
        return lam

    def _best_epoch(self, result, index: tuple = ()) -> int:
        if not self.early_stopping:
            return self.n_iter_
        steps = int(result.best_step[index])
        return max(1, -(-steps // result.steps_per_epoch))

    # -- inference ------------------------------------------------------------ #
    def _forward(self, X) -> np.ndarray:
        """Raw model outputs, shape (n_samples, n_outputs)."""
        self._check_network()
        X = validate_data(
            self,
            X,
            reset=False,
            dtype=(np.float64, np.float32),
            accept_sparse="csr",
        )
        return self._network_outputs(X)  # sparse X stays sparse


def weight_units(plan: FitPlan) -> int | float:
    """What an integer ``k`` counts: the training rows in units of their
    smallest positive weight (the rule of the aggregates), ``n`` for equal
    weights; rows of weight 0 do not count."""
    w = plan.weight[plan.train_idx]
    positive = w[w > 0]
    if not positive.size:
        raise ValueError(
            "no training row has a positive weight (early_stopping set "
            "validation_fraction of the rows aside for validation); give more "
            "rows a positive weight, or set early_stopping=False"
        )
    units = float(positive.sum() / positive.min())
    return round(units) if abs(units - round(units)) <= 1e-9 * units else units


def _input_standardisation(
    X: np.ndarray, model, weight: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(shift, scale)``: what the built-in models subtract from ``X`` and
    divide it by while they train: the columns' means, and their standard
    deviations where above 1 (else 1), both weighted by ``sample_weight``
    times ``class_weight``, as the losses are (a row of weight 0 moves
    neither). ``(None, None)`` for a callable model, which trains on ``X``
    as given.

    The models are trained on the rescaled features and folded back into
    weights for ``X`` once trained (``W / scale`` and ``b - shift W /
    scale``); the penalty is on the weights of the rescaled features.
    Columns in large units (a price, a year, a count) are brought to unit
    spread, so that the default step sizes suit them; columns of unit
    spread or less (standardised features, one-hot codes, fractions) are
    only centred, which changes neither the model nor its penalty (scaled
    up, a rare category's column would take large values in its few rows
    and a weakly penalised weight that fits them: measured, test accuracy
    0.75 instead of 0.91 beside a 500-level one-hot category). The rule is
    continuous in the data."""
    if callable(model):
        return None, None
    w = None if np.ptp(weight) == 0 else weight
    # A constant column is centred to exactly 0 (its mean can round off the
    # constant), so that it gives its weights no gradient at all.
    constant, value = constant_values(X, w)
    shift = np.where(constant, value, weighted_mean(X, w))
    spread = rms_deviation(X, shift, w)
    scale = np.where(np.isfinite(spread), np.maximum(spread, 1.0), 1.0)
    return shift, scale


#: A training objective this many times above its lowest value (or above 1,
#: if higher), after that value, has diverged.
_BLOW_UP = 1e4


def _blow_up(curve: list[float]) -> tuple[float, float | None]:
    """``(lowest, highest after it)`` of the training objective per epoch,
    the second None unless it is :data:`_BLOW_UP` times above the first
    (and above 1): steps that overshoot (measured: 5e3 to 1e32 in eleven
    epochs of sgd on the maximum, R^2 -1.8e32, reported as converged)."""
    if not curve:
        return 0.0, None
    at = int(np.argmin(curve))
    low, high = curve[at], max(curve[at:])
    return low, (high if high > _BLOW_UP * max(low, 1.0) else None)


def _without(weight: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``weight`` with the ``rows`` set to 0 (a copy)."""
    out = weight.copy()
    out[rows] = 0.0
    return out


def _standardised(
    X: np.ndarray, shift: np.ndarray | None, scale: np.ndarray | None
) -> np.ndarray:
    """``(X - shift) / scale`` in float32 (the engine's dtype), computed in
    float64 a block of rows at a time (no float64 copy of the whole of
    ``X``); ``X`` itself without a shift, with a ValueError where a value is
    beyond float32's range, in which the models train."""
    if shift is None:
        _check_float32_range(X)
        return X
    out = np.empty(X.shape, dtype=np.float32)
    for lo, block in row_blocks(X):
        np.subtract(block, shift, out=block)
        np.divide(block, scale, out=block)
        out[lo : lo + len(block)] = block
    return out


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(X: np.ndarray) -> None:
    """ValueError if a (finite, float64) value of ``X`` overflows float32."""
    if X.dtype == np.float64 and X.size:
        top = float(np.abs(X).max())
        if top > _FLOAT32_MAX:
            raise ValueError(
                f"X has values of magnitude up to {top:.3g}, beyond float32's "
                "range (3.4e38), in which a callable model trains; rescale "
                "those features"
            )


#: A sparse X whose dense copy for training is larger warns (bytes).
DENSE_WARNING_BYTES = 2**30


def _densified(X):
    """``X`` as a dense array for training (the models are dense), with a
    warning where a sparse ``X`` becomes large."""
    if not sp.issparse(X):
        return X
    size = X.shape[0] * X.shape[1] * X.dtype.itemsize
    if size > DENSE_WARNING_BYTES:
        warnings.warn(
            f"X is sparse ({X.nnz} stored values) and training needs it dense: "
            f"{size / 2**30:.1f} GiB for {X.shape[0]} x {X.shape[1]}, and about "
            "as much again for its rescaled float32 copy. Reduce the "
            "features first (e.g. TruncatedSVD or a feature selector in the "
            "pipeline). Prediction keeps X sparse.",
            UserWarning,
            stacklevel=4,
        )
    return X.toarray()


def _store_params(estimator, values: dict) -> None:
    """Store every ``__init__`` argument verbatim (scikit-learn's rule)."""
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def hidden_layers(model, hidden_layer_sizes) -> tuple[int, ...]:
    """Hidden layer sizes of ``model`` ("linear": none), validated.

    Examples
    --------
    >>> hidden_layers("mlp", None), hidden_layers("mlp", (32, 16))
    ((10,), (32, 16))
    """
    if not isinstance(model, str):
        _refuse_hidden(hidden_layer_sizes, "a callable model")
        return ()
    if model == "linear":
        _refuse_hidden(hidden_layer_sizes, 'model="linear"')
        return ()
    if hidden_layer_sizes is None:
        return (10,)
    sizes = hidden_layer_sizes
    if isinstance(sizes, Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    try:
        sizes = tuple(sizes)
    except TypeError:
        sizes = (sizes,)
    good = all(
        isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in sizes
    )
    if not sizes or not good:
        raise ValueError(
            "hidden_layer_sizes must be a positive int or a non-empty sequence of "
            f"positive ints; got {hidden_layer_sizes!r}"
        )
    return tuple(int(h) for h in sizes)


def _refuse_hidden(hidden_layer_sizes, what: str) -> None:
    if hidden_layer_sizes is not None:
        raise ValueError(
            f"hidden_layer_sizes={hidden_layer_sizes!r} was given with {what}, "
            'which has no hidden layers; use model="mlp" for an MLP, or leave '
            "hidden_layer_sizes=None"
        )


def _check_weight(sample_weight, X) -> np.ndarray:
    """Finite, non-negative sample weights with a positive sum."""
    weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if not np.all(np.isfinite(weight)):
        raise ValueError("sample_weight must be finite; it contains NaN or inf")
    if np.any(weight < 0):
        raise ValueError(
            f"sample_weight must be non-negative; its smallest value is "
            f"{weight.min()!r}"
        )
    if not weight.sum() > 0:
        raise ValueError("sample_weight must have a positive sum; all are zero")
    return weight


def _class_weights(class_weight, y, classes) -> np.ndarray:
    """Each sample's weight from ``class_weight``, whose values must be finite
    and non-negative, and not zero for every sample. A dict is read over the
    fitted ``classes`` (a ``partial_fit`` chunk may lack some of them; a class
    it does not name weighs 1); "balanced" over the classes of ``y``."""
    if isinstance(class_weight, dict):
        weight = _weights_of_labels(class_weight, np.asarray(y), classes)
        values = np.array(list(class_weight.values()), dtype=np.float64)
    else:
        weight = values = compute_sample_weight(class_weight, y).astype(np.float64)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(
            f"class_weight must be finite and non-negative; got {class_weight!r}"
        )
    if not weight.sum() > 0:
        raise ValueError(
            f"class_weight={class_weight!r} gives every sample a zero weight"
        )
    return weight


def _weights_of_labels(class_weight: dict, y: np.ndarray, classes) -> np.ndarray:
    """``class_weight[label]`` for each sample (1 for a label it does not
    name); every key must be one of ``classes``."""
    known = set(classes.tolist())
    unknown = [c for c in class_weight if c not in known]
    if unknown:
        raise ValueError(
            f"class_weight names labels {unknown} that are not classes "
            f"({classes.tolist()})"
        )
    weight = np.ones(len(y), dtype=np.float64)
    for label, value in class_weight.items():
        weight[y == label] = value
    return weight
