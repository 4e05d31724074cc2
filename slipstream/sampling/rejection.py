"""How often torchvision's random-resized-crop falls back to its center crop.

torchvision's ``RandomResizedCrop`` tries ten ``(area, aspect)`` pairs and, when none fits
the image, returns a center crop with the aspect clamped into ``ratio`` (see
:func:`slipstream.sampling.random_resized_crop`). For very elongated images, or ``scale``
ranges near 1, many samples get that same crop, which weakens the augmentation; the
``"direct"`` method never falls back.

One attempt draws ``A = H*W*U(scale)`` and ``l = U(log ratio)`` and fits when
``round(sqrt(A e^l))`` is in ``[1, W]`` and ``round(sqrt(A e^-l))`` in ``[1, H]``, that is
(up to the boundaries, of measure zero) when::

    max(A0, e^l / 4, e^-l / 4)  <  A  <  min(A1, (W + 1/2)^2 e^-l, (H + 1/2)^2 e^l)

For a fixed ``l`` that is an interval of ``A``, so the fit probability ``p`` is a 1-D
integral over ``l`` of a function that is a sum of exponentials between breakpoints (where
two of the bounds cross); it is integrated exactly there by Gauss-Legendre quadrature. The
fallback probability of one image is ``(1 - p)^10``.

Example:
    >>> h, w = ds.image_sizes()  # doctest: +SKIP
    >>> estimate_rejection_fallback_rate(w, h)["fallback_rate"]  # doctest: +SKIP
    0.0011
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from slipstream.sampling.crops import _ATTEMPTS, _check_range, _first_fitting_attempt, _sizes

__all__ = ["estimate_rejection_fallback_rate", "fit_probability"]

RECOMMEND_DIRECT_ABOVE = 0.05
"""``recommend_direct`` is set when more than this fraction of samples falls back."""

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)


def _bounds(
    logr: np.ndarray, H: np.ndarray, W: np.ndarray, a0: np.ndarray, a1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bound of the fitting areas at log-aspect ``logr`` (broadcast)."""
    up, down = np.exp(logr), np.exp(-logr)
    hi = np.minimum(np.minimum(a1, (W + 0.5) ** 2 * down), (H + 0.5) ** 2 * up)
    lo = np.maximum(np.maximum(a0, 0.25 * down), 0.25 * up)
    return lo, hi


