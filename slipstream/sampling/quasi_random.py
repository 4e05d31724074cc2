"""Quasi-random epoch order: shuffled blocks of neighbouring samples, mixed a window at a time.

For data larger than RAM (or read cold from disk), a fully random order reads every item
from a different place in the file. FFCV's ``OrderOption.QUASI_RANDOM`` trades some
randomness for locality; this is slipstream's keyed version of the same idea::

    ids (sorted: storage order)   0 1 2 3 | 4 5 6 7 | 8 9 10 11 | 12 13 14 15 | ...   blocks
    1. shuffle the blocks          block 2, block 0, block 3, block 1, ...
    2. cut into windows of W blocks [block 2, block 0] [block 3, block 1] ...        (W = 2)
    3. shuffle within each window  9 1 10 3 8 0 2 11 | 14 5 12 7 15 4 13 6 | ...

Every sample comes exactly once. A window is ``W x block_size`` consecutive reads; it
touches at most ``W`` blocks (``W + 1`` where a short last block shifts the cut), and any
run of reads no longer than a window at most ``2 W + 1``, so a block's bytes are read while
they are still in the page cache. Both shuffles are keyed draws
(:mod:`slipstream.sampling.keyed_random`, stream ``ORDER``): the order is a pure function
of ``(seed, epoch, ids, block_size, window)``, like every other draw. Crops and flips are
keyed by sample id, so they are the same as under any other order.

Unlike FFCV's (pages of the file, an open-page buffer of ``2 x batch_size`` pages), the
blocks count samples and the window does not depend on the batch size, so a run resumed
at another batch size sees the same order.
"""

from __future__ import annotations

import numpy as np

from slipstream.sampling.keyed_random import Stream, bits

__all__ = ["QUASI_RANDOM_BLOCK", "QUASI_RANDOM_WINDOW", "quasi_random_permutation"]

QUASI_RANDOM_BLOCK = 64
"""Default samples per block (consecutive sample ids, stored next to each other)."""

QUASI_RANDOM_WINDOW = 256
"""Default blocks per window (the samples of a window are shuffled together)."""

_BLOCK_VIEW = 1
"""``view`` word of the block-shuffle keys (the plain random order uses view 0)."""

_SAMPLE_VIEW = 2
"""``view`` word of the within-window keys."""


def quasi_random_permutation(
    ids: np.ndarray,
    *,
    seed: int,
    epoch: int,
    block_size: int = QUASI_RANDOM_BLOCK,
    window: int = QUASI_RANDOM_WINDOW,
) -> np.ndarray:
    """The ids in quasi-random order (see the module docstring).

    Args:
        ids: 1-D integer sample ids (any order: they are sorted first, so blocks are runs
            of neighbouring stored samples).
        seed: Global seed.
        epoch: Epoch number.
        block_size: Samples per block, ``>= 1``.
        window: Blocks per window, ``>= 1``.

    Returns:
        ``int64`` array: a permutation of ``ids``.

    Raises:
        ValueError: ``block_size`` or ``window`` is below 1, or ``ids`` is not 1-D.
    """
    if block_size < 1 or window < 1:
        raise ValueError(f"block_size and window must be >= 1, got {block_size}, {window}")
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {ids.shape}")
    ids = np.sort(ids)
    n = ids.size
    if n == 0:
        return ids
    block_of = np.arange(n, dtype=np.int64) // block_size
    num_blocks = int(block_of[-1]) + 1
    block_keys = bits(seed, epoch, np.arange(num_blocks), _BLOCK_VIEW, Stream.ORDER, 1)[:, 0]
    block_rank = np.empty(num_blocks, dtype=np.int64)
    block_rank[np.argsort(block_keys, kind="stable")] = np.arange(num_blocks)
    # Samples lined up block by block in the shuffled block order; each run of
    # `window * block_size` of them is a window (a short last block shifts the cut, so a
    # window may hold the tail of one block and the head of another: W + 1 blocks at most).
    lined_up = np.argsort(block_rank[block_of], kind="stable")
    position = np.empty(n, dtype=np.int64)
    position[lined_up] = np.arange(n)
    window_of = position // (window * block_size)
    sample_keys = bits(seed, epoch, ids, _SAMPLE_VIEW, Stream.ORDER, 1)[:, 0]
    return ids[np.lexsort((sample_keys, window_of))]
