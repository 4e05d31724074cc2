"""``EncodedBatch``: what the Prefetcher hands every decode engine, and its DALI flattening.

One batch of stored items, gathered into buffers allocated once and reused (a ring of
slots owned by :class:`~slipstream.prefetch.prefetcher.Prefetcher`)::

    EncodedBatch                          count = n samples (<= capacity B)
      sample_ids   int64 [B]
      images: image field -> EncodedImages (the Python twin of csrc's EncodedImage, batched)
        format     "jpeg" | "yuv420" | "raw" | "mixed"   what the field's items are
        formats    uint8 [B] | None        "raw" / "mixed" only: each item's format code
                                           (0 JPEG, 2 raw RGB: slipstream.cache.format), the
                                           value the one C++ dispatch reads per sample
        data       uint8 [capacity]        items back to back
        offsets    uint64 [B]              item i = data[offsets[i] : offsets[i] + sizes[i]]
        sizes      uint64 [B]
        shapes     int32 [B, 2]            true (height, width) of each image
        views      K output names          decoded from these items (multi-crop: K > 1)
        windows    int32 [K, B, 4]         (y, x, h, w) per view and sample
        flips      uint8 [K, B]
        corrupt    uint8 [B]               1: the item's checksum differed (its first bytes
                                           are zeroed, so every decoder rejects it)

Windows and flips are view-major, so one view's rows are contiguous (what a per-view DALI
input reads without a copy); :meth:`EncodedImages.sample_windows` gives the sample-major
``[n, K, 4]`` layout the multi-view kernels take.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

PER_ITEM_FORMATS = ("raw", "mixed")
"""Field formats whose items carry a per-sample format code (``EncodedImages.formats``)."""


@dataclass
class EncodedImages:
    """One image field's stored items of a batch, with the crop windows of every view."""

    field: str
    format: str
    views: tuple[str, ...]
    data: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    shapes: np.ndarray
    windows: np.ndarray
    flips: np.ndarray
    corrupt: np.ndarray | None = None
    formats: np.ndarray | None = None

    def decoder_format(self) -> str:
        """The kernels' batch format: ``"jpeg"`` where per-item ``formats`` decide."""
        return "jpeg" if self.formats is not None else self.format

    def corrupt_rows(self, count: int) -> np.ndarray:
        """int64 positions among the first ``count`` items whose checksum differed."""
        if self.corrupt is None:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.corrupt[:count])

    def items(self, count: int) -> list[np.ndarray]:
        """Views of the first ``count`` items in ``data`` (no copy)."""
        starts = self.offsets[:count].astype(np.int64).tolist()
        ends = (self.offsets[:count] + self.sizes[:count]).astype(np.int64).tolist()
        return [self.data[s:e] for s, e in zip(starts, ends, strict=True)]

    def sample_windows(self, count: int, views: list[int] | None = None) -> np.ndarray:
        """int32 ``[count, K, 4]`` windows (sample-major; a copy) of these views (default all)."""
        chosen = self.windows[:, :count] if views is None else self.windows[views, :count]
        return np.ascontiguousarray(chosen.transpose(1, 0, 2))

    def sample_flips(self, count: int, views: list[int] | None = None) -> np.ndarray:
        """uint8 ``[count, K]`` flips (sample-major; a copy) of these views (default all)."""
        chosen = self.flips[:, :count] if views is None else self.flips[views, :count]
        return np.ascontiguousarray(chosen.T)


@dataclass
class EncodedBatch:
    """One batch in flight: its sample ids and each image field's gathered items.

    Attributes:
        sample_ids: int64 ``[B]``; the first ``count`` are this batch's, in batch order.
        images: Image field -> its :class:`EncodedImages`.
        count: Samples in this batch.
        epoch: The epoch it belongs to.
        index: Its position in the epoch.
    """

    sample_ids: np.ndarray
    images: dict[str, EncodedImages]
    count: int = 0
    epoch: int = 0
    index: int = 0

    def ids(self) -> np.ndarray:
        """The batch's sample ids (a copy, safe to keep after the batch is released)."""
        return self.sample_ids[: self.count].copy()


