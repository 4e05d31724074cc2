"""The iBOT preset: DINO's multi-crop views plus a blockwise patch mask per global view.

A batch of :func:`ibot` holds ``global_0``, ``global_1``, ``local_0`` ... (as
:func:`~slipstream.pipelines.dino`) and ``mask_0``, ``mask_1``: bool ``[B, H / patch,
W / patch]`` masks of the global views (True = masked patch), drawn by
:class:`slipstream.augment.masks.RandomBlockMask` and keyed by ``(seed, epoch, sample id, view
of global_k)``, so a sample's mask does not depend on the batch it lands in.

The loader's outputs are decoded images, so each mask output decodes the cheapest thing
there is (:class:`TopLeftPixels`: the top-left 8 x 8 pixels, which needs the entropy decode
of one row of blocks on the CPU paths) and its ``augment`` turns the keys into masks; the
pixels are not read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slipstream.augment.masks import RandomBlockMask
from slipstream.pipelines.spec import ImagePipeline
from slipstream.pipelines.ssl import dino

__all__ = ["TopLeftPixels", "ibot"]


@dataclass(frozen=True)
class TopLeftPixels:
    """The top-left ``size x size`` pixels, unscaled: for outputs that use no pixels.

    Args:
        size: Side of the window and of the output.
    """

    size: int = 8

    @property
    def output_size(self) -> tuple[int, int]:
        """Output ``(height, width)``."""
        return (self.size, self.size)

    def windows(
        self,
        heights: np.ndarray,
        widths: np.ndarray,
        sample_ids: np.ndarray,
        *,
        seed: int,
        epoch: int,
        view: int = 0,
    ) -> np.ndarray:
        """``int32 [B, 4]`` windows ``[0, 0, min(size, h), min(size, w)]``."""
        h = np.minimum(np.asarray(heights, dtype=np.int64).reshape(-1), self.size)
        w = np.minimum(np.asarray(widths, dtype=np.int64).reshape(-1), self.size)
        zeros = np.zeros_like(h)
        return np.stack([zeros, zeros, h, w], axis=1).astype(np.int32)


def ibot(
    global_size: int = 224,
    local_size: int = 96,
    *,
    num_local: int = 10,
    global_scale: tuple[float, float] = (0.14, 1.0),
    local_scale: tuple[float, float] = (0.05, 0.4),
    patch_size: int = 16,
    mask_ratio: Sequence[float] = (0.1, 0.5),
    mask_probability: float = 0.5,
    mask_aspect: Sequence[float] = (0.3, 1 / 0.3),
    mask_min_patches: int | None = None,
    augment: bool = True,
    yoked: bool = False,
    **options: Any,
) -> dict[str, ImagePipeline]:
    """The iBOT views (Zhou et al. 2022): DINO's multi-crop views, block masks of the globals.

    Views as :func:`~slipstream.pipelines.dino` (2 global, ``num_local`` local, DINO's
    augmentation chains) with iBOT's crop scales; per global view ``k`` a mask output
    ``mask_k``: with probability ``mask_probability`` a ratio uniform in ``mask_ratio`` of
    the ``global_size / patch_size`` patch grid is masked in blocks (BEiT's block sampler as
    iBOT uses it: aspect ``h / w`` log-uniform in ``mask_aspect``, smallest block
    ``mask_min_patches``, default ``(grid // 3) ** 2``); otherwise nothing is masked. This
    is iBOT's ``--pred_ratio 0 0.3 --pred_ratio_var 0 0.2`` setting.

    Args:
        global_size: Output side of the 2 global views (a multiple of ``patch_size``).
        local_size: Output side of the local views.
        num_local: Number of local views.
        global_scale: Area range of the global crops.
        local_scale: Area range of the local crops.
        patch_size: The model's patch side.
        mask_ratio: Range of the masked fraction of a masked view.
        mask_probability: Probability that a global view is masked.
        mask_aspect: Range of the block aspect ratio.
        mask_min_patches: Smallest block area in patches.
        augment: Attach DINO's augmentation chains.
        yoked: Center the other views on ``global_0``'s crop.
        **options: ``field``, ``normalize``, ``dtype`` (see
            :func:`~slipstream.pipelines.multicrop`).

    Returns:
        ``{"global_0", "global_1", "local_0", ..., "mask_0", "mask_1"}``.

    Example:
        >>> views = ibot(num_local=2, augment=False)
        >>> list(views)
        ['global_0', 'global_1', 'local_0', 'local_1', 'mask_0', 'mask_1']
    """
    if global_size % patch_size:
        raise ValueError(f"global_size {global_size} is not a multiple of patch {patch_size}")
    views = dino(
        global_size,
        local_size,
        num_local=num_local,
        global_scale=global_scale,
        local_scale=local_scale,
        augment=augment,
        yoked=yoked,
        **options,
    )
    grid = global_size // patch_size
    sampler = RandomBlockMask(
        grid, mask_ratio, mask_probability, mask_aspect, min_patches=mask_min_patches
    )
    for k in range(2):
        view = views[f"global_{k}"]
        views[f"mask_{k}"] = ImagePipeline(
            TopLeftPixels(),
            dtype="uint8",
            field=view.field,
            view=view.view,
            augment=sampler,
            device=view.device,
        )
    return views
