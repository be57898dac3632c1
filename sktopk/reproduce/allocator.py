"""Allocator settings of the processes that run benchmark cells.

Training thousands of members at once makes temporary tensors of a few
megabytes at every step and every validation chunk. glibc's ``malloc`` serves
blocks above its mmap threshold with a fresh ``mmap`` and returns them with
``munmap`` (and trims its heap when the top is free), so every such tensor
page-faults its memory in again. On a cpusmall cell of Table 6 that was a
quarter of the time. :func:`keep_heap_memory` asks ``malloc`` to serve blocks
up to 32 MB from its heap and to keep freed memory for the next ones.

Only the processes of ``sktopk reproduce`` (the command and its local
workers) call it: it changes a process-wide setting, which a library must not
do to its users' processes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_heap_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit
_TRIM_THRESHOLD = 1 << 30


def keep_heap_memory() -> bool:
    """Serve blocks up to 32 MB from malloc's heap and keep freed memory.

    Returns
    -------
    bool
        Whether it applied: on Linux with glibc's ``mallopt``; elsewhere it does
        nothing and returns False.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        return False
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
        and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
