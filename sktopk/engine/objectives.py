"""The training objective of a minibatch, from the loss registry's definitions.

The engine works on a grid of members with leading shape ``lead``; the models
give outputs ``f`` of shape ``lead + (B, out)``. This module only adapts those
shapes to the definitions in :mod:`sktopk.losses` (where every loss and
aggregate is defined once, with its gradient): binary and regression losses
see ``f[..., 0]``.
"""

from __future__ import annotations

from torch import Tensor

from ..losses import IndividualLoss

__all__ = ["individual_loss_gradient"]


def individual_loss_gradient(
    loss: IndividualLoss, f: Tensor, y: Tensor, params: dict
) -> tuple[Tensor, Tensor]:
    """Per-sample losses ``lead + (B,)`` and their gradient with respect to
    the outputs ``f`` (``lead + (B, out)``)."""
    if loss.task == "multiclass":
        return loss.loss_gradient(f, y, **params)
    value, grad = loss.loss_gradient(f[..., 0], y, **params)
    return value, grad.unsqueeze(-1)
