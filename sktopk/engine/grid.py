"""Train a grid of configurations over several data splits in one batch.

Each split (a run or a cross-validation fold) is a group with its own rows,
data order and seed; each configuration of the grid is a member of every
group. This is what the reproduction and the batched search build on.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from .hyper import Hyper
from .models import ModuleAdapter, StackedMLP
from .scoring import score_rows
from .trainer import (
    Resume,
    TrainData,
    TrainResult,
    TrainSpec,
    padded_rows,
    train,
)

__all__ = [
    "constant_columns",
    "make_data",
    "train_grid",
    "train_in_chunks",
    "evaluate",
    "member_bytes",
    "members_per_chunk",
    "parse_memory",
]


def make_data(X, target, splits, sample_weight=None, device="cpu") -> TrainData:
    """Rows on ``device`` plus a zero-weight padding row, and per-split indices.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    target : ndarray of shape (n,)
        Margins in {-1, +1} (binary), class indices (multiclass) or values.
    splits : list of (train_idx, val_idx or None)
    sample_weight : ndarray of shape (n,), default=None
    """
    n = len(X)
    w = np.ones(n, np.float32) if sample_weight is None else sample_weight
    padded = np.vstack([X, np.zeros((1, X.shape[1]), dtype=X.dtype)])  # no float64
    Xt = torch.as_tensor(padded, dtype=torch.float32)
    yt = torch.as_tensor(np.concatenate([target, np.zeros(1, target.dtype)]))
    wt = torch.as_tensor(np.concatenate([w, [0.0]]), dtype=torch.float32)
    tr = [torch.as_tensor(np.asarray(a), dtype=torch.long) for a, _ in splits]
    has_val = all(v is not None for _, v in splits)
    va = (
        [torch.as_tensor(np.asarray(v), dtype=torch.long) for _, v in splits]
        if has_val
        else None
    )
    dev = torch.device(device)
    return TrainData(Xt.to(dev), yt.to(dev), wt.to(dev), tr, va)


def train_grid(
    data: TrainData,
    spec: TrainSpec,
    model: tuple[int, ...] | StackedMLP | ModuleAdapter,
    grid: Mapping[str, float | np.ndarray],
    seeds: list[int],
    resume: Resume | None = None,
) -> tuple[StackedMLP | ModuleAdapter, TrainResult]:
    """Train ``len(seeds)`` groups x ``grid[...].shape[-1]`` members.

    The one way a training run is built: by the estimators (one member), the
    batched search and the reproduction.

    Parameters
    ----------
    data : TrainData
        The rows and each group's training (and validation) indices.
    spec : TrainSpec
        Everything that is the same for all members.
    model : tuple of int, StackedMLP or ModuleAdapter
        Layer sizes: a fresh stack of MLPs, each group drawing its initial
        weights from its seed and all its members starting from that draw.
        Or a ready model (a single estimator's, warm-started or not), trained
        as it is with the grid's shape ``model.lead``.
    grid : mapping
        The :class:`~sktopk.engine.hyper.Hyper` fields, each one value per
        configuration: 1-D (the same in every group), ``(G, Mg)`` (per group,
        e.g. ``kappa = k / n_train`` of each fold) or a number.
    seeds : list of int
        One per group: its data order (and initial weights).
    resume : Resume, optional
        A single member's optimizer state and threshold to continue from.

    Returns
    -------
    model, TrainResult
        The trained model (weights of shape ``lead + ...``) and the record.
    """
    dev = data.X.device
    if isinstance(model, tuple):
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        members = np.shape(next(iter(grid.values())))[-1]
        # Its params are views into one contiguous flat vector that the
        # optimizer updates in place; replacing them with copies would freeze
        # the model.
        model = StackedMLP.initialize(model, gens, members, device=dev)
        model.silence_inputs(constant_columns(data))
    hyper = Hyper.build(grid, tuple(model.lead), dev)
    return model, train(model, data, spec, hyper, seeds, resume)


def constant_columns(data: TrainData) -> Tensor:
    """``(G, d)`` booleans: the columns of ``data.X`` that are constant on
    the training rows of positive weight of each group (all False for a
    group without such rows). Read a block of rows at a time (no copy of a
    group's rows)."""
    out = torch.zeros(len(data.train_idx), data.X.shape[1], dtype=torch.bool)
    block = max(1, _BLOCK_BYTES // (4 * max(1, data.X.shape[1])))
    for g, rows in enumerate(data.train_idx):
        rows = rows.to(data.w.device)
        rows = rows[data.w[rows] > 0]
        if not len(rows):
            continue
        first = data.X[rows[0]]
        same = torch.ones_like(first, dtype=torch.bool)
        for lo in range(0, len(rows), block):
            same &= (data.X[rows[lo : lo + block]] == first).all(0)
            if not same.any():  # usually after the first block
                break
        out[g] = same.cpu()
    return out


_BLOCK_BYTES = 64 << 20  # rows read at once by constant_columns


class SavedChunks(Protocol):
    """Where :func:`train_in_chunks` keeps finished chunks (see its ``saved``)."""

    def load(self, lo: int, hi: int) -> tuple | None: ...

    def save(self, lo: int, hi: int, arrays: tuple, seconds: float) -> None: ...


def train_in_chunks(
    data: TrainData,
    spec: TrainSpec,
    sizes: tuple[int, ...],
    grid: Mapping[str, np.ndarray],
    seeds: list[int],
    evaluate_chunk,
    members_at_once: int | None = None,
    max_memory: int | None = None,
    saved: SavedChunks | None = None,
    only: tuple[int, int] | None = None,
) -> tuple[int, list[np.ndarray]]:
    """:func:`train_grid` on as many members at once as fit in memory.

    The one way a grid is trained: by the batched search and the
    reproduction. ``evaluate_chunk(model, result)`` returns a tuple of arrays
    of shape ``(G, m)`` for the ``m`` members of a chunk; they are joined
    along the members. ``members_at_once`` (per group) overrides the memory
    estimate. ``saved``, if given, keeps finished chunks: ``saved.load(lo,
    hi)`` returns the arrays of members ``lo:hi`` kept by an earlier call (or
    None: the chunk is trained) and ``saved.save(lo, hi, arrays, seconds)``
    keeps those of a chunk just trained. ``only=(lo, hi)`` trains (or loads)
    members ``lo:hi`` alone, one chunk of a larger call run elsewhere. Returns
    the members per group of a chunk and the joined arrays.
    """
    M = np.shape(next(iter(grid.values())))[-1]
    if members_at_once is None:
        n_rows = max(len(t) for t in data.train_idx)
        per_member = member_bytes(sizes, n_rows, spec.batch_size)
        members_at_once = members_per_chunk(
            M, len(seeds), per_member, data.X.device, max_memory
        )
    ranges = [(lo, min(lo + members_at_once, M)) for lo in range(0, M, members_at_once)]
    parts = []
    for lo, hi in [only] if only is not None else ranges:
        part = None if saved is None else saved.load(lo, hi)
        if part is None:
            start = time.perf_counter()
            sub = {k: np.asarray(v)[..., lo:hi] for k, v in grid.items()}
            part = evaluate_chunk(*train_grid(data, spec, sizes, sub, seeds))
            if saved is not None:
                saved.save(lo, hi, part, time.perf_counter() - start)
        parts.append(part)
    joined = [np.concatenate(p, axis=1) for p in zip(*parts, strict=True)]
    return members_at_once, joined


@torch.no_grad()
def evaluate(
    model: StackedMLP, data: TrainData, idx: list[Tensor], task: str
) -> Tensor:
    """Score of every member on its group's rows ``idx[g]``, shape (G, Mg):
    accuracy for classification, minus the mean squared error for regression."""
    rows = padded_rows([torch.as_tensor(t) for t in idx], data.pad, data.X.device)
    X, y, w = (t[rows].unsqueeze(1) for t in (data.X, data.y, data.w))
    return score_rows(model, X, y, w, task).cpu()


def member_bytes(sizes: tuple[int, ...], n_rows: int, batch_size: int) -> int:
    """Rough bytes one member needs while training (float32): its weights with
    optimizer and early-stopping copies, its activations on a minibatch, and
    its activations when the whole training set is evaluated."""
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    width = sum(sizes[1:])
    return 4 * (8 * n_params + 6 * batch_size * width + 3 * n_rows * width)


#: The least memory budget taken by default: at or below it, how members
#: are cut into chunks (and so the results, to float rounding) does not
#: depend on the memory free at the time. The estimates of
#: :func:`member_bytes` are generous (about ten times an MLP's measured peak).
BUDGET_FLOOR = 1 << 30


def available_bytes(device: torch.device) -> int:
    """Half of the memory available now on ``device``, at least
    :data:`BUDGET_FLOOR`."""
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0] // 2
    else:
        free = host_available() // 2
    return max(free, BUDGET_FLOOR)


def host_available(
    meminfo: str = "/proc/meminfo", cgroup: str = "/sys/fs/cgroup"
) -> int:
    """Bytes of host memory available to a new allocation: Linux's
    ``MemAvailable`` (free memory plus the page cache it can reclaim), else
    the free pages, else 4 GiB where neither can be read; at most what the
    process's memory cgroup (a container's limit) leaves."""
    room = _cgroup_room(cgroup)
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return min(int(line.split()[1]) * 1024, room)  # in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        free = 4 * 2**30
    return min(free, room)


# (limit, usage) files of cgroup v2, then v1; "max" or a huge number: no limit.
_CGROUP_FILES = (
    ("memory.max", "memory.current"),
    ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
)


def _cgroup_room(root: str) -> int | float:
    """The memory cgroup's limit minus its usage, or infinity without one."""
    for limit_name, usage_name in _CGROUP_FILES:
        try:
            with open(os.path.join(root, limit_name)) as f:
                limit = f.read().strip()
            with open(os.path.join(root, usage_name)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 2**60:
            return math.inf
        return max(0, int(limit) - usage)
    return math.inf


def members_per_chunk(
    n_members: int,
    n_groups: int,
    per_member: int,
    device: torch.device,
    max_memory: int | None = None,
) -> int:
    """How many members of each group to train at once within the budget."""
    budget = available_bytes(device)
    if max_memory is not None:
        budget = min(budget, int(max_memory))
    fit = budget // max(1, per_member * n_groups)
    if fit < 1:
        need = per_member * n_groups
        raise MemoryError(
            f"one configuration, trained on each of the {n_groups} fold(s) at "
            f"once, needs about {need:,} bytes ({need / 2**20:.2f} MiB), more "
            f"than the memory budget of {budget:,} bytes ({budget / 2**20:.2f} "
            "MiB); raise max_memory, or use fewer folds, a smaller batch_size or "
            "fewer hidden units"
        )
    return int(min(n_members, fit))


def parse_memory(value: int | str | None) -> int | None:
    """``"2GB"``, ``"512MiB"``, ``"1e9"`` or an int -> bytes (None stays None).

    Raises
    ------
    ValueError
        For a size that is not a positive number of bytes, with or without
        one of the units B, KB, MB, GB, TB (powers of 1000), KiB, MiB, GiB,
        TiB (powers of 1024), or K, M, G, T.

    Examples
    --------
    >>> parse_memory("2GB"), parse_memory("512MiB"), parse_memory(1000)
    (2000000000, 536870912, 1000)
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = _MEMORY.fullmatch(str(value).strip().upper().replace(" ", ""))
        scaled = float(match[1]) * _UNITS[match[2]] if match else 0.0
        size = int(scaled) if math.isfinite(scaled) else 0
    if size <= 0:
        raise ValueError(
            f"memory size {value!r} is not understood; give a positive number of "
            "bytes, or one with a unit: B, KB, MB, GB, TB (powers of 1000) or "
            "KiB, MiB, GiB, TiB (powers of 1024), e.g. '2GB'"
        )
    return size


_UNITS = {"": 1, "B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_UNITS.update({f"{u}B": _UNITS[u] for u in "KMGT"})
_UNITS.update({f"{u}IB": 2 ** (10 * (i + 1)) for i, u in enumerate("KMGT")})
# A finite decimal number (no sign, no inf or nan) and an optional unit.
_MEMORY = re.compile(
    r"(\d+\.?\d*(?:E[+-]?\d+)?|\.\d+(?:E[+-]?\d+)?)([KMGT]I?B|[KMGTB]|)"
)
