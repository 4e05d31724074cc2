"""Pixel-value transforms: grayscale (fixed and per sample), brightness, contrast, solarization.

Definitions follow ``torchvision.transforms.v2.functional`` on float images in ``0..1``
(the tests check them against it): grayscale weights ``0.2989, 0.587, 0.114``;
brightness ``clamp(f * x)``; contrast ``clamp(f * x + (1 - f) * mean(gray(x)))``;
solarization ``1 - x`` where ``x >= threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from slipstream.augment.base import FixedTransform, Params, RandomTransform, check_range, stand_in
from slipstream.augment.keys import AugmentStream
from slipstream.renamed import renamed_argument

__all__ = [
    "RandomBrightness",
    "RandomContrast",
    "RandomGrayscale",
    "RandomSolarization",
    "ToGrayscale",
    "adjust_brightness",
    "adjust_contrast",
    "rgb_to_gray",
    "to_grayscale",
]


def rgb_to_gray(batch: torch.Tensor) -> torch.Tensor:
    """ITU-R 601-2 luma of an RGB batch, ``[B, 1, H, W]``."""
    r, g, b = batch.unbind(dim=1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)


def to_grayscale(images: torch.Tensor, num_output_channels: int = 1) -> torch.Tensor:
    """ITU-R 601-2 luma of RGB images ``[..., 3, H, W]`` of any dtype, torchvision's way.

    Computed in the input's float dtype (float32 for integer images) and cast back to the
    input's dtype: integer images are truncated, as torchvision's ``rgb_to_grayscale``
    does. One-channel input is returned as a copy (or repeated to 3 channels).

    Args:
        images: ``[..., C, H, W]`` with ``C`` = 3 (or 1).
        num_output_channels: 1, or 3 for three equal channels (an expanded view).

    Returns:
        ``[..., num_output_channels, H, W]`` in the input's dtype.
    """
    if num_output_channels not in (1, 3):
        raise ValueError(f"num_output_channels must be 1 or 3, got {num_output_channels}")
    if images.dim() < 3 or images.shape[-3] not in (1, 3):
        shape = tuple(images.shape)
        raise ValueError(f"expected images [..., 3, H, W] (or 1 channel), got {shape}")
    if images.shape[-3] == 1:
        gray = images.clone()
    else:
        r, g, b = images.unbind(dim=-3)
        gray = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(-3)
        gray = gray.to(images.dtype)
    if num_output_channels == 3:
        return gray.expand(*gray.shape[:-3], 3, *gray.shape[-2:])
    return gray


def adjust_brightness(
    batch: torch.Tensor, factors: torch.Tensor, max_value: float = 1.0
) -> torch.Tensor:
    """``clamp(f * x, 0, max_value)`` with one factor per sample (``[B]``)."""
    return (batch * factors.view(-1, 1, 1, 1)).clamp_(0.0, max_value)


def adjust_contrast(
    batch: torch.Tensor, factors: torch.Tensor, max_value: float = 1.0
) -> torch.Tensor:
    """Blend each image with the mean of its grayscale, one factor per sample."""
    mean = rgb_to_gray(batch).mean(dim=(1, 2, 3), keepdim=True)
    f = factors.view(-1, 1, 1, 1)
    return (batch * f + mean * (1.0 - f)).clamp_(0.0, max_value)


class RandomGrayscale(RandomTransform):
    """Grayscale (kept as 3 equal channels) with probability ``p`` per sample.

    Args:
        p: Probability per sample.
        num_output_channels: 3 (the only count that keeps a batch of mixed samples).
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
    """

    stream = AugmentStream.GRAYSCALE

    def __init__(
        self,
        p: float = 0.5,
        num_output_channels: int = 3,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Store the probability."""
        super().__init__(p, seed, device)
        if num_output_channels != 3:
            raise ValueError(
                f"RandomGrayscale keeps 3 channels (got num_output_channels="
                f"{num_output_channels}); use ToGrayscale(1) for one-channel output"
            )
        self.num_output_channels = 3

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Grayscale every sample."""
        return rgb_to_gray(batch).expand_as(batch)


class ToGrayscale(FixedTransform):
    """Grayscale images (:func:`to_grayscale`): ``[..., 3, H, W]`` to 1 (or 3) channels.

    Works on float and integer images, single images and batches (no key needed).

    Args:
        num_output_channels: 1, or 3 for three equal channels.
    """

    def __init__(self, num_output_channels: int = 1) -> None:
        """Store the channel count."""
        if num_output_channels not in (1, 3):
            raise ValueError(f"num_output_channels must be 1 or 3, got {num_output_channels}")
        self.num_output_channels = int(num_output_channels)

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """Stand-in with ``num_output_channels`` channels."""
        shape = (*batch.shape[:-3], self.num_output_channels, *batch.shape[-2:])
        return stand_in(shape, batch.dtype, batch.device)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Convert."""
        return to_grayscale(batch, self.num_output_channels)


class _RandomFactor(RandomTransform):
    """A per-sample factor drawn uniformly from ``scale_range``.

    Args:
        p: Probability per sample.
        scale_range: ``(low, high)`` of the uniform factor.
        max_value: Outputs are clamped to ``[0, max_value]``.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
        factor_range: Old name of ``scale_range`` (FutureWarning).
    """

    uniform_params = ("factor",)

    def __init__(
        self,
        p: float = 1.0,
        scale_range: Sequence[float] | None = None,
        max_value: float = 1.0,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        factor_range: Sequence[float] | None = None,
    ) -> None:
        super().__init__(p, seed, device)
        scale_range = renamed_argument("factor_range", "scale_range", factor_range, scale_range)
        self.scale_range = check_range("scale_range", scale_range or (0.6, 1.4))
        self.max_value = float(max_value)

    @property
    def factor_range(self) -> tuple[float, float]:
        """The factor's range (the base class draws ``<param>_range``)."""
        return self.scale_range


class RandomBrightness(_RandomFactor):
    """Scale pixel values by a per-sample factor (torchvision ``adjust_brightness``).

    Params: ``apply`` bool ``[B]``, ``factor`` ``[B]``. Arguments: ``p`` (1.0),
    ``scale_range`` (``(0.6, 1.4)``), ``max_value`` (1.0), ``seed``, ``device``.
    """

    stream = AugmentStream.BRIGHTNESS
    neutral_params = {"factor": 1.0}

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Brightness-adjust every sample."""
        return adjust_brightness(batch, params["factor"], self.max_value)


class RandomContrast(_RandomFactor):
    """Blend with the image's mean gray by a per-sample factor (``adjust_contrast``).

    Params: ``apply`` bool ``[B]``, ``factor`` ``[B]``. Arguments: ``p`` (1.0),
    ``scale_range`` (``(0.6, 1.4)``), ``max_value`` (1.0), ``seed``, ``device``.
    """

    stream = AugmentStream.CONTRAST
    neutral_params = {"factor": 1.0}

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Contrast-adjust every sample."""
        return adjust_contrast(batch, params["factor"], self.max_value)


class RandomSolarization(RandomTransform):
    """Invert pixels at or above ``threshold`` with probability ``p`` per sample.

    Args:
        p: Probability per sample.
        threshold: Values ``>= threshold`` become ``1 - x``.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
    """

    stream = AugmentStream.SOLARIZE

    def __init__(
        self,
        p: float = 0.5,
        threshold: float = 0.5,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Store the probability and threshold."""
        super().__init__(p, seed, device)
        self.threshold = float(threshold)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Solarize every sample."""
        return torch.where(batch >= self.threshold, 1.0 - batch, batch)
