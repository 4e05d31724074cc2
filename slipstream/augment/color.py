"""Per-sample pixel-value transforms: grayscale, brightness, contrast, solarization.

Definitions follow ``torchvision.transforms.v2.functional`` on float images in ``0..1``
(the tests check them against it): grayscale weights ``0.2989, 0.587, 0.114``;
brightness ``clamp(f * x)``; contrast ``clamp(f * x + (1 - f) * mean(gray(x)))``;
solarization ``1 - x`` where ``x >= threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from slipstream.augment.base import Params, RandomTransform, check_range
from slipstream.augment.keys import AugmentStream

__all__ = [
    "RandomBrightness",
    "RandomContrast",
    "RandomGrayscale",
    "RandomSolarization",
    "adjust_brightness",
    "adjust_contrast",
    "rgb_to_gray",
]


def rgb_to_gray(batch: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma of an RGB batch, ``[B, 1, H, W]``."""
    r, g, b = batch.unbind(dim=1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)


def adjust_brightness(batch: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``clamp(f * x, 0, 1)`` with one factor per sample (``[B]``)."""
    return (batch * factors.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)


def adjust_contrast(batch: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image with the mean of its grayscale, one factor per sample."""
    mean = rgb_to_gray(batch).mean(dim=(1, 2, 3), keepdim=True)
    f = factors.view(-1, 1, 1, 1)
    return (batch * f + mean * (1.0 - f)).clamp_(0.0, 1.0)


class RandomGrayscale(RandomTransform):
    """Grayscale (kept as 3 equal channels) with probability ``p`` per sample.

    Args:
        p: Probability per sample.
    """

    stream = AugmentStream.GRAYSCALE

    def __init__(self, p: float = 0.2) -> None:
        """Store the probability."""
        super().__init__(p)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Grayscale every sample."""
        return rgb_to_gray(batch).expand_as(batch)


class _RandomFactor(RandomTransform):
    """A per-sample factor drawn uniformly from ``factor_range``.

    Args:
        p: Probability per sample.
        factor_range: ``(low, high)`` of the uniform factor.
    """

    uniform_params = ("factor",)

    def __init__(self, p: float = 0.5, factor_range: Sequence[float] = (0.6, 1.4)) -> None:
        super().__init__(p)
        self.factor_range = check_range("factor_range", factor_range)


class RandomBrightness(_RandomFactor):
    """Scale pixel values by a per-sample factor (torchvision ``adjust_brightness``).

    Params: ``apply`` bool ``[B]``, ``factor`` ``[B]``. Arguments: ``p`` (0.5) and
    ``factor_range`` (``(0.6, 1.4)``).
    """

    stream = AugmentStream.BRIGHTNESS
    neutral_params = {"factor": 1.0}

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Brightness-adjust every sample."""
        return adjust_brightness(batch, params["factor"])


class RandomContrast(_RandomFactor):
    """Blend with the image's mean gray by a per-sample factor (``adjust_contrast``).

    Params: ``apply`` bool ``[B]``, ``factor`` ``[B]``. Arguments: ``p`` (0.5) and
    ``factor_range`` (``(0.6, 1.4)``).
    """

    stream = AugmentStream.CONTRAST
    neutral_params = {"factor": 1.0}

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Contrast-adjust every sample."""
        return adjust_contrast(batch, params["factor"])


class RandomSolarization(RandomTransform):
    """Invert pixels at or above ``threshold`` with probability ``p`` per sample.

    Args:
        p: Probability per sample.
        threshold: Values ``>= threshold`` become ``1 - x``.
    """

    stream = AugmentStream.SOLARIZE

    def __init__(self, p: float = 0.2, threshold: float = 0.5) -> None:
        """Store the probability and threshold."""
        super().__init__(p)
        self.threshold = float(threshold)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Solarize every sample."""
        return torch.where(batch >= self.threshold, 1.0 - batch, batch)
