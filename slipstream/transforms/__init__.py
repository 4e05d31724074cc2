"""Batch transforms that run on the output device.

Besides :class:`ImageOutput` (the loader's cast-and-normalize step), this is the original
slipstream's import path of its batch augmentations: every name below that the original
has is re-exported from :mod:`slipstream.augment` (one class per name, keyed per sample;
see :mod:`slipstream.augment.base` for the ``transform(batch, key)`` call and replay).
``ToGrayscaleTorch`` and ``RandomColorJitterHSV`` are the original's aliases of
``ToGrayscale`` and ``RandomColorJitter``.
"""

from slipstream.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BatchKey,
    CircularMask,
    ColorJitter,
    Compose,
    CutMix,
    FixedOpticalDistortion,
    LMSToKonio,
    LMSToMagno,
    LMSToParvo,
    Mixup,
    MultiView,
    Normalize,
    NormalizeLGN,
    RandomApply,
    RandomBackgroundBlend,
    RandomBrightness,
    RandomColorJitter,
    RandomColorJitterYIQ,
    RandomContrast,
    RandomEmbed,
    RandomErasing,
    RandomGaussianBlur,
    RandomGrayscale,
    RandomHorizontalFlip,
    RandomPatchShuffle,
    RandomRotate,
    RandomRotateObject,
    RandomSolarization,
    RandomZoom,
    RGBToLGN,
    RGBToMagno,
    SRGBToLMS,
    ToChannelsFirst,
    ToChannelsLast,
    ToDevice,
    ToFloat,
    ToFloatDiv,
    ToGrayscale,
    ToNumpy,
    ToTorchImage,
    mixup_target,
    one_hot,
)
from slipstream.transforms.output import ImageOutput

ToGrayscaleTorch = ToGrayscale
"""The original's second grayscale class (the same ITU-R 601-2 luma): an alias."""

RandomColorJitterHSV = RandomColorJitter
"""The original's alias of its HSV-path ``RandomColorJitter``."""

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BatchKey",
    "CircularMask",
    "ColorJitter",
    "Compose",
    "CutMix",
    "FixedOpticalDistortion",
    "ImageOutput",
    "LMSToKonio",
    "LMSToMagno",
    "LMSToParvo",
    "Mixup",
    "MultiView",
    "Normalize",
    "NormalizeLGN",
    "RGBToLGN",
    "RGBToMagno",
    "RandomApply",
    "RandomBackgroundBlend",
    "RandomBrightness",
    "RandomColorJitter",
    "RandomColorJitterHSV",
    "RandomColorJitterYIQ",
    "RandomContrast",
    "RandomEmbed",
    "RandomErasing",
    "RandomGaussianBlur",
    "RandomGrayscale",
    "RandomHorizontalFlip",
    "RandomPatchShuffle",
    "RandomRotate",
    "RandomRotateObject",
    "RandomSolarization",
    "RandomZoom",
    "SRGBToLMS",
    "ToChannelsFirst",
    "ToChannelsLast",
    "ToDevice",
    "ToFloat",
    "ToFloatDiv",
    "ToGrayscale",
    "ToGrayscaleTorch",
    "ToNumpy",
    "ToTorchImage",
    "mixup_target",
    "one_hot",
]
