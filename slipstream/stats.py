"""Per-channel mean and std of a dataset's images, for ``Normalize``.

Every pixel of every decoded image counts once (large images weigh more, as in the original
slipstream and in torchvision's usual recipe). Each image becomes a ``[3, 256]`` histogram
of its channel levels on a thread pool (the native decoders and the Numba counting loop
release the GIL); the histograms add up exactly in integers, so the result does not depend
on thread count or order, and mean and variance come from them in float64.

Example:
    >>> from slipstream import SlipstreamDataset, compute_normalization_stats  # doctest: +SKIP
    >>> compute_normalization_stats(SlipstreamDataset("train.slip"))  # doctest: +SKIP
    {'mean': (0.485, 0.456, 0.406), 'std': (0.229, 0.224, 0.225)}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numba
import numpy as np
from tqdm import tqdm

from slipstream.arguments import check_choice
from slipstream.cache import SlipCache
from slipstream.cache.raw_items import raw_pixels
from slipstream.cache.yuv420 import Yuv420Error, companion_folder, open_yuv420
from slipstream.errors import SlipstreamError
from slipstream.logs import show_progress
from slipstream.native import DecodeError, decode_full, yuv420_to_rgb

__all__ = ["ImageStatsError", "compute_normalization_stats"]

logger = logging.getLogger(__name__)


@numba.njit(nogil=True, cache=True)
def _count_levels(pixels: np.ndarray, counts: np.ndarray) -> None:
    """Add the levels of interleaved 3-channel ``uint8`` pixels to ``counts [3, 256]``."""
    for i in range(pixels.shape[0] // 3):
        counts[0, pixels[3 * i]] += 1
        counts[1, pixels[3 * i + 1]] += 1
        counts[2, pixels[3 * i + 2]] += 1


class ImageStatsError(SlipstreamError, ValueError):
    """Statistics could not be computed; the message names the cache and sample or file.

    An undecodable sample, a missing YUV420 companion, or an argument out of range.
    """


def compute_normalization_stats(
    cache: Any,
    image_field: str = "image",
    image_format: str = "jpeg",
    colorspace: str = "rgb",
    num_samples: int | None = None,
    batch_size: int = 256,
    num_threads: int = 0,
    verbose: bool = True,
    *,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """Per-channel mean and standard deviation of the decoded images, in ``[0, 1]``.

    Args:
        cache: A :class:`~slipstream.SlipstreamDataset`, a
            :class:`~slipstream.cache.SlipCache` (or an FFCV file read in place), or the
            path of a slip cache.
        image_field: The image field.
        image_format: ``"jpeg"``: decode the stored JPEGs (libjpeg-turbo, accurate DCT).
            ``"yuv420"``: read the field's YUV420 companion (build it first, e.g. with
            ``SlipstreamLoader(..., image_format="yuv420")``).
        colorspace: ``"rgb"`` (default), or ``"yuv"`` with ``image_format="yuv420"``: the
            stored planes as ``(Y, U, V)`` at full resolution, chroma repeated over its
            2x2 block (nearest neighbour), as the original slipstream's YUV statistics.
        num_samples: None for every image, or a random subset of this many images (drawn
            without replacement with ``seed``; the original took the first ones).
        batch_size: Images per task handed to a thread.
        num_threads: Decoding threads; 0 for one per core.
        verbose: Show a progress bar (see :func:`slipstream.logs.show_progress`) and log
            the result (logger ``slipstream.stats``, INFO).
        seed: Seed of the ``num_samples`` subset.

    Returns:
        ``{"mean": (c0, c1, c2), "std": (c0, c1, c2)}``: channels ``(R, G, B)``, or
        ``(Y, U, V)`` for ``colorspace="yuv"``; population std over all pixels.

    Raises:
        ImageStatsError: A sample does not decode (names it), the companion is missing, or
            an argument is out of range.
        KeyError: No such image field.
    """
    check_choice("image_format", image_format, ("jpeg", "yuv420"))
    check_choice("colorspace", colorspace, ("rgb", "yuv"))
    if colorspace == "yuv" and image_format != "yuv420":
        raise ImageStatsError('colorspace="yuv" needs image_format="yuv420" (JPEG gives RGB)')
    if batch_size < 1 or num_threads < 0:
        raise ImageStatsError(
            f"batch_size must be >= 1 and num_threads >= 0, got {batch_size}, {num_threads}"
        )
    store = _as_store(cache)
    total = store.num_samples
    if num_samples is None:
        ids = np.arange(total, dtype=np.int64)
    else:
        if not 1 <= int(num_samples):
            raise ImageStatsError(f"num_samples must be >= 1 or None, got {num_samples}")
        take = min(int(num_samples), total)
        ids = np.sort(np.random.default_rng(seed).choice(total, take, replace=False))
    if len(ids) == 0:
        raise ImageStatsError(f"{store.path}: no images to compute statistics of")
    histogram_of = _image_histograms(store, image_field, image_format, colorspace)
    threads = num_threads or os.cpu_count() or 1
    bar = tqdm(
        total=len(ids),
        unit="img",
        desc=f"normalization stats of {image_field}",
        disable=not show_progress(None if verbose else False),
    )
    counts = np.zeros((3, 256), dtype=np.int64)
    try:
        for part, done in _map_bounded(histogram_of, _chunks(ids, batch_size), threads):
            counts += part
            bar.update(done)
    finally:
        bar.close()
    stats = _mean_std(counts)
    if verbose:
        names = "YUV" if colorspace == "yuv" else "RGB"
        logger.info(
            "%s: %s stats of %d images, %d pixels: mean %s, std %s",
            store.path,
            names,
            len(ids),
            int(counts[0].sum()),
            stats["mean"],
            stats["std"],
        )
    return stats


def _as_store(cache: Any) -> Any:
    if isinstance(cache, (str, os.PathLike)):
        return SlipCache.open(cache)
    return getattr(cache, "cache", cache)  # a SlipstreamDataset holds its store


def _image_histograms(
    store: Any, field: str, image_format: str, colorspace: str
) -> Callable[[np.ndarray], tuple[np.ndarray, int]]:
    """A function: sample ids -> (their summed ``[3, 256]`` level counts, how many)."""
    store.meta(field)  # raises KeyError (no such field) or TypeError (not an image)
    if image_format == "jpeg":

        def pixels(i: int) -> np.ndarray:
            raw = raw_pixels(store, field, i)  # a raw RGB item: its pixels as stored
            return raw if raw is not None else decode_full(store.item_bytes(field, i))

    else:
        companion = _open_companion(store, field)
        data, table = companion.data, companion.meta

        def pixels(i: int) -> np.ndarray:
            start, size = int(table[i]["data_ptr"]), int(table[i]["data_size"])
            h, w = int(table[i]["height"]), int(table[i]["width"])
            item = data[start : start + size]
            if colorspace == "rgb":
                return yuv420_to_rgb(item, h, w)
            return _yuv_full_resolution(item, h, w)

    def histograms(ids: np.ndarray) -> tuple[np.ndarray, int]:
        counts = np.zeros((3, 256), dtype=np.int64)
        for i in ids:
            try:
                image = pixels(int(i))
            except (DecodeError, ValueError) as exc:
                raise ImageStatsError(
                    f"{store.path}: sample {int(i)} of field {field!r} does not decode ({exc})"
                ) from exc
            _count_levels(np.ascontiguousarray(image).reshape(-1), counts)
        return counts, len(ids)

    return histograms


def _open_companion(store: Any, field: str) -> Any:
    try:
        return open_yuv420(companion_folder(store), field, store.num_samples)
    except (Yuv420Error, OSError) as exc:
        raise ImageStatsError(
            f"{store.path}: no usable YUV420 companion of field {field!r} ({exc}); build it "
            f'first, e.g. with SlipstreamLoader(dataset, ..., image_format="yuv420")'
        ) from exc


def _yuv_full_resolution(item: np.ndarray, h: int, w: int) -> np.ndarray:
    """``[h, w, 3]`` (Y, U, V) of one I420 item, chroma repeated over its 2x2 block."""
    ph, pw = h + h % 2, w + w % 2
    need = ph * pw + 2 * (ph // 2) * (pw // 2)
    if len(item) < need:
        raise ValueError(f"YUV420 item of {h}x{w} holds {len(item)} bytes, needs {need}")
    y = item[: ph * pw].reshape(ph, pw)
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[..., 0] = y[:h, :w]
    quarter = (ph // 2) * (pw // 2)
    for c, start in ((1, ph * pw), (2, ph * pw + quarter)):
        plane = item[start : start + quarter].reshape(ph // 2, pw // 2)
        out[..., c] = plane.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
    return out


def _chunks(ids: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _map_bounded(
    fn: Callable[[np.ndarray], Any], items: Iterator[np.ndarray], threads: int
) -> Iterator[Any]:
    """``fn`` over ``items`` on ``threads`` threads, at most ``2 * threads`` in flight."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="slip-stats")
    pending: list[Future] = []
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * threads:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def _mean_std(counts: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """Mean and population std in ``[0, 1]`` per channel from ``[3, 256]`` level counts."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    n = counts.sum(axis=1).astype(np.float64)
    mean = (counts * levels).sum(axis=1) / n
    var = (counts * (levels - mean[:, None]) ** 2).sum(axis=1) / n
    std = np.sqrt(var)
    return {
        "mean": (float(mean[0]), float(mean[1]), float(mean[2])),
        "std": (float(std[0]), float(std[1]), float(std[2])),
    }
