"""Native decode: the C++ fused JPEG decode-crop-resize kernels and their thread pool."""

from slipstream.native.decode import (
    DecodeError,
    JpegHeader,
    NativeDecoder,
    choose_scale,
    decode_crop,
    decode_crop_views,
    decode_full,
    read_jpeg_header,
)

__all__ = [
    "DecodeError",
    "JpegHeader",
    "NativeDecoder",
    "choose_scale",
    "decode_crop",
    "decode_crop_views",
    "decode_full",
    "read_jpeg_header",
]
