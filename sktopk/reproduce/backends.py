"""Where cells run: in this process, in local worker processes, or on Dask.

Every backend runs the same function, :func:`run_cell`, whose result depends
only on the protocol, the seed and the cell, so the numbers are the same on
every backend; only the order in which cells finish differs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pandas as pd

from .experiment import run_cell
from .protocol import Cell, Protocol

__all__ = ["BACKENDS", "BackendError", "run_cells"]

BACKENDS = ("local", "dask")
#: How long to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT = "15s"


class BackendError(Exception):
    """The backend cannot be used (a user-facing message)."""


def _task(cell: Cell, protocol: Protocol, seed: int) -> tuple[Cell, pd.DataFrame]:
    return cell, run_cell(cell, protocol, seed)


def run_cells(
    cells: list[Cell],
    protocol: Protocol,
    seed: int,
    *,
    backend: str = "local",
    jobs: int = 1,
    scheduler: str | None = None,
) -> Iterator[tuple[Cell, pd.DataFrame]]:
    """Run ``cells`` and yield ``(cell, rows)`` as each one finishes.

    Parameters
    ----------
    cells : list of Cell
    protocol : Protocol
    seed : int
    backend : {"local", "dask"}
        "local": ``jobs`` worker processes (joblib), or this process when
        ``jobs == 1``; "dask": the Dask cluster at ``scheduler``.
    jobs : int
        Local worker processes.
    scheduler : str, optional
        Address of a Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
    """
    if backend == "dask":
        return _dask(cells, protocol, seed, scheduler)
    if backend != "local":
        raise BackendError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if jobs == 1 or len(cells) <= 1:
        return (_task(c, protocol, seed) for c in cells)
    return _joblib(cells, protocol, seed, jobs)


def _joblib(cells, protocol, seed, jobs):
    from joblib import Parallel, delayed

    # loky replaces workers whose memory grew (torch's caches) and says so;
    # no work is lost, so the warning would only confuse users. The filter
    # holds while the results are collected, not for the rest of the process.
    parallel = Parallel(n_jobs=jobs, return_as="generator_unordered")
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="A worker stopped while some jobs", category=UserWarning
        )
        yield from parallel(delayed(_task)(c, protocol, seed) for c in cells)


def _dask(cells, protocol, seed, scheduler):
    if not scheduler:
        raise BackendError("--backend dask needs --scheduler ADDRESS")
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise BackendError(
            "the dask backend needs dask.distributed: pip install 'sktopk[dask]'"
        ) from exc
    client = _connect(Client, scheduler)
    return _dask_results(client, as_completed, cells, protocol, seed)


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
