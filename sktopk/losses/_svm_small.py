"""Routes of the smooth top-k SVM loss for ``k = 1`` and for few k-subsets.

Both are plain autograd, differentiable to every order:

* ``k = 1``: ``tau softplus(margin / tau + logsumexp_{j != y} (s_j - s_y) /
  tau)``, which is ``tau`` times the cross-entropy of ``(s - margin onehot_y) /
  tau`` (:func:`_smooth_k1`).
* few k-subsets: the definition itself, one matrix product with a 0/1 subset
  matrix and two log-sum-exps (:func:`_smooth_subsets`).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ._esp import constants
from ._svm_common import _F64, _vector


def _smooth_k1(scores: Tensor, labels: Tensor, margin: float, tau: float) -> Tensor:
    """``k = 1``: ``tau softplus((margin + c - s_y) / tau + log sum_{j != y} x_j)``.

    With one class per subset, ``e_1(exp(z')) / e_0`` is the softmax
    denominator without the true class: the loss is ``tau`` times the
    cross-entropy of ``(s - margin onehot_y) / tau``. It is computed relative
    to the largest wrong score ``c`` (``x_j = exp((s_j - c) / tau)`` in
    ``[0, 1]``, their log-sum-exp in ``[0, log C]``) and through ``softplus``,
    so that a tiny loss and its gradient keep their relative accuracy (the
    cross-entropy's ``softmax - onehot`` loses it), the true class gets exactly
    ``-sigma``, and shifting all scores changes nothing.
    """
    y = labels[:, None]
    c = scores.detach().scatter(1, y, -math.inf).amax(1, keepdim=True)
    shifted = scores - c
    rest = shifted.scatter(1, y, -math.inf)
    if tau != 1.0:
        rest = rest / tau
    gap = torch.cat([torch.logsumexp(rest, 1, keepdim=True), shifted.gather(1, y)], 1)
    weights = constants(_vector, (1.0, -1.0 / tau, margin / tau), gap.dtype, like=gap)
    slack = torch.addmv(weights[2].expand(gap.shape[0]), gap, weights[:2])  # / tau
    loss = F.softplus(slack, threshold=40.0)
    return loss * tau if tau != 1.0 else loss


def _smooth_subsets(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """The definition, over all k-subsets: for small ``C(n_classes, k)``.

    In float64, ``(s - max s) @ S`` holds the subset means over ``tau``; the
    offsets restrict the first log-sum-exp to the subsets without ``y`` (plus
    ``margin / tau``) and the second to those with ``y``, so that the loss is
    ``tau softplus(lse_1 - lse_2)``, non-negative and accurate when tiny.
    """
    subsets, offsets = constants(
        _subset_constants, scores.shape[1], k, margin, tau, like=scores
    )
    shifted = (scores - scores.detach().amax(1, keepdim=True)).to(_F64)
    terms = (shifted @ subsets)[:, None, :] + offsets.index_select(0, labels)
    # Each log-sum-exp relative to its own largest term: its backward,
    # exp(term - result), is then exact even where 1 / tau makes terms huge.
    top = terms.detach().amax(2, keepdim=True)
    both = torch.logsumexp(terms - top, 2) + top[:, :, 0]
    slack = torch.mv(both, torch.tensor([tau, -tau], dtype=_F64, device=both.device))
    return F.softplus(slack, beta=1.0 / tau, threshold=40.0)


def _subset_constants(
    n_classes: int, k: int, margin: float, tau: float, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Subset matrix ``(C, n_subsets) / (k tau)`` and offsets ``(C, 2, n_subsets)``."""
    subsets = list(itertools.combinations(range(n_classes), k))
    rows = [[float(j in subset) for subset in subsets] for j in range(n_classes)]
    member = torch.tensor(rows, dtype=_F64, device=device)
    without = torch.log(1.0 - member) + margin / tau  # -inf where y is in
    return member / (k * tau), torch.stack([without, torch.log(member)], 1)