def allocate_batch(
    batch_size: int,
    fields: dict[str, tuple[str, tuple[str, ...], int]],
) -> EncodedBatch:
    """Allocate one reusable batch.

    Args:
        batch_size: Samples per batch.
        fields: Image field -> ``(format, views, byte capacity)``; the capacity holds the
            largest possible batch of its items, so the buffer never grows. A format of
            :data:`PER_ITEM_FORMATS` gets a per-sample ``formats`` array.

    Returns:
        An empty batch (``count == 0``).
    """
    images = {}
    for name, (image_format, views, capacity) in fields.items():
        k = len(views)
        images[name] = EncodedImages(
            field=name,
            format=image_format,
            views=tuple(views),
            data=np.empty(capacity, dtype=np.uint8),
            offsets=np.zeros(batch_size, dtype=np.uint64),
            sizes=np.zeros(batch_size, dtype=np.uint64),
            shapes=np.zeros((batch_size, 2), dtype=np.int32),
            windows=np.zeros((k, batch_size, 4), dtype=np.int32),
            flips=np.zeros((k, batch_size), dtype=np.uint8),
            corrupt=np.zeros(batch_size, dtype=np.uint8),
            formats=(
                np.zeros(batch_size, dtype=np.uint8) if image_format in PER_ITEM_FORMATS else None
            ),
        )
    return EncodedBatch(sample_ids=np.zeros(batch_size, dtype=np.int64), images=images)


def dali_arrays(batch: EncodedBatch) -> dict[str, object]:
    """The batch flattened for a DALI ``external_source``: named per-sample arrays, in order.

    Per image field: ``jpegs/<field>`` (or ``yuv420/<field>``, then ``sizes/<field>``, int32
    ``[2]`` true height and width per sample: a YUV420 item has no header; a field with raw
    RGB items: ``jpegs/<field>``, ``formats/<field>``, uint8 format code per sample, and
    ``sizes/<field>``), then per view
    ``windows/<view>`` (int32 ``[4]``) and ``flips/<view>`` (uint8 scalar). Every array is a
    view into the batch's buffers (no copy): the batch must stay untouched while DALI may
    read it.

    Args:
        batch: A gathered batch.

    Returns:
        Output name -> a list of per-sample arrays (items) or one ``[n, ...]`` array.
    """
    n = batch.count
    arrays: dict[str, object] = {}
    for name, images in batch.images.items():
        if images.formats is not None:  # per-item formats: JPEG and raw RGB items
            arrays[f"jpegs/{name}"] = images.items(n)
            arrays[f"formats/{name}"] = images.formats[:n]
            arrays[f"sizes/{name}"] = images.shapes[:n]
        elif images.format == "jpeg":
            arrays[f"jpegs/{name}"] = images.items(n)
        else:
            arrays[f"{images.format}/{name}"] = images.items(n)
            arrays[f"sizes/{name}"] = images.shapes[:n]
        for k, view in enumerate(images.views):
            arrays[f"windows/{view}"] = images.windows[k, :n]
            arrays[f"flips/{view}"] = images.flips[k, :n]
    return arrays


def sub_batch(batch: EncodedBatch, start: int, stop: int) -> EncodedBatch:
    """A view of rows ``[start, stop)`` of ``batch`` as a batch of its own (no byte copied).

    Every per-sample array is sliced (ids, offsets, sizes, shapes, and the view-major
    windows and flips along their sample axis); the item bytes (``data``) are shared, the
    offsets still point into them. Writing to the view writes to ``batch``. Used to hand
    two engines the two parts of one batch (:class:`~slipstream.decode.hybrid.SplitEngine`).

    Args:
        batch: A gathered batch.
        start: First row.
        stop: One past the last row (``start <= stop <= batch.count``).

    Returns:
        A batch with ``count == stop - start``, the same epoch and index.

    Raises:
        ValueError: The rows are not within the batch.
    """
    if not 0 <= start <= stop <= batch.count:
        raise ValueError(f"rows [{start}, {stop}) are not within a batch of {batch.count}")
    images = {}
    for name, images_of_field in batch.images.items():
        changes: dict[str, np.ndarray] = {}
        for spec in dataclasses.fields(images_of_field):
            value = getattr(images_of_field, spec.name)
            if spec.name == "data" or not isinstance(value, np.ndarray):
                continue
            sample_axis = 1 if spec.name in ("windows", "flips") else 0  # view-major
            changes[spec.name] = value[:, start:stop] if sample_axis else value[start:stop]
        images[name] = dataclasses.replace(images_of_field, **changes)
    return EncodedBatch(
        sample_ids=batch.sample_ids[start:stop],
        images=images,
        count=stop - start,
        epoch=batch.epoch,
        index=batch.index,
    )
