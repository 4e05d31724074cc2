"""Old names of the decode stages and presets: each warns (FutureWarning) and names the new one.

The names the original slipstream's users know are the names (``DecodeRandomResizedCrop``,
``multicrop``, ...). This module alone keeps the others working for now:

==============================  ===================================================
old name                        new name
==============================  ===================================================
``RandomResizedCrop``           :class:`~slipstream.pipelines.DecodeRandomResizedCrop`
``DirectRandomResizedCrop``     :class:`~slipstream.pipelines.DecodeDirectRandomResizedCrop`
``CenterCrop``                  :class:`~slipstream.pipelines.DecodeCenterCrop`
``ResizeCrop``                  :class:`~slipstream.pipelines.DecodeResizeCrop`
``ResizeShortCenterCrop``       ``DecodeResizeCrop(resize_size=resize_short, crop_size=size)``
``RandomResizeShortCropLong``   :class:`~slipstream.pipelines.DecodeRandomResizeShortCropLong`
``MultiRandomResizedCrop``      :class:`~slipstream.pipelines.DecodeMultiRandomResizedCrop`
``MultiRandomResizeShortCropLong``  ``DecodeMultiRandomResizeShortCropLong``
``multi_crop``                  :func:`~slipstream.pipelines.multicrop`
==============================  ===================================================

The classes are subclasses of the new ones (``isinstance`` checks and the loader accept
them); they warn when built. ``CenterCrop(size)`` is the original's alias of
``DecodeCenterCrop(size)``: the unresized centered window (this package's earlier
``CenterCrop`` took FFCV's ``crop_ratio=224/256`` window by default: pass it explicitly).
"""

from __future__ import annotations

import warnings
from typing import Any

from slipstream.pipelines.multicrop import (
    DecodeMultiRandomResizedCrop,
    DecodeMultiRandomResizeShortCropLong,
)
from slipstream.pipelines.spec import (
    DecodeCenterCrop,
    DecodeDirectRandomResizedCrop,
    DecodeRandomResizedCrop,
    DecodeRandomResizeShortCropLong,
    DecodeResizeCrop,
    ImagePipeline,
)
from slipstream.pipelines.ssl import multicrop

__all__ = [
    "RENAMED",
    "CenterCrop",
    "DirectRandomResizedCrop",
    "MultiRandomResizeShortCropLong",
    "MultiRandomResizedCrop",
    "RandomResizeShortCropLong",
    "RandomResizedCrop",
    "ResizeCrop",
    "ResizeShortCenterCrop",
    "multi_crop",
]

RENAMED = {
    "RandomResizedCrop": "DecodeRandomResizedCrop",
    "DirectRandomResizedCrop": "DecodeDirectRandomResizedCrop",
    "CenterCrop": "DecodeCenterCrop",
    "ResizeCrop": "DecodeResizeCrop",
    "ResizeShortCenterCrop": "DecodeResizeCrop",
    "RandomResizeShortCropLong": "DecodeRandomResizeShortCropLong",
    "MultiRandomResizedCrop": "DecodeMultiRandomResizedCrop",
    "MultiRandomResizeShortCropLong": "DecodeMultiRandomResizeShortCropLong",
    "multi_crop": "multicrop",
}
"""Old name -> new name."""


def _warn(old: str, how: str = "", stacklevel: int = 4) -> None:
    warnings.warn(
        f"slipstream.pipelines.{old} is renamed {RENAMED[old]}{how}; the old name will go",
        FutureWarning,
        stacklevel=stacklevel,
    )


class _Renamed:
    """Mixin: warn naming the new class when an instance is built."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _warn(type(self).__name__, stacklevel=3)
        super().__init__(*args, **kwargs)


class RandomResizedCrop(_Renamed, DecodeRandomResizedCrop):
    """Renamed :class:`~slipstream.pipelines.DecodeRandomResizedCrop` (warns)."""


class DirectRandomResizedCrop(_Renamed, DecodeDirectRandomResizedCrop):
    """Renamed :class:`~slipstream.pipelines.DecodeDirectRandomResizedCrop` (warns)."""


class CenterCrop(_Renamed, DecodeCenterCrop):
    """Renamed :class:`~slipstream.pipelines.DecodeCenterCrop` (warns)."""


class ResizeCrop(_Renamed, DecodeResizeCrop):
    """Renamed :class:`~slipstream.pipelines.DecodeResizeCrop` (warns)."""


class RandomResizeShortCropLong(_Renamed, DecodeRandomResizeShortCropLong):
    """Renamed :class:`~slipstream.pipelines.DecodeRandomResizeShortCropLong` (warns)."""


class MultiRandomResizedCrop(_Renamed, DecodeMultiRandomResizedCrop):
    """Renamed :class:`~slipstream.pipelines.DecodeMultiRandomResizedCrop` (warns)."""


class MultiRandomResizeShortCropLong(_Renamed, DecodeMultiRandomResizeShortCropLong):
    """Renamed :class:`~slipstream.pipelines.DecodeMultiRandomResizeShortCropLong` (warns)."""


def ResizeShortCenterCrop(  # noqa: N802 - the old class name
    size: int | tuple[int, int], resize_short: int = 256
) -> DecodeResizeCrop:
    """Renamed: ``DecodeResizeCrop(resize_size=resize_short, crop_size=size)`` (warns)."""
    _warn("ResizeShortCenterCrop", "(resize_size=resize_short, crop_size=size)", 3)
    return DecodeResizeCrop(resize_size=resize_short, crop_size=size)


def multi_crop(
    *,
    global_size: int,
    local_size: int,
    num_global: int,
    num_local: int,
    global_scale: tuple[float, float],
    local_scale: tuple[float, float],
    **options: Any,
) -> dict[str, ImagePipeline]:
    """Renamed :func:`~slipstream.pipelines.multicrop` (warns).

    ``num_global`` is ``global_crops``, ``num_local`` ``local_crops``; the crops keep
    torchvision's ratio ``(3/4, 4/3)`` and no augmentation, as before (``multicrop``'s
    defaults are the original's: square crops, its color chain).
    """
    _warn("multi_crop", "(global_crops=num_global, local_crops=num_local, ...)", 3)
    options.setdefault("ratio", (3 / 4, 4 / 3))
    options.setdefault("augment", False)
    return multicrop(
        global_crops=num_global,
        local_crops=num_local,
        global_size=global_size,
        local_size=local_size,
        global_scale=global_scale,
        local_scale=local_scale,
        **options,
    )
