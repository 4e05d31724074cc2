"""The DALI decode stage of ``SlipstreamLoader(backend="dali")``.

The loader's gather thread fills batch slots exactly as for the native backend (same
sample ids, crop windows and flips, keyed by seed, epoch and sample id). One DALI pipeline
decodes every image output of a slot, driven by a ``DALIGenericIterator``::

    SlotFeed (external_source, batch, no_copy, cycle="raise")
      per decode group (outputs of one field and size): jpegs/<lead>, [sizes/<lead>,]
      then windows/<name>, flips/<name> per member; ids
        decode_device="cpu":   fn.slipstream_decode_crop(jpegs, windows, size, flip=flips
                               [, format="yuv420", image_size=sizes])
                               (a group of K: fn.stack'ed [K, 4] windows, one call, view k
                               = output[k]) [.gpu() when the loader's device is a GPU]
        decode_device="mixed": fn.decoders.image_slice (nvJPEG) -> fn.resize (antialiased)
                               -> fn.crop_mirror_normalize (flip, normalization, cast; HWC)
      -> DALIGenericIterator -> {name: [n, H, W, 3] tensor, "ids": [n]}

DALI prefetches ``prefetch_queue_depth`` batches on its own, and its outputs reach torch
without a copy (DLPack, ``exec_dynamic``): a batch's memory belongs to DALI and lives as
long as the user holds the tensor. Epochs end when the feed runs dry (``cycle="raise"``),
with partial last batches as they come (DALI takes any batch up to ``batch_size``). The
same pipeline serves every epoch: it is reset at the start of the next epoch, once the
feed reads that epoch's slots (a reset schedules DALI's first runs at once, so resetting
at the end of an epoch, as ``auto_reset`` does, would ask the feed for batches of an
epoch that has no slots yet). A break mid-epoch, or an error,
shuts the pipeline down (so it no longer reads the slots) and the next epoch builds a
fresh one.

With ``image_format="yuv420"`` the slots hold the items of each field's YUV420 companion;
they have no header, so the feed adds ``sizes/<lead>`` (int32 ``[n, 2]`` true height and
width per sample, from the companion's meta) and the operator gets ``format="yuv420"``.
nvJPEG (``"mixed"``) cannot read them.

Every other loader feature (batch dict, ``state_dict`` resume, distributed sharding,
``len``) is the loader's own code, identical for both backends.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from nvidia.dali import Pipeline, fn, pipeline_def, types
from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

from slipstream.cache.format import IMAGE_FORMATS
from slipstream.dali.feed import SlotFeed
from slipstream.dali.ops import decode_crop, external_source, slice_decode_resize
from slipstream.loader import MIXED_YUV420_MESSAGE
from slipstream.native.backend import SampleDecodeError
from slipstream.pipelines.spec import ImagePipeline
from slipstream.prefetch.slots import DecodedBatch

__all__ = ["DaliBackend", "normalized_images"]

PREFETCH_QUEUE_DEPTH = 2
"""Batches DALI runs ahead of the consumer (each holds one slot)."""

# The operator's failure message: "... N of B samples failed to decode: sample i: msg; ..."
_FAILURES = re.compile(r"samples failed to decode: (.*)")
_FAILURE = re.compile(r"sample (\d+)(?: view \d+)?: ([^;]*)")

# crop_mirror_normalize output types; bfloat16 is cast by torch afterwards.
_DALI_DTYPES = {
    "uint8": types.UINT8,
    "float32": types.FLOAT,
    "float16": types.FLOAT16,
    "bfloat16": types.FLOAT,
}


def normalized_images(
    jpegs: Any, windows: Any, flips: Any, pipeline: ImagePipeline, decoder_device: str
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

    Returns:
        DataNode of ``[H, W, 3]`` per sample in the pipeline's dtype (float32 for bfloat16).
    """
    images = slice_decode_resize(jpegs, windows, pipeline.crop.output_size, decoder_device)
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


def _parse_failures(message: str, count: int) -> list[tuple[int, str]]:
    """``(batch position, reason)`` of each failed sample named in an operator error."""
    found = _FAILURES.search(message)
    if found is None:
        return []
    failures = []
    for position, reason in _FAILURE.findall(found.group(1)):
        if int(position) < count:
            failures.append((int(position), reason.strip()))
    return failures


