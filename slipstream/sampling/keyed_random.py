"""Counter-based (keyed) randomness.

Every random number slipstream draws is a pure function of the key
``(seed, epoch, sample_id, view, stream, draw_index)``. Nothing is stateful, so a sample's
augmentation does not depend on batch size, batch position, world size, worker count,
shuffle order, or where in an epoch a run was resumed.

Construction (all arithmetic is 64-bit unsigned with wraparound)::

    mix(z)       = splitmix64 / Stafford "variant 13" finalizer (a bijection on 2**64)
    prefix       = mix(mix(mix(mix(DOMAIN ^ seed) ^ epoch) ^ view) ^ stream)   # Python ints
    base[b]      = mix(prefix ^ sample_id[b])                                  # vector [B]
    bits[b, d]   = mix(base[b] + (d + 1) * GOLDEN)                             # matrix [B, D]
    uniform[b,d] = (bits[b, d] >> 11) * 2**-53                                 # [0, 1), 53-bit

Row ``b`` is a splitmix64 sequence seeded by the hashed key, so draws along a row are
independent, and rows for neighbouring ids (or other epochs, views, streams) start from
unrelated states because every key word goes through a full avalanche mix. Key words are
reduced modulo 2**64 (negative integers use their two's-complement bits).
"""

from __future__ import annotations

import enum
import functools

import numpy as np

__all__ = ["Stream", "bits", "uniform"]

_M64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_DOMAIN = 0x736C697073747265  # b"slipstre": separates slipstream keys from other uses

_GOLDEN_U64 = np.uint64(_GOLDEN)
_C1_U64 = np.uint64(_C1)
_C2_U64 = np.uint64(_C2)
_INV_2_53 = 1.0 / float(1 << 53)


class Stream(enum.IntEnum):
    """Named random streams. Values are part of the key: never renumber, only append."""

    CROP = 1
    FLIP = 2
    ORDER = 3
    COLOR_JITTER = 4
    GRAYSCALE = 5
    BLUR = 6
    SOLARIZE = 7
    ERASING = 8
    MIXUP = 9
    CUTMIX = 10


def _mix_int(z: int) -> int:
    """Splitmix64 finalizer on a Python int (exact 64-bit wraparound)."""
    z &= _M64
    z = ((z ^ (z >> 30)) * _C1) & _M64
    z = ((z ^ (z >> 27)) * _C2) & _M64
    return z ^ (z >> 31)


def _mix_inplace(z: np.ndarray, tmp: np.ndarray) -> None:
    """Splitmix64 finalizer applied in place to a uint64 array (``tmp`` is scratch)."""
    np.right_shift(z, 30, out=tmp)
    z ^= tmp
    z *= _C1_U64
    np.right_shift(z, 27, out=tmp)
    z ^= tmp
    z *= _C2_U64
    np.right_shift(z, 31, out=tmp)
    z ^= tmp


@functools.lru_cache(maxsize=4096)
def _prefix(seed: int, epoch: int, view: int, stream: int) -> int:
    h = _mix_int(_DOMAIN ^ (int(seed) & _M64))
    for word in (epoch, view, stream):
        h = _mix_int(h ^ (int(word) & _M64))
    return h


def _as_ids(sample_ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(sample_ids)
    if ids.ndim != 1:
        raise ValueError(f"sample_ids must be 1-D, got shape {ids.shape}")
    if ids.dtype.kind not in "iu":
        if ids.size == 0:
            return ids.astype(np.uint64)
        raise TypeError(f"sample_ids must be an integer array, got dtype {ids.dtype}")
    return ids.astype(np.uint64, copy=False)


def bits(
    seed: int, epoch: int, sample_ids: np.ndarray, view: int, stream: int, num_draws: int
) -> np.ndarray:
    """Raw 64-bit keyed draws.

    Args:
        seed: Global seed.
        epoch: Epoch number.
        sample_ids: 1-D integer array of sample ids, shape ``[B]``.
        view: View index (multi-view / multi-crop training), 0 for single view.
        stream: Stream id, normally a :class:`Stream` member.
        num_draws: Number of draws per sample, ``D >= 0``.

    Returns:
        ``uint64`` array ``[B, D]`` (Fortran-ordered: each column is contiguous); entry
        ``[b, d]`` depends only on ``(seed, epoch, sample_ids[b], view, stream, d)``.
    """
    if num_draws < 0:
        raise ValueError(f"num_draws must be >= 0, got {num_draws}")
    ids = _as_ids(sample_ids)
    prefix = np.uint64(_prefix(int(seed), int(epoch), int(view), int(stream)))
    base = ids ^ prefix
    _mix_inplace(base, np.empty_like(base))
    steps = np.arange(1, num_draws + 1, dtype=np.uint64)
    steps *= _GOLDEN_U64
    # Computed draw-major ([D, B], inner loops run over the batch) and returned as the
    # transposed view, so column ``[:, d]`` of the result is contiguous.
    z = np.add.outer(steps, base)
    _mix_inplace(z, np.empty_like(z))
    return z.T


def uniform(
    seed: int, epoch: int, sample_ids: np.ndarray, view: int, stream: int, num_draws: int
) -> np.ndarray:
    """Keyed uniform draws in ``[0, 1)`` with 53 random bits.

    Args:
        seed: Global seed.
        epoch: Epoch number.
        sample_ids: 1-D integer array of sample ids, shape ``[B]``.
        view: View index, 0 for single view.
        stream: Stream id, normally a :class:`Stream` member.
        num_draws: Number of draws per sample.

    Returns:
        ``float64`` array ``[B, num_draws]``; entry ``[b, d]`` is a pure function of
        ``(seed, epoch, sample_ids[b], view, stream, d)``.
    """
    z = bits(seed, epoch, sample_ids, view, stream, num_draws)
    z >>= np.uint64(11)
    out = z.view(np.int64).astype(np.float64)  # < 2**53: exact; int64 converts faster
    out *= _INV_2_53
    return out
