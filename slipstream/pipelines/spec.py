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
from slipstream.sampling.keyed_random import Stream, uniform

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


def _stage_seed(own: int | None, loader_seed: int) -> int:
    """The seed of a stage's draws: its own ``seed`` when set, else the loader's."""
    return loader_seed if own is None else int(own)


@dataclass(frozen=True)
class DecodeRandomResizedCrop(_Crop):
    """Decode a torchvision-style random-resized-crop window, resized to ``size``.

    The window is drawn before decoding from the stored image size and decoded straight
    to ``size`` (fused decode-crop-resize). Draws are keyed by ``(seed, epoch, sample id,
    view)``, so a sample's crop does not depend on batch size, order or resume point.

    Args:
        size: Output ``(height, width)`` or one int for a square.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
        method: ``"torchvision"`` (10 attempts then center fallback, same
            distribution as torchvision) or ``"direct"`` (loop-free single draw; see
            :class:`DecodeDirectRandomResizedCrop`).
        seed: Seed of this stage's draws; None (default) uses the loader's ``seed``. (The
            original slipstream's ``seed=None`` meant "not reproducible"; here every draw
            is reproducible.)
    """

    size: int | tuple[int, int] = 224
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    method: str = "torchvision"
    seed: int | None = None

    def __post_init__(self) -> None:
        """Check the method (a number here is a positional ``num_threads`` of the original)."""
        if self.method not in ("torchvision", "direct"):
            raise ValueError(
                f"method must be 'torchvision' or 'direct', got {self.method!r} (decode "
                "threads are SlipstreamLoader's num_workers)"
            )

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
            seed=_stage_seed(self.seed, seed),
            epoch=epoch,
            view=view,
            scale=self.scale,
            ratio=self.ratio,
            method=self.method,
        )


@dataclass(frozen=True)
class DecodeDirectRandomResizedCrop(DecodeRandomResizedCrop):
    """:class:`DecodeRandomResizedCrop` with the loop-free "direct" window draw.

    One draw that always fits (no 10-attempt rejection loop, no fallback): the aspect is
    uniform over the part of ``ratio`` where a crop of ``scale[0]`` fits, the area uniform
    over what fits at that aspect (see :func:`slipstream.sampling.crops.random_resized_crop`
    for how this differs from torchvision's distribution).

    Args:
        size: Output ``(height, width)`` or one int for a square.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
        method: Always ``"direct"``.
        seed: Seed of this stage's draws; None uses the loader's ``seed``.
    """

    method: str = "direct"

    def __post_init__(self) -> None:
        """Check the method is the direct draw."""
        if self.method != "direct":
            raise ValueError("DecodeDirectRandomResizedCrop always uses method='direct'")


@dataclass(frozen=True)
class DecodeCenterCrop(_Crop):
    """Decode the centered ``size`` window (the original slipstream's center crop).

    ``DecodeCenterCrop(224)`` cuts the centered 224 x 224 pixels of each image at source
    resolution, as the original slipstream did (an image smaller than that gives its largest
    centered window of the output aspect, resized up to ``size``). With ``crop_ratio`` it
    is FFCV's ``CenterCropRGBImageDecoder``: a centered window of ``crop_ratio`` x the
    short side, resized to ``size`` (``crop_ratio=224/256`` is the usual "resize 256,
    center crop 224" in one decode; :class:`DecodeResizeCrop` is that transform exactly).

    Args:
        size: Output ``(height, width)`` or one int for a square.
        crop_ratio: None (the original's unresized window), or the side of the centered
            window relative to the short side, in ``(0, 1]`` (FFCV's).
    """

    size: int | tuple[int, int] = 224
    crop_ratio: float | None = None

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
class DecodeResizeCrop(_Crop):
    """torchvision ``Resize(resize_size)`` then ``CenterCrop(crop_size)`` as one window.

    The ImageNet validation transform, decoded straight to ``crop_size``.

    Args:
        resize_size: Short side the image would be resized to before cropping.
        crop_size: Output ``(height, width)`` or one int for a square.
    """

    resize_size: int = 256
    crop_size: int | tuple[int, int] = 224

    @property
    def size(self) -> int | tuple[int, int]:  # type: ignore[override]
        """The output size (``crop_size``)."""
        return self.crop_size

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
            heights, widths, resize_short=self.resize_size, output_size=self.output_size
        )


def _position_range(name: str, value: float | tuple[float, float]) -> tuple[float, float]:
    lo, hi = (value, value) if isinstance(value, int | float) else value
    if not 0.0 <= float(lo) <= float(hi) <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] with min <= max, got {value!r}")
    return float(lo), float(hi)


