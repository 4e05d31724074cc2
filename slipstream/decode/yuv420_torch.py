"""YUV420 crop-window decode as vectorized PyTorch: the GPU path of the YUV420 companion.

Same result as :func:`slipstream.native.yuv420.decode_crop_yuv420` (the C++ kernel), for a
whole batch at once, on any torch device::

    host: gathered items ──plan──> per sample: source rectangle of Y, U, V that the
          (bytes back to back)     window's resize reads (rows AND columns)
          ──pack (Numba, nogil)──> staging buffer (pinned on CUDA): ~1.5 B per pixel of the
                                   resize's source box, not the whole item
          ──non_blocking copy────> device
    device: gather Y + libjpeg "fancy" chroma upsampling + BT.601 full range (integers,
            bit-exact with the C++ kernel) -> Pillow fixed-point triangle weights (same
            integers as csrc/resize.cpp) -> horizontal matmul -> round/clip to 8 bits ->
            vertical matmul -> round/clip -> [B, 3, H, W] channels-last

Three modules: :mod:`~slipstream.decode.yuv420_plan` (the plan: named per-sample arrays),
:mod:`~slipstream.decode.yuv420_ops` (the device-side integer math), and this one (pack,
upload, and the batch loop). The device reads the plan's names too (``_Samples``): they
travel as one int64 table (one host-to-device copy per batch, one gather per chunk), never
indexed by column number.

No loop over samples: samples are sorted by the size of their source box and processed in a
few chunks (each padded to its largest box; padding gets zero weights), so the Python loop
runs over chunks, not samples. Flips are mirrored horizontal weights (free).

Bit-exact with the C++ kernel: the conversion, the chroma filter and the resize weights are
its integers, and the two resize sums are exact too although they run as float32 matmuls
(tensor-core friendly): each fixed-point weight is split into byte-sized pieces, so every
product and partial sum of a piece's matmul is a float32-representable integer multiple of
its scale whatever the summation order (and survives TF32 or bfloat16 matmul inputs:
``torch.set_float32_matmul_precision("high"/"medium")``, pixels 0..255 are exact there);
the pieces' sums are added as exact integer and fractional parts and rounded as
csrc/resize.cpp rounds. No global flag is touched. (Exact while a side shrinks at most
128x, i.e. <= 257 taps per output pixel: a 224 crop of a source box up to ~28,000 pixels;
beyond that a sum may round off by 1 level.)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Generic

import numba
import numpy as np
import torch

from slipstream.cache.gather import copy_bytes
from slipstream.decode.yuv420_ops import exact_matmul, region_rgb, resize_weights
from slipstream.decode.yuv420_plan import (
    Array,
    Boxes,
    PlaneLayout,
    Planes,
    Yuv420Plan,
    Yuv420WindowError,
    item_planes,
    item_starts,
    plan_yuv420_batch,
)

__all__ = [
    "Boxes",
    "PlaneLayout",
    "Planes",
    "Yuv420Plan",
    "Yuv420TorchDecoder",
    "Yuv420WindowError",
    "decode_yuv420_batch",
    "plan_yuv420_batch",
    "upload_yuv420_batch",
]

# padded region pixels per chunk: bounds the temporaries; small chunks pad less and stay in
# cache on CPUs (measured 2x faster than 1 << 22 there), big ones launch fewer GPU kernels
_CHUNK_ELEMENTS = {"cpu": 1 << 19, "cuda": 1 << 22}


@numba.njit(nogil=True, cache=True)
def _copy_rects(
    source, target, source_start, source_stride, top, left, height, width, target_start
):  # pragma: no cover - Numba
    """Copy each sample's rectangle of one plane into ``target``, its rows back to back."""
    src, dst = source.ctypes.data, target.ctypes.data
    for i in range(source_start.shape[0]):
        first = source_start[i] + top[i] * source_stride[i] + left[i]
        for r in range(height[i]):
            copy_bytes(
                dst + np.uintp(target_start[i] + r * width[i]),
                src + np.uintp(first + r * source_stride[i]),
                width[i],
            )


