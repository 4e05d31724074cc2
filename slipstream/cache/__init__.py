"""The slip cache: a folder of memory-mappable files built once from any reader.

Layout and dtypes: :mod:`slipstream.cache.format`. Open with :class:`SlipCache`, build
with :func:`build_cache`.
"""

from slipstream.cache.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_META_DTYPE,
    STRING_OFFSETS_DTYPE,
)
from slipstream.cache.reader import CacheFormatError, SlipCache
from slipstream.cache.writer import CacheBuildError, build_cache

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "IMAGE_META_DTYPE",
    "STRING_OFFSETS_DTYPE",
    "CacheBuildError",
    "CacheFormatError",
    "SlipCache",
    "build_cache",
]
