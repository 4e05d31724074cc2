"""slipstream's building blocks for DALI pipeline definitions.

Call these inside a ``pipeline_def``:

* :func:`external_source` reads batches from a slipstream source (encoded bytes, crop
  windows, flips, labels, ...) with the settings the prefetcher's reused buffers need.
* :func:`decode_crop` decodes only each sample's crop window, straight to the output size:
  ``device="cpu"`` runs slipstream's fused operator (``fn.slipstream_decode_crop``,
  bit-identical to the native backend), on JPEG bytes or, with ``format="yuv420"``, on the
  items of a YUV420 companion (their true sizes given by ``image_size``), with
  ``format="raw"`` on raw RGB items, and with ``item_format`` on a batch mixing JPEG and raw
  items (a slip cache field with raw items);
  ``device="mixed"`` runs nvJPEG on the GPU (``fn.decoders.image_slice``, or
  ``image_crop`` with :class:`NvjpegOptions`, on the same windows, then an antialiased
  ``fn.resize``; JPEG only). With ``status=True`` (CPU) it
  also returns an int32 status per sample instead of raising for samples that fail.

Windows are int32 ``[y, x, h, w]`` in source pixels, the one interface between slipstream's
crop samplers and every decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slipstream.cache.format import IMAGE_FORMATS
from slipstream.dali.plugin import load_plugin
from slipstream.decode.errors import NoDecodeEngineError

DECODE_FORMATS = (*IMAGE_FORMATS, "raw")
"""What :func:`decode_crop`'s items may be: JPEG, YUV420 companion items, raw RGB pixels."""

DECODE_DEVICES = ("cpu", "mixed")
"""Where :func:`decode_crop` decodes: slipstream's CPU operator, or nvJPEG (``"mixed"``)."""


def external_source(source: Any, num_outputs: int | None = None, **kwargs: Any) -> Any:
    """``fn.external_source`` set up for slipstream's batch sources.

    Batches are whole (``batch=True``), read without a copy (``no_copy=True``: a source must
    keep a batch's buffers untouched until DALI returned that batch's outputs, which
    slipstream's slot ring does), and the source's end ends the epoch
    (``cycle="raise"``; DALI calls ``iter(source)`` again for the next epoch).

    Args:
        source: An iterable whose iterator yields one tuple of per-sample arrays (or lists
            of arrays) per batch, e.g. ``(jpegs, windows, flips, labels)``.
        num_outputs: Arrays per batch (default: ``len(source.output_names)``).
        **kwargs: Passed on to ``fn.external_source`` (e.g. ``layout``).

    Returns:
        A tuple of ``num_outputs`` DataNodes.

    Raises:
        ValueError: ``num_outputs`` is missing and the source has no ``output_names``.
    """
    from nvidia.dali import fn

    if num_outputs is None:
        names = getattr(source, "output_names", None)
        if names is None:
            raise ValueError("pass num_outputs, or a source with an output_names attribute")
        num_outputs = len(names)
    settings = {"batch": True, "no_copy": True, "cycle": "raise"}
    settings.update(kwargs)
    return fn.external_source(source=source, num_outputs=num_outputs, **settings)


def _size_pair(size: int | Sequence[int]) -> list[int]:
    pair = [int(size)] * 2 if isinstance(size, int) else [int(v) for v in size]
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"size must be an int or (height, width) with both >= 1, got {size!r}")
    return pair


