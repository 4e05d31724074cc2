"""Read-ahead hints for memory-mapped items: ``madvise(MADV_WILLNEED)`` on what comes next.

A gather reads items through the mapping of ``<field>.bin``; on cold data each first touch
of a page waits for one synchronous read (the kernel's read-around, 128 KiB by default).
Telling the kernel ahead of time which bytes the next batches need turns those waits into
asynchronous reads queued together::

    items mode  (random, sequential)   one hint per item (adjacent items merged)
    blocks mode (quasi_random)         one hint per block of neighbouring samples, the
                                       first time the epoch touches it: the whole block is
                                       read in large sequential requests, and the rest of
                                       its samples, read later in the same window, hit the
                                       page cache

The hints are advice: a failure (e.g. memory that is not a file mapping) is ignored, and
the bytes read are exactly those the gather reads anyway (items mode) or the blocks the
window will read in full (blocks mode).
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np

__all__ = ["ReadAhead"]

_MADV_WILLNEED = 3
_PAGE = mmap.PAGESIZE


def _madvise() -> ctypes._CFuncPtr | None:
    try:
        function = ctypes.CDLL("libc.so.6", use_errno=True).madvise
    except (OSError, AttributeError):  # not glibc: no hints
        return None
    function.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


class ReadAhead:
    """Issues ``MADV_WILLNEED`` for the items (or blocks) of batches about to be gathered.

    Args:
        data: The field's stored bytes (uint8, usually a memory map of ``<field>.bin``).
        pointers: uint64 ``[N]`` item offsets in ``data``.
        sizes: uint64 ``[N]`` item sizes.
        ids: The sample ids the epoch draws from, sorted (blocks are runs of them).
        block_size: Samples per block (blocks mode), or None for items mode.
    """

    def __init__(
        self,
        data: np.ndarray,
        pointers: np.ndarray,
        sizes: np.ndarray,
        ids: np.ndarray,
        block_size: int | None = None,
    ) -> None:
        """Precompute each block's byte span (blocks mode)."""
        self._base = int(np.asarray(data).ctypes.data)
        self._length = int(np.asarray(data).size)
        self._pointers = np.asarray(pointers, dtype=np.int64)
        self._ends = self._pointers + np.asarray(sizes, dtype=np.int64)
        self._madvise = _madvise()
        self.block_size = block_size
        self._block_of: np.ndarray | None = None
        if block_size is not None:
            ids = np.asarray(ids, dtype=np.int64)
            self._block_of = np.full(self._pointers.size, -1, dtype=np.int64)
            self._block_of[ids] = np.arange(ids.size) // block_size
            num_blocks = -(-ids.size // block_size)
            starts, ends = self._pointers[ids], self._ends[ids]
            self._block_start = np.full(num_blocks, np.iinfo(np.int64).max, dtype=np.int64)
            self._block_end = np.zeros(num_blocks, dtype=np.int64)
            np.minimum.at(self._block_start, self._block_of[ids], starts)
            np.maximum.at(self._block_end, self._block_of[ids], ends)
        self.new_epoch()

    def new_epoch(self) -> None:
        """Forget which blocks were hinted (each epoch reads every block again)."""
        if self._block_of is not None:
            self._hinted = np.zeros(self._block_start.size, dtype=bool)

    def advise(self, ids: np.ndarray) -> int:
        """Hint the bytes of the samples ``ids`` (blocks mode: their blocks not hinted yet).

        Returns:
            The number of hints issued.
        """
        if self._madvise is None or len(ids) == 0:
            return 0
        ids = np.asarray(ids, dtype=np.int64)
        if self._block_of is None:
            starts, ends = self._pointers[ids], self._ends[ids]
            order = np.argsort(starts)
            starts, ends = starts[order], ends[order]
        else:
            blocks = np.unique(self._block_of[ids])
            blocks = blocks[(blocks >= 0) & ~self._hinted[blocks]]
            self._hinted[blocks] = True
            starts, ends = self._block_start[blocks], self._block_end[blocks]
            order = np.argsort(starts)
            starts, ends = starts[order], ends[order]
        spans = _merge(starts, ends)
        for start, end in spans:
            address = self._base + start
            aligned = address - address % _PAGE
            end = min(end, self._length)
            self._madvise(aligned, self._base + end - aligned, _MADV_WILLNEED)
        return len(spans)


def _merge(starts: np.ndarray, ends: np.ndarray) -> list[tuple[int, int]]:
    """Sorted ``[start, end)`` spans with overlapping or touching neighbours merged."""
    if starts.size == 0:
        return []
    reach = np.maximum.accumulate(ends)
    breaks = np.flatnonzero(starts[1:] > reach[:-1]) + 1
    first = np.concatenate(([0], breaks))
    last = np.concatenate((breaks - 1, [starts.size - 1]))
    return list(zip(starts[first].tolist(), reach[last].tolist(), strict=True))
