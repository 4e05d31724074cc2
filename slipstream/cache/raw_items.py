"""Raw RGB items: what a build stores for a source image that is not a JPEG.

A JPEG source is stored as its own bytes. Any other image Pillow reads (PNG, WebP, BMP,
TIFF, FFCV raw-mode items handed over as binary PPM, LitData ``pil`` items) is decoded
once, converted to RGB and stored as its pixels: ``height x width x 3`` uint8, rows back
to back, format code :data:`~slipstream.cache.format.ITEM_FORMAT_RAW` in
``<field>.format.npy`` (see :mod:`slipstream.cache.format`). Nothing is lost, and decoding
it later is a crop and a resize (no entropy decode). ``image_storage="jpeg"`` keeps the
older, lossy behaviour (re-encoded as JPEG at the build's quality).

EXIF orientation is ignored by default, as torchvision's ``ImageFolder`` (Pillow) ignores
it: pixels are stored as encoded. ``exif_transpose=True`` applies Pillow's
``ImageOps.exif_transpose`` to every image whose Orientation tag is not 1: such a JPEG is
decoded, turned upright and stored as raw RGB pixels (re-encoded as JPEG and listed in
``manifest["build"]["reencoded"]`` with reason ``"exif_transpose"`` when
``image_storage="jpeg"``).
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
from PIL import Image, ImageOps

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

__all__ = [
    "decode_to_raw",
    "exif_orientation",
    "prepare_stored_images",
    "raw_pixels",
    "stored_item_formats",
]

_JPEG_SOI = b"\xff\xd8"


def decode_to_raw(
    data: bytes | memoryview | np.ndarray, exif_transpose: bool = False
) -> tuple[bytes, int, int]:
    """Decode any image Pillow reads to its RGB pixels.

    Args:
        data: The encoded image.
        exif_transpose: Turn the image upright by its EXIF Orientation tag first.

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
            upright = ImageOps.exif_transpose(img) if exif_transpose else img
            rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
            pixels = rgb.tobytes()
    except Exception as exc:  # Pillow raises many types for bad data
        raise ImageCheckError(f"not a readable image ({type(exc).__name__}: {exc})") from exc
    return pixels, rgb.height, rgb.width


def exif_orientation(data: bytes | memoryview | np.ndarray) -> int:
    """The EXIF Orientation tag (1..8) of an encoded image; 1 when it has none.

    Cheap for images without EXIF (a byte search of the first 64 KiB); Pillow parses the
    headers of the others.
    """
    if _EXIF_ID not in bytes(memoryview(data)[:65536]):
        return 1
    try:
        with Image.open(io.BytesIO(bytes(data))) as img:
            value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - unreadable: the build's checks report it
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


_EXIF_ID = b"Exif\x00\x00"
_ORIENTATION_TAG = 0x0112


def _item(items: list | PackedItems, i: int) -> Any:
    if isinstance(items, PackedItems):
        start = int(items.offsets[i])
        return items.data[start : start + int(items.sizes[i])]
    return items[i]


def _upright(data: Any, quality: int, image_storage: str) -> tuple[Any, int, int, int]:
    """``(stored, height, width, format code)`` of an image turned upright by its EXIF tag."""
    pixels, height, width = decode_to_raw(data, exif_transpose=True)
    if image_storage == "raw":
        return pixels, height, width, ITEM_FORMAT_RAW
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), pixels).save(out, "JPEG", quality=quality)
    return out.getvalue(), height, width, ITEM_FORMAT_JPEG


def _prepare_upright(
    items: list | PackedItems, quality: int, image_storage: str
) -> tuple[list | PackedItems, np.ndarray, np.ndarray, np.ndarray, dict[int, str], dict[int, str]]:
    """:func:`prepare_stored_images` with ``exif_transpose=True``."""
    count = len(items)
    oriented = [i for i in range(count) if exif_orientation(_item(items, i)) != 1]
    if not oriented:
        return prepare_stored_images(items, quality, image_storage)
    turned = set(oriented)
    rest = [i for i in range(count) if i not in turned]
    r_stored, r_h, r_w, r_formats, r_reencoded, r_errors = prepare_stored_images(
        [_item(items, i) for i in rest], quality, image_storage
    )
    stored: list[Any] = [b""] * count
    heights = np.zeros(count, np.uint32)
    widths = np.zeros(count, np.uint32)
    formats = np.full(count, ITEM_FORMAT_JPEG, dtype=ITEM_FORMAT_DTYPE)
    r_list = r_stored.to_list() if isinstance(r_stored, PackedItems) else list(r_stored)
    reencoded: dict[int, str] = {}
    errors: dict[int, str] = {}
    for j, i in enumerate(rest):
        stored[i], heights[i], widths[i], formats[i] = r_list[j], r_h[j], r_w[j], r_formats[j]
        if j in r_reencoded:
            reencoded[i] = r_reencoded[j]
        if j in r_errors:
            errors[i] = r_errors[j]
    for i in oriented:
        try:
            stored[i], heights[i], widths[i], formats[i] = _upright(
                _item(items, i), quality, image_storage
            )
        except ImageCheckError as exc:
            errors[i] = str(exc)
            continue
        if image_storage != "raw":
            reencoded[i] = "exif_transpose"
    return stored, heights, widths, formats, reencoded, errors


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
    items: list | PackedItems,
    quality: int,
    image_storage: str = "raw",
    exif_transpose: bool = False,
) -> tuple[list | PackedItems, np.ndarray, np.ndarray, np.ndarray, dict[int, str], dict[int, str]]:
    """Check a column of source images and make what the cache stores for each.

    JPEGs go through :func:`~slipstream.cache.jpeg_scan.prepare_images` (stored as is, or
    re-encoded when the kernel cannot decode them); other images are decoded to raw RGB
    (``image_storage="raw"``) or re-encoded as JPEG (``"jpeg"``).

    Args:
        items: Encoded images (a list or a :class:`PackedItems` column).
        quality: JPEG quality for re-encoded images.
        image_storage: One of :data:`~slipstream.cache.format.IMAGE_STORAGE`.
        exif_transpose: Store images whose EXIF Orientation is not 1 upright (module
            docstring).

    Returns:
        ``(stored, heights, widths, formats, reencoded, errors)``: as ``prepare_images``,
        plus the uint8 format code of every stored item.

    Raises:
        ValueError: An unknown ``image_storage``.
    """
    if image_storage not in IMAGE_STORAGE:
        raise ValueError(f"image_storage must be one of {IMAGE_STORAGE}, got {image_storage!r}")
    if exif_transpose:
        return _prepare_upright(items, quality, image_storage)
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
