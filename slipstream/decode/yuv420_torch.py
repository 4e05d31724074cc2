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
from dataclasses import dataclass

import numba
import numpy as np
import torch

from slipstream.cache.gather import copy_bytes

__all__ = [
    "Yuv420Plan",
    "Yuv420TorchDecoder",
    "Yuv420WindowError",
    "decode_yuv420_batch",
    "plan_yuv420_batch",
    "upload_yuv420_batch",
]

_PRECISION_BITS = 22  # csrc/resize.h kResizePrecisionBits
# padded region pixels per chunk: bounds the temporaries; small chunks pad less and stay in
# cache on CPUs (measured 2x faster than 1 << 22 there), big ones launch fewer GPU kernels
_CHUNK_ELEMENTS = {"cpu": 1 << 19, "cuda": 1 << 22}


def _box_bounds(in_size: np.ndarray, start: np.ndarray, length: np.ndarray, out: int):
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


class Yuv420WindowError(ValueError):
    """A crop window, its image size, or the item holding the image is invalid.

    Attributes:
        position: The offending row of the batch.
    """

    def __init__(self, position: int, message: str) -> None:
        """Keep the row."""
        super().__init__(message)
        self.position = position


@dataclass
class Yuv420Plan:
    """Host-side layout of one batch: what to copy and where each sample's pixels start.

    All arrays have one row per sample. ``rect`` is ``[B, 3, 4]``: per plane (Y, U, V) the
    source rectangle ``[row0, col0, rows, cols]`` in that plane's coordinates; ``base`` is
    ``[B, 3]``: where that rectangle starts in the packed buffer (row stride = ``cols``).
    ``region`` is ``[B, 4]`` ``[y0, x0, rows, cols]``: the image pixels the resize reads.
    """

    heights: np.ndarray
    widths: np.ndarray
    windows: np.ndarray
    flips: np.ndarray
    size: tuple[int, int]
    region: np.ndarray
    rect: np.ndarray
    base: np.ndarray
    nbytes: int


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
    bad = (
        (h < 1)
        | (w < 1)
        | (win[:, 0] < 0)
        | (win[:, 1] < 0)
        | (win[:, 2] < 1)
        | (win[:, 3] < 1)
        | (win[:, 0] + win[:, 2] > h)
        | (win[:, 1] + win[:, 3] > w)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise Yuv420WindowError(
            i, f"crop window {win[i].tolist()} is outside the {h[i]}x{w[i]} (HxW) image"
        )
    y0, y1 = _box_bounds(h, win[:, 0], win[:, 2], out_h)
    x0, x1 = _box_bounds(w, win[:, 1], win[:, 3], out_w)
    ch, cw = (h + 1) // 2, (w + 1) // 2
    # chroma rows / columns that fancy upsampling reads: the 2x2 block's and one neighbor
    c_r0, c_r1 = np.maximum((y0 >> 1) - 1, 0), np.minimum(((y1 - 1) >> 1) + 2, ch)
    c_c0, c_c1 = np.maximum((x0 >> 1) - 1, 0), np.minimum(((x1 - 1) >> 1) + 2, cw)
    rect = np.empty((n, 3, 4), dtype=np.int64)
    rect[:, 0] = np.stack([y0, x0, y1 - y0, x1 - x0], axis=1)
    rect[:, 1] = rect[:, 2] = np.stack([c_r0, c_c0, c_r1 - c_r0, c_c1 - c_c0], axis=1)
    sizes = rect[:, :, 2] * rect[:, :, 3]
    base = (np.cumsum(sizes.reshape(-1)) - sizes.reshape(-1)).reshape(n, 3)
    return Yuv420Plan(
        h, w, win, fl, (out_h, out_w), rect[:, 0].copy(), rect, base, int(sizes.sum())
    )


@numba.njit(nogil=True, cache=True)
def _pack(data, offsets, heights, widths, rect, base, out):  # pragma: no cover - Numba
    src, dst = data.ctypes.data, out.ctypes.data
    for i in range(offsets.shape[0]):
        hh = heights[i] + (heights[i] & 1)
        ww = widths[i] + (widths[i] & 1)
        plane_start = (np.int64(0), hh * ww, hh * ww + (hh // 2) * (ww // 2))
        plane_width = (ww, ww // 2, ww // 2)
        for p in range(3):
            row0, col0, rows, cols = rect[i, p, 0], rect[i, p, 1], rect[i, p, 2], rect[i, p, 3]
            start = np.int64(offsets[i]) + plane_start[p] + row0 * plane_width[p] + col0
            for r in range(rows):
                copy_bytes(
                    dst + np.uintp(base[i, p] + r * cols),
                    src + np.uintp(start + r * plane_width[p]),
                    cols,
                )


def _item_starts(
    plan: Yuv420Plan, offsets: np.ndarray, item_sizes: np.ndarray | None, buffer_size: int
) -> np.ndarray:
    """Each item's int64 start, checked: it holds its image and lies inside the buffer.

    Raises:
        Yuv420WindowError: An item (of ``item_sizes``) is shorter than its recorded image
            size needs (the C++ kernel's message).
        ValueError: Offsets or sizes that put items outside the buffer.
    """
    offs = np.asarray(offsets, dtype=np.int64).reshape(-1)
    hh, ww = plan.heights + (plan.heights & 1), plan.widths + (plan.widths & 1)
    need = hh * ww + 2 * (hh // 2) * (ww // 2)
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
        uint8 ``[plan.nbytes]`` on ``device``. On CUDA the copy is queued on the current
        stream: keep ``staging`` untouched until that stream has passed it.
    """
    device = torch.device(device)
    data = np.ascontiguousarray(np.asarray(data, dtype=np.uint8).reshape(-1))
    offs = _item_starts(plan, offsets, item_sizes, data.size)
    if staging is None or staging.numel() < plan.nbytes:
        pin = device.type == "cuda"
        staging = torch.empty(max(plan.nbytes, 1), dtype=torch.uint8, pin_memory=pin)
    packed = staging[: plan.nbytes]
    _pack(data, offs, plan.heights, plan.widths, plan.rect, plan.base, packed.numpy())
    if device.type == "cpu":
        return packed
    return packed.to(device, non_blocking=True)


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


def _resize_weights(
    in_size: torch.Tensor,
    start: torch.Tensor,
    length: torch.Tensor,
    first: torch.Tensor,
    span: int,
    out: int,
    ksize: int,
    flip: torch.Tensor | None,
    pieces: int,
) -> list[torch.Tensor]:
    """Pillow fixed-point weights as dense float32 ``[B, out, span]`` byte pieces.

    ``ksize`` bounds the taps per output pixel (``2 * ceil(max(scale, 1)) + 1``). Column
    ``j`` of sample ``b`` weighs source index ``first[b] + j``. The integer weights come from
    the same float64 operations, in the same order, as csrc/resize.cpp
    ComputeResizeCoeffs; each (< 2^23) is split into ``pieces`` parts of at most 15 bits
    (2 pieces) or 8 bits (3), scaled by 2^-22 (exact in float32): see :func:`_matmul`.
    """
    f64 = torch.float64
    box0 = start.to(f64)[:, None, None]
    scale = (box0 + length.to(f64)[:, None, None] - box0) / out
    support = torch.clamp(scale, min=1.0)
    inverse = 1.0 / support
    xx = torch.arange(out, device=start.device, dtype=f64)[None, :, None]
    center = box0 + (xx + 0.5) * scale
    xmin = torch.clamp((center - support + 0.5).to(torch.int64), min=0)
    xmax = torch.minimum((center + support + 0.5).to(torch.int64), in_size[:, None, None])
    tap = torch.arange(ksize, device=start.device)[None, None, :]
    index = xmin + tap
    valid = index < xmax
    pre = torch.clamp(1.0 - ((index.to(f64) - center + 0.5) * inverse).abs(), min=0.0)
    pre = torch.where(valid, pre, 0.0)
    total = pre[:, :, :1].clone()
    for t in range(1, ksize):  # left to right, as the C++ loop adds (same double sums)
        total += pre[:, :, t : t + 1]
    weight = torch.where(total != 0, pre / total, pre) * float(1 << _PRECISION_BITS)
    weight = torch.where(valid, torch.floor(weight + 0.5), 0.0)  # >= 0: (int)(f + 0.5)
    column = (index - first[:, None, None]).clamp(0, span - 1)
    if flip is not None:  # output pixel i of a flipped sample is pixel out - 1 - i
        mirrored = torch.flip(column, dims=[1]), torch.flip(weight, dims=[1])
        keep = ~flip[:, None, None]
        column = torch.where(keep, column, mirrored[0])
        weight = torch.where(keep, weight, mirrored[1])
    low = torch.remainder(weight, 256.0)
    if pieces == 2:
        parts = [weight - low, low]
    else:
        middle = torch.remainder(weight - low, 65536.0)
        parts = [weight - low - middle, middle, low]
    dense = []
    for part in parts:
        scaled = (part * (1.0 / (1 << _PRECISION_BITS))).to(torch.float32)
        matrix = torch.zeros(len(start), out, span, dtype=torch.float32, device=start.device)
        dense.append(matrix.scatter_add_(2, column, scaled))  # invalid taps add 0.0
    return dense


def _matmul(weights: list[torch.Tensor], values: torch.Tensor, left: bool) -> torch.Tensor:
    """Clip8(``weights @ values``) (``left``) or of ``values @ weights``, exactly.

    ``weights`` are the byte pieces of :func:`_resize_weights`, ``values`` float32 integers
    0..255. A piece times a pixel, and the running sums of those (non-negative, below 2^24
    units of the piece's scale), are exact in float32 whatever the summation order (and
    with TF32 / bfloat16 inputs for 8-bit pieces). The pieces' sums are then added as
    integer parts plus fractional parts (each exact in float32) and rounded as
    csrc/resize.cpp's Clip8: ``floor(sum + 0.5)`` clamped to [0, 255]. Returns float32.
    """
    whole = frac = None
    for w in weights:
        term = torch.matmul(w, values) if left else torch.matmul(values, w)
        floor = torch.floor(term)
        term -= floor  # the fractional part of a float is exact
        whole = floor if whole is None else whole.add_(floor)
        frac = term.add_(0.5) if frac is None else frac.add_(term)  # < 3.5, step 2^-22
    return whole.add_(frac.floor_()).clamp_(0, 255)


def _convert_region(
    packed: torch.Tensor, meta: torch.Tensor, rows: int, cols: int, dtype: torch.dtype
) -> torch.Tensor:
    """RGB ``[B, rows, 3, cols]`` (values 0..255 in ``dtype``) of each sample's region.

    Rows / columns past a sample's region repeat its last one (they get zero weight).
    ``meta`` columns: region y0, x0, rows, cols; image h, w; then per plane base, row0,
    col0, stride (Y, U, V). Chroma as libjpeg's h2v2_fancy_upsample (vertical tap on chroma
    columns, then the horizontal tap), color as its ycc_rgb_convert: the integers of
    csrc/yuv420.cpp.
    """
    dev = packed.device
    m = meta.to(torch.int64)
    y = m[:, 0:1] + torch.minimum(torch.arange(rows, device=dev), m[:, 2:3] - 1)  # [B, rows]
    x = m[:, 1:2] + torch.minimum(torch.arange(cols, device=dev), m[:, 3:4] - 1)  # [B, cols]
    ch, cw = (m[:, 4:5] + 1) // 2, (m[:, 5:6] + 1) // 2

    def plane(p: int, row_idx: torch.Tensor, col_idx: torch.Tensor) -> torch.Tensor:
        b, r0, c0, stride = (m[:, 6 + 4 * p + k : 7 + 4 * p + k] for k in range(4))
        row_off = b - c0 + (row_idx - r0) * stride  # [B, rows]
        return torch.take(packed, row_off[:, :, None] + col_idx[:, None, :]).to(torch.int32)

    # chroma rows of the vertical tap: the row's own block row and its nearer neighbor
    ci = y >> 1
    cn = torch.minimum(torch.where((y & 1) == 1, ci + 1, ci - 1).clamp(min=0), ch - 1)
    # chroma columns jlo .. jlo + span - 1 cover every k and its neighbor (clamped)
    jlo = ((m[:, 1:2] >> 1) - 1).clamp(min=0)
    span = cols // 2 + 4
    last = torch.minimum(cw, m[:, 12:13] + m[:, 13:14]) - 1  # last column of the U rectangle
    j = torch.minimum(jlo + torch.arange(span, device=dev), last)  # [B, span]
    k = x >> 1
    kn = torch.minimum(torch.where((x & 1) == 1, k + 1, k - 1).clamp(min=0), cw - 1)
    k_idx = (k - jlo)[:, None, :].expand(-1, rows, -1)
    kn_idx = (kn - jlo)[:, None, :].expand(-1, rows, -1)
    bias = torch.where((x & 1) == 1, 7, 8).to(torch.int32)[:, None, :]
    chroma = []
    for p in (1, 2):
        vertical = plane(p, ci, j).mul_(3).add_(plane(p, cn, j))  # [B, rows, span]
        near = torch.gather(vertical, 2, k_idx).mul_(3)
        near += torch.gather(vertical, 2, kn_idx)
        chroma.append(near.add_(bias).bitwise_right_shift_(4).sub_(128))
    xb, xr = chroma
    luma = plane(0, y, x)
    half = 1 << 15
    out = torch.empty((len(m), rows, 3, cols), dtype=dtype, device=dev)
    out[:, :, 0] = (xr * 91881).add_(half).bitwise_right_shift_(16).add_(luma).clamp_(0, 255)
    green = (xb * -22554).sub_(xr * 46802).add_(half).bitwise_right_shift_(16)
    out[:, :, 1] = green.add_(luma).clamp_(0, 255)
    out[:, :, 2] = (xb * 116130).add_(half).bitwise_right_shift_(16).add_(luma).clamp_(0, 255)
    return out


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
    meta = np.empty((n, 22), dtype=np.int64)
    meta[:, 0:4] = plan.region
    meta[:, 4], meta[:, 5] = plan.heights, plan.widths
    meta[:, 18:22] = plan.windows
    on_device = isinstance(data, torch.Tensor) and data.device.type != "cpu"
    if on_device and data.device.type != device.type:
        raise ValueError(f"data is on {data.device}, the decode runs on {device}")
    if isinstance(data, torch.Tensor) and data.device.type == device.type:
        packed = data.reshape(-1)  # items in place: each plane is its own full rectangle
        offs = _item_starts(plan, offsets, item_sizes, packed.numel())
        hh, ww = plan.heights + (plan.heights & 1), plan.widths + (plan.widths & 1)
        starts = (offs, offs + hh * ww, offs + hh * ww + (hh // 2) * (ww // 2))
        strides = (ww, ww // 2, ww // 2)
        for p in range(3):
            meta[:, 6 + 4 * p] = starts[p]
            meta[:, 7 + 4 * p : 9 + 4 * p] = 0
            meta[:, 9 + 4 * p] = strides[p]
    else:
        source = data.numpy() if isinstance(data, torch.Tensor) else data
        packed = upload_yuv420_batch(source, offsets, plan, device, staging, item_sizes)
        if uploaded is not None:
            uploaded.record()
        for p in range(3):
            meta[:, 6 + 4 * p] = plan.base[:, p]
            meta[:, 7 + 4 * p : 10 + 4 * p] = plan.rect[:, p, [0, 1, 3]]
    pieces = _weight_pieces()
    meta_dev = torch.from_numpy(meta).to(device, non_blocking=device.type == "cuda")
    flips_dev = torch.from_numpy(plan.flips).to(device, non_blocking=device.type == "cuda")
    area = plan.region[:, 2] * plan.region[:, 3]
    for group in _chunks(area, _CHUNK_ELEMENTS.get(device.type, 1 << 22)):
        b = len(group)
        idx = torch.from_numpy(group).to(device)
        m = meta_dev[idx]
        rows, cols = int(plan.region[group, 2].max()), int(plan.region[group, 3].max())
        rgb = _convert_region(packed, m, rows, cols, torch.float32)  # [b, rows, 3, cols]
        kx, ky = (_ksize(plan.windows[group, 2 + a], s) for a, s in ((1, out_w), (0, out_h)))
        flip = flips_dev[idx]
        wx = _resize_weights(m[:, 5], m[:, 19], m[:, 21], m[:, 1], cols, out_w, kx, flip, pieces)
        wy = _resize_weights(m[:, 4], m[:, 18], m[:, 20], m[:, 0], rows, out_h, ky, None, pieces)
        wxt = [w.transpose(1, 2) for w in wx]
        horizontal = _matmul(wxt, rgb.reshape(b, rows * 3, cols), False)
        # rounded to 8 bits between the passes, as Pillow and the C++ kernel do
        tmp = horizontal.reshape(b, rows, 3 * out_w)
        res = _matmul(wy, tmp, True)  # [b, out_h, 3 * out_w]
        out[idx] = res.reshape(b, out_h, 3, out_w).transpose(2, 3).to(torch.uint8)
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
