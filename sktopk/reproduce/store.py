"""The output folder and the CSV of every single run.

Everything in the output folder is the user's data, so:

- one run at a time: :class:`OutputFolder` holds an exclusive lock on the
  folder while it is open (on its lock file, which holds the line
  ``sktopk lock`` and the process id, and is removed when the folder is
  closed), and a second run stops with a :class:`StoreError`; the folder is
  checked writable before any work;
- the tool's own files (the lock file, the manifest and temporary files)
  are only replaced or removed when their content or name shows that this
  tool wrote them; anything else of those names is refused, and left as it
  is;
- ``runs.csv`` only grows, by whole lines: before appending, the file must end
  with a newline, and every row is written and synced to disk on its own. On
  resume, an incomplete last line (the trace of an interrupted write) is
  dropped with a :class:`StoreWarning` and its cell run again; a damaged line
  anywhere else, another program's CSV or runs made with other settings are
  errors the user resolves, with a message saying how;
- other files (reports, plots) are written to a temporary file and renamed
  over the target. A symbolic link is never written through, and a file is
  only replaced if this tool wrote it, as recorded with its checksum in a
  manifest kept in the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import warnings
from pathlib import Path

import pandas as pd

from .experiment import RUN_COLUMNS, RUN_DTYPES
from .protocol import Cell

__all__ = ["OutputFolder", "ResultStore", "StoreError", "StoreWarning"]

CELL_KEY = ["table", "dataset", "loss", "aggregate"]
#: Files of the tool in the output folder: the lock, the manifest of the
#: files it wrote, and the prefix of its temporary files.
LOCK_NAME = ".sktopk-lock"
MANIFEST_NAME = ".sktopk-written.json"
TEMP_PREFIX = ".sktopk-tmp-"
#: The first line of the lock file; the second is the process id.
LOCK_TEXT = "sktopk lock"
#: A temporary file of this tool: the prefix, the process id and 16 random
#: hexadecimal digits (earlier versions wrote no process id).
_TEMP_NAME = re.compile(re.escape(TEMP_PREFIX) + r"(?:\d+-)?[0-9a-f]{16}")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_HINT = "Move it away or choose another --out folder; it was left as it is."
_HEADER = ",".join(RUN_COLUMNS) + "\n"

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:  # held by another process
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class StoreError(Exception):
    """A results file or folder that cannot be used (a user-facing message)."""


class StoreWarning(UserWarning):
    """Something in the output folder was repaired (the message says what)."""


class OutputFolder:
    """An output folder, locked for this process while it is open.

    Opening it creates the folder if needed, checks that it can be written and
    takes an exclusive lock (released by :meth:`close`, or by the system when
    the process ends, however it ends). Use it as a context manager.

    Parameters
    ----------
    path : path
        The folder. It may itself be a symbolic link to a folder; links inside
        it are never followed.

    Raises
    ------
    StoreError
        If the path is not a folder or cannot be written, or if another run
        holds the lock.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None
        self._make()
        self._probe()
        self._fd = _acquire(self.path / LOCK_NAME, self.path)
        try:
            remove_stale_temps(self.path)
            self._written = self._read_manifest()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the lock file (still locked, so no other run can hold it),
        then release the lock."""
        if self._fd is not None:
            _remove_lock_file(self.path / LOCK_NAME, self._fd)
            with contextlib.suppress(OSError):
                _unlock(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _make(self) -> None:
        if self.path.is_symlink() and not self.path.exists():
            raise StoreError(
                f"output path {self.path} is a broken symbolic link (to "
                f"{os.readlink(self.path)}); remove it, or give an existing "
                "folder or a new name as --out"
            )
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"output path {self.path} exists and is not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create output folder {self.path}: {exc.strerror or exc}"
            ) from exc

    def _probe(self) -> None:
        """Create and remove a file: the only test of writability that holds
        for every user (root included) and every file system."""
        try:
            fd, name = _create_temp(self.path)
        except OSError as exc:
            raise StoreError(
                f"cannot write in the output folder {self.path} "
                f"({exc.strerror or exc}); nothing was run. Make it writable or "
                "choose another --out folder."
            ) from exc
        os.close(fd)
        # Unlocked here: a run holding the lock may have removed it already as
        # a stale temporary file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)

    def _read_manifest(self) -> dict[str, list[str]]:
        """The files this tool wrote, by name: their checksums. A manifest
        that is not one this tool writes is refused, never replaced."""
        path = self.path / MANIFEST_NAME
        _refuse_link(path)
        if not path.exists():
            return {}
        try:
            files = _manifest_files(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise StoreError(
                f"{path} is not a list of the files sktopk wrote, or it is "
                f"damaged ({exc}); sktopk would replace it. {_HINT}"
            ) from exc
        return files

    def remove(self, name: str) -> bool:
        """Remove the file ``name`` if this tool wrote it and it is unchanged
        since (a file of the user is left as it is); returns whether it did."""
        target = self.path / name
        if target.is_symlink() or not target.is_file():
            return False
        digest = _digest(target.read_bytes())
        if digest not in self._written.get(name, ()):
            return False
        os.unlink(target)
        del self._written[name]
        self._save_manifest()
        return True

    def written(self, name: str) -> bool:
        """Whether the file ``name`` is there as this tool wrote it."""
        target = self.path / name
        if target.is_symlink() or not target.is_file():
            return False
        return _digest(target.read_bytes()) in self._written.get(name, ())

    def check_replaceable(self, names: list[str]) -> None:
        """Raise :class:`StoreError` unless every file of ``names`` is absent
        or was written by this tool and is unchanged since."""
        for name in names:
            self._current_digest(name)

    def write(self, name: str, data: bytes) -> Path:
        """Write ``data`` to the file ``name`` of the folder, atomically.

        The bytes go to a temporary file, synced, that then replaces the
        target; the manifest records the new file's checksum.

        Returns
        -------
        Path
            The path of the file written.
        """
        current = self._current_digest(name)
        digest = _digest(data)
        # While the rename is pending the target is either file: trust both.
        self._written[name] = [h for h in (current, digest) if h]
        self._save_manifest()
        _replace(self.path, name, data)
        self._written[name] = [digest]
        self._save_manifest()
        return self.path / name

    def _current_digest(self, name: str) -> str | None:
        target = self.path / name
        _refuse_link(target)
        if not target.exists():
            return None
        if not target.is_file():
            raise StoreError(f"{target} exists and is not a file. {_HINT}")
        digest = _digest(target.read_bytes())
        if digest not in self._written.get(name, ()):
            why = "" if self._written else (
                f" (sktopk lists the files it writes in {MANIFEST_NAME}; this "
                "folder has no such list: made by an earlier version?)"
            )  # fmt: skip
            raise StoreError(
                f"{target} was not written by sktopk, or was changed since{why}; "
                "it would be replaced. Move it away or choose another --out "
                "folder; it was left as it is."
            )
        return digest

    def _save_manifest(self) -> None:
        text = json.dumps({"files": self._written}, indent=1, sort_keys=True)
        _replace(self.path, MANIFEST_NAME, text.encode("utf-8"))


class ResultStore:
    """Runs of one protocol identity in ``folder.path / "runs.csv"``.

    Parameters
    ----------
    folder : OutputFolder
        The open (locked) output folder.
    identity : str
        The protocol identity (see :meth:`Protocol.identity`) the runs belong to.
    runs : int
        Runs per cell: a cell is complete when all of them are on disk.
    also : tuple of str, default=()
        Other identities of the same settings (e.g. of a setting that does
        not apply to the table): a file holding runs of one of them is used,
        and ``identity`` becomes that one.
    """

    FILENAME = "runs.csv"

    def __init__(
        self, folder: OutputFolder, identity: str, runs: int, also: tuple = ()
    ):
        self.folder = folder
        self.path = folder.path / self.FILENAME
        self.identity, self.runs, self._also = identity, runs, tuple(also)
        self._check_file()
        self.frame, self._size, self._tail = self._load()

    def _check_file(self) -> None:
        _refuse_link(self.path)
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise StoreError(f"{self.path} exists and is not a file. {_HINT}")
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW))
        except OSError as exc:
            raise StoreError(
                f"cannot write to {self.path} ({exc.strerror or exc}); nothing "
                "was run. Make it writable or choose another --out folder."
            ) from exc

    def _load(self) -> tuple[pd.DataFrame, int, bytes]:
        """The complete lines as a frame, their size in bytes, and the bytes
        of an incomplete last line (dropped at the first append)."""
        if not self.path.exists():
            return _empty(), 0, b""
        raw = self.path.read_bytes()
        end = raw.rfind(b"\n") + 1
        frame = _read(self.path, raw[:end]) if end else _empty()
        found = set(frame["identity"].astype(str))
        if len(found) == 1 and found <= set(self._also):  # the same settings
            self.identity = found.pop()
        other = sorted(set(frame["identity"].astype(str)) - {self.identity})
        if other:
            raise StoreError(
                f"{self.path} holds runs made with other settings (protocol "
                f"identity {', '.join(other)}; these settings are {self.identity})."
                f"{made_by(self.path.parent, other)} Use another --out folder, or "
                "the options that made that file; the file was left as it is."
            )
        if end < len(raw):
            _check_tail(self.path, raw[end:], raw.count(b"\n"), end > 0)
        return frame, end, raw[end:]

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
        """Add the rows of one finished cell, each as a whole line synced to disk.

        Runs already on disk are skipped: a cell run again after an interrupted
        write adds only the runs it lacked.
        """
        rows = self._new_rows(rows[list(RUN_COLUMNS)].astype(RUN_DTYPES))
        if rows.empty:
            return
        lines = [_csv_line(rows.iloc[i : i + 1]) for i in range(len(rows))]
        created = not self.path.exists()
        fd = self._open_for_append()
        try:
            if self._size == 0:
                self._size += _write_line(fd, _HEADER)
            for line in lines:
                self._size += _write_line(fd, line)
        finally:
            os.close(fd)
        if created:
            _fsync_folder(self.path.parent)
        # The rows as written (values rounded to the file's digits): a report
        # is then the same whether its runs were made now or resumed.
        written = _read(self.path, (_HEADER + "".join(lines)).encode("utf-8"))
        parts = [f for f in (self.frame, written) if len(f)]
        self.frame = pd.concat(parts, ignore_index=True)

    def _new_rows(self, rows: pd.DataFrame) -> pd.DataFrame:
        if self.frame.empty:
            return rows
        key = CELL_KEY + ["run"]
        seen = pd.MultiIndex.from_frame(self.frame[key])
        return rows[~pd.MultiIndex.from_frame(rows[key]).isin(seen)]

    def _open_for_append(self) -> int:
        """Open the file for appending, after dropping the incomplete last line
        seen at load, and check that it ends with a newline."""
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | _NOFOLLOW | _BINARY
        fd = os.open(self.path, flags, 0o644)
        try:
            size = os.fstat(fd).st_size
            if self._tail and size == self._size + len(self._tail):
                os.ftruncate(fd, self._size)
                self._tail, size = b"", self._size
            if size != self._size or not _ends_with_newline(fd, size):
                raise StoreError(
                    f"{self.path} was changed by another program during this run; "
                    "nothing more was written to it. Check it, then run the same "
                    "command again."
                )
        except BaseException:
            os.close(fd)
            raise
        return fd

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


def _read(path: Path, body: bytes) -> pd.DataFrame:
    """Read and check the complete lines of a results CSV; any problem is a
    StoreError."""
    hint = f"It is not a results file of this program, or it is damaged. {_HINT}"
    _check_fields(path, body.split(b"\n")[:-1], hint)
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype={"identity": str}, index_col=False)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise StoreError(f"cannot read {path}: {exc}. {hint}") from exc
    numeric = ["table", "run", "seed", "kappa", "C", "lr", "delta", "configs"]
    numeric.append("seconds")
    bad = frame[numeric].apply(pd.to_numeric, errors="coerce").isna().any(axis=1)
    bad |= frame[CELL_KEY + ["identity"]].isna().any(axis=1)
    if bad.any():
        row = int(bad.to_numpy().argmax()) + 2
        raise StoreError(f"{path} has a damaged or incomplete line {row}. {hint}")
    try:
        return frame.astype(RUN_DTYPES)
    except (ValueError, TypeError) as exc:
        raise StoreError(
            f"{path} has a value of the wrong type ({exc}). {hint}"
        ) from exc


def _check_fields(path: Path, lines: list[bytes], hint: str) -> None:
    """The header of a results file, then the same number of fields on every
    line (its values never hold a comma): two lines glued into one, or a line
    cut short, is found here."""
    found = lines[0].rstrip(b"\r").decode("utf-8", "replace").split(",")
    if found != list(RUN_COLUMNS):
        missing = [c for c in RUN_COLUMNS if c not in found]
        raise StoreError(
            f"{path} does not have the columns of a results file "
            f"(missing: {', '.join(missing) or 'none'}; found: "
            f"{', '.join(found)}). {hint}"
        )
    for number, line in enumerate(lines[1:], start=2):
        if line.count(b",") != len(RUN_COLUMNS) - 1:
            raise StoreError(f"{path} has a damaged line {number}. {hint}")


def _check_tail(path: Path, tail: bytes, line: int, after_header: bool) -> None:
    """Accept a last line without a newline only if it can be the start of a
    line this tool writes (then warn that it is dropped)."""
    text = tail.rstrip(b"\x00")
    if after_header:
        fits = text.count(b",") < len(RUN_COLUMNS) and _printable(text)
    else:
        fits = _HEADER.encode().startswith(text)
    if not fits:
        raise StoreError(
            f"{path} has a damaged last line {line + 1}. It is not a results "
            f"file of this program, or it is damaged. {_HINT}"
        )
    shown = text[:60].decode("utf-8", "replace") + ("..." if len(text) > 60 else "")
    warnings.warn(
        f"{path}: the last line {line + 1} ({shown!r}) is incomplete, the trace of "
        "an interrupted write; it is dropped and its cell run again",
        StoreWarning,
        stacklevel=4,
    )


def _printable(text: bytes) -> bool:
    try:
        return text.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _csv_line(row: pd.DataFrame) -> str:
    """One row as a line of the results file."""
    return row.to_csv(
        index=False, header=False, float_format="%.10g", lineterminator="\n"
    )


def _write_line(fd: int, line: str) -> int:
    """Write one whole line and sync it to disk; returns its size in bytes."""
    data = memoryview(line.encode("utf-8"))
    size = len(data)
    while data:
        data = data[os.write(fd, data) :]
    os.fsync(fd)
    return size


def _ends_with_newline(fd: int, size: int) -> bool:
    if size == 0:
        return True
    os.lseek(fd, size - 1, os.SEEK_SET)
    return os.read(fd, 1) == b"\n"


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise StoreError(
            f"{path} is a symbolic link; sktopk never writes through links. "
            "Remove the link or choose another --out folder."
        )


def _acquire(path: Path, folder: Path) -> int:
    """Open and lock the lock file; StoreError if another run holds it, or
    if a file of its name is not a lock file of this tool."""
    while True:
        fd = _open_lock(path)
        try:
            locked = _lock(fd, folder)
            if not locked:
                raise StoreError(
                    f"another sktopk reproduce{_holder(path)} is using the output "
                    f"folder {folder}; wait for it to finish, or choose another "
                    "--out folder (one run per folder at a time)"
                )
            if _same_file(fd, path):  # not removed by the run that held it
                _check_lock_text(fd, path)
                _write_lock_text(fd)
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _open_lock(path: Path) -> int:
    """The lock file, created if missing (never through a link)."""
    _refuse_link(path)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _BINARY, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror or exc}") from exc


def _lock(fd: int, folder: Path) -> bool:
    """Try the lock; on a file system without locks, warn and go on."""
    try:
        return _try_lock(fd)
    except OSError as exc:
        warnings.warn(
            f"cannot lock {folder} ({exc.strerror or exc}): make sure no other "
            "run uses this folder at the same time",
            StoreWarning,
            stacklevel=4,
        )
        return True


def _same_file(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd``."""
    try:
        here, there = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _is_lock_text(data: bytes) -> bool:
    """Whether ``data`` is what this tool writes in its lock file: nothing
    (just created), "sktopk lock" and a process id, or a process id alone
    (the lock files of earlier versions)."""
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return False
    if lines[:1] == [LOCK_TEXT]:
        lines = lines[1:]
    return len(lines) <= 1 and all(line.isdigit() for line in lines)


