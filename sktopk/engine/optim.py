"""Optimizers over lists of tensors with per-member learning rates.

Each update is a handful of ``torch._foreach_*`` calls over all parameters,
with no host synchronisation. The learning rate has the members' leading shape
and is broadcast to every parameter; a zero learning rate freezes a member.
Formulas follow ``torch.optim`` (Adagrad, Adam, SGD) with default options.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["make_optimizer", "OPTIMIZERS"]


def _views(lr: Tensor, params: list[Tensor]) -> list[Tensor]:
    if lr.numel() == 1:  # one member: parameters may lack the member dims
        return [lr.reshape(())] * len(params)
    return [lr.reshape(lr.shape + (1,) * (p.dim() - lr.dim())) for p in params]


class _Adagrad:
    def __init__(self, params: list[Tensor], eps: float = 1e-10):
        self.params = params
        self.sums = [torch.zeros_like(p) for p in params]
        self.eps = eps

    def step(self, grads: list[Tensor], lr: Tensor) -> None:
        torch._foreach_addcmul_(self.sums, grads, grads)
        std = torch._foreach_sqrt(self.sums)
        torch._foreach_add_(std, self.eps)
        scaled = torch._foreach_mul(grads, _views(-lr, self.params))
        torch._foreach_addcdiv_(self.params, scaled, std)


class _Adam:
    def __init__(self, params: list[Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.betas, self.eps, self.t = betas, eps, 0

    def step(self, grads: list[Tensor], lr: Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, (1 - b2**self.t) ** 0.5)
        torch._foreach_add_(denom, self.eps)
        step = _views(-lr / (1 - b1**self.t), self.params)
        torch._foreach_addcdiv_(self.params, torch._foreach_mul(self.m, step), denom)


class _SGD:
    def __init__(self, params: list[Tensor]):
        self.params = params

    def step(self, grads: list[Tensor], lr: Tensor) -> None:
        torch._foreach_add_(self.params, torch._foreach_mul(grads, _views(-lr, grads)))


OPTIMIZERS = {"adagrad": _Adagrad, "adam": _Adam, "sgd": _SGD}


def make_optimizer(name: str, params: list[Tensor]):
    """Build the named optimizer over ``params`` (updated in place)."""
    return OPTIMIZERS[name](params)
