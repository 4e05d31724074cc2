"""Sampling: epoch order, keyed randomness and crop windows (pure numpy)."""

from slipstream.sampling.crops import (
    center_crop,
    flips,
    random_resized_crop,
    resize_short_center_crop,
)
from slipstream.sampling.keyed_random import Stream, bits, uniform
from slipstream.sampling.order import epoch_order, num_batches

__all__ = [
    "Stream",
    "bits",
    "center_crop",
    "epoch_order",
    "flips",
    "num_batches",
    "random_resized_crop",
    "resize_short_center_crop",
    "uniform",
]
