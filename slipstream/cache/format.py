"""The slip cache on-disk format: names, dtypes and file layout (written down once, here).

A slip cache is one folder. ``manifest.json`` is written last, so a folder without it is
not a cache. Every file is little-endian; ``.npy`` files are plain ``np.save`` output.

::

    <cache>/                         (original slipstream: <parent>/.slipstream/)
    ├── manifest.json                format, version, sample count, fields, file sizes
    │
    │   per field of type "ImageBytes" or "bytes"  (N = num_samples)
    ├── <field>.bin                  item 0 | item 1 | ... | item N-1   (back to back, uint8)
    ├── <field>.xxh64.npy            version 2: N x <u8, XXH64 (seed 0) of each item, checked
    │                                whenever an item is gathered (slipstream.cache.checksum)
    ├── <field>.meta.npy             N records of IMAGE_META_DTYPE (24 bytes each):
    │                                ┌──────────────┬───────────────┬────────────┬───────────┐
    │                                │ data_ptr <u8 │ data_size <u8 │ height <u4 │ width <u4 │
    │                                └──────────────┴───────────────┴────────────┴───────────┘
    │                                item i = bin[data_ptr : data_ptr + data_size];
    │                                height = width = 0 for "bytes" fields
    ├── <field>.format.npy           version 3, image fields with a raw item only: N x u1,
    │                                item i's format code (ITEM_FORMAT_DTYPE):
    │                                  0 = JPEG bytes
    │                                  2 = raw RGB pixels, height x width x 3 uint8, rows
    │                                      back to back (data_size = height * width * 3)
    │                                (the csrc ImageFormat codes; 1 = YUV420, companion only).
    │                                No file: every item is a JPEG (versions 1, 2 and 3).
    │                                Raw items sit in <field>.bin like JPEGs, with the same
    │                                meta record and XXH64 checksum; the loader resizes their
    │                                crop windows without a decode (csrc RgbCropResizeViews)
    ├── <field>_yuv420.bin           optional, per image field: its YUV420 companion (planar
    ├── <field>_yuv420.meta.npy      I420 items + IMAGE_META_DTYPE table), recorded last under
    │                                the field's "yuv420" key; see slipstream.cache.yuv420
    │
    │   per field of type "str"
    ├── <field>.bin                  UTF-8 bytes of string 0 | string 1 | ...
    ├── <field>.offsets.npy          N x 2 array of STRING_OFFSETS_DTYPE: (offset, length)
    │
    │   per field of any other type ("int", "float", ...)
    └── <field>.npy                  array with N rows (int -> <i8, float -> <f8)

``manifest.json``::

    {
      "format": "slipstream-cache",          # absent in caches of the original slipstream
      "version": 2,                          # 1: no checksums (still read); 3: a field has
                                             # raw RGB items (<field>.format.npy)
      "num_samples": N,
      "fields": {
        "image": {"type": "ImageBytes", "format": "jpeg",   # | "raw" | "mixed" (version 3)
                  "num_samples": N,
                  "max_size": <largest item in bytes>, "checksum": "xxh64",
                  "files": {"image.bin": <bytes>, "image.meta.npy": <bytes>,
                            "image.xxh64.npy": <bytes>}},
        "label": {"type": "int", "format": "<i8", "num_samples": N,
                  "files": {"label.npy": <bytes>},
                  "classes": ["cat", "dog"]},   # optional: label i is named classes[i]
        "path":  {"type": "str", "format": "utf-8", "num_samples": N,
                  "files": {"path.bin": <bytes>, "path.offsets.npy": <bytes>}}
      },
      "source": {"kind": "ImageFolderReader", "root": "...", "fingerprint": "<hex>"},
                                             # FileListReader: root = the list file, plus
                                             # "list_root" (where its relative paths start)
      "build": {"reencoded": [{"index": i, "name": "...", "reason": "..."}, ...],
                "skipped":   [{"index": i, "name": "...", "reason": "..."}, ...]}
    }

Caches written by the original slipstream lack ``"format"``, per-field ``"format"`` and
``"files"``; they are checked against their own metadata instead (the ``.bin`` file must
hold every item the ``.meta.npy`` / ``.offsets.npy`` table points at).
"""

from __future__ import annotations

import numpy as np

FORMAT_NAME = "slipstream-cache"
"""Value of ``manifest["format"]`` in caches written by this package."""

FORMAT_VERSION = 2
"""The manifest version this package writes (2: per-item checksums of bytes fields) for
caches whose images are all JPEGs."""

RAW_FORMAT_VERSION = 3
"""The manifest version of a cache with raw RGB items (``<field>.format.npy``): a version-2
reader would hand those items to its JPEG decoder, so they get a version it refuses."""