def _pack(data: np.ndarray, items: Planes, plan: Yuv420Plan, target: np.ndarray) -> None:
    """Copy the planned rectangles of each item's planes (laid out as ``items``) to ``target``."""
    for source, rect, packed in (
        (items.y, plan.region, plan.packed.y),
        (items.u, plan.chroma, plan.packed.u),
        (items.v, plan.chroma, plan.packed.v),
    ):
        _copy_rects(
            data,
            target,
            source.start,
            source.stride,
            rect.top,
            rect.left,
            rect.height,
            rect.width,
            packed.start,
        )


def upload_yuv420_batch(
    data: np.ndarray,
    offsets: np.ndarray,
    plan: Yuv420Plan,
    device: torch.device | str,
    staging: torch.Tensor | None = None,
    item_sizes: np.ndarray | None = None,
) -> torch.Tensor:
    """Copy only the planned rectangles of each item to ``device`` (packed, back to back).

    Args:
        data: uint8 1-D host buffer holding the items back to back.
        offsets: ``[B]`` start of each item in ``data``.
        plan: From :func:`plan_yuv420_batch` (its sizes are checked against ``data``).
        device: Target device.
        staging: Reusable uint8 host buffer (pinned for a non-blocking CUDA copy); grown
            when too small (a fresh one is pinned when ``device`` is CUDA).
        item_sizes: ``[B]`` byte count of each item, checked against its image size.

    Returns:
        uint8 ``[plan.nbytes]`` on ``device``, laid out as ``plan.packed``. On CUDA the copy
        is queued on the current stream: keep ``staging`` untouched until that stream has
        passed it.
    """
    device = torch.device(device)
    data = np.ascontiguousarray(np.asarray(data, dtype=np.uint8).reshape(-1))
    starts = item_starts(plan, offsets, item_sizes, data.size)
    if staging is None or staging.numel() < plan.nbytes:
        pin = device.type == "cuda"
        staging = torch.empty(max(plan.nbytes, 1), dtype=torch.uint8, pin_memory=pin)
    packed = staging[: plan.nbytes]
    _pack(data, item_planes(starts, plan.heights, plan.widths), plan, packed.numpy())
    if device.type == "cpu":
        return packed
    return packed.to(device, non_blocking=True)


@dataclass(frozen=True, eq=False)
class _Samples(Generic[Array]):
    """The per-sample integers the device side reads (``flip`` is 0 / 1)."""

    height: Array
    width: Array
    flip: Array
    window: Boxes[Array]
    region: Boxes[Array]
    planes: Planes[Array]


def _leaves(node: Any) -> list[Any]:
    """The arrays of a nest of dataclasses, depth first in field order."""
    if is_dataclass(node):
        return [leaf for f in fields(node) for leaf in _leaves(getattr(node, f.name))]
    return [node]


def _rebuild(template: Any, leaves: Iterator[Any]) -> Any:
    """A nest shaped like ``template`` holding the next ``leaves`` (inverse of :func:`_leaves`)."""
    if is_dataclass(template):
        parts = {f.name: _rebuild(getattr(template, f.name), leaves) for f in fields(template)}
        return type(template)(**parts)
    return next(leaves)


class _SampleTable:
    """A batch's :class:`_Samples` on the device as one int64 ``[n, k]`` tensor.

    One host-to-device copy per batch and one gather per chunk; :meth:`take` hands the
    columns back by name.
    """

    def __init__(self, samples: _Samples[np.ndarray], device: torch.device) -> None:
        """Stack the host arrays and copy them to ``device``."""
        self._template = samples
        host = np.stack([np.asarray(a, dtype=np.int64) for a in _leaves(samples)], axis=1)
        self._table = torch.from_numpy(host).to(device, non_blocking=device.type == "cuda")

    def take(self, index: torch.Tensor) -> _Samples[torch.Tensor]:
        """The samples at ``index`` (a device tensor), each field a 1-D tensor."""
        return _rebuild(self._template, iter(self._table[index].unbind(1)))


def _weight_pieces() -> int:
    """Byte pieces per weight: 2 (15 + 8 bits) for full float32 matmuls, 3 when reduced."""
    reduced = torch.get_float32_matmul_precision() != "highest"
    if torch.cuda.is_available():
        newer = getattr(torch.backends.cuda.matmul, "fp32_precision", "none")  # torch >= 2.9
        reduced = reduced or torch.backends.cuda.matmul.allow_tf32 or newer not in ("none", "ieee")
    return 3 if reduced else 2


