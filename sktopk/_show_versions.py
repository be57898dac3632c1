"""``show_versions``: what to paste into a bug report."""

from __future__ import annotations

import importlib
import platform
import sys

#: The libraries sktopk uses, required then optional.
_LIBRARIES = (
    "torch", "numpy", "scipy", "sklearn", "pandas", "joblib", "tqdm",
    "numba", "matplotlib", "dask", "skops",
)  # fmt: skip


def show_versions() -> None:
    """Print the versions of Python, sktopk, its dependencies and the devices.

    As :func:`sklearn.show_versions`, for bug reports.

    Examples
    --------
    >>> import sktopk
    >>> sktopk.show_versions()  # doctest: +ELLIPSIS
    sktopk: 0.1.0
    python: ...
    """
    from . import __version__

    print(f"sktopk: {__version__}")
    print(f"python: {sys.version.split()[0]} ({platform.platform()})")
    for name in _LIBRARIES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            print(f"{name}: not installed")
            continue
        print(f"{name}: {getattr(module, '__version__', 'unknown')}")
    import torch

    cuda = torch.version.cuda or "none (CPU build)"
    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    print(f"torch CUDA: {cuda}; CUDA devices available: {devices}")
    print(f"torch threads: {torch.get_num_threads()}")
