"""estimate_rejection_fallback_rate against a Monte Carlo of torchvision's own sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.transforms import RandomResizedCrop

from slipstream.sampling.rejection import estimate_rejection_fallback_rate, fit_probability

Z = 4.5
"""Binomial tolerance in standard deviations (a false failure once in ~150,000 runs)."""


def _torchvision_fallback_rate(h: int, w: int, scale, ratio, n: int, seed: int) -> float:
    """Fraction of ``get_params`` calls that return torchvision's center fallback window."""
    in_ratio = w / h
    if in_ratio < min(ratio):
        fw, fh = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = h, int(round(h * max(ratio)))
    else:
        fh, fw = h, w
    fallback = ((h - fh) // 2, (w - fw) // 2, fh, fw)
    image = torch.empty(1, h, w)
    torch.manual_seed(seed)
    hits = sum(
        tuple(RandomResizedCrop.get_params(image, list(scale), list(ratio))) == fallback
        for _ in range(n)
    )
    return hits / n


@pytest.mark.parametrize(
    "h, w, scale, ratio",
    [
        (64, 512, (0.08, 1.0), (3 / 4, 4 / 3)),  # very wide: most samples fall back
        (300, 100, (0.08, 1.0), (3 / 4, 4 / 3)),  # tall: a few percent
        (200, 200, (0.6, 1.0), (0.5, 2.0)),  # square, large crops, wide ratio range
    ],
)
def test_matches_torchvision_monte_carlo(h, w, scale, ratio):
    # a fitting attempt gives the fallback window with probability < 1e-4 here (an
    # offset a uniform corner hits once in > 200, or a whole-image size), far below the
    # binomial tolerance
    n = 6000
    observed = _torchvision_fallback_rate(h, w, scale, ratio, n, seed=h + w)
    got = estimate_rejection_fallback_rate([w], [h], scale, ratio)
    rate = got["fallback_rate"]
    assert 0.01 < rate < 0.99
    assert abs(observed - rate) <= Z * math.sqrt(rate * (1 - rate) / n), (observed, rate)
    assert got["total_samples"] == 1 and got["recommend_direct"] == (rate > 0.05)


def test_square_default_settings_almost_never_fall_back():
    # (1 - p)^10 with p ~ 0.86: ~2.5e-9; torchvision's full-image output can also come
    # from a fitting attempt, so only the order of magnitude is checked against it
    rate = estimate_rejection_fallback_rate([224], [224])["fallback_rate"]
    assert 0 < rate < 1e-8
    p = fit_probability(224, 224)[0]
    assert rate == pytest.approx((1 - p) ** 10, rel=1e-12)
    n = 2000
    full = _torchvision_fallback_rate(224, 224, (0.08, 1.0), (3 / 4, 4 / 3), n, seed=1)
    assert full <= 0.005  # attempts that happen to take the whole image: ~1e-4


def test_one_attempt_fit_probability_matches_torchvision_formula():
    # p from a direct simulation of one attempt with torchvision's rounding (numpy)
    rng = np.random.default_rng(0)
    for h, w, scale, ratio in [(37, 91, (0.08, 1.0), (3 / 4, 4 / 3)), (5, 3, (0.2, 0.7), (0.5, 3))]:
        n = 400_000
        area = h * w * rng.uniform(*scale, n)
        aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), n))
        cw = np.rint(np.sqrt(area * aspect))
        ch = np.rint(np.sqrt(area / aspect))
        fits = (cw >= 1) & (ch >= 1) & (cw <= w) & (ch <= h)
        p = fit_probability(h, w, scale, ratio)[0]
        assert abs(fits.mean() - p) <= Z * math.sqrt(p * (1 - p) / n)


def test_every_image_counts_once_and_sampling_agrees():
    widths = [512] * 3 + [224]  # three wide images, one square
    heights = [64] * 3 + [224]
    exact = estimate_rejection_fallback_rate(widths, heights)
    wide = estimate_rejection_fallback_rate([512], [64])["fallback_rate"]
    square = estimate_rejection_fallback_rate([224], [224])["fallback_rate"]
    assert exact["fallback_rate"] == pytest.approx((3 * wide + square) / 4, rel=1e-12)
    assert exact["fallback_count"] == pytest.approx(3 * wide + square, rel=1e-12)
    assert exact["total_samples"] == 4 and exact["recommend_direct"]
    n = 50_000
    sampled = estimate_rejection_fallback_rate(widths, heights, n_samples=n, seed=3)
    sd = math.sqrt(wide * (1 - wide) / n) * 3 / 4
    assert abs(sampled["fallback_rate"] - exact["fallback_rate"]) <= Z * sd


def test_degenerate_ranges_and_errors():
    # one fixed aspect and area: the attempt either always or never fits
    assert fit_probability(100, 100, (0.5, 0.5), (1.0, 1.0))[0] == 1.0
    assert fit_probability(10, 100, (0.9, 0.9), (1.0, 1.0))[0] == 0.0
    assert estimate_rejection_fallback_rate([100], [10], (0.9, 0.9), (1, 1))["fallback_rate"] == 1
    # fixed area, aspect range: the fraction of log-aspects where sqrt(A/a) <= H + 1/2
    p = fit_probability(100, 100, (0.64, 0.64), (0.25, 4.0))[0]
    lo = math.log(6400 / 100.5**2)  # aspect where the height reaches 100.5
    hi = math.log(100.5**2 / 6400)  # and where the width does
    assert p == pytest.approx((hi - lo) / (2 * math.log(4)), rel=1e-9)
    with pytest.raises(ValueError, match="positive"):
        estimate_rejection_fallback_rate([0], [10])
    with pytest.raises(ValueError, match="no image sizes"):
        estimate_rejection_fallback_rate([], [])
    with pytest.raises(ValueError, match="scale"):
        estimate_rejection_fallback_rate([10], [10], scale=(0.9, 0.1))
