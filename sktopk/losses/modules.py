"""``nn.Module`` forms of the aggregate losses.

Each module stores its hyper-parameters (and, for MATk and STk, the threshold
``lam`` as an ``nn.Parameter``); ``forward(losses, weight=None)`` calls the
function of the same name in :mod:`sktopk.losses.functional`. The weights are
treated as constants: no gradient flows to them (a weight that requires grad
is detached). The hyper-parameters (``dim`` included) travel in the
``state_dict``, as Python numbers, so that ``torch.load`` reads it with
``weights_only=True`` (the default from torch 2.6; pass it explicitly on
older versions).

Examples
--------
>>> import torch
>>> from sktopk.losses import STkLoss, logistic
>>> model = torch.nn.Linear(3, 1)
>>> x, y = torch.randn(32, 3), torch.randint(0, 2, (32,)) * 2 - 1
>>> criterion = STkLoss(k=0.2)
>>> with torch.no_grad():
...     _ = criterion.init_lambda(logistic(model(x).squeeze(1), y))
>>> opt = torch.optim.SGD([*model.parameters(), *criterion.parameters()], lr=0.1)
>>> loss = criterion(logistic(model(x).squeeze(1), y))
>>> loss.backward(); opt.step(); _ = criterion.project_()
>>> bool(criterion.lam >= 0)
True

Gradients of every order are exact, e.g. a gradient penalty:

>>> loss = criterion(logistic(model(x).squeeze(1), y))
>>> grads = torch.autograd.grad(loss, list(model.parameters()), create_graph=True)
>>> penalty = sum(g.pow(2).sum() for g in grads)
>>> (loss + 0.1 * penalty).backward()

``torch.compile(model_and_loss, fullgraph=True)`` and ``torch.export`` trace
the modules and functions as one graph.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import resolve_k
from ._aggregate import atk, average, kth_largest, matk, maximum, stk
from ._checks import _PLAIN, transformed
from ._smoothing import get_smoothing

__all__ = ["AverageLoss", "MaximumLoss", "ATkLoss", "MATkLoss", "STkLoss"]


def plain_number(value: Any) -> Any:
    """``value`` as a Python int or float where it is a number of another
    type (a numpy scalar): what a ``state_dict`` may hold, to be loaded by
    ``torch.load(weights_only=True)``. An integral number stays an int, a
    real one becomes a float; anything else is returned as it is."""
    if type(value) is int or type(value) is float or isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _check_k(k: int | float) -> int | float:
    """Validate what can be known of ``k`` before seeing the losses; return
    it as a Python int (a count) or float (a fraction)."""
    is_int = isinstance(k, numbers.Integral) and not isinstance(k, bool)
    if is_int and k >= 1:
        return int(k)
    if not is_int:
        resolve_k(k, 1)  # raises unless a float fraction in (0, 1]
        return float(k)
    raise ValueError(f"k={k!r} is out of range: an int k must be >= 1")


def _check_dim(dim: int | None) -> int | None:
    if dim is None or (isinstance(dim, int) and not isinstance(dim, bool)):
        return dim
    raise TypeError(f"dim must be an int or None; got {dim!r}")


def _initial_lambda(lam: float | Tensor) -> Tensor:
    """The initial threshold(s) as a float tensor, finite."""
    if isinstance(lam, Tensor):
        value = lam.detach().clone()
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
    elif isinstance(lam, numbers.Real) and not isinstance(lam, bool):
        value = torch.tensor(float(lam))
    else:
        raise TypeError(f"lam must be a float or a floating-point tensor; got {lam!r}")
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"lam must be finite; got lam={lam!r}")
    return value


def _check_init_losses(losses: Tensor) -> None:
    """Refuse NaN and +inf losses, which would make the threshold NaN or
    inf; read once, at set-up, on any device (as the constructor's check of
    ``lam``), except where values cannot be read (meta and fake tensors,
    compile, export and ``torch.func`` transforms)."""
    if type(losses) not in _PLAIN or losses.device.type == "meta" or transformed():
        return
    x = losses.detach()
    n_nan, n_inf = int(x.isnan().sum()), int((x == math.inf).sum())
    if n_nan or n_inf:
        raise ValueError(
            "init_lambda: losses must not be NaN or +inf (lam must be finite); got "
            f"{n_nan} NaN and {n_inf} +inf among {x.numel()} losses"
        )


class _SavedHyper(nn.Module):
    """A module whose hyper-parameters ``_hyper`` travel in its ``state_dict``
    (its ``_extra_state``) and are restored, validated by ``_set_hyper``, by
    ``load_state_dict``; ``_set_hyper`` stores numbers as Python ints and
    floats (see :func:`plain_number`), so that ``torch.load`` reads the
    ``state_dict`` with ``weights_only=True``."""

    _hyper: tuple[str, ...] = ()

    def get_extra_state(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._hyper}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the saved hyper-parameters (validated, as at construction)."""
        if not isinstance(state, dict) or set(state) != set(self._hyper):
            raise ValueError(
                f"{type(self).__name__}: the saved state must hold {self._hyper}; "
                f"got {state!r}"
            )
        self._set_hyper(**state)

    def _set_hyper(self, **values: Any) -> None:
        raise NotImplementedError


