"""Crop windows computed from stored image sizes, before decoding.

A crop window is one ``int32`` row ``[y, x, h, w]`` in source-pixel coordinates: the
crop covers rows ``y .. y+h-1`` and columns ``x .. x+w-1`` of the stored image. Every
function here returns ``[B, 4]`` windows with ``h, w >= 1`` that lie inside their image.
For K views stack the per-view results: ``np.stack([... for v in range(K)], axis=1)``
gives the ``[B, K, 4]`` multi-view contract. :func:`centered_resized_crop` draws windows
around given centers ("yoked" views: several scales of one image sharing a center).

Random windows are keyed: a sample's window depends only on
``(seed, epoch, sample_id, view)`` (see :mod:`slipstream.sampling.keyed_random`), never
on batch composition or order. All functions are vectorized over the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from slipstream.sampling.keyed_random import Stream, uniform

__all__ = [
    "center_crop",
    "centered_resized_crop",
    "flips",
    "random_resized_crop",
    "resize_short_center_crop",
    "window_centers",
]

_ATTEMPTS = 10


def _sizes(
    heights: np.ndarray, widths: np.ndarray, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate image sizes; return them as 1-D int64 arrays broadcast together (and to n)."""
    arrays = []
    for name, a in (("heights", heights), ("widths", widths)):
        a = np.asarray(a)
        if a.ndim > 1:
            raise ValueError(f"{name} must be a scalar or 1-D array, got shape {a.shape}")
        if a.dtype.kind not in "iu" and a.size:
            if a.dtype.kind != "f" or not np.all(a == np.floor(a)):
                raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
        arrays.append(a.astype(np.int64, copy=False).reshape(-1))
    h, w = arrays
    if h.shape != w.shape or (n is not None and h.shape[0] != n):
        try:
            shape = np.broadcast_shapes(h.shape, w.shape, () if n is None else (n,))
        except ValueError:
            raise ValueError(
                f"heights {h.shape}, widths {w.shape} and {n} sample ids do not match"
            ) from None
        h, w = np.broadcast_to(h, shape), np.broadcast_to(w, shape)
    if h.size and (h.min() <= 0 or w.min() <= 0):
        bad = int(np.flatnonzero((h <= 0) | (w <= 0))[0])
        raise ValueError(
            f"image sizes must be positive; entry {bad} has height={h[bad]}, width={w[bad]}"
        )
    return h, w


def _check_range(name: str, rng: Sequence[float], positive: bool) -> tuple[float, float]:
    if len(rng) != 2:
        raise ValueError(f"{name} must be a (min, max) pair, got {rng!r}")
    lo, hi = float(rng[0]), float(rng[1])
    if not lo <= hi:
        raise ValueError(f"{name} must satisfy min <= max, got {rng!r}")
    if positive and lo <= 0:
        raise ValueError(f"{name} must be positive, got {rng!r}")
    return lo, hi


