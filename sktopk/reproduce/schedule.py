"""The order in which local workers take the work of the cells.

A cell trains its grid in chunks of configurations. With several workers, a
cell of more than one chunk is split into one task per chunk, each keeping
its scores in the output folder (:mod:`.partial`), then a last task that
reads them back and makes the cell's rows: the workers share the largest
cells instead of waiting for them one worker each (under the paper protocol
one cell of Table 6 trains for hours). The rows are those of one process
training the cell alone, since the chunks are the same.

Workers take, in this order: the last task of a cell whose chunks are all
done (its rows reach ``runs.csv`` at once), the next chunk (cells from the
most expensive), then the cells not split.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from .experiment import chunk_ranges, members_at_once
from .protocol import Cell, Protocol

__all__ = ["ChunkDone", "Task", "CellTasks"]


class Task(NamedTuple):
    """A chunk ``(lo, hi, size)`` of a cell, or its rows (``chunk`` None),
    made from the chunks of ``size`` where the cell was split."""

    cell: Cell
    chunk: tuple[int, int, int] | None = None
    size: int | None = None


class ChunkDone(NamedTuple):
    """Progress of a cell split into chunks: ``done`` of its ``total`` chunks
    are trained."""

    done: int
    total: int


class CellTasks:
    """The tasks of ``cells`` (ordered from the most expensive), splitting
    into chunks only where ``partial`` (a :class:`~.partial.PartialStore`)
    keeps them; ``total`` counts them."""

    def __init__(self, cells: list[Cell], protocol: Protocol, seed: int, partial):
        self._ready: deque[Task] = deque()  # rows of cells whose chunks are done
        self._chunks: deque[Task] = deque()
        self._whole: deque[Task] = deque()
        self._left: dict[Cell, int] = {}
        self._chunk_count: dict[Cell, int] = {}
        for cell in cells:
            ranges = []
            if partial is not None and not _one_chunk(cell, protocol):
                ranges = chunk_ranges(cell, protocol, seed, partial.cell(cell))
            if len(ranges) < 2:
                self._whole.append(Task(cell))
                continue
            self._chunks.extend(Task(cell, r) for r in ranges)
            self._left[cell] = self._chunk_count[cell] = len(ranges)
        self.total = len(self._chunks) + len(self._left) + len(self._whole)

    def next(self) -> Task | None:
        """The next task to start, or None when none is left to start."""
        for queue in (self._ready, self._chunks, self._whole):
            if queue:
                return queue.popleft()
        return None

    def done(self, task: Task) -> ChunkDone | None:
        """Record that ``task`` finished; for a chunk, the cell's progress."""
        if task.chunk is None:
            return None
        self._left[task.cell] -= 1
        if not self._left[task.cell]:
            self._ready.append(Task(task.cell, size=task.chunk[2]))
        total = self._chunk_count[task.cell]
        return ChunkDone(total - self._left[task.cell], total)


def _one_chunk(cell: Cell, protocol: Protocol) -> bool:
    """Whether the whole grid of ``cell`` fits in one chunk, known without
    preparing its data: the grid has at most as many configurations as at a
    large training set (no two k then give the same fraction)."""
    most = len(protocol.grid(cell.aggregate, 2**40)["lr"])
    return members_at_once(cell, protocol) // protocol.runs >= most
