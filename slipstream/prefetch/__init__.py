"""Background gathering of batch bytes into a ring of reused buffers."""

from slipstream.prefetch.slots import BatchSlot, DecodedBatch, ImageSlot, allocate_slot
from slipstream.prefetch.stages import END_OF_STREAM, StageError, StageThread, take

__all__ = [
    "END_OF_STREAM",
    "BatchSlot",
    "DecodedBatch",
    "ImageSlot",
    "StageError",
    "StageThread",
    "allocate_slot",
    "take",
]
