"""The device-side integer math of the torch YUV420 decode, bit-exact with csrc/.

* :func:`region_rgb`: gather Y, libjpeg's "fancy" chroma upsampling and its BT.601
  full-range conversion, in the integers of csrc/yuv420.cpp.
* :func:`resize_weights` and :func:`exact_matmul`: Pillow's fixed-point triangle weights
  (the integers of csrc/resize.cpp) as dense matrices split into byte pieces, and the
  matmul that sums them exactly in float32 and rounds as the C++ kernel does.

Every function works on a batch at once; per-sample arguments are 1-D tensors (or the named
:class:`~slipstream.decode.yuv420_plan.Boxes` / ``Planes`` of them).
"""

from __future__ import annotations

import torch

from slipstream.decode.yuv420_plan import Boxes, PlaneLayout, Planes

__all__ = ["PRECISION_BITS", "exact_matmul", "region_rgb", "resize_weights"]

PRECISION_BITS = 22  # csrc/resize.h kResizePrecisionBits


def _pillow_taps(
    in_size: torch.Tensor, start: torch.Tensor, length: torch.Tensor, out: int, ksize: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source index and integer weight of each tap: two ``[B, out, ksize]`` tensors.

    The same float64 operations, in the same order, as csrc/resize.cpp
    ComputeResizeCoeffs; weights are float64 integers < 2^23, 0 for taps past the filter.
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
    index = xmin + torch.arange(ksize, device=start.device)[None, None, :]
    valid = index < xmax
    pre = torch.clamp(1.0 - ((index.to(f64) - center + 0.5) * inverse).abs(), min=0.0)
    pre = torch.where(valid, pre, 0.0)
    total = pre[:, :, :1].clone()
    for t in range(1, ksize):  # left to right, as the C++ loop adds (same double sums)
        total += pre[:, :, t : t + 1]
    weight = torch.where(total != 0, pre / total, pre) * float(1 << PRECISION_BITS)
    return index, torch.where(valid, torch.floor(weight + 0.5), 0.0)  # >= 0: (int)(f + 0.5)


def _byte_pieces(weight: torch.Tensor, pieces: int) -> list[torch.Tensor]:
    """``weight`` split into parts of at most 15 bits (2 pieces) or 8 bits (3): exact sums."""
    low = torch.remainder(weight, 256.0)
    if pieces == 2:
        return [weight - low, low]
    middle = torch.remainder(weight - low, 65536.0)
    return [weight - low - middle, middle, low]


def resize_weights(
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
    ``j`` of sample ``b`` weighs source index ``first[b] + j``. Each integer weight of
    :func:`_pillow_taps` is split into ``pieces`` parts (:func:`_byte_pieces`), scaled by
    2^-22 (exact in float32): see :func:`exact_matmul`.
    """
    index, weight = _pillow_taps(in_size, start, length, out, ksize)
    column = (index - first[:, None, None]).clamp(0, span - 1)
    if flip is not None:  # output pixel i of a flipped sample is pixel out - 1 - i
        keep = ~flip[:, None, None]
        column = torch.where(keep, column, torch.flip(column, dims=[1]))
        weight = torch.where(keep, weight, torch.flip(weight, dims=[1]))
    dense = []
    for part in _byte_pieces(weight, pieces):
        scaled = (part * (1.0 / (1 << PRECISION_BITS))).to(torch.float32)
        matrix = torch.zeros(len(start), out, span, dtype=torch.float32, device=start.device)
        dense.append(matrix.scatter_add_(2, column, scaled))  # invalid taps add 0.0
    return dense


def exact_matmul(weights: list[torch.Tensor], values: torch.Tensor, left: bool) -> torch.Tensor:
    """Clip8(``weights @ values``) (``left``) or of ``values @ weights``, exactly.

    ``weights`` are the byte pieces of :func:`resize_weights`, ``values`` float32 integers
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


def _read_plane(
    flat: torch.Tensor, layout: PlaneLayout[torch.Tensor], rows: torch.Tensor, cols: torch.Tensor
) -> torch.Tensor:
    """int32 ``[B, R, C]`` pixels of one plane at rows ``[B, R]`` x columns ``[B, C]``."""
    row_start = (
        layout.start[:, None]
        - layout.left[:, None]
        + (rows - layout.top[:, None]) * layout.stride[:, None]
    )
    return torch.take(flat, row_start[:, :, None] + cols[:, None, :]).to(torch.int32)


def _upsampled_chroma(
    flat: torch.Tensor,
    planes: Planes[torch.Tensor],
    heights: torch.Tensor,
    widths: torch.Tensor,
    y: torch.Tensor,
    x: torch.Tensor,
) -> list[torch.Tensor]:
    """Cb and Cr minus 128 (int32 ``[B, rows, cols]``) at image rows ``y`` x columns ``x``.

    libjpeg's h2v2_fancy_upsample: a vertical tap on chroma columns, then the horizontal
    tap (the integers of csrc/yuv420.cpp).
    """
    dev = flat.device
    chroma_h, chroma_w = ((heights + 1) // 2)[:, None], ((widths + 1) // 2)[:, None]
    # chroma rows of the vertical tap: the row's own block row and its nearer neighbor
    block_row = y >> 1
    near_row = torch.where((y & 1) == 1, block_row + 1, block_row - 1).clamp(min=0)
    near_row = torch.minimum(near_row, chroma_h - 1)
    # chroma columns first .. first + span - 1 cover every block column and its neighbor;
    # clamped to the last one stored (a packed row is `stride` wide from `left`)
    first = ((x[:, :1] >> 1) - 1).clamp(min=0)
    span = x.shape[1] // 2 + 4
    last = torch.minimum(chroma_w, (planes.u.left + planes.u.stride)[:, None]) - 1
    chroma_cols = torch.minimum(first + torch.arange(span, device=dev), last)  # [B, span]
    block_col = x >> 1
    near_col = torch.where((x & 1) == 1, block_col + 1, block_col - 1).clamp(min=0)
    near_col = torch.minimum(near_col, chroma_w - 1)
    rows = y.shape[1]
    block_idx = (block_col - first)[:, None, :].expand(-1, rows, -1)
    near_idx = (near_col - first)[:, None, :].expand(-1, rows, -1)
    bias = torch.where((x & 1) == 1, 7, 8).to(torch.int32)[:, None, :]
    centered = []
    for layout in (planes.u, planes.v):
        vertical = _read_plane(flat, layout, block_row, chroma_cols).mul_(3)
        vertical += _read_plane(flat, layout, near_row, chroma_cols)  # [B, rows, span]
        horizontal = torch.gather(vertical, 2, block_idx).mul_(3)
        horizontal += torch.gather(vertical, 2, near_idx)
        centered.append(horizontal.add_(bias).bitwise_right_shift_(4).sub_(128))
    return centered


def _ycc_to_rgb(
    luma: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """RGB ``[B, rows, 3, cols]`` in ``dtype``: libjpeg's ycc_rgb_convert (BT.601 full)."""
    b, rows, cols = luma.shape
    half = 1 << 15
    out = torch.empty((b, rows, 3, cols), dtype=dtype, device=luma.device)
    out[:, :, 0] = (cr * 91881).add_(half).bitwise_right_shift_(16).add_(luma).clamp_(0, 255)
    green = (cb * -22554).sub_(cr * 46802).add_(half).bitwise_right_shift_(16)
    out[:, :, 1] = green.add_(luma).clamp_(0, 255)
    out[:, :, 2] = (cb * 116130).add_(half).bitwise_right_shift_(16).add_(luma).clamp_(0, 255)
    return out


def region_rgb(
    flat: torch.Tensor,
    planes: Planes[torch.Tensor],
    heights: torch.Tensor,
    widths: torch.Tensor,
    region: Boxes[torch.Tensor],
    rows: int,
    cols: int,
    dtype: torch.dtype,
) -> torch.Tensor:
    """RGB ``[B, rows, 3, cols]`` (values 0..255 in ``dtype``) of each sample's region.

    Args:
        flat: uint8 buffer holding the planes, laid out as ``planes``.
        planes: Where each sample's Y, U and V pixels lie in ``flat``.
        heights: True image heights.
        widths: True image widths.
        region: The image pixels to convert; rows / columns past a sample's region (up to
            ``rows x cols``) repeat its last one (they get zero resize weight).
        rows: Rows of the output (>= every region's height).
        cols: Columns of the output (>= every region's width).
        dtype: Output dtype.
    """
    dev = flat.device
    y = region.top[:, None] + torch.minimum(
        torch.arange(rows, device=dev), region.height[:, None] - 1
    )  # [B, rows]
    x = region.left[:, None] + torch.minimum(
        torch.arange(cols, device=dev), region.width[:, None] - 1
    )  # [B, cols]
    cb, cr = _upsampled_chroma(flat, planes, heights, widths, y, x)
    return _ycc_to_rgb(_read_plane(flat, planes.y, y, x), cb, cr, dtype)
