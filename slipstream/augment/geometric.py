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
    per_sample,
)
from slipstream.augment.keys import AugmentStream, BatchKey
from slipstream.renamed import renamed_argument

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


def _as_range(name: str, value: float | Sequence[float]) -> tuple[float, float]:
    """A number ``v`` as ``(v, v)``, a ``(low, high)`` pair checked (the original's form)."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    return check_range(name, value)


def _old_range(old: str, new: str, value: Sequence[float] | None, current: object) -> object:
    """An old ``<name>_range`` argument through :func:`renamed_argument`."""
    return renamed_argument(old, new, None if value is None else tuple(value), current)


class RandomRotate(RandomTransform):
    """Rotate about a per-sample point by a per-sample angle (bilinear).

    Params: ``apply`` bool ``[B]``, ``degrees`` ``[B]`` (counter-clockwise), ``x``, ``y``
    (``[B]``, the rotation center as fractions of the width and height).

    Args:
        p: Probability per sample.
        max_deg: Angles are uniform in ``(-max_deg, max_deg)``; a ``(low, high)`` pair
            gives the range itself.
        x: Rotation center, horizontal fraction (0.5 = center): a number or a range.
        y: Rotation center, vertical fraction: a number or a range.
        angles: A list of angles to choose from uniformly (replaces ``max_deg``).
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
        degrees_range: Old name of ``max_deg`` (as a range; FutureWarning).
        padding_mode: Old name of ``pad_mode`` (FutureWarning).
    """

    stream = AugmentStream.ROTATE
    uniform_params = ("degrees", "x", "y")

    def __init__(
        self,
        p: float = 0.5,
        max_deg: float | Sequence[float] | None = None,
        x: float | Sequence[float] = 0.5,
        y: float | Sequence[float] = 0.5,
        angles: Sequence[float] | None = None,
        pad_mode: str | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        degrees_range: Sequence[float] | None = None,
        padding_mode: str | None = None,
    ) -> None:
        """Store the angle range, center and padding."""
        super().__init__(p, seed, device)
        max_deg = _old_range("degrees_range", "max_deg", degrees_range, max_deg)
        max_deg = 45.0 if max_deg is None else max_deg
        if isinstance(max_deg, (int, float)):
            self.max_deg: float | tuple[float, float] = float(max_deg)
            self.degrees_range = (-abs(float(max_deg)), abs(float(max_deg)))
        else:
            self.max_deg = self.degrees_range = check_range("max_deg", max_deg)
        self.x_range = _as_range("x", x)
        self.y_range = _as_range("y", y)
        self.angles = None if angles is None else tuple(float(a) for a in angles)
        if self.angles is not None and not self.angles:
            raise ValueError("angles must not be empty")
        pad_mode = renamed_argument("padding_mode", "pad_mode", padding_mode, pad_mode)
        self.pad_mode = _check_padding(pad_mode or "zeros")

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Angle (from ``angles`` where given), center x and y."""
        params = super().sample(batch, draws, key)
        if self.angles is not None:
            choice = (draws[:, 0] * len(self.angles)).long().clamp_(max=len(self.angles) - 1)
            angles = torch.tensor(self.angles, dtype=torch.float64)
            params["degrees"] = per_sample(angles[choice], batch)
        return params

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Rotate every sample: ``source = c + R^-1 (output - c)``."""
        _, _, h, w = batch.shape
        degrees = params["degrees"].float()
        center = torch.stack(
            (
                _fraction_to_centered(params["x"].float(), w),
                _fraction_to_centered(params["y"].float(), h),
            ),
            dim=-1,
        )
        linear = _inverse_rotation(degrees)
        offset = center - (linear @ center.unsqueeze(-1)).squeeze(-1)
        return warp_affine(batch, linear, offset, self.pad_mode)


class RandomZoom(RandomTransform):
    """Zoom about a per-sample fixed point (the original's ``zoom``: ``zoom < 1`` zooms in).

    ``zoom`` is the source-to-output size ratio: 0.5 shows the central half of the image
    (about the fixed point) at twice the size; 2.0 shrinks the image to half, padded. The
    fixed point is at ``(x, y)`` fractions of the width and height (0.5 = center).
    Params: ``apply``, ``scale`` (the magnification ``1 / zoom``), ``x``, ``y`` (``[B]``).

    Args:
        p: Probability per sample.
        zoom: ``(low, high)`` of the uniform zoom ratio, or one number.
        x: The fixed point's horizontal fraction: a number or a range.
        y: The fixed point's vertical fraction: a number or a range.
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
        scale_range: Old argument, the magnification range; converted to
            ``zoom=(1 / high, 1 / low)`` (FutureWarning).
        x_range: Old name of ``x`` (FutureWarning).
        y_range: Old name of ``y`` (FutureWarning).
        padding_mode: Old name of ``pad_mode`` (FutureWarning).
    """

    stream = AugmentStream.ZOOM
    uniform_params = ("zoom", "x", "y")

    def __init__(
        self,
        p: float = 0.5,
        zoom: float | Sequence[float] | None = None,
        x: float | Sequence[float] | None = None,
        y: float | Sequence[float] | None = None,
        pad_mode: str | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        scale_range: Sequence[float] | None = None,
        x_range: Sequence[float] | None = None,
        y_range: Sequence[float] | None = None,
        padding_mode: str | None = None,
    ) -> None:
        """Store the ranges and padding."""
        super().__init__(p, seed, device)
        if scale_range is not None:
            low, high = check_range("scale_range", scale_range, positive=True)
            zoom = renamed_argument("scale_range", "zoom", (1.0 / high, 1.0 / low), zoom)
        zoom = (0.5, 1.0) if zoom is None else zoom
        self.zoom_range = _as_range("zoom", zoom)
        if self.zoom_range[0] <= 0:
            raise ValueError(f"zoom must be positive, got {zoom!r}")
        x = _old_range("x_range", "x", x_range, x)
        y = _old_range("y_range", "y", y_range, y)
        self.x_range = _as_range("x", 0.5 if x is None else x)
        self.y_range = _as_range("y", 0.5 if y is None else y)
        pad_mode = renamed_argument("padding_mode", "pad_mode", padding_mode, pad_mode)
        self.pad_mode = _check_padding(pad_mode or "zeros")

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Zoom ratio (as its magnification ``scale``), fixed point x and y."""
        params = super().sample(batch, draws, key)
        params["scale"] = 1.0 / params.pop("zoom")
        return params

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
        return warp_affine(batch, linear, offset, self.pad_mode)


class RandomRotateObject(RandomTransform):
    """Rotate and rescale an object about its center, then move it to a new place.

    ``output = dest + R(degrees) (source - center) / scale``: the object centered at
    ``ctr`` (fractions of width/height) lands at ``dest``; the original's ``scale`` is the
    source-to-output ratio (2.0 halves the object). Params: ``apply``, ``degrees``,
    ``scale`` (the magnification ``1 / scale``), ``center_x``, ``center_y``, ``dest_x``,
    ``dest_y`` (``[B]``).

    Args:
        p: Probability per sample.
        max_deg: Angles uniform in ``(-max_deg, max_deg)`` (or a ``(low, high)`` pair).
        ctr_x: Object center, horizontal fraction: a number or a range.
        ctr_y: Object center, vertical fraction: a number or a range.
        scale: Source-to-output size ratio: a number or a range.
        dest_x: Destination, horizontal fraction: a number or a range.
        dest_y: Destination, vertical fraction: a number or a range.
        pad_mode: ``"zeros"``, ``"border"`` or ``"reflection"``.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).

    Note:
        The old argument names ``degrees_range``, ``scale_range``, ``center_x_range``,
        ``center_y_range``, ``dest_x_range``, ``dest_y_range`` and ``padding_mode`` are
        accepted with a FutureWarning; ``scale_range`` is the magnification range,
        converted to ``scale=(1 / high, 1 / low)``.
    """

    stream = AugmentStream.ROTATE_OBJECT
    uniform_params = ("degrees", "ratio", "center_x", "center_y", "dest_x", "dest_y")

    def __init__(
        self,
        p: float = 0.5,
        max_deg: float | Sequence[float] | None = None,
        ctr_x: float | Sequence[float] | None = None,
        ctr_y: float | Sequence[float] | None = None,
        scale: float | Sequence[float] | None = None,
        dest_x: float | Sequence[float] | None = None,
        dest_y: float | Sequence[float] | None = None,
        pad_mode: str | None = None,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        degrees_range: Sequence[float] | None = None,
        scale_range: Sequence[float] | None = None,
        center_x_range: Sequence[float] | None = None,
        center_y_range: Sequence[float] | None = None,
        dest_x_range: Sequence[float] | None = None,
        dest_y_range: Sequence[float] | None = None,
        padding_mode: str | None = None,
    ) -> None:
        """Store the ranges and padding."""
        super().__init__(p, seed, device)
        max_deg = _old_range("degrees_range", "max_deg", degrees_range, max_deg)
        max_deg = 45.0 if max_deg is None else max_deg
        if isinstance(max_deg, (int, float)):
            self.degrees_range = (-abs(float(max_deg)), abs(float(max_deg)))
        else:
            self.degrees_range = check_range("max_deg", max_deg)
        if scale_range is not None:
            low, high = check_range("scale_range", scale_range, positive=True)
            scale = renamed_argument("scale_range", "scale", (1.0 / high, 1.0 / low), scale)
        self.ratio_range = _as_range("scale", (1.0, 2.0) if scale is None else scale)
        if self.ratio_range[0] <= 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        ctr_x = _old_range("center_x_range", "ctr_x", center_x_range, ctr_x)
        ctr_y = _old_range("center_y_range", "ctr_y", center_y_range, ctr_y)
        dest_x = _old_range("dest_x_range", "dest_x", dest_x_range, dest_x)
        dest_y = _old_range("dest_y_range", "dest_y", dest_y_range, dest_y)
        self.center_x_range = _as_range("ctr_x", 0.5 if ctr_x is None else ctr_x)
        self.center_y_range = _as_range("ctr_y", 0.5 if ctr_y is None else ctr_y)
        self.dest_x_range = _as_range("dest_x", (0.25, 0.75) if dest_x is None else dest_x)
        self.dest_y_range = _as_range("dest_y", (0.25, 0.75) if dest_y is None else dest_y)
        pad_mode = renamed_argument("padding_mode", "pad_mode", padding_mode, pad_mode)
        self.pad_mode = _check_padding(pad_mode or "border")

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """The uniform params, with the size ratio as its magnification ``scale``."""
        params = super().sample(batch, draws, key)
        params["scale"] = 1.0 / params.pop("ratio")
        return params

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Warp every sample: ``source = center + R^-1 (output - dest) / scale``."""
        _, _, h, w = batch.shape
        names = ("degrees", "scale", "center_x", "center_y", "dest_x", "dest_y")
        p = {name: params[name].float() for name in names}
        center = torch.stack(
            (_fraction_to_centered(p["center_x"], w), _fraction_to_centered(p["center_y"], h)), -1
        )
        dest = torch.stack(
            (_fraction_to_centered(p["dest_x"], w), _fraction_to_centered(p["dest_y"], h)), -1
        )
        linear = _inverse_rotation(p["degrees"]) / p["scale"].view(-1, 1, 1)
        offset = center - (linear @ dest.unsqueeze(-1)).squeeze(-1)
        return warp_affine(batch, linear, offset, self.pad_mode)


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
