"""Plain-data descriptions of what the loader does to an image field.

A pipeline is data, not code: the loader reads these specs and runs the matching
stages (crop sampling before decode, flip inside the decoder, normalization on the
output device). Presets such as :func:`slipstream.pipelines.supervised_train` return
``dict[field_name, ImagePipeline]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from slipstream.sampling import crops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


class _Crop:
    """Shared part of the crop specs: an output ``size`` and its ``(height, width)``."""

    size: int | tuple[int, int]

    @property
    def output_size(self) -> tuple[int, int]:
        """Output ``(height, width)``."""
        return _pair(self.size)


@dataclass(frozen=True)
class RandomResizedCrop(_Crop):
    """torchvision-style RandomResizedCrop window sampling, then resize to ``size``.

    Args:
        size: Output ``(height, width)`` or one int for a square.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
        method: ``"torchvision"`` (10 attempts then center fallback, same
            distribution as torchvision) or ``"direct"`` (loop-free single draw).
    """

    size: int | tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    method: str = "torchvision"

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
        """Crop windows ``int32 [B, 4]`` (y, x, h, w) keyed by sample id."""
        return crops.random_resized_crop(
            heights,
            widths,
            sample_ids,
            seed=seed,
            epoch=epoch,
            view=view,
            scale=self.scale,
            ratio=self.ratio,
            method=self.method,
        )


@dataclass(frozen=True)
class CenterCrop(_Crop):
    """FFCV-style center crop: a centered window of ``crop_ratio * short side``.

    Args:
        size: Output ``(height, width)`` or one int for a square.
        crop_ratio: Side of the centered window relative to the short side
            (224/256 reproduces the usual "resize 256, center crop 224").
    """

    size: int | tuple[int, int]
    crop_ratio: float = 224 / 256

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
        """Crop windows ``int32 [B, 4]``; deterministic (seed/epoch unused)."""
        return crops.center_crop(
            heights, widths, crop_ratio=self.crop_ratio, output_size=self.output_size
        )


@dataclass(frozen=True)
class ResizeShortCenterCrop(_Crop):
    """torchvision ``Resize(resize_short)`` then ``CenterCrop(size)`` as one window.

    Args:
        size: Output ``(height, width)`` or one int for a square.
        resize_short: Short side the image would be resized to before cropping.
    """

    size: int | tuple[int, int]
    resize_short: int = 256

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
        """Crop windows ``int32 [B, 4]``; deterministic (seed/epoch unused)."""
        return crops.resize_short_center_crop(
            heights, widths, resize_short=self.resize_short, output_size=self.output_size
        )


@dataclass(frozen=True)
class YokedCrop(_Crop):
    """A random-resized-crop view centred on another view's crop center ("yoked" views).

    Several views of one image at different scales that share a center, e.g. a global
    224 view and local 96 views around the same point: the anchor's windows are
    recomputed from its own key ``(seed, epoch, sample id, anchor_view)`` (the same
    windows the anchor output gets), and this view draws its area fraction and aspect
    from its own ``view`` (see :func:`slipstream.sampling.crops.centered_resized_crop`).
    So a sample's windows depend only on the key, never on the batch, and the centers
    agree within 0.5 px (rounding to whole pixels). Build these with
    :func:`slipstream.pipelines.yoke` or ``multi_crop(..., yoked=True)``.

    Args:
        size: Output ``(height, width)`` or one int for a square.
        anchor: The crop spec of the view whose center this one shares (usually the
            anchor output's ``RandomResizedCrop``).
        anchor_view: The anchor output's ``view`` index.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
    """

    size: int | tuple[int, int]
    anchor: RandomResizedCrop | CenterCrop | ResizeShortCenterCrop
    anchor_view: int = 0
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        """Check the anchor is a plain crop spec."""
        if not isinstance(self.anchor, RandomResizedCrop | CenterCrop | ResizeShortCenterCrop):
            raise TypeError(
                "YokedCrop.anchor must be a RandomResizedCrop, CenterCrop or "
                f"ResizeShortCenterCrop, got {type(self.anchor).__name__}"
            )
        if self.anchor_view < 0:
            raise ValueError(f"anchor_view must be >= 0, got {self.anchor_view}")

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
        """Crop windows ``int32 [B, 4]`` centred on the anchor's windows, keyed by sample id."""
        anchor = self.anchor.windows(
            heights, widths, sample_ids, seed=seed, epoch=epoch, view=self.anchor_view
        )
        return crops.centered_resized_crop(
            heights,
            widths,
            crops.window_centers(anchor),
            sample_ids,
            seed=seed,
            epoch=epoch,
            view=view,
            scale=self.scale,
            ratio=self.ratio,
        )


CropSpec = RandomResizedCrop | CenterCrop | ResizeShortCenterCrop | YokedCrop


@dataclass(frozen=True)
class Normalize:
    """Per-channel ``(x / 255 - mean) / std`` on the output device.

    Args:
        mean: Channel means in [0, 1] units.
        std: Channel standard deviations in [0, 1] units.
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


@dataclass(frozen=True)
class ImagePipeline:
    """What happens to one image output: source field, crop window, flip, normalization, dtype.

    Several outputs may read the same image field (multi-view / multi-crop SSL): give each
    its own ``view`` so its crops and flips are independent draws of the keyed generator.

    Args:
        crop: How crop windows are chosen (before decoding).
        flip_probability: Probability of a horizontal flip, drawn per sample
            from the keyed generator (applied inside the decoder).
        normalize: Normalization applied on the output device, or ``None`` to
            keep raw pixel values.
        dtype: Output dtype name: ``"uint8"`` (only without ``normalize``),
            ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        field: The dataset's image field to read (default: the output's name).
        view: View index keying this output's random crops and flips, so two outputs with
            the same crop spec on one field get different crops.
        augment: A batch transform (:mod:`slipstream.augment`, e.g. a ``Compose`` starting
            with ``ToFloatImage`` and ending with ``Normalize``) run on the output device
            on the decoded uint8 ``[B, 3, H, W]`` batch, keyed by ``(seed, epoch, sample
            ids, view)``. It produces the output itself, so ``normalize`` must be None and
            ``dtype`` ``"uint8"`` (the decoders' output).
    """

    crop: CropSpec
    flip_probability: float = 0.0
    normalize: Normalize | None = None
    dtype: str = "float32"
    field: str | None = None
    view: int = 0
    augment: Any = None

    def __post_init__(self) -> None:
        """Check the combination of fields."""
        if not 0.0 <= self.flip_probability <= 1.0:
            raise ValueError(f"flip_probability must be in [0, 1], got {self.flip_probability}")
        if self.dtype not in ("uint8", "float32", "float16", "bfloat16"):
            raise ValueError(f"unknown dtype {self.dtype!r}")
        if self.dtype == "uint8" and self.normalize is not None:
            raise ValueError("dtype='uint8' cannot hold normalized values; use a float dtype")
        if self.view < 0:
            raise ValueError(f"view must be >= 0, got {self.view}")
        if self.augment is not None and (self.normalize is not None or self.dtype != "uint8"):
            raise ValueError(
                "with augment, the augment chain converts and normalizes: pass "
                "normalize=None and dtype='uint8'"
            )


def decode_groups(
    pipelines: dict[str, ImagePipeline], *, by_size: bool = False
) -> list[tuple[str, ...]]:
    """Outputs decoded together: those reading the same image field (and output size).

    The decoders take a group's K windows per sample from one stored image: one entropy
    decode per distinct DCT scale among the views, each view still bit-identical to its own
    single-window decode. Groups and their members keep the order of ``pipelines``; the
    first member of a group is its lead (whose gathered bytes every member uses).

    Args:
        pipelines: Output name -> pipeline.
        by_size: Also split groups by output size (for decoders whose output per sample is
            one ``[K, H, W, 3]`` tensor, such as the DALI operator).

    Returns:
        Tuples of output names, one per group.
    """
    groups: dict[tuple[str, tuple[int, int] | None], list[str]] = {}
    for name, pipeline in pipelines.items():
        size = pipeline.crop.output_size if by_size else None
        groups.setdefault((pipeline.field or name, size), []).append(name)
    return [tuple(names) for names in groups.values()]
