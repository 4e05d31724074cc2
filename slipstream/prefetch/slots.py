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

    def items(self, count: int) -> list[np.ndarray]:
        """Views of the first ``count`` encoded items in ``encoded`` (no copy)."""
        starts = self.offsets[:count].astype(np.int64).tolist()
        ends = (self.offsets[:count] + self.sizes[:count]).astype(np.int64).tolist()
        return [self.encoded[s:e] for s, e in zip(starts, ends, strict=True)]


@dataclass
class DecodedBatch:
    """What a decode backend hands the loader for one batch.

    Attributes:
        sample_ids: int64 ``[n]`` sample ids, in batch order (a copy).
        images: Output name -> decoded ``[n, H, W, 3]`` tensor (host or device; uint8, or
            already normalized when ``normalized``).
        normalized: The backend already applied the pipeline's normalization and dtype.
        slot: The slot whose buffers ``images`` view (the loader records its GPU copy
            fence there), or None when the backend owns the output memory.
    """

    sample_ids: np.ndarray
    images: dict[str, torch.Tensor]
    normalized: bool = False
    slot: BatchSlot | None = None


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
    with_pixels: bool = True,
) -> BatchSlot:
    """Allocate one slot.

    Args:
        batch_size: Samples per batch.
        byte_capacity: Encoded-byte buffer size per image output (the largest
            possible batch, so it never grows).
        output_sizes: ``(height, width)`` per image output.
        pin_memory: Allocate decoded pixels in page-locked memory for
            non-blocking GPU copies.
        with_pixels: Allocate the decoded-pixel buffers (a backend that decodes into its
            own output buffers, such as DALI, passes False and gets empty ones).

    Returns:
        A fresh slot.
    """
    images = {}
    for name, (height, width) in output_sizes.items():
        rows = batch_size if with_pixels else 0
        pixels = torch.empty((rows, height, width, 3), dtype=torch.uint8, pin_memory=pin_memory)
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
