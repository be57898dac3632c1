"""The finished chunks of a cell still running, kept across interruptions.

A cell trains its grid in chunks of configurations (every run at once, as
many configurations as ``--max-memory`` allows). Under the paper protocol
one cell of a large dataset trains for hours, and ``runs.csv`` gets its rows
only once the cell is whole, since the configuration is chosen on all its
runs. So that an interrupted run (Ctrl-C, a closed session, a killed worker)
does not lose those hours, each finished chunk's scores are kept in the
output folder's ``.sktopk-partial`` sub-folder, one file per chunk; a run of
the same command trains only the chunks it lacks. A cell's files are removed
once its rows are in ``runs.csv``. A sub-folder of that name holding
anything else (made by the user) is refused and left as it is.

The files are this tool's: written to a temporary file and renamed, never
through a symbolic link, and read back only if they hold the arrays of the
same chunk of the same cell trained on the same inputs by the same version
(``PartialCell.digest``); anything else is trained again. A resumed cell keeps
the chunk size of the run it resumes, so that its chunks match.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np

from .protocol import Cell
from .store import (
    _TEMP_NAME,
    StoreError,
    StoreWarning,
    _refuse_link,
    _replace,
    made_by,
    remove_stale_temps,
)

__all__ = ["PARTIAL_NAME", "PartialStore", "PartialCell"]

#: The sub-folder of the output folder holding the chunks of unfinished cells.
PARTIAL_NAME = ".sktopk-partial"
#: A chunk file: identity, table, dataset, loss, aggregate, chunk size, lo, hi.
_CHUNK = re.compile(r"[0-9a-f]{12}-\d+-[\w.]+-[\w.]+-[\w.]+-s(\d+)-(\d+)-(\d+)\.npz")
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile)


class PartialStore:
    """The chunk files of the output folder ``out``, for the run of protocol
    ``identity`` that has locked it.

    Creates the sub-folder and removes temporary files left by a run killed
    while writing one. Chunk files of another protocol or seed are the work
    of an unfinished run made with other settings: with ``owned`` (the
    folder's ``runs.csv`` already holds this run's rows, so that run can never
    resume here) they are removed; otherwise the folder is refused, as a
    ``runs.csv`` of other settings is, and the files are left as they are.
    """

    def __init__(self, out: str | os.PathLike, identity: str, owned: bool = False):
        self.path = Path(out) / PARTIAL_NAME
        self.identity = identity
        _refuse_link(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(
                f"{self.path} exists and is not a folder; sktopk keeps the "
                "chunks of unfinished cells there. Move it away."
            )
        try:
            self.path.mkdir(exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create {self.path}: {exc.strerror or exc}"
            ) from exc
        _check_ours(self.path)
        remove_stale_temps(self.path)
        foreign = [
            e
            for e in self._entries()
            if _CHUNK.fullmatch(e.name) and not e.name.startswith(identity)
        ]
        if foreign and not owned:
            raise StoreError(_foreign_message(self.path, foreign, identity))
        for entry in foreign:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)

    def _entries(self) -> list[os.DirEntry]:
        return [e for e in os.scandir(self.path) if e.is_file(follow_symlinks=False)]

    def cell(self, cell: Cell) -> PartialCell:
        """The chunks of ``cell`` (made in the process that trains it)."""
        return PartialCell(self.path, self.identity, cell)

    def clear(self, cell: Cell) -> None:
        """Remove the chunk files of ``cell`` (its rows are in ``runs.csv``)."""
        prefix = self.cell(cell).prefix
        for entry in self._entries():
            if entry.name.startswith(prefix) and _CHUNK.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def remove_if_empty(self) -> None:
        """Remove the sub-folder when no unfinished cell has chunks in it."""
        with contextlib.suppress(OSError):
            self.path.rmdir()


def _check_ours(path: Path) -> None:
    """Refuse a sub-folder holding anything but this tool's chunk and
    temporary files: one the user made, whose files are left alone."""
    for entry in os.scandir(path):
        ours = _CHUNK.fullmatch(entry.name) or _TEMP_NAME.fullmatch(entry.name)
        if not (ours and entry.is_file(follow_symlinks=False)):
            raise StoreError(
                f"{path} holds {entry.name}, which sktopk did not write; sktopk "
                "keeps the chunks of unfinished cells in that folder, and only "
                "them. Move it away or choose another --out folder; it was left "
                "as it is."
            )


def _foreign_message(path: Path, foreign: list, identity: str) -> str:
    """Why a folder holding another run's unfinished chunks is refused."""
    others = sorted({e.name[:12] for e in foreign})
    return (
        f"{path} holds {len(foreign)} trained chunk(s) of an unfinished run made "
        f"with other settings (protocol identity {', '.join(others)}; these "
        f"settings are {identity[:12]}).{made_by(path.parent, others)} Run that "
        "command again to resume it, or use another --out folder; to discard "
        "that work, delete "
        f"{path}. The files were left as they are."
    )


