"""Numba ``nogil`` gather of variable-size items into one contiguous buffer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from slipstream.cache.checksum import xxh64_address


@intrinsic
def copy_bytes(typingctx, destination_address, source_address, size):
    """LLVM memcpy between raw addresses, callable from nopython code.

    A Numba slice assignment copies byte by byte (~1.8 GB/s measured here); memcpy runs at
    memory bandwidth (~10 GB/s).
    """
    signature = types.void(types.uintp, types.uintp, types.int64)

    def codegen(context, builder, sig, args):
        destination, source, count = args
        cgutils.raw_memcpy(
            builder,
            builder.inttoptr(destination, cgutils.voidptr_t),
            builder.inttoptr(source, cgutils.voidptr_t),
            count,
            1,
        )

    return signature, codegen


@numba.njit(nogil=True, cache=True)
def _gather(
    source: np.ndarray,
    pointers: np.ndarray,
    sizes: np.ndarray,
    destination: np.ndarray,
    offsets: np.ndarray,
    expected: np.ndarray,
    corrupt: np.ndarray,
    check: bool,
) -> int:
    source_address = source.ctypes.data
    destination_address = destination.ctypes.data
    position = np.int64(0)
    for i in range(pointers.shape[0]):
        size = np.int64(sizes[i])
        offsets[i] = position
        target = destination_address + np.uintp(position)
        copy_bytes(target, source_address + np.uintp(pointers[i]), size)
        if check:
            if xxh64_address(target, size) != expected[i]:
                corrupt[i] = 1
                for k in range(min(size, 4)):  # no longer a JPEG: every decoder rejects it
                    destination[position + k] = 0
            else:
                corrupt[i] = 0
        position += size
    return position


_UNCHECKED = (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint8))


def gather_bytes(
    source: np.ndarray,
    pointers: np.ndarray,
    sizes: np.ndarray,
    destination: np.ndarray,
    offsets: np.ndarray,
    expected: np.ndarray | None = None,
    corrupt: np.ndarray | None = None,
) -> int:
    """Copy items ``source[pointers[i] : pointers[i] + sizes[i]]`` back to back.

    Runs without the GIL, so a background thread gathering the next batch does not
    stall the training loop. Every range is checked against ``source`` and the total
    against ``destination`` before any byte is copied.

    Args:
        source: uint8 1-D contiguous array (usually the memory-mapped ``<field>.bin``).
        pointers: uint64 ``[B]`` item start offsets in ``source``.
        sizes: uint64 ``[B]`` item sizes.
        destination: uint8 1-D contiguous preallocated buffer, at least ``sizes.sum()`` long.
        offsets: uint64 ``[B]`` output: where each item starts in ``destination``.
        expected: uint64 ``[B]`` XXH64 of each item (:mod:`slipstream.cache.checksum`), or
            None to copy unchecked. Each copied item is hashed while still in the CPU cache.
        corrupt: uint8 ``[B]`` output with ``expected``: 1 where the item's hash differs
            (its first 4 copied bytes are then zeroed, so no decoder reads it as an image).

    Returns:
        Number of bytes written.
    """
    for name, array in (("source", source), ("destination", destination)):
        if array.dtype != np.uint8 or array.ndim != 1 or not array.flags.c_contiguous:
            raise ValueError(f"{name} must be a contiguous 1-D uint8 array")
    if not (pointers.shape == sizes.shape and offsets.shape[0] >= sizes.shape[0]):
        raise ValueError("pointers, sizes and offsets must have one entry per item")
    total = int(sizes.sum())
    if total > destination.shape[0]:
        raise ValueError(f"gather needs {total} bytes but the buffer holds {destination.shape[0]}")
    if sizes.shape[0] and int((pointers + sizes).max()) > source.shape[0]:
        worst = int(np.argmax(pointers + sizes))
        raise ValueError(
            f"item {worst} ends at byte {int(pointers[worst] + sizes[worst])}, past the end of "
            f"the source ({source.shape[0]} bytes)"
        )
    if expected is None:
        return int(_gather(source, pointers, sizes, destination, offsets, *_UNCHECKED, False))
    if corrupt is None or expected.shape != sizes.shape or corrupt.shape[0] < sizes.shape[0]:
        raise ValueError("expected and corrupt must have one entry per item")
    return int(_gather(source, pointers, sizes, destination, offsets, expected, corrupt, True))


def gather_bytes_in_parts(
    pool: ThreadPoolExecutor | None,
    parts: int,
    source: np.ndarray,
    pointers: np.ndarray,
    sizes: np.ndarray,
    destination: np.ndarray,
    offsets: np.ndarray,
    expected: np.ndarray | None = None,
    corrupt: np.ndarray | None = None,
) -> None:
    """:func:`gather_bytes`, split into ``parts`` contiguous shares: ``pool`` and this thread.

    Share ``j`` writes its items from the byte where the items before it end, so the
    result (bytes, offsets, corrupt flags) is the single-threaded gather's; each share's
    ranges are checked as :func:`gather_bytes` checks them. Without a pool (or with too
    few items to split) it is :func:`gather_bytes`.
    """
    n = len(sizes)
    if pool is None or parts == 1 or n < 2 * parts:
        gather_bytes(source, pointers, sizes, destination, offsets, expected, corrupt)
        return
    bounds = np.linspace(0, n, parts + 1).astype(np.int64)
    ends = np.cumsum(sizes, dtype=np.uint64)

    def share(j: int) -> None:
        a, b = int(bounds[j]), int(bounds[j + 1])
        start = 0 if a == 0 else int(ends[a - 1])
        part = (
            (None, None) if expected is None else (expected[a:b], corrupt[a:b])  # type: ignore[index]
        )
        gather_bytes(source, pointers[a:b], sizes[a:b], destination[start:], offsets[a:b], *part)
        offsets[a:b] += np.uint64(start)

    futures = [pool.submit(share, j) for j in range(1, parts)]  # type: ignore[union-attr]
    share(0)
    for future in futures:
        future.result()
