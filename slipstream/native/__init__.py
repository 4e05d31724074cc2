"""Native decode: the C++ fused decode-crop-resize kernels (JPEG, YUV420) and their thread pool."""

from slipstream.native.decode import (
    IMAGE_FORMATS,
    DecodeError,
    JpegHeader,
    NativeDecoder,
    choose_scale,
    decode_crop,
    decode_crop_views,
    decode_full,
    read_jpeg_header,
)
from slipstream.native.yuv420 import (
    decode_crop_views_yuv420,
    decode_crop_yuv420,
    rgb_to_yuv420,
    yuv420_size,
    yuv420_to_rgb,
)

__all__ = [
    "IMAGE_FORMATS",
    "DecodeError",
    "JpegHeader",
    "NativeDecoder",
    "choose_scale",
    "decode_crop",
    "decode_crop_views",
    "decode_full",
    "read_jpeg_header",
    "rgb_to_yuv420",
    "yuv420_size",
    "yuv420_to_rgb",
    "decode_crop_views_yuv420",
    "decode_crop_yuv420",
]