def decode_crop(
    jpegs: Any,
    windows: Any,
    size: int | Sequence[int],
    flip: Any = None,
    device: str = "cpu",
    format: str = "jpeg",
    image_size: Any = None,
    status: bool = False,
    item_format: Any = None,
    dtype: str = "uint8",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    strict: bool = False,
) -> Any:
    """Fused JPEG (or YUV420) decode, crop, antialiased resize and flip, as a DALI graph node.

    Call inside a ``pipeline_def``.

    A sample that fails to decode (corrupt or truncated bytes, a window outside its image, a
    YUV420 item shorter than its ``image_size``) gets zero pixels on the CPU operator and
    never stops the other samples. By default the pipeline's ``run()`` then raises one error
    naming the failed sample indices. With ``status=True`` nothing is raised for a sample's
    data: a second DataNode holds an int32 scalar (shape ``[]``) per sample, ``0``
    (:data:`slipstream.native.STATUS_OK`) when it decoded, else the kernel's code of its
    first failed view (the other ``slipstream.native.STATUS_*`` constants), so the caller
    decides per sample (skip, refill, raise naming the sample) without parsing error text::

        images, status = decode_crop(jpegs, windows, size=224, flip=flips, status=True)

    Args:
        jpegs: DataNode of encoded items, uint8 1-D per sample: JPEG bytes, or YUV420 items
            (planar I420, see :mod:`slipstream.native.yuv420`) with ``format="yuv420"``.
        windows: DataNode of int32 crop windows ``[y, x, h, w]`` in source pixels, shape
            ``[4]`` per sample (CPU only: or ``[K, 4]`` for K views, giving
            ``[K, H, W, 3]``).
        size: Output ``(height, width)``, or one int for a square.
        flip: Optional DataNode (bool or integer, 1 value per sample, or K with ``[K, 4]``
            windows) or a constant; non-zero mirrors the output horizontally.
        device: ``"cpu"``: slipstream's operator, bit-identical to
            :func:`slipstream.native.decode_crop`, output on the CPU. ``"mixed"``: nvJPEG
            region decode + ``fn.resize`` (antialiased linear), output on the GPU; within
            a few levels of the CPU output (different resampling), needs a pipeline with a
            ``device_id``; JPEG only.
        format: ``"jpeg"``, ``"yuv420"`` (CPU only; bit-identical to
            :func:`slipstream.native.yuv420.decode_crop_views_yuv420`) or ``"raw"`` (raw
            RGB pixels, ``height x width x 3`` bytes: a slip cache's raw items; CPU only).
        image_size: ``format="yuv420"`` / ``"raw"`` and with ``item_format`` only, and
            required there (such an item has no header):
            each item's true ``(height, width)``, as a DataNode of 2 integers per sample
            (e.g. the companion's ``meta["height"]``, ``meta["width"]`` of the batch's
            samples, int32 ``[n, 2]`` through ``external_source``) or one constant pair.
        status: CPU only: also return the per-sample status (see above) instead of raising
            for samples that fail to decode.
        dtype: CPU only: ``"uint8"`` (default), or the fused float output ``"float32"``,
            ``"float16"``, ``"bfloat16"`` (as int16 holding the bits: DALI has no bfloat16
            type; ``tensor.view(torch.bfloat16)``), bit-identical to the native kernel's
            (:data:`slipstream.native.decode.PIXEL_DTYPES`).
        mean: CPU, float ``dtype`` only, with ``std``: per-channel mean of ``x / 255``; the
            output is ``(x / 255 - mean) / std`` as torch computes it in slipstream.
        std: Per-channel standard deviation of ``x / 255``, with ``mean``.
        item_format: CPU only: a DataNode of one integer per sample, its format code
            (0 JPEG, 1 YUV420, 2 raw RGB: ``slipstream.cache.format.ITEM_FORMAT_*``), for a
            batch mixing JPEG and raw items (a slip cache field of format ``"mixed"``);
            overrides ``format``; needs ``image_size``.
        strict: CPU only: a JPEG that decodes while libjpeg warns about corrupt data (the
            pixels are garbage) fails: zero pixels and status
            :data:`~slipstream.native.decode.STATUS_JPEG_WARNING` (an error without
            ``status``). Default False: its pixels are kept, and with ``status=True`` its
            status is still ``STATUS_JPEG_WARNING`` (not a failure: count or drop it).

    Returns:
        DataNode of ``[H, W, 3]`` (layout ``HWC``) per sample (``[K, H, W, 3]`` for
        ``[K, 4]`` windows) of ``dtype``; with ``status=True`` the pair
        ``(images, status)``, ``status`` a DataNode of int32 scalars.

    Raises:
        ValueError: For another device or format, a malformed size, ``image_size``
            missing with ``"yuv420"`` or given with ``"jpeg"``, or ``"yuv420"`` with
            ``device="mixed"`` (nvJPEG cannot read YUV420 items), or ``status=True``, a
            float ``dtype`` or ``mean``/``std`` with ``device="mixed"``, or an unknown
            ``dtype``, ``mean``/``std`` with uint8, one of them alone, or not 3 values each.
        RuntimeError: ``device="mixed"`` in a pipeline without a GPU (``device_id=None``).
    """
    if device not in DECODE_DEVICES:
        raise ValueError(f"device must be one of {DECODE_DEVICES}, got {device!r}")
    _check_format(format, image_size, device, item_format)
    if status and device != "cpu":
        raise ValueError(
            "decode_crop(status=True) needs device='cpu': slipstream's CPU operator returns a "
            "per-sample status; nvJPEG (device='mixed') raises for a bad sample instead"
        )
    if strict and device != "cpu":
        raise ValueError("decode_crop(strict=True) needs device='cpu' (nvJPEG reports no warnings)")
    pair = _size_pair(size)
    pixel_kwargs = _pixel_kwargs(dtype, mean, std, device)
    if device == "mixed":
        _require_gpu_pipeline()
        images = slice_decode_resize(jpegs, windows, pair, decoder_device="mixed")
        if flip is None:
            return images
        from nvidia.dali import fn

        return fn.flip(images, horizontal=flip, vertical=0)
    load_plugin()
    from nvidia.dali import fn

    kwargs: dict[str, Any] = {"size": pair, **pixel_kwargs}
    if flip is not None:
        kwargs["flip"] = int(flip) if isinstance(flip, (bool, int)) else flip
    if format != "jpeg":
        kwargs["format"] = format
    if format != "jpeg" or item_format is not None:
        kwargs["image_size"] = _constant_pair(image_size)
    if item_format is not None:
        kwargs["item_format"] = item_format
    if strict:
        kwargs["strict"] = True
    if status:
        images, codes = fn.slipstream_decode_crop(jpegs, windows, status=True, **kwargs)
        return images, codes
    return fn.slipstream_decode_crop(jpegs, windows, **kwargs)