NAME_VERSION = 3
"""The version in the names of caches built from a source (``<name>-<fingerprint>-v3``).

3 since non-JPEG images are stored as raw pixels: a cache built before, whose PNGs were
re-encoded as JPEG, has another name and is not reused.
"""


def storage_suffix(image_storage: str = "raw", jpeg_quality: int = 95) -> str:
    """The cache name's suffix for a storage mode: ``""`` (raw, lossless) or ``"-jpeg95"``."""
    return "" if image_storage == "raw" else f"-jpeg{int(jpeg_quality)}"


READ_VERSIONS = (1, 2, 3)
"""Manifest versions this package reads (1: the original slipstream's, no checksums)."""

MANIFEST_NAME = "manifest.json"
"""File that makes a folder a cache; written last."""

LEGACY_SUBDIR = ".slipstream"
"""Sub-folder the original slipstream put its cache in (``<parent>/.slipstream/``)."""

IMAGE_META_DTYPE = np.dtype(
    [("data_ptr", "<u8"), ("data_size", "<u8"), ("height", "<u4"), ("width", "<u4")]
)
"""One record per item of an ``ImageBytes`` / ``bytes`` field (``<field>.meta.npy``)."""

STRING_OFFSETS_DTYPE = np.dtype("<u8")
"""Element dtype of ``<field>.offsets.npy``, an ``(N, 2)`` array of (offset, length)."""

BYTES_TYPES = frozenset({"ImageBytes", "bytes"})
"""Field types stored as ``<field>.bin`` + ``<field>.meta.npy``."""

IMAGE_TYPE = "ImageBytes"
"""Field type of stored images: JPEG bytes, or raw RGB pixels (``<field>.format.npy``)."""

IMAGE_FORMATS = ("jpeg", "yuv420")
"""What decoders read of an image field: its stored items (JPEG and raw RGB, each with its
per-item format code), or its YUV420 companion's items."""

ITEM_FORMAT_DTYPE = np.dtype("u1")
"""Element dtype of ``<field>.format.npy``: one format code per item."""

ITEM_FORMAT_JPEG = 0
"""Format code of a JPEG item (csrc ``kFormatJpeg``)."""

ITEM_FORMAT_YUV420 = 1
"""Format code of a planar I420 item (csrc ``kFormatYuv420``; YUV420 companions only)."""

ITEM_FORMAT_RAW = 2
"""Format code of a raw RGB item, ``height x width x 3`` uint8 (csrc ``kFormatRgb``)."""

FIELD_FORMATS = ("jpeg", "raw", "mixed")
"""``manifest["fields"][f]["format"]`` of an image field: all JPEG, all raw, or both."""

IMAGE_STORAGE = ("raw", "jpeg")
"""How a build stores a source image that is not a JPEG: ``"raw"`` (its RGB pixels,
lossless; the default) or ``"jpeg"`` (re-encoded at the build's ``jpeg_quality``: smaller,
lossy). A source JPEG is stored as its own bytes either way."""


def item_format_file(name: str) -> str:
    """File name of an image field's per-item format codes (version 3)."""
    return f"{name}.format.npy"


def field_format(codes: np.ndarray) -> str:
    """The manifest's ``"format"`` of an image field from its per-item codes.

    Args:
        codes: ``ITEM_FORMAT_DTYPE`` code of every item.

    Returns:
        ``"jpeg"``, ``"raw"`` or ``"mixed"`` (:data:`FIELD_FORMATS`).
    """
    raw = codes == ITEM_FORMAT_RAW
    if not raw.any():
        return "jpeg"
    return "raw" if raw.all() else "mixed"


CLASSES_KEY = "classes"
"""Optional key of a label field's manifest entry: its class names (label ``i`` names
``classes[i]``), from image folders, file lists with class names and Hugging Face
``ClassLabel`` columns. Absent where the source had none (and in older caches)."""

STRING_TYPE = "str"
"""Field type stored as ``<field>.bin`` + ``<field>.offsets.npy``."""

NUMBER_DTYPES = {"int": np.dtype("<i8"), "float": np.dtype("<f8"), "bool": np.dtype("|b1")}
"""Dtypes written for scalar field types; other types keep their array's dtype (as ``<``)."""


def field_files(name: str, field_type: str) -> list[str]:
    """File names that hold one field.

    Args:
        name: Field name.
        field_type: Field type from the manifest (``"ImageBytes"``, ``"str"``, ``"int"``...).

    Returns:
        The file names, relative to the cache folder.
    """
    if field_type in BYTES_TYPES:
        return [f"{name}.bin", f"{name}.meta.npy"]
    if field_type == STRING_TYPE:
        return [f"{name}.bin", f"{name}.offsets.npy"]
    return [f"{name}.npy"]


def is_valid_field_name(name: str) -> bool:
    """Whether ``name`` can name a field's files (no path separators, no leading dot).

    Args:
        name: Field name (or file name) to check.
    """
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )
