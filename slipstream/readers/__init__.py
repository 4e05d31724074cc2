"""Readers: field metadata and sample bytes of a data source, ready for the slip cache.

A reader has ``field_types`` (name -> ``"ImageBytes"`` | ``"bytes"`` | ``"str"`` |
``"int"`` | ``"float"``), ``__len__``, ``read_sample(i) -> dict``, ``describe(i) -> str``
(a human name for error messages) and ``fingerprint() -> str`` (source identity).
"""

from slipstream.readers.image_folder import IMG_EXTENSIONS, ImageFolderReader

__all__ = ["IMG_EXTENSIONS", "ImageFolderReader"]
