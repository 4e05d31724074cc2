"""Background gathering of batch bytes into a ring of reused buffers."""

from slipstream.prefetch.gather import gather_bytes
from slipstream.prefetch.slots import BatchSlot, ImageSlot, allocate_slot
from slipstream.prefetch.stages import END_OF_STREAM, StageError, StageThread

__all__ = [
    "END_OF_STREAM",
    "BatchSlot",
    "ImageSlot",
    "StageError",
    "StageThread",
    "allocate_slot",
    "gather_bytes",
]