class DaliBackend:
    """Decodes every image output of the gathered slots with one DALI pipeline.

    Args:
        batch_size: Largest batch (the pipeline's ``batch_size``).
        num_threads: DALI CPU threads.
        pipelines: Output name -> its :class:`ImagePipeline`.
        fields: Output name -> dataset image field, for error messages.
        describe: ``sample_id -> str`` naming a sample (its source path when known).
        device: The loader's output device; a CUDA device puts the pipeline on that GPU.
        decode_device: ``"cpu"`` (slipstream's operator) or ``"mixed"`` (nvJPEG).
        groups: Outputs decoded together (same field and size, see
            :func:`slipstream.pipelines.spec.decode_groups`; default: each alone). On the
            CPU a group is one operator call with ``[K, 4]`` windows.
        lead_of: Output name -> the output whose slot holds its field's gathered bytes
            (default: itself).
        image_format: What the gathered items are: ``"jpeg"`` or ``"yuv420"`` (items of
            each field's YUV420 companion; ``decode_device="cpu"`` only).
        image_meta: Output name -> its items' ``height`` / ``width`` arrays (one entry per
            sample id; needed for ``"yuv420"``, whose items carry no header).

    Raises:
        ValueError: ``decode_device="mixed"`` without a CUDA output device, or with
            ``image_format="yuv420"``; an unknown ``image_format``; ``"yuv420"`` without
            ``image_meta``.
    """

    def __init__(
        self,
        batch_size: int,
        num_threads: int,
        pipelines: dict[str, ImagePipeline],
        fields: dict[str, str],
        describe: Callable[[int], str],
        device: torch.device,
        decode_device: str = "cpu",
        groups: list[tuple[str, ...]] | None = None,
        lead_of: dict[str, str] | None = None,
        image_format: str = "jpeg",
        image_meta: dict[str, dict[str, np.ndarray]] | None = None,
    ) -> None:
        """Check the arguments and load the operator plugin (the pipeline is built lazily)."""
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
        if image_format == "yuv420" and decode_device == "mixed":
            raise ValueError(MIXED_YUV420_MESSAGE)
        if image_format == "yuv420" and image_meta is None:
            raise ValueError("image_format='yuv420' needs image_meta (the items' true sizes)")
        if decode_device == "mixed" and device.type != "cuda":
            raise ValueError(
                "decode_device='mixed' (nvJPEG) needs a CUDA output device, got "
                f"device={str(device)!r}"
            )
        if decode_device not in ("cpu", "mixed"):
            raise ValueError(f"decode_device must be 'cpu' or 'mixed', got {decode_device!r}")
        self._batch_size = batch_size
        self._num_threads = num_threads
        self._pipelines = dict(pipelines)
        self._fields = fields
        self._describe = describe
        self._device_id: int | None = None
        if device.type == "cuda":
            # "cuda" without an index: the current device (torch.cuda.set_device per rank)
            self._device_id = (
                device.index if device.index is not None else torch.cuda.current_device()
            )
        self.decode_device = decode_device
        self.image_format = image_format
        self._groups = groups or [(name,) for name in self._pipelines]
        sizes = None
        if image_format == "yuv420":
            assert image_meta is not None
            sizes = {
                group[0]: np.stack(
                    [image_meta[group[0]]["height"], image_meta[group[0]]["width"]], axis=1
                ).astype(np.int32)
                for group in self._groups
            }
        self._feed = SlotFeed(self._groups, lead_of or {}, sizes)
        self._pipeline: Pipeline | None = None
        self._iterator: DALIGenericIterator | None = None
        self._needs_reset = False  # the iterator finished an epoch; reset after attach
        if decode_device == "cpu":
            from slipstream.dali.plugin import load_plugin

            load_plugin()

    # ------------------------------------------------------------------ graph
    def _outputs(self, arrays: tuple[Any, ...]) -> list[Any]:
        images: dict[str, Any] = {}
        position = 0
        yuv = self.image_format == "yuv420"
        for group in self._groups:
            jpegs = arrays[position]
            kwargs: dict[str, Any] = {}
            if yuv:
                kwargs = {"format": "yuv420", "image_size": arrays[position + 1]}
                position += 1
            windows = arrays[position + 1 : position + 1 + 2 * len(group) : 2]
            flips = arrays[position + 2 : position + 2 + 2 * len(group) : 2]
            position += 1 + 2 * len(group)
            size = self._pipelines[group[0]].crop.output_size
            if self.decode_device == "mixed":
                for name, window, flip in zip(group, windows, flips, strict=True):
                    pipeline = self._pipelines[name]
                    images[name] = normalized_images(jpegs, window, flip, pipeline, "mixed")
                continue
            if len(group) == 1:
                decoded = [decode_crop(jpegs, windows[0], size, flip=flips[0], **kwargs)]
            else:  # [K, 4] windows: the views share the image's decode; view k is [k]
                stacked = fn.stack(*windows)
                views = decode_crop(jpegs, stacked, size, flip=fn.stack(*flips), **kwargs)
                decoded = [views[k] for k in range(len(group))]
            for name, node in zip(group, decoded, strict=True):
                images[name] = node.gpu() if self._device_id is not None else node
        # sample ids last, checked against the pending slot
        return [images[name] for name in self._pipelines] + [arrays[-1]]

    def _build(self) -> DALIGenericIterator:
        @pipeline_def(
            batch_size=self._batch_size,
            num_threads=self._num_threads,
            device_id=self._device_id,
            prefetch_queue_depth=PREFETCH_QUEUE_DEPTH,
        )
        def graph():
            return tuple(self._outputs(external_source(self._feed)))

        self._pipeline = graph()
        self._pipeline.build()
        self._iterator = DALIGenericIterator(
            self._pipeline,
            [*self._pipelines, "ids"],
            auto_reset=False,
            last_batch_policy=LastBatchPolicy.PARTIAL,
            prepare_first_batch=False,
        )
        return self._iterator

    def _discard(self) -> None:
        """Shut the pipeline down: it stops reading the slots it was fed."""
        self._iterator = None
        self._needs_reset = False
        if self._pipeline is not None:
            self._pipeline._shutdown()  # blocks until DALI's workers are idle
            self._pipeline = None
        self._feed.clear()

    # ------------------------------------------------------------------ batches
    def batches(
        self, gathered: queue.Queue, free: queue.Queue, stop: threading.Event, depth: int
    ) -> Iterator[DecodedBatch]:
        """Run the gathered slots of one epoch through the pipeline, in order.

        Args:
            gathered: Filled slots from the gather stage, ending with ``END_OF_STREAM``.
            free: Where a slot goes back once DALI returned its outputs.
            stop: Set by the loader to stop the gather stage.
            depth: Unused (DALI keeps ``PREFETCH_QUEUE_DEPTH`` batches in flight).

        Yields:
            One :class:`DecodedBatch` per slot; its images are DALI's output memory.

        Raises:
            SampleDecodeError: A sample could not be decoded (naming its id and source).
        """
        del depth
        self._feed.attach(gathered, stop)
        if self._iterator is None:
            iterator = self._build()
        else:
            iterator = self._iterator
            if self._needs_reset:  # schedules DALI's first runs: the feed is attached now
                self._needs_reset = False
                iterator.reset()
        complete = False
        try:
            while True:
                try:
                    outputs = next(iterator)[0]
                except StopIteration:
                    complete = True
                    self._needs_reset = True
                    return
                except Exception as error:
                    named = self._decode_error(error)
                    if named is error:
                        raise
                    raise named from error
                slot = self._feed.consumed()
                n = slot.count
                ids = slot.sample_ids[:n].copy()
                if not np.array_equal(outputs["ids"].numpy(), ids):
                    raise RuntimeError(
                        f"DALI returned the outputs of samples {outputs['ids'][:4].tolist()}..."
                        f" where samples {ids[:4].tolist()}... were expected"
                    )
                free.put(slot)
                images = {name: outputs[name] for name in self._pipelines}
                yield DecodedBatch(ids, images, normalized=self.decode_device == "mixed")
        finally:
            if not complete:
                self._discard()

    def _decode_error(self, error: Exception) -> Exception:
        """The error of the oldest pending batch, naming the samples that failed."""
        if isinstance(error, (SampleDecodeError, StopIteration)) or not self._feed.pending:
            return error
        slot = self._feed.pending[0]
        n = slot.count
        message = str(error)
        failures = [
            (int(slot.sample_ids[p]), self._describe(int(slot.sample_ids[p])), reason)
            for p, reason in _parse_failures(message, n)
        ]
        fields = " or ".join(self._fields[name] for name in self._pipelines)
        if failures:
            return SampleDecodeError(fields, failures)
        ids = ", ".join(str(int(i)) for i in slot.sample_ids[:n])
        return RuntimeError(
            f"DALI could not decode field {fields!r} for the batch of samples [{ids}]: {message}"
        )
