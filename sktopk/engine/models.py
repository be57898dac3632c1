"""Models the engine trains: a stack of MLPs with a hand-derived backward, and
an adapter that trains any user ``nn.Module`` through autograd.

Both expose the same small interface: ``params`` (a list of tensors),
``penalized`` (indices of the weight matrices under the L2 penalty),
``forward(X)`` and ``backward(grad_out)`` returning one gradient per param.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["StackedMLP", "ModuleAdapter", "to_sequential"]


class StackedMLP:
    """Independent MLPs (or linear models) stacked along leading dims ``lead``.

    Weights have shape ``lead + (in, out)`` and biases ``lead + (out,)``.
    Inputs are either shared by all members of a group, shape ``(G, 1, B, d)``,
    or per member, ``lead + (B, d)``.

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes ``(d, h1, ..., out)``; ``(d, out)`` is a linear model.
    params : list of Tensor
        ``[W1, b1, W2, b2, ...]`` with the shapes above.
    """

    def __init__(self, sizes: tuple[int, ...], params: list[Tensor]):
        self.sizes = tuple(sizes)
        self.params = params
        self.penalized = list(range(0, len(params), 2))
        self._cache: list[Tensor] = []

    @classmethod
    def initialize(
        cls,
        sizes: tuple[int, ...],
        generators: list[torch.Generator],
        members_per_group: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        single: bool = False,
    ) -> StackedMLP:
        """PyTorch's ``nn.Linear`` initialisation, drawn from each group's
        generator in a fixed order, so a member's initial weights depend only
        on its group's seed. ``single=True`` gives one member with no leading
        dims (``lead = ()``)."""
        # Every member of a group starts from the same draw, so a member trained
        # in a batch starts where a single run with the group's seed would.
        per_group = [
            [
                p.expand(members_per_group, *p.shape[1:])
                for p in _init_member(sizes, gen, dtype)
            ]
            for gen in generators
        ]
        params = [torch.stack(p) for p in zip(*per_group, strict=True)]
        if single:
            params = [p[0, 0].contiguous() for p in params]
        return cls(sizes, [p.to(device) for p in params])

    def forward(self, X: Tensor, cache: bool = True) -> Tensor:
        """Scores of shape ``lead + (B, out)``."""
        a = X
        acts = [a]
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            a = torch.matmul(a, W) + b.unsqueeze(-2)
            if i < n_layers - 1:
                a = torch.relu(a)
            acts.append(a)
        if cache:
            self._cache = acts
        return a

    def backward(self, grad_out: Tensor) -> list[Tensor]:
        """Gradients of ``sum(grad_out * forward(X))`` w.r.t. ``params``."""
        acts, g = self._cache, grad_out
        n_layers = len(self.params) // 2
        grads: list[Tensor] = [None] * len(self.params)  # type: ignore[list-item]
        for i in reversed(range(n_layers)):
            a_in = acts[i]
            W = self.params[2 * i]
            dW = torch.matmul(a_in.transpose(-1, -2), g)
            grads[2 * i] = _sum_to(dW, W.shape)
            grads[2 * i + 1] = g.sum(-2)
            if i > 0:
                g = torch.matmul(g, W.transpose(-1, -2)) * (acts[i] > 0)
        self._cache = []
        return grads

    def member_state(self, index: tuple[int, int]) -> list[Tensor]:
        """The weights of one member, as CPU tensors."""
        return [p[index].detach().cpu().clone() for p in self.params]


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    while t.dim() > len(shape):
        t = t.sum(0)
    dims = [
        i for i, (a, b) in enumerate(zip(t.shape, shape, strict=True)) if b == 1 < a
    ]
    return t.sum(dims, keepdim=True) if dims else t


def _init_member(sizes, gen, dtype) -> list[Tensor]:
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
        bound = 1.0 / math.sqrt(fan_in)
        W = torch.rand(1, fan_in, fan_out, generator=gen, dtype=dtype)
        b = torch.rand(1, fan_out, generator=gen, dtype=dtype)
        out += [(2 * W - 1) * bound, (2 * b - 1) * bound]
    return out


def to_sequential(sizes: tuple[int, ...], state: list[Tensor]) -> nn.Sequential:
    """Build an ``nn.Sequential`` of Linear/ReLU layers from one member's state."""
    layers: list[nn.Module] = []
    n_layers = len(state) // 2
    for i in range(n_layers):
        lin = nn.Linear(sizes[i], sizes[i + 1], dtype=state[2 * i].dtype)
        with torch.no_grad():
            lin.weight.copy_(state[2 * i].T)
            lin.bias.copy_(state[2 * i + 1])
        layers.append(lin)
        if i < n_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ModuleAdapter:
    """Train a user ``nn.Module`` (one member, ``lead = ()``) by autograd.

    Weight matrices (parameters with two or more dims) are penalised.
    """

    def __init__(self, module: nn.Module):
        self.module = module
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.penalized = [i for i, p in enumerate(self.params) if p.dim() >= 2]
        self._out: Tensor | None = None

    def forward(self, X: Tensor, cache: bool = True) -> Tensor:
        flat = X.reshape(-1, X.shape[-1])
        with torch.set_grad_enabled(cache):
            out = self.module(flat)
        if out.dim() == 1:
            out = out.unsqueeze(-1)
        if cache:
            self._out = out
        return out

    def backward(self, grad_out: Tensor) -> list[Tensor]:
        out, self._out = self._out, None
        grads = torch.autograd.grad(out, self.params, grad_out.reshape(out.shape))
        return list(grads)
