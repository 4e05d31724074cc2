"""Supervised ImageNet-style presets, by the original slipstream's names and arguments."""

from __future__ import annotations

from typing import Any

from slipstream.pipelines.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DecodeCenterCrop,
    DecodeRandomResizedCrop,
    ImagePipeline,
    Normalize,
)

__all__ = ["make_train_pipeline", "make_val_pipeline", "supervised_train", "supervised_val"]


def _no_threads(num_threads: int) -> None:
    if num_threads:
        raise ValueError(
            f"num_threads={num_threads}: decode threads are SlipstreamLoader(num_workers=...), "
            "one pool for every output"
        )


def supervised_train(
    size: int = 224,
    seed: int | None = None,
    device: str | None = None,
    dtype: Any = "float32",
    normalize: bool = True,
    num_threads: int = 0,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_probability: float = 0.5,
    field: str = "image",
) -> dict[str, ImagePipeline]:
    """DecodeRandomResizedCrop + horizontal flip (+ ImageNet normalization).

    Args:
        size: Output side length.
        seed: Seed of the crop draws (default: the loader's ``seed``).
        device: Where the images go (default: the loader's ``device``), as the original's
            ``ToTorchImage(device)``.
        dtype: Output dtype name or torch dtype.
        normalize: Normalize with ImageNet mean/std; ``False`` keeps pixel values (use
            ``dtype="uint8"`` for raw bytes).
        num_threads: Must be 0: decode threads are the loader's ``num_workers``.
        scale: RandomResizedCrop area range.
        ratio: RandomResizedCrop aspect-ratio range.
        flip_probability: Probability of a horizontal flip per sample (the original adds
            none; 0.5 is the usual ImageNet recipe).
        field: Image field of the dataset to read.

    Returns:
        ``{field: ImagePipeline}`` for :class:`slipstream.SlipstreamLoader`.

    Example:
        >>> pipes = supervised_train(224)
        >>> pipes["image"].crop.output_size
        (224, 224)
    """
    _no_threads(num_threads)
    return {
        field: ImagePipeline(
            crop=DecodeRandomResizedCrop(size, scale=scale, ratio=ratio, seed=seed),
            flip_probability=flip_probability,
            normalize=Normalize() if normalize else None,
            dtype=dtype,
            device=device,
        )
    }


def supervised_val(
    size: int = 224,
    device: str | None = None,
    dtype: Any = "float32",
    normalize: bool = True,
    num_threads: int = 0,
    *,
    resize_short: int = 256,
    field: str = "image",
) -> dict[str, ImagePipeline]:
    """Center crop of ``size / resize_short`` of the short side, resized to ``size``.

    This is the usual "resize 256, center crop 224" evaluation transform, done as
    one centered crop window decoded straight to ``size`` (FFCV's center-crop
    decoder does the same; ``DecodeResizeCrop`` is the same window within a pixel).

    Args:
        size: Output side length.
        device: Where the images go (default: the loader's ``device``).
        dtype: Output dtype name or torch dtype.
        normalize: Normalize with ImageNet mean/std on the output device.
        num_threads: Must be 0: decode threads are the loader's ``num_workers``.
        resize_short: Short side of the equivalent resize-then-crop.
        field: Image field of the dataset to read.

    Returns:
        ``{field: ImagePipeline}`` for :class:`slipstream.SlipstreamLoader`.
    """
    _no_threads(num_threads)
    return {
        field: ImagePipeline(
            crop=DecodeCenterCrop(size, crop_ratio=size / resize_short),
            flip_probability=0.0,
            normalize=Normalize() if normalize else None,
            dtype=dtype,
            device=device,
        )
    }


def make_train_pipeline(
    size: int = 224,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    normalize: bool = True,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    num_threads: int = 0,
    seed: int | None = None,
    dtype: Any = "float16",
) -> ImagePipeline:
    """One output's training pipeline (the original's pre-preset helper, its defaults).

    ``DecodeRandomResizedCrop(size, scale, ratio)`` then normalization, no flip, float16 as
    the original; use it as a ``pipelines`` value: ``{"image": make_train_pipeline()}``.
    :func:`supervised_train` is the preset.

    Args:
        size: Output side length.
        scale: RandomResizedCrop area range.
        ratio: RandomResizedCrop aspect-ratio range.
        normalize: Normalize with ``mean`` and ``std``.
        mean: Channel means in [0, 1] units.
        std: Channel standard deviations in [0, 1] units.
        num_threads: Must be 0: decode threads are the loader's ``num_workers``.
        seed: Seed of the crop draws (default: the loader's ``seed``).
        dtype: Output dtype name or torch dtype.

    Returns:
        The :class:`ImagePipeline`.
    """
    _no_threads(num_threads)
    return ImagePipeline(
        DecodeRandomResizedCrop(size, scale=scale, ratio=ratio, seed=seed),
        normalize=Normalize(tuple(mean), tuple(std)) if normalize else None,
        dtype=dtype,
    )


def make_val_pipeline(
    size: int = 224,
    normalize: bool = True,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    num_threads: int = 0,
    dtype: Any = "float16",
) -> ImagePipeline:
    """One output's validation pipeline (the original's pre-preset helper, its defaults).

    ``DecodeCenterCrop(size)`` (the centred ``size`` x ``size`` source pixels, not resized, as
    the original) then normalization, float16 as the original.

    Args:
        size: Output side length.
        normalize: Normalize with ``mean`` and ``std``.
        mean: Channel means in [0, 1] units.
        std: Channel standard deviations in [0, 1] units.
        num_threads: Must be 0: decode threads are the loader's ``num_workers``.
        dtype: Output dtype name or torch dtype.

    Returns:
        The :class:`ImagePipeline`.
    """
    _no_threads(num_threads)
    return ImagePipeline(
        DecodeCenterCrop(size),
        normalize=Normalize(tuple(mean), tuple(std)) if normalize else None,
        dtype=dtype,
    )
