"""Optimizers over lists of tensors, for a grid of independent members.

Every parameter tensor has the members' leading shape ``lead`` (for example
``(G, M)``, groups x members) followed by the member's own dims; with
``lead == ()`` there is one member and the parameters have no member dims.
The learning rate is a Python number (one member) or a tensor of shape
``lead``, broadcast to every parameter.

Each update is a handful of in-place tensor operations, with no host
synchronisation. ``step(grads, lr, mask)`` takes an optional mask of shape
``lead`` saying which members take the step: the others keep their weights
and their optimizer state (accumulators, moments, momentum buffers and step
counts) exactly, so a member stepped under a mask follows the trajectory of a
single run stepped only where its mask was on. Without a mask every member
steps, on the fastest path.

Formulas and option names follow ``torch.optim`` (Adagrad, Adam, SGD); the
options are those listed in each class's ``defaults``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Real

import torch
from torch import Tensor

from .compiled_optim import AdagradLoop
from .members import take

__all__ = ["make_optimizer", "optimizer_options", "OPTIMIZERS"]


def _view(x, p: Tensor):
    """``x`` (a number or a per-member tensor) shaped to broadcast against ``p``."""
    if not isinstance(x, Tensor):  # one member, a Python number
        return x
    if x.numel() == 1:  # one member: parameters may lack the member dims
        return x.reshape(())
    return x.reshape(x.shape + (1,) * (p.dim() - x.dim()))


# The sktopk models keep all weights in one tensor, so plain per-tensor loops
# are as fast as the foreach kernels here and simpler.
def _const(value: float, like: Tensor) -> Tensor:
    """A cached 0-dim tensor: Python numbers in tiny operations cost more."""
    key = (value, like.dtype, like.device)
    if key not in _CONSTS:
        _CONSTS[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
    return _CONSTS[key]


_CONSTS: dict = {}


def _as_bool(mask: Tensor) -> Tensor:
    """A step mask (bool, or 0/1 numbers) as a bool tensor."""
    return mask if mask.dtype == torch.bool else mask != 0


def _pick(mask: Tensor, a: float, b: float, like: Tensor) -> Tensor:
    """Per member, ``a`` where ``mask`` else ``b``, in ``like``'s dtype."""
    return torch.where(mask, _const(a, like), _const(b, like))


def _descend(p: Tensor, d: Tensor, lr: Tensor | float) -> None:
    """``p -= lr * d`` in place, ``lr`` a number or a per-member tensor.

    One rounding order for both, so that batched members equal single runs
    bit for bit (``add_(d, alpha=-lr)`` may round differently).
    """
    p.add_(d * _view(-lr, p))


def _number(
    owner: str, name: str, value, allowed: str, within: Callable[[float], bool]
) -> float:
    """``value`` as a float, or a ValueError saying what option ``name`` allows."""
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and within(float(value))):
        raise ValueError(f"{owner}: {name} must be a number {allowed}, got {value!r}.")
    return float(value)


