"""``PrefetchedBatches``: slipstream's prefetcher as the source of your own DALI pipeline.

The batches are the ones ``SlipstreamLoader`` would decode for the same arguments (same
order, sample ids, crop windows and flips, keyed by seed, epoch and sample id), handed to
``external_source`` as views into the prefetcher's reused slots::

    jpegs/<name>    uint8 1-D per sample          (encoded bytes, no copy)
      or yuv420/<name> + sizes/<name>             with ``image_format="yuv420"``: the
                                                  companion's items and int32 [2] (h, w)
    windows/<name>  int32 [4] (y, x, h, w)        per image output of ``pipelines``
    flips/<name>    uint8 scalar
    <field>         the requested numeric fields (e.g. label), one value per sample

A slot is reused only after DALI is done with it: DALI may read a ``no_copy`` buffer until
``prefetch_queue_depth`` iterations after it was fed, so the source keeps the last
``prefetch_queue_depth + 1`` batches it handed out untouched.

Example:
    >>> source = PrefetchedBatches(dataset, 256, supervised_train(224), seed=0)  # doctest: +SKIP
    >>> @pipeline_def(batch_size=256, num_threads=8, device_id=0)  # doctest: +SKIP
    ... def pipe():
    ...     jpegs, windows, flips, labels = sdali.external_source(source)
    ...     images = sdali.decode_crop(jpegs, windows, size=224, flip=flips)
    ...     return fn.crop_mirror_normalize(images.gpu(), ...), labels
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from slipstream.cache.format import NUMBER_DTYPES
from slipstream.dataset import SlipstreamDataset
from slipstream.loader import SlipstreamLoader
from slipstream.pipelines.spec import ImagePipeline
from slipstream.prefetch.slots import BatchSlot
from slipstream.prefetch.stages import END_OF_STREAM, take


class PrefetchedBatches:
    """An iterable ``external_source``: one epoch of prefetched batches per ``iter()``.

    DALI calls ``iter(source)`` at every epoch start (``cycle="raise"``); like the loader,
    the epoch advances by one after each complete epoch unless :meth:`set_epoch` is called.

    Args:
        dataset: The dataset to read.
        batch_size: Samples per batch (the pipeline's ``batch_size``; the last batch of an
            epoch may be smaller unless ``drop_last=True``).
        pipelines: Output name -> :class:`ImagePipeline` (its crop and flip are used; the
            decoding, resizing and normalization are the DALI pipeline's).
        fields: Numeric fields to hand over after the image arrays.
        prefetch_queue_depth: The DALI pipeline's ``prefetch_queue_depth``.
        **loader_options: ``seed``, ``shuffle``, ``drop_last``, ``indices``,
            ``distributed``, ``rank``, ``world_size``, ``prefetch``, ``image_format`` as
            for :class:`~slipstream.SlipstreamLoader`. With ``image_format="yuv420"`` the
            items are the YUV420 companion's, each followed by its true size (decode them
            with ``decode_crop(..., format="yuv420", image_size=sizes)``).

    Attributes:
        output_names: Names of the arrays of each batch, in order.
    """

    def __init__(
        self,
        dataset: SlipstreamDataset,
        batch_size: int,
        pipelines: dict[str, ImagePipeline],
        *,
        fields: tuple[str, ...] | list[str] = ("label",),
        prefetch_queue_depth: int = 2,
        **loader_options: Any,
    ) -> None:
        """Check the fields and set up the prefetcher (slots are allocated on first use)."""
        types = dataset.cache.field_types
        for name in fields:
            if types.get(name) not in NUMBER_DTYPES:
                raise KeyError(
                    f"{name!r} is not a numeric field of {dataset.cache.path}; numeric fields: "
                    f"{[n for n, kind in types.items() if kind in NUMBER_DTYPES]}"
                )
        if prefetch_queue_depth < 1:
            raise ValueError(f"prefetch_queue_depth must be >= 1, got {prefetch_queue_depth}")
        self.loader = SlipstreamLoader(
            dataset, batch_size, pipelines, device="cpu", fields=list(fields), **loader_options
        )
        self.fields = list(fields)
        self.hold = prefetch_queue_depth + 1
        self.yuv420 = self.loader.image_format == "yuv420"
        kinds = ("yuv420", "sizes") if self.yuv420 else ("jpegs",)
        self.output_names = [
            f"{kind}/{name}" for name in pipelines for kind in (*kinds, "windows", "flips")
        ] + self.fields
        self._sizes = {
            name: np.stack([meta["height"], meta["width"]], axis=1).astype(np.int32)
            for name, meta in self.loader._image_meta.items()
        }

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self.loader)

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` runs."""
        return self.loader.epoch

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next ``iter()`` runs."""
        self.loader.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[Any]]:
        """Run the prefetcher over the current epoch, one list of arrays per batch."""
        loader = self.loader
        # the gathered queue, the slot being gathered, and the ones DALI may still read
        loader._allocate_slots(loader.prefetch + 1 + self.hold, with_pixels=False)
        epoch = loader.epoch
        gathered, free, stop, thread = loader._start_gather(epoch, 0)
        handed: deque[BatchSlot] = deque()
        recent: deque[list[Any]] = deque(maxlen=self.hold + 1)  # arrays DALI may still read
        try:
            while True:
                slot = take(gathered, stop)
                if slot is END_OF_STREAM:
                    break
                handed.append(slot)
                if len(handed) > self.hold:
                    free.put(handed.popleft())
                recent.append(self._arrays(slot))
                yield recent[-1]
            loader.set_epoch(epoch + 1)
        finally:
            stop.set()
            thread.join()

    def _arrays(self, slot: BatchSlot) -> list[Any]:
        n = slot.count
        arrays: list[Any] = []
        ids = slot.sample_ids[:n]
        for name, image in slot.images.items():
            lead = slot.images[self.loader._lead_of[name]]  # outputs of a group share bytes
            arrays.append(lead.items(n))
            if self.yuv420:  # a fresh array, kept alive in ``recent`` while DALI may read it
                arrays.append(self._sizes[name][ids])
            arrays += [image.windows[:n], image.flips[:n]]
        for name in self.fields:
            arrays.append(np.ascontiguousarray(self.loader.cache.numbers(name)[ids]))
        return arrays