def _ksize(lengths: np.ndarray, out: int) -> int:
    """Taps per output pixel of the widest filter among boxes of these lengths."""
    return int(math.ceil(max(float(lengths.max()) / out, 1.0))) * 2 + 1


def _chunks(area: np.ndarray, limit: int) -> list[np.ndarray]:
    """Sample groups, sorted by region area, each padded box under ``limit`` pixels."""
    order = np.argsort(area, kind="stable")
    groups, start = [], 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and area[order[stop]] * (stop + 1 - start) <= limit:
            stop += 1
        groups.append(order[start:stop])
        start = stop
    return groups


def _source_planes(
    data: np.ndarray | torch.Tensor,
    offsets: np.ndarray,
    plan: Yuv420Plan,
    device: torch.device,
    staging: torch.Tensor | None,
    uploaded: torch.cuda.Event | None,
    item_sizes: np.ndarray | None,
) -> tuple[torch.Tensor, Planes[np.ndarray]]:
    """The flat uint8 tensor on ``device`` the decode reads, and where each plane lies in it.

    A tensor already on ``device`` is read in place (whole items); anything else is packed
    (only the planned rectangles) and copied.
    """
    if isinstance(data, torch.Tensor) and data.device.type != "cpu":
        if data.device.type != device.type:
            raise ValueError(f"data is on {data.device}, the decode runs on {device}")
    if isinstance(data, torch.Tensor) and data.device.type == device.type:
        flat = data.reshape(-1)
        starts = item_starts(plan, offsets, item_sizes, flat.numel())
        return flat, item_planes(starts, plan.heights, plan.widths)
    source = data.numpy() if isinstance(data, torch.Tensor) else data
    flat = upload_yuv420_batch(source, offsets, plan, device, staging, item_sizes)
    if uploaded is not None:
        uploaded.record()
    return flat, plan.packed


