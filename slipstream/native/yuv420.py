"""Planar YUV420 (I420) images: conversion and the fused crop-window decode of one item.

An item stores one image of true size ``h x w`` without entropy coding (1.5 bytes per
pixel); ``H = h + h % 2`` and ``W = w + w % 2`` (odd sides padded by repeating the last row
or column)::

    offset 0                 Y   H x W          uint8, row-major
    offset H*W               U   H/2 x W/2      Cb, sited at the center of its 2x2 block
    offset H*W + H*W/4       V   H/2 x W/2      Cr
    size   H*W + 2*(H/2)*(W/2) = yuv420_size(h, w)

Colors are BT.601 full range (as JFIF/JPEG). The item has no header: its true size comes
from the companion's ``.meta.npy`` (:mod:`slipstream.cache.yuv420`). Decoding converts only
the crop window's rows and columns (chroma upsampled with libjpeg's "fancy" triangle
filter) and resizes them with the same Pillow-exact antialiased passes as the JPEG path.

GPU path: :mod:`slipstream.decode.yuv420_torch` computes the same pixels with batched torch ops
on the output device (``SlipstreamLoader(..., image_format="yuv420", backend="native",
decode_device="cuda")``): only each window's source rows and columns of Y, U and V are
packed into pinned memory and copied to the GPU, where chroma upsampling, the BT.601
integers and Pillow's fixed-point resize weights run as batched matrix products, bit-identical
to this kernel on the CPU (tested; the CUDA run is not measured yet).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slipstream.native.decode import (
    BytesLike,
    DecodeError,
    DecodeFailure,
    NativeDecoder,
    _as_u8,
    _check_array,
    _core,
    _decode_views,
)

__all__ = [
    "decode_crop_views_yuv420",
    "jpeg_to_yuv420_batch",
    "decode_crop_yuv420",
    "rgb_to_yuv420",
    "yuv420_size",
    "yuv420_to_rgb",
]


def yuv420_size(height: int, width: int) -> int:
    """Bytes of one YUV420 item of true size ``height x width`` (odd sides padded).

    Args:
        height: Image height in pixels.
        width: Image width in pixels.
    """
    return int(_core.yuv420_size(int(height), int(width)))


def rgb_to_yuv420(image: np.ndarray) -> np.ndarray:
    """Convert an RGB image to one YUV420 item.

    Args:
        image: uint8 ``[H, W, 3]`` RGB.

    Returns:
        uint8 1-D array of :func:`yuv420_size` bytes.
    """
    return _core.rgb_to_yuv420(np.ascontiguousarray(image, dtype=np.uint8))


def yuv420_to_rgb(data: BytesLike, height: int, width: int) -> np.ndarray:
    """Convert a whole YUV420 item back to RGB.

    Args:
        data: The item's bytes.
        height: True image height.
        width: True image width.

    Returns:
        uint8 ``[height, width, 3]``.

    Raises:
        DecodeError: If the item is shorter than :func:`yuv420_size` says.
    """
    try:
        return _core.yuv420_to_rgb(_as_u8(data), int(height), int(width))
    except _core.CoreError as exc:
        raise DecodeError([(0, str(exc))]) from None


def decode_crop_views_yuv420(
    data: BytesLike,
    height: int,
    width: int,
    windows: Sequence[Sequence[int]] | np.ndarray,
    size: tuple[int, int],
    flips: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """K crops of one YUV420 item, each converted and resized from full resolution.

    Args:
        data: The item's bytes.
        height: True image height.
        width: True image width.
        windows: ``[K, 4]`` crops ``[y, x, h, w]`` in source pixels.
        size: Output ``(height, width)`` of every view.
        flips: ``K`` flags; true mirrors that view horizontally (default: none).

    Returns:
        uint8 ``[K, height, width, 3]``.

    Raises:
        DecodeError: If the item is too short or a window is outside the image.
        ValueError: If the windows, flips or size are malformed.
    """
    return _decode_views(data, windows, size, flips, "yuv420", height, width)


def decode_crop_yuv420(
    data: BytesLike,
    height: int,
    width: int,
    window: Sequence[int] | np.ndarray,
    size: tuple[int, int],
    flip: bool = False,
) -> np.ndarray:
    """Crop-window conversion, antialiased resize and optional flip of one YUV420 item.

    Args:
        data: The item's bytes.
        height: True image height.
        width: True image width.
        window: Crop ``[y, x, h, w]`` in source pixels.
        size: Output ``(height, width)``.
        flip: Mirror the output horizontally.

    Returns:
        uint8 ``[height, width, 3]``.

    Raises:
        DecodeError: If the item is too short or the window is outside the image.
    """
    win = np.asarray(window, dtype=np.int32).reshape(1, 4)
    return decode_crop_views_yuv420(data, height, width, win, size, [flip])[0]


def jpeg_to_yuv420_batch(
    data: np.ndarray,
    offsets: np.ndarray,
    sizes: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    out: np.ndarray,
    out_offsets: np.ndarray,
    num_threads: int | None = None,
    formats: np.ndarray | None = None,
) -> list[DecodeFailure]:
    """Convert a batch of JPEG (or raw RGB) items to YUV420 items on the native thread pool.

    A 4:2:0 YCbCr JPEG stores libjpeg-turbo's own decoded planes (bit-exact to its RGB
    decode through :func:`decode_crop_yuv420`); other JPEGs are decoded and converted.

    Args:
        data: uint8 1-D buffer holding every JPEG.
        offsets: uint64 ``[B]`` start of each JPEG in ``data``.
        sizes: uint64 ``[B]`` byte length of each JPEG.
        heights: int32 ``[B]`` recorded image heights (a JPEG of another size fails).
        widths: int32 ``[B]`` recorded image widths.
        out: uint8 1-D writeable buffer receiving the items.
        out_offsets: uint64 ``[B]`` where item i starts in ``out`` (it takes
            ``yuv420_size(heights[i], widths[i])`` bytes).
        num_threads: Threads (``None``: the hardware concurrency).
        formats: uint8 ``[B]`` format code per item, or None (all JPEG): an item of code
            2 (raw RGB, ``height x width x 3`` bytes) is converted with
            :func:`rgb_to_yuv420`'s arithmetic.

    Returns:
        ``(batch position, status code, message)`` of every failed sample (empty when all
        converted); codes are the ``STATUS_*`` constants of :mod:`slipstream.native.decode`.

    Raises:
        ValueError: On wrong dtypes, shapes or contiguity.
    """
    b = len(offsets)
    for name, arr, dtype in (
        ("data", data, np.uint8),
        ("out", out, np.uint8),
    ):
        _check_array(name, arr, dtype, (None,))
    for name, arr, dtype in (
        ("offsets", offsets, np.uint64),
        ("sizes", sizes, np.uint64),
        ("heights", heights, np.int32),
        ("widths", widths, np.int32),
        ("out_offsets", out_offsets, np.uint64),
    ):
        _check_array(name, arr, dtype, (b,))
    if formats is not None:
        _check_array("formats", formats, np.uint8, (b,))
    threads = NativeDecoder(num_threads).num_threads
    failures = _core.jpeg_to_yuv420_batch(
        data, offsets, sizes, heights, widths, out, out_offsets, threads, formats
    )
    return [  # a JPEG converted despite libjpeg's corrupt-data warnings is not a failure here
        (int(i), int(code), str(msg)) for i, code, msg in failures if code != _core.JPEG_WARNING
    ]
