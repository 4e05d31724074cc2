"""The native decode stage: fills a batch slot's pixels with the C++ thread pool.

::

    gathered slots -> [decode thread: NativeDecoder, GIL released] -> decoded slots
                   -> DecodedBatch (views of the slot's pixels) -> the loader

A slot goes back to the free queue when the consumer asks for the next batch: on the
CPU its pixels are the batch the user holds (valid until the next one is drawn, as in
FFCV); on a GPU the loader's copy fence in the slot guards its reuse.

With ``decode_device`` set (YUV420 items only), the decode thread instead runs the
vectorized torch decode (:mod:`slipstream.yuv420_torch`) on that device: only each window's
source rows and columns are packed (pinned) and copied there, and the batch never exists
on the host::

    gathered slots -> [decode thread: Yuv420TorchDecoder on a side CUDA stream]
                   -> DecodedBatch (device tensors; the slot's bytes are free again)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np
import torch

from slipstream.native.decode import DecodeError, NativeDecoder
from slipstream.prefetch.slots import BatchSlot, DecodedBatch
from slipstream.prefetch.stages import END_OF_STREAM, StageThread, take
from slipstream.yuv420_torch import Yuv420TorchDecoder, Yuv420WindowError


class SampleDecodeError(RuntimeError):
    """A sample of a batch could not be decoded; the message names it.

    Attributes:
        failures: ``(sample_id, description, message)`` for every failed sample.
    """

    def __init__(self, field: str, failures: list[tuple[int, str, str]]) -> None:
        """Build the message from the failures."""
        lines = [f"sample {sid} ({desc}): {msg}" for sid, desc, msg in failures]
        super().__init__(f"could not decode field {field!r}: " + "; ".join(lines))
        self.failures = failures


class NativeBackend:
    """Decodes every image output of a slot with :class:`NativeDecoder`.

    Args:
        num_threads: Decoder threads (the pool is owned by the decoder).
        fields: Output name -> dataset image field, for error messages.
        describe: ``sample_id -> str`` naming a sample (its source path when known).
        image_format: How the gathered items are stored: ``"jpeg"`` or ``"yuv420"``.
        image_meta: Output name -> its items' ``height`` / ``width`` arrays (one entry per
            sample; needed for ``"yuv420"``, whose items carry no header).
        groups: Outputs decoded together from their first member's bytes (default: each
            output alone).
        decode_device: Decode ``"yuv420"`` items with the torch path on this device (the
            batch's images are then tensors there) instead of the C++ kernels into the
            slot's host buffers (None, the default).
        output_sizes: Output name -> ``(height, width)`` (needed with ``decode_device``).
    """

    def __init__(
        self,
        num_threads: int,
        fields: dict[str, str],
        describe: Callable[[int], str],
        image_format: str = "jpeg",
        image_meta: dict[str, dict[str, np.ndarray]] | None = None,
        groups: list[tuple[str, ...]] | None = None,
        decode_device: torch.device | str | None = None,
        output_sizes: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        """Create the decoder pool (or the torch decoder)."""
        if image_format != "jpeg" and image_meta is None:
            raise ValueError(f"image_format={image_format!r} needs image_meta (true sizes)")
        self._torch = None
        self._stream = None
        if decode_device is not None:
            if image_format != "yuv420" or output_sizes is None:
                raise ValueError(
                    "the torch decode reads image_format='yuv420' items and needs output_sizes, "
                    f"got image_format={image_format!r}"
                )
            self._torch = Yuv420TorchDecoder(decode_device)
            if self._torch.device.type == "cuda":
                self._stream = torch.cuda.Stream(self._torch.device)
        self._output_sizes = output_sizes or {}
        self._decoder = NativeDecoder(num_threads) if self._torch is None else None
        self._fields = fields
        self._describe = describe
        self._format = image_format
        self._meta = image_meta or {}
        self._groups = groups

    def batches(
        self, gathered: queue.Queue, free: queue.Queue, stop: threading.Event, depth: int
    ) -> Iterator[DecodedBatch]:
        """Decode the gathered slots of one epoch on a background thread, in order.

        Args:
            gathered: Filled slots from the gather stage, ending with ``END_OF_STREAM``.
            free: Where a slot goes back once its batch was consumed.
            stop: Set by the loader to stop the stage (the generator sets it on exit).
            depth: Decoded batches kept ready ahead of the consumer.

        Yields:
            One :class:`DecodedBatch` per slot, viewing the slot's pixel buffers.
        """
        decoded: queue.Queue = queue.Queue(maxsize=depth)
        thread = StageThread("slipstream-decode", gathered, self.decode, decoded, stop)
        thread.start()
        previous: BatchSlot | None = None
        try:
            while True:
                if previous is not None:
                    free.put(previous)
                    previous = None
                item = take(decoded, stop)
                if item is END_OF_STREAM:
                    return
                if isinstance(item, tuple):  # torch decode: (slot, device images)
                    slot, images = item
                    free.put(slot)  # its bytes were uploaded and the upload finished
                    for image in images.values():
                        if image.is_cuda:  # allocated on the decode stream, used on this one
                            image.record_stream(torch.cuda.current_stream(image.device))
                    yield DecodedBatch(slot.sample_ids[: slot.count].copy(), images)
                    continue
                slot, n = item, item.count
                images = {name: image.pixels[:n] for name, image in slot.images.items()}
                previous = slot
                yield DecodedBatch(slot.sample_ids[:n].copy(), images, slot=slot)
        finally:
            stop.set()
            thread.join()

    def decode(self, slot: BatchSlot) -> BatchSlot | tuple[BatchSlot, dict[str, torch.Tensor]]:
        """Decode the slot's encoded bytes into its pixel buffers, in place.

        Outputs of one decode group (same image field and output size) are decoded
        together from their lead's gathered bytes (see
        :func:`slipstream.pipelines.spec.decode_groups`). With a torch ``decode_device``
        returns ``(slot, images)``: the ``[n, H, W, 3]`` device tensors (views of
        channels-last ``[n, 3, H, W]`` batches), ready when returned.
        """
        slot.wait_until_reusable()
        if self._torch is not None:
            if self._stream is None:
                return slot, self._decode_torch(slot)
            with torch.cuda.stream(self._stream):
                images = self._decode_torch(slot)
            self._stream.synchronize()  # the consumer may use them on any stream
            return slot, images
        n = slot.count
        ids = slot.sample_ids[:n]
        for group in self._groups or [(name,) for name in slot.images]:
            lead = slot.images[group[0]]
            heights = widths = None
            if self._format != "jpeg":
                meta = self._meta[group[0]]
                heights = np.take(meta["height"], ids).astype(np.int32)
                widths = np.take(meta["width"], ids).astype(np.int32)
            images = [slot.images[name] for name in group]
            if len(group) == 1:
                windows, flips = lead.windows[:n], lead.flips[:n]
            else:
                windows = np.stack([image.windows[:n] for image in images], axis=1)
                flips = np.stack([image.flips[:n] for image in images], axis=1)
            try:
                self._decoder.decode_views_batch(
                    lead.encoded,
                    lead.offsets[:n],
                    lead.sizes[:n],
                    windows,
                    flips,
                    [image.pixels_np[:n] for image in images],
                    self._format,
                    heights,
                    widths,
                )
            except DecodeError as error:
                failures = []
                for position, message in error.failures:
                    sample_id = int(slot.sample_ids[position])
                    failures.append((sample_id, self._describe(sample_id), message))
                raise SampleDecodeError(self._fields[group[0]], failures) from error
        return slot

    def _decode_torch(self, slot: BatchSlot) -> dict[str, torch.Tensor]:
        """Torch decode of every output; a group's views of one size run as one batch."""
        n = slot.count
        ids = slot.sample_ids[:n]
        images: dict[str, torch.Tensor] = {}
        for group in self._groups or [(name,) for name in slot.images]:
            lead = slot.images[group[0]]
            meta = self._meta[group[0]]
            heights = np.take(meta["height"], ids).astype(np.int32)
            widths = np.take(meta["width"], ids).astype(np.int32)
            by_size: dict[tuple[int, int], list[str]] = {}
            for name in group:
                by_size.setdefault(tuple(self._output_sizes[name]), []).append(name)
            for size, names in by_size.items():
                k = len(names)
                windows = np.concatenate([slot.images[name].windows[:n] for name in names])
                flips = np.concatenate([slot.images[name].flips[:n] for name in names])
                try:
                    batch = self._torch(
                        lead.encoded,
                        np.tile(lead.offsets[:n], k),
                        np.tile(heights, k),
                        np.tile(widths, k),
                        windows,
                        flips,
                        size,
                        item_sizes=np.tile(lead.sizes[:n], k),
                    )
                except Yuv420WindowError as error:
                    sample_id = int(ids[error.position % n])
                    raise SampleDecodeError(
                        self._fields[group[0]],
                        [(sample_id, self._describe(sample_id), str(error))],
                    ) from error
                pixels = batch.permute(0, 2, 3, 1)  # [k * n, H, W, 3], contiguous
                for view, name in enumerate(names):
                    images[name] = pixels[view * n : (view + 1) * n]
        return images
