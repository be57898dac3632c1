"""Device resolution: ``"auto"`` picks CUDA when available."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``device`` ("auto", "cpu", "cuda", "cuda:1", ...).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu' or 'cuda'"
        ) from exc
    if dev.type == "mps" and not _mps_available():
        raise ValueError(
            f"device={device!r} was requested but this installation has no usable MPS "
            "backend; use device='auto' or 'cpu'"
        )
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(
            f"device={device!r} cannot train a model; use 'auto', 'cpu' or 'cuda'"
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; "
            "use device='auto' or 'cpu'"
        )
    return dev


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
