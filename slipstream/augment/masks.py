"""Region transforms: random erasing, patch shuffling, a fixed circular mask."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from slipstream.augment.base import (
    BatchTransform,
    Params,
    RandomTransform,
    check_range,
    to_batch_device,
)
from slipstream.augment.geometric import centered_pixel_grid
from slipstream.augment.keys import AugmentStream, BatchKey, keyed_noise

__all__ = ["CircularMask", "RandomErasing", "RandomPatchShuffle", "box_masks"]

_ERASE_ATTEMPTS = 10


def box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Boolean masks ``[B, 1, H, W]`` of boxes ``[B, 4]`` = ``(top, left, h, w)`` ints."""
    rows = torch.arange(height, device=boxes.device).view(1, -1)
    cols = torch.arange(width, device=boxes.device).view(1, -1)
    top, left, h, w = boxes.unbind(dim=1)
    in_rows = (rows >= top.view(-1, 1)) & (rows < (top + h).view(-1, 1))
    in_cols = (cols >= left.view(-1, 1)) & (cols < (left + w).view(-1, 1))
    return (in_rows.unsqueeze(2) & in_cols.unsqueeze(1)).unsqueeze(1)


class RandomErasing(RandomTransform):
    """Erase a random rectangle per sample (torchvision ``RandomErasing`` sampling).

    Ten candidate boxes are drawn per sample at once (area fraction uniform in ``scale``,
    log-uniform aspect ratio in ``ratio``, position uniform); the first that fits is used,
    and a sample where none fits is left unchanged (as torchvision). Params: ``apply``
    bool ``[B]``, ``box`` int64 ``[B, 4]`` = ``(top, left, height, width)``, ``noise_seed``
    int64 ``[B]`` (for ``value="random"``).

    Args:
        p: Probability per sample.
        scale: Range of the erased area as a fraction of the image.
        ratio: Range of the box aspect ratio (height / width).
        value: Fill: a float, per-channel floats, or ``"random"`` (uniform noise in ``0..1``).
    """

    stream = AugmentStream.ERASING
    num_draws = 4 * _ERASE_ATTEMPTS

    def __init__(
        self,
        p: float = 0.5,
        scale: Sequence[float] = (0.02, 0.33),
        ratio: Sequence[float] = (0.3, 3.3),
        value: float | Sequence[float] | str = 0.0,
    ) -> None:
        """Store the ranges and fill value."""
        super().__init__(p)
        self.scale = check_range("scale", scale)
        self.ratio = check_range("ratio", ratio, positive=True)
        if isinstance(value, str):
            if value != "random":
                raise ValueError(f"value must be a number, numbers or 'random', got {value!r}")
            self.value: float | tuple[float, ...] | str = value
        elif isinstance(value, (int, float)):
            self.value = float(value)
        else:
            self.value = tuple(float(v) for v in value)

    neutral_params = {"box": 0}  # an empty box leaves the sample unchanged

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """Draw ten candidate boxes per sample and keep the first valid one."""
        _, _, height, width = batch.shape
        d = draws.view(-1, _ERASE_ATTEMPTS, 4)
        area = height * width * (self.scale[0] + (self.scale[1] - self.scale[0]) * d[..., 0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * d[..., 1])
        h = torch.round(torch.sqrt(area * aspect)).long()
        w = torch.round(torch.sqrt(area / aspect)).long()
        valid = (h < height) & (w < width)
        top = torch.floor(d[..., 2] * (height - h + 1)).long()
        left = torch.floor(d[..., 3] * (width - w + 1)).long()
        first = torch.argmax(valid.to(torch.int8), dim=1, keepdim=True)
        found = valid.gather(1, first).squeeze(1)
        box = torch.stack([t.gather(1, first).squeeze(1) for t in (top, left, h, w)], dim=1)
        box = torch.where(found.view(-1, 1), box, torch.zeros_like(box))
        return {
            "box": to_batch_device(box, batch),
            "noise_seed": to_batch_device(key.noise_seeds(self.stream), batch),
        }

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Fill every sample's box (an empty box leaves the sample unchanged)."""
        b, c, h, w = batch.shape
        mask = box_masks(params["box"], h, w)
        if self.value == "random":
            fill = keyed_noise(params["noise_seed"], (c, h, w), batch.dtype)
        else:
            values = self.value if isinstance(self.value, tuple) else (self.value,)
            fill = to_batch_device(torch.tensor(values), batch, batch.dtype).view(1, -1, 1, 1)
        return torch.where(mask, fill, batch, out=torch.empty_like(batch))  # keeps the layout


class RandomPatchShuffle(RandomTransform):
    """Cut each image into a ``grid x grid`` array of patches and permute them per sample.

    Rows and columns beyond a multiple of ``grid`` are left in place. Params: ``apply``
    bool ``[B]``, ``permutation`` int64 ``[B, grid * grid]`` (output patch ``i`` is source
    patch ``permutation[b, i]``).

    Args:
        p: Probability per sample.
        grid: Patches per side.
    """

    stream = AugmentStream.PATCH_SHUFFLE

    def __init__(self, p: float = 0.5, grid: int = 4) -> None:
        """Store the grid size."""
        super().__init__(p)
        if grid < 1:
            raise ValueError(f"grid must be >= 1, got {grid}")
        self.grid = int(grid)

    @property
    def num_draws(self) -> int:  # type: ignore[override]
        """One draw per patch."""
        return self.grid * self.grid

    def sample(self, batch: torch.Tensor, draws: torch.Tensor, key: BatchKey) -> Params:
        """A random permutation per sample: the argsort of its draws."""
        return {"permutation": to_batch_device(torch.argsort(draws, dim=1), batch)}

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Permute every sample's patches."""
        b, c, h, w = batch.shape
        n = self.grid
        ph, pw = h // n, w // n
        if ph == 0 or pw == 0:
            raise ValueError(f"a {h}x{w} image is smaller than the {n}x{n} patch grid")
        region = batch[:, :, : ph * n, : pw * n]
        patches = region.reshape(b, c, n, ph, n, pw).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(b, n * n, c, ph, pw)
        index = params["permutation"].view(b, n * n, 1, 1, 1).expand(-1, -1, c, ph, pw)
        shuffled = patches.gather(1, index).view(b, n, n, c, ph, pw)
        shuffled = shuffled.permute(0, 3, 1, 4, 2, 5).reshape(b, c, ph * n, pw * n)
        out = batch.clone()
        out[:, :, : ph * n, : pw * n] = shuffled
        return out


class CircularMask(BatchTransform):
    """Keep a centered disc, fill the rest (the same for every sample).

    Args:
        radius: Disc radius as a fraction of half the shorter side.
        fill: Value outside the disc.
    """

    def __init__(self, radius: float = 1.0, fill: float = 0.0) -> None:
        """Store the radius and fill."""
        if radius <= 0:
            raise ValueError(f"radius must be positive, got {radius}")
        self.radius = float(radius)
        self.fill = float(fill)

    def apply(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Mask every sample."""
        _, _, h, w = batch.shape
        ys, xs = centered_pixel_grid(h, w, batch.device)
        inside = ys**2 + xs**2 <= (self.radius * min(h, w) * 0.5) ** 2
        return torch.where(inside, batch, batch.new_full((), self.fill))
