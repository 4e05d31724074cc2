"""Pipeline specs, decode stages and presets consumed by :class:`slipstream.SlipstreamLoader`.

Decode stages by the original slipstream's names: :class:`DecodeRandomResizedCrop`,
:class:`DecodeDirectRandomResizedCrop`, :class:`DecodeCenterCrop`, :class:`DecodeResizeCrop`,
:class:`DecodeRandomResizeShortCropLong`, the multi-crop stages
(:class:`DecodeMultiRandomResizedCrop`, ...) and the full-resolution outputs
(:class:`DecodeOnly`, :class:`DecodeYUVFullRes`, :class:`DecodeYUVPlanes`). Old names
(``RandomResizedCrop``, ``ResizeShortCenterCrop``, ``multi_crop``, ...) still work through
:mod:`slipstream.pipelines.renamed` and warn.
"""

from slipstream.pipelines.full_resolution import DecodeOnly, DecodeYUVFullRes, DecodeYUVPlanes
from slipstream.pipelines.ibot import TopLeftPixels, ibot
from slipstream.pipelines.multicrop import (
    DecodeMultiRandomResizedCrop,
    DecodeMultiRandomResizeShortCropLong,
    MultiCropPipeline,
    NamedCopies,
)
from slipstream.pipelines.renamed import (
    CenterCrop,
    DirectRandomResizedCrop,
    MultiRandomResizedCrop,
    MultiRandomResizeShortCropLong,
    RandomResizedCrop,
    RandomResizeShortCropLong,
    ResizeCrop,
    ResizeShortCenterCrop,
    multi_crop,
)
from slipstream.pipelines.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DecodeCenterCrop,
    DecodeDirectRandomResizedCrop,
    DecodeRandomResizedCrop,
    DecodeRandomResizeShortCropLong,
    DecodeResizeCrop,
    ImagePipeline,
    Normalize,
    YokedCrop,
)
from slipstream.pipelines.ssl import byol, dino, ipcl, lejepa, multicrop, simclr, yoke
from slipstream.pipelines.supervised import (
    make_train_pipeline,
    make_val_pipeline,
    supervised_train,
    supervised_val,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
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
    "ImagePipeline",
    "MultiCropPipeline",
    "MultiRandomResizeShortCropLong",
    "MultiRandomResizedCrop",
    "NamedCopies",
    "Normalize",
    "RandomResizeShortCropLong",
    "RandomResizedCrop",
    "ResizeCrop",
    "ResizeShortCenterCrop",
    "TopLeftPixels",
    "YokedCrop",
    "byol",
    "dino",
    "ibot",
    "ipcl",
    "lejepa",
    "make_train_pipeline",
    "make_val_pipeline",
    "multi_crop",
    "multicrop",
    "simclr",
    "supervised_train",
    "supervised_val",
    "yoke",
]