def _output_size(output_size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(output_size, int | np.integer):
        oh = ow = int(output_size)
    else:
        if len(output_size) != 2:
            raise ValueError(f"output_size must be an int or (height, width), got {output_size!r}")
        oh, ow = int(output_size[0]), int(output_size[1])
    if oh <= 0 or ow <= 0:
        raise ValueError(f"output_size must be positive, got {output_size!r}")
    return oh, ow


def _windows(y: np.ndarray, x: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = np.empty((y.shape[0], 4), dtype=np.int32)
    out[:, 0] = y
    out[:, 1] = x
    out[:, 2] = h
    out[:, 3] = w
    return out


def _uniform_corner(
    H: np.ndarray, W: np.ndarray, h: np.ndarray, w: np.ndarray, u_y: np.ndarray, u_x: np.ndarray
) -> np.ndarray:
    """Windows of size ``h x w`` whose corner is uniform over every position in the image."""
    y = np.floor(u_y * (H - h + 1)).astype(np.int64)
    x = np.floor(u_x * (W - w + 1)).astype(np.int64)
    return _windows(y, x, h, w)


def _check_rrc_args(
    scale: Sequence[float], ratio: Sequence[float], sample_ids: np.ndarray
) -> tuple[float, float, float, float, np.ndarray]:
    """``(s0, s1, r0, r1, ids)`` of a random-resized-crop call, checked."""
    s0, s1 = _check_range("scale", scale, positive=False)
    if s0 < 0:
        raise ValueError(f"scale must be non-negative, got {scale!r}")
    r0, r1 = _check_range("ratio", ratio, positive=True)
    ids = np.asarray(sample_ids)
    if ids.ndim != 1:
        raise ValueError(f"sample_ids must be 1-D, got shape {ids.shape}")
    return s0, s1, r0, r1, ids


def _first_fitting_attempt(
    u: np.ndarray,
    area: np.ndarray,
    s0: float,
    s1: float,
    r0: float,
    r1: float,
    max_h: np.ndarray,
    max_w: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ten ``(area fraction, log-aspect)`` attempts of torchvision; the first that fits wins.

    ``u[:, :k]`` are the area-fraction draws and ``u[:, k:2k]`` the log-aspect draws
    (``k = _ATTEMPTS``); sizes round half to even, as Python's ``round``. Returns
    ``(found, h, w)``: whether an attempt fits ``max_h x max_w`` and its int64 size (the
    first attempt's where none does).
    """
    k = _ATTEMPTS
    target_area = u[:, :k] * (s1 - s0)
    target_area += s0
    target_area *= area[:, None]
    lr0 = math.log(r0)
    aspect = u[:, k : 2 * k] * (math.log(r1) - lr0)
    aspect += lr0
    np.exp(aspect, out=aspect)
    cw = np.sqrt(target_area * aspect)
    np.rint(cw, out=cw)  # Python round(): half to even
    ch = np.sqrt(np.divide(target_area, aspect, out=target_area))
    np.rint(ch, out=ch)
    ok = cw <= max_w[:, None]
    ok &= ch <= max_h[:, None]
    ok &= np.minimum(cw, ch) >= 1
    first = np.argmax(ok, axis=1)  # first valid attempt (0 when none: see ``found``)
    rows = np.arange(u.shape[0])
    found = ok[rows, first]
    return found, ch[rows, first].astype(np.int64), cw[rows, first].astype(np.int64)


def random_resized_crop(
    heights: np.ndarray,
    widths: np.ndarray,
    sample_ids: np.ndarray,
    *,
    seed: int,
    epoch: int,
    view: int = 0,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    method: str = "torchvision",
) -> np.ndarray:
    """Random-resized-crop windows, keyed per sample.

    ``method="torchvision"`` matches ``torchvision.transforms.RandomResizedCrop.get_params``
    in distribution: ten attempts of ``target_area = H*W*U(scale)``,
    ``aspect = exp(U(log ratio))``, ``w = round(sqrt(target_area*aspect))``,
    ``h = round(sqrt(target_area/aspect))`` (round half to even, as Python's ``round``);
    the first attempt with ``0 < w <= W`` and ``0 < h <= H`` wins and its corner is
    uniform over all positions. If none fits, the central fallback: the image aspect is
    clamped to ``ratio`` (``w = W, h = round(W / min(ratio))`` for too-tall images,
    ``h = H, w = round(H * max(ratio))`` for too-wide ones, else the whole image) and the
    window is centred with ``(H - h) // 2, (W - w) // 2``. All ten candidates are drawn at
    once and the winner is selected with array operations.

    ``method="direct"`` draws one candidate that always fits (no attempts, no fallback):
    the log-aspect is uniform over the part of ``log(ratio)`` where some area fraction
    ``>= scale[0]`` fits the image, and the area fraction is uniform in
    ``[scale[0], min(scale[1], s_max(aspect))]`` where
    ``s_max(a) = min(a * H / W, W / (a * H))`` is the largest fraction that fits at aspect
    ``a``. How it differs from torchvision: torchvision's accepted ``(scale, log aspect)``
    pairs are uniform over the feasible region of the box (plus the fallback point), so
    aspects whose feasible scale interval is short are rarer; "direct" makes the aspect
    marginal uniform over its feasible range and so over-weights those aspects (extreme
    aspects on non-square images) and small crops at them. The two agree when the whole
    box is feasible. If no aspect in ``ratio`` admits ``scale[0]`` (a very elongated image)
    the aspect is clamped to the nearest bound and the largest window at that aspect is
    used, like torchvision's fallback. Sizes are rounded then clamped into the image.

    Args:
        heights: Image heights, ``[B]`` (or a scalar, broadcast).
        widths: Image widths, ``[B]`` (or a scalar, broadcast).
        sample_ids: Sample ids ``[B]``; they key the randomness.
        seed: Global seed.
        epoch: Epoch number.
        view: View index for multi-view training.
        scale: ``(min, max)`` fraction of the image area.
        ratio: ``(min, max)`` aspect ratio ``w / h``.
        method: ``"torchvision"`` or ``"direct"``.

    Returns:
        ``int32`` windows ``[B, 4]`` as ``[y, x, h, w]``.

    Raises:
        ValueError: On non-positive sizes, bad ranges, mismatched shapes or unknown method.
    """
    s0, s1, r0, r1, ids = _check_rrc_args(scale, ratio, sample_ids)
    H, W = _sizes(heights, widths, ids.shape[0])
    if method == "torchvision":
        return _rrc_torchvision(H, W, ids, seed, epoch, view, s0, s1, r0, r1)
    if method == "direct":
        # Draw layout: 0 log-aspect, 1 area fraction, 2 y, 3 x.
        u = uniform(seed, epoch, ids, view, Stream.CROP, 4)
        area = (H * W).astype(np.float64)
        h, w = _direct_size(area, H, W, u[:, 0], u[:, 1], s0, s1, r0, r1)
        return _uniform_corner(H, W, h, w, u[:, 2], u[:, 3])
    raise ValueError(f"unknown method {method!r}; expected 'torchvision' or 'direct'")


def _rrc_torchvision(
    H: np.ndarray,
    W: np.ndarray,
    ids: np.ndarray,
    seed: int,
    epoch: int,
    view: int,
    s0: float,
    s1: float,
    r0: float,
    r1: float,
) -> np.ndarray:
    k = _ATTEMPTS
    # Draw layout: [0, k) area fraction, [k, 2k) log-aspect, 2k y, 2k + 1 x.
    u = uniform(seed, epoch, ids, view, Stream.CROP, 2 * k + 2)
    area = (H * W).astype(np.float64)
    found, h, w = _first_fitting_attempt(u, area, s0, s1, r0, r1, H, W)
    win = _uniform_corner(H, W, h, w, u[:, 2 * k], u[:, 2 * k + 1])
    if not found.all():
        # Central fallback, exactly as torchvision (Python round == np.rint, half to even).
        fb = np.flatnonzero(~found)
        fh, fw = H[fb], W[fb]
        in_ratio = fw / fh
        too_tall = in_ratio < r0
        too_wide = in_ratio > r1
        w_fb = np.where(too_wide, np.rint(fh * r1).astype(np.int64), fw)
        h_fb = np.where(too_tall, np.rint(fw / r0).astype(np.int64), fh)
        win[fb] = _windows((fh - h_fb) // 2, (fw - w_fb) // 2, h_fb, w_fb)
    return win


def center_crop(
    heights: np.ndarray,
    widths: np.ndarray,
    *,
    crop_ratio: float | None = 224 / 256,
    output_size: int | Sequence[int] = (224, 224),
) -> np.ndarray:
    """Centred windows as FFCV's ``CenterCropRGBImageDecoder`` takes them.

    With ``crop_ratio=None`` the window is the original slipstream's center crop instead: the
    centred ``output_size`` window itself, at source resolution (no resize), shrunk to fit
    an image smaller than it (the largest output-aspect window scaled by
    ``min(1, H / out_h, W / out_w)``, each side truncated by ``int``; a square output of
    side ``s`` gives the side ``min(s, H, W)``), then resized to ``output_size``.

    For a square output the side is ``c = int(crop_ratio * min(H, W))`` and the corner is
    ``((H - c) // 2, (W - c) // 2)``, exactly FFCV. For a non-square ``output_size`` the
    window keeps the output aspect ``a = out_w / out_h``: the largest window of aspect
    ``a`` inside the image (``H x H*a`` when ``W / H > a``, else ``W/a x W``) is scaled by
    ``crop_ratio`` with each side truncated by ``int``; the result is then centred the same
    way. Sides are clamped to ``[1, image side]``.

    Args:
        heights: Image heights ``[B]``.
        widths: Image widths ``[B]``.
        crop_ratio: Fraction of the largest output-aspect window to keep, in ``(0, 1]``;
            None for the original slipstream's unresized center crop.
        output_size: ``(height, width)`` the decoder resizes to, or one int for a square.

    Returns:
        ``int32`` windows ``[B, 4]`` as ``[y, x, h, w]``.
    """
    if crop_ratio is not None and not 0 < crop_ratio <= 1:
        raise ValueError(f"crop_ratio must be in (0, 1] or None, got {crop_ratio}")
    oh, ow = _output_size(output_size)
    H, W = _sizes(heights, widths)
    if crop_ratio is None:  # the original slipstream: the output window, unresized
        shrink = np.minimum(1.0, np.minimum(H / oh, W / ow))
        h = np.clip((oh * shrink).astype(np.int64), 1, H)
        w = np.clip((ow * shrink).astype(np.int64), 1, W)
    elif oh == ow:
        c = np.maximum((crop_ratio * np.minimum(H, W)).astype(np.int64), 1)
        h = w = c
    else:
        a = ow / oh
        wide = W > H * a  # W / H > a
        full_h = np.where(wide, H, W / a)
        full_w = np.where(wide, H * a, W)
        h = np.clip((crop_ratio * full_h).astype(np.int64), 1, H)
        w = np.clip((crop_ratio * full_w).astype(np.int64), 1, W)
    return _windows((H - h) // 2, (W - w) // 2, h, w)


def resize_short_center_crop(
    heights: np.ndarray,
    widths: np.ndarray,
    *,
    resize_short: int = 256,
    output_size: int | Sequence[int] = (224, 224),
) -> np.ndarray:
    """``Resize(resize_short)`` then ``CenterCrop(output_size)`` as a source window.

    Follows torchvision: the short side becomes ``resize_short`` and the long side
    ``int(resize_short * long / short)``; the crop corner in the resized image is
    ``round((new - out) / 2)`` per axis. The window is mapped back with the continuous
    (pixel-edge) convention, edge ``e`` of the resized image sitting at ``e * old / new`` in
    the source: ``y = rint(top * H / new_h)``, ``h = rint(out_h * H / new_h)`` (likewise for
    x), rounding half to even, then clamped so ``1 <= h <= H`` and ``0 <= y <= H - h``.
    The window is within about one source pixel of where torchvision's crop samples. If
    the output is larger than the resized image (torchvision would pad), the window is
    clamped to the whole image along that axis.

    Args:
        heights: Image heights ``[B]``.
        widths: Image widths ``[B]``.
        resize_short: Target length of the short side.
        output_size: ``(height, width)`` of the centre crop, or one int for a square.

    Returns:
        ``int32`` windows ``[B, 4]`` as ``[y, x, h, w]``.
    """
    if resize_short <= 0:
        raise ValueError(f"resize_short must be positive, got {resize_short}")
    oh, ow = _output_size(output_size)
    H, W = _sizes(heights, widths)
    short = np.minimum(H, W)
    long_new = (resize_short * np.maximum(H, W) / short).astype(np.int64)
    portrait = W <= H
    new_h = np.where(portrait, long_new, resize_short)
    new_w = np.where(portrait, resize_short, long_new)
    sy = H / new_h
    sx = W / new_w
    top = np.rint((new_h - oh) / 2.0)
    left = np.rint((new_w - ow) / 2.0)
    h = np.clip(np.rint(oh * sy).astype(np.int64), 1, H)
    w = np.clip(np.rint(ow * sx).astype(np.int64), 1, W)
    y = np.clip(np.rint(top * sy).astype(np.int64), 0, H - h)
    x = np.clip(np.rint(left * sx).astype(np.int64), 0, W - w)
    return _windows(y, x, h, w)


def flips(
    sample_ids: np.ndarray, *, seed: int, epoch: int, view: int = 0, probability: float = 0.5
) -> np.ndarray:
    """Keyed horizontal-flip decisions.

    Args:
        sample_ids: Sample ids ``[B]``.
        seed: Global seed.
        epoch: Epoch number.
        view: View index.
        probability: Probability of a flip, in ``[0, 1]``.

    Returns:
        ``uint8`` array ``[B]`` of 0/1 (1 = flip).
    """
    if not 0.0 <= probability <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {probability}")
    u = uniform(seed, epoch, np.asarray(sample_ids), view, Stream.FLIP, 1)[:, 0]
    return (u < probability).astype(np.uint8)


def window_centers(windows: np.ndarray) -> np.ndarray:
    """Centers of ``[..., 4]`` windows as float64 ``[..., 2]`` ``(cy, cx) = (y + h/2, x + w/2)``.

    Coordinates are continuous (pixel edges): a window ``[y, x, h, w]`` spans
    ``[y, y + h) x [x, x + w)``, so an odd side gives a half-integer center.
    """
    win = np.asarray(windows, dtype=np.float64)
    return win[..., :2] + win[..., 2:] / 2.0


def centered_resized_crop(
    heights: np.ndarray,
    widths: np.ndarray,
    centers: np.ndarray,
    sample_ids: np.ndarray,
    *,
    seed: int,
    epoch: int,
    view: int = 0,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """Random-resized-crop windows centred on given points, keyed per sample.

    The building block of "yoked" views: several views of one image at different scales
    that share a center (e.g. a global view's center, from :func:`window_centers`). The
    area fraction and aspect follow torchvision's draws, restricted to windows that fit
    around the center: a window of size ``(h, w)`` centred at ``(cy, cx)`` lies inside
    the image iff ``h <= Hc = 2 * min(cy, H - cy)`` and ``w <= Wc = 2 * min(cx, W - cx)``.
    Ten attempts of ``area = H*W*U(scale)``, ``aspect = exp(U(log ratio))`` (sizes
    rounded half to even, as torchvision) are drawn; the first that fits the ``Hc x Wc``
    box wins, so accepted windows are uniform over the feasible part of the
    ``(scale, log aspect)`` box, as in torchvision. If none fits, one loop-free draw as
    ``method="direct"`` of :func:`random_resized_crop` inside the box: log-aspect uniform
    where ``scale[0]`` fits, area fraction uniform up to the largest that fits; if even
    ``scale[0]`` fits at no aspect of ``ratio`` (a center near the border), the largest
    window whose aspect is the box's clamped into ``ratio``. The area fraction is always
    relative to the whole image ``H*W``.

    The corner is ``rint(c - side / 2)`` (half to even), so the window's center is within
    0.5 px of the given one along each axis (exact when the side's parity allows), and the
    window lies inside the image. Draws are keyed by ``(seed, epoch, sample id, view)`` on
    the crop stream, like :func:`random_resized_crop` with the same ``view``.

    Args:
        heights: Image heights, ``[B]`` (or a scalar, broadcast).
        widths: Image widths, ``[B]`` (or a scalar, broadcast).
        centers: ``[B, 2]`` float ``(cy, cx)`` in continuous pixel coordinates, strictly
            inside the image (``0 < cy < H``, ``0 < cx < W``).
        sample_ids: Sample ids ``[B]``; they key the randomness.
        seed: Global seed.
        epoch: Epoch number.
        view: View index of this (yoked) view.
        scale: ``(min, max)`` fraction of the image area.
        ratio: ``(min, max)`` aspect ratio ``w / h``.

    Returns:
        ``int32`` windows ``[B, 4]`` as ``[y, x, h, w]``.

    Raises:
        ValueError: On non-positive sizes, bad ranges, mismatched shapes or centers outside
            their images.
    """
    s0, s1, r0, r1, ids = _check_rrc_args(scale, ratio, sample_ids)
    H, W = _sizes(heights, widths, ids.shape[0])
    c = np.asarray(centers, dtype=np.float64)
    if c.shape != (ids.shape[0], 2):
        raise ValueError(f"centers must have shape ({ids.shape[0]}, 2), got {c.shape}")
    cy, cx = c[:, 0], c[:, 1]
    outside = ~((cy > 0) & (cy < H) & (cx > 0) & (cx < W))
    if outside.any():
        bad = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"centers must lie strictly inside their images; entry {bad} has center "
            f"({cy[bad]}, {cx[bad]}) in a {H[bad]}x{W[bad]} image"
        )
    # The largest window centred at c (whole pixels); >= 1 for a center inside the image.
    box_h = np.maximum(np.floor(2 * np.minimum(cy, H - cy)), 1).astype(np.int64)
    box_w = np.maximum(np.floor(2 * np.minimum(cx, W - cx)), 1).astype(np.int64)
    k = _ATTEMPTS
    # Draw layout: [0, k) area fraction, [k, 2k) log-aspect, 2k / 2k + 1 the direct fallback.
    u = uniform(seed, epoch, ids, view, Stream.CROP, 2 * k + 2)
    area = (H * W).astype(np.float64)
    found, h, w = _first_fitting_attempt(u, area, s0, s1, r0, r1, box_h, box_w)
    if not found.all():
        fb = np.flatnonzero(~found)
        h[fb], w[fb] = _direct_size(
            area[fb], box_h[fb], box_w[fb], u[fb, 2 * k], u[fb, 2 * k + 1], s0, s1, r0, r1
        )
    y = np.clip(np.rint(cy - h / 2.0).astype(np.int64), 0, H - h)
    x = np.clip(np.rint(cx - w / 2.0).astype(np.int64), 0, W - w)
    return _windows(y, x, h, w)


def _direct_size(
    area: np.ndarray,
    box_h: np.ndarray,
    box_w: np.ndarray,
    u_aspect: np.ndarray,
    u_scale: np.ndarray,
    s0: float,
    s1: float,
    r0: float,
    r1: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One loop-free ``(h, w)`` draw that fits a ``box_h x box_w`` box ("direct" sampling).

    The log-aspect is uniform over the part of ``log(ratio)`` where an area fraction
    ``s0`` fits the box, then the fraction is uniform in ``[s0, min(s1, s_max(aspect))]``,
    ``s_max`` being the largest that fits at that aspect; where no aspect admits ``s0`` the
    box's own aspect clamped into ``ratio`` and the largest window there. Fractions are of
    ``area`` (the whole image's, also when the box is smaller). Serves both
    ``random_resized_crop(method="direct")`` (the box is the image) and the fallback of
    :func:`centered_resized_crop` (the box around a center).

    Args:
        area: Image areas ``H * W`` (float64) ``[B]``.
        box_h: Box heights ``[B]`` (int64, >= 1).
        box_w: Box widths ``[B]`` (int64, >= 1).
        u_aspect: Uniform ``[0, 1)`` draws for the log-aspect ``[B]``.
        u_scale: Uniform ``[0, 1)`` draws for the area fraction ``[B]``.
        s0: Smallest area fraction.
        s1: Largest area fraction.
        r0: Smallest aspect ratio ``w / h``.
        r1: Largest aspect ratio ``w / h``.

    Returns:
        int64 ``(h, w)``, each ``[B]``, with ``1 <= h <= box_h`` and ``1 <= w <= box_w``.
    """
    bh2, bw2 = box_h.astype(np.float64) ** 2, box_w.astype(np.float64) ** 2
    s_floor = max(s0, 1e-12)
    # h = sqrt(area*s/a) <= box_h and w = sqrt(area*s*a) <= box_w at s = s0 bound the aspect.
    lo = np.maximum(math.log(r0), np.log(area * s_floor / bh2))
    hi = np.minimum(math.log(r1), np.log(bw2 / (area * s_floor)))
    empty = lo > hi
    # Infeasible: the box's own aspect clamped into ratio (the largest window there).
    clamp = np.log(np.clip(box_w / box_h, r0, r1))
    lo = np.where(empty, clamp, lo)
    hi = np.where(empty, clamp, hi)
    a = np.exp(lo + (hi - lo) * u_aspect)
    s_max = np.minimum(s1, np.minimum(bw2 / (area * a), bh2 * a / area))
    s_lo = np.where(empty, s_max, np.minimum(s0, s_max))
    s = s_lo + (s_max - s_lo) * u_scale
    w = np.clip(np.rint(np.sqrt(area * s * a)).astype(np.int64), 1, box_w)
    h = np.clip(np.rint(np.sqrt(area * s / a)).astype(np.int64), 1, box_h)
    return h, w
