"""slipstream: a fast, frictionless image data loader for PyTorch training.

Example:
    >>> from slipstream import SlipstreamDataset, SlipstreamLoader  # doctest: +SKIP
    >>> from slipstream.pipelines import supervised_train  # doctest: +SKIP
    >>> ds = SlipstreamDataset("path/to/imagefolder")  # doctest: +SKIP
    >>> loader = SlipstreamLoader(ds, 256, supervised_train(224), seed=0)  # doctest: +SKIP
"""

from slipstream.cache.field_index import write_index
from slipstream.dataset import SlipstreamDataset, decode_image
from slipstream.errors import SlipstreamError
from slipstream.loader import SlipstreamLoader
from slipstream.paths import CACHE_DIR_ENV as CACHE_DIR_ENV_VAR
from slipstream.paths import default_cache_root as get_cache_base
from slipstream.pipelines import (
    CenterCrop,
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
    DirectRandomResizedCrop,
    MultiCropPipeline,
    MultiRandomResizedCrop,
    MultiRandomResizeShortCropLong,
    NamedCopies,
    RandomResizedCrop,
    RandomResizeShortCropLong,
    ResizeCrop,
    ipcl,
    lejepa,
    make_train_pipeline,
    make_val_pipeline,
    multicrop,
    simclr,
    supervised_train,
    supervised_val,
)
from slipstream.raw_loader import PrefetchingDataLoader
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
from slipstream.vis import show_batch, show_rgba

__version__ = "0.1.0"

__all__ = [
    "CACHE_DIR_ENV_VAR",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
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
    "DirectRandomResizedCrop",
    "MultiCropPipeline",
    "MultiRandomResizeShortCropLong",
    "MultiRandomResizedCrop",
    "NamedCopies",
    "Normalize",
    "PrefetchingDataLoader",
    "RandomBackgroundBlend",
    "RandomEmbed",
    "RandomResizeShortCropLong",
    "RandomResizedCrop",
    "ResizeCrop",
    "SlipstreamDataset",
    "SlipstreamError",
    "SlipstreamLoader",
    "ToDevice",
    "ToTorchImage",
    "__version__",
    "compute_normalization_stats",
    "decode_image",
    "estimate_rejection_fallback_rate",
    "get_cache_base",
    "ipcl",
    "lejepa",
    "make_train_pipeline",
    "make_val_pipeline",
    "multicrop",
    "show_batch",
    "show_rgba",
    "simclr",
    "supervised_train",
    "supervised_val",
    "sync_s3_dataset",
    "write_index",
]
