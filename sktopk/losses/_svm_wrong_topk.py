"""The k largest wrong-class scores per row, for the top-k SVM losses.

:func:`_wrong_topk` takes a ``torch.topk`` of the scores with the true class
masked, or, for many classes, searches only the top groups of scores
(:func:`_grouped_topk`, exact).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._svm_common import _traced

# The top k are found among the top groups of scores (two small topk) from this
# many classes, and in eager mode also from _GROUPED_TOPK_TOTAL scores while
# C < 64 k, where torch.topk takes its slower selection algorithm on CPU.
_GROUPED_TOPK_MIN = 4096
_GROUPED_TOPK_TOTAL = 1 << 15


def _wrong_topk(scores: Tensor, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Values and indices ``(n, k)`` of the k largest wrong-class scores
    (detached), largest first."""
    scores = scores.detach()
    n, n_classes = scores.shape
    traced = _traced()
    grouped = n_classes >= _GROUPED_TOPK_MIN or (
        not traced and n_classes < 64 * k and n * n_classes >= _GROUPED_TOPK_TOTAL
    )
    if not grouped or scores.stride(1) != 1:
        return scores.scatter(1, y, -math.inf).topk(k, 1)
    idx = _grouped_topk(scores, k + 1)
    values = scores.gather(1, idx).masked_fill_(idx == y, -math.inf)
    top, pos = values.topk(k, 1)
    return top, idx.gather(1, pos)


def _grouped_topk(scores: Tensor, m: int) -> Tensor:
    """Indices of the ``m`` largest scores per row, by groups of columns.

    The ``m`` largest scores lie in the ``m`` groups with the largest maxima
    (a group holding one of them has a maximum at least as large, and at most
    ``m`` groups can contain one). So one vectorised maximum over groups and
    two small ``topk`` replace a ``topk`` over all the classes. Columns past the
    last full group form a last window, ``C - g .. C``, whose first entries
    (already in the previous group) are masked.
    """
    n, n_classes = scores.shape
    g = max(m, math.isqrt(n_classes // m))
    full = n_classes // g
    gmax = scores[:, : full * g].view(n, full, g).amax(2)
    if full * g < n_classes:
        gmax = torch.cat([gmax, scores[:, full * g :].amax(1, keepdim=True)], 1)
    groups = gmax.topk(min(m, gmax.shape[1]), 1).indices
    start = (groups * g).clamp_max(n_classes - g)
    cand = start[:, :, None] + torch.arange(g, device=scores.device)
    values = scores.gather(1, cand.view(n, -1)).view(cand.shape)
    if full * g < n_classes:
        values = values.masked_fill(
            (groups == full)[:, :, None] & (cand < full * g), -math.inf
        )
    best = values.view(n, -1).topk(m, 1).indices
    return cand.view(n, -1).gather(1, best)
