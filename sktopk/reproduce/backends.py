"""Where cells run: in this process, in local worker processes, or on Dask.

Every backend runs the same function, :func:`run_cell`, whose result depends
only on the protocol, the seed and the cell, so the numbers are the same on
every backend; only the order in which cells finish differs. Local workers
also share the chunks of a large cell (:mod:`.schedule`).

Local workers never outlive the command: each one watches a pipe whose only
writing end the parent holds, and exits as soon as it closes, whether the
parent closed it (an error, Ctrl-C) or died (even by SIGKILL). Workers ignore
SIGINT, so Ctrl-C in a terminal reaches the parent alone, which stops them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import pandas as pd

from .allocator import keep_heap_memory
from .experiment import run_cell, train_chunk
from .protocol import Cell, Protocol
from .schedule import CellTasks, ChunkDone, Task

__all__ = ["BACKENDS", "BackendError", "run_cells"]

BACKENDS = ("local", "dask")
#: How long to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT = "15s"


class BackendError(Exception):
    """The backend cannot be used (a user-facing message)."""


def _task(
    cell: Cell, protocol: Protocol, seed: int, partial=None, size: int | None = None
) -> tuple[Cell, pd.DataFrame]:
    saved = None if partial is None else partial.cell(cell)
    return cell, run_cell(cell, protocol, seed, saved, size)


def run_cells(
    cells: list[Cell],
    protocol: Protocol,
    seed: int,
    *,
    backend: str = "local",
    jobs: int = 1,
    scheduler: str | None = None,
    partial=None,
) -> Iterator[tuple[Cell, pd.DataFrame | ChunkDone]]:
    """Run ``cells`` and yield ``(cell, rows)`` as each one finishes.

    Local workers that share a cell's chunks also yield ``(cell,``
    :class:`~.schedule.ChunkDone` ``)`` as each chunk finishes.

    Parameters
    ----------
    cells : list of Cell
    protocol : Protocol
    seed : int
    backend : {"local", "dask"}
        "local": ``jobs`` worker processes, or this process when ``jobs == 1``;
        "dask": the Dask cluster at ``scheduler``.
    jobs : int
        Local worker processes.
    scheduler : str, optional
        Address of a Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
    partial : PartialStore, optional
        Where local cells keep their finished chunks (see :mod:`.partial`);
        Dask workers, which may not see the output folder, keep none.
    """
    if backend == "dask":
        return _dask(cells, protocol, seed, scheduler)
    if backend != "local":
        raise BackendError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    tasks = None if jobs == 1 else CellTasks(cells, protocol, seed, partial)
    if tasks is None or tasks.total <= 1:
        return (_task(c, protocol, seed, partial) for c in cells)
    return _local(tasks, protocol, seed, min(jobs, tasks.total), partial)


def _work(task: Task, protocol: Protocol, seed: int, partial):
    """A task of :class:`.schedule.CellTasks`, in a worker."""
    if task.chunk is None:
        return _task(task.cell, protocol, seed, partial, task.size)
    train_chunk(task.cell, protocol, seed, partial.cell(task.cell), task.chunk)
    return None


def _local(tasks: CellTasks, protocol, seed, jobs, partial):
    """The tasks in ``jobs`` worker processes, at most ``jobs`` submitted at
    once so that the order of :class:`.schedule.CellTasks` holds."""
    context = multiprocessing.get_context("spawn")  # the same on every platform
    stop_reader, stop_writer = context.Pipe(duplex=False)
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_worker_init, initargs=(stop_reader,)
    )
    running, submitted = {}, 0
    try:
        while True:
            # The first jobs submissions start the workers, which inherit SIGINT
            # ignored; later ones find an idle worker and start none.
            starting = (
                _sigint_ignored() if submitted < jobs else contextlib.nullcontext()
            )
            with starting:
                while len(running) < jobs and (task := tasks.next()) is not None:
                    running[pool.submit(_work, task, protocol, seed, partial)] = task
                    submitted += 1
            if not running:
                return
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                task = running.pop(future)
                result = _result(future)
                progress = tasks.done(task)
                yield result if task.chunk is None else (task.cell, progress)
    except BaseException:
        stop_writer.close()  # the workers exit now, even in the middle of a cell
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        try:
            pool.shutdown(wait=True)
        finally:  # even if a second Ctrl-C cuts the wait short
            stop_writer.close()
            stop_reader.close()


def _result(future):
    try:
        return future.result()
    except BrokenProcessPool as exc:
        raise BackendError(
            "a worker process stopped unexpectedly (killed, or out of memory?); "
            "the finished cells are saved: run the same command again to resume, "
            "with fewer --jobs or a smaller --max-memory if memory is short"
        ) from exc


@contextlib.contextmanager
def _sigint_ignored():
    """Ignore SIGINT in this process while workers start (main thread only).

    A process started with SIGINT ignored keeps it ignored from its first
    instruction, before Python runs any of its code.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if previous is None:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _worker_init(stop) -> None:
    """Set up a local worker: ignore SIGINT, exit when the parent goes, keep
    freed memory in malloc's heap (:func:`.allocator.keep_heap_memory`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_heap_memory()
    watch = threading.Thread(
        target=_watch_parent, args=(stop,), name="sktopk-watch-parent", daemon=True
    )
    watch.start()


def _watch_parent(stop) -> None:
    parent = multiprocessing.parent_process()
    try:
        # poll() turns true when the parent's end of the pipe closes.
        while not stop.poll(1.0):
            if parent is not None and not parent.is_alive():
                break
    except (OSError, EOFError):
        pass
    os._exit(1)


def _dask(cells, protocol, seed, scheduler):
    if not scheduler:
        raise BackendError("--backend dask needs --scheduler ADDRESS")
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise BackendError(
            "the dask backend needs dask.distributed (install it: pip install "
            "'dask[distributed]', or the [dask] extra, pip install -e '.[dask]' "
            "in a clone)"
        ) from exc
    _check_address(scheduler)
    client = _connect(Client, scheduler)
    return _dask_results(client, as_completed, cells, protocol, seed)


def _check_address(scheduler: str) -> None:
    """Reject a malformed address before a Client is made: a Client that fails
    on one stalls the interpreter's exit (it tries to close for 30 s)."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(scheduler)
        get_backend(scheme)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise BackendError(
            f"not a Dask scheduler address: {scheduler!r} ({exc}); expected e.g. "
            "tcp://10.0.0.5:8786"
        ) from exc


def _connect(client_cls, scheduler: str):
    try:
        return client_cls(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise BackendError(
            f"cannot connect to the Dask scheduler at {scheduler!r}: {exc}"
        ) from exc


def _dask_results(client, as_completed, cells, protocol, seed):
    try:
        futures = [
            client.submit(_task, c, protocol, seed, pure=False, key=_key(c))
            for c in cells
        ]
        for future in as_completed(futures, loop=client.loop):
            yield future.result()
    finally:
        client.close()


def _key(cell: Cell) -> str:
    import uuid

    return f"sktopk-{cell.table}-{cell.label.replace('/', '-')}-{uuid.uuid4().hex[:8]}"
