"""Full-resolution decode stages: every image at its own size, no crop, no resize.

A batch value of one of these outputs is a list of ``B`` per-sample tensors (images of
different sizes cannot be stacked):

======================  ==============  ===================================================
stage                   image_format    batch value (uint8, on the output device)
======================  ==============  ===================================================
:class:`DecodeOnly`     jpeg, yuv420    ``B`` RGB tensors ``[3, h, w]``
:class:`DecodeYUVFullRes` yuv420        ``B`` tensors ``[3, h, w]``: Y, U, V with U and V
                                        repeated 2x2 (nearest-neighbour upsampling)
:class:`DecodeYUVPlanes` yuv420         ``B`` tuples ``(Y [h, w], U [ch, cw], V [ch, cw])``
                                        with ``ch = ceil(h / 2)``, ``cw = ceil(w / 2)``
======================  ==============  ===================================================

``(h, w)`` is the stored image's size. They always run on slipstream's C++ kernel on the
native engine's threads (:mod:`slipstream.decode.full_resolution`), whatever ``backend`` and
``decode_device`` say: DALI's iterator only hands out stacked tensors. The YUV stages read
the YUV420 companion (``image_format="yuv420"``); asking for them on JPEG is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["DecodeOnly", "DecodeYUVFullRes", "DecodeYUVPlanes"]


class _FullResolution:
    """Shared part: the window is the whole image; ``ragged`` names the output form."""

    ragged: ClassVar[str] = ""

    @property
    def output_size(self) -> tuple[int, int]:
        """Full-resolution outputs have no one size."""
        raise TypeError(f"{type(self).__name__} keeps every image at its own size")

    def windows(
        self,
        heights: np.ndarray,
        widths: np.ndarray,
        sample_ids: np.ndarray,
        *,
        seed: int,
        epoch: int,
        view: int = 0,
    ) -> np.ndarray:
        """The whole image, ``int32 [B, 4]`` = ``[0, 0, h, w]``."""
        h = np.asarray(heights, dtype=np.int64).reshape(-1)
        w = np.broadcast_to(np.asarray(widths, dtype=np.int64).reshape(-1), h.shape)
        zeros = np.zeros_like(h)
        return np.stack([zeros, zeros, h, w], axis=1).astype(np.int32)


@dataclass(frozen=True)
class DecodeOnly(_FullResolution):
    """Decode every image to RGB at full resolution: a list of ``[3, h, w]`` uint8 tensors.

    JPEG items are decoded whole by the C++ kernel (libjpeg-turbo, the same decode as the
    crop path); YUV420 companion items are converted back to RGB by the same kernel.
    """

    ragged: ClassVar[str] = "rgb"


@dataclass(frozen=True)
class DecodeYUVFullRes(_FullResolution):
    """The YUV420 companion at full resolution: a list of ``[3, h, w]`` uint8 (Y, U, V) tensors.

    U and V are upsampled by repeating each chroma sample over its 2x2 block (nearest
    neighbour), as the original slipstream's ``DecodeYUVFullRes``. Needs
    ``image_format="yuv420"``.
    """

    ragged: ClassVar[str] = "yuv"


@dataclass(frozen=True)
class DecodeYUVPlanes(_FullResolution):
    """The stored YUV420 planes as they are: a list of ``(Y, U, V)`` uint8 tensor tuples.

    ``Y`` is ``[h, w]``; ``U`` and ``V`` are ``[ceil(h / 2), ceil(w / 2)]`` (the companion
    pads odd sides by repeating the last row or column before subsampling, so the chroma
    planes cover the whole image). Needs ``image_format="yuv420"``.
    """

    ragged: ClassVar[str] = "planes"
