"""Sampling: epoch order, keyed randomness and crop windows (pure numpy)."""

from slipstream.sampling.crops import (
    center_crop,
    flips,
    random_resized_crop,
    resize_short_center_crop,
)
from slipstream.sampling.keyed_random import Stream, bits, uniform
from slipstream.sampling.order import ORDERS, epoch_order, num_batches, resolve_order
from slipstream.sampling.quasi_random import quasi_random_permutation

__all__ = [
    "ORDERS",
    "Stream",
    "bits",
    "center_crop",
    "epoch_order",
    "flips",
    "num_batches",
    "quasi_random_permutation",
    "random_resized_crop",
    "resize_short_center_crop",
    "resolve_order",
    "uniform",
]
