"""The DALI engines (``dali-cpu``, ``dali-mixed``): one DALI pipeline fed by the Prefetcher.

::

    BatchFeed (external_source, batch, no_copy, cycle="raise"): dali_arrays(batch) + ids
      per image field: jpegs/<field> | yuv420/<field>, sizes/<field>
                       | jpegs/<field>, formats/<field>, sizes/<field> (raw RGB items);
                       windows/<view>, flips/<view> per view
        "cpu":   fn.slipstream_decode_crop(items, windows, size, flip, status=True
                 [, format="yuv420" | item_format=formats, image_size=sizes]
                 [, dtype, mean, std: CPU output]);
                 the views of one output size (and mode) as one call with [K, 4] windows
                 (view k = output[k]) [uint8, .gpu() on a GPU]
        "mixed": per view fn.decoders.image_slice | image_crop (nvJPEG, NvjpegOptions)
                 -> fn.resize (antialiased)
                 -> fn.crop_mirror_normalize (flip, normalization, cast; HWC)
      -> DALIGenericIterator -> {view: [n, H, W, 3], status/<i>: [n], "ids": [n]}

The CPU operator returns an int32 status per sample instead of raising across DALI: a
failed sample is zero-filled and reported (its message comes from the same C++ kernel,
asked again for that one sample), so ``on_error`` works the same as on the native engine.

A batch stays untouched while DALI may read it (``no_copy``): it is pending from the moment
it is fed until the iterator returned the outputs of its iteration, then released. The same
pipeline serves every epoch, reset when the next epoch's stream is attached. A ``break``
ends the feed early and drains the (at most ``PREFETCH_QUEUE_DEPTH``) batches DALI already
runs, so the pipeline is at an epoch end, ready for the next. An error inside DALI drops the
pipeline: its pending batches are abandoned (never reused) and the next epoch builds anew.
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from nvidia.dali import Pipeline, fn, pipeline_def, types
from nvidia.dali import backend as dali_backend
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from slipstream.dali.ops import NvjpegOptions, decode_crop, external_source, slice_decode_resize
from slipstream.decode.errors import BatchDecodeError, NoDecodeEngineError
from slipstream.decode.native import OutputMode, explain_failure
from slipstream.decode.stage import DecodedBatch, EngineOptions, SampleFailure
from slipstream.prefetch.batch import PER_ITEM_FORMATS, EncodedBatch, allocate_batch, dali_arrays

if TYPE_CHECKING:
    from slipstream.pipelines.spec import ImagePipeline
    from slipstream.prefetch.prefetcher import EpochStream

__all__ = [
    "MMAP_THRESHOLD",
    "PREFETCH_QUEUE_DEPTH",
    "DaliEngine",
    "fix_malloc_thresholds",
    "normalized_images",
]

PREFETCH_QUEUE_DEPTH = 2
"""Batches DALI runs ahead of the consumer (each holds one batch of the stream)."""

# crop_mirror_normalize output types; bfloat16 is cast by torch afterwards.
_DALI_DTYPES = {
    "uint8": types.UINT8,
    "float32": types.FLOAT,
    "float16": types.FLOAT16,
    "bfloat16": types.FLOAT,
}


def normalized_images(
    jpegs: Any,
    windows: Any,
    flips: Any,
    pipeline: ImagePipeline,
    decoder_device: str,
    nvjpeg: NvjpegOptions | None = None,
) -> Any:
    """The nvJPEG image graph of one output: region decode, resize, then one fused CMN.

    Flip, normalization (``(x / 255 - mean) / std``) and the cast happen in a single
    ``crop_mirror_normalize`` that keeps the ``HWC`` layout (the loader permutes to
    channels-last ``[B, 3, H, W]``).

    Args:
        jpegs: DataNode of encoded bytes.
        windows: DataNode of int32 ``[4]`` windows.
        flips: DataNode of uint8 flip flags.
        pipeline: The output's pipeline (size, normalization, dtype).
        decoder_device: ``"mixed"`` (nvJPEG); ``"cpu"`` runs the same graph on DALI's CPU
            decoder.
        nvjpeg: The region decode's variant and settings (default: ``image_slice``).

    Returns:
        DataNode of ``[H, W, 3]`` per sample in the pipeline's dtype (float32 for bfloat16).
    """
    images = slice_decode_resize(jpegs, windows, pipeline.crop.output_size, decoder_device, nvjpeg)
    kwargs: dict[str, Any] = {}
    if pipeline.normalize is not None:
        kwargs["mean"] = [255.0 * m for m in pipeline.normalize.mean]
        kwargs["std"] = [255.0 * s for s in pipeline.normalize.std]
    return fn.crop_mirror_normalize(
        images,
        mirror=fn.cast(flips, dtype=types.INT32),
        dtype=_DALI_DTYPES[pipeline.dtype],
        output_layout="HWC",
        **kwargs,
    )


class BatchFeed:
    """The ``external_source`` of the engine's pipeline: the stream's batches, as views.

    DALI calls it (from the thread that asks the iterator for outputs) up to
    ``PREFETCH_QUEUE_DEPTH`` batches ahead; outputs come back in feeding order, so the
    oldest pending batch is always the one whose outputs arrive next.

    Attributes:
        pending: Batches fed to DALI whose outputs were not returned yet, oldest first.
    """

    def __init__(self) -> None:
        """An idle feed (see :meth:`attach`)."""
        self.pending: deque[EncodedBatch] = deque()
        self._batches: Iterator[EncodedBatch] | None = None

    def attach(self, stream: EpochStream) -> None:
        """Feed this epoch's batches."""
        self._batches = iter(stream)

    def finish(self) -> None:
        """End the epoch early: the next call ends the feed."""
        self._batches = None

    def __iter__(self) -> BatchFeed:
        """DALI calls ``iter(source)`` at every epoch start; the feed is its own iterator."""
        return self

    def __next__(self) -> list[object]:
        """The next batch's arrays (then its ids); StopIteration at the end of the epoch."""
        if self._batches is None:
            raise StopIteration
        batch = next(self._batches, None)
        if batch is None:
            self._batches = None
            raise StopIteration
        self.pending.append(batch)
        return [*dali_arrays(batch).values(), batch.sample_ids[: batch.count]]


