"""Helpers of the top-k SVM losses: dtypes, autocast, reductions, tracing.

The losses compute in float32 or float64 (:func:`_compute_dtype`), with
autocast off (:func:`_no_autocast`), and return the dtype of the scores, or
float32 for half-precision scores under autocast (:func:`_result_dtype`),
reduced by :func:`_reduce`; :func:`_vector` builds their cached constants.
:func:`_traced` tells compile, export and ``jit.trace`` (routes by the size of
a row) from eager mode and ``torch.func`` transforms.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from ._checks import transformed

_F64 = torch.float64


def _functorch_only() -> bool:
    """A torch.func transform, not compile, export or jit tracing."""
    return not (torch.compiler.is_compiling() or torch.jit.is_tracing())


def _traced() -> bool:
    """Compile, export or jit tracing: routes by ``k`` only."""
    return transformed() and not _functorch_only()


def _compute_dtype(dtype: torch.dtype, k_tau: float) -> torch.dtype:
    """float32 or float64; float64 where ``1 / (k tau)`` overflows float32."""
    if k_tau < torch.finfo(torch.float32).tiny or dtype == _F64:
        return _F64
    return torch.float32


def _result_dtype(scores: Tensor) -> torch.dtype:
    """The dtype of the scores; float32 for half precision under autocast."""
    if scores.dtype in (torch.float16, torch.bfloat16) and _autocast_on(
        scores.device.type
    ):
        return torch.float32
    return scores.dtype


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except (RuntimeError, TypeError):  # a device type without autocast
        return False


def _no_autocast(device_type: str):
    """Autocast off inside the loss (its products need full precision)."""
    if _autocast_on(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _vector(values: tuple, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A constant vector (for :func:`._esp.constants`)."""
    return torch.tensor(values, dtype=dtype, device=device)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