_PIXEL_DTYPES = ("uint8", "float32", "float16", "bfloat16")


def _pixel_kwargs(
    dtype: str, mean: Sequence[float] | None, std: Sequence[float] | None, device: str
) -> dict[str, Any]:
    """The operator's ``dtype``/``mean``/``std`` arguments (none for the uint8 default)."""
    if dtype not in _PIXEL_DTYPES:
        raise ValueError(f"dtype must be one of {_PIXEL_DTYPES}, got {dtype!r}")
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if device != "cpu" and (dtype != "uint8" or mean is not None):
        raise ValueError(
            "decode_crop(dtype=..., mean=..., std=...) is the CPU operator's fused float "
            "output: with device='mixed' normalize with fn.crop_mirror_normalize"
        )
    if dtype == "uint8":
        if mean is not None:
            raise ValueError("dtype='uint8' cannot hold normalized values; use a float dtype")
        return {}
    kwargs: dict[str, Any] = {"dtype": dtype}
    if mean is not None and std is not None:
        m, s = [float(v) for v in mean], [float(v) for v in std]
        if len(m) != 3 or len(s) != 3:
            raise ValueError(f"mean and std need 3 values each, got {len(m)} and {len(s)}")
        kwargs.update(mean=m, std=s)
    return kwargs


