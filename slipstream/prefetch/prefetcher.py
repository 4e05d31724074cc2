"""``Prefetcher``: the one owner of the prefetch stage.

It owns the store arrays (each image field's memory-mapped items and their table, or the
YUV420 companion's), the epoch order (seed, epoch, rank/world, indices, drop_last), the
crop windows and flips of every view, the ring of reusable :class:`EncodedBatch` slots and
the gather thread that fills them::

    epoch order ──> [gather thread: windows, flips, Numba nogil gather] ──> gathered queue
        ^                                                                        │
        └──────────── free ring <── release(batch) ── decode engine <── next() ──┘

A decode engine declares how many batches it holds at once (``slots_in_flight``); the
Prefetcher sizes the ring as ``prefetch`` (gathered, waiting) + 1 (being gathered) + that.
A batch goes back to the ring when the engine releases it; a batch an engine can no longer
vouch for (a failed DALI pipeline may still read it) is abandoned and replaced by a fresh
allocation at the next epoch.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from slipstream.cache.format import IMAGE_FORMATS, field_format
from slipstream.cache.gather import gather_bytes_in_parts
from slipstream.cache.raw_items import stored_item_formats
from slipstream.errors import FieldNotFoundError
from slipstream.prefetch.batch import EncodedBatch, allocate_batch
from slipstream.prefetch.stages import (
    END_OF_STREAM,
    StageThread,
    get_until_stopped,
    take,
)
from slipstream.sampling import epoch_order, flips, num_batches, resolve_order

if TYPE_CHECKING:
    from slipstream.cache import SlipCache
    from slipstream.pipelines.spec import ImagePipeline

__all__ = ["EpochStream", "Prefetcher"]


@dataclass(frozen=True)
class _Store:
    """One image field's stored items: the byte array and its per-sample table."""

    data: np.ndarray
    pointers: np.ndarray
    sizes: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    checksums: np.ndarray | None = None
    source: str = ""
    formats: np.ndarray | None = None  # per-item format codes (a field with raw RGB items)

    @property
    def format(self) -> str:
        """``"jpeg"``, or ``"raw"`` / ``"mixed"`` for a field with raw RGB items."""
        return "jpeg" if self.formats is None else field_format(self.formats)


