"""Backgrounds: embedding images on a larger canvas, blending with noise.

Noise backgrounds are computed on the batch's device from a per-sample seed
(:func:`~slipstream.augment.keys.keyed_noise`), so they replay from the params:
``"uniform"`` white noise, or ``"power_law"`` noise with a ``1 / f**exponent`` power
spectrum (0 white, 1 pink, 2 brown), min-max scaled to ``0..1`` per sample and channel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from slipstream.augment.base import (
    Params,
    RandomTransform,
    check_range,
    per_sample,
    scaled,
    stand_in,
    to_batch_device,
)
from slipstream.augment.keys import AugmentStream, BatchKey, keyed_noise

__all__ = ["RandomBackgroundBlend", "RandomEmbed", "noise_background"]

_BACKGROUNDS = ("zeros", "mean", "uniform", "power_law")


def noise_background(
    seeds: torch.Tensor,
    exponents: torch.Tensor,
    shape: Sequence[int],
    kind: str,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Per-sample noise images ``[B, C, H, W]`` in ``0..1``.

    Args:
        seeds: int64 noise seeds ``[B]`` (their device is the output's).
        exponents: Power-law exponents ``[B]`` (used by ``"power_law"``).
        shape: ``(C, H, W)``.
        kind: ``"uniform"`` or ``"power_law"``.
        dtype: Output dtype.

    Returns:
        The noise batch.
    """
    white = keyed_noise(seeds, shape, torch.float32)
    if kind == "uniform":
        return white.to(dtype)
    if kind != "power_law":
        raise ValueError(f"unknown noise kind {kind!r}")
    _, h, w = shape
    spectrum = torch.fft.rfft2(white - 0.5)
    fy = torch.fft.fftfreq(h, device=seeds.device).view(-1, 1)
    fx = torch.fft.rfftfreq(w, device=seeds.device).view(1, -1)
    freq = torch.sqrt(fy * fy + fx * fx)
    freq[0, 0] = 1.0
    amplitude = freq.view(1, 1, *freq.shape) ** (-0.5 * exponents.float().view(-1, 1, 1, 1))
    amplitude[..., 0, 0] = 0.0
    noise = torch.fft.irfft2(spectrum * amplitude, s=(h, w))
    low = noise.amin(dim=(2, 3), keepdim=True)
    high = noise.amax(dim=(2, 3), keepdim=True)
    return ((noise - low) / (high - low).clamp_min(1e-12)).to(dtype)


