"""Epoch order: which sample ids a rank sees in an epoch, and in which order."""

from __future__ import annotations

import enum

import numpy as np

from slipstream.sampling.keyed_random import Stream, bits
from slipstream.sampling.quasi_random import (
    QUASI_RANDOM_BLOCK,
    QUASI_RANDOM_WINDOW,
    quasi_random_permutation,
)

__all__ = ["ORDERS", "epoch_order", "num_batches", "resolve_order"]

ORDERS = ("sequential", "random", "quasi_random")
"""Epoch orders, named like FFCV's ``OrderOption`` members (lower case)."""


def resolve_order(order: object, shuffle: bool = True) -> str:
    """The order's name: ``order`` given, else ``"random"`` or ``"sequential"`` from ``shuffle``.

    Args:
        order: ``"sequential"``, ``"random"`` or ``"quasi_random"`` (any case; FFCV's
            ``OrderOption`` members are accepted by name), or None.
        shuffle: What a missing ``order`` follows; ``shuffle=False`` means sequential, and
            contradicts a shuffled ``order``.

    Raises:
        ValueError: An unknown order, or a shuffled order with ``shuffle=False``.
    """
    if order is None:
        return "random" if shuffle else "sequential"
    name = order.name if isinstance(order, enum.Enum) else order
    if not isinstance(name, str) or name.lower() not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    name = name.lower()
    if not shuffle and name != "sequential":
        raise ValueError(f"shuffle=False asks for the sequential order, but order={name!r}")
    return name


def _permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """A permutation of ``range(n)`` that depends only on ``(seed, epoch)``.

    Positions get keyed 64-bit random keys (:func:`keyed_random.bits` on
    ``Stream.ORDER``) and are sorted by them (stable sort, so the order is fully defined
    even on a key collision). Being our own hash, the permutation does not change with the
    numpy version.
    """
    keys = bits(seed, epoch, np.arange(n, dtype=np.uint64), 0, Stream.ORDER, 1)[:, 0]
    return np.argsort(keys, kind="stable")


def epoch_order(
    num_samples: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    indices: np.ndarray | None = None,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    order: str | None = None,
    block_size: int = QUASI_RANDOM_BLOCK,
    window: int = QUASI_RANDOM_WINDOW,
) -> np.ndarray:
    """Sample ids this rank visits in this epoch, in order.

    The global list is ``indices`` (default ``arange(num_samples)``), shuffled with a
    permutation keyed by ``(seed, epoch)`` only (``order="random"``), or in quasi-random
    order (:mod:`slipstream.sampling.quasi_random`: shuffled blocks of neighbouring ids,
    mixed a window at a time), or left as given (``"sequential"``), so every rank computes
    the same list. It is then split like ``torch.utils.data.DistributedSampler``:

    - ``drop_last=False``: the list is padded to a multiple of ``world_size`` by repeating
      it from its start (cyclically, if more padding than the list length is needed), so
      every rank gets ``ceil(N / world_size)`` ids and some ids appear twice per epoch.
    - ``drop_last=True``: the tail is dropped to ``floor(N / world_size) * world_size``
      ids, so every rank gets ``floor(N / world_size)`` and some ids are skipped.

    Rank ``r`` takes positions ``r, r + world_size, r + 2 * world_size, ...``.

    Args:
        num_samples: Number of samples in the dataset (ids are ``0 .. num_samples - 1``).
        seed: Global seed.
        epoch: Epoch number.
        shuffle: Shuffle the list; if False the order is ``indices`` as given.
        indices: Optional 1-D subset of sample ids to draw from; the order is over it.
        rank: This process's rank, ``0 <= rank < world_size``.
        world_size: Number of ranks.
        drop_last: Drop the tail instead of padding (see above).
        order: ``"sequential"``, ``"random"`` or ``"quasi_random"`` (default: from
            ``shuffle``; see :func:`resolve_order`).
        block_size: Quasi-random order: samples per block.
        window: Quasi-random order: blocks shuffled together.

    Returns:
        ``int64`` array of sample ids for this rank and epoch.

    Raises:
        ValueError: On a bad rank/world size or ids outside ``[0, num_samples)``.
    """
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    if indices is None:
        ids = np.arange(num_samples, dtype=np.int64)
    else:
        ids = np.asarray(indices)
        if ids.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {ids.shape}")
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got dtype {ids.dtype}")
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= num_samples):
            raise ValueError(f"indices must lie in [0, {num_samples})")
    order = resolve_order(order, shuffle)
    if order == "random" and ids.size:
        ids = ids[_permutation(ids.size, seed, epoch)]
    elif order == "quasi_random":
        ids = quasi_random_permutation(
            ids, seed=seed, epoch=epoch, block_size=block_size, window=window
        )
    n = ids.size
    if drop_last:
        total = (n // world_size) * world_size
        ids = ids[:total]
    else:
        total = -(-n // world_size) * world_size
        if total > n:
            ids = np.resize(ids, total)  # repeats from the start, cyclically
    return np.ascontiguousarray(ids[rank:total:world_size])


def num_batches(n: int, batch_size: int, drop_last: bool) -> int:
    """Number of batches for ``n`` samples.

    Args:
        n: Number of samples (e.g. ``len(epoch_order(...))``).
        batch_size: Samples per batch, ``>= 1``.
        drop_last: Drop a final partial batch.

    Returns:
        ``n // batch_size`` if ``drop_last`` else ``ceil(n / batch_size)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return n // batch_size if drop_last else -(-n // batch_size)
