"""Models the engine trains: a stack of MLPs with a hand-derived backward, and
an adapter that trains any user ``nn.Module`` through autograd.

Both expose the same small interface to the training loop:

- ``attach(lam, l2, l1)``: add the aggregate's threshold lambda (or ``None``)
  to the trained state and set the penalty ``l2 ||W||^2 / 2 + l1 ||W||_1``;
  returns the tensor that holds lambda from then on;
- ``shrink(t)``: the proximal step of the l1 penalty, ``W <- sign(W)
  max(|W| - t l1, 0)`` on the penalised weights (exact zeros);
- ``state``: the list of tensors the optimizer updates in place;
- ``forward(X, cache)`` and ``backward(grad_out, grad_lam)``, the latter
  returning one gradient per ``state`` tensor, penalty included.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn

from .compiled import hidden_backward, output_forward
from .members import take

__all__ = ["StackedMLP", "ModuleAdapter", "evaluating", "to_sequential"]


class StackedMLP:
    """Independent MLPs (or linear models) stacked along leading dims ``lead``.

    All weights of a member live in one flat vector (``flat``, shape
    ``lead + (P,)``), so an optimizer step is a few operations on one tensor.
    ``params`` are views: weights ``lead + (in, out)``, biases ``lead + (out,)``.
    With ``lead = ()`` (one member) the products are plain matrix products.
    Inputs are ``(B, d)`` for one member, else ``(G, 1, B, d)`` shared by the
    members of a group (or ``lead + (B, d)``).

    Parameters
    ----------
    sizes : sequence of int
        Layer sizes ``(d, h1, ..., out)``; ``(d, out)`` is a linear model.
    flat : Tensor of shape lead + (P,)
        The weights, layer by layer: ``W1`` (row-major ``in x out``), ``b1``, ...
    """

    def __init__(self, sizes: tuple[int, ...], flat: Tensor):
        self.sizes = tuple(int(s) for s in sizes)
        self.layout = _layout(self.sizes)
        self.n_params = self.layout[-1][1]
        self.flat = flat
        self.lead = flat.shape[:-1]
        self.state = [flat]
        self._pen: Tensor | None = None
        self._cache: list[Tensor] = []
        # Buffers kept between steps: a new tensor of a grid's size at every
        # step costs the first touch of its pages (a tenth of a step).
        self._buffers: dict[str, Tensor] = {}

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
        generator. Every member of a group starts from the same draw, so a
        member trained in a batch starts where a single run with the group's
        seed would. ``single=True`` gives one member with ``lead = ()``."""
        draws = torch.stack([_init_flat(sizes, g, dtype) for g in generators])
        flat = draws.unsqueeze(1).expand(-1, members_per_group, -1)
        flat = flat[0, 0] if single else flat
        return cls(sizes, flat.contiguous().to(device))

    @classmethod
    def from_params(cls, sizes, params: list[Tensor]) -> StackedMLP:
        """From ``[W1, b1, ...]`` (weights ``in x out``) of one member."""
        return cls(sizes, torch.cat([p.reshape(-1) for p in params]).contiguous())

    @property
    def flat(self) -> Tensor:
        return self._flat

    @flat.setter
    def flat(self, value: Tensor) -> None:
        self._flat = value
        # Views into the flat vector, made once: they follow in-place updates.
        self.params = [
            value[..., a:b].view(*value.shape[:-1], *shape)
            for a, b, shape in self.layout
        ]

    def attach(self, lam: Tensor | None, l2: Tensor, l1: Tensor) -> Tensor | None:
        pen = torch.zeros(self.n_params + (lam is not None), device=self.flat.device)
        for i, (a, b, _) in enumerate(self.layout):
            pen[a:b] = 1.0 if i % 2 == 0 else 0.0
        self._pen = (pen * l2.unsqueeze(-1)).to(self.flat.dtype)
        self._l1 = (pen * l1.unsqueeze(-1)).to(self.flat.dtype)
        if lam is None:
            return None
        return self.rebind(
            torch.cat([self.flat, lam.unsqueeze(-1).to(self.flat.dtype)], -1)
        )

    def rebind(self, state: Tensor) -> Tensor | None:
        """Train ``state`` (weights, then lambda if any) from now on; returns
        the view holding lambda."""
        self.state = [state]
        self.flat = state[..., : self.n_params]
        self.lead = state.shape[:-1]
        return state[..., self.n_params] if state.shape[-1] > self.n_params else None

    def select(self, keep: Tensor) -> Tensor | None:
        """Keep only the members ``keep`` of each group (see
        :func:`.members.take`)."""
        self._pen = take(self._pen, keep)
        self._l1 = take(self._l1, keep)
        return self.rebind(take(self.state[0], keep))

    def forward(self, X: Tensor, cache: bool = True) -> Tensor:
        """Scores of shape ``lead + (B, out)``."""
        params, acts = self.params, [X]
        n_layers = len(params) // 2
        for i in range(n_layers):
            W = params[2 * i]
            side = self._side(W) if i == 0 and _shared(X, W) else None
            a = _linear(acts[-1], W, params[2 * i + 1], side)
            acts.append(a.relu_() if i < n_layers - 1 else a)  # a is new
        if cache:
            self._cache = acts
        return acts[-1]

    def _side(self, W: Tensor) -> Tensor:
        """The first layer's weights ``W`` (``(G, M, d, h)``) as ``(G, d, M
        h)``, the order of the shared input's product, copied into a buffer
        kept from one pass to the next."""
        G, M, d, h = W.shape
        side = _kept(self._buffers, "side", (G, d, M, h), W)
        side.copy_(W.permute(0, 2, 1, 3))
        return side.view(G, d, M * h)

    def backward(
        self, grad_out: Tensor, grad_lam: Tensor | None = None
    ) -> list[Tensor]:
        """Gradient of ``sum(grad_out * forward(X))`` plus the penalty, as one
        tensor shaped like ``state[0]`` (lambda's gradient last)."""
        width = self.state[0].shape[-1]
        if grad_lam is not None and width == self.n_params:
            raise ValueError(
                "grad_lam given, but the model holds no threshold lambda "
                "(attach one with attach(lam, l2, l1))"
            )
        acts, self._cache = self._cache, []
        grad = None
        if len(self.params) == 4:  # one hidden layer: one compiled pass
            out = _kept(self._buffers, "grad", self.state[0].shape, self.state[0])
            grad = hidden_backward(acts[0], acts[1], grad_out, self.params[2], out)
        if grad is None:
            grad = self._layer_grads(acts, grad_out, width)
        if width > self.n_params:
            grad[..., self.n_params] = 0.0 if grad_lam is None else grad_lam
        return [grad.addcmul_(self.state[0], self._pen)]

    def _layer_grads(self, acts: list[Tensor], g: Tensor, width: int) -> Tensor:
        """The weights' gradients layer by layer, by tensor operations, in
        one tensor of ``width`` entries per member (lambda's left to set)."""
        params, pieces = self.params, []
        for i in reversed(range(len(params) // 2)):
            pieces += [g.sum(-2), _weight_grad(acts[i], g, self.lead)]
            if i > 0:
                g = _input_grad(g, params[2 * i], acts[i])
                g = torch.ops.aten.threshold_backward(g, acts[i], 0.0)
        pieces.reverse()
        if width > self.n_params:
            pieces.append(g.new_empty(*self.lead, width - self.n_params))
        return torch.cat(pieces, -1)

    def penalty(self) -> Tensor:
        """The penalty ``l2 ||W||^2 / 2 + l1 ||W||_1`` of every member."""
        w = self.state[0].detach()
        return (0.5 * w.square() * self._pen + w.abs() * self._l1).sum(-1)

    def shrink(self, t: Tensor | float, scales: list[Tensor] | None = None) -> None:
        """Soft-threshold the penalised weights by ``t l1`` (``t`` of shape
        ``lead`` or a number; times the optimizer's per-coordinate
        ``scales[0]`` where given): the proximal step of the l1 penalty."""
        t = t.unsqueeze(-1) if isinstance(t, Tensor) and t.dim() else t
        w = self.state[0]
        cut = t * self._l1 if scales is None else t * self._l1 * scales[0]
        w.copy_(torch.sign(w) * torch.relu(w.abs() - cut))

    def silence_inputs(self, constant: Tensor) -> None:
        """Zero the first layer's weights of the inputs where ``constant``
        (of shape ``(d,)``, or ``(G, d)`` for the groups of ``lead = (G,
        M)``): an input constant on the rows a member trains on (0 once
        centred, as the estimators give it) gets no gradient, so its random
        initial weights would stay (shrunk by the penalty alone) and weigh
        values it takes only at prediction time."""
        W1 = self.params[0]  # lead + (d, h1)
        mask = constant if constant.dim() == 1 else constant[:, None, :]
        W1.masked_fill_(mask.to(W1.device)[..., None], 0.0)

    def member_state(self, index: tuple = ()) -> list[Tensor]:
        """The weights ``[W1, b1, ...]`` of one member, as CPU tensors."""
        return [p[index].detach().cpu().clone() for p in self.params]


def _kept(buffers: dict, name: str, shape, like: Tensor) -> Tensor:
    """``buffers[name]``, made anew where it lacks ``shape`` or ``like``'s
    dtype and device (its values are not kept)."""
    buf = buffers.get(name)
    same = buf is not None and buf.dtype == like.dtype and buf.device == like.device
    if not same or buf.shape != tuple(shape):
        buf = buffers[name] = like.new_empty(shape)
    return buf


# Stacked members multiply many tiny matrices, which batched matrix products do
# slowly. Two shapes get faster forms: an input shared by a group's members
# (one large product against all members' weights side by side), and a single
# output (an elementwise product and a sum).
def _shared(a: Tensor, W: Tensor) -> bool:
    return a.dim() == 4 and a.shape[1] == 1 and W.dim() == 4 and W.shape[1] > 1


def _linear(a: Tensor, W: Tensor, b: Tensor, side: Tensor | None = None) -> Tensor:
    """``a @ W + b`` of the members; ``side``: ``W`` as ``(G, d, M h)``,
    given where ``a`` is an input shared by each group's members
    (:func:`_shared`)."""
    if a.dim() == 2 and W.dim() == 2:
        return torch.addmm(b, a, W)
    if side is not None:
        G, M, d, h = W.shape
        # The biases enter the product (no pass over the activations to add
        # them); the result stays in the product's (G, B, M, h) memory order.
        z = torch.baddbmm(b.reshape(G, 1, M * h), a[:, 0], side)
        return z.view(G, -1, M, h).transpose(1, 2)
    if W.shape[-1] == 1 and W.dim() > 2:
        return _single_output(a, W, b)
    return torch.matmul(a, W) + b.unsqueeze(-2)


def _single_output(a: Tensor, W: Tensor, b: Tensor) -> Tensor:
    """``a @ W + b`` for one output unit: by the compiled loop where it
    applies (:mod:`.compiled`), else the elementwise product, summed over the
    hidden units by one matrix-vector product in the memory order of ``a``
    (a reduction over the short last axis is several times slower)."""
    z = output_forward(a, W, b)
    if z is not None:
        return z
    p = a * W.transpose(-1, -2)
    h = p.shape[-1]
    order = _memory_order(p)
    if order is None:
        return p.sum(-1, keepdim=True) + b.unsqueeze(-2)
    stored = p.permute(*order)  # contiguous
    z = torch.mv(stored.view(-1, h), p.new_ones(h)).view(stored.shape[:-1])
    inverse = sorted(range(len(order) - 1), key=order.__getitem__)
    return (z.permute(*inverse) + b).unsqueeze(-1)


def _memory_order(t: Tensor) -> list[int] | None:
    """The axes of ``t`` from outermost to innermost in memory, where ``t``
    is dense and its last axis innermost; else None."""
    order = sorted(range(t.dim()), key=lambda i: -t.stride(i))
    if order[-1] != t.dim() - 1 or not t.permute(*order).is_contiguous():
        return None
    return order


def _weight_grad(a_in: Tensor, g: Tensor, lead) -> Tensor:
    if a_in.dim() == 2 and g.dim() == 2:
        return torch.mm(a_in.t(), g).view(-1)
    if _shared(a_in, g):
        G, M, B, h = g.shape
        side = torch.bmm(
            a_in[:, 0].transpose(1, 2), g.transpose(1, 2).reshape(G, B, -1)
        )
        return side.view(G, -1, M, h).transpose(1, 2).reshape(*lead, -1)
    if g.shape[-1] == 1 and g.dim() > 2:
        return (a_in * g).sum(-2).reshape(*lead, -1)
    return torch.matmul(a_in.transpose(-1, -2), g).reshape(*lead, -1)


def _input_grad(g: Tensor, W: Tensor, act: Tensor) -> Tensor:
    """Gradient in the layer's input ``act``, in the memory order of ``act``
    (so that the shared-input weight gradient reads it without a copy)."""
    if g.dim() == 2 and W.dim() == 2:
        return torch.mm(g, W.t())
    if W.shape[-1] == 1 and W.dim() > 2:
        return torch.mul(g, W.transpose(-1, -2), out=torch.empty_like(act))
    return torch.matmul(g, W.transpose(-1, -2))


def _layout(sizes) -> list[tuple[int, int, tuple[int, ...]]]:
    out, start = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
        for shape in ((fan_in, fan_out), (fan_out,)):
            n = math.prod(shape)
            out.append((start, start + n, shape))
            start += n
    return out


def _init_flat(sizes, gen, dtype) -> Tensor:
    pieces = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False):
        bound = 1.0 / math.sqrt(fan_in)
        W = torch.rand(fan_in * fan_out, generator=gen, dtype=dtype)
        b = torch.rand(fan_out, generator=gen, dtype=dtype)
        pieces += [(2 * W - 1) * bound, (2 * b - 1) * bound]
    return torch.cat(pieces)


def to_sequential(sizes: tuple[int, ...], state: list[Tensor]) -> nn.Sequential:
    """Build an ``nn.Sequential`` of Linear/ReLU layers from one member's state."""
    layers: list[nn.Module] = []
    n_layers = len(state) // 2
    for i in range(n_layers):
        # skip_init: the weights are copied in, so torch's global generator
        # is neither read nor advanced.
        lin = nn.utils.skip_init(
            nn.Linear, sizes[i], sizes[i + 1], dtype=state[2 * i].dtype
        )
        with torch.no_grad():
            lin.weight.copy_(state[2 * i].T)
            lin.bias.copy_(state[2 * i + 1])
        layers.append(lin)
        if i < n_layers - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ModuleAdapter:
    """Train a user ``nn.Module`` (one member, ``lead = ()``) by autograd.

    Weight matrices (parameters with two or more dims) are penalised. The
    training steps run the module in the mode it has (a fresh module's is
    training); the passes without gradients (the threshold's initial value,
    the validation scores) run it in eval mode: dropout off, and batch
    normalisation with its running statistics, which those rows leave as
    they were.
    """

    lead = ()

    def __init__(self, module: nn.Module):
        self.module = module
        self.state = [p for p in module.parameters() if p.requires_grad]
        self._n = len(self.state)
        self._penalized = [i for i, p in enumerate(self.state) if p.dim() >= 2]
        self._out: Tensor | None = None
        self._l2: Tensor | None = None

    def own_tensors(self) -> None:
        """Replace the module's inference tensors (made under an enclosing
        ``torch.inference_mode``) by normal copies, which training may
        update in place; call it outside inference mode, before ``attach``."""
        replaced = _own_module_tensors(self.module)
        if replaced:
            self.state = [p for p in self.module.parameters() if p.requires_grad]

    def attach(self, lam: Tensor | None, l2: Tensor, l1: Tensor) -> Tensor | None:
        self._l2, self._l1 = l2, l1
        if lam is not None:
            self.state = self.state + [lam]
        return lam

    def forward(self, X: Tensor, cache: bool = True) -> Tensor:
        """The module's outputs ``(B, out)``; ``cache=False``: a pass without
        gradients, in eval mode (the module's modes restored afterwards)."""
        if cache:
            out = self.module(X)
        else:
            with torch.no_grad(), evaluating(self.module):
                out = self.module(X)
        out = out.unsqueeze(-1) if out.dim() == 1 else out
        if cache:
            self._out = out
        return out

    def backward(
        self, grad_out: Tensor, grad_lam: Tensor | None = None
    ) -> list[Tensor]:
        out, self._out = self._out, None
        params = self.state[: self._n]
        grads = list(torch.autograd.grad(out, params, grad_out.reshape(out.shape)))
        for i in self._penalized:
            grads[i] = grads[i] + params[i].detach() * self._l2
        return grads + ([grad_lam] if grad_lam is not None else [])

    def penalty(self) -> Tensor:
        sq = sum(self.state[i].detach().square().sum() for i in self._penalized)
        ab = sum(self.state[i].detach().abs().sum() for i in self._penalized)
        return 0.5 * sq * self._l2 + ab * self._l1

    def shrink(self, t: Tensor | float, scales: list[Tensor] | None = None) -> None:
        """Soft-threshold the penalised weights by ``t l1`` (times the
        optimizer's per-coordinate ``scales`` where given)."""
        for i in self._penalized:
            w = self.state[i]
            cut = t * self._l1 if scales is None else t * self._l1 * scales[i]
            w.copy_(torch.sign(w) * torch.relu(w.abs() - cut))


@contextlib.contextmanager
def evaluating(module: nn.Module):
    """Run the block with ``module`` in eval mode, then give each of its
    submodules back the mode it had (a user may keep some in eval mode).

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    >>> with evaluating(net):
    ...     net.training
    False
    >>> net.training
    True
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def _own_module_tensors(module: nn.Module) -> bool:
    """Replace the inference tensors among the parameters and buffers of
    ``module`` by normal copies; whether any was replaced."""
    replaced = False
    for m in module.modules():
        for name, p in m._parameters.items():
            if p is not None and p.is_inference():
                m._parameters[name] = nn.Parameter(p.clone(), p.requires_grad)
                replaced = True
        for name, b in m._buffers.items():
            if b is not None and b.is_inference():
                m._buffers[name] = b.clone()
                replaced = True
    return replaced
