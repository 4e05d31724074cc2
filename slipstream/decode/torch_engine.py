"""The torch YUV420 engine: YUV420 items decoded with torch ops on the output device.

::

    EncodedBatch ──> [decode thread: Yuv420TorchDecoder, a side CUDA stream on a GPU]
                 ──> release(batch) (its windows were packed and uploaded)
                 ──> DecodedBatch (device tensors) ──> the loader

Only each window's source rows and columns cross to the GPU
(:mod:`slipstream.decode.yuv420_torch`); the result is bit-identical to the C++ kernel. A
sample whose item or window is invalid is reported and zero-filled; the others decode.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch

from slipstream.decode.stage import DecodedBatch, EngineOptions, SampleFailure
from slipstream.decode.yuv420_torch import Yuv420TorchDecoder, Yuv420WindowError
from slipstream.native.decode import STATUS_INVALID_ARGUMENT
from slipstream.prefetch.stages import END_OF_STREAM, StageThread, take

if TYPE_CHECKING:
    from slipstream.prefetch.batch import EncodedBatch, EncodedImages
    from slipstream.prefetch.prefetcher import EpochStream

__all__ = ["TorchYuv420Engine"]


class TorchYuv420Engine:
    """Decodes YUV420 items with :class:`Yuv420TorchDecoder` on the output device.

    Args:
        options: The loader's engine options (output sizes, device, depth).
    """

    name = "torch-yuv420"
    slots_in_flight = 1  # the batch being decoded

    def __init__(self, options: EngineOptions) -> None:
        """Create the decoder (and a side stream on CUDA)."""
        self._decoder = Yuv420TorchDecoder(options.device)
        self._cuda_stream = None
        if self._decoder.device.type == "cuda":
            self._cuda_stream = torch.cuda.Stream(self._decoder.device)
        self._sizes = {name: tuple(p.crop.output_size) for name, p in options.pipelines.items()}
        self._depth = options.depth

    def batches(self, stream: EpochStream) -> Iterator[DecodedBatch]:
        """Decode the stream's batches on a background thread, in order."""
        decoded: queue.Queue = queue.Queue(maxsize=self._depth)

        def work(batch: EncodedBatch) -> DecodedBatch:
            try:
                return self.decode(batch)
            finally:
                stream.release(batch)

        thread = StageThread("slipstream-decode", iter(stream), work, decoded, stream.stop)
        thread.start()
        try:
            while True:
                item = take(decoded, stream.stop)
                if item is END_OF_STREAM:
                    return
                for image in item.images.values():
                    if image.is_cuda:  # allocated on the decode stream, used on this one
                        image.record_stream(torch.cuda.current_stream(image.device))
                yield item
        finally:
            stream.stop.set()
            thread.join()

    def decode(self, batch: EncodedBatch) -> DecodedBatch:
        """Decode every view of ``batch``; ready (synchronized) when returned."""
        if self._cuda_stream is None:
            return self._decode(batch)
        with torch.cuda.stream(self._cuda_stream):
            decoded = self._decode(batch)
        self._cuda_stream.synchronize()  # the consumer may use it on any stream
        return decoded

    def _decode(self, batch: EncodedBatch) -> DecodedBatch:
        n = batch.count
        images: dict[str, torch.Tensor] = {}
        failures: list[SampleFailure] = []
        for field, encoded in batch.images.items():
            by_size: dict[tuple[int, int], list[int]] = {}
            for k, view in enumerate(encoded.views):
                by_size.setdefault(self._sizes[view], []).append(k)
            bad: dict[int, str] = {}
            for size, ks in by_size.items():
                pixels = self._decode_views(encoded, n, ks, size, bad)
                for j, k in enumerate(ks):
                    images[encoded.views[k]] = pixels[j * n : (j + 1) * n]
            failures += [
                SampleFailure(p, field, STATUS_INVALID_ARGUMENT, m) for p, m in sorted(bad.items())
            ]
        return DecodedBatch(batch.ids(), images, failures)

    def _decode_views(
        self,
        encoded: EncodedImages,
        n: int,
        ks: list[int],
        size: tuple[int, int],
        bad: dict[int, str],
    ) -> torch.Tensor:
        """Views ``ks`` of one size as one batch ``[len(ks) * n, H, W, 3]``; fills ``bad``."""
        k = len(ks)
        columns = {
            "offsets": np.tile(encoded.offsets[:n], k),
            "heights": np.tile(encoded.shapes[:n, 0], k),
            "widths": np.tile(encoded.shapes[:n, 1], k),
            "windows": encoded.windows[ks, :n].reshape(k * n, 4),
            "flips": encoded.flips[ks, :n].reshape(k * n),
            "item_sizes": np.tile(encoded.sizes[:n], k),
        }
        while True:
            rows = np.array([r for r in range(k * n) if r % n not in bad], dtype=np.int64)
            if len(rows) == 0:
                device = self._decoder.device
                return torch.zeros((k * n, *size, 3), dtype=torch.uint8, device=device)
            try:
                decoded = self._decoder(
                    encoded.data,
                    columns["offsets"][rows],
                    columns["heights"][rows],
                    columns["widths"][rows],
                    np.ascontiguousarray(columns["windows"][rows]),
                    columns["flips"][rows],
                    size,
                    item_sizes=columns["item_sizes"][rows],
                )
            except Yuv420WindowError as error:  # that sample fails, the others decode
                bad[int(rows[error.position]) % n] = str(error)
                continue
            pixels = decoded.permute(0, 2, 3, 1)  # [rows, H, W, 3], contiguous
            if len(rows) == k * n:
                return pixels
            out = torch.zeros((k * n, *size, 3), dtype=pixels.dtype, device=pixels.device)
            out[torch.from_numpy(rows).to(pixels.device)] = pixels
            return out
