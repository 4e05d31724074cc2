"""Supervised ImageNet-style presets."""

from __future__ import annotations

from slipstream.pipelines.spec import (
    CenterCrop,
    ImagePipeline,
    Normalize,
    RandomResizedCrop,
)


def supervised_train(
    size: int = 224,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_probability: float = 0.5,
    normalize: bool = True,
    dtype: str = "float32",
    field: str = "image",
) -> dict[str, ImagePipeline]:
    """RandomResizedCrop + horizontal flip (+ ImageNet normalization).

    Args:
        size: Output side length.
        scale: RandomResizedCrop area range.
        ratio: RandomResizedCrop aspect-ratio range.
        flip_probability: Probability of a horizontal flip per sample.
        normalize: Normalize with ImageNet mean/std on the output device;
            ``False`` keeps pixel values (use ``dtype="uint8"`` for raw bytes).
        dtype: Output dtype name.
        field: Image field of the dataset to read.

    Returns:
        ``{field: ImagePipeline}`` for :class:`slipstream.SlipstreamLoader`.

    Example:
        >>> pipes = supervised_train(224)
        >>> pipes["image"].crop.output_size
        (224, 224)
    """
    return {
        field: ImagePipeline(
            crop=RandomResizedCrop(size, scale=scale, ratio=ratio),
            flip_probability=flip_probability,
            normalize=Normalize() if normalize else None,
            dtype=dtype,
        )
    }


def supervised_val(
    size: int = 224,
    *,
    resize_short: int = 256,
    normalize: bool = True,
    dtype: str = "float32",
    field: str = "image",
) -> dict[str, ImagePipeline]:
    """Center crop of ``size / resize_short`` of the short side, resized to ``size``.

    This is the usual "resize 256, center crop 224" evaluation transform, done as
    one centered crop window decoded straight to ``size`` (FFCV's center-crop
    decoder does the same).

    Args:
        size: Output side length.
        resize_short: Short side of the equivalent resize-then-crop.
        normalize: Normalize with ImageNet mean/std on the output device.
        dtype: Output dtype name.
        field: Image field of the dataset to read.

    Returns:
        ``{field: ImagePipeline}`` for :class:`slipstream.SlipstreamLoader`.
    """
    return {
        field: ImagePipeline(
            crop=CenterCrop(size, crop_ratio=size / resize_short),
            flip_probability=0.0,
            normalize=Normalize() if normalize else None,
            dtype=dtype,
        )
    }
