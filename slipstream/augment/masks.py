"""Region transforms: random erasing, patch shuffling, a fixed circular mask, iBOT block masks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
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
from slipstream.renamed import renamed_argument
from slipstream.sampling import keyed_random

__all__ = ["CircularMask", "RandomBlockMask", "RandomErasing", "RandomPatchShuffle", "box_masks"]

_ERASE_ATTEMPTS = 10
_ERASE_MODES = ("zeros", "random_color_uniform", "random_color_pixel")
_ERASE_FILLS = ("randn", "uniform")


def _as_range(name: str, value: float | Sequence[float]) -> tuple[float, float]:
    """A number ``v`` as ``(v, v)``; a ``(low, high)`` pair checked."""
    if isinstance(value, (int, float)):
        return float(value), float(value)
    return check_range(name, value)


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
    int64 ``[B]`` (for noise fills).

    Args:
        p: Probability per sample.
        area_range: Range of the erased area as a fraction of the image (or one number).
        aspect_range: Range of the box aspect ratio (height / width; or one number).
        mode: ``"zeros"``, ``"random_color_uniform"`` (one random color per sample) or
            ``"random_color_pixel"`` (a random value per pixel and channel).
        fill: The random values' distribution: ``"randn"`` (standard normal, for
            normalized inputs) or ``"uniform"`` (in ``[0, max_value)``).
        max_value: Upper bound of ``fill="uniform"``.
        seed: This transform's own seed (replaces the key's); None uses the key's.
        device: Accepted for the original's signature (params follow the batch).
        value: A fixed fill instead of ``mode``/``fill``: a float, per-channel floats, or
            ``"random"`` (uniform noise in ``0..1``), as torchvision's ``value``.
        scale: Old name of ``area_range`` (FutureWarning).
        ratio: Old name of ``aspect_range`` (FutureWarning).
    """

    stream = AugmentStream.ERASING
    num_draws = 4 * _ERASE_ATTEMPTS

    def __init__(
        self,
        p: float = 0.5,
        area_range: float | Sequence[float] | None = None,
        aspect_range: float | Sequence[float] | None = None,
        mode: str = "random_color_pixel",
        fill: str = "randn",
        max_value: float = 1.0,
        seed: int | None = None,
        device: torch.device | str | None = None,
        *,
        value: float | Sequence[float] | str | None = None,
        scale: Sequence[float] | None = None,
        ratio: Sequence[float] | None = None,
    ) -> None:
        """Store the ranges and fill value."""
        super().__init__(p, seed, device)
        area_range = renamed_argument(
            "scale", "area_range", None if scale is None else tuple(scale), area_range
        )
        aspect_range = renamed_argument(
            "ratio", "aspect_range", None if ratio is None else tuple(ratio), aspect_range
        )
        self.scale = _as_range(
            "area_range", (0.02, 1.0 / 3.0) if area_range is None else area_range
        )
        self.ratio = _as_range("aspect_range", (0.3, 3.3) if aspect_range is None else aspect_range)
        if self.ratio[0] <= 0:
            raise ValueError(f"aspect_range must be positive, got {aspect_range!r}")
        if mode not in _ERASE_MODES:
            raise ValueError(f"mode must be one of {_ERASE_MODES}, got {mode!r}")
        if fill not in _ERASE_FILLS:
            raise ValueError(f"fill must be one of {_ERASE_FILLS}, got {fill!r}")
        self.mode, self.fill, self.max_value = mode, fill, float(max_value)
        if value is None:
            self.value: float | tuple[float, ...] | str | None = None
        elif isinstance(value, str):
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

    def _mode_fill(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """The fill of ``mode``/``fill`` (noise keyed by the samples' noise seeds)."""
        _, c, h, w = batch.shape
        if self.mode == "zeros":
            return batch.new_zeros(()).view(1, 1, 1, 1)
        shape = (c, h, w) if self.mode == "random_color_pixel" else (c, 1, 1)
        u = keyed_noise(params["noise_seed"], shape, torch.float32)
        if self.fill == "uniform":
            return (u * self.max_value).to(batch.dtype)
        return torch.special.ndtri(u.clamp_(1e-7, 1.0 - 1e-7)).to(batch.dtype)

    def transform(self, batch: torch.Tensor, params: Params) -> torch.Tensor:
        """Fill every sample's box (an empty box leaves the sample unchanged)."""
        b, c, h, w = batch.shape
        mask = box_masks(params["box"], h, w)
        if self.value is None:
            fill = self._mode_fill(batch, params)
        elif self.value == "random":
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


BLOCK_MASK_STREAM = 1001
"""Stream id of :class:`RandomBlockMask` (outside :class:`AugmentStream`'s 101.. range)."""

_ATTEMPTS_PER_BLOCK = 10
_M64 = 0xFFFFFFFFFFFFFFFF


@numba.njit(cache=True, nogil=True)
def _splitmix(state: np.uint64) -> tuple[np.uint64, float]:
    """The next state and a uniform in [0, 1) (SplitMix64)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return state, float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@numba.njit(cache=True, nogil=True)
def _block_masks(keys, grid_h, grid_w, p, r0, r1, la0, la1, low, out, blocks):  # noqa: PLR0913
    """BEiT/iBOT block masking per sample from its 64-bit key (see RandomBlockMask)."""
    for b in range(keys.shape[0]):
        state = keys[b]
        state, u = _splitmix(state)
        if u >= p:
            continue
        state, u = _splitmix(state)
        high = (r0 + (r1 - r0) * u) * grid_h * grid_w
        count = 0
        placed = 0
        while count < high:
            room = high - count
            delta = 0
            for _ in range(_ATTEMPTS_PER_BLOCK):
                state, u1 = _splitmix(state)
                state, u2 = _splitmix(state)
                state, u3 = _splitmix(state)
                state, u4 = _splitmix(state)
                area = low + (room - low) * u1
                aspect = math.exp(la0 + (la1 - la0) * u2)
                h = int(round(math.sqrt(area * aspect)))
                w = int(round(math.sqrt(area / aspect)))
                if w < grid_w and h < grid_h:
                    top = int(u3 * (grid_h - h + 1))
                    left = int(u4 * (grid_w - w + 1))
                    masked = 0
                    for i in range(top, top + h):
                        for j in range(left, left + w):
                            masked += out[b, i, j]
                    if 0 < h * w - masked <= room:
                        for i in range(top, top + h):
                            for j in range(left, left + w):
                                if not out[b, i, j]:
                                    out[b, i, j] = True
                                    delta += 1
                        if placed < blocks.shape[1]:
                            blocks[b, placed, 0] = top
                            blocks[b, placed, 1] = left
                            blocks[b, placed, 2] = h
                            blocks[b, placed, 3] = w
                        placed += 1
                if delta > 0:
                    break
            if delta == 0:
                break
            count += delta


class RandomBlockMask:
    """iBOT's blockwise patch masks (BEiT's block sampler), keyed per sample.

    For each sample, with probability ``p``, a masking ratio ``r`` is drawn uniformly from
    ``ratio`` and rectangular blocks of patches are added until ``r * H * W`` patches are
    masked: each block has area uniform in ``[min_patches, remaining]`` and aspect ratio
    ``h / w`` log-uniform in ``aspect``, ``h = round(sqrt(area * aspect))``,
    ``w = round(sqrt(area / aspect))``, a uniform position; it is kept when it adds at least
    one and at most ``remaining`` new patches; 10 attempts per block, and masking stops
    early when none succeeds (as iBOT). Otherwise the sample's mask is all False.

    The draws come from one 64-bit key per sample, ``(seed, epoch, sample id, view,
    BLOCK_MASK_STREAM)``, so a sample's mask does not depend on batch size or order.

    Called as a pipeline's ``augment`` (``mask = RandomBlockMask(...)(images, key)``) it
    ignores the pixels and returns the masks on their device.

    Args:
        grid: Patch grid ``(H, W)`` (e.g. ``(14, 14)`` for 224 and patch 16), or one int.
        ratio: Range of the masking ratio.
        p: Probability that a sample is masked at all.
        aspect: Range of the block aspect ratio ``h / w``.
        min_patches: Smallest block area drawn (default iBOT's ``(min(H, W) // 3) ** 2``).
    """

    def __init__(
        self,
        grid: int | Sequence[int],
        ratio: Sequence[float] = (0.1, 0.5),
        p: float = 0.5,
        aspect: Sequence[float] = (0.3, 1 / 0.3),
        min_patches: int | None = None,
    ) -> None:
        """Check and store the sampler's parameters."""
        grid_h, grid_w = (grid, grid) if isinstance(grid, int) else (int(grid[0]), int(grid[1]))
        if grid_h < 1 or grid_w < 1:
            raise ValueError(f"grid must be positive, got {grid!r}")
        self.grid = (grid_h, grid_w)
        self.ratio = check_range("ratio", ratio)
        if not 0.0 <= self.ratio[0] <= self.ratio[1] <= 1.0:
            raise ValueError(f"ratio must lie in [0, 1], got {ratio!r}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        self.aspect = check_range("aspect", aspect, positive=True)
        self.min_patches = (min(self.grid) // 3) ** 2 if min_patches is None else int(min_patches)

    def __repr__(self) -> str:
        return (
            f"RandomBlockMask(grid={self.grid}, ratio={self.ratio}, p={self.p}, "
            f"aspect={self.aspect}, min_patches={self.min_patches})"
        )

    def masks(self, key: BatchKey, max_blocks: int = 0) -> torch.Tensor | tuple:
        """Bool masks ``[B, H, W]`` (CPU) of the key's samples.

        Args:
            key: The batch key.
            max_blocks: Also return the first ``max_blocks`` placed blocks per sample,
                int32 ``[B, max_blocks, 4]`` as ``(top, left, h, w)`` (zeros past the last).

        Returns:
            The masks, or ``(masks, blocks)`` when ``max_blocks > 0``.
        """
        word = key.stream_word(BLOCK_MASK_STREAM)
        keys = keyed_random.bits(key.seed, key.epoch, key.sample_ids, key.view, word, 1)
        out = np.zeros((key.batch_size, *self.grid), dtype=np.bool_)
        blocks = np.zeros((key.batch_size, max(max_blocks, 0), 4), dtype=np.int32)
        _block_masks(
            np.ascontiguousarray(keys[:, 0]),
            self.grid[0],
            self.grid[1],
            self.p,
            self.ratio[0],
            self.ratio[1],
            math.log(self.aspect[0]),
            math.log(self.aspect[1]),
            float(self.min_patches),
            out,
            blocks,
        )
        masks = torch.from_numpy(out)
        return (masks, torch.from_numpy(blocks)) if max_blocks > 0 else masks

    def __call__(self, batch: torch.Tensor, key: BatchKey) -> torch.Tensor:
        """The key's masks on ``batch``'s device (the pixels are not read)."""
        return to_batch_device(self.masks(key), batch)
