"""Pipeline specs and presets consumed by :class:`slipstream.SlipstreamLoader`."""

from slipstream.pipelines.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    ImagePipeline,
    Normalize,
    RandomResizedCrop,
    ResizeShortCenterCrop,
    YokedCrop,
)
from slipstream.pipelines.ssl import byol, dino, ipcl, lejepa, multi_crop, simclr, yoke
from slipstream.pipelines.supervised import supervised_train, supervised_val

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
    "ImagePipeline",
    "Normalize",
    "RandomResizedCrop",
    "ResizeShortCenterCrop",
    "YokedCrop",
    "byol",
    "dino",
    "ipcl",
    "lejepa",
    "multi_crop",
    "simclr",
    "supervised_train",
    "supervised_val",
    "yoke",
]
