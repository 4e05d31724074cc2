"""Color jitter with per-sample factors: HSV-style (torchvision) and a YIQ color matrix.

:class:`RandomColorJitter` applies brightness, contrast, saturation and hue in that fixed
order (torchvision's ``ColorJitter`` picks a random order per call), each with
torchvision's definition; hue through a vectorized RGB -> HSV -> RGB round trip.

:class:`ColorJitter` is the original slipstream's batch-level variant: one coin for the
whole batch, factors per sample.

:class:`RandomColorJitterYIQ` is the original slipstream / DALI ``color_twist``: one
3x3 matrix and offset per sample, ``out = b * c * (YIQ->RGB @ HSV(h, s, v) @ RGB->YIQ) x
+ (0.5 - 0.5 c) b``, applied with one batched matmul.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from slipstream.augment.base import (
    Params,
    RandomTransform,
    check_range,
    per_sample,
    scaled,
    to_batch_device,
)
from slipstream.augment.color import adjust_brightness, adjust_contrast, rgb_to_gray
from slipstream.augment.keys import AugmentStream, BatchKey
from slipstream.renamed import renamed_argument

__all__ = [
    "ColorJitter",
    "RandomColorJitter",
    "RandomColorJitterYIQ",
    "adjust_hue",
    "adjust_saturation",
    "hsv_to_rgb",
    "rgb_to_hsv",
]

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.596, -0.274, -0.321], [0.211, -0.523, 0.311]],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rgb_to_hsv(batch: torch.Tensor) -> torch.Tensor:
    """RGB ``[B, 3, H, W]`` in ``0..1`` to HSV, every channel in ``0..1``."""
    r, g, b = batch.unbind(dim=1)
    minc, maxc = torch.aminmax(batch, dim=1)
    delta = maxc - minc
    flat = delta == 0
    safe_delta = torch.where(flat, torch.ones_like(delta), delta)
    saturation = delta / torch.where(maxc == 0, torch.ones_like(maxc), maxc)
    hue_r = torch.remainder((g - b) / safe_delta, 6.0)
    hue_g = (b - r) / safe_delta + 2.0
    hue_b = (r - g) / safe_delta + 4.0
    hue = torch.where(maxc == r, hue_r, torch.where(maxc == g, hue_g, hue_b))
    hue = torch.where(flat, torch.zeros_like(hue), hue) / 6.0
    return torch.stack((hue, saturation, maxc), dim=1)


def hsv_to_rgb(batch: torch.Tensor) -> torch.Tensor:
    """HSV ``[B, 3, H, W]`` (channels in ``0..1``) to RGB."""
    hue, saturation, value = batch.unbind(dim=1)
    h6 = hue * 6.0
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(h6 + n, 6.0)
        ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        channels.append(value - value * saturation * ramp)
    return torch.stack(channels, dim=1).clamp_(0.0, 1.0)


def adjust_saturation(batch: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image with its grayscale, one factor per sample (``[B]``)."""
    f = factors.view(-1, 1, 1, 1)
    return (batch * f + rgb_to_gray(batch) * (1.0 - f)).clamp_(0.0, 1.0)


