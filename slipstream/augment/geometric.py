"""Geometric transforms: flip, rotation, zoom, object rotation, fixed optical distortion.

Affine warps are one batched ``affine_grid`` + ``grid_sample`` call. Matrices map output
pixels to source pixels in centered pixel coordinates (origin at the image center,
``y`` down), then are rescaled to ``grid_sample``'s normalized coordinates
(``align_corners=False``, torchvision's convention). Positive angles rotate the content
counter-clockwise, as in torchvision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from slipstream.augment.base import (
    BatchTransform,
    Params,
    RandomTransform,
    apply_masked,
    check_range,
    mask_is_uniform,
)
from slipstream.augment.keys import AugmentStream

__all__ = [
    "FixedOpticalDistortion",
    "RandomHorizontalFlip",
    "RandomRotate",
    "RandomRotateObject",
    "RandomZoom",
    "centered_pixel_grid",
    "warp_affine",
]

_PADDING_MODES = ("zeros", "border", "reflection")


def _check_padding(padding_mode: str) -> str:
    if padding_mode not in _PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
    return padding_mode


def warp_affine(
    batch: torch.Tensor,
    linear: torch.Tensor,
    offset: torch.Tensor,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Bilinear warp with ``source = linear[b] @ output + offset[b]`` per sample.

    Args:
        batch: ``[B, C, H, W]``.
        linear: ``[B, 2, 2]`` in centered pixel coordinates (``x`` then ``y``).
        offset: ``[B, 2]`` in pixels.
        padding_mode: ``grid_sample`` padding for source points outside the image.

    Returns:
        The warped batch, same shape.
    """
    _, _, h, w = batch.shape
    # To normalized coordinates: x_norm = x / (w / 2), y_norm = y / (h / 2).
    aspect = h / w
    row_x = (linear[:, 0, 0], linear[:, 0, 1] * aspect, offset[:, 0] * (2.0 / w))
    row_y = (linear[:, 1, 0] / aspect, linear[:, 1, 1], offset[:, 1] * (2.0 / h))
    theta = torch.stack((torch.stack(row_x, -1), torch.stack(row_y, -1)), -2)
    grid = F.affine_grid(theta.to(batch.dtype), list(batch.shape), align_corners=False)
    return F.grid_sample(
        batch, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )


def _inverse_rotation(degrees: torch.Tensor) -> torch.Tensor:
    """``[B, 2, 2]`` matrices undoing a counter-clockwise rotation of the content."""
    radians = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(radians), torch.sin(radians)
    return torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)