def decode_yuv420_batch(
    data: np.ndarray | torch.Tensor,
    offsets: np.ndarray,
    heights: np.ndarray,
    widths: np.ndarray,
    windows: np.ndarray,
    flips: np.ndarray | None,
    size: tuple[int, int],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.uint8,
    out: torch.Tensor | None = None,
    staging: torch.Tensor | None = None,
    plan: Yuv420Plan | None = None,
    uploaded: torch.cuda.Event | None = None,
    item_sizes: np.ndarray | None = None,
) -> torch.Tensor:
    """Crop, convert, resize and flip a batch of YUV420 items on ``device``.

    Args:
        data: uint8 1-D buffer of the items back to back: a numpy array or host tensor
            (only each window's source rectangles are packed and copied to ``device``), or
            a tensor already on ``device`` (read in place, nothing copied).
        offsets: ``[B]`` start of each item in ``data``.
        heights: ``[B]`` true image heights (the companion's ``.meta.npy``).
        widths: ``[B]`` true image widths.
        windows: int ``[B, 4]`` crops ``[y, x, h, w]`` in source pixels.
        flips: ``[B]`` flags; true mirrors that sample horizontally (None: none).
        size: Output ``(height, width)``.
        device: Where to compute (and where the result lives).
        dtype: ``torch.uint8`` (rounded like the C++ kernel) or a float dtype (the same
            rounded values, 0..255).
        out: Optional uint8 ``[B, H, W, 3]`` tensor on ``device`` to write into.
        staging: Reusable host buffer for the packed bytes (see :func:`upload_yuv420_batch`).
        plan: The batch's :func:`plan_yuv420_batch` when the caller already made it.
        uploaded: CUDA event recorded right after the host-to-device copy (then
            ``staging`` may be refilled once it completed).
        item_sizes: ``[B]`` byte count of each item (the gathered sizes): an item shorter
            than its image size needs is an error naming its row, as in the C++ kernel.

    Returns:
        ``[B, 3, H, W]`` in channels-last memory order (a permuted view of ``[B, H, W, 3]``).

    Raises:
        Yuv420WindowError: If a window is outside its image or an item too short for it.
        ValueError: If an item lies outside ``data`` or an argument is malformed.
    """
    device = torch.device(device)
    if plan is None:
        plan = plan_yuv420_batch(heights, widths, windows, flips, size)
    n, (out_h, out_w) = len(plan.heights), plan.size
    if out is None:
        out = torch.empty((n, out_h, out_w, 3), dtype=torch.uint8, device=device)
    if n == 0:
        return out.permute(0, 3, 1, 2).to(dtype)
    flat, planes = _source_planes(data, offsets, plan, device, staging, uploaded, item_sizes)
    samples = _Samples(plan.heights, plan.widths, plan.flips, plan.window, plan.region, planes)
    table = _SampleTable(samples, device)
    pieces = _weight_pieces()
    region = plan.region
    # One chunk per pass, inline: its temporaries stay bound until the next chunk's replace
    # them. Freed at the end of each chunk instead (a helper function's return), glibc trims
    # the heap and the next chunk faults the pages back in: ~4% slower at 2 CPU threads.
    for group in _chunks(region.height * region.width, _CHUNK_ELEMENTS.get(device.type, 1 << 22)):
        index = torch.from_numpy(group).to(device)
        s = table.take(index)
        b, rows, cols = len(group), int(region.height[group].max()), int(region.width[group].max())
        taps_y = _ksize(plan.window.height[group], out_h)
        taps_x = _ksize(plan.window.width[group], out_w)
        rgb = region_rgb(flat, s.planes, s.height, s.width, s.region, rows, cols, torch.float32)
        flip = s.flip != 0
        wx = resize_weights(
            s.width, s.window.left, s.window.width, s.region.left, cols, out_w, taps_x, flip, pieces
        )
        wy = resize_weights(
            s.height, s.window.top, s.window.height, s.region.top, rows, out_h, taps_y, None, pieces
        )
        columns = [w.transpose(1, 2) for w in wx]
        horizontal = exact_matmul(columns, rgb.reshape(b, rows * 3, cols), left=False)
        # rounded to 8 bits between the passes, as Pillow and the C++ kernel do
        vertical = exact_matmul(wy, horizontal.reshape(b, rows, 3 * out_w), left=True)
        out[index] = vertical.reshape(b, out_h, 3, out_w).transpose(2, 3).to(torch.uint8)
    return out.permute(0, 3, 1, 2).to(dtype)


class Yuv420TorchDecoder:
    """:func:`decode_yuv420_batch` with a reused (pinned, on CUDA) staging buffer.

    On CUDA the work is queued on the caller's current stream; before the staging buffer
    is refilled, the previous batch's upload out of it is waited for (an event), so
    consecutive calls overlap the host packing of one batch with the GPU work of the last.

    Args:
        device: Where to decode.
    """

    def __init__(self, device: torch.device | str) -> None:
        """Remember the device; buffers are allocated on first use."""
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self._staging: torch.Tensor | None = None
        self._uploaded: torch.cuda.Event | None = None

    def __call__(
        self,
        data: np.ndarray,
        offsets: np.ndarray,
        heights: np.ndarray,
        widths: np.ndarray,
        windows: np.ndarray,
        flips: np.ndarray | None,
        size: tuple[int, int],
        *,
        dtype: torch.dtype = torch.uint8,
        out: torch.Tensor | None = None,
        item_sizes: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Decode one batch (arguments as :func:`decode_yuv420_batch`)."""
        if self._uploaded is not None:
            self._uploaded.synchronize()  # the last upload out of the staging buffer is done
            self._uploaded = None
        plan = plan_yuv420_batch(heights, widths, windows, flips, size)
        if self._staging is None or self._staging.numel() < plan.nbytes:
            pin = self.device.type == "cuda"
            grown = max(plan.nbytes + plan.nbytes // 4, 1 << 20)
            self._staging = torch.empty(grown, dtype=torch.uint8, pin_memory=pin)
        uploaded = torch.cuda.Event() if self.device.type == "cuda" else None
        result = decode_yuv420_batch(
            data,
            offsets,
            heights,
            widths,
            windows,
            flips,
            size,
            device=self.device,
            dtype=dtype,
            out=out,
            staging=self._staging,
            plan=plan,
            uploaded=uploaded,
            item_sizes=item_sizes,
        )
        self._uploaded = uploaded
        return result
