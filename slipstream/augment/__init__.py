"""Batch augmentations with per-sample keyed parameters and exact replay.

Transforms take float batches ``[B, C, H, W]`` with values in ``0..1`` on any device
(:class:`ToFloatImage` converts the loader's uint8 batches) and a :class:`BatchKey`
naming the samples (``seed``, ``epoch``, the batch's sample ids, ``view``)::

    key = BatchKey(seed=0, epoch=epoch, sample_ids=batch["index"])
    pipeline = Compose([ToFloatImage("cuda"), RandomHorizontalFlip(), RandomGrayscale()])
    images, params = pipeline(batch["image"], key, return_params=True)
    again = pipeline.apply(batch["image"], params)   # bit-identical replay

Every sample's params depend only on ``(seed, epoch, sample id, view, stream)``: not on
batch size, position, world size or resume point. See :mod:`slipstream.augment.base`.
"""

from slipstream.augment.base import (
    BatchAugment,
    BatchTransform,
    Compose,
    FixedTransform,
    MultiSample,
    MultiView,
    Params,
    RandomApply,
)
from slipstream.augment.blur import RandomGaussianBlur
from slipstream.augment.canvas import RandomBackgroundBlend, RandomEmbed
from slipstream.augment.color import (
    RandomBrightness,
    RandomContrast,
    RandomGrayscale,
    RandomSolarization,
    ToGrayscale,
)
from slipstream.augment.colorspace import (
    LMSToKonio,
    LMSToMagno,
    LMSToParvo,
    NormalizeLGN,
    RGBToLGN,
    RGBToMagno,
    SRGBToLMS,
)
from slipstream.augment.convert import IMAGENET_MEAN, IMAGENET_STD, Normalize, ToFloatImage
from slipstream.augment.geometric import (
    FixedOpticalDistortion,
    RandomHorizontalFlip,
    RandomRotate,
    RandomRotateObject,
    RandomZoom,
)
from slipstream.augment.jitter import ColorJitter, RandomColorJitter, RandomColorJitterYIQ
from slipstream.augment.keys import AugmentStream, BatchKey
from slipstream.augment.layout import (
    ToChannelsFirst,
    ToChannelsLast,
    ToDevice,
    ToFloat,
    ToFloatDiv,
    ToNumpy,
    ToTorchImage,
)
from slipstream.augment.masks import CircularMask, RandomErasing, RandomPatchShuffle
from slipstream.augment.mixing import CutMix, Mixup, mixup_target, one_hot

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "AugmentStream",
    "BatchAugment",
    "BatchKey",
    "BatchTransform",
    "CircularMask",
    "ColorJitter",
    "Compose",
    "CutMix",
    "FixedOpticalDistortion",
    "FixedTransform",
    "LMSToKonio",
    "LMSToMagno",
    "LMSToParvo",
    "Mixup",
    "MultiSample",
    "MultiView",
    "Normalize",
    "NormalizeLGN",
    "Params",
    "RGBToLGN",
    "RGBToMagno",
    "RandomApply",
    "RandomBackgroundBlend",
    "RandomBrightness",
    "RandomColorJitter",
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
    "ToFloatImage",
    "ToGrayscale",
    "ToNumpy",
    "ToTorchImage",
    "mixup_target",
    "one_hot",
]
