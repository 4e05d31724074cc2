"""Read and check samples for a cache build, a batch of consecutive samples at a time.

A batch is a dict of columns (field -> list or array of values), read with the reader's
``read_batch(start, stop)`` where it has one (e.g. file readers: no per-sample dict) and
assembled from ``read_sample`` calls otherwise. Image columns are checked by
:func:`~slipstream.cache.raw_items.prepare_stored_images` (JPEGs as they are, other images
as raw RGB pixels); bad samples are taken out of the batch
and reported with their reason. :func:`ordered_batches` runs this in a thread pool and
yields the batches in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slipstream.cache.decode_check import decode_failures
from slipstream.cache.format import IMAGE_TYPE, ITEM_FORMAT_JPEG
from slipstream.cache.jpeg_check import ImageCheckError
from slipstream.cache.packed_items import PackedItems
from slipstream.cache.raw_items import prepare_stored_images
from slipstream.errors import SlipstreamError

BATCH_SIZE = 128
"""Samples per batch read and checked by one task."""


class CacheBuildError(SlipstreamError, RuntimeError):
    """A cache could not be built; names the sample (``reader.describe(i)``) at fault."""


@dataclass
class CheckedBatch:
    """Samples ``start .. start + count - 1`` of a reader, checked and ready to write.

    Attributes:
        start: Source index of the first sample.
        count: Samples read, bad ones included.
        columns: Field -> the good samples' values (images as the bytes to store).
        image_sizes: Image field -> ``(heights, widths)`` of the good samples.
        item_formats: Image field -> uint8 format code of each good sample's stored item.
        reencoded: ``(source index, reason)`` of re-encoded images.
        errors: ``(source index, reason)`` of bad samples, left out of ``columns``.
    """

    start: int
    count: int
    columns: dict[str, Any]
    image_sizes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    item_formats: dict[str, np.ndarray] = field(default_factory=dict)
    reencoded: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_checked_batch(
    reader: Any,
    field_types: dict[str, str],
    start: int,
    stop: int,
    quality: int,
    check_decode: bool = False,
    image_storage: str = "raw",
    exif_transpose: bool = False,
) -> CheckedBatch:
    """Read samples ``start .. stop-1`` as columns and check their images.

    Args:
        reader: The source reader.
        field_types: Field -> type, as the cache stores them.
        start: First source index.
        stop: One past the last source index.
        quality: JPEG quality for re-encoded images.
        check_decode: Also decode every JPEG to store once
            (:func:`~slipstream.cache.decode_check.decode_failures`); one that fails is a
            bad sample.
        image_storage: ``"raw"`` (non-JPEG images as RGB pixels) or ``"jpeg"``
            (re-encoded at ``quality``).
        exif_transpose: Store images with an EXIF Orientation other than 1 upright
            (:mod:`slipstream.cache.raw_items`).

    Returns:
        The batch, bad samples moved to ``errors``.

    Raises:
        CacheBuildError: A sample lacks a field.
    """
    errors: dict[int, str] = {}
    columns = None
    if has_batch_reads(reader):
        try:
            columns = reader.read_batch(start, stop)
        except OSError:
            columns = None  # find the bad file sample by sample
    if columns is None:
        columns = _columns_from_samples(reader, field_types, start, stop, errors)
    missing = [name for name in field_types if name not in columns]
    if missing:
        raise CacheBuildError(f"{reader.describe(start)}: sample has no field {missing[0]!r}")
    batch = CheckedBatch(start, stop - start, columns)
    for name, kind in field_types.items():
        if kind != IMAGE_TYPE:
            continue
        stored, heights, widths, formats, reencoded, bad = prepare_stored_images(
            columns[name], quality, image_storage, exif_transpose
        )
        columns[name] = stored
        batch.image_sizes[name] = (heights, widths)
        batch.item_formats[name] = formats
        batch.reencoded += [(start + i, reason) for i, reason in reencoded.items()]
        for i, reason in bad.items():
            errors.setdefault(i, reason)
        if check_decode:
            jpegs = np.flatnonzero(formats == ITEM_FORMAT_JPEG)
            items = stored if len(jpegs) == len(formats) else [stored[i] for i in jpegs]
            for i, reason in decode_failures(items).items():
                errors.setdefault(int(jpegs[i]), reason)
    if errors:
        _drop_rows(batch, sorted(errors))
        batch.errors = [(start + i, errors[i]) for i in sorted(errors)]
    return batch


def has_batch_reads(reader: Any) -> bool:
    """Whether ``read_batch`` reads what ``read_sample`` reads.

    A reader's ``read_batch`` is used unless a subclass overrides ``read_sample`` below the
    class that defines ``read_batch`` (then its ``read_sample`` is what counts).

    Args:
        reader: The source reader.
    """
    mro = type(reader).__mro__
    batch = next((k for k in mro if "read_batch" in vars(k)), None)
    sample = next((k for k in mro if "read_sample" in vars(k)), None)
    return batch is not None and sample is not None and issubclass(batch, sample)


def _columns_from_samples(
    reader: Any, field_types: dict[str, str], start: int, stop: int, errors: dict[int, str]
) -> dict[str, list[Any]]:
    """Columns from per-sample ``read_sample`` dicts; unreadable samples go to ``errors``."""
    columns: dict[str, list[Any]] = {name: [] for name in field_types}
    for index in range(start, stop):
        try:
            sample = reader.read_sample(index)
        except (ImageCheckError, OSError) as exc:
            errors[index - start] = str(exc)
            sample = None
        for name, values in columns.items():
            if sample is None:
                values.append(b"" if field_types[name] == IMAGE_TYPE else None)
            elif name in sample:
                values.append(sample[name])
            else:
                raise CacheBuildError(f"{reader.describe(index)}: sample has no field {name!r}")
    return columns


def _drop_rows(batch: CheckedBatch, positions: list[int]) -> None:
    """Remove the samples at ``positions`` (within the batch) from every column."""
    keep = np.ones(batch.count, dtype=bool)
    keep[positions] = False
    kept = np.flatnonzero(keep)
    for name, values in batch.columns.items():
        if isinstance(values, PackedItems):
            values = values.to_list()
        if isinstance(values, np.ndarray):
            batch.columns[name] = values[keep]
        else:
            batch.columns[name] = [values[i] for i in kept]
    for name, (heights, widths) in batch.image_sizes.items():
        batch.image_sizes[name] = (heights[keep], widths[keep])
    for name, formats in batch.item_formats.items():
        batch.item_formats[name] = formats[keep]
    dropped = {batch.start + i for i in positions}
    batch.reencoded = [entry for entry in batch.reencoded if entry[0] not in dropped]


def ordered_batches(
    load: Callable[[int, int], CheckedBatch], total: int, num_workers: int
) -> Iterator[CheckedBatch]:
    """Yield ``load(start, stop)`` for consecutive batches covering ``range(total)``, in order.

    Args:
        load: Reads one batch (e.g. :func:`read_checked_batch` with the reader bound).
        total: Number of samples.
        num_workers: Threads that run ``load``; 0 runs it inline. At most
            ``num_workers + 1`` batches are in memory at once.

    Yields:
        The batches, in sample order.
    """
    starts = range(0, total, BATCH_SIZE)
    if num_workers <= 0:
        for start in starts:
            yield load(start, min(start + BATCH_SIZE, total))
        return
    pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="slip-build")
    pending: deque[Future] = deque()
    try:
        queued = iter(starts)
        for start in queued:
            pending.append(pool.submit(load, start, min(start + BATCH_SIZE, total)))
            if len(pending) > num_workers:
                break
        while pending:
            batch = pending.popleft().result()
            for start in queued:
                pending.append(pool.submit(load, start, min(start + BATCH_SIZE, total)))
                break
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