@dataclass(frozen=True)
class DecodeRandomResizeShortCropLong(_Crop):
    """Resize the short side to ``size`` and crop the long side to a ``size`` square.

    The window is the short side's square, placed along the long side at a keyed fraction
    drawn uniformly from ``x_range`` (landscape images) or ``y_range`` (portrait): 0 is
    left/top, 0.5 the center (the default), 1 right/bottom.

    Args:
        size: Output side (one int: a fixed size; the original's ``(min, max)`` sizes
            sampled per batch or per image do not map onto fixed output buffers).
        x_range: Horizontal position, a float or ``(min, max)`` in ``[0, 1]``.
        y_range: Vertical position, a float or ``(min, max)`` in ``[0, 1]``.
        seed: Seed of this stage's draws; None uses the loader's ``seed``.
    """

    size: int = 224
    x_range: float | tuple[float, float] = (0.5, 0.5)
    y_range: float | tuple[float, float] = (0.5, 0.5)
    seed: int | None = None

    def __post_init__(self) -> None:
        """Check the size and position ranges."""
        if not isinstance(self.size, int | np.integer) or self.size < 1:
            raise ValueError(
                f"size must be one int >= 1, got {self.size!r} (a sampled size range gives "
                "outputs of several sizes per batch, which this loader does not stack)"
            )
        _position_range("x_range", self.x_range)
        _position_range("y_range", self.y_range)

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
        """Square windows ``int32 [B, 4]`` of the short side, keyed by sample id."""
        h = np.asarray(heights, dtype=np.int64).reshape(-1)
        w = np.asarray(widths, dtype=np.int64).reshape(-1)
        ids = np.asarray(sample_ids, dtype=np.int64).reshape(-1)
        u = uniform(_stage_seed(self.seed, seed), epoch, ids, view, Stream.CROP, 2)
        (x0, x1), (y0, y1) = _position_range("x", self.x_range), _position_range("y", self.y_range)
        side = np.minimum(h, w)
        fx, fy = x0 + (x1 - x0) * u[:, 0], y0 + (y1 - y0) * u[:, 1]
        x = np.floor(fx * (w - side) + 0.5).astype(np.int64)
        y = np.floor(fy * (h - side) + 0.5).astype(np.int64)
        return np.stack([y, x, side, side], axis=1).astype(np.int32)


_ANCHORS = (DecodeRandomResizedCrop, DecodeCenterCrop, DecodeResizeCrop)


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
    :func:`slipstream.pipelines.yoke` or ``multicrop(..., yoked=True)``.

    Args:
        size: Output ``(height, width)`` or one int for a square.
        anchor: The crop spec of the view whose center this one shares (usually the
            anchor output's ``DecodeRandomResizedCrop``).
        anchor_view: The anchor output's ``view`` index.
        scale: Range of the crop area as a fraction of the image area.
        ratio: Range of the crop aspect ratio (width / height).
    """

    size: int | tuple[int, int]
    anchor: DecodeRandomResizedCrop | DecodeCenterCrop | DecodeResizeCrop
    anchor_view: int = 0
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        """Check the anchor is a plain crop spec."""
        if not isinstance(self.anchor, _ANCHORS):
            raise TypeError(
                "YokedCrop.anchor must be a DecodeRandomResizedCrop, DecodeCenterCrop or "
                f"DecodeResizeCrop, got {type(self.anchor).__name__}"
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


CropSpec = (
    DecodeRandomResizedCrop
    | DecodeCenterCrop
    | DecodeResizeCrop
    | DecodeRandomResizeShortCropLong
    | YokedCrop
)


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
            ``"float32"``, ``"float16"`` or ``"bfloat16"``; None (default) means
            ``"float32"``, or ``"uint8"`` for the full-resolution stages (``DecodeOnly``,
            ``DecodeYUVFullRes``, ``DecodeYUVPlanes``), whose images keep their own sizes
            and are always uint8.
        field: The dataset's image field to read (default: the output's name).
        view: View index keying this output's random crops and flips, so two outputs with
            the same crop spec on one field get different crops.
        augment: A batch transform (:mod:`slipstream.augment`, e.g. a ``Compose`` starting
            with ``ToFloatImage`` and ending with ``Normalize``) run on the output device
            on the decoded uint8 ``[B, 3, H, W]`` batch, keyed by ``(seed, epoch, sample
            ids, view)``. It produces the output itself, so ``normalize`` must be None and
            ``dtype`` ``"uint8"`` (the decoders' output).
        device: Where this output's tensors go (the original slipstream's ``device=`` of
            its presets); None (default) means the loader's ``device``.
    """

    crop: CropSpec
    flip_probability: float = 0.0
    normalize: Normalize | None = None
    dtype: str | None = None
    field: str | None = None
    view: int = 0
    augment: Any = None
    device: str | None = None

    def __post_init__(self) -> None:
        """Resolve the default dtype and check the combination of fields."""
        ragged = getattr(self.crop, "ragged", None)
        if self.dtype is not None and not isinstance(self.dtype, str):  # a torch dtype
            object.__setattr__(self, "dtype", str(self.dtype).removeprefix("torch."))
        if self.dtype is None:
            object.__setattr__(self, "dtype", "uint8" if ragged else "float32")
        if self.device is not None:
            object.__setattr__(self, "device", str(self.device))
        if ragged and (
            self.dtype != "uint8"
            or self.normalize is not None
            or self.flip_probability
            or self.augment is not None
        ):
            raise ValueError(
                f"{type(self.crop).__name__} gives uint8 images of their own sizes: no "
                "dtype other than 'uint8', normalize, flip_probability or augment"
            )
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
