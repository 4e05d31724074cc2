"""``PrefetchedBatches``: slipstream's prefetcher as the source of your own DALI pipeline.

The batches are the ones ``SlipstreamLoader`` would decode for the same arguments (same
order, sample ids, crop windows and flips, keyed by seed, epoch and sample id), handed to
``external_source`` as views into the prefetcher's reused slots::

    jpegs/<field>   uint8 1-D per sample          (encoded bytes, no copy), once per
      or yuv420/<field> + sizes/<field>           image field; with ``image_format="yuv420"``
                                                  the companion's items and int32 [2] (h, w)
    windows/<view>  int32 [4] (y, x, h, w)        per image output of ``pipelines`` (its
    flips/<view>    uint8 scalar                  views: several may read one field)
    <field>         the requested numeric fields (e.g. label), one value per sample

(:func:`slipstream.prefetch.dali_arrays` flattens a batch; the loader's DALI engine reads
the same arrays.)

A batch is reused only after DALI is done with it: DALI may read a ``no_copy`` buffer until
``prefetch_queue_depth`` iterations after it was fed, so the source keeps the last
``prefetch_queue_depth + 1`` batches it handed out untouched (the Prefetcher's ring is sized
for them).

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
from typing import TYPE_CHECKING, Any

import numpy as np

from slipstream.cache.format import NUMBER_DTYPES
from slipstream.prefetch import EncodedBatch, Prefetcher, allocate_batch, dali_arrays, resolve_world

if TYPE_CHECKING:
    from slipstream.dataset import SlipstreamDataset
    from slipstream.pipelines.spec import ImagePipeline


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
        image_format: ``"jpeg"``, or ``"yuv420"``: the items are the YUV420 companion's,
            each followed by its true size (decode them with
            ``decode_crop(..., format="yuv420", image_size=sizes)``).
        **order: ``seed``, ``shuffle``, ``drop_last``, ``indices``, ``distributed``,
            ``rank``, ``world_size`` and ``prefetch``, as for
            :class:`~slipstream.SlipstreamLoader`.

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
        image_format: str = "jpeg",
        **order: Any,
    ) -> None:
        """Check the arguments and set up the prefetcher (batches are allocated on first use)."""
        types = dataset.cache.field_types
        for name in fields:
            if types.get(name) not in NUMBER_DTYPES:
                raise KeyError(
                    f"{name!r} is not a numeric field of {dataset.cache.path}; numeric fields: "
                    f"{[n for n, kind in types.items() if kind in NUMBER_DTYPES]}"
                )
        if prefetch_queue_depth < 1:
            raise ValueError(f"prefetch_queue_depth must be >= 1, got {prefetch_queue_depth}")
        rank, world_size = resolve_world(
            order.pop("distributed", "auto"), order.pop("rank", None), order.pop("world_size", None)
        )
        self.cache = dataset.cache
        self.prefetcher = Prefetcher(
            dataset.cache,
            pipelines,
            batch_size=batch_size,
            image_format=image_format,
            rank=rank,
            world_size=world_size,
            **order,
        )
        self.hold = prefetch_queue_depth + 1
        self.prefetcher.reserve(self.hold)
        self.fields = list(fields)
        self.epoch = 0
        views = {f: (image_format, v, 0) for f, v in self.prefetcher.views.items()}
        self.output_names = [*dali_arrays(allocate_batch(1, views)), *self.fields]

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return len(self.prefetcher)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch the next ``iter()`` runs."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[list[Any]]:
        """Run the prefetcher over the current epoch, one list of arrays per batch."""
        epoch = self.epoch
        stream = self.prefetcher.start(epoch)
        handed: deque[EncodedBatch] = deque()
        recent: deque[list[Any]] = deque(maxlen=self.hold + 1)  # arrays DALI may still read
        try:
            for batch in stream:
                handed.append(batch)
                if len(handed) > self.hold:
                    stream.release(handed.popleft())
                recent.append(self._arrays(batch))
                yield recent[-1]
            self.epoch = epoch + 1
        finally:
            stream.close()

    def _arrays(self, batch: EncodedBatch) -> list[Any]:
        ids = batch.sample_ids[: batch.count]
        numbers = [np.ascontiguousarray(self.cache.numbers(name)[ids]) for name in self.fields]
        return [*dali_arrays(batch).values(), *numbers]
