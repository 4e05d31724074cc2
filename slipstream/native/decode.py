"""Python face of the C++ decode kernels (the only module that imports ``slipstream._core``).

Every function takes encoded JPEG bytes (``bytes``, ``bytearray``, ``memoryview`` or a uint8
numpy array, including memmaps, without copying) and returns or fills uint8 HWC RGB arrays
(the batch method also normalized float32 / float16 / bfloat16 ones: :data:`PIXEL_DTYPES`).
Crop windows are int32 ``[y, x, h, w]`` in source-pixel coordinates; the fused kernel decodes
with libjpeg-turbo DCT scaling and region-of-interest decoding, then applies a
Pillow-compatible antialiased bilinear resize of the exact crop box.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

try:
    from slipstream import _core
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        "slipstream's compiled core (slipstream._core) is missing or failed to load: "
        f"{exc}. Reinstall with `pip install --no-build-isolation -e .` after installing "
        "libjpeg-turbo development files (Debian/Ubuntu `apt-get install libjpeg-dev`, "
        "Fedora `dnf install libjpeg-turbo-devel`, conda `conda install libjpeg-turbo`)."
    ) from exc

__all__ = [
    "IMAGE_FORMATS",
    "PIXEL_DTYPES",
    "STATUS_DECODE_ERROR",
    "STATUS_INTERNAL_ERROR",
    "STATUS_INVALID_ARGUMENT",
    "STATUS_JPEG_WARNING",
    "STATUS_OK",
    "STATUS_UNSUPPORTED",
    "DecodeError",
    "DecodeFailure",
    "JpegHeader",
    "NativeDecoder",
    "choose_scale",
    "decode_crop",
    "decode_crop_views",
    "decode_full",
    "pixel_lut",
    "read_jpeg_header",
]

BytesLike = bytes | bytearray | memoryview | np.ndarray

IMAGE_FORMATS = {
    "jpeg": int(_core.FORMAT_JPEG),
    "yuv420": int(_core.FORMAT_YUV420),
    "raw": int(_core.FORMAT_RGB),  # raw RGB pixels, height x width x 3 (slip cache raw items)
}
"""Storage format name -> the kernel's format code (the one JPEG / YUV420 dispatch value)."""

PIXEL_DTYPES = {
    "uint8": int(_core.PIXEL_UINT8),
    "float32": int(_core.PIXEL_FLOAT32),
    "float16": int(_core.PIXEL_FLOAT16),
    "bfloat16": int(_core.PIXEL_BFLOAT16),
}
"""Output dtype name -> the kernel's pixel type code.

Float outputs map each byte ``v`` of the 8-bit resize result, per channel ``c``, to
``float32(v) * (1 / (255 * std[c])) - mean[c] / std[c]`` (float32, multiply and subtract each
rounded: exactly torch's ``x.float().mul_(scale).sub_(shift)``, i.e. ``(x / 255 - mean) /
std``), then round to nearest even for float16 / bfloat16 (torch's cast). Without mean and std
it is a plain cast of ``v``. numpy has no bfloat16: such outputs are 2-byte integer arrays
holding the bits (``torch.Tensor.view(torch.int16).numpy()`` of a bfloat16 tensor).
"""

# Per-sample status codes of the kernels (csrc/status.h ``StatusCode``): what the batch
# methods of :class:`NativeDecoder` report per failed sample, and what the DALI operator's
# ``status`` output holds per sample.
STATUS_OK: int = int(_core.OK)
"""The sample decoded."""
STATUS_INVALID_ARGUMENT: int = int(_core.INVALID_ARGUMENT)
"""A bad window, size or byte range (e.g. a window outside the image, a YUV420 item shorter
than its recorded size)."""
STATUS_DECODE_ERROR: int = int(_core.DECODE_ERROR)
"""Corrupt, truncated or non-JPEG data."""
STATUS_UNSUPPORTED: int = int(_core.UNSUPPORTED)
"""A valid JPEG the kernel cannot turn into RGB (e.g. an unknown colorspace)."""
STATUS_INTERNAL_ERROR: int = int(_core.INTERNAL_ERROR)
"""Out of memory or another unexpected condition."""
STATUS_JPEG_WARNING: int = int(_core.JPEG_WARNING)
"""Decoded, but libjpeg warned about corrupt data (e.g. "Corrupt JPEG data: bad Huffman code"):
the pixels are kept (often garbage); not a failure unless the caller is strict
(``SlipstreamLoader(strict=True)``)."""

