"""Pure functions on tensors: individual losses, aggregates and smoothings.

The public functional surface of :mod:`sktopk.losses`, in the spirit of
``torch.nn.functional``::

    from sktopk.losses import functional as F
    value = F.stk(F.logistic(scores, y), lam, k=0.1)

Over **samples**: ``average``, ``maximum``, ``atk``, ``matk``, ``stk`` take a 1-D
tensor of individual losses and return a scalar. Individual losses return one
value per sample. Over **classes**: ``smooth_topk_svm`` and ``topk_svm`` take a
score matrix and labels (reduced like torch's losses).
"""

from ._aggregate import atk, average, kth_largest, matk, maximum, stk
from ._individual import (
    absolute,
    cross_entropy,
    hinge,
    logistic,
    multiclass_hinge,
    square,
)
from ._smoothing import srelu, srelu_grad
from ._topk_svm import smooth_topk_svm, topk_svm

__all__ = [
    "absolute",
    "atk",
    "average",
    "cross_entropy",
    "hinge",
    "kth_largest",
    "logistic",
    "matk",
    "maximum",
    "multiclass_hinge",
    "smooth_topk_svm",
    "square",
    "srelu",
    "srelu_grad",
    "stk",
    "topk_svm",
]