class EpochStream:
    """One epoch of gathered batches: iterate to get them, release each when done.

    Iterating yields :class:`EncodedBatch` objects in order and ends with the epoch; an
    error in the gather thread is re-raised in the iterating thread. ``stop`` ends the
    stream early (every blocking call gives up); :meth:`close` stops and joins the thread.
    """

    def __init__(self, prefetcher: Prefetcher, epoch: int, start: int) -> None:
        """Start the gather thread of ``epoch`` from sample ``start`` of its order."""
        self.stop = threading.Event()
        self._prefetcher = prefetcher
        self.field_formats = prefetcher.field_formats()  # what each image field's items are
        self._corrupt: deque[tuple[np.ndarray, list[tuple[int, str, str]]]] = deque()
        self._free: queue.Queue = queue.Queue()
        for batch in prefetcher._ring():
            self._free.put(batch)
        self._gathered: queue.Queue = queue.Queue(maxsize=prefetcher.prefetch)
        extra = prefetcher.gather_threads - 1
        self._pool = (
            ThreadPoolExecutor(extra, thread_name_prefix="slipstream-gather-part")
            if extra
            else None
        )
        self._thread = StageThread(
            "slipstream-gather",
            prefetcher._plan(epoch, start),
            self._fill,
            self._gathered,
            self.stop,
        )
        self._thread.start()

    def _fill(self, item: tuple[int, int, np.ndarray]) -> EncodedBatch:
        batch: EncodedBatch = get_until_stopped(self._free, self.stop)
        self._prefetcher._gather(batch, *item, pool=self._pool)
        return batch

    def __iter__(self) -> Iterator[EncodedBatch]:
        """The epoch's batches, in order (blocking until each is gathered)."""
        while True:
            batch = take(self._gathered, self.stop)
            if batch is END_OF_STREAM:
                return
            self._corrupt.append(self._prefetcher._corrupt_items(batch))
            yield batch

    def corrupt_items(self, sample_ids: np.ndarray) -> list[tuple[int, str, str]]:
        """``(position, field, message)`` of the next batch's items that failed their checksum.

        One call per batch the stream yielded, in order (the loader calls it for each
        decoded batch): the gather flags items whose stored bytes differ from their
        checksum, and zeroes their first bytes so the engine reports them as undecodable.

        Args:
            sample_ids: The decoded batch's sample ids (checked against the gathered batch).
        """
        if not self._corrupt:
            return []
        ids, items = self._corrupt.popleft()
        if items and not np.array_equal(ids, sample_ids):
            raise RuntimeError("decoded batches are out of step with the gathered ones")
        return items

    def release(self, batch: EncodedBatch) -> None:
        """Give a batch back: nothing reads its buffers any more."""
        self._free.put(batch)

    def abandon(self, batch: EncodedBatch) -> None:
        """Never reuse this batch (something may still read it); replaced next epoch."""
        self._prefetcher._abandon(batch)

    def close(self) -> None:
        """Stop the gather thread (and its helpers) and wait for it."""
        self.stop.set()
        self._thread.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class Prefetcher:
    """Gathers the batches of each epoch for a decode engine.

    Args:
        cache: The dataset's slip cache (or an FFCV file read in place).
        pipelines: Output name -> :class:`~slipstream.pipelines.ImagePipeline`; outputs
            reading the same image field are its views, gathered once.
        batch_size: Samples per batch.
        image_format: ``"jpeg"`` (the image fields' items) or ``"yuv420"`` (each field's
            YUV420 companion, built on first use).
        seed: Seed of the order and of every crop and flip.
        shuffle: Shuffle each epoch (``False``: the sequential order).
        drop_last: Drop the last partial batch, and the distributed tail instead of padding.
        indices: Only draw these sample ids (each in ``[0, len(cache))``).
        rank: This process's rank.
        world_size: Number of ranks.
        prefetch: Gathered batches kept ready ahead of the engine.
        order: ``"random"``, ``"sequential"`` or ``"quasi_random"``
            (:func:`~slipstream.sampling.epoch_order`; default: from ``shuffle``).
        raw_fields: Image fields gathered with no view (their bytes only: no crop windows
            or flips), for a consumer that decodes them itself.
        gather_threads: Threads copying (and checksumming) each batch's items, each a
            contiguous share of the batch (1: the gather thread alone, for engines that
            keep every core busy decoding; more for a consumer that does not decode).

    Attributes:
        views: Image field -> the output names decoded from it, in ``pipelines`` order.
    """

    def __init__(
        self,
        cache: SlipCache,
        pipelines: dict[str, ImagePipeline],
        *,
        batch_size: int,
        image_format: str = "jpeg",
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = False,
        indices: np.ndarray | list[int] | None = None,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int = 3,
        order: str | None = None,
        raw_fields: tuple[str, ...] = (),
        gather_threads: int = 1,
    ) -> None:
        """Open the store arrays (building a YUV420 companion if asked and missing)."""
        if image_format not in IMAGE_FORMATS:
            raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
        if batch_size < 1 or prefetch < 1:
            raise ValueError(f"batch_size and prefetch must be >= 1, got {batch_size}, {prefetch}")
        for name, pipeline in pipelines.items():
            if cache.field_types.get(pipeline.field or name) != "ImageBytes":
                raise FieldNotFoundError(
                    f"{cache.path}: pipeline output {name!r} reads {pipeline.field or name!r}, "
                    f"which is not an image field; image fields: {cache.image_fields}"
                )
        self.cache = cache
        self.pipelines = dict(pipelines)
        self.batch_size = int(batch_size)
        self.image_format = image_format
        self.seed = int(seed)
        self.order = resolve_order(order, bool(shuffle))
        self.shuffle = self.order != "sequential"
        self.drop_last = bool(drop_last)
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices is not None and self.indices.size:
            if self.indices.min() < 0 or self.indices.max() >= len(cache):
                raise IndexError(f"indices must lie in [0, {len(cache)})")
        self.rank, self.world_size = int(rank), int(world_size)
        self.prefetch = int(prefetch)
        if int(gather_threads) < 1:
            raise ValueError(f"gather_threads must be >= 1, got {gather_threads}")
        self.gather_threads = int(gather_threads)
        self.views: dict[str, tuple[str, ...]] = {}
        for name, pipeline in self.pipelines.items():
            field = pipeline.field or name
            self.views[field] = (*self.views.get(field, ()), name)
        for field in raw_fields:
            if cache.field_types.get(field) != "ImageBytes":
                raise FieldNotFoundError(
                    f"{cache.path}: {field!r} is not an image field; "
                    f"image fields: {cache.image_fields}"
                )
            self.views.setdefault(field, ())
        self._stores = {field: self._open_store(field) for field in self.views}
        self._slots: list[EncodedBatch] = []
        self._ring_size = 0

    def _open_store(self, field: str) -> _Store:
        data, meta = self.cache.data(field), self.cache.meta(field)
        if self.image_format == "yuv420":
            from slipstream.cache.yuv420 import build_yuv420

            companion = build_yuv420(self.cache, field)
            data, meta = companion.data, companion.meta
        checksums = formats = None
        source = f"field {field!r} of {self.cache.path}"
        if self.image_format == "yuv420":
            checksums = companion.checksums
            source = f"the YUV420 companion of field {field!r} in {companion.folder}"
        elif hasattr(self.cache, "checksums"):
            checksums = self.cache.checksums(field)
        if self.image_format == "jpeg":
            formats = stored_item_formats(self.cache, field)
        return _Store(
            np.asarray(data),
            *(
                np.ascontiguousarray(meta[key])
                for key in ("data_ptr", "data_size", "height", "width")
            ),
            checksums=None if checksums is None else np.ascontiguousarray(checksums, np.uint64),
            source=source,
            formats=None if formats is None else np.ascontiguousarray(formats, np.uint8),
        )

    # ------------------------------------------------------------------ order
    def epoch_ids(self, epoch: int) -> np.ndarray:
        """Sample ids this rank visits in ``epoch``, in order."""
        return epoch_order(
            len(self.cache),
            seed=self.seed,
            epoch=epoch,
            order=self.order,
            indices=self.indices,
            rank=self.rank,
            world_size=self.world_size,
            drop_last=self.drop_last,
        )

    def samples_per_epoch(self) -> int:
        """Samples this rank sees per epoch (padded or trimmed to split evenly across ranks)."""
        total = len(self.cache) if self.indices is None else len(self.indices)
        if self.drop_last:
            return total // self.world_size
        return -(-total // self.world_size)

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return num_batches(self.samples_per_epoch(), self.batch_size, self.drop_last)

    # ------------------------------------------------------------------ slots
    def reserve(self, in_flight: int) -> None:
        """Size the ring for an engine that holds up to ``in_flight`` batches at once."""
        self._ring_size = max(self._ring_size, self.prefetch + 1 + int(in_flight))

    def _ring(self) -> list[EncodedBatch]:
        if not self._ring_size:
            raise RuntimeError("Prefetcher.reserve(in_flight) must be called before start()")
        if len(self._slots) < self._ring_size:
            fields = {
                field: (self._field_format(field), views, self._capacity(field))
                for field, views in self.views.items()
            }
            while len(self._slots) < self._ring_size:
                self._slots.append(allocate_batch(self.batch_size, fields))
        return list(self._slots)

    def field_formats(self) -> dict[str, str]:
        """Image field -> what its gathered items are (``EncodedImages.format``)."""
        return {field: self._field_format(field) for field in self.views}

    def _field_format(self, field: str) -> str:
        """What the gathered items of ``field`` are (:class:`EncodedImages.format`)."""
        return "yuv420" if self.image_format == "yuv420" else self._stores[field].format

    def _capacity(self, field: str) -> int:
        sizes = np.sort(self._stores[field].sizes)
        return int(sizes[-self.batch_size :].sum())

    def _corrupt_items(self, batch: EncodedBatch) -> tuple[np.ndarray, list[tuple[int, str, str]]]:
        items = []
        for field, images in batch.images.items():
            for position in images.corrupt_rows(batch.count).tolist():
                message = (
                    f"stored bytes differ from their checksum (xxh64) in "
                    f"{self._stores[field].source}: the file is damaged"
                )
                items.append((position, field, message))
        return (batch.ids() if items else batch.sample_ids[:0]), items

    def release_slots(self) -> None:
        """Drop the gathered-batch buffers (between epochs only); reallocated on next start."""
        self._slots = []

    def _abandon(self, batch: EncodedBatch) -> None:
        self._slots = [slot for slot in self._slots if slot is not batch]

    # ------------------------------------------------------------------ epochs
    def start(self, epoch: int, start_sample: int = 0) -> EpochStream:
        """Start gathering ``epoch`` from sample ``start_sample`` of this rank's order.

        Batches are cut from there on (``batch_size`` samples each; with ``drop_last`` a
        final partial one is dropped), so a run resumed mid-epoch at another batch size
        sees exactly the samples the saved run had left. Every batch must be released.
        """
        start_sample = int(start_sample)
        if not 0 <= start_sample <= self.samples_per_epoch():
            raise ValueError(
                f"start_sample {start_sample} is not in [0, {self.samples_per_epoch()}] "
                f"(samples per epoch on this rank)"
            )
        return EpochStream(self, epoch, start_sample)

    def _plan(self, epoch: int, start_sample: int) -> Iterator[tuple[int, int, np.ndarray]]:
        ids = self.epoch_ids(epoch)[start_sample:]
        for b in range(num_batches(len(ids), self.batch_size, self.drop_last)):
            yield epoch, b, ids[b * self.batch_size : (b + 1) * self.batch_size]

    def order_state(self) -> dict[str, object]:
        """What determines this rank's epoch orders (a saved position is valid only with it)."""
        if self.indices is None:
            indices = "all"
        else:
            indices = hashlib.sha256(np.ascontiguousarray(self.indices).tobytes()).hexdigest()
        return {
            "indices": indices[:32],
            "world_size": self.world_size,
            "rank": self.rank,
            "drop_last": self.drop_last,
            "shuffle": self.shuffle,
            "order": self.order,
            "samples_per_epoch": self.samples_per_epoch(),
        }

    def _gather(
        self,
        batch: EncodedBatch,
        epoch: int,
        index: int,
        ids: np.ndarray,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        n = len(ids)
        batch.count, batch.epoch, batch.index = n, epoch, index
        batch.sample_ids[:n] = ids
        for field, images in batch.images.items():
            store = self._stores[field]
            sizes = images.sizes[:n]
            np.take(store.sizes, ids, out=sizes)
            pointers, offsets = store.pointers[ids], images.offsets[:n]
            if store.checksums is None or images.corrupt is None:
                gather_bytes_in_parts(
                    pool, self.gather_threads, store.data, pointers, sizes, images.data, offsets
                )
                if images.corrupt is not None:
                    images.corrupt[:n] = 0
            else:
                expected, corrupt = store.checksums[ids], images.corrupt[:n]
                gather_bytes_in_parts(
                    pool,
                    self.gather_threads,
                    store.data,
                    pointers,
                    sizes,
                    images.data,
                    offsets,
                    expected,
                    corrupt,
                )
            if images.formats is not None:
                np.take(store.formats, ids, out=images.formats[:n])
            heights, widths = store.heights[ids], store.widths[ids]
            images.shapes[:n, 0], images.shapes[:n, 1] = heights, widths
            for k, name in enumerate(images.views):
                pipeline = self.pipelines[name]
                key = {"seed": self.seed, "epoch": epoch, "view": pipeline.view}
                images.windows[k, :n] = pipeline.crop.windows(heights, widths, ids, **key)
                if pipeline.flip_probability > 0:
                    images.flips[k, :n] = flips(ids, probability=pipeline.flip_probability, **key)
                else:
                    images.flips[k, :n] = 0
