"""Validation of the arguments of the top-k SVM losses.

Shapes, dtypes and hyper-parameters are always checked; the values (finite
scores, labels in range) only where :func:`._checks.value_checks_apply` allows
reading them.
"""

from __future__ import annotations

import math
import numbers
import sys

import torch
from torch import Tensor

from ._checks import value_checks_apply

_REDUCTIONS = ("none", "mean", "sum")


def _check_hyper(
    k: int, margin: float, tau: float, reduction: str, scores: Tensor | None = None
) -> None:
    """Validate the hyper-parameters that do not depend on the data values
    (``k >= 1`` too, so that a module rejects ``k = 0`` at construction; the
    ``scores``, where given, name the upper bound of ``k`` in the message)."""
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    if not _is_integer(k):
        raise ValueError(
            "k must be an integer (an int or a numpy integer; not a bool, float "
            f"or tensor) in [1, n_classes - 1]; got {k!r} ({type(k).__name__})"
        )
    if k < 1:
        n_classes = scores.shape[1] if _is_matrix(scores) else None
        raise _k_range_error(k, n_classes)
    if not _is_real(margin) or not 0.0 <= float(margin) < math.inf:
        raise ValueError(f"margin must be a finite number >= 0; got {margin!r}")
    if not _is_real(tau) or not 0.0 < float(tau) < math.inf:
        raise ValueError(f"tau must be a finite number > 0; got {tau!r}")
    # As comparisons (no math.isinf): a compiled function traces them with a
    # symbolic tau; int(k) keeps numpy integers from warning on overflow.
    if _is_integer(k) and 1 <= k < 2**53 and not 1.0 / (int(k) * tau) < math.inf:
        raise ValueError(
            f"tau must be larger than about {1.0 / sys.float_info.max / k:.3g} for "
            f"k = {k} (1 / (k tau) must be a finite float64); got {tau!r}"
        )


def _is_matrix(scores: object) -> bool:
    return isinstance(scores, Tensor) and scores.ndim == 2


def _k_range_error(k: int, n_classes: int | None) -> ValueError:
    """k outside ``[1, n_classes - 1]``, with the bound where it is known."""
    if n_classes is None:
        return ValueError(f"k must be in [1, n_classes - 1]; got {k}.")
    why = (
        " k = n_classes is meaningless: the only k-subset, all the classes, "
        "contains the true class, so the loss would be identically zero "
        "(and a larger k has no k-subsets at all)."
        if k >= n_classes
        else ""
    )
    return ValueError(
        f"k must be in [1, n_classes - 1] = [1, {n_classes - 1}]; got {k}.{why}"
    )


# Plain int and float first: the abstract-class checks cost microseconds, and
# the training loop validates its hyper-parameters at every step.
def _is_integer(value: object) -> bool:
    if type(value) is int:
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    if type(value) is float or type(value) is int:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_data(scores: Tensor, labels: Tensor, k: int, values: bool = True) -> Tensor:
    """Validate scores, labels and k against the data; return int64 labels.

    Shapes and dtypes always; values (finite scores, labels in range) where
    ``values`` asks for them and :func:`._checks.value_checks_apply` allows
    reading them.
    """
    if not isinstance(scores, Tensor):
        raise TypeError(f"scores must be a torch.Tensor; got {type(scores).__name__}")
    if scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError(
            "scores must be a 2-D floating-point tensor of shape (n_samples, "
            f"n_classes); got shape {tuple(scores.shape)} and dtype {scores.dtype}"
        )
    if scores.layout is not torch.strided:
        raise ValueError(
            f"scores must be a dense tensor; got layout {scores.layout} "
            "(call scores.to_dense() first)"
        )
    n, n_classes = scores.shape
    if n_classes < 2:
        raise ValueError(f"scores must have at least 2 classes; got {n_classes}")
    if not 1 <= k <= n_classes - 1:
        raise _k_range_error(k, n_classes)
    if not isinstance(labels, Tensor) or labels.device != scores.device:
        labels = torch.as_tensor(labels, device=scores.device)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor; got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(
            f"labels must have shape (n_samples,) = ({n},); got {tuple(labels.shape)}"
        )
    if values and n and value_checks_apply(scores, labels):
        _check_values(scores, labels, n_classes)
    return labels.long()


def _check_values(scores: Tensor, labels: Tensor, n_classes: int) -> None:
    low, high = torch.aminmax(scores.detach())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("scores must be finite; got NaN or infinite values")
    # as int64: aminmax has no CPU kernel for uint16, uint32 and uint64
    low, high = (int(v) for v in torch.aminmax(labels.long()))
    if low < 0 or high >= n_classes:
        raise ValueError(
            f"labels must be in [0, n_classes - 1] = [0, {n_classes - 1}]; "
            f"got values in [{low}, {high}]"
        )