class DaliEngine:
    """Decodes the stream's batches with one DALI pipeline (CPU operator or nvJPEG).

    Args:
        options: The loader's engine options: ``decode_device`` ``"cpu"`` (slipstream's
            operator) or ``"mixed"`` (nvJPEG; JPEG only), the pipeline's ``batch_size`` and
            ``num_threads``; a CUDA ``device`` puts the pipeline on that GPU (DALI
            prefetches ``PREFETCH_QUEUE_DEPTH`` batches on its own: ``depth`` is unused).
        nvjpeg: The mixed graph's decode variant and settings (default
            :class:`~slipstream.dali.ops.NvjpegOptions`: ``image_slice``).

    Memory: DALI ``malloc``-s every CPU output batch afresh (handed to torch without a copy)
    on one of its threads; the consumer frees it. With glibc's default dynamic mmap
    threshold, the first freed batch below 32 MiB (a float32 batch, or the epoch's smaller
    last batch) raises the threshold to its size and the trim threshold to twice that:
    from then on output batches are carved from the heap arenas of DALI's threads, and the
    arenas keep freed batches resident (``malloc_trim`` does not trim a thread arena's top).
    RSS then stepped by one batch and rose ~10% over 150 float32 epochs. So an engine with
    float outputs on the host fixes the thresholds (:func:`fix_malloc_thresholds`): a batch
    of 4 MiB or more is ``mmap``-ed and unmapped when freed, as glibc does before its
    dynamic adjustment; the cost is the first touch of each batch's pages (float32 224-px
    batches of 64 were ``mmap``-ed every time already: 36.75 MiB is over the 32 MiB cap).
    """

    slots_in_flight = PREFETCH_QUEUE_DEPTH + 1

    def __init__(self, options: EngineOptions, nvjpeg: NvjpegOptions | None = None) -> None:
        """Load the operator plugin (the pipeline is built on first use)."""
        self.nvjpeg = nvjpeg or NvjpegOptions()
        decode_device, device = options.decode_device, options.device
        self.name = f"dali-{decode_device}"
        self.decode_device = decode_device
        self._pipelines = dict(options.pipelines)
        self._batch_size = options.batch_size
        self._num_threads = options.num_threads
        self._device_id: int | None = None
        if device.type == "cuda":  # no index: the current device (set per rank)
            self._device_id = (
                device.index if device.index is not None else torch.cuda.current_device()
            )
        views: dict[str, tuple[str, ...]] = {}
        for name, pipeline in self._pipelines.items():
            field = pipeline.field or name
            views[field] = (*views.get(field, ()), name)
        image_format = options.image_format
        self._views = views
        self._format = image_format
        self._field_formats = {f: image_format for f in views}
        self._input_names = self._names_of(self._field_formats)
        self._status_fields: list[tuple[str, list[str]]] = []  # status output -> field, views
        # CPU output: the operator writes each output's final values (fused float output).
        self._fused = decode_device == "cpu" and self._device_id is None
        self._modes = {name: OutputMode.of(p, self._fused) for name, p in self._pipelines.items()}
        if self._fused and any(mode.dtype != "uint8" for mode in self._modes.values()):
            fix_malloc_thresholds()
        self._feed = BatchFeed()
        self._pipeline: Pipeline | None = None
        self._iterator: DALIGenericIterator | None = None
        self._needs_reset = False
        if decode_device == "cpu":
            from slipstream.dali.plugin import load_plugin

            load_plugin()

    # ------------------------------------------------------------------ graph
    def _names_of(self, field_formats: dict[str, str]) -> list[str]:
        """The external source's output names for image fields of these formats."""
        fields = {f: (field_formats[f], v, 0) for f, v in self._views.items()}
        return [*dali_arrays(allocate_batch(1, fields)).keys(), "ids"]

    def _use_formats(self, stream: EpochStream) -> None:
        """Take the stream's field formats (raw RGB items add inputs); rebuild if changed."""
        known = getattr(stream, "field_formats", {})  # EpochStream, a hybrid's SubStream
        formats = {f: known.get(f, self._format) for f in self._views}
        if formats == self._field_formats:
            return
        if self.decode_device == "mixed" and any(f in PER_ITEM_FORMATS for f in formats.values()):
            raw = [f for f, kind in formats.items() if kind in PER_ITEM_FORMATS]
            raise NoDecodeEngineError(
                f"image fields {raw} hold raw RGB items, which nvJPEG (decode_device='mixed') "
                "cannot decode; use decode_device='cpu' or backend='native'"
            )
        self._field_formats = formats
        self._input_names = self._names_of(formats)
        self._iterator = None
        self._pipeline = None

    def _graph(self, inputs: dict[str, Any]) -> list[Any]:
        images: dict[str, Any] = {}
        statuses: list[Any] = []
        self._status_fields = []
        for field, views in self._views.items():
            field_format = self._field_formats[field]
            per_item = field_format in PER_ITEM_FORMATS
            prefix = "jpegs" if field_format == "jpeg" or per_item else field_format
            items = inputs[f"{prefix}/{field}"]
            kwargs: dict[str, Any] = {}
            if per_item:  # JPEG and raw RGB items: each sample's format code
                kwargs = {
                    "item_format": inputs[f"formats/{field}"],
                    "image_size": inputs[f"sizes/{field}"],
                }
            elif field_format != "jpeg":
                kwargs = {"format": field_format, "image_size": inputs[f"sizes/{field}"]}
            if self.decode_device == "mixed":
                for view in views:
                    images[view] = normalized_images(
                        items,
                        inputs[f"windows/{view}"],
                        inputs[f"flips/{view}"],
                        self._pipelines[view],
                        "mixed",
                        self.nvjpeg,
                    )
                continue
            by_size: dict[tuple[tuple[int, int], OutputMode], list[str]] = {}
            for view in views:
                key = (tuple(self._pipelines[view].crop.output_size), self._modes[view])
                by_size.setdefault(key, []).append(view)
            for (size, mode), group in by_size.items():
                windows = [inputs[f"windows/{view}"] for view in group]
                flips = [inputs[f"flips/{view}"] for view in group]
                kwargs.update(dtype=mode.dtype, mean=mode.mean, std=mode.std)
                if len(group) == 1:
                    decoded, status = decode_crop(
                        items, windows[0], size, flip=flips[0], status=True, **kwargs
                    )
                    nodes = [decoded]
                else:  # [K, 4] windows: the views share the image's decode; view k is [k]
                    decoded, status = decode_crop(
                        items,
                        fn.stack(*windows),
                        size,
                        flip=fn.stack(*flips),
                        status=True,
                        **kwargs,
                    )
                    nodes = [decoded[k] for k in range(len(group))]
                for view, node in zip(group, nodes, strict=True):
                    images[view] = node.gpu() if self._device_id is not None else node
                statuses.append(status)
                self._status_fields.append((field, group))
        return [images[name] for name in self._pipelines] + statuses + [inputs["ids"]]

    def _build(self) -> DALIGenericIterator:
        @pipeline_def(
            batch_size=self._batch_size,
            num_threads=self._num_threads,
            device_id=self._device_id,
            prefetch_queue_depth=PREFETCH_QUEUE_DEPTH,
        )
        def graph():
            nodes = external_source(self._feed, num_outputs=len(self._input_names))
            return tuple(self._graph(dict(zip(self._input_names, nodes, strict=True))))

        self._pipeline = graph()
        self._pipeline.build()
        names = [*self._pipelines, *(f"status/{i}" for i in range(len(self._status_fields)))]
        self._iterator = DALIGenericIterator(
            self._pipeline,
            [*names, "ids"],
            auto_reset=False,
            last_batch_policy=LastBatchPolicy.PARTIAL,
            prepare_first_batch=False,
        )
        return self._iterator

    def close(self) -> None:
        """Drop the pipeline and its iterator (DALI frees its threads and buffers).

        Between epochs only (no batch pending); the next epoch builds a new pipeline.
        """
        self._feed.finish()
        self._feed.pending.clear()
        self._feed = BatchFeed()
        self._iterator = None
        self._pipeline = None
        self._needs_reset = False
        gc.collect()  # the pipeline's reference cycles hold its buffers until collected
        dali_backend.ReleaseUnusedMemory()  # then DALI's pools give the freed memory back

    # ------------------------------------------------------------------ batches
    def batches(self, stream: EpochStream) -> Iterator[DecodedBatch]:
        """Run the stream's batches through the pipeline, in order.

        Raises:
            BatchDecodeError: DALI itself failed on a batch (nvJPEG rejected a sample):
                the batch's failing samples, found by the C++ kernel.
        """
        self._use_formats(stream)
        self._feed.attach(stream)
        if self._iterator is None:
            iterator = self._build()
        else:
            iterator = self._iterator
            if self._needs_reset:  # schedules DALI's first runs: the feed is attached now
                self._needs_reset = False
                iterator.reset()
        ended = False
        try:
            while True:
                try:
                    outputs = next(iterator)[0]
                except StopIteration:
                    ended = True
                    self._needs_reset = True
                    return
                except Exception as error:
                    ended = True
                    raise self._failed(stream, error) from error
                yield self._decoded(stream, outputs)
        finally:
            if not ended:
                self._drain(stream)

    def _decoded(self, stream: EpochStream, outputs: dict[str, torch.Tensor]) -> DecodedBatch:
        batch = self._feed.pending.popleft()
        ids = batch.ids()
        if not np.array_equal(outputs["ids"].numpy(), ids):
            raise RuntimeError(
                f"DALI returned the outputs of samples {outputs['ids'][:4].tolist()}... where "
                f"samples {ids[:4].tolist()}... were expected"
            )
        failures: dict[tuple[str, int], SampleFailure] = {}  # one per sample and field
        for i, (field, views) in enumerate(self._status_fields):
            status = outputs[f"status/{i}"].numpy()
            for position in np.flatnonzero(status).tolist():
                if (field, position) not in failures:
                    code = int(status[position])
                    failures[field, position] = self._failure(batch, field, views, position, code)
        stream.release(batch)
        images = {name: outputs[name] for name in self._pipelines}
        for name, mode in self._modes.items():
            if mode.dtype == "bfloat16":  # DALI has no bfloat16: the operator gives int16 bits
                images[name] = images[name].view(torch.bfloat16)
        normalized = self.decode_device == "mixed" or self._fused
        return DecodedBatch(ids, images, list(failures.values()), normalized=normalized)

    def _failure(
        self, batch: EncodedBatch, field: str, views: list[str], position: int, code: int
    ) -> SampleFailure:
        """A sample the operator reported: the C++ kernel's own words for it."""
        images = batch.images[field]
        sizes = {view: self._pipelines[view].crop.output_size for view in images.views}
        _, message = explain_failure(images, position, sizes)
        return SampleFailure(position, field, code, message or f"status {code}")

    def _failed(self, stream: EpochStream, error: Exception) -> Exception:
        """Drop the failed pipeline; name the oldest pending batch's undecodable samples."""
        pending = list(self._feed.pending)
        self._feed.pending.clear()
        self._feed.finish()
        self._feed = BatchFeed()  # the old pipeline may still read the old feed's batches
        self._pipeline = None
        self._iterator = None
        self._needs_reset = False
        for batch in pending:
            stream.abandon(batch)
        if not pending:
            return error
        batch = pending[0]
        failures = []
        for field, images in batch.images.items():
            sizes = {view: self._pipelines[view].crop.output_size for view in images.views}
            for position in range(batch.count):
                code, message = explain_failure(images, position, sizes)
                if code:
                    failures.append(SampleFailure(position, field, code, message))
        return BatchDecodeError(batch.ids(), failures, str(error))

    def _drain(self, stream: EpochStream) -> None:
        """End the epoch early: run out the batches DALI already has, releasing each."""
        self._feed.finish()
        if self._iterator is None:
            return
        try:
            while True:
                next(self._iterator)
                stream.release(self._feed.pending.popleft())
        except StopIteration:
            self._needs_reset = True
        except Exception as error:  # noqa: BLE001 - the pipeline is unusable: drop it
            self._failed(stream, error)


MMAP_THRESHOLD = 4 << 20
"""Bytes from which :func:`fix_malloc_thresholds` has glibc ``mmap`` an allocation."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (glibc malloc.h)
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
_thresholds_fixed = False


def fix_malloc_thresholds() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (trim threshold: twice that).

    Process-wide and once: this turns glibc's dynamic thresholds off, so freed blocks of
    4 MiB or more go back to the OS at once instead of staying in a thread's heap arena
    (see :class:`DaliEngine`). Smaller allocations keep glibc's heap behaviour. Nothing is
    changed when the environment already sets malloc thresholds or tunables (yours win),
    or when the C library is not glibc.

    Returns:
        Whether the thresholds are now fixed by this function.
    """
    global _thresholds_fixed
    if _thresholds_fixed:
        return True
    if any(name in os.environ for name in _GLIBC_VARIABLES):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    _thresholds_fixed = bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
        and mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
    )
    return _thresholds_fixed
