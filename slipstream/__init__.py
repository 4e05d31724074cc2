"""slipstream: a fast, frictionless image data loader for PyTorch training.

Example:
    >>> from slipstream import SlipstreamDataset, SlipstreamLoader  # doctest: +SKIP
    >>> from slipstream.pipelines import supervised_train  # doctest: +SKIP
    >>> ds = SlipstreamDataset("path/to/imagefolder")  # doctest: +SKIP
    >>> loader = SlipstreamLoader(ds, 256, supervised_train(224), seed=0)  # doctest: +SKIP
"""

from slipstream.cache.field_index import write_index
from slipstream.dataset import SlipstreamDataset
from slipstream.errors import SlipstreamError
from slipstream.loader import SlipstreamLoader
from slipstream.raw_loader import PrefetchingDataLoader
from slipstream.pipelines import (
    DecodeCenterCrop,
    DecodeDirectRandomResizedCrop,
    DecodeMultiRandomResizedCrop,
    DecodeMultiRandomResizeShortCropLong,
    DecodeOnly,
    DecodeRandomResizedCrop,
    DecodeRandomResizeShortCropLong,
    DecodeResizeCrop,
    DecodeYUVFullRes,
    DecodeYUVPlanes,
    MultiCropPipeline,
    NamedCopies,
)
from slipstream.readers.s3_sync import sync_s3_dataset
from slipstream.sampling.rejection import estimate_rejection_fallback_rate
from slipstream.stats import compute_normalization_stats
from slipstream.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Compose,
    Normalize,
    RandomBackgroundBlend,
    RandomEmbed,
    ToDevice,
    ToTorchImage,
)

__version__ = "0.1.0"

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Compose",
    "DecodeCenterCrop",
    "DecodeDirectRandomResizedCrop",
    "DecodeMultiRandomResizeShortCropLong",
    "DecodeMultiRandomResizedCrop",
    "DecodeOnly",
    "DecodeRandomResizeShortCropLong",
    "DecodeRandomResizedCrop",
    "DecodeResizeCrop",
    "DecodeYUVFullRes",
    "DecodeYUVPlanes",
    "MultiCropPipeline",
    "NamedCopies",
    "Normalize",
    "RandomBackgroundBlend",
    "RandomEmbed",
    "PrefetchingDataLoader",
    "SlipstreamDataset",
    "SlipstreamError",
    "SlipstreamLoader",
    "ToDevice",
    "ToTorchImage",
    "__version__",
    "compute_normalization_stats",
    "estimate_rejection_fallback_rate",
    "sync_s3_dataset",
    "write_index",
]
