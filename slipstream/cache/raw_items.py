"""Raw RGB items: what a build stores for a source image that is not a JPEG.

A JPEG source is stored as its own bytes. Any other image Pillow reads (PNG, WebP, BMP,
TIFF, FFCV raw-mode items handed over as binary PPM, LitData ``pil`` items) is decoded
once, converted to RGB and stored as its pixels: ``height x width x 3`` uint8, rows back
to back, format code :data:`~slipstream.cache.format.ITEM_FORMAT_RAW` in
``<field>.format.npy`` (see :mod:`slipstream.cache.format`). Nothing is lost, and decoding
it later is a crop and a resize (no entropy decode). ``image_storage="jpeg"`` keeps the
older, lossy behaviour (re-encoded as JPEG at the build's quality).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image

from slipstream.cache.format import (
    IMAGE_STORAGE,
    ITEM_FORMAT_DTYPE,
    ITEM_FORMAT_JPEG,
    ITEM_FORMAT_RAW,
    item_format_file,
)
from slipstream.cache.jpeg_check import ImageCheckError
from slipstream.cache.jpeg_scan import prepare_images
from slipstream.cache.packed_items import PackedItems

__all__ = ["decode_to_raw", "prepare_stored_images", "raw_pixels", "stored_item_formats"]

_JPEG_SOI = b"\xff\xd8"


def decode_to_raw(data: bytes | memoryview | np.ndarray) -> tuple[bytes, int, int]:
    """Decode any image Pillow reads to its RGB pixels.

    Args:
        data: The encoded image.

    Returns:
        ``(pixels, height, width)``: ``height * width * 3`` bytes, RGB, rows back to back.

    Raises:
        ImageCheckError: Empty, or Pillow cannot decode it completely.
    """
    if len(data) == 0:
        raise ImageCheckError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            pixels = rgb.tobytes()
    except Exception as exc:  # Pillow raises many types for bad data
        raise ImageCheckError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    return pixels, rgb.height, rgb.width


def _jpeg_flags(items: list | PackedItems) -> np.ndarray:
    """Per item: whether it starts like a JPEG (SOI marker)."""
    if isinstance(items, PackedItems):
        data, offsets, sizes = items.data, items.offsets, items.sizes
        flags = sizes >= 2
        at = offsets[flags]
        flags[flags] = (data[at] == 0xFF) & (data[at + 1] == 0xD8)
        return flags
    return np.array([bytes(item[:2]) == _JPEG_SOI for item in items], dtype=bool)


def prepare_stored_images(
    items: list | PackedItems, quality: int, image_storage: str = "raw"
) -> tuple[list | PackedItems, np.ndarray, np.ndarray, np.ndarray, dict[int, str], dict[int, str]]:
    """Check a column of source images and make what the cache stores for each.

    JPEGs go through :func:`~slipstream.cache.jpeg_scan.prepare_images` (stored as is, or
    re-encoded when the kernel cannot decode them); other images are decoded to raw RGB
    (``image_storage="raw"``) or re-encoded as JPEG (``"jpeg"``).

    Args:
        items: Encoded images (a list or a :class:`PackedItems` column).
        quality: JPEG quality for re-encoded images.
        image_storage: One of :data:`~slipstream.cache.format.IMAGE_STORAGE`.

    Returns:
        ``(stored, heights, widths, formats, reencoded, errors)``: as ``prepare_images``,
        plus the uint8 format code of every stored item.

    Raises:
        ValueError: An unknown ``image_storage``.
    """
    if image_storage not in IMAGE_STORAGE:
        raise ValueError(f"image_storage must be one of {IMAGE_STORAGE}, got {image_storage!r}")
    count = len(items)
    formats = np.full(count, ITEM_FORMAT_JPEG, dtype=ITEM_FORMAT_DTYPE)
    jpeg = _jpeg_flags(items) if image_storage == "raw" else np.ones(count, dtype=bool)
    if jpeg.all():
        stored, heights, widths, reencoded, errors = prepare_images(items, quality)
        return stored, heights, widths, formats, reencoded, errors
    whole = items.to_list() if isinstance(items, PackedItems) else list(items)
    jpeg_rows = np.flatnonzero(jpeg)
    stored_jpegs, jh, jw, j_reencoded, j_errors = prepare_images(
        [whole[i] for i in jpeg_rows.tolist()], quality
    )
    stored: list[Any] = [b""] * count
    heights = np.zeros(count, np.uint32)
    widths = np.zeros(count, np.uint32)
    heights[jpeg_rows], widths[jpeg_rows] = jh, jw
    reencoded: dict[int, str] = {}
    errors: dict[int, str] = {}
    for j, i in enumerate(jpeg_rows.tolist()):
        stored[i] = stored_jpegs[j]
        if j in j_reencoded:
            reencoded[i] = j_reencoded[j]
        if j in j_errors:
            errors[i] = j_errors[j]
    for i in np.flatnonzero(~jpeg).tolist():
        try:
            stored[i], heights[i], widths[i] = decode_to_raw(whole[i])
        except ImageCheckError as exc:
            errors[i] = str(exc)
            continue
        formats[i] = ITEM_FORMAT_RAW
    return stored, heights, widths, formats, reencoded, errors


def stored_item_formats(store: Any, field: str) -> np.ndarray | None:
    """The per-item format codes of an image field, or None when every item is a JPEG.

    Args:
        store: A :class:`~slipstream.cache.SlipCache` or an FFCV file read in place
            (anything with ``item_formats(field)``); other stores are all JPEG.
        field: The image field.
    """
    item_formats = getattr(store, "item_formats", None)
    return None if item_formats is None else item_formats(field)


def raw_pixels(store: Any, field: str, index: int) -> np.ndarray | None:
    """Zero-copy ``[height, width, 3]`` view of one raw RGB item, or None for a JPEG item.

    Args:
        store: A slip cache or an FFCV file (see :func:`stored_item_formats`).
        field: The image field.
        index: Sample index.
    """
    codes = stored_item_formats(store, field)
    if codes is None or codes[index] != ITEM_FORMAT_RAW:
        return None
    record = store.meta(field)[index]
    item = store.item_bytes(field, index)
    return np.asarray(item).reshape(int(record["height"]), int(record["width"]), 3)


def write_item_formats(folder: Any, field: str, codes: np.ndarray) -> str:
    """Write ``<field>.format.npy`` into ``folder``; returns its file name."""
    name = item_format_file(field)
    with open(folder / name, "wb") as f:
        np.save(f, np.ascontiguousarray(codes, dtype=ITEM_FORMAT_DTYPE))
        f.flush()
        os.fsync(f.fileno())
    return name