def _check_format(format: str, image_size: Any, device: str, item_format: Any = None) -> None:
    """Reject a format the chosen decoder cannot read, or a missing or stray ``image_size``."""
    if format not in DECODE_FORMATS:
        raise ValueError(f"format must be one of {DECODE_FORMATS}, got {format!r}")
    if (format == "raw" or item_format is not None) and device == "mixed":
        raise NoDecodeEngineError(
            "decode_crop(format='raw' or item_format=...) cannot run on device='mixed': nvJPEG "
            "decodes JPEG only, and raw RGB items are pixels already; decode them with "
            "device='cpu' (slipstream's operator) or the native backend"
        )
    if item_format is not None:
        if image_size is None:
            raise ValueError(
                "decode_crop(item_format=...) needs image_size, each item's true (height, "
                "width): a raw RGB item has no header"
            )
        return
    if format == "raw" and image_size is None:
        raise ValueError(
            "decode_crop(format='raw') needs image_size, each item's true (height, width): a "
            "raw RGB item has no header"
        )
    if format == "yuv420" and device == "mixed":
        raise ValueError(
            "decode_crop(format='yuv420') cannot run on device='mixed': nvJPEG decodes JPEG "
            "only; decode YUV420 items with device='cpu' (slipstream's operator), or read the "
            "JPEG field (format='jpeg') with nvJPEG"
        )
    if format == "yuv420" and image_size is None:
        raise ValueError(
            "decode_crop(format='yuv420') needs image_size, each item's true (height, width): "
            "a YUV420 item has no header"
        )
    if format == "jpeg" and image_size is not None:
        raise ValueError(
            "image_size is for format='yuv420' / 'raw' or with item_format only (a JPEG has "
            "its size inside)"
        )


def _constant_pair(image_size: Any) -> Any:
    """A constant ``(height, width)`` as a list of ints; a DataNode passes through."""
    if isinstance(image_size, (list, tuple)) and all(isinstance(v, int) for v in image_size):
        return [int(v) for v in image_size]
    return image_size


def _require_gpu_pipeline() -> None:
    """Fail at graph definition, naming the fix, when the pipeline has no GPU."""
    from nvidia.dali import Pipeline

    pipeline = Pipeline.current()
    if pipeline is not None and pipeline.device_id is None:
        raise RuntimeError(
            "slipstream.dali.decode_crop(device='mixed') decodes with nvJPEG on a GPU, but "
            "this pipeline has device_id=None (no GPU); give the pipeline a device_id, or "
            "use device='cpu' (slipstream's CPU operator)"
        )


NVJPEG_VARIANTS = ("slice", "crop")
"""How the nvJPEG graph decodes a window: ``decoders.image_slice`` (anchor and shape tensor
inputs) or ``decoders.image_crop`` (per-sample ``crop_pos_x/y``, ``crop_w/h`` arguments)."""


@dataclass(frozen=True)
class NvjpegOptions:
    """The nvJPEG graph's variant and decoder settings (:func:`slice_decode_resize`).

    Which variant is fastest is measured by ``benchmarks/bench_dali_gpu.py`` on a GPU; until
    then the default stays ``"slice"`` (the graph measured so far).

    Attributes:
        variant: One of :data:`NVJPEG_VARIANTS`.
        hw_decoder_load: Share of the images sent to the hardware JPEG decoder (A100, H100,
            H200), or None for DALI's default (0.65).
        preallocate_width_hint: Largest image width expected (preallocates the hardware
            decoder's memory; 0: none).
        preallocate_height_hint: Largest image height expected (0: none).
        fancy_upsampling: Upsample chroma as libjpeg-turbo does (``jpeg_fancy_upsampling``),
            closer to the C++ kernel's pixels.
    """

    variant: str = "slice"
    hw_decoder_load: float | None = None
    preallocate_width_hint: int = 0
    preallocate_height_hint: int = 0
    fancy_upsampling: bool = False

    def __post_init__(self) -> None:
        """Check the values."""
        if self.variant not in NVJPEG_VARIANTS:
            raise ValueError(f"variant must be one of {NVJPEG_VARIANTS}, got {self.variant!r}")
        if self.hw_decoder_load is not None and not 0.0 <= self.hw_decoder_load <= 1.0:
            raise ValueError(f"hw_decoder_load must be in [0, 1], got {self.hw_decoder_load}")
        if min(self.preallocate_width_hint, self.preallocate_height_hint) < 0:
            raise ValueError("preallocate hints must be >= 0")

    def decoder_kwargs(self, decoder_device: str) -> dict[str, Any]:
        """Keyword arguments of the DALI decoder (the hardware ones only for ``"mixed"``)."""
        kwargs: dict[str, Any] = {}
        if self.fancy_upsampling:
            kwargs["jpeg_fancy_upsampling"] = True
        if decoder_device != "mixed":
            return kwargs
        if self.hw_decoder_load is not None:
            kwargs["hw_decoder_load"] = float(self.hw_decoder_load)
        if self.preallocate_width_hint or self.preallocate_height_hint:
            kwargs["preallocate_width_hint"] = int(self.preallocate_width_hint)
            kwargs["preallocate_height_hint"] = int(self.preallocate_height_hint)
        return kwargs


