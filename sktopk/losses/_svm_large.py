"""Route of the smooth top-k SVM loss for large k, exact, in float64.

As on the fast route (:mod:`._svm_fast`), the wrong classes are split at the
k-th largest wrong score; the elementary symmetric polynomials come from exact
product trees (:func:`._esp.esp_unit`) while ``C(C - 1, k)`` fits float64, and
from log-space ones (:func:`._esp.log_esp`) beyond. The product trees have
first derivatives only; the log-space route, used under ``torch.func``
transforms, is differentiable to every order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import transformed
from ._esp import esp_unit, log_esp
from ._svm_common import _F64, _functorch_only

# Linear-space products of values in [0, 1], bounded by C(C - 1, k), in
# float64 while that fits; log-space beyond.
_LINEAR_MAX_LOG = 650.0


def _smooth_large(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample loss for large k: product trees, or log-space products."""
    n_classes = scores.shape[1]
    # The product trees have first derivatives only; torch.func transforms get
    # the log-space route, differentiable to every order.
    functorch = transformed() and _functorch_only()
    if _log_binom(n_classes - 1, k) < _LINEAR_MAX_LOG and not functorch:
        return _smooth_topk_svm_tree(scores, labels, k, margin, tau)
    return _smooth_topk_svm_logspace(scores, labels, k, margin, tau)


def _smooth_topk_svm_tree(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample loss for large k: the same split, ESP by product trees.

    Float64 throughout; autograd through :func:`._esp.esp_unit`.
    """
    s = scores.to(_F64)
    y = labels[:, None]
    wrong = s.scatter(1, y, -math.inf)
    top_idx = wrong.detach().topk(k, dim=1).indices
    kth = wrong.detach().gather(1, top_idx[:, -1:])
    z = (wrong - kth) / (k * tau)
    # -inf before exp, not 0 after: exp(inf) * 0 would make the gradient NaN.
    x = z.scatter(1, top_idx, -math.inf).exp()  # in [0, 1], 0 on the top k
    a = esp_unit(torch.exp(-z.gather(1, top_idx)), k)  # u in (0, 1]
    b = esp_unit(x, k)
    log_ratio = torch.log((a * b).sum(1) / (a[:, 1:] * b[:, :-1]).sum(1))
    slack = margin + (kth[:, 0] - s.gather(1, y)[:, 0]) / k + tau * log_ratio
    return tau * torch.logaddexp(torch.zeros_like(slack), slack / tau)


def _log_binom(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _smooth_topk_svm_logspace(
    scores: Tensor, labels: Tensor, k: int, margin: float, tau: float
) -> Tensor:
    """Per-sample loss by log-space divide and conquer, float64, autograd."""
    s = scores.to(_F64)
    y = labels[:, None]
    wrong = s.scatter(1, y, -math.inf)
    kth = wrong.detach().topk(k, dim=1).values[:, -1:]
    log_e = log_esp((wrong - kth) / (k * tau), k)
    slack = margin + (kth[:, 0] - s.gather(1, y)[:, 0]) / k
    slack = slack + tau * (log_e[:, k] - log_e[:, k - 1])
    return tau * torch.logaddexp(torch.zeros_like(slack), slack / tau)
