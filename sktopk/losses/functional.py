"""Pure functions on tensors: individual losses, aggregates and smoothings.

The public functional surface of :mod:`sktopk.losses`, in the spirit of
``torch.nn.functional``::

    from sktopk.losses import functional as F
    value = F.stk(F.logistic(scores, y), lam, k=0.1)

Over **samples**: ``average``, ``maximum``, ``atk``, ``matk``, ``stk`` take a 1-D
tensor of individual losses and return a scalar (with ``dim``, one value per
row of a batch, and for ``matk`` and ``stk`` one ``lam`` per row).

Individual losses return **one value per sample**: ``F.cross_entropy`` here is
``torch.nn.functional.cross_entropy(..., reduction="none")``, not torch's
default mean (pass ``reduction="mean"`` for that). They accept torch's
argument names ``input=`` and ``target=`` too.

Over **classes**: ``smooth_topk_svm`` and ``topk_svm`` take a score matrix and
labels (reduced like torch's losses).

Examples
--------
>>> import torch
>>> from sktopk.losses import functional as F
>>> scores, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
>>> F.cross_entropy(scores, labels)  # per sample, unlike torch's F.cross_entropy
tensor([0.1269, 1.3133])
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
