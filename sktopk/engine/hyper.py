"""The engine's typed contracts: the task and the per-member hyper-parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor

from .members import take

__all__ = ["Task", "TASKS", "Hyper", "check_task"]

#: What the model's outputs mean: one margin (binary), one score per class
#: (multiclass) or one value (regression).
Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = get_args(Task)


def check_task(task: str) -> str:
    """``task`` itself when it is one of :data:`TASKS`, else a ValueError."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}; got {task!r}")
    return task


@dataclass(frozen=True)
class Hyper:
    """Per-member hyper-parameters, each a tensor of shape ``lead``.

    Attributes
    ----------
    lr : Tensor
        Step size of the optimizer.
    C : Tensor
        Inverse strength of the L2 penalty ``||W||^2 / (2 C)``.
    kappa : Tensor
        The aggregate's k as a fraction of the training rows (1 where the
        aggregate has no k).
    delta : Tensor
        The smoothing's delta (1 where the aggregate does not smooth).
    l1_ratio : Tensor
        Share of the penalty that is l1: ``(1 - r) ||W||^2 / (2 C) +
        r ||W||_1 / C`` (0: the L2 penalty alone).
    """

    lr: Tensor
    C: Tensor
    kappa: Tensor
    delta: Tensor
    l1_ratio: Tensor

    #: The value of a hyper-parameter an estimator or aggregate does not use.
    NEUTRAL = {"kappa": 1.0, "delta": 1.0, "l1_ratio": 0.0}

    @classmethod
    def build(
        cls,
        values: Mapping[str, float | np.ndarray],
        lead: tuple[int, ...],
        device: torch.device | str = "cpu",
    ) -> Hyper:
        """Tensors of shape ``lead`` from numbers or arrays that broadcast to it.

        ``values`` names every field (``kappa`` and ``delta`` may be left out:
        they default to :attr:`NEUTRAL`); any other name is a ValueError.

        Examples
        --------
        >>> h = Hyper.build({"lr": 0.1, "C": [1.0, 10.0]}, (1, 2))
        >>> tuple(h.C.shape), float(h.kappa[0, 1])
        ((1, 2), 1.0)
        """
        names = [f.name for f in fields(cls)]
        unknown = set(values) - set(names)
        missing = set(names) - set(values) - set(cls.NEUTRAL)
        if unknown or missing:
            raise ValueError(
                f"hyper-parameters are {names}; unknown: {sorted(unknown)}, "
                f"missing: {sorted(missing)}"
            )
        full = {**cls.NEUTRAL, **values}
        return cls(**{n: _tensor(full[n], lead, device) for n in names})

    @property
    def lead(self) -> torch.Size:
        return self.lr.shape

    def select(self, keep: Tensor) -> Hyper:
        """The members ``keep`` of each group (see :func:`.members.take`)."""
        return Hyper(
            **{f.name: take(getattr(self, f.name), keep) for f in fields(self)}
        )


def _tensor(value, lead, device) -> Tensor:
    t = torch.as_tensor(np.asarray(value, np.float32), device=device)
    return t.expand(lead).contiguous()
