"""The one table of loss names: every individual loss and aggregate, with its
definition (value and analytic gradient) and the properties the estimators,
the engine and the reproduction read from it.

Nothing else in the package lists loss names: parameter choices, which
aggregates have a threshold or a ``delta``, which losses give probabilities,
all come from here, so a loss registered with :func:`register` is usable by
the estimators and the batched search at once.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from torch import nn

__all__ = [
    "Task",
    "TASKS",
    "IndividualLoss",
    "Aggregate",
    "REGISTRY",
    "register",
    "unregister",
    "names",
]

#: What an individual loss learns: its targets and its model's outputs.
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class IndividualLoss:
    """An individual loss: one value per sample, defined once.

    Calling it calls ``function`` (the public, validating function), or
    ``value`` when there is none; either way it returns one loss per sample:
    a ``function`` with a ``reduction`` parameter (whose default may be
    ``"mean"``, as ``smooth_topk_svm``'s) is called with ``reduction="none"``
    unless the caller passes one.

    Attributes
    ----------
    name : str
    task : {"binary", "multiclass", "regression"}
        Binary losses take real scores ``f`` of shape ``lead + (n,)`` and
        labels in {-1, +1}; regression ones a prediction and a target of that
        shape; multi-class ones scores ``lead + (n, C)`` and class indices
        ``lead + (n,)``. ``lead`` is any leading shape (the engine's members).
    value : callable
        ``value(f, y, **params) -> losses`` of shape ``lead + (n,)``, plain
        differentiable torch operations (autograd gives every order). The
        losses must be non-negative, as the papers' are: the estimators keep
        the threshold of "matk" and "stk" at ``lambda >= 0`` (and refuse
        negative losses with those aggregates).
    loss_gradient : callable
        ``loss_gradient(f, y, **params) -> (losses, dlosses/df)``, the
        gradient of the shape of ``f``: what the training engine uses.
    function : callable or None
        The public function (validates its inputs, then calls ``value``);
        per-sample values, or with a ``reduction`` parameter that takes
        ``"none"``.
    module : type of nn.Module or None
    probabilistic : bool
        Whether the model's outputs are log-odds / logits of probabilities
        (estimators then offer ``predict_proba``).
    params : tuple of str
        Names of the keyword hyper-parameters ``value`` takes.
    multiclass_form : str or None
        For a binary loss, the registered multi-class loss that generalises it
        (the estimators use it when ``y`` has more than two classes).
    """

    name: str
    task: Task
    value: Callable[..., Any]
    loss_gradient: Callable[..., Any]
    function: Callable[..., Any] | None = None
    module: type[nn.Module] | None = None
    probabilistic: bool = False
    params: tuple[str, ...] = ()
    multiclass_form: str | None = None
    kind: str = field(default="individual", init=False)
    # Where ``function`` takes ``reduction`` (see _reduction_position).
    _reduction_at: float = field(default=-1, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_reduction_at", _reduction_position(self.function))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.function is None:
            return self.value(*args, **kwargs)
        if len(args) <= self._reduction_at:
            kwargs.setdefault("reduction", "none")
        return self.function(*args, **kwargs)


@dataclass(frozen=True)
class Aggregate:
    """An aggregate of individual losses over samples, defined once.

    Attributes
    ----------
    name : str
    loss_gradient : callable
        ``loss_gradient(losses, weight, lam, kappa, delta, smoothing,
        with_value=True) -> (value, dvalue/dlosses, dvalue/dlam)`` over the
        last axis of ``losses`` (shape ``lead + (B,)``): ``weight`` is None
        or non-negative weights of that shape (zeros mark padding); ``lam``,
        ``kappa`` (k as a fraction) and ``delta`` have shape ``lead`` (or are
        numbers). ``dvalue/dlam`` is None without a threshold, ``value`` when
        ``with_value`` is False.
    function : callable or None
        The public function on a 1-D tensor, or on the rows of a batch with
        ``dim`` (e.g. :func:`stk`).
    module : type of nn.Module or None
    uses_threshold : bool
        Whether it has a trainable threshold ``lam`` (its variational form).
    params : tuple of str
        Which of the estimators' aggregate parameters it reads, among "k",
        "delta" and "smoothing".
    display_name : str or None
        How reports and plots name it (default: ``name``).
    """

    name: str
    loss_gradient: Callable[..., Any]
    function: Callable[..., Any] | None = None
    module: type[nn.Module] | None = None
    uses_threshold: bool = False
    params: tuple[str, ...] = ()
    display_name: str | None = None
    kind: str = field(default="aggregate", init=False)

    @property
    def label(self) -> str:
        """The display name (or the name)."""
        return self.display_name or self.name

    @property
    def uses_lambda(self) -> bool:
        """Alias of ``uses_threshold`` (the threshold is called ``lam``)."""
        return self.uses_threshold

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.function is None:
            raise TypeError(f"aggregate {self.name!r} has no public function")
        return self.function(*args, **kwargs)


def _reduction_position(fn: Callable[..., Any] | None) -> float:
    """Where ``fn`` takes ``reduction``: its index among the positional
    parameters, ``inf`` for a keyword-only one, -1 without one."""
    if fn is None:
        return -1
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # no signature to read
        return -1
    for i, p in enumerate(params):
        if p.name == "reduction" and p.kind is not p.POSITIONAL_ONLY:
            return math.inf if p.kind is p.KEYWORD_ONLY else i
    return -1


_ENTRIES: dict[str, IndividualLoss | Aggregate] = {}

#: Name -> entry, read-only (add entries with :func:`register`).
REGISTRY: MappingProxyType[str, IndividualLoss | Aggregate] = MappingProxyType(_ENTRIES)


def register(entry: IndividualLoss | Aggregate) -> IndividualLoss | Aggregate:
    """Add a loss or an aggregate to the registry; returns it.

    Raises
    ------
    ValueError
        If the name is taken.
    TypeError
        If ``entry`` is not an :class:`IndividualLoss` or :class:`Aggregate`.
    """
    if not isinstance(entry, IndividualLoss | Aggregate):
        raise TypeError(
            "register takes an IndividualLoss or an Aggregate; got "
            f"{type(entry).__name__}"
        )
    if entry.name in _ENTRIES:
        raise ValueError(f"the loss name {entry.name!r} is already registered")
    if isinstance(entry, IndividualLoss) and entry.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {entry.task!r}")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a registered entry (built-in ones included: use with care)."""
    _ENTRIES.pop(name, None)


def names(kind: str, **properties: Any) -> tuple[str, ...]:
    """Registered names of ``kind`` ("aggregate" or "individual") whose
    attributes equal ``properties``, in registration order.

    Examples
    --------
    >>> import sktopk.losses
    >>> names("aggregate", uses_threshold=True)
    ('matk', 'stk')
    """
    return tuple(
        n
        for n, e in _ENTRIES.items()
        if e.kind == kind and all(getattr(e, k) == v for k, v in properties.items())
    )
