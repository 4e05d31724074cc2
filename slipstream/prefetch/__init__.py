"""The prefetch stage: epoch order, crop windows and gathered bytes in a ring of reused batches.

:class:`Prefetcher` owns it; every decode engine reads its :class:`EncodedBatch` stream.
"""

from slipstream.prefetch.batch import EncodedBatch, EncodedImages, allocate_batch, dali_arrays
from slipstream.prefetch.prefetcher import EpochStream, Prefetcher
from slipstream.prefetch.stages import END_OF_STREAM, StageError, StageThread, take
from slipstream.prefetch.world import resolve_world

__all__ = [
    "END_OF_STREAM",
    "EncodedBatch",
    "EncodedImages",
    "EpochStream",
    "Prefetcher",
    "StageError",
    "StageThread",
    "allocate_batch",
    "dali_arrays",
    "resolve_world",
    "take",
]