def _check_lock_text(fd: int, path: Path) -> None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 256)
    if not _is_lock_text(data):
        raise StoreError(
            f"{path} is not a lock file of sktopk (its lock file holds the line "
            f"{LOCK_TEXT!r} and a process id); sktopk would replace it. {_HINT}"
        )


def _write_lock_text(fd: int) -> None:
    with contextlib.suppress(OSError):  # who holds it, for that message
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{LOCK_TEXT}\n{os.getpid()}\n".encode())


def _remove_lock_file(path: Path, fd: int) -> None:
    """Remove the lock file held by ``fd`` (another run that opened it in the
    meantime sees that it is gone, and opens a new one)."""
    if _same_file(fd, path):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _holder(path: Path) -> str:
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    pid = lines[-1].strip() if lines else ""
    return f" (process {pid})" if pid.isdigit() else ""


def remove_stale_temps(folder: Path) -> None:
    """Remove this tool's temporary files from ``folder`` (locked by the
    caller): those left by a run killed while writing; no other run writes
    there now. Only files named as this tool names them are removed."""
    for entry in os.scandir(folder):
        if _TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _create_temp(folder: Path) -> tuple[int, Path]:
    """A new file of this tool's, created exclusively (mode from the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
    while True:
        name = folder / f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(8)}"
        with contextlib.suppress(FileExistsError):
            return os.open(name, flags, 0o666), name


def _replace(folder: Path, name: str, data: bytes) -> None:
    fd, temp = _create_temp(folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Make a new or renamed entry of ``folder`` durable (POSIX only)."""
    if os.name == "nt":  # pragma: no cover
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


