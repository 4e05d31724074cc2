"""The native engine: slipstream's C++ kernels on their own thread pool.

::

    EncodedBatch ──> [decode thread: NativeDecoder, GIL released] ──> pixel buffers
                 ──> release(batch) (its bytes are decoded)  ──> DecodedBatch ──> the loader

Pixels go to a small ring of reused host buffers (pinned when the output is on a GPU). On
the CPU the kernel writes each output's final values itself (its dtype, normalized: the
fused float output, :data:`slipstream.native.decode.PIXEL_DTYPES`) and the batch is
``normalized``; for a GPU only uint8 crosses the bus (4x fewer bytes than float32) and the
loader normalizes there. A
buffer goes back to the ring when the consumer asks for the next batch: on the CPU its
pixels are the batch the user holds (valid until the next one is drawn, as in FFCV); on a
GPU the loader's copy fence in the buffer guards its reuse. Every format the kernels read
(JPEG, YUV420, raw RGB: per sample) goes through the one C++ dispatch; a failed sample is
reported, zero-filled.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from slipstream.decode.full_resolution import FAILURE_CODE, FullResolutionDecoder, check_ragged
from slipstream.decode.stage import DecodedBatch, EngineOptions, SampleFailure
from slipstream.native.decode import NativeDecoder
from slipstream.prefetch.stages import END_OF_STREAM, StageThread, get_until_stopped, take

if TYPE_CHECKING:
    from slipstream.pipelines.spec import ImagePipeline
    from slipstream.prefetch.batch import EncodedBatch, EncodedImages
    from slipstream.prefetch.prefetcher import EpochStream

__all__ = ["NativeEngine", "OutputMode", "PixelBuffers", "explain_failure"]


_TORCH_DTYPES = {
    "uint8": torch.uint8,
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


@dataclass(frozen=True)
class OutputMode:
    """What the kernel writes for one output: its dtype and (float only) normalization.

    Attributes:
        dtype: ``"uint8"``, ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        mean: Per-channel mean of ``x / 255``, or None (a float output is a plain cast).
        std: Per-channel standard deviation of ``x / 255``, or None.
    """

    dtype: str = "uint8"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def of(cls, pipeline: ImagePipeline, fused: bool) -> OutputMode:
        """The pipeline's final values when ``fused`` (CPU output), else plain uint8."""
        if not fused or pipeline.dtype == "uint8":
            return cls()
        if pipeline.normalize is None:
            return cls(pipeline.dtype)
        return cls(pipeline.dtype, tuple(pipeline.normalize.mean), tuple(pipeline.normalize.std))


def _numpy_view(pixels: torch.Tensor) -> np.ndarray:
    """A numpy view of a buffer (bfloat16, which numpy lacks, as int16 bits)."""
    if pixels.dtype == torch.bfloat16:
        return pixels.view(torch.int16).numpy()
    return pixels.numpy()


@dataclass
class PixelBuffers:
    """Decoded pixels of one batch: ``[B, H, W, 3]`` per output, allocated once.

    uint8, or the output's dtype when the kernel writes final values (the CPU).
    """

    pixels: dict[str, torch.Tensor]
    arrays: dict[str, np.ndarray]
    copy_done: torch.cuda.Event | None = None

    @classmethod
    def allocate(
        cls,
        batch_size: int,
        sizes: dict[str, tuple[int, int]],
        pin_memory: bool,
        dtypes: dict[str, str] | None = None,
    ) -> PixelBuffers:
        """Buffers for ``batch_size`` samples of each output size (pinned if asked).

        Args:
            batch_size: Samples per batch.
            sizes: Output name -> ``(height, width)``.
            pin_memory: Pin the buffers (a GPU copies out of them).
            dtypes: Output name -> dtype name (default: uint8 for every output).
        """
        dtypes = dtypes or {}
        pixels = {
            name: torch.empty(
                (batch_size, h, w, 3),
                dtype=_TORCH_DTYPES[dtypes.get(name, "uint8")],
                pin_memory=pin_memory,
            )
            for name, (h, w) in sizes.items()
        }
        return cls(pixels, {name: _numpy_view(p) for name, p in pixels.items()})

    def wait_until_reusable(self) -> None:
        """Block until an earlier host-to-device copy out of these buffers finished."""
        if self.copy_done is not None:
            self.copy_done.synchronize()
            self.copy_done = None


def decode_images(
    decoder: NativeDecoder,
    images: EncodedImages,
    count: int,
    outs: list[np.ndarray],
    mode: OutputMode | None = None,
    views: list[int] | None = None,
) -> list[tuple[int, int, str]]:
    """Decode views of ``count`` items into ``outs`` (one ``[B, H, W, 3]`` per view).

    Args:
        decoder: The decoder (its thread pool).
        images: The field's items, windows and flips.
        count: Samples to decode.
        outs: One buffer per decoded view, of ``mode``'s dtype.
        mode: What the kernel writes (default uint8).
        views: Indices of the views to decode (default: all of ``images.views``).

    Returns:
        ``(position, status code, message)`` of each sample that failed (zero-filled).
    """
    mode = mode or OutputMode()
    return decoder.decode_views_batch(
        images.data,
        images.offsets[:count],
        images.sizes[:count],
        images.sample_windows(count, views),
        images.sample_flips(count, views),
        [out[:count] for out in outs],
        images.decoder_format(),
        np.ascontiguousarray(images.shapes[:count, 0]),  # YUV420 and raw items have no header:
        np.ascontiguousarray(images.shapes[:count, 1]),  # their true size travels with them
        out_dtype=mode.dtype,
        mean=mode.mean,
        std=mode.std,
        formats=None if images.formats is None else images.formats[:count],
    )