def fit_probability(
    heights: np.ndarray,
    widths: np.ndarray,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """Probability that one torchvision attempt fits, per image (module docstring).

    Args:
        heights: Image heights ``[N]`` (or a scalar).
        widths: Image widths ``[N]`` (or a scalar).
        scale: ``(min, max)`` fraction of the image area.
        ratio: ``(min, max)`` aspect ratio ``w / h``.

    Returns:
        ``float64 [N]`` probabilities.
    """
    s0, s1 = _check_range("scale", scale, positive=False)
    r0, r1 = _check_range("ratio", ratio, positive=True)
    H, W = _sizes(heights, widths)
    H, W = H.astype(np.float64)[:, None], W.astype(np.float64)[:, None]
    a0, a1 = s0 * H * W, s1 * H * W
    lr0, lr1 = math.log(r0), math.log(r1)
    fixed_area = s1 == s0  # then: the measure of the aspects where that area fits
    if fixed_area:
        a0, a1 = np.zeros_like(H), np.full_like(H, np.inf)  # drop the area bounds
    if lr1 == lr0:  # one aspect
        lo, hi = _bounds(np.full_like(H, lr0), H, W, a0, a1)
        if fixed_area:
            return ((lo < s0 * H * W) & (s0 * H * W < hi))[:, 0].astype(np.float64)
        return (np.clip(hi - lo, 0, None) / (a1 - a0))[:, 0]
    # Breakpoints in l where two bounds cross: const = k e^{+-l}, and k1 e^-l = k2 e^l.
    consts = np.concatenate([a0, a1, s0 * H * W], axis=1)
    coefs = np.concatenate([(W + 0.5) ** 2, (H + 0.5) ** 2, np.full_like(H, 0.25)], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = consts[:, :, None] / coefs[:, None, :]
        points = [np.log(ratios).reshape(len(H), -1), -np.log(ratios).reshape(len(H), -1)]
        pairs = coefs[:, :, None] / coefs[:, None, :]
        points.append(0.5 * np.log(pairs).reshape(len(H), -1))
    points = np.concatenate(points, axis=1)
    points = np.where(np.isfinite(points), points, lr0)
    edges = np.sort(
        np.clip(
            np.concatenate([np.full_like(H, lr0), points, np.full_like(H, lr1)], axis=1), lr0, lr1
        ),
        axis=1,
    )
    left, right = edges[:, :-1, None], edges[:, 1:, None]
    half = (right - left) / 2
    logr = left + half + half * _NODES[None, None, :]
    lo, hi = _bounds(logr, H[:, :, None], W[:, :, None], a0[:, :, None], a1[:, :, None])
    if fixed_area:
        area = (s0 * H * W)[:, :, None]
        inside = ((lo < area) & (area < hi)).astype(np.float64)
        total = (inside * _WEIGHTS * half).sum(axis=(1, 2))
    else:
        total = (np.clip(hi - lo, 0, None) * _WEIGHTS * half).sum(axis=(1, 2)) / (a1 - a0)[:, 0]
    return np.clip(total / (lr1 - lr0), 0.0, 1.0)


def estimate_rejection_fallback_rate(
    widths: np.ndarray | Sequence[int],
    heights: np.ndarray | Sequence[int],
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    n_samples: int | None = None,
    seed: int = 42,
) -> dict[str, float | bool]:
    """Fraction of samples for which torchvision's RRC sampler falls back to a center crop.

    Exact by default (module docstring): the mean over the given images of
    ``(1 - p)^10``, ``p`` the chance one attempt fits. With ``n_samples`` it is estimated
    instead by drawing ``n_samples`` crops per distinct image size with this package's
    torchvision-equivalent sampler. Every image counts once (the original slipstream
    weighted each distinct size equally, so a rare odd size counted as much as the common
    one).

    Args:
        widths: Image widths, one per image (or a representative set).
        heights: Image heights, as ``widths``.
        scale: ``(min, max)`` fraction of the image area.
        ratio: ``(min, max)`` aspect ratio ``w / h``.
        n_samples: None (exact), or crops to draw per distinct ``(width, height)``.
        seed: Seed of the draws when ``n_samples`` is given.

    Returns:
        ``{"fallback_rate": fraction of samples that fall back,
        "fallback_count": expected fallbacks in one pass over the images,
        "total_samples": number of images,
        "recommend_direct": fallback_rate > 5% (use method="direct")}``.

    Raises:
        ValueError: On non-positive sizes, mismatched lengths or bad ranges.
    """
    H, W = _sizes(np.asarray(heights), np.asarray(widths))
    if H.size == 0:
        raise ValueError("no image sizes given")
    sizes, counts = np.unique(np.stack([H, W], axis=1), axis=0, return_counts=True)
    if n_samples is None:
        p = fit_probability(sizes[:, 0], sizes[:, 1], scale, ratio)
        per_size = (1.0 - p) ** _ATTEMPTS
    else:
        per_size = _sampled_fallback(sizes, scale, ratio, int(n_samples), seed)
    expected = float((per_size * counts).sum())
    rate = expected / int(counts.sum())
    return {
        "fallback_rate": rate,
        "fallback_count": expected,
        "total_samples": int(counts.sum()),
        "recommend_direct": rate > RECOMMEND_DIRECT_ABOVE,
    }


def _sampled_fallback(
    sizes: np.ndarray, scale: Sequence[float], ratio: Sequence[float], n: int, seed: int
) -> np.ndarray:
    """Fraction of ``n`` draws of the torchvision-equivalent sampler that fall back, per size."""
    if n < 1:
        raise ValueError(f"n_samples must be >= 1, got {n}")
    s0, s1 = _check_range("scale", scale, positive=False)
    r0, r1 = _check_range("ratio", ratio, positive=True)
    rng = np.random.default_rng(seed)
    out = np.empty(len(sizes))
    chunk = max(1, 1_000_000 // (2 * _ATTEMPTS))
    for i, (h, w) in enumerate(sizes):
        fallbacks = 0
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            u = rng.random((m, 2 * _ATTEMPTS))
            area = np.full(m, float(h * w))
            found, _, _ = _first_fitting_attempt(
                u, area, s0, s1, r0, r1, np.full(m, h), np.full(m, w)
            )
            fallbacks += int(m - found.sum())
        out[i] = fallbacks / n
    return out