class _Module(_SavedHyper):
    """Base of the loss modules: ``dim``, saved in the ``state_dict``, and a
    clear ``torch.jit.script`` error."""

    _hyper: tuple[str, ...] = ("dim",)

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = _check_dim(dim)

    def _set_hyper(self, dim: int | None, **_: Any) -> None:
        self.dim = _check_dim(dim)

    def __prepare_scriptable__(self) -> nn.Module:
        # torch.jit.script calls this on every submodule before compiling.
        raise TypeError(
            f"{type(self).__name__} does not support torch.jit.script: its forward "
            "calls Python functions that TorchScript cannot compile. Use "
            "torch.compile or torch.export (both work without graph breaks), or "
            "torch.jit.trace."
        )

    def extra_repr(self) -> str:
        return "" if self.dim is None else f"dim={self.dim}"


class _HyperState(_Module):
    """An aggregate module whose ``k`` and ``dim`` travel in its ``state_dict``."""

    _hyper: tuple[str, ...] = ("k", "dim")

    def _set_hyper(self, k: int | float, dim: int | None, **_: Any) -> None:
        self.k, self.dim = _check_k(k), _check_dim(dim)

    def extra_repr(self) -> str:
        rest = super().extra_repr()
        return f"k={self.k!r}" + (f", {rest}" if rest else "")


#: The parameters and notes of the modules without hyper-parameters but ``dim``.
_DIM_ONLY_DOC = """    Parameters
    ----------
    dim : int, optional
        Aggregate each row of a batch along this axis; by default the losses
        must be 1-D.

    Notes
    -----
    ``forward(losses, weight=None)`` takes optional non-negative per-sample
    weights, treated as constants: no gradient flows to them.
    ``dim`` is saved in the ``state_dict`` (its ``_extra_state``) and
    restored by ``load_state_dict``.
"""


class AverageLoss(_Module):
    __doc__ = f"""Average of the individual losses; see :func:`~sktopk.losses.average`.

{_DIM_ONLY_DOC}
    Examples
    --------
    >>> import torch
    >>> AverageLoss()(torch.tensor([1.0, 2.0, 6.0]))
    tensor(3.)
    """

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return average(losses, weight, dim=self.dim)


class MaximumLoss(_Module):
    __doc__ = f"""Maximum of the individual losses; see :func:`~sktopk.losses.maximum`.

{_DIM_ONLY_DOC}
    Examples
    --------
    >>> import torch
    >>> MaximumLoss()(torch.tensor([1.0, 2.0, 6.0]))
    tensor(6.)
    """

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return maximum(losses, weight, dim=self.dim)


class ATkLoss(_HyperState):
    """Average of the top-k losses (Fan et al., 2017); see :func:`~sktopk.losses.atk`.

    Parameters
    ----------
    k : int or float
        An int ``>= 1`` or a fraction in ``(0, 1]`` of the losses given.
    dim : int, optional
        Aggregate each row of a batch along this axis; by default the losses
        must be 1-D.

    Notes
    -----
    ``forward(losses, weight=None)`` takes optional non-negative per-sample
    weights, treated as constants: no gradient flows to them.
    ``k`` and ``dim`` are saved in the ``state_dict`` (its ``_extra_state``)
    and restored by ``load_state_dict``.

    Examples
    --------
    >>> import torch
    >>> ATkLoss(k=2)(torch.tensor([1.0, 5.0, 2.0, 3.0]))
    tensor(4.)
    """

    def __init__(self, k: int | float, dim: int | None = None) -> None:
        super().__init__(dim)
        self.k = _check_k(k)

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return atk(losses, self.k, weight, dim=self.dim)


