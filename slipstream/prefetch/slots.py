"""Preallocated batch slots and the ring that recycles them.

A slot holds everything one batch needs on the host: the gathered encoded bytes of
each image field, the crop windows and flip flags, and the decoded uint8 pixels.
Slots are allocated once; the hot loop only fills them. A slot travels
gather thread -> decode thread -> consumer and back to the loader's free queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ImageSlot:
    """Host buffers of one image output of a batch."""

    encoded: np.ndarray  # uint8 [capacity]: the batch's encoded bytes, back to back
    offsets: np.ndarray  # uint64 [B]
    sizes: np.ndarray  # uint64 [B]
    windows: np.ndarray  # int32 [B, 4]
    flips: np.ndarray  # uint8 [B]
    pixels: torch.Tensor  # uint8 [B, H, W, 3] (pinned when the output is on a GPU)
    pixels_np: np.ndarray  # numpy view of ``pixels`` for the decoder


@dataclass
class BatchSlot:
    """One batch in flight: sample ids, image buffers, and a GPU copy fence."""

    sample_ids: np.ndarray  # int64 [B]
    images: dict[str, ImageSlot]
    count: int = 0
    epoch: int = 0
    batch_index: int = 0
    copy_done: torch.cuda.Event | None = field(default=None)

    def wait_until_reusable(self) -> None:
        """Block until an earlier host-to-device copy out of this slot finished."""
        if self.copy_done is not None:
            self.copy_done.synchronize()
            self.copy_done = None


def allocate_slot(
    batch_size: int,
    byte_capacity: dict[str, int],
    output_sizes: dict[str, tuple[int, int]],
    *,
    pin_memory: bool,
) -> BatchSlot:
    """Allocate one slot.

    Args:
        batch_size: Samples per batch.
        byte_capacity: Encoded-byte buffer size per image output (the largest
            possible batch, so it never grows).
        output_sizes: ``(height, width)`` per image output.
        pin_memory: Allocate decoded pixels in page-locked memory for
            non-blocking GPU copies.

    Returns:
        A fresh slot.
    """
    images = {}
    for name, (height, width) in output_sizes.items():
        pixels = torch.empty(
            (batch_size, height, width, 3), dtype=torch.uint8, pin_memory=pin_memory
        )
        images[name] = ImageSlot(
            encoded=np.empty(byte_capacity[name], dtype=np.uint8),
            offsets=np.zeros(batch_size, dtype=np.uint64),
            sizes=np.zeros(batch_size, dtype=np.uint64),
            windows=np.zeros((batch_size, 4), dtype=np.int32),
            flips=np.zeros(batch_size, dtype=np.uint8),
            pixels=pixels,
            pixels_np=pixels.numpy(),
        )
    return BatchSlot(sample_ids=np.zeros(batch_size, dtype=np.int64), images=images)
