"""Dropping finished members from a batch, group by group.

A batch trains ``lead = (G, M)`` members: G groups (runs, folds: each with its
own data) of M members (configurations) that share their group's minibatches.
Members stop at different times, and a stopped member is only frozen: it still
costs its share of every product. :func:`compaction` picks, in every group, the
members still training, so that the batch shrinks to ``(G, M')`` with ``M'``
the largest number of live members in any group; :func:`take` applies that
choice to any per-member tensor. A group with fewer live members keeps some of
its stopped ones to fill its row (they stay frozen).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["take", "compaction"]

#: Shrink once the widest group needs at most this share of the batch's width
#: (paper protocol, wisconsin, STk, 10 runs: 0.9 computed 1.45 member-steps per
#: useful one and took 199 s; 0.5: 1.78 and 237 s; by columns only, as before:
#: 2.52 and 319 s).
SHRINK_AT = 0.9


def take(t: Tensor, keep: Tensor) -> Tensor:
    """The members ``keep`` of ``t``, group by group.

    Parameters
    ----------
    t : Tensor of shape (G, M, ...)
        A per-member tensor of the batch.
    keep : Tensor of shape (G, M') or (M',)
        For each group, the member indices (along dim 1) to keep; 1-D: the
        same members in every group.

    Returns
    -------
    Tensor of shape (G, M', ...)
        Contiguous.

    Examples
    --------
    >>> t = torch.tensor([[10, 11, 12], [20, 21, 22]])
    >>> take(t, torch.tensor([[0, 2], [1, 2]]))
    tensor([[10, 12],
            [21, 22]])
    """
    keep = keep.to(t.device)
    if keep.dim() == 1:
        return t[:, keep].contiguous()
    rows = torch.arange(keep.shape[0], device=t.device).unsqueeze(1)
    return t[rows, keep].contiguous()


def compaction(
    active: Tensor, shrink_at: float = SHRINK_AT
) -> tuple[Tensor, Tensor] | None:
    """The members to keep in each group, or None when not worth a shrink.

    Parameters
    ----------
    active : Tensor of shape (G, M)
        Which members are still training (bool, or 0/1).
    shrink_at : float
        Shrink only when the widest group has at most ``shrink_at * M`` live
        members (a shrink copies every per-member tensor once).

    Returns
    -------
    keep : Tensor of shape (G, M')
        Per group, its live members first (in their order), then stopped ones
        to fill the row.
    done : Tensor of shape (G, M), bool
        The members left out.

    Examples
    --------
    >>> keep, done = compaction(torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0]]))
    >>> keep
    tensor([[0, 3],
            [2, 0]])
    >>> done
    tensor([[False,  True,  True, False],
            [False,  True, False,  True]])
    """
    live = active.bool()
    width = int(live.sum(1).max())
    if width == 0 or width > shrink_at * live.shape[1]:
        return None
    order = torch.sort((~live).to(torch.uint8), dim=1, stable=True).indices
    keep = order[:, :width]
    done = torch.ones_like(live).scatter_(1, keep, False)
    return keep, done
