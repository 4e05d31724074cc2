"""The DALI decode stage of ``SlipstreamLoader(backend="dali")`` (CPU operator path).

Only the decode stage changes: the loader's gather thread fills a batch slot exactly as for
the native backend (same sample ids, crop windows and flips, keyed by seed, epoch and sample
id), and :meth:`DaliBackend.decode` runs one DALI pipeline per image output on it::

    external_source "jpegs"   per-sample uint8 views into slot.encoded  (no_copy)
    external_source "windows" int32 [4] per sample                      (no_copy)
    external_source "flips"   uint8 scalar per sample                   (no_copy)
    external_source "ids"     int64 scalar per sample                   (no_copy)
        -> fn.slipstream_decode_crop(jpegs, windows, size, flip=flips) -> images  uint8 HWC
        -> ids (passed through, checked against the slot)

Design choice: the stage feeds each slot with ``Pipeline.feed_input`` and calls
``Pipeline.run()`` synchronously (``prefetch_queue_depth=1``), then copies the DALI CPU
output (a zero-copy numpy view of the dense ``TensorListCPU``) into the slot's
``pixels_np[:n]``. Every loader feature (batch dict, variable last batch ``<= B``,
``state_dict`` resume, distributed sharding, ``len``) therefore stays the loader's own code,
identical for both backends. A ``DALIGenericIterator`` adapter driven by an
``external_source`` generator with ``cycle="raise"`` would let DALI prefetch on its own, but
it would duplicate the resume / partial-batch / epoch logic and cannot carry ragged string
fields; the loader's gather/decode/consumer threads already overlap the stages.

``no_copy=True`` is safe here: DALI must not see a buffer change until it has consumed it,
and a slot is only refilled after it went through decode (where ``run()`` returns only
after the operator read its inputs) and back from the consumer to the loader's free queue.

DALI runs the batch with its own thread pool (``num_threads`` of the loader): one owner of the
decode threads, as with the native pool.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from nvidia.dali import Pipeline, fn, pipeline_def

from slipstream.dali import decode_crop
from slipstream.native.backend import SampleDecodeError
from slipstream.prefetch.slots import BatchSlot, ImageSlot

__all__ = ["DaliBackend"]

_INPUTS = ("jpegs", "windows", "flips", "ids")
# The operator's failure message: "... N of B samples failed to decode: sample i: msg; ..."
_FAILURES = re.compile(r"samples failed to decode: (.*)")
_FAILURE = re.compile(r"sample (\d+)(?: view \d+)?: ([^;]*)")


def _build_pipeline(batch_size: int, num_threads: int, size: tuple[int, int]) -> Pipeline:
    @pipeline_def(
        batch_size=batch_size,
        num_threads=num_threads,
        device_id=None,
        prefetch_queue_depth=1,
    )
    def pipe():
        jpegs, windows, flips, ids = (
            fn.external_source(name=name, batch=True, no_copy=True) for name in _INPUTS
        )
        return decode_crop(jpegs, windows, size=size, flip=flips), ids

    pipeline = pipe()
    pipeline.build()
    return pipeline


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
    """Decodes every image output of a slot with a DALI pipeline of ``slipstream_decode_crop``.

    Args:
        batch_size: Largest batch (the pipelines' ``batch_size``); smaller batches are fed
            as they come.
        num_threads: DALI CPU threads per pipeline.
        output_sizes: Output name -> ``(height, width)`` of its decoded crops.
        fields: Output name -> dataset image field, for error messages.
        describe: ``sample_id -> str`` naming a sample (its source path when known).
    """

    def __init__(
        self,
        batch_size: int,
        num_threads: int,
        output_sizes: dict[str, tuple[int, int]],
        fields: dict[str, str],
        describe: Callable[[int], str],
    ) -> None:
        """Build one pipeline per image output (this also loads the operator plugin)."""
        self._batch_size = batch_size
        self._num_threads = num_threads
        self._sizes = {name: (int(h), int(w)) for name, (h, w) in output_sizes.items()}
        self._fields = fields
        self._describe = describe
        self._pipelines: dict[str, Pipeline | None] = {
            name: self._new_pipeline(name) for name in self._sizes
        }

    def _new_pipeline(self, name: str) -> Pipeline:
        return _build_pipeline(self._batch_size, self._num_threads, self._sizes[name])

    def decode(self, slot: BatchSlot) -> BatchSlot:
        """Decode the slot's encoded bytes into its pixel buffers, in place.

        Raises:
            SampleDecodeError: A sample could not be decoded (the message names its id and
                source).
        """
        slot.wait_until_reusable()
        for name, image in slot.images.items():
            self._decode_one(name, image, slot)
        return slot

    def _decode_one(self, name: str, image: ImageSlot, slot: BatchSlot) -> None:
        n = slot.count
        pipeline = self._pipelines.get(name)
        if pipeline is None:  # dropped after an error: start from a fresh one
            pipeline = self._pipelines[name] = self._new_pipeline(name)
        starts = image.offsets[:n].astype(np.int64)
        ends = starts + image.sizes[:n].astype(np.int64)
        inputs: dict[str, Any] = {
            "jpegs": [image.encoded[s:e] for s, e in zip(starts, ends, strict=True)],
            "windows": image.windows[:n],
            "flips": image.flips[:n],
            "ids": slot.sample_ids[:n],
        }
        try:
            for key, value in inputs.items():
                pipeline.feed_input(key, value)
            images, ids = pipeline.run()
            # zero-copy views of DALI's dense outputs (one copy, below, into the slot)
            pixels = np.asarray(images.as_tensor())
            out_ids = np.asarray(ids.as_tensor())
        except Exception as error:
            self._pipelines[name] = None
            raise self._sample_error(name, str(error), slot) from error
        if pixels.shape != image.pixels_np[:n].shape or not np.array_equal(
            out_ids, slot.sample_ids[:n]
        ):
            raise RuntimeError(
                f"DALI pipeline of output {name!r} returned shape {pixels.shape} for ids "
                f"{out_ids[:4]}..., expected {image.pixels_np[:n].shape} for "
                f"{slot.sample_ids[:4]}..."
            )
        np.copyto(image.pixels_np[:n], pixels)

    def _sample_error(self, name: str, message: str, slot: BatchSlot) -> Exception:
        n = slot.count
        failures = [
            (int(slot.sample_ids[p]), self._describe(int(slot.sample_ids[p])), reason)
            for p, reason in _parse_failures(message, n)
        ]
        if failures:
            return SampleDecodeError(self._fields[name], failures)
        ids = ", ".join(str(int(i)) for i in slot.sample_ids[:n])
        return RuntimeError(
            f"DALI could not decode field {self._fields[name]!r} for the batch of samples "
            f"[{ids}]: {message}"
        )
