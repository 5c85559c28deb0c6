"""Reductions over the short last axis of (B, N) arrays, faster than numpy's at large B.

numpy reduces each row of a (B, N) array with one call of its inner loop, and that call costs
tens of nanoseconds whatever N is. At B = 4096 and N = 10, ``values.sum(axis=1)`` took about
150 microseconds on a 2-core AMD EPYC, where one elementwise operation took about 10. The
functions here return the numbers of the numpy reductions they replace, computed with
operations over whole columns:

- :func:`row_sum` repeats numpy's pairwise summation order, so it returns the bits of
  ``values.sum(axis=-1)``. That order is an implementation detail of numpy (2.4 here), so
  tests/envs/lending/test_batched_speedups.py compares the two for every N it handles.
- :func:`row_max`, :func:`row_min`, :func:`row_any`, :func:`row_all` and :func:`row_count`
  reduce a transposed copy along its first axis. Their results do not depend on the order.

Every function falls back to the numpy reduction itself where the fast path does not apply.
"""

from __future__ import annotations

import numpy as np

# Maximum row length that row_sum sums itself. numpy sums longer rows in another order
# (row_sum differed from it at 130 elements), so they fall back to numpy.
_PAIRWISE_BLOCK = 128
_ACCUMULATORS = 8
# Fewer rows than this are left to numpy, whose per-row cost is small there. The threshold is
# a choice, not a measured crossover.
_MIN_ROWS = 64


def row_sum(values: np.ndarray) -> np.ndarray:
    """Sum a 2-D array over its last axis, bit for bit as ``values.sum(axis=-1)``.

    Args:
        values: Array of shape (B, N).

    Returns:
        The row sums, shape (B,).
    """
    values = np.asarray(values)
    if not _pairwise_applies(values):
        return values.sum(axis=-1)
    # numpy adds each row's pairwise sum to the identity 0.0, which turns a sum of -0.0 into 0.0.
    return np.add(0.0, _pairwise_sum(values, 0, values.shape[1]))


def row_max(values: np.ndarray) -> np.ndarray:
    """Return the maximum over the last axis of a 2-D array, as ``values.max(axis=-1)``.

    NaN propagates as in numpy. Where a row's maximum is 0.0 and the row contains both 0.0 and
    -0.0, the sign of the zero returned may differ from numpy's.
    """
    values = np.asarray(values)
    if not _transpose_applies(values):
        return values.max(axis=-1)
    return np.maximum.reduce(np.ascontiguousarray(values.T), axis=0)


def row_min(values: np.ndarray) -> np.ndarray:
    """Return the minimum over the last axis of a 2-D array, as ``values.min(axis=-1)``.

    NaN and zeros behave as in :func:`row_max`.
    """
    values = np.asarray(values)
    if not _transpose_applies(values):
        return values.min(axis=-1)
    return np.minimum.reduce(np.ascontiguousarray(values.T), axis=0)


def row_any(values: np.ndarray) -> np.ndarray:
    """Test whether any entry of each row of a 2-D array is true, as ``values.any(axis=-1)``."""
    values = np.asarray(values)
    if not _transpose_applies(values):
        return np.asarray(values.any(axis=-1))
    return np.logical_or.reduce(np.ascontiguousarray(values.T), axis=0)


def row_all(values: np.ndarray) -> np.ndarray:
    """Test whether every entry of each row of a 2-D array is true, as ``values.all(axis=-1)``."""
    values = np.asarray(values)
    if not _transpose_applies(values):
        return np.asarray(values.all(axis=-1))
    return np.logical_and.reduce(np.ascontiguousarray(values.T), axis=0)


def row_count(values: np.ndarray) -> np.ndarray:
    """Count the true entries of each row of a 2-D array, as ``np.count_nonzero(values, axis=-1)``.

    Returns:
        The counts, (B,), int64.
    """
    values = np.asarray(values)
    if not _transpose_applies(values):
        return np.count_nonzero(values, axis=-1).astype(np.int64)
    return np.add.reduce(np.ascontiguousarray(values.T) != 0, axis=0, dtype=np.int64)


def _transpose_applies(values: np.ndarray) -> bool:
    return values.ndim == 2 and values.shape[0] >= _MIN_ROWS and values.shape[1] >= 1


def _pairwise_applies(values: np.ndarray) -> bool:
    """Check whether numpy sums each row pairwise along contiguous memory, as
    :func:`_pairwise_sum` does.

    numpy iterates a row-wise reduction along the row when the row's elements are adjacent in
    memory. For other layouts it may add whole rows elementwise instead, in another order.
    """
    if values.ndim != 2 or values.dtype != np.float64:
        return False
    rows, count = values.shape
    if rows < _MIN_ROWS or not 1 <= count <= _PAIRWISE_BLOCK:
        return False
    return values.strides[1] == values.itemsize and values.strides[0] >= count * values.itemsize


def _pairwise_sum(values: np.ndarray, start: int, count: int) -> np.ndarray:
    """Sum columns start..start+count-1 of each row in numpy's pairwise order, (B,).

    numpy adds fewer than 8 elements one after the other. From 8 up to 128 elements it starts 8
    accumulators with the first 8 elements and adds each further block of 8 into them. It then
    combines them as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)) and adds the elements
    left over one after the other.
    """
    # Each column as one contiguous row, so that every step below is a fast whole-row operation.
    # A reduction over the first axis of a C-contiguous array adds the rows one after the
    # other, which other layouts do not guarantee.
    columns = np.ascontiguousarray(values[:, start : start + count].T)
    if count < _ACCUMULATORS:
        return np.add.reduce(columns, axis=0)
    blocks = count - count % _ACCUMULATORS
    grouped = columns[:blocks].reshape(blocks // _ACCUMULATORS, _ACCUMULATORS, -1)
    r = np.add.reduce(grouped, axis=0)
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    if blocks == count:
        return total
    return np.add.reduce(np.concatenate([total[None, :], columns[blocks:]]), axis=0)