class _NoiseParams(RandomTransform):
    """Shared background options: kind, constant fill and power-law exponent range."""

    def __init__(
        self,
        p: float,
        background: str,
        fill: Sequence[float],
        exponent_range: Sequence[float],
    ) -> None:
        super().__init__(p)
        if background not in _BACKGROUNDS:
            raise ValueError(f"background must be one of {_BACKGROUNDS}, got {background!r}")
        self.background = background
        self.fill = tuple(float(v) for v in fill)
        self.exponent_range = check_range("exponent_range", exponent_range)

    def _background(self, params: Params, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        b, c, h, w = shape
        if self.background == "zeros":
            return like.new_zeros(()).expand(b, c, h, w)
        if self.background == "mean":
            fill = to_batch_device(torch.tensor(self.fill), like, like.dtype)
            return fill.view(1, -1, 1, 1).expand(b, c, h, w)
        return noise_background(
            params["noise_seed"], params["exponent"], (c, h, w), self.background, like.dtype
        )


class RandomEmbed(_NoiseParams):
    """Place each image, pixel for pixel, at a random position on a larger canvas.

    The position is a fraction of the slack (0 = top/left, 1 = bottom/right). Every sample
    is embedded (``p`` is 1: the output size changes). Params: ``top``, ``left`` int64
    ``[B]``, ``noise_seed`` int64 ``[B]``, ``exponent`` ``[B]``.

    Args:
        canvas_size: Output ``(H, W)`` (or one int), at least the input size.
        x_range: Range of the horizontal position fraction.
        y_range: Range of the vertical position fraction.
        background: ``"zeros"``, ``"mean"`` (``fill`` per channel), ``"uniform"`` or
            ``"power_law"`` noise.
        fill: Per-channel values for ``"mean"``.
        exponent_range: Range of the power-law exponent.
    """

    stream = AugmentStream.EMBED
    num_draws = 3

    def __init__(
        self,
        canvas_size: int | Sequence[int],
        x_range: Sequence[float] = (0.0, 1.0),
        y_range: Sequence[float] = (0.0, 1.0),
        background: str = "zeros",
        fill: Sequence[float] = (0.485, 0.456, 0.406),
        exponent_range: Sequence[float] = (2.0, 2.0),
    ) -> None:
        """Store the canvas and background options."""
        super().__init__(1.0, background, fill, exponent_range)
        if isinstance(canvas_size, int):
            canvas_size = (canvas_size, canvas_size)
        self.canvas_size = (int(canvas_size[0]), int(canvas_size[1]))
        self.x_range = check_range("x_range", x_range)
        self.y_range = check_range("y_range", y_range)

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """Canvas-sized stand-in."""
        return stand_in((*batch.shape[:2], *self.canvas_size), batch.dtype, batch.device)

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Draw positions, noise seeds and exponents."""
        _, _, h, w = batch.shape
        slack_y, slack_x = self.canvas_size[0] - h, self.canvas_size[1] - w
        if slack_y < 0 or slack_x < 0:
            raise ValueError(f"canvas {self.canvas_size} is smaller than the {h}x{w} images")
        top = torch.floor(scaled(draws[:, 0], self.y_range) * (slack_y + 1)).long()
        left = torch.floor(scaled(draws[:, 1], self.x_range) * (slack_x + 1)).long()
        return {
            "top": to_batch_device(top.clamp_(0, slack_y), batch),
            "left": to_batch_device(left.clamp_(0, slack_x), batch),
            "noise_seed": to_batch_device(key.noise_seeds(self.stream), batch),
            "exponent": per_sample(scaled(draws[:, 2], self.exponent_range), batch),
        }

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Paste every image onto its canvas (one gather)."""
        b, c, h, w = batch.shape
        height, width = self.canvas_size
        canvas = self._background(params, (b, c, height, width), batch)
        rows = torch.arange(height, device=batch.device).view(1, -1) - params["top"].view(-1, 1)
        cols = torch.arange(width, device=batch.device).view(1, -1) - params["left"].view(-1, 1)
        inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
        index = rows.clamp(0, h - 1).unsqueeze(2) * w + cols.clamp(0, w - 1).unsqueeze(1)
        flat = index.view(b, 1, height * width).expand(b, c, -1)
        pasted = batch.reshape(b, c, h * w).gather(2, flat).view(b, c, height, width)
        return torch.where(inside.unsqueeze(1), pasted, canvas)


class RandomBackgroundBlend(_NoiseParams):
    """Blend each image with a background: ``(1 - weight) * x + weight * background``.

    Params: ``apply`` bool ``[B]``, ``weight`` ``[B]``, ``noise_seed`` int64 ``[B]``,
    ``exponent`` ``[B]``.

    Args:
        p: Probability per sample.
        weight_range: Range of the background weight.
        background: As :class:`RandomEmbed` (default ``"power_law"``).
        fill: As :class:`RandomEmbed`.
        exponent_range: As :class:`RandomEmbed`.
    """

    stream = AugmentStream.BACKGROUND_BLEND
    num_draws = 2

    def __init__(
        self,
        p: float = 0.5,
        weight_range: Sequence[float] = (0.1, 0.5),
        background: str = "power_law",
        fill: Sequence[float] = (0.485, 0.456, 0.406),
        exponent_range: Sequence[float] = (1.0, 2.0),
    ) -> None:
        """Store the weight range and background options."""
        super().__init__(p, background, fill, exponent_range)
        self.weight_range = check_range("weight_range", weight_range)

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Draw weights, noise seeds and exponents."""
        return {
            "weight": per_sample(scaled(draws[:, 0], self.weight_range), batch),
            "noise_seed": to_batch_device(key.noise_seeds(self.stream), batch),
            "exponent": per_sample(scaled(draws[:, 1], self.exponent_range), batch),
        }

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Blend every sample."""
        background = self._background(params, batch.shape, batch)
        weight = params["weight"].view(-1, 1, 1, 1)
        return batch * (1.0 - weight) + background * weight
