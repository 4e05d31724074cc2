"""Numba ``nogil`` gather of variable-size items into one contiguous buffer."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def _gather(
    source: np.ndarray,
    pointers: np.ndarray,
    sizes: np.ndarray,
    destination: np.ndarray,
    offsets: np.ndarray,
) -> int:
    position = 0
    for i in range(pointers.shape[0]):
        size = sizes[i]
        start = pointers[i]
        offsets[i] = position
        destination[position : position + size] = source[start : start + size]
        position += size
    return position


def gather_bytes(
    source: np.ndarray,
    pointers: np.ndarray,
    sizes: np.ndarray,
    destination: np.ndarray,
    offsets: np.ndarray,
) -> int:
    """Copy items ``source[pointers[i] : pointers[i] + sizes[i]]`` back to back.

    Runs without the GIL, so a background thread gathering the next batch does not
    stall the training loop.

    Args:
        source: uint8 1-D array (usually the memory-mapped ``<field>.bin``).
        pointers: uint64 ``[B]`` item start offsets in ``source``.
        sizes: uint64 ``[B]`` item sizes.
        destination: uint8 1-D preallocated buffer, at least ``sizes.sum()`` long.
        offsets: uint64 ``[B]`` output: where each item starts in ``destination``.

    Returns:
        Number of bytes written.
    """
    total = int(sizes.sum())
    if total > destination.shape[0]:
        raise ValueError(f"gather needs {total} bytes but the buffer holds {destination.shape[0]}")
    return int(_gather(source, pointers, sizes, destination, offsets))
