"""The CSV of every single run: append per cell, resume, refuse foreign files.

The file only grows: each finished cell appends its rows in one write, so an
interrupted reproduction resumes from the cells already on disk. The store
never deletes or rewrites an existing file; a file it cannot trust (another
program's CSV, a damaged one, or runs made with other settings) is an error
the user resolves, with a message saying how.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .experiment import RUN_COLUMNS, RUN_DTYPES
from .protocol import Cell

__all__ = ["ResultStore", "StoreError"]

CELL_KEY = ["table", "dataset", "loss", "aggregate"]


class StoreError(Exception):
    """A results file or folder that cannot be used (a user-facing message)."""


class ResultStore:
    """Runs of one protocol identity in ``folder / "runs.csv"``.

    Parameters
    ----------
    folder : path
        Output folder; created if missing.
    identity : str
        The protocol identity (see :meth:`Protocol.identity`) the runs belong to.
    runs : int
        Runs per cell: a cell is complete when all of them are on disk.
    """

    FILENAME = "runs.csv"

    def __init__(self, folder: str | os.PathLike, identity: str, runs: int):
        self.folder = Path(folder)
        self.path = self.folder / self.FILENAME
        self.identity, self.runs = identity, runs
        self._check_folder()
        self.frame = self._load()

    def _check_folder(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise StoreError(f"output path {self.folder} exists and is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create output folder {self.folder}: {exc}"
            ) from exc
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"{self.path} exists and is not a file")

    def _load(self) -> pd.DataFrame:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return _empty()
        frame = _read(self.path)
        other = sorted(set(frame["identity"].astype(str)) - {self.identity})
        if other:
            raise StoreError(
                f"{self.path} holds runs made with other settings (protocol "
                f"identity {', '.join(other)}; these settings are {self.identity}). "
                "Use another --out folder, or the options that made that file; "
                "the file was left as it is."
            )
        return frame

    def is_complete(self, cell: Cell) -> bool:
        """Whether every run of ``cell`` is on disk."""
        rows = self.cell_rows(cell)
        return set(rows["run"].astype(int)) >= set(range(self.runs))

    def cell_rows(self, cell: Cell) -> pd.DataFrame:
        """The rows of ``cell`` (possibly none)."""
        f = self.frame
        mask = (
            (f["table"].astype(int) == cell.table)
            & (f["dataset"] == cell.dataset)
            & (f["loss"] == cell.loss)
            & (f["aggregate"] == cell.aggregate)
        )
        return f[mask]

    def append(self, rows: pd.DataFrame) -> None:
        """Add the rows of one finished cell to the file, in one write."""
        rows = rows[list(RUN_COLUMNS)].astype(RUN_DTYPES)
        header = not self.path.exists() or self.path.stat().st_size == 0
        text = rows.to_csv(index=False, header=header, float_format="%.10g")
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        parts = [f for f in (self.frame, rows) if len(f)]
        self.frame = pd.concat(parts, ignore_index=True) if parts else rows

    def complete_rows(self, cells: list[Cell]) -> pd.DataFrame:
        """The rows of the complete cells among ``cells``, runs 0..runs-1 only."""
        keep = [self.cell_rows(c) for c in cells if self.is_complete(c)]
        if not keep:
            return _empty()
        rows = pd.concat(keep, ignore_index=True)
        rows = rows[rows["run"].astype(int) < self.runs]
        return rows.drop_duplicates(CELL_KEY + ["run"], keep="last")


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in RUN_DTYPES.items()})


def _read(path: Path) -> pd.DataFrame:
    """Read and check a results CSV; any problem is a StoreError."""
    hint = (
        "It is not a results file of this program, or it is damaged. Move it away "
        "or choose another --out folder; it was left as it is."
    )
    try:
        frame = pd.read_csv(path, dtype={"identity": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}. {hint}") from exc
    missing = [c for c in RUN_COLUMNS if c not in frame.columns]
    if missing or list(frame.columns) != list(RUN_COLUMNS):
        raise StoreError(
            f"{path} does not have the columns of a results file "
            f"(missing: {', '.join(missing) or 'none'}; found: "
            f"{', '.join(map(str, frame.columns))}). {hint}"
        )
    numeric = ["table", "run", "seed", "kappa", "C", "lr", "delta", "configs"]
    numeric.append("seconds")
    bad = frame[numeric].apply(pd.to_numeric, errors="coerce").isna().any(axis=1)
    if frame[CELL_KEY + ["identity"]].isna().any(axis=1).any() or bad.any():
        row = int((bad | frame[CELL_KEY].isna().any(axis=1)).idxmax()) + 2
        raise StoreError(f"{path} has a damaged or incomplete line {row}. {hint}")
    try:
        return frame.astype(RUN_DTYPES)
    except (ValueError, TypeError) as exc:
        raise StoreError(
            f"{path} has a value of the wrong type ({exc}). {hint}"
        ) from exc
