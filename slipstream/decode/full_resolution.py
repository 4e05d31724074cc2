"""Full-resolution outputs (``DecodeOnly``, ``DecodeYUVFullRes``, ``DecodeYUVPlanes``).

Each sample keeps its own size, so a batch value is a list of per-sample tensors: the
native engine decodes them here, on a thread pool, with slipstream's C++ kernel (a whole
JPEG decode, or the YUV420 item converted back to RGB) or, for the YUV forms, by reading
the stored planes of the companion item (:mod:`slipstream.native.yuv420` layout)::

    item (I420, H = h + h % 2, W = w + w % 2):  Y [H, W] | U [H/2, W/2] | V [H/2, W/2]

    "rgb"     JPEG: decode_full(item) | YUV420: yuv420_to_rgb(item, h, w)  -> [3, h, w]
    "yuv"     stack(Y[:h, :w], U and V repeated 2x2 and cut to [h, w])      -> [3, h, w]
    "planes"  (Y[:h, :w], U, V)                                           -> tuple

The pipeline stage names the form in its ``ragged`` attribute; this module never imports
the pipeline classes. A sample that fails is reported and its value is zeros of its
stored size.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from slipstream.decode.errors import NoDecodeEngineError
from slipstream.native.decode import STATUS_DECODE_ERROR, DecodeError, decode_full
from slipstream.native.yuv420 import yuv420_size, yuv420_to_rgb

if TYPE_CHECKING:
    from slipstream.pipelines.spec import ImagePipeline
    from slipstream.prefetch.batch import EncodedImages

__all__ = [
    "RAGGED_FORMS",
    "FullResolutionDecoder",
    "check_ragged",
    "ragged_form",
    "yuv420_planes",
]

RAGGED_FORMS = {"rgb": ("jpeg", "yuv420"), "yuv": ("yuv420",), "planes": ("yuv420",)}
"""Output form -> the image formats it can be made from."""


def ragged_form(pipeline: ImagePipeline) -> str | None:
    """The full-resolution form of a pipeline's output, or None for a cropped output."""
    return getattr(pipeline.crop, "ragged", None) or None


def check_ragged(pipelines: dict[str, ImagePipeline], image_format: str) -> dict[str, str]:
    """Output name -> form of the full-resolution outputs; errors where impossible.

    Raises:
        NoDecodeEngineError: A YUV form asked of JPEG items (the message says what to pass).
    """
    forms = {}
    for name, pipeline in pipelines.items():
        form = ragged_form(pipeline)
        if form is None:
            continue
        if image_format not in RAGGED_FORMS[form]:
            raise NoDecodeEngineError(
                f"output {name!r}: {type(pipeline.crop).__name__} reads the YUV420 companion; "
                "pass image_format='yuv420' to SlipstreamLoader (it is built on first use)"
            )
        forms[name] = form
    return forms


def yuv420_planes(item: np.ndarray, height: int, width: int) -> tuple[np.ndarray, ...]:
    """Views ``(Y [h, w], U [ch, cw], V [ch, cw])`` of one I420 item of true size ``h x w``.

    Raises:
        DecodeError: The item is shorter than its size needs.
    """
    need = yuv420_size(height, width)
    if item.size < need:
        raise DecodeError([(0, f"YUV420 item is {item.size} bytes, {height}x{width} needs {need}")])
    H, W = height + height % 2, width + width % 2
    luma = item[: H * W].reshape(H, W)[:height, :width]
    chroma = (H // 2) * (W // 2)
    u = item[H * W : H * W + chroma].reshape(H // 2, W // 2)
    v = item[H * W + chroma : H * W + 2 * chroma].reshape(H // 2, W // 2)
    return luma, u, v


def _one(form: str, image_format: str, item: np.ndarray, height: int, width: int) -> Any:
    if form == "rgb" and image_format == "raw":  # raw RGB item: the pixels themselves
        return torch.from_numpy(np.array(item).reshape(height, width, 3)).permute(2, 0, 1)
    if form == "rgb":
        rgb = decode_full(item) if image_format == "jpeg" else yuv420_to_rgb(item, height, width)
        return torch.from_numpy(rgb).permute(2, 0, 1)
    luma, u, v = yuv420_planes(item, height, width)
    if form == "planes":  # copies: the gather slot is reused for the next batch
        return tuple(torch.from_numpy(np.array(p)) for p in (luma, u, v))
    up = [np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:height, :width] for c in (u, v)]
    return torch.from_numpy(np.stack([luma, *up]))


def _fill(form: str, height: int, width: int) -> Any:
    if form == "planes":
        ch, cw = (height + 1) // 2, (width + 1) // 2
        return tuple(
            torch.zeros(s, dtype=torch.uint8) for s in ((height, width), (ch, cw), (ch, cw))
        )
    return torch.zeros((3, height, width), dtype=torch.uint8)


class FullResolutionDecoder:
    """Decodes the full-resolution outputs of a batch on its own thread pool.

    Args:
        num_threads: Threads (the C++ decodes release the GIL).
    """

    def __init__(self, num_threads: int) -> None:
        """Start the pool."""
        self._pool = ThreadPoolExecutor(max(1, int(num_threads)), "slipstream-fullres")

    def decode(
        self, images: EncodedImages, count: int, form: str
    ) -> tuple[list[Any], list[tuple[int, str]]]:
        """One output's values for the first ``count`` items, and the failures.

        Returns:
            ``(values, failures)``: a value per sample (a ``[3, h, w]`` uint8 tensor, or a
            ``(Y, U, V)`` tuple for ``"planes"``) and ``(position, message)`` per failed
            sample (its value is zeros).
        """
        items = images.items(count)
        heights = images.shapes[:count, 0].astype(np.int64).tolist()
        widths = images.shapes[:count, 1].astype(np.int64).tolist()
        formats = [images.format] * count
        if images.formats is not None:  # per item: JPEG (0) or raw RGB (2)
            formats = ["raw" if code == 2 else "jpeg" for code in images.formats[:count].tolist()]

        def run(i: int) -> tuple[Any, str | None]:
            try:
                return _one(form, formats[i], items[i], heights[i], widths[i]), None
            except DecodeError as error:
                return _fill(form, heights[i], widths[i]), str(error)

        results = list(self._pool.map(run, range(count)))
        failures = [(i, message) for i, (_, message) in enumerate(results) if message]
        return [value for value, _ in results], failures

    def close(self) -> None:
        """Stop the pool's threads."""
        self._pool.shutdown(wait=False)


FAILURE_CODE = STATUS_DECODE_ERROR
"""The status code a full-resolution failure is reported with."""