class _Optimizer:
    """An optimizer over ``params`` (updated in place) for members ``lead``.

    Parameters
    ----------
    params : list of Tensor
        The tensors to update in place; each has leading dims ``lead``.
    lead : tuple of int, default=()
        The members' leading shape; ``()`` for a single member whose
        parameters have no member dims.

    Attributes
    ----------
    defaults : dict
        The options and their defaults (``torch.optim``'s names and values).
    buffers : tuple of str
        Names of the per-parameter state lists (shaped like ``params``).
    counts : bool
        Whether the update depends on each member's number of steps ``t``.
    t : int or Tensor
        Steps taken (kept where ``counts``): a Python int while every member
        has taken every step, else an int64 tensor of shape ``lead`` (one
        count per member), from the first masked step on.
    _most : int
        Step calls since ``t`` became a tensor plus its value then: a bound on
        every member's count that the host knows without asking the device.
    """

    defaults: dict = {}
    buffers: tuple[str, ...] = ()
    counts: bool = False

    def __init__(self, params: list[Tensor], lead: Sequence[int] = ()) -> None:
        self.params = params
        self.lead = tuple(lead)
        self.t: int | Tensor = 0
        self._most = 0

    @property
    def _name(self) -> str:
        return type(self).__name__.strip("_")

    def step(
        self, grads: list[Tensor], lr: Tensor | float, mask: Tensor | None = None
    ) -> None:
        """Update the parameters in place with one gradient per parameter.

        Parameters
        ----------
        grads : list of Tensor
            Gradients shaped like ``params``.
        lr : float or Tensor
            The step size: a number, or a tensor of shape ``lead`` (one per
            member).
        mask : Tensor or None, default=None
            Which members take this step, a tensor of shape ``lead`` (bool,
            or 0/1 numbers); the others keep their weights and their state
            exactly as they are, provided their gradients are finite. None:
            every member steps.
        """
        if mask is None:
            if not isinstance(self.t, Tensor):
                self._step(grads, lr)
                return
            mask = torch.ones_like(self.t, dtype=torch.bool)
        if self.params:
            self._masked_step(grads, lr, _as_bool(mask))

    def _step(self, grads: list[Tensor], lr: Tensor | float) -> None:
        """Every member steps, and all have taken the same number of steps."""
        raise NotImplementedError

    def _masked_step(
        self, grads: list[Tensor], lr: Tensor | float, mask: Tensor
    ) -> None:
        """Members ``mask`` (bool) step; ``t`` may differ per member.

        The masks are multiplicative: a masked-out member's update is scaled
        by zero, which leaves its weights and state exactly as they are as
        long as its gradient is finite (a non-finite one, never used by a
        masked-out member's single run, spoils that member's weights alone).
        """
        raise NotImplementedError

    def _counts_tensor(self) -> Tensor:
        """The per-member step counts ``t`` as an int64 tensor of shape ``lead``."""
        if not isinstance(self.t, Tensor):
            self._most = self.t
            device = self.params[0].device if self.params else None
            self.t = torch.full(self.lead, self.t, dtype=torch.long, device=device)
        return self.t

    def _advance(self, mask: Tensor) -> Tensor:
        """Count a step for members ``mask``; returns the new counts."""
        t = self._counts_tensor()
        self._most += 1
        self.t = t + mask
        return self.t

    def scales(self) -> list[Tensor] | None:
        """Per-coordinate factor of the step size in the last update (None:
        1 everywhere), e.g. ``1 / (sqrt(sum g^2) + eps)`` for Adagrad. The l1
        penalty's proximal step thresholds by ``lr`` times this factor, so it
        matches the update it follows."""
        return None

    def state_dict(self) -> dict:
        """The buffers and step count of a single member, as numpy arrays
        (kept by ``partial_fit`` between calls)."""
        out = {"t": int(self.t)}
        for name in self.buffers:
            out[name] = [b.detach().cpu().numpy().copy() for b in getattr(self, name)]
        return out

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` (buffers copied into place)."""
        self.t = int(state["t"])
        for name in self.buffers:
            for buf, value in zip(getattr(self, name), state[name], strict=True):
                buf.copy_(torch.as_tensor(value, dtype=buf.dtype))

    def select(self, keep: Tensor, params: list[Tensor]) -> None:
        """Keep members ``keep`` of each group.

        Parameters
        ----------
        keep : Tensor of shape (G, M')
            The members kept, per group (see :func:`.members.take`).
        params : list of Tensor
            The kept members' parameters, updated from now on.
        """
        self.params = params
        for name in self.buffers:
            setattr(self, name, [take(b, keep) for b in getattr(self, name)])
        if isinstance(self.t, Tensor) and self.t.dim() > 1:
            self.t = take(self.t, keep)
        if params:
            self.lead = tuple(params[0].shape[: len(self.lead)])


class _Adagrad(_Optimizer):
    """Adagrad (``torch.optim.Adagrad`` without lr decay or weight decay).

    Parameters
    ----------
    params : list of Tensor
        The tensors to update in place; each has leading dims ``lead``.
    lead : tuple of int, default=()
        The members' leading shape.
    eps : float, default=1e-10
        Added to the root of the accumulated squared gradients (> 0).
    initial_accumulator_value : float, default=0.0
        Initial value of the accumulated squared gradients (>= 0).
    """

    defaults = {"eps": 1e-10, "initial_accumulator_value": 0.0}
    buffers = ("sums",)

    def __init__(
        self,
        params: list[Tensor],
        lead: Sequence[int] = (),
        *,
        eps: float = 1e-10,
        initial_accumulator_value: float = 0.0,
    ) -> None:
        super().__init__(params, lead)
        self.eps = _number(self._name, "eps", eps, "> 0", lambda x: x > 0)
        self.initial_accumulator_value = _number(
            self._name,
            "initial_accumulator_value",
            initial_accumulator_value,
            ">= 0",
            lambda x: x >= 0,
        )
        self.sums = [torch.full_like(p, self.initial_accumulator_value) for p in params]
        self._loops: dict[int, tuple] = {}

    def _step(
        self, grads: list[Tensor], lr: Tensor | float, mask: Tensor | None = None
    ) -> None:
        for i, (p, g, s) in enumerate(zip(self.params, grads, self.sums, strict=True)):
            loop = self._loop(i, p, s)
            if loop is not None and loop(g, lr, mask):  # one compiled pass
                continue
            if mask is not None:
                # A zero gradient leaves a member as it is: s + 0 = s, p - 0 = p.
                g = g * _view(mask.to(p.dtype), g)
            s.addcmul_(g, g)
            denom = s.sqrt().add_(_const(self.eps, s))
            if isinstance(lr, Tensor):
                p.addcdiv_(g * _view(-lr, p), denom)
            else:
                p.addcdiv_(g, denom, value=-lr)

    def _loop(self, i: int, p: Tensor, s: Tensor) -> AdagradLoop | None:
        """The compiled step of parameter ``i``, made once for ``p`` and
        ``s`` (again when either is replaced); None where it does not apply."""
        kept = self._loops.get(i)
        if kept is None or kept[0] is not p or kept[1] is not s:
            kept = self._loops[i] = (p, s, AdagradLoop.make(p, s, self.eps))
        return kept[2]

    def scales(self) -> list[Tensor]:
        return [1.0 / s.sqrt().add_(self.eps) for s in self.sums]

    def _masked_step(
        self, grads: list[Tensor], lr: Tensor | float, mask: Tensor
    ) -> None:
        self._step(grads, lr, mask)


class _Adam(_Optimizer):
    """Adam (``torch.optim.Adam`` without weight decay or amsgrad).

    Parameters
    ----------
    params : list of Tensor
        The tensors to update in place; each has leading dims ``lead``.
    lead : tuple of int, default=()
        The members' leading shape.
    betas : tuple of float, default=(0.9, 0.999)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float, default=1e-8
        Added to the root of the second moment (> 0).
    """

    defaults = {"betas": (0.9, 0.999), "eps": 1e-8}
    buffers = ("m", "v")
    counts = True

    def __init__(
        self,
        params: list[Tensor],
        lead: Sequence[int] = (),
        *,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lead)
        try:
            pair = () if isinstance(betas, str | bytes) else tuple(betas)
        except TypeError:
            pair = ()
        if len(pair) != 2:
            raise ValueError(
                f"{self._name}: betas must be a pair of numbers in [0, 1), "
                f"got {betas!r}."
            )
        self.betas = tuple(
            _number(self._name, f"betas[{i}]", b, "in [0, 1)", lambda x: 0 <= x < 1)
            for i, b in enumerate(pair)
        )
        self.eps = _number(self._name, "eps", eps, "> 0", lambda x: x > 0)
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self._table: Tensor | None = None

    def _step(self, grads: list[Tensor], lr: Tensor | float) -> None:
        b1, b2 = self.betas
        self.t += 1
        c1, c2 = 1 - b1**self.t, (1 - b2**self.t) ** 0.5
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = v.sqrt().div_(c2).add_(self.eps)
            # Rounded as in the masked step (addcdiv's value= may round otherwise)
            p.addcdiv_(m * _view(-lr / c1, p), denom)

    def _masked_step(
        self, grads: list[Tensor], lr: Tensor | float, mask: Tensor
    ) -> None:
        b1, b2 = self.betas
        like = self.params[0]
        on = mask.to(like.dtype)
        t = self._advance(mask)
        # Per-member bias corrections, looked up (1 for a member yet to step).
        c1, c2 = self._corrections()[:, t]
        # -lr / c1 divided as the unmasked step does (number / tensor would
        # multiply by the reciprocal), and 0 for a masked-out member.
        neg_lr = -lr if isinstance(lr, Tensor) else torch.full_like(c1, -lr)
        size = neg_lr.div(_view(c1, neg_lr)).mul(_view(on, neg_lr))
        lerp_weight = on * (1 - b1)  # m + 0 * (g - m) = m
        decay = _pick(mask, b2, 1.0, like)  # v * 1 + 0 * g * g = v
        for p, g, m, v in zip(self.params, grads, self.m, self.v, strict=True):
            m.lerp_(g, _view(lerp_weight, p))
            v.mul_(_view(decay, p)).addcmul_(g * _view(on, p), g, value=1 - b2)
            denom = v.sqrt().div_(_view(c2, p)).add_(self.eps)
            p.addcdiv_(m * _view(size, p), denom)

    def scales(self) -> list[Tensor]:
        if isinstance(self.t, Tensor):
            c2 = self._corrections()[1, self.t]
        else:
            c2 = torch.tensor(
                (1 - self.betas[1] ** max(1, self.t)) ** 0.5, dtype=torch.float64
            )
        return [
            1.0 / v.sqrt().div_(_view(c2.to(v.dtype), v)).add_(self.eps) for v in self.v
        ]

    def _corrections(self) -> Tensor:
        """``[1 - b1**k, (1 - b2**k) ** 0.5]`` for k = 0, 1, ... past ``_most``.

        Computed on the host as the unmasked step does (so that both agree bit
        for bit), and copied to the device without waiting for it; the table
        doubles when the counts outgrow it. Entry 0, used only by members yet
        to step, is 1 (any finite non-zero value would do).
        """
        table = self._table
        if table is None or table.shape[1] <= self._most:
            b1, b2 = self.betas
            k = range(max(1024, 2 * self._most))
            like = self.params[0] if self.params else torch.empty(())
            host = torch.tensor(
                [[1 - b1**i for i in k], [(1 - b2**i) ** 0.5 for i in k]],
                dtype=like.dtype,
            )
            host[:, 0] = 1.0
            if like.is_cuda:
                host = host.pin_memory()
            table = self._table = host.to(like.device, non_blocking=True)
        return table


class _SGD(_Optimizer):
    """SGD with optional momentum (``torch.optim.SGD`` without weight decay).

    Parameters
    ----------
    params : list of Tensor
        The tensors to update in place; each has leading dims ``lead``.
    lead : tuple of int, default=()
        The members' leading shape.
    momentum : float, default=0.0
        Momentum factor (>= 0).
    nesterov : bool, default=False
        Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
    dampening : float, default=0.0
        Dampening of the momentum, in [0, 1]; as in torch, the first step
        stores the undampened gradient.
    """

    defaults = {"momentum": 0.0, "nesterov": False, "dampening": 0.0}

    def __init__(
        self,
        params: list[Tensor],
        lead: Sequence[int] = (),
        *,
        momentum: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        super().__init__(params, lead)
        self.momentum = _number(
            self._name, "momentum", momentum, "in [0, 1)", lambda x: 0 <= x < 1
        )
        self.dampening = _number(
            self._name, "dampening", dampening, "in [0, 1]", lambda x: 0 <= x <= 1
        )
        if not isinstance(nesterov, bool):
            raise ValueError(
                f"{self._name}: nesterov must be True or False, got {nesterov!r}."
            )
        if nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError(
                f"{self._name}: nesterov=True needs momentum > 0 and dampening 0, "
                f"got momentum={self.momentum!r}, dampening={self.dampening!r}."
            )
        self.nesterov = nesterov
        if self.momentum:
            self.buffers = ("bufs",)
            # From zero, buf * momentum + g is exactly g: the first step needs
            # its own rule (and a step count) only with dampening.
            self.counts = self.dampening != 0
        self.bufs = [torch.zeros_like(p) for p in params] if self.momentum else []

    def _step(self, grads: list[Tensor], lr: Tensor | float) -> None:
        if not self.momentum:
            for p, g in zip(self.params, grads, strict=True):
                _descend(p, g, lr)
            return
        mu, first = self.momentum, self.counts and self.t == 0
        for p, g, b in zip(self.params, grads, self.bufs, strict=True):
            if first:
                b.copy_(g)
            else:
                b.mul_(mu).add_(g, alpha=1 - self.dampening)
            _descend(p, g.add(b, alpha=mu) if self.nesterov else b, lr)
        if self.counts:
            self.t += 1

    def _masked_step(
        self, grads: list[Tensor], lr: Tensor | float, mask: Tensor
    ) -> None:
        like, mu, damp = self.params[0], self.momentum, self.dampening
        on = mask.to(like.dtype)
        lr = lr * (_view(on, lr) if isinstance(lr, Tensor) else on)  # p + (-0) * d = p
        if not mu:
            for p, g in zip(self.params, grads, strict=True):
                _descend(p, g, lr)
            return
        # buf * decay + g * weight: (mu, 1 - damp) for a member that steps,
        # (0, 1) for its first step (with dampening) and (1, 0) when it skips.
        decay, weight = _pick(mask, mu, 1.0, like), on * (1 - damp)
        if self.counts:
            first = self._counts_tensor() == 0
            decay = torch.where(first & mask, _const(0.0, like), decay)
            weight = torch.where(first & mask, _const(1.0, like), weight)
            self._advance(mask)
        for p, g, b in zip(self.params, grads, self.bufs, strict=True):
            # addcmul_ rounds as add_(g, alpha=...) in the unmasked step
            b.mul_(_view(decay, p)).addcmul_(g, _view(weight, p))
            _descend(p, g.add(b, alpha=mu) if self.nesterov else b, lr)


OPTIMIZERS: dict[str, type[_Optimizer]] = {
    "adagrad": _Adagrad,
    "adam": _Adam,
    "sgd": _SGD,
}


def _lookup(name: str) -> type[_Optimizer]:
    if name not in OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {name!r}; expected one of {tuple(OPTIMIZERS)}."
        )
    return OPTIMIZERS[name]


def optimizer_options(name: str) -> dict:
    """The options of optimizer ``name`` and their defaults.

    Parameters
    ----------
    name : str
        A key of ``OPTIMIZERS``.

    Returns
    -------
    dict
        A copy of the optimizer's ``defaults``.

    Examples
    --------
    >>> optimizer_options("adam")
    {'betas': (0.9, 0.999), 'eps': 1e-08}
    """
    return dict(_lookup(name).defaults)


def make_optimizer(
    name: str, params: list[Tensor], lead: Sequence[int] = (), **options
) -> _Optimizer:
    """Build the named optimizer over ``params`` (updated in place).

    Parameters
    ----------
    name : str
        A key of ``OPTIMIZERS``: "adagrad", "adam" or "sgd".
    params : list of Tensor
        The tensors to update; each has leading dims ``lead``.
    lead : tuple of int, default=()
        The members' leading shape; ``()`` for one member.
    **options
        The optimizer's options (see ``optimizer_options(name)``); those not
        given take ``torch.optim``'s defaults.

    Returns
    -------
    optimizer
        Call ``optimizer.step(grads, lr, mask=None)`` for each update.

    Raises
    ------
    ValueError
        For an unknown optimizer or option, or an option out of range.

    Examples
    --------
    >>> import torch
    >>> w = torch.zeros(3)
    >>> opt = make_optimizer("sgd", [w], momentum=0.5)
    >>> opt.step([torch.ones(3)], 0.1)
    >>> w
    tensor([-0.1000, -0.1000, -0.1000])
    """
    cls = _lookup(name)
    unknown = [k for k in options if k not in cls.defaults]
    if unknown:
        raise ValueError(
            f"Unknown option {unknown[0]!r} for optimizer {name!r}; "
            f"allowed options: {', '.join(cls.defaults) or 'none'}."
        )
    return cls(params, lead, **options)
