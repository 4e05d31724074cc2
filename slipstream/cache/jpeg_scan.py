"""Fast path of the build's image check: a compiled JPEG marker walk, one call per image.

:func:`scan_portable_jpeg` walks the same markers as
:func:`slipstream.cache.jpeg_check.parse_jpeg_header` (in Numba, nogil, ~1 us per image)
and answers one question: is this a portable JPEG that is stored byte for byte? Only a
"yes" is final. Every other image (not a JPEG, malformed, truncated, not portable) goes
through :func:`~slipstream.cache.jpeg_check.prepare_image`, which re-encodes it or raises
the error naming what is wrong. So the compiled walk can only speed up the check, never
change its outcome; ``tests/test_build_speed_paths.py`` checks the two agree on every
truncation and on random byte flips of real photos.
"""

from __future__ import annotations

import numba
import numpy as np

from slipstream.cache.jpeg_check import (
    JPEG_EOI_WINDOW,
    ImageCheckError,
    PreparedImage,
    prepare_image,
)
from slipstream.cache.packed_items import PackedItems


@numba.njit(nogil=True, cache=True)
def _u16(buf: bytes, pos: int) -> int:  # pragma: no cover (jit)
    """Big-endian uint16 at ``pos``, as int64."""
    return np.int64(buf[pos]) * 256 + np.int64(buf[pos + 1])


@numba.njit(nogil=True, cache=True)
def _tables_ok(buf, marker, start, end):  # pragma: no cover (jit)
    """:func:`~slipstream.cache.jpeg_check.table_problem` is None (the same rules)."""
    pos = start
    while pos < end:
        kind = buf[pos] >> 4
        ident = buf[pos] & 15
        pos += 1
        if kind > 1 or ident > 3:
            return False
        if marker == 0xDB:
            size = 64 * (np.int64(kind) + 1)
            if pos + size > end:
                return False
            if kind == 0:
                for i in range(size):
                    if buf[pos + i] == 0:
                        return False
            else:
                for i in range(0, size, 2):
                    if buf[pos + i] == 0 and buf[pos + i + 1] == 0:
                        return False
            pos += size
            continue
        if pos + 16 > end:
            return False
        total = np.int64(0)
        code = np.int64(0)
        for length in range(1, 17):
            count = np.int64(buf[pos + length - 1])
            total += count
            code += count
            if count > 0 and code >= (np.int64(1) << length):
                return False
            code = code << 1
        pos += 16
        if total > 256 or pos + total > end:
            return False
        if kind == 0:
            for i in range(total):
                if buf[pos + i] > 15:
                    return False
        pos += total
    return True


