"""Decode every stored JPEG once, in parallel: the build's and ``verify``'s decode check.

The build's marker walk (:mod:`slipstream.cache.jpeg_check`) catches damaged headers and
tables cheaply; only a full decode catches damage inside the entropy-coded data (a
corrupted scan, a premature end). :func:`decode_failures` runs the C++ kernel's full
decode (:func:`slipstream.native.decode.decode_full`, which releases the GIL) on a
thread pool over a list of items; the build (``check_decode=True``, CLI ``slipstream
build --check decode``) drops or reports the failures like any unreadable sample, and
:func:`check_cache_decode` checks an existing cache (``slipstream verify``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from tqdm import tqdm

from slipstream.cache.raw_items import stored_item_formats
from slipstream.logs import show_progress

__all__ = ["DECODE_CHECK_CHUNK", "check_cache_decode", "decode_failures"]

DECODE_CHECK_CHUNK = 256
"""Items decoded per task of the thread pool."""

_JPEG_START = b"\xff\xd8"


def _decode_one(item: Any) -> str | None:
    """The kernel's message for an item that does not decode, else None."""
    from slipstream.native.decode import DecodeError, decode_full

    data = np.frombuffer(memoryview(item), dtype=np.uint8)
    if len(data) < 2 or bytes(data[:2]) != _JPEG_START:
        return None  # not a JPEG (raw pixels, another codec): nothing to decode here
    try:
        decode_full(data)
    except DecodeError as exc:
        return f"does not decode: {exc}"
    return None


def _chunk(items: Sequence[Any], start: int, stop: int) -> list[tuple[int, str]]:
    failures = []
    for i in range(start, stop):
        message = _decode_one(items[i])
        if message is not None:
            failures.append((i, message))
    return failures


def decode_failures(
    items: Sequence[Any], num_threads: int | None = None, pool: ThreadPoolExecutor | None = None
) -> dict[int, str]:
    """Decode each JPEG item fully once; the ones that fail, with the kernel's message.

    Args:
        items: Encoded images (bytes-like); items that are not JPEGs are not checked.
        num_threads: Decode threads (default: the usable cores); ignored with ``pool``.
        pool: A thread pool to run on (default: one made for this call).

    Returns:
        Position in ``items`` -> why it does not decode.
    """
    n = len(items)
    own = pool is None
    if pool is None:
        threads = num_threads or len(os.sched_getaffinity(0))
        if threads <= 1 or n <= DECODE_CHECK_CHUNK // 8:
            return dict(_chunk(items, 0, n))
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slip-decode-check")
    try:
        step = max(1, min(DECODE_CHECK_CHUNK, -(-n // (2 * getattr(pool, "_max_workers", 1)))))
        futures = [pool.submit(_chunk, items, s, min(s + step, n)) for s in range(0, n, step)]
        return {i: message for future in futures for i, message in future.result()}
    finally:
        if own:
            pool.shutdown(wait=True)


def check_cache_decode(
    cache: Any,
    fields: Sequence[str] | None = None,
    num_threads: int | None = None,
    progress: bool | None = None,
) -> list[tuple[int, str, str]]:
    """Decode every stored JPEG of a slip cache once; what does not decode.

    Args:
        cache: An open :class:`~slipstream.cache.SlipCache`.
        fields: Image fields to check (default: every image field).
        num_threads: Decode threads (default: the usable cores).
        progress: Show a progress bar (default: the package setting).

    Returns:
        ``(sample index, field, message)`` per item that fails, in index order.
    """
    from slipstream.cache.format import IMAGE_TYPE

    if fields is None:
        fields = [name for name, kind in cache.field_types.items() if kind == IMAGE_TYPE]
    threads = num_threads or len(os.sched_getaffinity(0))
    found: list[tuple[int, str, str]] = []
    total = len(cache) * len(fields)
    bar = tqdm(total=total, disable=not show_progress(progress), unit="img", desc="decoding")
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slip-decode-check") as pool:
        for name in fields:
            for start, items in _cache_items(cache, name):
                for i, message in sorted(decode_failures(items, pool=pool).items()):
                    found.append((start + i, name, message))
                bar.update(len(items))
    bar.close()
    return found


def _cache_items(cache: Any, field: str, step: int = 4096) -> Iterator[tuple[int, list[Any]]]:
    """``(first index, items)`` of consecutive slices of a field's stored bytes (views)."""
    meta = cache.meta(field)
    data = cache.data(field)
    codes = stored_item_formats(cache, field)  # raw RGB items have nothing to decode
    for start in range(0, len(cache), step):
        stop = min(start + step, len(cache))
        ptrs = np.asarray(meta["data_ptr"][start:stop], dtype=np.int64)
        sizes = np.asarray(meta["data_size"][start:stop], dtype=np.int64)
        if codes is not None:  # an empty item is skipped (not a JPEG)
            sizes = np.where(np.asarray(codes[start:stop]) == 0, sizes, 0)
        yield start, [data[p : p + s] for p, s in zip(ptrs.tolist(), sizes.tolist(), strict=True)]