#: The largest report that :func:`made_by` reads.
_REPORT_BYTES = 1 << 20


def made_by(folder: Path, identities: list[str]) -> str:
    """A sentence " <identity> was made by <command> (<report>)." for each
    of ``identities`` whose report (a ``table*.md`` or ``figure*.md``
    written by this tool, with the command and the protocol or settings
    identity in its settings, as :func:`.report.render_report` writes them)
    is in ``folder``; "" when none is."""
    found = {}
    for path in _reports(folder):
        settings = read_settings(path)
        identity = _identity_of(settings)
        if identity in identities and "command" in settings:
            found.setdefault(identity, f"{settings['command']} ({path.name})")
    return "".join(f" {i} was made by {found[i]}." for i in identities if i in found)


def _reports(folder: Path) -> list[Path]:
    return sorted([*folder.glob("table*.md"), *folder.glob("figure*.md")])


def _identity_of(settings: dict[str, str]) -> str:
    return settings.get("protocol identity", settings.get("settings identity", ""))


def read_settings(path: Path) -> dict[str, str]:
    """The settings section of a report (empty if it is not a readable file
    of at most 1 MiB)."""
    if path.is_symlink() or not path.is_file():
        return {}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        if path.stat().st_size <= _REPORT_BYTES:
            return _report_settings(path.read_text("utf-8"))
    return {}