def slice_decode_resize(
    jpegs: Any,
    windows: Any,
    size: Sequence[int],
    decoder_device: str = "mixed",
    nvjpeg: NvjpegOptions | None = None,
) -> Any:
    """Region decode with DALI's own decoder, then an antialiased resize to ``size``.

    The nvJPEG half of :func:`decode_crop` (``decoder_device="mixed"``); with
    ``decoder_device="cpu"`` the same graph runs on DALI's CPU decoder, which is how the
    window conversion is tested on machines without a GPU.

    Args:
        jpegs: DataNode of encoded JPEG bytes.
        windows: DataNode of int32 ``[y, x, h, w]`` windows, shape ``[4]`` per sample.
        size: Output ``(height, width)``.
        decoder_device: ``"mixed"`` (nvJPEG, GPU output) or ``"cpu"``.
        nvjpeg: The decoder variant and settings (default :class:`NvjpegOptions`).

    Returns:
        DataNode of uint8 ``[H, W, 3]`` per sample on the decoder's output device.
    """
    from nvidia.dali import fn, types

    nvjpeg = nvjpeg or NvjpegOptions()
    kwargs = nvjpeg.decoder_kwargs(decoder_device)
    if nvjpeg.variant == "crop":
        images = fn.decoders.image_crop(
            jpegs,
            device=decoder_device,
            output_type=types.RGB,
            **crop_window_arguments(jpegs, windows),
            **kwargs,
        )
    else:
        # image_slice takes anchor and shape in the order of axis_names: (x, y) and (w, h).
        anchor = fn.stack(windows[1], windows[0])
        shape = fn.stack(windows[3], windows[2])
        images = fn.decoders.image_slice(
            jpegs,
            anchor,
            shape,
            device=decoder_device,
            output_type=types.RGB,
            normalized_anchor=False,
            normalized_shape=False,
            axis_names="WH",
            **kwargs,
        )
    height, width = (int(v) for v in size)
    return fn.resize(images, resize_y=height, resize_x=width, antialias=True)


def crop_window_arguments(jpegs: Any, windows: Any) -> dict[str, Any]:
    """``decoders.image_crop``'s per-sample arguments for int32 ``[y, x, h, w]`` windows.

    DALI places a crop at ``round(crop_pos_x * (W - crop_w))`` (``rounding="round"``), so
    ``crop_pos_x = x / (W - w)`` (0 where the window spans the width) lands on ``x`` exactly:
    the float32 quotient is off by far less than half a pixel for any image side below 2^20.
    ``W`` and ``H`` come from the JPEG headers (``peek_image_shape``, the shape the decoder
    sees, EXIF orientation included as the decoder applies it).

    Returns:
        ``crop_pos_x``, ``crop_pos_y``, ``crop_w``, ``crop_h`` DataNodes (float32, CPU).
    """
    from nvidia.dali import fn, types
    from nvidia.dali import math as dmath

    shape = fn.peek_image_shape(jpegs, dtype=types.INT32)  # [H, W, C]
    y, x, h, w = (windows[i] for i in range(4))
    free_y = dmath.max(shape[0] - h, 1)  # x = 0 where the window spans the side
    free_x = dmath.max(shape[1] - w, 1)
    return {
        "crop_pos_x": fn.cast(x, dtype=types.FLOAT) / fn.cast(free_x, dtype=types.FLOAT),
        "crop_pos_y": fn.cast(y, dtype=types.FLOAT) / fn.cast(free_y, dtype=types.FLOAT),
        "crop_w": fn.cast(w, dtype=types.FLOAT),
        "crop_h": fn.cast(h, dtype=types.FLOAT),
        "rounding": "round",
    }
