"""Weighted column statistics of the data the estimators train on, computed
by blocks of rows in float64 (no float64 copy of the whole of ``X``); rows
of weight 0 count nowhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["row_blocks", "weighted_mean", "rms_deviation", "constant_values"]

#: Values of X converted to float64 at once (a block of rows: 64 MiB).
_BLOCK_VALUES = 1 << 23


def row_blocks(X: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, block)`` for blocks of rows of the 2-D ``X``, each a
    C-ordered float64 copy (the same sums whatever X's memory order; the
    caller may overwrite it)."""
    rows = max(1, _BLOCK_VALUES // max(1, X.shape[1]))
    for lo in range(0, len(X), rows):
        yield lo, np.array(X[lo : lo + rows], dtype=np.float64, order="C")


def _counted_blocks(X: np.ndarray, w: np.ndarray | None):
    """``(block, weights)`` of the rows of positive weight (all rows, and
    None, without weights), block by block."""
    for lo, block in row_blocks(X):
        if w is None:
            yield block, None
        else:
            wb = w[lo : lo + len(block)]
            yield block[wb > 0], wb[wb > 0]


def _column_sums(
    X: np.ndarray, w: np.ndarray | None, f: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The (weighted) sums of ``f(block)`` over the rows of positive weight."""
    out = np.zeros(X.shape[1])
    for block, wb in _counted_blocks(X, w):
        values = f(block)
        out += values.sum(axis=0) if wb is None else wb @ values
    return out


def _total(X: np.ndarray, w: np.ndarray | None) -> float:
    return float(len(X)) if w is None else float(w[w > 0].sum())


def weighted_mean(X: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """The (weighted) mean of each column of ``X``."""
    return _column_sums(X, w, lambda b: b) / _total(X, w)


def rms_deviation(
    X: np.ndarray, centre: np.ndarray, w: np.ndarray | None
) -> np.ndarray:
    """The (weighted) root mean square deviation of each column of ``X`` from
    ``centre``, computed over its largest magnitude among the rows that
    count: finite wherever that is (squares of deviations beyond 1e154 would
    overflow)."""
    top = np.zeros(X.shape[1])
    for block, _ in _counted_blocks(X, w):
        if len(block):
            np.maximum(top, np.abs(block - centre).max(axis=0), out=top)
    safe = np.where(top > 0, top, 1.0)
    squares = _column_sums(X, w, lambda b: np.square((b - centre) / safe))
    return top * np.sqrt(squares / _total(X, w))


def constant_values(
    X: np.ndarray, w: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``(constant, value)``: whether each column of ``X`` takes one value on
    the rows that count, and that value (0 where not constant, and where no
    row counts)."""
    constant = np.zeros(X.shape[1], dtype=bool)
    value = None
    for block, _ in _counted_blocks(X, w):
        if not len(block):
            continue
        if value is None:
            value, constant = block[0].copy(), np.ones(X.shape[1], dtype=bool)
        constant &= (block == value).all(axis=0)
        if not constant.any():  # usually after the first block
            break
    if value is None:
        return constant, np.zeros(X.shape[1])
    return constant, np.where(constant, value, 0.0)