DecodeFailure = tuple[int, int, str]
"""One failed sample of a batch: ``(batch position, status code, message)``."""


class DecodeError(ValueError):
    """An image (or samples of a batch) failed to decode.

    Raised by the single-image functions (:func:`decode_crop`, :func:`decode_full`, ...).
    The batch methods of :class:`NativeDecoder` return per-sample failures instead; a caller
    may raise this with them.

    Attributes:
        failures: ``(position, message)`` for every failed sample (position 0 for a single
            image).
    """

    def __init__(self, failures: list[tuple[int, str]]) -> None:
        """Build the message from the failures."""
        self.failures = list(failures)
        if len(self.failures) == 1:
            pos, msg = self.failures[0]
            text = f"sample {pos}: {msg}"
        else:
            shown = "; ".join(f"sample {p}: {m}" for p, m in self.failures[:8])
            more = len(self.failures) - 8
            text = f"{len(self.failures)} samples failed to decode: {shown}"
            if more > 0:
                text += f"; ... and {more} more"
        super().__init__(text)


@dataclass(frozen=True)
class JpegHeader:
    """What a JPEG header says about the image.

    Attributes:
        height: Image height in pixels.
        width: Image width in pixels.
        components: Number of color components stored (1 gray, 3 YCbCr/RGB, 4 CMYK/YCCK).
        colorspace: One of ``"GRAY"``, ``"RGB"``, ``"YCbCr"``, ``"CMYK"``, ``"YCCK"``,
            ``"UNKNOWN"``.
        progressive: Whether the file is progressive.
    """

    height: int
    width: int
    components: int
    colorspace: str
    progressive: bool


