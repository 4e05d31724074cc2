"""The original slipstream's import path of its decode stages: ``slipstream.decoders``.

Code written for the original (``from slipstream.decoders import DecodeRandomResizedCrop``)
runs unchanged: every name here is the class or function of :mod:`slipstream.pipelines`
(or :mod:`slipstream.sampling`) under the same name, not a copy. The original's
deprecated short names (``RandomResizedCrop``, ``CenterCrop``, ...) warn when built
(see :mod:`slipstream.pipelines.renamed`).

Example:
    >>> from slipstream.decoders import DecodeCenterCrop
    >>> DecodeCenterCrop(224).output_size
    (224, 224)
"""

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
)
from slipstream.sampling.rejection import estimate_rejection_fallback_rate

__all__ = [
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
    "MultiCropPipeline",
    "MultiRandomResizeShortCropLong",
    "MultiRandomResizedCrop",
    "NamedCopies",
    "RandomResizeShortCropLong",
    "RandomResizedCrop",
    "ResizeCrop",
    "estimate_rejection_fallback_rate",
]
