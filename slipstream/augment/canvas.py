"""Backgrounds: embedding images on a larger canvas, blending with noise.

Noise backgrounds are computed on the batch's device from a per-sample seed
(:func:`~slipstream.augment.keys.keyed_noise`), so they replay from the params:
``"uniform"`` white noise, or ``"power_law"`` noise with a ``1 / f**exponent`` power
spectrum (0 white, 1 pink, 2 brown), min-max scaled to ``0..1`` per sample and channel.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch

from slipstream.augment.base import (
    Params,
    RandomTransform,
    check_probability,
    check_range,
    per_sample,
    scaled,
    stand_in,
    to_batch_device,
)
from slipstream.augment.keys import AugmentStream, BatchKey, keyed_noise
from slipstream.renamed import renamed_argument

__all__ = ["RandomBackgroundBlend", "RandomEmbed", "noise_background"]

_BACKGROUNDS = ("zeros", "constant", "uniform", "power_law")


def _number_or_range(name: str, value: float | Sequence[float]) -> tuple[float, float]:
    """A number ``v`` as ``(v, v)``; a ``(low, high)`` pair checked."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    return check_range(name, value)


def _background_name(background: str, fill: float | Sequence[float] | None) -> tuple[str, object]:
    """The background name and fill, with the old name ``"mean"`` read as ``"constant"``."""
    if background == "mean":
        warnings.warn(
            'background="mean" was renamed to background="constant" (the original '
            'slipstream\'s name); pass background="constant", fill=[...] instead',
            FutureWarning,
            stacklevel=4,
        )
        background = "constant"
        fill = (0.485, 0.456, 0.406) if fill is None else fill
    if background not in _BACKGROUNDS:
        raise ValueError(f"background must be one of {_BACKGROUNDS}, got {background!r}")
    if background == "constant" and fill is None:
        raise ValueError("background='constant' needs fill= (one value or one per channel)")
    return background, fill


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
    """Shared background options: kind, constant fill, power-law exponent, color noise."""

    def __init__(
        self,
        p: float,
        background: str,
        fill: float | Sequence[float] | None,
        alpha_range: float | Sequence[float],
        color_noise: bool = True,
        seed: int | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(p, seed, device)
        self.background, fill = _background_name(background, fill)
        if fill is None:
            self.fill: float | tuple[float, ...] | None = None
        elif isinstance(fill, (int, float)):
            self.fill = float(fill)
        else:
            self.fill = tuple(float(v) for v in fill)  # type: ignore[union-attr]
        self.alpha_range = _number_or_range("alpha_range", alpha_range)
        self.color_noise = bool(color_noise)

    def _background(self, params: Params, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        b, c, h, w = shape
        if self.background == "zeros":
            return like.new_zeros(()).expand(b, c, h, w)
        if self.background == "constant":
            values = [self.fill] * c if isinstance(self.fill, float) else list(self.fill or ())
            if len(values) != c:
                raise ValueError(f"fill has {len(values)} values, the images {c} channels")
            fill = to_batch_device(torch.tensor(values), like, like.dtype)
            return fill.view(1, -1, 1, 1).expand(b, c, h, w)
        noise_channels = c if self.color_noise else 1
        noise = noise_background(
            params["noise_seed"],
            params["exponent"],
            (noise_channels, h, w),
            self.background,
            like.dtype,
        )
        return noise.expand(b, c, h, w)


def _fade_mask(
    height: int, width: int, radius: tuple[float, float], like: torch.Tensor
) -> torch.Tensor:
    """Circular opacity ``[1, 1, H, W]``: 1 within ``inner``, 0 beyond ``outer``.

    Radii are fractions of the image's shorter side, measured from its center; between
    them the opacity falls as a Gaussian reaching three sigmas at ``outer``.
    """
    side = min(height, width)
    inner, outer = radius[0] * side, radius[1] * side
    ys = torch.arange(height, device=like.device, dtype=torch.float32) - (height - 1) / 2
    xs = torch.arange(width, device=like.device, dtype=torch.float32) - (width - 1) / 2
    r = torch.sqrt(ys.view(-1, 1) ** 2 + xs.view(1, -1) ** 2)
    sigma = (outer - inner) / 3.0
    mask = torch.exp(-0.5 * ((r - inner).clamp_min(0) / sigma) ** 2)
    mask = torch.where(r <= inner, torch.ones_like(mask), mask)
    mask = torch.where(r >= outer, torch.zeros_like(mask), mask)
    return mask.to(like.dtype).view(1, 1, height, width)


class RandomEmbed(_NoiseParams):
    """Place each image, pixel for pixel, on a larger canvas (centered by default).

    The position is chosen in one of three ways: ``x_range``/``y_range`` fractions of the
    slack (0 = left/top, 1 = right/bottom; a number fixes it: the default 0.5 centers, at
    ``floor(fraction * slack)`` as the original; a range draws it per sample, uniformly over
    the integer positions it covers); ``coords``, ``(x, y)`` center pixels, one chosen per
    sample; or ``coords_dict``, such lists per input size ``(H, W)``. Images placed by
    coordinates may be clipped at the canvas edge. Every sample is embedded (the output
    size changes). Params: ``top``, ``left`` int64 ``[B]``, ``noise_seed`` int64 ``[B]``,
    ``exponent`` ``[B]``, ``fade`` bool ``[B]``.

    Args:
        canvas_size: Output ``(H, W)`` (or one int), at least the input size.
        x_range: Horizontal position fraction: a number or a ``(low, high)`` range.
        y_range: Vertical position fraction: a number or a range.
        coords: ``(x, y)`` center pixel coordinates to choose from.
        coords_dict: ``{(H, W): [(x, y), ...]}``, coordinates per input size.
        background: ``"zeros"``, ``"constant"`` (``fill``), ``"power_law"`` noise with a
            ``1 / f**alpha`` spectrum, or ``"uniform"`` white noise. (``"mean"`` is the old
            name of ``"constant"``: FutureWarning.)
        fill: The ``"constant"`` value: one number or one per channel.
        alpha_range: The power-law exponent: a number or a range drawn per sample (0
            white, 1 pink, 2 brown).
        color_noise: Independent noise per channel; False repeats one noise field.
        fade_radius: ``(inner, outer)`` fractions of the image's shorter side: the image
            is opaque within ``inner``, transparent beyond ``outer``, Gaussian between.
            None pastes the whole rectangle.
        p_fade: Probability per sample of the fade (where ``fade_radius`` is set).
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
        exponent_range: Old name of ``alpha_range`` (FutureWarning).
    """

    stream = AugmentStream.EMBED
    num_draws = 5

    def __init__(
        self,
        canvas_size: int | Sequence[int],
        x_range: float | Sequence[float] = 0.5,
        y_range: float | Sequence[float] = 0.5,
        coords: Sequence[Sequence[int]] | None = None,
        coords_dict: dict[tuple[int, int], Sequence[Sequence[int]]] | None = None,
        background: str = "zeros",
        fill: float | Sequence[float] | None = None,
        alpha_range: float | Sequence[float] | None = None,
        color_noise: bool = True,
        fade_radius: Sequence[float] | None = None,
        p_fade: float = 1.0,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        exponent_range: Sequence[float] | None = None,
    ) -> None:
        """Store the canvas, position and background options."""
        alpha_range = renamed_argument(
            "exponent_range",
            "alpha_range",
            None if exponent_range is None else tuple(exponent_range),
            alpha_range,
        )
        alpha_range = 2.0 if alpha_range is None else alpha_range
        super().__init__(1.0, background, fill, alpha_range, color_noise, seed, device)
        if isinstance(canvas_size, int):
            canvas_size = (canvas_size, canvas_size)
        self.canvas_size = (int(canvas_size[0]), int(canvas_size[1]))
        self.x_range = _number_or_range("x_range", x_range)
        self.y_range = _number_or_range("y_range", y_range)
        if coords is not None and coords_dict is not None:
            raise ValueError("coords and coords_dict are mutually exclusive")
        if coords is not None and not coords:
            raise ValueError("coords must not be empty")
        self.coords = None if coords is None else [(int(x), int(y)) for x, y in coords]
        self.coords_dict = (
            None
            if coords_dict is None
            else {
                (int(k[0]), int(k[1])): [(int(x), int(y)) for x, y in v]
                for k, v in coords_dict.items()
            }
        )
        if fade_radius is not None:
            fade_radius = tuple(float(r) for r in fade_radius)
            if len(fade_radius) != 2 or not 0 <= fade_radius[0] < fade_radius[1]:
                raise ValueError(
                    f"fade_radius must be (inner, outer), inner < outer: {fade_radius}"
                )
        self.fade_radius = fade_radius
        self.p_fade = check_probability(p_fade)

    def output_stand_in(self, batch: torch.Tensor) -> torch.Tensor:
        """Canvas-sized stand-in."""
        return stand_in((*batch.shape[:2], *self.canvas_size), batch.dtype, batch.device)

    def _position(self, u: torch.Tensor, bounds: tuple[float, float], slack: int) -> torch.Tensor:
        """Top-left offsets from position fractions (see the class docstring)."""
        if bounds[0] == bounds[1]:
            return torch.full_like(u, math.floor(bounds[0] * slack), dtype=torch.int64)
        return torch.floor(scaled(u, bounds) * (slack + 1)).long().clamp_(0, slack)

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Draw positions, noise seeds, exponents and fade decisions."""
        _, _, h, w = batch.shape
        centers = self.coords
        if self.coords_dict is not None:
            centers = self.coords_dict.get((h, w))
            if not centers:
                sizes = sorted(self.coords_dict)
                raise KeyError(f"coords_dict has no coordinates for {h}x{w} images (has {sizes})")
        if centers is not None:
            choice = (draws[:, 4] * len(centers)).long().clamp_(max=len(centers) - 1)
            table = torch.tensor(centers, dtype=torch.int64)[choice]
            left, top = table[:, 0] - w // 2, table[:, 1] - h // 2
        else:
            slack_y, slack_x = self.canvas_size[0] - h, self.canvas_size[1] - w
            if slack_y < 0 or slack_x < 0:
                raise ValueError(f"canvas {self.canvas_size} is smaller than the {h}x{w} images")
            top = self._position(draws[:, 0], self.y_range, slack_y)
            left = self._position(draws[:, 1], self.x_range, slack_x)
        fade = draws[:, 3] < (self.p_fade if self.fade_radius is not None else 0.0)
        return {
            "top": to_batch_device(top, batch),
            "left": to_batch_device(left, batch),
            "noise_seed": to_batch_device(key.noise_seeds(self.stream), batch),
            "exponent": per_sample(scaled(draws[:, 2], self.alpha_range), batch),
            "fade": to_batch_device(fade, batch),
        }

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Paste every image onto its canvas (one gather; fades blend with the canvas)."""
        b, c, h, w = batch.shape
        height, width = self.canvas_size
        canvas = self._background(params, (b, c, height, width), batch)
        rows = torch.arange(height, device=batch.device).view(1, -1) - params["top"].view(-1, 1)
        cols = torch.arange(width, device=batch.device).view(1, -1) - params["left"].view(-1, 1)
        inside = ((rows >= 0) & (rows < h)).unsqueeze(2) & ((cols >= 0) & (cols < w)).unsqueeze(1)
        index = rows.clamp(0, h - 1).unsqueeze(2) * w + cols.clamp(0, w - 1).unsqueeze(1)
        flat = index.view(b, 1, height * width).expand(b, c, -1)
        pasted = batch.reshape(b, c, h * w).gather(2, flat).view(b, c, height, width)
        fade = params.get("fade")
        if (
            self.fade_radius is not None
            and fade is not None
            and (fade.device.type != "cpu" or bool(fade.any()))
        ):
            mask = _fade_mask(h, w, self.fade_radius, batch).reshape(1, h * w)
            alpha = mask.expand(b, -1).gather(1, index.view(b, height * width))
            alpha = torch.where(fade.view(-1, 1), alpha, torch.ones_like(alpha))
            alpha = alpha.view(b, 1, height, width)
            pasted = alpha * pasted + (1.0 - alpha) * canvas
        return torch.where(inside.unsqueeze(1), pasted, canvas)


class RandomBackgroundBlend(_NoiseParams):
    """Blend each image with a background: ``(1 - weight) * x + weight * background``.

    Params: ``apply`` bool ``[B]``, ``weight`` ``[B]``, ``noise_seed`` int64 ``[B]``,
    ``exponent`` ``[B]``.

    Args:
        p: Probability per sample.
        weight_range: Range of the background weight.
        background: As :class:`RandomEmbed` (default ``"power_law"``).
        fill: As :class:`RandomEmbed` (required for ``"constant"``).
        alpha_range: As :class:`RandomEmbed`.
        color_noise: As :class:`RandomEmbed`.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted (params follow the batch).
        exponent_range: Old name of ``alpha_range`` (FutureWarning).

    This is not the original slipstream's ``RandomBackgroundBlend`` (an RGBA compositing
    step in normalized space); it shares the name and the background arguments only.
    """

    stream = AugmentStream.BACKGROUND_BLEND
    num_draws = 2

    def __init__(
        self,
        p: float = 0.5,
        weight_range: Sequence[float] = (0.1, 0.5),
        background: str = "power_law",
        fill: float | Sequence[float] | None = None,
        alpha_range: float | Sequence[float] | None = None,
        color_noise: bool = True,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        exponent_range: Sequence[float] | None = None,
    ) -> None:
        """Store the weight range and background options."""
        alpha_range = renamed_argument(
            "exponent_range",
            "alpha_range",
            None if exponent_range is None else tuple(exponent_range),
            alpha_range,
        )
        alpha_range = (1.0, 2.0) if alpha_range is None else alpha_range
        super().__init__(p, background, fill, alpha_range, color_noise, seed, device)
        self.weight_range = check_range("weight_range", weight_range)

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Draw weights, noise seeds and exponents."""
        return {
            "weight": per_sample(scaled(draws[:, 0], self.weight_range), batch),
            "noise_seed": to_batch_device(key.noise_seeds(self.stream), batch),
            "exponent": per_sample(scaled(draws[:, 1], self.alpha_range), batch),
        }

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Blend every sample."""
        background = self._background(params, batch.shape, batch)
        weight = params["weight"].view(-1, 1, 1, 1)
        return batch * (1.0 - weight) + background * weight