def centered_pixel_grid(
    height: int, width: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-center coordinates relative to the image center: ``ys [H, 1]``, ``xs [1, W]``."""
    ys = torch.arange(height, device=device, dtype=torch.float32) + 0.5 - height * 0.5
    xs = torch.arange(width, device=device, dtype=torch.float32) + 0.5 - width * 0.5
    return ys.view(-1, 1), xs.view(1, -1)


def _fraction_to_centered(fraction: torch.Tensor, size: int) -> torch.Tensor:
    """Position as a fraction of the side (0 = left/top edge) to centered pixels."""
    return (fraction - 0.5) * size


class RandomHorizontalFlip(RandomTransform):
    """Mirror left-right with probability ``p`` per sample (exact).

    Args:
        p: Probability per sample.
    """

    stream = AugmentStream.FLIP

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Flip every sample."""
        return batch.flip(-1)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Flip the applied samples in one gather (a mirrored column index per sample)."""
        mask = params["apply"]
        if mask_is_uniform(mask):
            return apply_masked(self.transform, batch, params, mask)
        width = batch.shape[-1]
        columns = torch.arange(width, device=batch.device)
        index = torch.where(mask.view(-1, 1), columns.flip(0), columns)
        out = torch.empty_like(batch)  # keeps the batch's memory format
        return torch.gather(batch, -1, index.view(-1, 1, 1, width).expand_as(batch), out=out)


class RandomRotate(RandomTransform):
    """Rotate about the image center by a per-sample angle (bilinear).

    Params: ``apply`` bool ``[B]``, ``degrees`` ``[B]`` (counter-clockwise).

    Args:
        p: Probability per sample.
        degrees_range: ``(low, high)`` of the uniform angle in degrees.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
    """

    stream = AugmentStream.ROTATE
    uniform_params = ("degrees",)

    def __init__(
        self,
        p: float = 0.5,
        degrees_range: Sequence[float] = (-45.0, 45.0),
        padding_mode: str = "zeros",
    ) -> None:
        """Store the angle range and padding."""
        super().__init__(p)
        self.degrees_range = check_range("degrees_range", degrees_range)
        self.padding_mode = _check_padding(padding_mode)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Rotate every sample."""
        degrees = params["degrees"].float()
        offset = torch.zeros(degrees.shape[0], 2, device=degrees.device)
        return warp_affine(batch, _inverse_rotation(degrees), offset, self.padding_mode)


class RandomZoom(RandomTransform):
    """Scale about a per-sample fixed point (``scale > 1`` zooms in).

    The fixed point is at ``(x, y)`` fractions of the width and height (0.5 = center).
    Params: ``apply``, ``scale``, ``x``, ``y`` (each ``[B]``).

    Args:
        p: Probability per sample.
        scale_range: ``(low, high)`` of the uniform scale.
        x_range: Range of the fixed point's horizontal fraction.
        y_range: Range of the fixed point's vertical fraction.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
    """

    stream = AugmentStream.ZOOM
    uniform_params = ("scale", "x", "y")

    def __init__(
        self,
        p: float = 0.5,
        scale_range: Sequence[float] = (1.0, 1.5),
        x_range: Sequence[float] = (0.0, 1.0),
        y_range: Sequence[float] = (0.0, 1.0),
        padding_mode: str = "zeros",
    ) -> None:
        """Store the ranges and padding."""
        super().__init__(p)
        self.scale_range = check_range("scale_range", scale_range, positive=True)
        self.x_range = check_range("x_range", x_range)
        self.y_range = check_range("y_range", y_range)
        self.padding_mode = _check_padding(padding_mode)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Zoom every sample: ``source = f + (output - f) / scale``."""
        _, _, h, w = batch.shape
        scale = params["scale"].float()
        fixed = torch.stack(
            (
                _fraction_to_centered(params["x"].float(), w),
                _fraction_to_centered(params["y"].float(), h),
            ),
            dim=-1,
        )
        inverse = (1.0 / scale).view(-1, 1, 1)
        linear = torch.eye(2, device=scale.device).expand(scale.shape[0], 2, 2) * inverse
        offset = fixed * (1.0 - inverse.view(-1, 1))
        return warp_affine(batch, linear, offset, self.padding_mode)


class RandomRotateObject(RandomTransform):
    """Rotate and scale an object about its center, then move it to a new place.

    ``output = dest + scale * R(degrees) (source - center)``: the object centered at
    ``center`` (fractions of width/height) lands at ``dest``. Params: ``apply``,
    ``degrees``, ``scale``, ``center_x``, ``center_y``, ``dest_x``, ``dest_y`` (``[B]``).

    Args:
        p: Probability per sample.
        degrees_range: Angle range in degrees (counter-clockwise).
        scale_range: Scale range.
        center_x_range: Object center, horizontal fraction.
        center_y_range: Object center, vertical fraction.
        dest_x_range: Destination, horizontal fraction.
        dest_y_range: Destination, vertical fraction.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
    """

    stream = AugmentStream.ROTATE_OBJECT
    uniform_params = ("degrees", "scale", "center_x", "center_y", "dest_x", "dest_y")

    def __init__(
        self,
        p: float = 0.5,
        degrees_range: Sequence[float] = (-45.0, 45.0),
        scale_range: Sequence[float] = (0.5, 1.0),
        center_x_range: Sequence[float] = (0.5, 0.5),
        center_y_range: Sequence[float] = (0.5, 0.5),
        dest_x_range: Sequence[float] = (0.25, 0.75),
        dest_y_range: Sequence[float] = (0.25, 0.75),
        padding_mode: str = "zeros",
    ) -> None:
        """Store the ranges and padding."""
        super().__init__(p)
        self.degrees_range = check_range("degrees_range", degrees_range)
        self.scale_range = check_range("scale_range", scale_range, positive=True)
        self.center_x_range = check_range("center_x_range", center_x_range)
        self.center_y_range = check_range("center_y_range", center_y_range)
        self.dest_x_range = check_range("dest_x_range", dest_x_range)
        self.dest_y_range = check_range("dest_y_range", dest_y_range)
        self.padding_mode = _check_padding(padding_mode)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Warp every sample: ``source = center + R^-1 (output - dest) / scale``."""
        _, _, h, w = batch.shape
        p = {name: params[name].float() for name in self.uniform_params}
        center = torch.stack(
            (_fraction_to_centered(p["center_x"], w), _fraction_to_centered(p["center_y"], h)), -1
        )
        dest = torch.stack(
            (_fraction_to_centered(p["dest_x"], w), _fraction_to_centered(p["dest_y"], h)), -1
        )
        linear = _inverse_rotation(p["degrees"]) / p["scale"].view(-1, 1, 1)
        offset = center - (linear @ dest.unsqueeze(-1)).squeeze(-1)
        return warp_affine(batch, linear, offset, self.padding_mode)


class FixedOpticalDistortion(BatchTransform):
    """A fixed radial lens distortion (the same for every sample).

    Each output point at normalized radius ``r`` (1 = half the shorter side) samples the
    source at ``r * (1 + strength * r**2)``: ``strength > 0`` gives barrel distortion
    (straight lines bow outwards), ``< 0`` pincushion.

    Args:
        strength: Radial coefficient.
        padding_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
    """

    def __init__(self, strength: float = 0.2, padding_mode: str = "zeros") -> None:
        """Store the coefficient and padding."""
        self.strength = float(strength)
        self.padding_mode = _check_padding(padding_mode)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Distort every sample."""
        b, _, h, w = batch.shape
        ys, xs = centered_pixel_grid(h, w, batch.device)
        unit = min(h, w) * 0.5
        y, x = (ys / unit).expand(h, w), (xs / unit).expand(h, w)
        factor = 1.0 + self.strength * (x * x + y * y)
        grid = torch.stack((x * factor * unit / (w * 0.5), y * factor * unit / (h * 0.5)), -1)
        grid = grid.to(batch.dtype).unsqueeze(0).expand(b, h, w, 2)
        return F.grid_sample(
            batch, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False
        )
