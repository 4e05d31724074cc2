"""Keyed per-sample randomness for batch augmentations.

A :class:`BatchKey` names the samples of a batch: ``(seed, epoch, sample_ids, view)``.
Each transform draws its parameters through :meth:`BatchKey.uniform` with its own stream
id, so a sample's parameters are a pure function of
``(seed, epoch, sample_id, view, stream)`` (the DESIGN.md randomness contract, computed by
:mod:`slipstream.sampling.keyed_random`): they do not change with batch size, batch
position, world size or resume point.

Containers (:class:`~slipstream.augment.base.Compose`, ...) hand each child a key with a
longer ``path`` (the child's position), which is folded into the stream word, so two
transforms of the same class in one pipeline draw independent parameters.

Pixel noise (noise backgrounds, random erasing values) is too large to draw on the host:
:func:`keyed_noise` computes it on the batch's device from a per-sample seed (one index
computation and gather per element), so it is replayable from a ``[B]`` seed tensor.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np
import torch

from slipstream.sampling import keyed_random

__all__ = ["AugmentStream", "BatchKey", "keyed_noise"]

_M64 = 0xFFFFFFFFFFFFFFFF
_PATH_PRIME = 0x100000001B3  # FNV-1a 64-bit prime: folds a container path into the stream


class AugmentStream(enum.IntEnum):
    """Base stream ids of the augment transforms.

    Values are part of the key: never renumber, only append. They start at 101 so they
    never meet :class:`slipstream.sampling.keyed_random.Stream` (the loader's crop and flip
    streams), whose draws are therefore independent of these.
    """

    FLIP = 101
    GRAYSCALE = 102
    BRIGHTNESS = 103
    CONTRAST = 104
    COLOR_JITTER = 105
    COLOR_JITTER_YIQ = 106
    BLUR = 107
    SOLARIZE = 108
    ROTATE = 109
    ZOOM = 110
    ROTATE_OBJECT = 111
    EMBED = 112
    BACKGROUND_BLEND = 113
    PATCH_SHUFFLE = 114
    ERASING = 115
    MIXUP = 116
    CUTMIX = 117
    RANDOM_APPLY = 118
    MIX_SWITCH = 119
    BATCH_COLOR_JITTER = 120


class BatchKey:
    """The key of a batch's random draws: ``(seed, epoch, sample_ids, view, path)``.

    Args:
        seed: Global seed.
        epoch: Epoch number.
        sample_ids: Dataset ids of the batch's samples, shape ``[B]`` (numpy array, list or
            tensor on any device; the loader's ``batch["index"]``).
        view: View index (multi-view training); containers offset it per view.
        path: Position of the transform inside containers (set by the containers).

    Example:
        >>> key = BatchKey(seed=0, epoch=3, sample_ids=[7, 42])
        >>> key.uniform(stream=101, num_draws=2).shape
        torch.Size([2, 2])
    """

    __slots__ = ("epoch", "path", "sample_ids", "seed", "view")

    def __init__(
        self,
        seed: int,
        epoch: int,
        sample_ids: np.ndarray | torch.Tensor | Sequence[int],
        view: int = 0,
        path: tuple[int, ...] = (),
    ) -> None:
        """Store the key; ``sample_ids`` is copied to a host int64 array."""
        if isinstance(sample_ids, torch.Tensor):
            sample_ids = sample_ids.detach().cpu().numpy()
        ids = np.asarray(sample_ids)
        if ids.ndim != 1:
            raise ValueError(f"sample_ids must be 1-D, got shape {ids.shape}")
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"sample_ids must be integers, got dtype {ids.dtype}")
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.sample_ids = ids.astype(np.int64, copy=False)
        self.view = int(view)
        self.path = tuple(int(p) for p in path)

    @classmethod
    def from_torch_rng(cls, batch_size: int, generator: torch.Generator | None = None) -> BatchKey:
        """A key for unnamed samples: a seed drawn from torch's RNG, ids ``0..B-1``.

        This is the fallback when a transform is called without a key; its draws follow
        torch's global (or the given) generator instead of the sample ids.
        """
        seed = int(torch.randint(0, 2**62, (), generator=generator).item())
        return cls(seed, 0, np.arange(batch_size, dtype=np.int64))

    @property
    def batch_size(self) -> int:
        """Number of samples ``B``."""
        return int(self.sample_ids.shape[0])

    def child(self, index: int) -> BatchKey:
        """The key of a container's ``index``-th child."""
        return BatchKey(self.seed, self.epoch, self.sample_ids, self.view, (*self.path, index))

    def with_view(self, view: int) -> BatchKey:
        """The same key for another view."""
        return BatchKey(self.seed, self.epoch, self.sample_ids, view, self.path)

    def stream_word(self, stream: int) -> int:
        """The stream key word: ``stream`` with the container path folded in."""
        word = int(stream) & _M64
        for position in self.path:
            word = ((word ^ (position + 1)) * _PATH_PRIME) & _M64
        return word

    def uniform(self, stream: int, num_draws: int) -> torch.Tensor:
        """Keyed uniform draws in ``[0, 1)``.

        Args:
            stream: The transform's stream id (an :class:`AugmentStream` member).
            num_draws: Draws per sample ``D``.

        Returns:
            ``float64`` CPU tensor ``[B, D]``; row ``b`` depends only on
            ``(seed, epoch, sample_ids[b], view, stream, path)``.
        """
        draws = keyed_random.uniform(
            self.seed, self.epoch, self.sample_ids, self.view, self.stream_word(stream), num_draws
        )
        return torch.from_numpy(np.ascontiguousarray(draws))

    def noise_seeds(self, stream: int) -> torch.Tensor:
        """Per-sample 62-bit seeds for :func:`keyed_noise`, int64 CPU tensor ``[B]``."""
        bits = keyed_random.bits(
            self.seed, self.epoch, self.sample_ids, self.view, self.stream_word(stream) ^ 1, 1
        )
        return torch.from_numpy((bits[:, 0] >> np.uint64(2)).astype(np.int64))

    def __repr__(self) -> str:
        return (
            f"BatchKey(seed={self.seed}, epoch={self.epoch}, batch_size={self.batch_size}, "
            f"view={self.view}, path={self.path})"
        )


