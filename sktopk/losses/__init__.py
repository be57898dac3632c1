"""Top-k losses for PyTorch: individual losses, aggregates over samples, modules.

Two kinds of top-k, named by their axis:

* over **samples**: aggregates of a 1-D tensor of individual losses into a
  scalar (``average``, ``maximum``, ``atk``, ``matk``, ``stk``; with ``dim``,
  one value per row of a batch);
* over **classes**: losses of a score matrix (the top-k SVM losses), their
  mean by default (``reduction="none"``: one per sample).

Every loss is defined once, with its value and analytic gradient, and
registered by name in :data:`REGISTRY` with its properties (task, threshold,
probabilities, hyper-parameters); the estimators, the training engine and the
reproduction all read names and properties from there. :func:`register` adds
a new aggregate or individual loss, usable by the estimators at once.

Examples
--------
>>> import torch
>>> from sktopk.losses import functional as F, get_aggregate
>>> losses = F.logistic(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 1, -1]))
>>> get_aggregate("atk")(losses, k=1) == F.maximum(losses)
tensor(True)
"""

from __future__ import annotations

from typing import Any

from . import functional
from ._aggregate import atk, average, kth_largest, matk, maximum, stk
from ._aggregate_defs import (
    atk_loss_gradient,
    average_loss_gradient,
    matk_loss_gradient,
    maximum_loss_gradient,
    stk_loss_gradient,
)
from ._checks import set_value_checks
from ._individual import (
    BUILTINS,
    absolute,
    cross_entropy,
    hinge,
    logistic,
    multiclass_hinge,
    square,
)
from ._registry import REGISTRY, TASKS, Aggregate, IndividualLoss, names, register
from ._registry import unregister as unregister
from ._smoothing import SMOOTHINGS as _SMOOTHING_TABLE
from ._smoothing import srelu, srelu_grad
from ._svm_modules import SmoothTopKSVMLoss, TopKSVMLoss
from ._svm_registry import (
    smooth_topk_svm_loss_gradient,
    smooth_topk_svm_value,
    topk_svm_loss_gradient,
    topk_svm_value,
)
from ._topk_svm import smooth_topk_svm, topk_svm
from .modules import ATkLoss, AverageLoss, MATkLoss, MaximumLoss, STkLoss

__all__ = [
    # aggregates over samples
    "average",
    "maximum",
    "atk",
    "matk",
    "stk",
    "kth_largest",
    "AverageLoss",
    "MaximumLoss",
    "ATkLoss",
    "MATkLoss",
    "STkLoss",
    # individual losses
    "logistic",
    "hinge",
    "square",
    "absolute",
    "cross_entropy",
    "multiclass_hinge",
    # over classes
    "smooth_topk_svm",
    "topk_svm",
    "SmoothTopKSVMLoss",
    "TopKSVMLoss",
    # smoothing
    "srelu",
    "srelu_grad",
    # validation
    "set_value_checks",
    # registry
    "Aggregate",
    "IndividualLoss",
    "LossInfo",
    "REGISTRY",
    "TASKS",
    "AGGREGATES",
    "AGGREGATES_WITH_LAMBDA",
    "INDIVIDUAL_LOSSES",
    "SMOOTHINGS",
    "get_aggregate",
    "get_individual_loss",
    "register",
    "unregister",
    "names",
    "functional",
]

#: Either kind of registry entry.
LossInfo = IndividualLoss | Aggregate


def _register_builtins() -> None:
    for loss in BUILTINS:
        register(loss)
    svm = ("k", "margin", "tau")
    register(
        IndividualLoss(
            "smooth_topk_svm",
            "multiclass",
            smooth_topk_svm_value,
            smooth_topk_svm_loss_gradient,
            smooth_topk_svm,
            SmoothTopKSVMLoss,
            params=svm,
        )
    )
    register(
        IndividualLoss(
            "topk_svm",
            "multiclass",
            topk_svm_value,
            topk_svm_loss_gradient,
            topk_svm,
            TopKSVMLoss,
            params=svm[:2],
        )
    )
    for agg in (
        Aggregate(
            "average",
            average_loss_gradient,
            average,
            AverageLoss,
            display_name="Average",
        ),
        Aggregate(
            "maximum",
            maximum_loss_gradient,
            maximum,
            MaximumLoss,
            display_name="Maximum",
        ),
        Aggregate(
            "atk", atk_loss_gradient, atk, ATkLoss, params=("k",), display_name="ATk"
        ),
        Aggregate(
            "matk",
            matk_loss_gradient,
            matk,
            MATkLoss,
            True,
            params=("k",),
            display_name="MATk",
        ),
        Aggregate(
            "stk",
            stk_loss_gradient,
            stk,
            STkLoss,
            True,
            params=("k", "delta", "smoothing"),
            display_name="STk",
        ),
    ):
        register(agg)


_register_builtins()

#: Valid ``smoothing`` names of :func:`stk`.
SMOOTHINGS: tuple[str, ...] = tuple(_SMOOTHING_TABLE)

_LIVE_NAMES = {
    # Registered aggregate names (for ``StrOptions``).
    "AGGREGATES": lambda: names("aggregate"),
    # Aggregates with a trainable threshold ``lam``.
    "AGGREGATES_WITH_LAMBDA": lambda: names("aggregate", uses_threshold=True),
    # Registered individual loss names.
    "INDIVIDUAL_LOSSES": lambda: names("individual"),
}


def __getattr__(name: str) -> Any:
    # The name tuples are read from the registry each time, so that they
    # include losses registered after import.
    if name in _LIVE_NAMES:
        return _LIVE_NAMES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _get(name: str, kind: str) -> Any:
    info = REGISTRY.get(name) if isinstance(name, str) else None
    if info is None or info.kind != kind:
        valid = names(kind)
        raise ValueError(f"unknown {kind} loss {name!r}; valid names are {valid}")
    return info


def get_aggregate(name: str) -> Aggregate:
    """Return the registered aggregate ``name`` (call it, or use ``.module``).

    Raises
    ------
    ValueError
        If ``name`` is not a registered aggregate.

    Examples
    --------
    >>> get_aggregate("stk").module.__name__
    'STkLoss'
    """
    return _get(name, "aggregate")


def get_individual_loss(name: str) -> IndividualLoss:
    """Return the registered individual loss ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a registered individual loss.

    Examples
    --------
    >>> get_individual_loss("hinge").function.__name__
    'hinge'
    """
    return _get(name, "individual")