def _as_u8(data: BytesLike) -> np.ndarray:
    """View bytes-like data as a contiguous 1-D uint8 array (no copy when already one)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ValueError(f"data must be uint8, got {data.dtype}")
        if not data.flags.c_contiguous:
            data = np.ascontiguousarray(data)
        return data.reshape(-1)
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    raise TypeError(f"expected bytes or a uint8 numpy array, got {type(data).__name__}")


def read_jpeg_header(data: BytesLike) -> JpegHeader:
    """Parse only the JPEG header (fast: no entropy decoding).

    Args:
        data: Encoded JPEG bytes.

    Returns:
        The image's header information.

    Raises:
        DecodeError: If the data is not a readable JPEG header.
    """
    try:
        h, w, c, cs, prog = _core.read_jpeg_header(_as_u8(data))
    except _core.CoreError as exc:
        raise DecodeError([(0, str(exc))]) from None
    return JpegHeader(int(h), int(w), int(c), str(cs), bool(prog))


def decode_full(data: BytesLike) -> np.ndarray:
    """Decode a whole JPEG to RGB (gray and CMYK converted as Pillow's ``convert("RGB")``).

    Args:
        data: Encoded JPEG bytes.

    Returns:
        uint8 array ``[H, W, 3]``.

    Raises:
        DecodeError: If the data is corrupt, truncated or not a JPEG.
    """
    try:
        return _core.decode_full(_as_u8(data), 8)
    except _core.CoreError as exc:
        raise DecodeError([(0, str(exc))]) from None


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
        raise ValueError(f"size must be (height, width) with both >= 1, got {size!r}")
    return int(size[0]), int(size[1])


def decode_crop(
    data: BytesLike,
    window: Sequence[int] | np.ndarray,
    size: tuple[int, int],
    flip: bool = False,
) -> np.ndarray:
    """Fused decode, crop, antialiased resize and optional horizontal flip of one image.

    Args:
        data: Encoded JPEG bytes.
        window: Crop ``[y, x, h, w]`` in source pixels (must lie inside the image).
        size: Output ``(height, width)``.
        flip: Mirror the output horizontally.

    Returns:
        uint8 array ``[height, width, 3]``.

    Raises:
        DecodeError: If decoding fails or the window is outside the image.
        ValueError: If the window or size is malformed.
    """
    win = np.asarray(window)
    if win.size != 4:
        raise ValueError(f"window must have 4 values [y, x, h, w], got {window!r}")
    return _decode_views(data, win.reshape(1, 4), size, [bool(flip)], "jpeg")[0]


def decode_crop_views(
    data: BytesLike,
    windows: Sequence[Sequence[int]] | np.ndarray,
    size: tuple[int, int],
    flips: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """K crops of one image from a single decode (multi-crop, e.g. 2 global + 6 local views).

    Views are grouped by the DCT scale each needs; the region covering a group's windows is
    entropy-decoded once at that scale and each view is resized (and flipped) from it, so
    every view is bit-identical to :func:`decode_crop` of its window, at the cost of one
    entropy decode per distinct scale instead of one per view.

    Args:
        data: Encoded JPEG bytes.
        windows: ``[K, 4]`` crops ``[y, x, h, w]`` in source pixels.
        size: Output ``(height, width)`` of every view.
        flips: ``K`` flags; true mirrors that view horizontally (default: none).

    Returns:
        uint8 array ``[K, height, width, 3]``.

    Raises:
        DecodeError: If decoding fails or a window is outside the image (the message
            names the view).
        ValueError: If the windows, flips or size are malformed.
    """
    return _decode_views(data, windows, size, flips, "jpeg")


def _decode_views(
    data: BytesLike,
    windows: Sequence[Sequence[int]] | np.ndarray,
    size: tuple[int, int],
    flips: Sequence[bool] | np.ndarray | None,
    image_format: str,
    height: int = 0,
    width: int = 0,
) -> np.ndarray:
    """The one single-image entry (``_core.decode_views``) behind every public function.

    Checks and converts the arguments, decodes K views of one stored image of any format
    and turns a kernel error into :class:`DecodeError` (its message names the view when
    K > 1).
    """
    wins = np.ascontiguousarray(np.asarray(windows, dtype=np.int32))
    if wins.ndim != 2 or wins.shape[1] != 4 or wins.shape[0] < 1:
        raise ValueError(f"windows must have shape [K, 4] with K >= 1, got {wins.shape}")
    if flips is None:
        flip_flags = np.zeros(len(wins), dtype=np.uint8)
    else:
        flip_flags = np.ascontiguousarray(np.asarray(flips).astype(np.uint8))
    if flip_flags.shape != (len(wins),):
        raise ValueError(f"flips must hold K = {len(wins)} values, got {flip_flags.shape}")
    out_hw = _check_size(size)
    try:
        return _core.decode_views(
            _as_u8(data),
            wins,
            out_hw,
            flip_flags,
            IMAGE_FORMATS[image_format],
            int(height),
            int(width),
        )
    except _core.CoreError as exc:
        raise DecodeError([(0, str(exc))]) from None


def choose_scale(crop_h: int, crop_w: int, out_h: int, out_w: int) -> int:
    """DCT scale numerator ``M`` (decode at ``M/8``) the fused kernel uses for a crop.

    Args:
        crop_h: Crop height in source pixels.
        crop_w: Crop width in source pixels.
        out_h: Output height.
        out_w: Output width.

    Returns:
        The smallest ``M`` in 1..8 keeping the scaled crop at least the output size (8 when
        upsampling).
    """
    return int(_core.choose_scale(int(crop_h), int(crop_w), int(out_h), int(out_w)))


def pixel_lut(
    dtype: str,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> np.ndarray:
    """The output value each byte of each channel becomes (see :data:`PIXEL_DTYPES`).

    Args:
        dtype: ``"float32"``, ``"float16"``, ``"bfloat16"`` (or ``"uint8"``: the identity).
        mean: Per-channel mean of ``x / 255`` (3 values), or None (no normalization).
        std: Per-channel standard deviation of ``x / 255`` (3 values), or None.

    Returns:
        ``[3, 256]``: float32 values, or uint16 bits for float16 / bfloat16.

    Raises:
        ValueError: For an unknown dtype, a zero or non-finite ``std``, or only one of
            ``mean`` and ``std``.
    """
    return _core.pixel_lut(_pixel_type(dtype), *_mean_std(mean, std))


def _pixel_type(dtype: str) -> int:
    if dtype not in PIXEL_DTYPES:
        raise ValueError(f"dtype must be one of {list(PIXEL_DTYPES)}, got {dtype!r}")
    return PIXEL_DTYPES[dtype]


def _mean_std(
    mean: Sequence[float] | None, std: Sequence[float] | None
) -> tuple[list[float] | None, list[float] | None]:
    if (mean is None) != (std is None):
        raise ValueError("give both mean and std, or neither")
    if mean is None or std is None:
        return None, None
    m, s = [float(v) for v in mean], [float(v) for v in std]
    if len(m) != 3 or len(s) != 3:
        raise ValueError(f"mean and std need 3 values each, got {len(m)} and {len(s)}")
    return m, s


_OUT_DTYPES: dict[str, tuple[np.dtype, ...]] = {
    "uint8": (np.dtype(np.uint8),),
    "float32": (np.dtype(np.float32),),
    "float16": (np.dtype(np.float16),),
    "bfloat16": (np.dtype(np.int16), np.dtype(np.uint16)),  # the bits
}


def _check_array(
    name: str,
    arr: np.ndarray,
    dtype: type | tuple[np.dtype, ...],
    shape: tuple[int | None, ...],
) -> None:
    if not isinstance(arr, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(arr).__name__}")
    allowed = dtype if isinstance(dtype, tuple) else (np.dtype(dtype),)
    if arr.dtype not in allowed:
        want = " or ".join(str(d) for d in allowed)
        raise ValueError(f"{name} must have dtype {want}, got {arr.dtype}")
    if arr.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(arr.shape, shape, strict=True)
    ):
        want_s = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want_s}, got {list(arr.shape)}")
    if not arr.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")


class NativeDecoder:
    """Batch fused decode-crop-resize on a persistent C++ thread pool.

    The pool for a given thread count is created once per process and shared by every
    decoder using that count. Decoding releases the GIL.

    Args:
        num_threads: Decoder threads (the calling thread counts as one); ``None`` means the
            machine's hardware concurrency.
    """

    def __init__(self, num_threads: int | None = None) -> None:
        if num_threads is None:
            num_threads = int(_core.default_num_threads())
        if int(num_threads) < 1:
            raise ValueError(f"num_threads must be >= 1, got {num_threads}")
        self.num_threads = int(num_threads)

    def __repr__(self) -> str:
        return f"NativeDecoder(num_threads={self.num_threads})"

    def decode_crop_batch(
        self,
        data: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
        windows: np.ndarray,
        flips: np.ndarray,
        out: np.ndarray,
        image_format: str = "jpeg",
        heights: np.ndarray | None = None,
        widths: np.ndarray | None = None,
    ) -> list[DecodeFailure]:
        """Decode, crop, resize and flip a batch into ``out`` in place (one view per sample).

        The same decode as :meth:`decode_views_batch` with K = 1.

        Args:
            data: uint8 1-D buffer holding every sample's bytes (may be a slice of a larger
                preallocated buffer or a memmap): JPEG files, or YUV420 items
                (:mod:`slipstream.native.yuv420`) when ``image_format="yuv420"``.
            offsets: uint64 ``[B]`` start of each sample in ``data``.
            sizes: uint64 ``[B]`` byte length of each sample.
            windows: int32 ``[B, 4]`` crops ``[y, x, h, w]`` in source pixels.
            flips: uint8 ``[B]``; non-zero mirrors that sample horizontally.
            out: uint8 C-contiguous ``[B, H, W, 3]`` output, written in place.
            image_format: ``"jpeg"`` or ``"yuv420"``: how every item of the batch is stored.
            heights: int32 ``[B]`` true image heights (``"yuv420"`` only: items carry no
                header).
            widths: int32 ``[B]`` true image widths (``"yuv420"`` only).

        Returns:
            ``(batch position, status code, message)`` of every sample that failed to decode
            (empty when all decoded); see :meth:`decode_views_batch`.

        Raises:
            ValueError: On wrong dtypes, shapes or contiguity.
        """
        _check_array("out", out, np.uint8, (None, None, None, 3))
        _check_array("windows", windows, np.int32, (out.shape[0], 4))
        _check_array("flips", flips, np.uint8, (out.shape[0],))
        return self.decode_views_batch(
            data, offsets, sizes, windows, flips, [out], image_format, heights, widths
        )

    def decode_views_batch(
        self,
        data: np.ndarray,
        offsets: np.ndarray,
        sizes: np.ndarray,
        windows: np.ndarray,
        flips: np.ndarray,
        outs: list[np.ndarray],
        image_format: str = "jpeg",
        heights: np.ndarray | None = None,
        widths: np.ndarray | None = None,
        out_dtype: str = "uint8",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        formats: np.ndarray | None = None,
    ) -> list[DecodeFailure]:
        """Decode K views per sample (multi-crop) into K output buffers, in place.

        The views of a sample share its decode: one entropy decode per distinct DCT scale
        among them; each view is bit-identical to its own single-window decode.

        A sample that fails to decode (corrupt or truncated bytes, a window outside its image,
        a YUV420 item shorter than its size) does not raise: its pixels (every view) are
        zeroed (pixel value 0, mapped as ``out_dtype`` says: ``-mean / std`` when
        normalized), the other samples are still decoded, and it is reported in the returned
        list.
        What to do about it (raise naming the sample, skip it) is the caller's choice.

        Args:
            data: uint8 1-D buffer holding every sample's bytes (see
                :meth:`decode_crop_batch`).
            offsets: uint64 ``[B]`` start of each sample in ``data``.
            sizes: uint64 ``[B]`` byte length of each sample.
            windows: int32 ``[B, K, 4]`` (or ``[B, 4]`` for K = 1), C-contiguous.
            flips: uint8 ``[B, K]`` (or ``[B]``).
            outs: K C-contiguous ``[B, H_k, W_k, 3]`` outputs of ``out_dtype``, one per
                view (sizes may differ: views of every size share the decodes).
            image_format: ``"jpeg"``, ``"yuv420"`` or ``"raw"`` (raw RGB pixels).
            heights: int32 ``[B]`` true image heights (``"yuv420"``, ``"raw"`` and
                ``formats`` only).
            widths: int32 ``[B]`` true image widths (likewise).
            out_dtype: ``"uint8"`` (default), or ``"float32"``, ``"float16"``,
                ``"bfloat16"`` (outs of int16/uint16 holding the bits): each sample's 8-bit
                result is mapped as :data:`PIXEL_DTYPES` says, in the decode thread, right
                after its decode (flip included). Equal to :func:`pixel_lut` applied to the
                uint8 output.
            mean: Per-channel mean of ``x / 255`` (3 values) for a float ``out_dtype``, or
                None (a plain cast).
            std: Per-channel standard deviation of ``x / 255``, with ``mean``.
            formats: uint8 ``[B]`` format code of each sample (the values of
                :data:`IMAGE_FORMATS`; a slip cache field mixing JPEG and raw items),
                overriding ``image_format``; needs ``heights`` and ``widths``.

        Returns:
            ``(batch position, status code, message)`` of every failed sample, in batch order
            (empty when all decoded). The code is one of the ``STATUS_*`` constants of this
            module (never :data:`STATUS_OK`); with K > 1 the message names the view. A sample
            reported with :data:`STATUS_JPEG_WARNING` did decode (its pixels are kept) while
            libjpeg warned about corrupt data: drop those entries unless you are strict.

        Raises:
            ValueError: On wrong dtypes, shapes or contiguity (argument errors, not sample
                failures).
        """
        if not outs:
            raise ValueError("outs must hold at least one output buffer")
        pixel_type = _pixel_type(out_dtype)
        mean_std = _mean_std(mean, std)
        if out_dtype == "uint8" and mean_std[0] is not None:
            raise ValueError("out_dtype='uint8' cannot hold normalized values")
        for out in outs:
            _check_array("out", out, _OUT_DTYPES[out_dtype], (None, None, None, 3))
            if not out.flags.writeable:
                raise ValueError("out must be writeable")
            if out.shape[0] != outs[0].shape[0] or min(out.shape[1:3]) < 1:
                raise ValueError(
                    f"every out must be [{outs[0].shape[0]}, H >= 1, W >= 1, 3], got {out.shape}"
                )
        b, k = outs[0].shape[0], len(outs)
        _check_array("data", data, np.uint8, (None,))
        _check_array("offsets", offsets, np.uint64, (b,))
        _check_array("sizes", sizes, np.uint64, (b,))
        if k > 1:
            _check_array("windows", windows, np.int32, (b, k, 4))
            _check_array("flips", flips, np.uint8, (b, k))
        if image_format not in IMAGE_FORMATS:
            raise ValueError(
                f"image_format must be one of {list(IMAGE_FORMATS)}, got {image_format!r}"
            )
        if formats is not None:
            _check_array("formats", formats, np.uint8, (b,))
        if image_format != "jpeg" or formats is not None:
            if heights is None or widths is None:
                raise ValueError(f"image_format={image_format!r} needs heights and widths")
            _check_array("heights", heights, np.int32, (b,))
            _check_array("widths", widths, np.int32, (b,))
        if b == 0:
            return []
        failures = _core.decode_views_batch(
            data,
            offsets,
            sizes,
            windows,
            flips,
            list(outs),
            self.num_threads,
            0,
            IMAGE_FORMATS[image_format],
            heights,
            widths,
            pixel_type,
            *mean_std,
            formats,
        )
        return [(int(i), int(code), str(msg)) for i, code, msg in failures]
