"""Optimizers over lists of tensors with per-member learning rates.

Each update is a handful of in-place tensor operations, with no host
synchronisation. The learning rate has the members' leading shape
and is broadcast to every parameter; a zero learning rate freezes a member.
Formulas follow ``torch.optim`` (Adagrad, Adam, SGD) with default options.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["make_optimizer", "OPTIMIZERS"]


def _view(lr, p: Tensor):
    if not isinstance(lr, Tensor):  # one member, a Python number
        return lr
    if lr.numel() == 1:  # one member: parameters may lack the member dims
        return lr.reshape(())
    return lr.reshape(lr.shape + (1,) * (p.dim() - lr.dim()))


# The sktopk models keep all weights in one tensor, so plain per-tensor loops
# are as fast as the foreach kernels here and simpler.
def _const(value: float, like: Tensor) -> Tensor:
    """A cached 0-dim tensor: Python numbers in tiny operations cost more."""
    key = (value, like.dtype, like.device)
    if key not in _CONSTS:
        _CONSTS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return _CONSTS[key]


_CONSTS: dict = {}


class _Buffers:
    """Optimizer state buffers that follow a selection of members."""

    buffers: tuple[str, ...] = ()

    def select(self, keep: Tensor, params: list[Tensor]) -> None:
        self.params = params
        for name in self.buffers:
            setattr(self, name, [b[:, keep].contiguous() for b in getattr(self, name)])


class _Adagrad(_Buffers):
    buffers = ("sums",)

    def __init__(self, params: list[Tensor], eps: float = 1e-10):
        self.params = params
        self.sums = [torch.zeros_like(p) for p in params]
        self.eps = eps

    def step(self, grads: list[Tensor], lr: Tensor | float) -> None:
        for p, g, s in zip(self.params, grads, self.sums, strict=True):
            s.addcmul_(g, g)
            denom = s.sqrt().add_(_const(self.eps, s))
            if isinstance(lr, Tensor):
                p.addcdiv_(g * _view(-lr, p), denom)
            else:
                p.addcdiv_(g, denom, value=-lr)


class _Adam(_Buffers):
    buffers = ("m", "v")

    def __init__(self, params: list[Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.betas, self.eps, self.t = betas, eps, 0

    def step(self, grads: list[Tensor], lr: Tensor) -> None:
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1 - b1**self.t, (1 - b2**self.t) ** 0.5
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = v.sqrt().div_(c2).add_(self.eps)
            p.addcdiv_(m * _view(-lr / c1, p), denom)


class _SGD(_Buffers):
    def __init__(self, params: list[Tensor]):
        self.params = params

    def step(self, grads: list[Tensor], lr: Tensor) -> None:
        for p, g in zip(self.params, grads, strict=True):
            p.add_(g * _view(-lr, p))


OPTIMIZERS = {"adagrad": _Adagrad, "adam": _Adam, "sgd": _SGD}


def make_optimizer(name: str, params: list[Tensor]):
    """Build the named optimizer over ``params`` (updated in place)."""
    return OPTIMIZERS[name](params)
