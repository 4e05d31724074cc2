"""Planning a batch's torch YUV420 decode: which bytes of each item a crop window needs.

Host side, vectorized over the batch (no loop over samples). For each sample the plan names
the crop ``window``, the image ``region`` the window's resize reads (Pillow's untrimmed
filter bounds), the ``chroma`` rectangle that region's fancy upsampling reads, and where
each plane's rectangle lands in the packed buffer (``packed``)::

    item (I420, odd sides padded to even)        packed buffer: samples back to back, each
      Y  H x W        ⊃ region                     [Y: region][U: chroma][V: chroma]
      U  H/2 x W/2    ⊃ chroma                     (row stride = the rectangle's width)
      V  H/2 x W/2    ⊃ chroma (same rectangle as U)

Every per-sample quantity is a named 1-D array (:class:`Boxes`, :class:`PlaneLayout`,
:class:`Planes`); numpy here, the same names as torch tensors on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

from slipstream.decode.errors import Yuv420WindowError

__all__ = [
    "Boxes",
    "PlaneLayout",
    "Planes",
    "Yuv420Plan",
    "item_planes",
    "item_starts",
    "plan_yuv420_batch",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True, eq=False)
class Boxes(Generic[Array]):
    """One rectangle per sample: four 1-D int64 arrays (numpy on the host, torch on a device).

    Attributes:
        top: First row.
        left: First column.
        height: Rows (>= 1).
        width: Columns (>= 1).
    """

    top: Array
    left: Array
    height: Array
    width: Array


@dataclass(frozen=True, eq=False)
class PlaneLayout(Generic[Array]):
    """Where each sample's stored pixels of one plane lie in a flat uint8 buffer.

    Pixel ``(r, c)`` (plane coordinates) of sample ``i`` is byte
    ``start[i] + (r - top[i]) * stride[i] + (c - left[i])``. Stored is either the whole plane
    (an item read in place: ``top = left = 0``, ``stride`` = the plane's width) or one
    rectangle of it (packed: ``stride`` = the rectangle's width).

    Attributes:
        start: Byte of the stored pixel ``(top, left)``.
        top: Plane row of the first stored row.
        left: Plane column of the first stored column.
        stride: Bytes from one stored row to the next.
    """

    start: Array
    top: Array
    left: Array
    stride: Array


@dataclass(frozen=True, eq=False)
class Planes(Generic[Array]):
    """The layouts of the Y, U (Cb) and V (Cr) planes of every sample."""

    y: PlaneLayout[Array]
    u: PlaneLayout[Array]
    v: PlaneLayout[Array]


@dataclass(frozen=True, eq=False)
class Yuv420Plan:
    """Host-side layout of one batch: what to copy and where each sample's pixels land.

    Every array has one entry per sample, int64 unless stated.

    Attributes:
        heights: True image heights.
        widths: True image widths.
        window: The crop windows (``[y, x, h, w]`` by name), in image pixels.
        flips: bool horizontal-flip flags.
        size: Output ``(height, width)``.
        region: The image pixels the window's resize reads (the Y rectangle that is packed).
        chroma: The U and V rectangle (chroma-plane coordinates) that ``region``'s fancy
            upsampling reads.
        packed: Where each plane's rectangle starts in the packed buffer (row stride = the
            rectangle's width); per sample Y, U, V follow each other, samples back to back.
        nbytes: Size of the packed buffer.
    """

    heights: np.ndarray
    widths: np.ndarray
    window: Boxes[np.ndarray]
    flips: np.ndarray
    size: tuple[int, int]
    region: Boxes[np.ndarray]
    chroma: Boxes[np.ndarray]
    packed: Planes[np.ndarray]
    nbytes: int


def _padded_sides(heights: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored luma rows and columns: odd sides padded to even (chroma: half of each)."""
    return heights + (heights & 1), widths + (widths & 1)


def _item_bytes(heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Bytes of each I420 item: Y, then U and V at half resolution."""
    rows, cols = _padded_sides(heights, widths)
    return rows * cols + 2 * (rows // 2) * (cols // 2)


def item_planes(starts: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> Planes:
    """Layout of whole items read in place, each starting at ``starts``."""
    rows, cols = _padded_sides(heights, widths)
    u_start = starts + rows * cols
    v_start = u_start + (rows // 2) * (cols // 2)
    zero = np.zeros_like(starts)
    return Planes(
        y=PlaneLayout(starts, zero, zero, cols),
        u=PlaneLayout(u_start, zero, zero, cols // 2),
        v=PlaneLayout(v_start, zero, zero, cols // 2),
    )


def item_starts(
    plan: Yuv420Plan, offsets: np.ndarray, item_sizes: np.ndarray | None, buffer_size: int
) -> np.ndarray:
    """Each item's int64 start, checked: it holds its image and lies inside the buffer.

    Raises:
        Yuv420WindowError: An item (of ``item_sizes``) is shorter than its recorded image
            size needs (the C++ kernel's message).
        ValueError: Offsets or sizes that put items outside the buffer.
    """
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1)
    need = _item_bytes(plan.heights, plan.widths)
    if item_sizes is not None:
        sizes = np.asarray(item_sizes, dtype=np.int64).reshape(-1)
        if len(sizes) != len(need):
            raise ValueError(f"item_sizes has {len(sizes)} rows, the batch {len(need)}")
        short = np.flatnonzero(sizes < need)
        if short.size:
            i = int(short[0])
            raise Yuv420WindowError(
                i,
                f"YUV420 item is {sizes[i]} bytes, a {plan.heights[i]}x{plan.widths[i]} image "
                f"needs {need[i]}",
            )
    if len(offs) != len(need) or (offs < 0).any() or (offs + need > buffer_size).any():
        raise ValueError("YUV420 items are outside the data buffer (offsets or sizes wrong)")
    return offs


def _box_bounds(
    in_size: np.ndarray, start: np.ndarray, length: np.ndarray, out: int
) -> tuple[np.ndarray, np.ndarray]:
    """First / one-past-last source index any output pixel's triangle filter touches.

    Untrimmed Pillow bounds (csrc/resize.cpp ComputeResizeCoeffs, before dropping zero
    taps), so a superset of the C++ kernel's region: extra pixels get zero weight.
    """
    box0 = start.astype(np.float64)
    scale = (box0 + length - box0) / out
    support = np.maximum(scale, 1.0)
    first = np.maximum((box0 + 0.5 * scale - support + 0.5).astype(np.int64), 0)
    last = np.minimum((box0 + (out - 0.5) * scale + support + 0.5).astype(np.int64), in_size)
    return first, np.maximum(last, first + 1)


def _check_windows(heights: np.ndarray, widths: np.ndarray, window: Boxes) -> None:
    """Raise :class:`Yuv420WindowError` for the first window outside its image."""
    bad = (
        (heights < 1)
        | (widths < 1)
        | (window.top < 0)
        | (window.left < 0)
        | (window.height < 1)
        | (window.width < 1)
        | (window.top + window.height > heights)
        | (window.left + window.width > widths)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        box = [int(a[i]) for a in (window.top, window.left, window.height, window.width)]
        raise Yuv420WindowError(
            i, f"crop window {box} is outside the {heights[i]}x{widths[i]} (HxW) image"
        )


def _chroma_box(region: Boxes, heights: np.ndarray, widths: np.ndarray) -> Boxes:
    """Chroma rows / columns that fancy upsampling of ``region`` reads.

    Each pixel reads its 2x2 block's chroma sample and the nearer neighbor in each
    direction, clamped to the chroma plane.
    """
    chroma_h, chroma_w = (heights + 1) // 2, (widths + 1) // 2
    top = np.maximum((region.top >> 1) - 1, 0)
    bottom = np.minimum(((region.top + region.height - 1) >> 1) + 2, chroma_h)
    left = np.maximum((region.left >> 1) - 1, 0)
    right = np.minimum(((region.left + region.width - 1) >> 1) + 2, chroma_w)
    return Boxes(top, left, bottom - top, right - left)


def _packed_planes(region: Boxes, chroma: Boxes) -> tuple[Planes, int]:
    """Each plane's rectangle in the packed buffer (Y, U, V per sample), and its size."""
    luma_bytes = region.height * region.width
    chroma_bytes = chroma.height * chroma.width
    sample_bytes = luma_bytes + 2 * chroma_bytes
    y_start = np.cumsum(sample_bytes) - sample_bytes
    u_start = y_start + luma_bytes
    v_start = u_start + chroma_bytes
    planes = Planes(
        y=PlaneLayout(y_start, region.top, region.left, region.width),
        u=PlaneLayout(u_start, chroma.top, chroma.left, chroma.width),
        v=PlaneLayout(v_start, chroma.top, chroma.left, chroma.width),
    )
    return planes, int(sample_bytes.sum())


def plan_yuv420_batch(
    heights: np.ndarray,
    widths: np.ndarray,
    windows: np.ndarray,
    flips: np.ndarray | None,
    size: tuple[int, int],
) -> Yuv420Plan:
    """Work out which bytes of each item the crop needs (vectorized over the batch).

    Args:
        heights: ``[B]`` true image heights.
        widths: ``[B]`` true image widths.
        windows: int ``[B, 4]`` crops ``[y, x, h, w]`` in source pixels.
        flips: ``[B]`` horizontal-flip flags (None: no flips).
        size: Output ``(height, width)``.

    Raises:
        Yuv420WindowError: If a window is outside its image (a ValueError).
        ValueError: If the shapes are wrong.
    """
    h = np.asarray(heights, dtype=np.int64).reshape(-1)
    w = np.asarray(widths, dtype=np.int64).reshape(-1)
    win = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
    n = len(h)
    fl = np.zeros(n, dtype=bool) if flips is None else np.asarray(flips).astype(bool).reshape(-1)
    out_h, out_w = int(size[0]), int(size[1])
    if len(w) != n or len(win) != n or len(fl) != n:
        raise ValueError(f"heights, widths, windows and flips must all have {n} rows")
    if out_h < 1 or out_w < 1:
        raise ValueError(f"output size must be >= 1, got {size}")
    y, x, rows, cols = (np.ascontiguousarray(column) for column in win.T)  # the window contract
    window = Boxes(top=y, left=x, height=rows, width=cols)
    _check_windows(h, w, window)
    top, bottom = _box_bounds(h, window.top, window.height, out_h)
    left, right = _box_bounds(w, window.left, window.width, out_w)
    region = Boxes(top, left, bottom - top, right - left)
    chroma = _chroma_box(region, h, w)
    packed, nbytes = _packed_planes(region, chroma)
    return Yuv420Plan(h, w, window, fl, (out_h, out_w), region, chroma, packed, nbytes)
