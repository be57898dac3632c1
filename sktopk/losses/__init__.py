"""Top-k losses for PyTorch: individual losses, aggregates over samples, modules.

Two kinds of top-k, named by their axis:

* over **samples**: aggregates of a 1-D tensor of individual losses into a
  scalar (``average``, ``maximum``, ``atk``, ``matk``, ``stk``);
* over **classes**: per-sample losses of a score matrix (the top-k SVM losses).

One registry maps every loss name to its implementation; the estimators build
their parameter choices from :data:`AGGREGATES`, :data:`INDIVIDUAL_LOSSES` and
:data:`SMOOTHINGS`.

Examples
--------
>>> import torch
>>> from sktopk.losses import functional as F, get_aggregate
>>> losses = F.logistic(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 1, -1]))
>>> get_aggregate("atk")(losses, k=1) == F.maximum(losses)
tensor(True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from torch import nn

from . import functional
from ._aggregate import atk, average, kth_largest, matk, maximum, stk
from ._individual import (
    absolute,
    cross_entropy,
    hinge,
    logistic,
    multiclass_hinge,
    square,
)
from ._smoothing import SMOOTHINGS as _SMOOTHING_TABLE
from ._smoothing import srelu, srelu_grad
from ._svm_modules import SmoothTopKSVMLoss, TopKSVMLoss
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
    # registry
    "LossInfo",
    "REGISTRY",
    "AGGREGATES",
    "AGGREGATES_WITH_LAMBDA",
    "INDIVIDUAL_LOSSES",
    "SMOOTHINGS",
    "get_aggregate",
    "get_individual_loss",
    "functional",
]


@dataclass(frozen=True)
class LossInfo:
    """A registered loss: its name, kind and implementation.

    Calling a ``LossInfo`` calls its function.

    Attributes
    ----------
    name : str
    kind : {"aggregate", "individual"}
    function : callable
        The tensor function (e.g. :func:`stk`).
    module : type of nn.Module or None
        The module form, for aggregates.
    uses_lambda : bool
        Whether the aggregate has a trainable threshold ``lam``.
    """

    name: str
    kind: str
    function: Callable[..., Any]
    module: type[nn.Module] | None = None
    uses_lambda: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


def _entries() -> dict[str, LossInfo]:
    agg = [
        LossInfo("average", "aggregate", average, AverageLoss),
        LossInfo("maximum", "aggregate", maximum, MaximumLoss),
        LossInfo("atk", "aggregate", atk, ATkLoss),
        LossInfo("matk", "aggregate", matk, MATkLoss, uses_lambda=True),
        LossInfo("stk", "aggregate", stk, STkLoss, uses_lambda=True),
    ]
    ind = [
        LossInfo(f.__name__, "individual", f)
        for f in (logistic, hinge, square, absolute, cross_entropy, multiclass_hinge)
    ]
    # The top-k SVM losses over classes (per-sample with reduction="none").
    ind += [
        LossInfo("smooth_topk_svm", "individual", smooth_topk_svm, SmoothTopKSVMLoss),
        LossInfo("topk_svm", "individual", topk_svm, TopKSVMLoss),
    ]
    return {info.name: info for info in agg + ind}


#: Name -> :class:`LossInfo`, read-only.
REGISTRY: MappingProxyType[str, LossInfo] = MappingProxyType(_entries())

#: Valid aggregate names (for ``StrOptions``).
AGGREGATES: tuple[str, ...] = tuple(
    n for n, i in REGISTRY.items() if i.kind == "aggregate"
)
#: Aggregates with a trainable threshold ``lam``.
AGGREGATES_WITH_LAMBDA: tuple[str, ...] = tuple(
    n for n, i in REGISTRY.items() if i.uses_lambda
)
#: Valid individual loss names.
INDIVIDUAL_LOSSES: tuple[str, ...] = tuple(
    n for n, i in REGISTRY.items() if i.kind == "individual"
)
#: Valid ``smoothing`` names of :func:`stk`.
SMOOTHINGS: tuple[str, ...] = tuple(_SMOOTHING_TABLE)


def _get(name: str, kind: str, valid: tuple[str, ...]) -> LossInfo:
    info = REGISTRY.get(name) if isinstance(name, str) else None
    if info is None or info.kind != kind:
        raise ValueError(f"unknown {kind} loss {name!r}; valid names are {valid}")
    return info


def get_aggregate(name: str) -> LossInfo:
    """Return the registered aggregate ``name`` (call it, or use ``.module``).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`AGGREGATES`.

    Examples
    --------
    >>> get_aggregate("stk").module.__name__
    'STkLoss'
    """
    return _get(name, "aggregate", AGGREGATES)


def get_individual_loss(name: str) -> LossInfo:
    """Return the registered individual loss ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`INDIVIDUAL_LOSSES`.

    Examples
    --------
    >>> get_individual_loss("hinge").function.__name__
    'hinge'
    """
    return _get(name, "individual", INDIVIDUAL_LOSSES)