def check_settings(folder: OutputFolder, names: list[str], identity: str) -> None:
    """Refuse, before any work, to replace the files ``names`` if this tool
    wrote any of them with other settings: a report (its settings or
    protocol identity) or a CSV with an ``identity`` column."""
    for name in names:
        other = _recorded_identity(folder, name)
        if other and other != identity:
            raise StoreError(
                f"{folder.path / name} holds results made with other settings "
                f"(settings identity {other}; these settings are {identity})."
                f"{made_by(folder.path, [other])} Use another --out folder, or "
                "the options that made it; the files were left as they are."
            )


def _recorded_identity(folder: OutputFolder, name: str) -> str:
    """The identity recorded in the file ``name`` if this tool wrote it."""
    if not folder.written(name):
        return ""
    path = folder.path / name
    if name.endswith(".md"):
        return _identity_of(read_settings(path))
    with contextlib.suppress(OSError, UnicodeDecodeError), path.open("rb") as fh:
        lines = [fh.readline(4096).decode("utf-8") for _ in range(2)]
        header, first = (line.rstrip("\n").split(",") for line in lines)
        if header[0] == "identity" and first[0]:
            return first[0]
    return ""


def check_seed(folder: OutputFolder, seed: int) -> None:
    """Refuse, before any work, a folder holding results (reports written by
    this tool) made with another seed: a folder holds one seed."""
    for path in _reports(folder.path):
        if not folder.written(path.name):
            continue
        settings = read_settings(path)
        if settings.get("seed", str(seed)) != str(seed):
            by = f", made by {settings['command']}" if "command" in settings else ""
            raise StoreError(
                f"{folder.path} holds results made with seed {settings['seed']} "
                f"({path.name}{by}); this run's seed is {seed}, and a folder "
                f"holds the results of one seed. Use another --out folder, or "
                f"--seed {settings['seed']}; the files were left as they are."
            )


def _report_settings(text: str) -> dict[str, str]:
    """The "- **name**: value" lines of a report's settings section."""
    out = {}
    for line in text.split("\n## Results", 1)[0].splitlines():
        if line.startswith("- **") and "**: " in line:
            name, value = line[4:].split("**: ", 1)
            out[name] = value.strip()
    return out


def _manifest_files(data) -> dict[str, list[str]]:
    """The files of a manifest's JSON; ValueError if it is not one."""
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(v, list) and all(isinstance(h, str) for h in v)
        for v in files.values()
    ):
        raise ValueError('no "files" mapping each name to its checksums')
    return {str(k): list(v) for k, v in files.items()}


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