class PartialCell:
    """Load and save the chunks of one cell.

    The trainer of the cell sets ``digest`` (its inputs) and ``size`` (its
    configurations per chunk) before training; only chunks of the same digest
    and size are read back. ``resumed_seconds`` sums the training time of the
    chunks loaded, so that the cell's compute time counts them.
    """

    def __init__(self, folder: Path, identity: str, cell: Cell):
        self.folder = Path(folder)
        self.prefix = f"{identity}-{cell.table}-{cell.label.replace('/', '-')}-"
        self.digest = ""
        self.size = 0
        self.resumed_seconds = 0.0

    def _name(self, lo: int, hi: int) -> str:
        return f"{self.prefix}s{self.size}-{lo}-{hi}.npz"

    def chunk_size(self) -> int | None:
        """The configurations per chunk of the chunks of this cell saved
        (the size most of them have; None if none is saved)."""
        sizes = Counter(
            int(m.group(1))
            for e in os.scandir(self.folder)
            if e.name.startswith(self.prefix) and (m := _CHUNK.fullmatch(e.name))
        )
        return max(sizes, key=lambda s: (sizes[s], s)) if sizes else None

    def load(self, lo: int, hi: int) -> tuple[np.ndarray, ...] | None:
        """The arrays of configurations ``lo:hi`` saved by an earlier run, or
        None (never saved, saved for other inputs, or unreadable)."""
        path = self.folder / self._name(lo, hi)
        if path.is_symlink() or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["digest"]) != self.digest:
                    return None
                arrays = tuple(saved[f"a{i}"] for i in range(int(saved["count"])))
                seconds = float(saved["seconds"])
        except _UNREADABLE as exc:
            _warn(f"{path} cannot be read ({exc}); its chunk is trained again")
            return None
        if any(a.ndim != 2 or a.shape[1] != hi - lo for a in arrays):
            _warn(f"{path} does not hold its chunk's arrays; trained again")
            return None
        self.resumed_seconds += seconds
        return arrays

    def save(self, lo: int, hi: int, arrays: tuple, seconds: float) -> None:
        """Keep the arrays of configurations ``lo:hi``, trained in
        ``seconds``; a chunk that cannot be saved is only warned about."""
        buffer = io.BytesIO()
        named = {f"a{i}": np.asarray(a) for i, a in enumerate(arrays)}
        np.savez(
            buffer,
            digest=np.array(self.digest),
            count=np.array(len(arrays)),
            seconds=np.array(float(seconds)),
            **named,
        )
        target = self.folder / self._name(lo, hi)
        if target.is_symlink():
            return  # never written through
        try:
            _replace(self.folder, target.name, buffer.getvalue())
        except OSError as exc:
            _warn(f"cannot keep a finished chunk in {target} ({exc}); training goes on")


def _warn(message: str) -> None:
    warnings.warn(message, StoreWarning, stacklevel=3)
