"""When the losses may read their inputs' values to validate them.

Shape, dtype and hyper-parameter checks are free and always run. Checks that
read values (labels in {-1, +1}, class indices in range, non-negative
weights) need the data on the host; they run only

* in eager mode: not under ``torch.compile`` / ``torch.export``,
  ``torch.jit.trace`` or a ``torch.func`` transform (``vmap``, ``grad``, ...),
  where a read is a graph break or an error;
* on real tensors: not meta tensors, ``FakeTensor`` or other subclasses;
* by default, on tensors in host memory only, where a read is no round trip to
  an accelerator (see :func:`set_value_checks`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["set_value_checks", "value_checks_apply", "transformed"]

# None: tensors in host memory only; True: every device; False: none.
_MODE: dict[str, bool | None] = {"mode": None}
_PLAIN = (Tensor, nn.Parameter)
_functorch_active = getattr(torch._C, "_are_functorch_transforms_active", None)


def set_value_checks(mode: bool | None = None) -> bool | None:
    """Choose when the losses read their inputs to validate values.

    Parameters
    ----------
    mode : bool or None, default=None
        ``None`` (the default): check tensors in host memory, never read an
        accelerator's (no synchronisation on the training path). ``True``:
        check on every device (a synchronisation per call on accelerators).
        ``False``: never (bad labels or weights then give wrong values, not
        errors).

    Returns
    -------
    bool or None
        The previous mode, to restore it.

    Examples
    --------
    >>> import torch
    >>> from sktopk.losses import logistic, set_value_checks
    >>> previous = set_value_checks(False)
    >>> logistic(torch.ones(1), torch.tensor([3.0]))  # not checked: softplus(-3)
    tensor([0.0486])
    >>> _ = set_value_checks(previous)
    """
    if mode is not None and not isinstance(mode, bool):
        raise TypeError(f"mode must be True, False or None; got {mode!r}")
    previous, _MODE["mode"] = _MODE["mode"], mode
    return previous


def transformed() -> bool:
    """Whether code runs under compile, export, jit tracing or torch.func."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or (_functorch_active is not None and _functorch_active())
    )


_functorch_wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)


def direct_apply(cls: type[torch.autograd.Function]):
    """The C entry point that ``cls.apply`` ends in, or None.

    ``Function.apply`` first maps its arguments through functorch's unwrapping
    (and, with a ``setup_context``, binds them by signature inspection): tens
    of microseconds, as much as a whole small cross-entropy. Call the entry
    point only where :func:`plain_eager` holds.
    """
    return getattr(super(torch.autograd.Function, cls), "apply", None)


def plain_eager(*tensors: Tensor) -> bool:
    """Eager mode, no transform, and no tensor left wrapped by one."""
    return (
        _functorch_wrapped is not None
        and not transformed()
        and not any(_functorch_wrapped(t) for t in tensors)
    )


def value_checks_apply(*tensors: Tensor | None) -> bool:
    """Whether checks that read the values of ``tensors`` should run."""
    mode = _MODE["mode"]
    if mode is False or transformed():
        return False
    for t in tensors:
        if t is None:
            continue
        if type(t) not in _PLAIN or t.device.type == "meta":
            return False
        if mode is None and t.device.type != "cpu":
            return False
    return True


def is_one(grad: Tensor) -> bool:
    """Whether ``grad`` is the 1 that ``loss.backward()`` starts from: a read
    of one number, made only in host memory (no synchronisation), and never of
    a tensor batched or wrapped by a transform (``is_grads_batched``,
    ``vmap``), which has no such read."""
    return (
        type(grad) is Tensor  # not a FakeTensor
        and grad.is_cpu
        and not grad.dim()
        and not _batched_or_wrapped(grad)
        and grad.item() == 1.0
    )


# A gradient batched by autograd's is_grads_batched or jacobian(vectorize=True)
# is a legacy batched tensor; vmap's and grad's are functorch wrappers.
_is_legacy_batched = getattr(torch._C._functorch, "is_legacy_batchedtensor", None)


def _batched_or_wrapped(t: Tensor) -> bool:
    return (_functorch_wrapped is not None and _functorch_wrapped(t)) or (
        _is_legacy_batched is not None and _is_legacy_batched(t)
    )
