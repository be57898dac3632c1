"""Device resolution: ``"auto"`` picks CUDA when available."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return the torch device for ``device`` ("auto", "cpu", "cuda", "cuda:1", ...).

    CUDA devices come back with their index ("cuda" is the current device,
    e.g. ``cuda:0``); an index beyond the devices there are, MPS (no float64)
    and other device types are refused with a ValueError.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid device; use 'auto', 'cpu' or 'cuda'"
        ) from exc
    if dev.type == "mps":
        raise ValueError(
            f"device={device!r}: MPS is not supported (training computes some "
            "sums in float64, which MPS lacks); use device='cpu'"
        )
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r} cannot train a model; use 'auto', 'cpu' or 'cuda'"
        )
    if dev.type == "cuda":
        return _cuda_device(device, dev)
    return dev


def _cuda_device(device, dev: torch.device) -> torch.device:
    """``dev`` with its index (the current device's for a bare "cuda"),
    checked against the devices there are."""
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available; "
            "use device='auto' or 'cpu'"
        )
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ValueError(
            f"device={device!r} was requested but this machine has {count} CUDA "
            f"device(s), cuda:0 to cuda:{count - 1}"
        )
    index = torch.cuda.current_device() if dev.index is None else dev.index
    return torch.device("cuda", index)
