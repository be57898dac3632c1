"""Per-member early-stopping state, and the record of members that are done."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .members import take

__all__ = ["EarlyStopping", "Archive"]


class EarlyStopping:
    """Per-member best score, patience counter and best weights."""

    def __init__(self, lead, dev, spec, params: list[Tensor]):
        self.spec, self.params = spec, params
        self.best = torch.full(lead, -math.inf, device=dev)
        self.bad = torch.zeros(lead, dtype=torch.long, device=dev)
        self.active = torch.ones(lead, device=dev)
        self.stopped = torch.zeros(lead, dtype=torch.bool, device=dev)
        self.diverged = torch.zeros(lead, dtype=torch.bool, device=dev)
        self.n_epochs = torch.zeros(lead, dtype=torch.long, device=dev)
        self.best_step = torch.zeros(lead, dtype=torch.long, device=dev)
        self.best_params = [p.detach().clone() for p in params]

    def select(self, keep: Tensor, params: list[Tensor]) -> None:
        """Keep only the members ``keep`` of each group (see
        :func:`.members.take`); ``params`` is the new model state."""
        self.params = params
        self.best_params = [take(b, keep) for b in self.best_params]
        for k in (
            "best",
            "bad",
            "active",
            "stopped",
            "diverged",
            "n_epochs",
            "best_step",
        ):
            setattr(self, k, take(getattr(self, k), keep))

    @torch.no_grad()
    def update(self, score: Tensor, finite: Tensor, step: int, epoch: int) -> None:
        was = self.active.bool()
        bad = ~torch.isfinite(score) | ~finite
        self.diverged |= bad & was
        better = (score > self.best) & was & ~bad
        for p, b in zip(self.params, self.best_params, strict=True):
            b.copy_(torch.where(_view(better, p), p.detach(), b))
        self.best_step = torch.where(better, step, self.best_step)
        improved = score > self.best + self.spec.tol
        self.bad = torch.where(improved, 0, self.bad + 1)
        self.best = torch.where(better, score, self.best)
        stop = was & ((self.bad >= self.spec.patience) | bad)
        self.stopped |= stop
        self.active = (was & ~stop).to(self.active.dtype)
        self.n_epochs = torch.where(was, epoch + 1, self.n_epochs)

    def any_active(self) -> bool:
        return bool(self.active.any())

    @torch.no_grad()
    def restore(self, rollback: bool, done: Tensor) -> None:
        """Give members ``done`` (a mask over member columns) their best
        weights where rolled back (always for diverged members)."""
        keep = self.diverged | (torch.isfinite(self.best) & rollback)
        keep = keep & done.to(keep.device)
        for p, b in zip(self.params, self.best_params, strict=True):
            p.copy_(torch.where(_view(keep, p), b, p))


class Archive:
    """Full-size record of every member, filled as members leave the batch.

    ``cols`` (of the batch's shape) gives each member of the batch its
    original column in its group.
    """

    def __init__(self, lead, dev, state: list[Tensor]):
        self.lead, self.dev = lead, dev
        self.is_stacked = len(lead) == 2
        self.cols = (
            torch.arange(lead[1], device=dev).expand(lead).contiguous()
            if self.is_stacked
            else None
        )
        self.state = [t.detach().clone() for t in state]
        self.n_epochs = torch.zeros(lead, dtype=torch.long, device=dev)
        self.best_step = torch.zeros(lead, dtype=torch.long, device=dev)
        self.diverged = torch.zeros(lead, dtype=torch.bool, device=dev)
        self.stopped = torch.zeros(lead, dtype=torch.bool, device=dev)

    def widen(self, t: Tensor) -> Tensor:
        """A per-member tensor of the batch -> full size (NaN where retired)."""
        if not self.is_stacked:
            return t.detach()
        full = torch.full(self.lead, math.nan, device=self.dev, dtype=t.dtype)
        full[self._rows(), self.cols] = t.detach().to(full.dtype)
        return full

    def narrow(self, full: Tensor) -> Tensor:
        """A full-size per-member tensor -> the batch's members."""
        return full[self._rows(), self.cols] if self.is_stacked else full

    def _rows(self) -> Tensor:
        return torch.arange(self.lead[0], device=self.dev).unsqueeze(1)

    @torch.no_grad()
    def store(self, done: Tensor, state: list[Tensor], es) -> None:
        """Record the members ``done`` (a mask of the batch's shape)."""
        if not self.is_stacked:
            for a, t in zip(self.state, state, strict=True):
                a.copy_(t.detach())
            src = {
                k: getattr(es, k)
                for k in ("n_epochs", "best_step", "diverged", "stopped")
            }
            for k, v in src.items():
                setattr(self, k, v.clone())
            return
        rows, members = done.to(self.dev).nonzero(as_tuple=True)
        cols = self.cols[rows, members]
        for a, t in zip(self.state, state, strict=True):
            a[rows, cols] = t.detach()[rows, members]
        for k in ("n_epochs", "best_step", "diverged", "stopped"):
            getattr(self, k)[rows, cols] = getattr(es, k)[rows, members]


def _view(t: Tensor, like: Tensor) -> Tensor:
    """Broadcast per-member ``t`` against ``like`` (a single member: a scalar)."""
    if t.numel() == 1:
        return t.reshape(())
    return t.reshape(t.shape + (1,) * (like.dim() - t.dim()))