def adjust_hue(batch: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shifts[b]`` turns (``-0.5..0.5``) per sample."""
    hsv = rgb_to_hsv(batch)
    hue = torch.remainder(hsv[:, 0] + shifts.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack((hue, hsv[:, 1], hsv[:, 2]), dim=1))


def _factor_range(name: str, amount: float | Sequence[float], center: float) -> tuple[float, float]:
    """Range by torchvision's convention: ``a`` means ``(center - a, center + a)``, or a pair."""
    if isinstance(amount, (int, float)):
        if amount < 0:
            raise ValueError(f"{name} must be non-negative, got {amount}")
        low = center - float(amount)
        return (max(low, 0.0) if center == 1.0 else low), center + float(amount)
    return check_range(name, amount)


class RandomColorJitter(RandomTransform):
    """Brightness, contrast, saturation and hue jitter (torchvision definitions).

    Factors are drawn per sample; ``value=0.4`` means a brightness factor in
    ``[0.6, 1.4]`` (a ``(low, high)`` pair is taken as is); ``hue=0.1`` a shift in
    ``[-0.1, 0.1]`` turns. A zero amount (the default for each) leaves that component
    out. Applied in the order brightness, contrast, saturation, hue. Params: ``apply``,
    ``brightness``, ``contrast``, ``saturation``, ``hue`` (each ``[B]``).

    Args:
        p: Probability per sample.
        hue: Hue amount, at most 0.5.
        saturation: Saturation amount.
        value: Brightness (HSV value) amount.
        contrast: Contrast amount.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
        brightness: Old name of ``value`` (FutureWarning).
    """

    stream = AugmentStream.COLOR_JITTER
    num_draws = 4

    def __init__(
        self,
        p: float = 1.0,
        hue: float | Sequence[float] = 0.0,
        saturation: float | Sequence[float] = 0.0,
        value: float | Sequence[float] | None = None,
        contrast: float | Sequence[float] = 0.0,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        brightness: float | Sequence[float] | None = None,
    ) -> None:
        """Store the ranges (``value`` is the brightness range)."""
        super().__init__(p, seed, device)
        value = renamed_argument("brightness", "value", brightness, value)
        brightness = 0.0 if value is None else value
        self.brightness = _factor_range("brightness", brightness, 1.0)
        self.contrast = _factor_range("contrast", contrast, 1.0)
        self.saturation = _factor_range("saturation", saturation, 1.0)
        self.hue = _factor_range("hue", hue, 0.0)
        if self.hue[0] < -0.5 or self.hue[1] > 0.5:
            raise ValueError(f"hue must lie in [-0.5, 0.5], got {self.hue}")

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Draw the four factors."""
        names = ("brightness", "contrast", "saturation", "hue")
        return {
            name: per_sample(scaled(draws[:, i], getattr(self, name)), batch)
            for i, name in enumerate(names)
        }

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Jitter every sample."""
        if self.brightness != (1.0, 1.0):
            batch = adjust_brightness(batch, params["brightness"])
        if self.contrast != (1.0, 1.0):
            batch = adjust_contrast(batch, params["contrast"])
        if self.saturation != (1.0, 1.0):
            batch = adjust_saturation(batch, params["saturation"])
        if self.hue != (0.0, 0.0):
            batch = adjust_hue(batch, params["hue"])
        return batch


class ColorJitter(RandomColorJitter):
    """The original slipstream's batch-level color jitter: all samples jittered, or none.

    With probability ``p`` the whole batch is jittered, each sample with its own factors
    (drawn per sample as :class:`RandomColorJitter` draws them, on this class's own stream);
    otherwise the batch passes unchanged. ``value`` is the brightness factor range (the
    original's name). Amounts follow torchvision's convention (``0.4`` -> ``[0.6, 1.4]``,
    hue ``0.1`` -> ``[-0.1, 0.1]`` turns, a pair taken as is, 0 leaves the component out);
    the order is brightness, contrast, saturation, hue.

    Keying: every factor is a pure function of ``(seed, epoch, sample id, view)``. The
    batch's coin is the apply draw of its smallest sample id, so it depends on which
    samples share the batch (any batch-level choice does), not on their order; with
    ``p=1`` (the default) nothing depends on the batch composition. Params as
    :class:`RandomColorJitter` (``apply`` is equal across the batch).

    Args:
        p: Probability that the batch is jittered.
        hue: Hue amount, at most 0.5.
        saturation: Saturation amount.
        value: Brightness (value) amount.
        contrast: Contrast amount.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
    """

    stream = AugmentStream.BATCH_COLOR_JITTER

    def __init__(
        self,
        p: float = 1.0,
        hue: float | Sequence[float] = 0.0,
        saturation: float | Sequence[float] = 0.0,
        value: float | Sequence[float] = 0.0,
        contrast: float | Sequence[float] = 0.0,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        """Store the ranges (``value`` is the brightness range)."""
        super().__init__(p, hue, saturation, value, contrast, seed, device)

    def make_params(self, batch: torch.Tensor, key: BatchKey) -> Params:
        """Draw per-sample factors and the batch's coin (its smallest id's apply draw)."""
        draws = key.uniform(self.stream, 1 + self.num_draws)
        params = self.sample(batch, draws[:, 1:], key)
        size = key.batch_size
        coin = float(draws[int(np.argmin(key.sample_ids)), 0]) if size else 0.0
        params["apply"] = to_batch_device(torch.full((size,), coin < self.p), batch)
        return params

    def __repr__(self) -> str:
        return (
            f"ColorJitter(p={self.p}, hue={self.hue}, saturation={self.saturation}, "
            f"value={self.brightness}, contrast={self.contrast})"
        )


def yiq_color_matrices(
    hue: torch.Tensor,
    saturation: torch.Tensor,
    value: torch.Tensor,
    brightness: torch.Tensor,
    contrast: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample color twist: matrices ``[B, 3, 3]`` and offsets ``[B]``.

    Args:
        hue: Hue rotation in degrees, ``[B]``.
        saturation: Chroma scale, ``[B]``.
        value: Luma scale, ``[B]``.
        brightness: Overall scale, ``[B]``.
        contrast: Contrast around 0.5, ``[B]``.

    Returns:
        ``(matrices, offsets)``: ``out = matrices[b] @ rgb + offsets[b]``.
    """
    radians = hue * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    zeros = torch.zeros_like(hue)
    yiq = torch.stack(
        (
            torch.stack((value, zeros, zeros), dim=-1),
            torch.stack((zeros, saturation * cos, saturation * sin), dim=-1),
            torch.stack((zeros, -saturation * sin, saturation * cos), dim=-1),
        ),
        dim=-2,
    )
    to_rgb = to_batch_device(_YIQ_TO_RGB, hue, hue.dtype)
    to_yiq = to_batch_device(_RGB_TO_YIQ, hue, hue.dtype)
    matrices = (brightness * contrast).view(-1, 1, 1) * (to_rgb @ yiq @ to_yiq)
    return matrices, (0.5 - 0.5 * contrast) * brightness


class RandomColorJitterYIQ(RandomTransform):
    """Hue/saturation/value/brightness/contrast as one 3x3 color matrix per sample.

    Params: ``apply``, ``hue`` (degrees), ``saturation``, ``value``, ``brightness``,
    ``contrast`` (each ``[B]``); the matrix is built from them in :meth:`apply`.

    Args:
        p: Probability per sample.
        hue: Hue rotation amount in degrees: ``a`` means ``(-a, a)``, or a pair.
        saturation: Chroma scale amount: ``a`` means ``(1 - a, 1 + a)``, or a pair.
        value: Luma scale amount (as ``saturation``).
        brightness: Overall scale amount (as ``saturation``).
        contrast: Contrast amount (as ``saturation``).
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).

    Note:
        The old argument names ``hue_range``, ``saturation_range``, ``value_range``,
        ``brightness_range`` and ``contrast_range`` (ranges of the amounts) are accepted
        with a FutureWarning.
    """

    stream = AugmentStream.COLOR_JITTER_YIQ
    uniform_params = ("hue", "saturation", "value", "brightness", "contrast")

    def __init__(
        self,
        p: float = 0.8,
        hue: float | Sequence[float] | None = None,
        saturation: float | Sequence[float] | None = None,
        value: float | Sequence[float] | None = None,
        brightness: float | Sequence[float] | None = None,
        contrast: float | Sequence[float] | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        hue_range: Sequence[float] | None = None,
        saturation_range: Sequence[float] | None = None,
        value_range: Sequence[float] | None = None,
        brightness_range: Sequence[float] | None = None,
        contrast_range: Sequence[float] | None = None,
    ) -> None:
        """Store the ranges."""
        super().__init__(p, seed, device)
        amounts = {
            "hue": (hue, hue_range, 0.0),
            "saturation": (saturation, saturation_range, 1.0),
            "value": (value, value_range, 1.0),
            "brightness": (brightness, brightness_range, 1.0),
            "contrast": (contrast, contrast_range, 1.0),
        }
        for name, (amount, old, center) in amounts.items():
            old = None if old is None else tuple(old)
            amount = renamed_argument(f"{name}_range", name, old, amount)
            bounds = _factor_range(name, 0.0 if amount is None else amount, center)
            setattr(self, f"{name}_range", bounds)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply each sample's color matrix."""
        matrices, offsets = yiq_color_matrices(*(params[name] for name in self.uniform_params))
        out = torch.einsum("bij,bjhw->bihw", matrices, batch) + offsets.view(-1, 1, 1, 1)
        return out.clamp_(0.0, 1.0)