class _ThresholdLoss(_HyperState):
    """Base of the losses that own a trainable threshold ``lam``."""

    def __init__(
        self, k: int | float, lam: float | Tensor = 0.0, dim: int | None = None
    ) -> None:
        super().__init__(dim)
        self.k = _check_k(k)
        self.lam = nn.Parameter(_initial_lambda(lam))

    @torch.no_grad()
    def init_lambda(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        """Set ``lam`` to the k-th largest loss (at least 0) and return it.

        Call it once with the individual losses of the initial model over the
        training data: ``lam`` then starts at the optimum of MATk for them.
        With ``dim``, ``lam`` holds one threshold per row (construct the
        module with ``lam`` of the rows' shape).

        Raises
        ------
        ValueError
            If a loss is NaN or +inf (``-inf`` is allowed: it gives no
            threshold above 0).
        """
        _check_init_losses(losses)
        value = kth_largest(losses, self.k, weight, dim=self.dim).clamp(min=0)
        if value.shape != self.lam.shape:
            raise ValueError(
                f"init_lambda: the losses give thresholds of shape "
                f"{tuple(value.shape)} but lam has shape {tuple(self.lam.shape)}; "
                f"construct the module with lam=torch.zeros({tuple(value.shape)})"
            )
        self.lam.copy_(value.to(self.lam))
        return self.lam.detach().clone()

    @torch.no_grad()
    def project_(self) -> _ThresholdLoss:
        """Clamp ``lam`` to ``lam >= 0`` in place (after an optimiser step)."""
        self.lam.clamp_(min=0)
        return self


class MATkLoss(_ThresholdLoss):
    """MATk with a trainable threshold; see :func:`~sktopk.losses.matk`.

    Parameters
    ----------
    k : int or float
        An int ``>= 1`` or a fraction ``kappa`` in ``(0, 1]``.
    lam : float or Tensor, default=0.0
        Initial threshold, finite (see :meth:`init_lambda`); with ``dim``, a
        tensor of the rows' shape gives one threshold per row.
    dim : int, optional
        Aggregate each row of a batch along this axis; by default the losses
        must be 1-D.

    Attributes
    ----------
    lam : nn.Parameter of shape ()
        The threshold, trained with the model (of the rows' shape with a
        threshold per row).

    Notes
    -----
    ``forward(losses, weight=None)`` takes optional non-negative per-sample
    weights, treated as constants: no gradient flows to them.
    ``k`` and ``dim`` are saved in the ``state_dict`` (its ``_extra_state``,
    beside ``lam``) and restored by ``load_state_dict``.

    Examples
    --------
    >>> import torch
    >>> loss = MATkLoss(k=2)
    >>> l = torch.tensor([1.0, 5.0, 2.0, 3.0])
    >>> loss.init_lambda(l)
    tensor(3.)
    >>> loss(l).item()
    2.0
    """

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return matk(losses, self.lam, self.k, weight, dim=self.dim)


class STkLoss(_ThresholdLoss):
    """STk with a trainable threshold (Xia et al., 2024).

    See :func:`~sktopk.losses.stk`.

    Parameters
    ----------
    k : int or float
        An int ``>= 1`` or a fraction ``kappa`` in ``(0, 1]``.
    delta : float, default=0.01
        Smoothing, ``> 0`` (as in :func:`~sktopk.losses.stk`).
    smoothing : {"srelu", "softplus", "elu", "leaky_relu"}, default="srelu"
        The ReLU replacement.
    lam : float or Tensor, default=0.0
        Initial threshold, finite (see :meth:`init_lambda`); with ``dim``, a
        tensor of the rows' shape gives one threshold per row.
    dim : int, optional
        Aggregate each row of a batch along this axis (one value and one
        threshold per row); by default the losses must be 1-D.

    Attributes
    ----------
    lam : nn.Parameter of shape ()
        The threshold, trained with the model (of the rows' shape with a
        threshold per row).

    Notes
    -----
    ``forward(losses, weight=None)`` takes optional non-negative per-sample
    weights, treated as constants: no gradient flows to them.
    ``k``, ``delta``, ``smoothing`` and ``dim`` are saved in the
    ``state_dict`` (its ``_extra_state``, beside ``lam``) and restored by
    ``load_state_dict``, so that a threshold is never loaded into a loss with
    other hyper-parameters. ``torch.compile`` and ``torch.export`` trace it
    without graph breaks; ``torch.jit.trace`` keeps an int ``k`` a count (the
    fraction ``k / n`` follows the batch size); ``torch.jit.script`` raises a
    ``TypeError``.

    Examples
    --------
    >>> import torch
    >>> loss = STkLoss(k=2, delta=1e-3)
    >>> l = torch.tensor([1.0, 5.0, 2.0, 3.0])
    >>> loss.init_lambda(l)
    tensor(3.)
    >>> round(loss(l).item(), 3)
    2.0
    >>> sorted(loss.state_dict()["_extra_state"].items())
    [('delta', 0.001), ('dim', None), ('k', 2), ('smoothing', 'srelu')]
    """

    _hyper = ("k", "delta", "smoothing", "dim")

    def __init__(
        self,
        k: int | float,
        delta: float = 0.01,
        smoothing: str = "srelu",
        lam: float | Tensor = 0.0,
        dim: int | None = None,
    ) -> None:
        super().__init__(k, lam, dim)
        self._set_hyper(k, dim, delta=delta, smoothing=smoothing)

    def _set_hyper(
        self,
        k: int | float,
        dim: int | None,
        delta: float = 0.01,
        smoothing: str = "srelu",
        **_: Any,
    ) -> None:
        get_smoothing(smoothing, delta)  # validated first: all or nothing
        super()._set_hyper(k, dim)
        self.delta, self.smoothing = float(delta), str(smoothing)

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return stk(
            losses, self.lam, self.k, self.delta, self.smoothing, weight, dim=self.dim
        )

    def extra_repr(self) -> str:
        text = f"k={self.k!r}, delta={self.delta!r}, smoothing={self.smoothing!r}"
        return text + ("" if self.dim is None else f", dim={self.dim}")
