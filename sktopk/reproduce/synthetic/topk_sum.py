"""Ways to compute the sum of the k largest of n numbers (Table 1).

The paper's four methods, written as it describes them: two pure-Python
sorts, and the threshold form ``sum of the top k = min over lam of
k lam + sum_i [x_i - lam]_+`` solved by gradient descent on ``lam``, with the
hard ReLU (ATk) or the SReLU of STk. Beside them, what a user calls today
(numpy, torch, and sktopk's ATk and STk losses, forward and backward).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

import numpy as np
import torch

from ...losses import atk, stk

__all__ = [
    "bubble_sort_sum",
    "heap_sort_sum",
    "threshold_descent",
    "exact_sum",
    "user_calls",
    "prepare_inputs",
]


def exact_sum(x: np.ndarray, k: int) -> float:
    """The sum of the ``k`` largest entries, in float64 (the reference)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.sort(x)[-k:].sum())


def bubble_sort_sum(values: list[float], k: int) -> float:
    """Sort a copy in decreasing order by bubble sort (pure Python, O(n^2)),
    then add the first ``k``."""
    a = list(values)
    for end in range(len(a) - 1, 0, -1):
        swapped = False
        for j in range(end):
            if a[j] < a[j + 1]:
                a[j], a[j + 1] = a[j + 1], a[j]
                swapped = True
        if not swapped:
            break
    return sum(a[:k])


def _sift_down(a: list[float], root: int, end: int) -> None:
    """Restore the min-heap property below ``root`` in ``a[:end]``."""
    while (child := 2 * root + 1) < end:
        if child + 1 < end and a[child + 1] < a[child]:
            child += 1
        if a[root] <= a[child]:
            return
        a[root], a[child] = a[child], a[root]
        root = child


def heap_sort_sum(values: list[float], k: int) -> float:
    """Sort a copy in decreasing order by heap sort (pure Python, O(n log n)),
    then add the first ``k``."""
    a = list(values)
    n = len(a)
    for root in range(n // 2 - 1, -1, -1):
        _sift_down(a, root, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]  # the smallest goes to the back
        _sift_down(a, 0, end)
    return sum(a[:k])


def threshold_descent(
    x: np.ndarray,
    k: int,
    exact: float,
    *,
    delta: float | None = None,
    lr: float = 1.0,
    tol: float = 1e-2,
    max_iter: int = 100_000,
) -> tuple[float, int]:
    """Top-k sum by gradient descent on the threshold of the dual form.

    Minimises ``k lam / n + mean(phi(x - lam))`` over ``lam`` from 0, with
    ``phi`` the ReLU (``delta=None``: ATk, a subgradient) or the SReLU of
    smoothing ``delta`` (STk), until the top-k sum at ``lam``,
    ``k lam + sum_i [x_i - lam]_+``, is within ``tol`` of ``exact``.

    Returns
    -------
    value : float
        The top-k sum at the last threshold.
    iterations : int
        Steps taken (``max_iter`` if it did not reach ``tol``).
    """
    n, lam, value = len(x), 0.0, np.inf
    for it in range(1, max_iter + 1):
        r = x - lam
        if delta is None:
            above = np.count_nonzero(r > 0) / n
        else:
            above = float(np.mean(0.5 + 0.5 * r / np.sqrt(r * r + delta * delta)))
        lam -= lr * (k / n - above)
        value = float(k * lam + np.maximum(x - lam, 0.0).sum())
        if abs(value - exact) < tol:
            return value, it
    return value, max_iter


def _torch_loss(aggregate: str, k: int, delta: float) -> Callable:
    """Forward and backward of sktopk's ATk or STk on a float32 tensor; the
    returned value is the top-k sum (k times the loss, STk at the k-th
    largest as its threshold)."""

    def call(t: torch.Tensor, lam: torch.Tensor) -> float:
        t.grad = None
        if aggregate == "atk":
            loss = atk(t, k=k)
            scale = k
        else:
            lam.grad = None
            loss = stk(t, lam, k=k, delta=delta)
            scale = len(t)
        loss.backward()
        return float(loss.detach()) * scale

    return call


def user_calls(k: int, delta: float) -> dict[str, tuple[str, Callable]]:
    """What a user calls today: name -> (label, function of the prepared
    inputs returning the top-k sum). See :func:`prepare_inputs`."""
    return {
        "numpy_partition": (
            "numpy.partition (float64)",
            lambda p: float(np.partition(p["x"], -k)[-k:].sum()),
        ),
        "heapq_nlargest": (
            "heapq.nlargest (Python list)",
            lambda p: sum(heapq.nlargest(k, p["list"])),
        ),
        "torch_topk": (
            "torch.topk (float32)",
            lambda p: float(torch.topk(p["t"], k).values.sum()),
        ),
        "sktopk_atk": (
            "sktopk atk, forward + backward (float32)",
            lambda p: _torch_loss("atk", k, delta)(p["t_grad"], p["lam"]),
        ),
        "sktopk_stk": (
            "sktopk stk, forward + backward (float32)",
            lambda p: _torch_loss("stk", k, delta)(p["t_grad"], p["lam"]),
        ),
    }


def prepare_inputs(x: np.ndarray, k: int) -> dict:
    """The inputs of :func:`user_calls`, made outside the timed region."""
    t = torch.as_tensor(x, dtype=torch.float32)
    kth = float(torch.topk(t, k).values[-1])
    return {
        "x": np.asarray(x, dtype=np.float64),
        "list": [float(v) for v in x],
        "t": t,
        "t_grad": t.clone().requires_grad_(True),
        "lam": torch.tensor(kth, requires_grad=True),
    }
