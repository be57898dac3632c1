"""``nn.Module`` forms of the aggregate losses.

Each module stores its hyper-parameters (and, for MATk and STk, the threshold
``lam`` as an ``nn.Parameter``); ``forward(losses, weight=None)`` calls the
function of the same name in :mod:`sktopk.losses.functional`.

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
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor, nn

from .._validation import resolve_k
from ._aggregate import atk, average, kth_largest, matk, maximum, stk
from ._smoothing import get_smoothing

__all__ = ["AverageLoss", "MaximumLoss", "ATkLoss", "MATkLoss", "STkLoss"]


def _check_k(k: int | float) -> int | float:
    """Validate what can be known of ``k`` before seeing the losses."""
    is_int = isinstance(k, numbers.Integral) and not isinstance(k, bool)
    if is_int and k >= 1:
        return k
    if not is_int:
        resolve_k(k, 1)  # raises unless a float fraction in (0, 1]
        return k
    raise ValueError(f"k={k!r} is out of range: an int k must be >= 1")


class AverageLoss(nn.Module):
    """Average of the individual losses; see :func:`~sktopk.losses.average`.

    Examples
    --------
    >>> import torch
    >>> AverageLoss()(torch.tensor([1.0, 2.0, 6.0]))
    tensor(3.)
    """

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return average(losses, weight)


class MaximumLoss(nn.Module):
    """Maximum of the individual losses; see :func:`~sktopk.losses.maximum`.

    Examples
    --------
    >>> import torch
    >>> MaximumLoss()(torch.tensor([1.0, 2.0, 6.0]))
    tensor(6.)
    """

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return maximum(losses, weight)


class ATkLoss(nn.Module):
    """Average of the top-k losses (Fan et al., 2017); see :func:`~sktopk.losses.atk`.

    Parameters
    ----------
    k : int or float
        An int ``>= 1`` or a fraction in ``(0, 1]`` of the losses given.

    Examples
    --------
    >>> import torch
    >>> ATkLoss(k=2)(torch.tensor([1.0, 5.0, 2.0, 3.0]))
    tensor(4.)
    """

    def __init__(self, k: int | float) -> None:
        super().__init__()
        self.k = _check_k(k)

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return atk(losses, self.k, weight)

    def extra_repr(self) -> str:
        return f"k={self.k!r}"


class _ThresholdLoss(nn.Module):
    """Base of the losses that own a trainable threshold ``lam``."""

    def __init__(self, k: int | float, lam: float = 0.0) -> None:
        super().__init__()
        self.k = _check_k(k)
        self.lam = nn.Parameter(torch.tensor(float(lam)))

    @torch.no_grad()
    def init_lambda(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        """Set ``lam`` to the k-th largest loss (at least 0) and return it.

        Call it once with the individual losses of the initial model over the
        training data: ``lam`` then starts at the optimum of MATk for them.
        """
        value = kth_largest(losses, self.k, weight).clamp(min=0)
        self.lam.copy_(value.to(self.lam))
        return self.lam.detach().clone()

    @torch.no_grad()
    def project_(self) -> _ThresholdLoss:
        """Clamp ``lam`` to ``lam >= 0`` in place (after an optimiser step)."""
        self.lam.clamp_(min=0)
        return self

    def extra_repr(self) -> str:
        return f"k={self.k!r}"


class MATkLoss(_ThresholdLoss):
    """MATk with a trainable threshold; see :func:`~sktopk.losses.matk`.

    Parameters
    ----------
    k : int or float
        An int ``>= 1`` or a fraction ``kappa`` in ``(0, 1]``.
    lam : float, default=0.0
        Initial threshold; see :meth:`init_lambda`.

    Attributes
    ----------
    lam : nn.Parameter of shape ()
        The threshold, trained with the model.

    Examples
    --------
    >>> import torch
    >>> loss = MATkLoss(k=2)
    >>> l = torch.tensor([1.0, 5.0, 2.0, 3.0])
    >>> loss.init_lambda(l)
    tensor(3.)
    >>> loss(l)
    tensor(2., grad_fn=<DualFormBackward>)
    """

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return matk(losses, self.lam, self.k, weight)


class STkLoss(_ThresholdLoss):
    """STk with a trainable threshold (Xia et al., 2024).

    See :func:`~sktopk.losses.stk`.

    Parameters
    ----------
    k : int or float
        An int ``>= 1`` or a fraction ``kappa`` in ``(0, 1]``.
    delta : float, default=0.01
        Smoothing, ``> 0``.
    smoothing : {"srelu", "softplus", "elu", "leaky_relu"}, default="srelu"
        The ReLU replacement.
    lam : float, default=0.0
        Initial threshold; see :meth:`init_lambda`.

    Attributes
    ----------
    lam : nn.Parameter of shape ()
        The threshold, trained with the model.

    Examples
    --------
    >>> import torch
    >>> loss = STkLoss(k=2, delta=1e-3)
    >>> l = torch.tensor([1.0, 5.0, 2.0, 3.0])
    >>> loss.init_lambda(l)
    tensor(3.)
    >>> round(loss(l).item(), 3)
    2.0
    """

    def __init__(
        self,
        k: int | float,
        delta: float = 0.01,
        smoothing: str = "srelu",
        lam: float = 0.0,
    ) -> None:
        super().__init__(k, lam)
        get_smoothing(smoothing, delta)
        self.delta, self.smoothing = float(delta), smoothing

    def forward(self, losses: Tensor, weight: Tensor | None = None) -> Tensor:
        return stk(losses, self.lam, self.k, self.delta, self.smoothing, weight)

    def extra_repr(self) -> str:
        return f"k={self.k!r}, delta={self.delta!r}, smoothing={self.smoothing!r}"