def explain_failure(
    images: EncodedImages, position: int, output_sizes: dict[str, tuple[int, int]]
) -> tuple[int, str]:
    """``(status code, message)`` of one sample, decoded alone by the C++ kernel.

    Engines whose decoder reports a status code without a message (the DALI operator) ask
    the same kernel for the words, from the same bytes and windows.
    """
    offset, size = int(images.offsets[position]), int(images.sizes[position])
    one = _single(images, offset, size, position)
    outs = [np.empty((1, *output_sizes[view], 3), dtype=np.uint8) for view in images.views]
    failures = decode_images(NativeDecoder(1), one, 1, outs)
    if not failures:
        return 0, ""
    return failures[0][1], failures[0][2]


def _single(images: EncodedImages, offset: int, size: int, position: int) -> EncodedImages:
    from slipstream.prefetch.batch import EncodedImages

    return EncodedImages(
        field=images.field,
        format=images.format,
        views=images.views,
        data=images.data[offset : offset + size],
        offsets=np.zeros(1, dtype=np.uint64),
        sizes=np.full(1, size, dtype=np.uint64),
        shapes=images.shapes[position : position + 1],
        windows=np.ascontiguousarray(images.windows[:, position : position + 1]),
        flips=np.ascontiguousarray(images.flips[:, position : position + 1]),
        formats=None if images.formats is None else images.formats[position : position + 1],
    )


class NativeEngine:
    """Decodes every image output of a batch with :class:`NativeDecoder`.

    Args:
        options: The loader's engine options (output sizes, batch size, device: a CUDA
            device pins the pixel buffers, decoder threads, depth).
    """

    name = "native"
    slots_in_flight = 1  # the batch being decoded

    def __init__(self, options: EngineOptions) -> None:
        """Create the decoder pool (the pixel buffers are allocated on first use)."""
        self._decoder = NativeDecoder(options.num_threads)
        # Full-resolution outputs (DecodeOnly, ...): lists of per-sample tensors, no buffers.
        self._ragged = check_ragged(options.pipelines, options.image_format)
        self._full = FullResolutionDecoder(options.num_threads) if self._ragged else None
        self._sizes = {
            name: p.crop.output_size
            for name, p in options.pipelines.items()
            if name not in self._ragged
        }
        self._batch_size = options.batch_size
        self._pin = options.device.type == "cuda"
        # On the CPU the kernel writes every output's final values (fused float output).
        self._fused = options.device.type == "cpu"
        self._modes = {name: OutputMode.of(p, self._fused) for name, p in options.pipelines.items()}
        self._depth = options.depth
        self._buffers: list[PixelBuffers] = []

    def batches(self, stream: EpochStream) -> Iterator[DecodedBatch]:
        """Decode the stream's batches on a background thread, in order."""
        if not self._buffers:  # + the one being decoded and the one the user holds
            self._buffers = [
                PixelBuffers.allocate(
                    self._batch_size,
                    self._sizes,
                    self._pin,
                    {name: mode.dtype for name, mode in self._modes.items()},
                )
                for _ in range(self._depth + 2)
            ]
        free: queue.Queue = queue.Queue()
        for buffers in self._buffers:
            free.put(buffers)
        decoded: queue.Queue = queue.Queue(maxsize=self._depth)

        def work(batch: EncodedBatch) -> DecodedBatch:
            buffers = get_until_stopped(free, stream.stop)
            try:
                return self.decode(batch, buffers)
            finally:
                stream.release(batch)

        thread = StageThread("slipstream-decode", iter(stream), work, decoded, stream.stop)
        thread.start()
        held: PixelBuffers | None = None
        try:
            while True:
                if held is not None:
                    free.put(held)
                item = take(decoded, stream.stop)
                if item is END_OF_STREAM:
                    return
                held = item.host
                yield item
        finally:
            stream.stop.set()
            thread.join()

    def close(self) -> None:
        """Release the pixel buffers (pinned memory on a GPU machine); reallocated on use."""
        self._buffers = []
        if self._full is not None:
            self._full.close()
            self._full = FullResolutionDecoder(self._decoder.num_threads)

    def decode(self, batch: EncodedBatch, buffers: PixelBuffers) -> DecodedBatch:
        """Decode every view of ``batch`` into ``buffers``."""
        buffers.wait_until_reusable()
        n = batch.count
        failures = []
        ragged: dict[str, list] = {}
        for field, images in batch.images.items():
            # One call per output mode (usually one): the views of a call share its decodes.
            groups: dict[OutputMode, list[int]] = {}
            full: list[str] = []
            for k, view in enumerate(images.views):
                if view in self._ragged:
                    full.append(view)
                else:
                    groups.setdefault(self._modes[view], []).append(k)
            failed: dict[int, tuple[int, str]] = {}
            for view in full:
                values, errors = self._full.decode(images, n, self._ragged[view])
                ragged[view] = values
                for position, message in errors:
                    failed.setdefault(position, (FAILURE_CODE, message))
            for mode, ks in groups.items():
                outs = [buffers.arrays[images.views[k]] for k in ks]
                chosen = None if len(ks) == len(images.views) else ks
                for position, code, message in decode_images(
                    self._decoder, images, n, outs, mode, chosen
                ):
                    failed.setdefault(position, (code, message))
            for position in sorted(failed):
                code, message = failed[position]
                failures.append(SampleFailure(position, field, code, message))
        views = {name: pixels[:n] for name, pixels in buffers.pixels.items()}
        views.update(ragged)
        return DecodedBatch(batch.ids(), views, failures, normalized=self._fused, host=buffers)