@numba.njit(nogil=True, cache=True)
def _scan(buf, first: int, end: int, eoi_window: int):  # pragma: no cover (jit)
    """``(portable, height, width)`` of ``buf[first:end]`` (bytes or a uint8 array).

    Mirrors ``parse_jpeg_header`` + ``JpegHeader.portable``: the markers up to the first
    scan, the frame header, and every Huffman and quantization table before that scan.
    """
    n = end
    if n - first < 4 or buf[first] != 0xFF or buf[first + 1] != 0xD8 or buf[first + 2] != 0xFF:
        return False, 0, 0
    pos = first + 2
    height = width = np.int64(0)
    while True:
        if pos >= n or buf[pos] != 0xFF:
            return False, 0, 0
        while pos < n and buf[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            return False, 0, 0
        marker = buf[pos]
        pos += 1
        if (0xD0 <= marker <= 0xD7) or marker == 0x01:  # standalone markers
            continue
        if marker == 0xDA and height > 0:  # the first scan: every table checked
            break
        if marker == 0xD8 or marker == 0xD9 or marker == 0xDA:  # SOI, EOI, SOS before SOF
            return False, 0, 0
        if pos + 2 > n:
            return False, 0, 0
        length = _u16(buf, pos)
        if length < 2 or pos + length > n:
            return False, 0, 0
        if 0xC0 <= marker <= 0xCF and marker != 0xC4 and marker != 0xC8 and marker != 0xCC:
            if length < 8:
                return False, 0, 0
            precision = buf[pos + 2]
            frame_height = _u16(buf, pos + 3)
            frame_width = _u16(buf, pos + 5)
            components = buf[pos + 7]
            if frame_height == 0 or frame_width == 0:
                return False, 0, 0
            if marker > 0xC2 or precision != 8 or (components != 1 and components != 3):
                return False, 0, 0
            if height == 0:
                height, width = frame_height, frame_width
        elif marker == 0xC4 or marker == 0xDB:
            if not _tables_ok(buf, marker, pos + 2, pos + length):
                return False, 0, 0
        pos += length
    for start in range(n - 2, max(first, n - eoi_window) - 1, -1):
        if buf[start] == 0xFF and buf[start + 1] == 0xD9:
            return True, height, width
    return False, 0, 0


@numba.njit(nogil=True, cache=True)
def _scan_packed(data, offsets, sizes, eoi_window, portable, heights, widths):  # pragma: no cover
    """:func:`_scan` of every item of a packed column."""
    for i in range(offsets.shape[0]):
        start = offsets[i]
        portable[i], heights[i], widths[i] = _scan(data, start, start + sizes[i], eoi_window)


def scan_portable_jpeg(data: bytes) -> tuple[bool, int, int]:
    """Whether ``data`` is a JPEG stored as is, and its size.

    Args:
        data: The encoded file (``bytes``).

    Returns:
        ``(True, height, width)`` for a portable, complete JPEG; ``(False, 0, 0)`` for
        anything that needs :func:`~slipstream.cache.jpeg_check.prepare_image`'s verdict.
    """
    return _scan(data, 0, len(data), JPEG_EOI_WINDOW)


def prepare_images(
    items: list | PackedItems, quality: int
) -> tuple[list | PackedItems, np.ndarray, np.ndarray, dict[int, str], dict[int, str]]:
    """Check a column of encoded images: the compiled walk first, ``prepare_image`` else.

    Args:
        items: Encoded images: a list (``bytes``, ``memoryview`` or ``uint8`` arrays) or
            a :class:`~slipstream.cache.packed_items.PackedItems` column.
        quality: JPEG quality for re-encoded images.

    Returns:
        ``(stored, heights, widths, reencoded, errors)``: the items to store (``items``
        itself when every image is stored as is, else a list of ``bytes``), uint32 heights
        and widths, and position -> reason for re-encoded items and for bad items (whose
        stored item, height and width are placeholders).
    """
    count = len(items)
    heights = np.zeros(count, np.uint32)
    widths = np.zeros(count, np.uint32)
    portable = np.zeros(count, np.bool_)
    stored: list | PackedItems
    if isinstance(items, PackedItems):
        _scan_packed(
            items.data, items.offsets, items.sizes, JPEG_EOI_WINDOW, portable, heights, widths
        )
        stored = items
    else:
        stored = [item if isinstance(item, bytes) else bytes(item) for item in items]
        for i, data in enumerate(stored):
            portable[i], heights[i], widths[i] = _scan(data, 0, len(data), JPEG_EOI_WINDOW)
    reencoded: dict[int, str] = {}
    errors: dict[int, str] = {}
    others = np.flatnonzero(~portable)
    if len(others) and isinstance(stored, PackedItems):
        stored = stored.to_list()
    for i in others.tolist():
        try:
            prepared: PreparedImage = prepare_image(stored[i], quality)
        except (ImageCheckError, OSError) as exc:
            errors[i] = str(exc)
            stored[i] = b""
            continue
        stored[i] = prepared.data
        heights[i], widths[i] = prepared.height, prepared.width
        if prepared.reencoded is not None:
            reencoded[i] = prepared.reencoded
    return stored, heights, widths, reencoded, errors