_POOL_SIZE = 4194301  # a prime: i -> (i * step + offset) mod P visits every entry once
_POOL_SEED = 0x6E6F697365  # b"noise"
_pools: dict[tuple[str, torch.dtype], torch.Tensor] = {}


def _noise_pool(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The fixed pool of keyed uniforms ``[P]`` that per-sample noise indexes (cached)."""
    cache_key = (str(device), dtype)
    pool = _pools.get(cache_key)
    if pool is None:
        values = keyed_random.uniform(_POOL_SEED, 0, np.arange(1), 0, _POOL_SEED, _POOL_SIZE)
        pool = torch.from_numpy(values[0]).to(device=device, dtype=dtype)
        _pools[cache_key] = pool
    return pool


def keyed_noise(
    seeds: torch.Tensor, shape: Sequence[int], dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Per-sample noise in ``[0, 1)`` computed on ``seeds.device``.

    Sample ``b`` reads a fixed pool of ``P`` (prime) keyed uniforms along its own
    arithmetic progression, ``pool[(i * step_b + offset_b) mod P]`` for element ``i``, with
    ``step_b`` and ``offset_b`` taken from ``seeds[b]``: no element repeats within a sample
    of up to ``P`` (about 4.2 million) elements, and the cost is one index computation and
    one gather per element.

    Args:
        seeds: int64 seeds, shape ``[B]`` (from :meth:`BatchKey.noise_seeds`).
        shape: Per-sample shape, e.g. ``(C, H, W)``.
        dtype: Output float dtype.

    Returns:
        ``[B, *shape]`` noise; sample ``b`` depends only on ``seeds[b]`` and the shape.
    """
    count = 1
    for size in shape:
        count *= int(size)
    step = (seeds % (_POOL_SIZE - 1) + 1).view(-1, 1)
    offset = ((seeds >> 24) % _POOL_SIZE).view(-1, 1)
    counter = torch.arange(count, device=seeds.device, dtype=torch.int64).view(1, -1)
    index = (counter * step + offset).remainder_(_POOL_SIZE)
    pool = _noise_pool(seeds.device, dtype)
    return torch.take(pool, index).view(seeds.shape[0], *shape)
