"""Open a slip cache: check it against its manifest, then memory-map every file.

See :mod:`slipstream.cache.format` for the layout.

Example:
    >>> cache = SlipCache.open("/data/imagenet-train.slip")  # doctest: +SKIP
    >>> jpeg = cache.item_bytes("image", 0)  # zero-copy uint8 view  # doctest: +SKIP
    >>> h, w = cache.meta("image")[0][["height", "width"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from slipstream.cache.checksum import CHECKSUM_DTYPE, CHECKSUM_NAME, checksum_file
from slipstream.cache.field_access import FieldAccess
from slipstream.cache.field_index import FieldIndex, find_index_files, load_field_index
from slipstream.cache.format import (
    BYTES_TYPES,
    CLASSES_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_META_DTYPE,
    IMAGE_TYPE,
    ITEM_FORMAT_DTYPE,
    LEGACY_SUBDIR,
    MANIFEST_NAME,
    READ_VERSIONS,
    STRING_TYPE,
    field_files,
    is_valid_field_name,
    item_format_file,
)
from slipstream.errors import SlipstreamError


class CacheFormatError(SlipstreamError, ValueError):
    """A cache folder is missing, damaged, or of another format or version.

    The message names the cache folder and the file or field at fault.
    """


def find_cache_dir(path: str | os.PathLike) -> Path | None:
    """Return the folder holding ``manifest.json`` for ``path``, or None.

    Args:
        path: A cache folder, or the parent of an original-layout ``.slipstream/`` folder.
    """
    path = Path(path)
    for candidate in (path, path / LEGACY_SUBDIR):
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
    return None


class SlipCache(FieldAccess):
    """A read-only, memory-mapped slip cache.

    Owns the memory maps of one cache folder. Item access returns views into them; copy
    what must outlive the cache.

    Attributes:
        path: The folder that holds ``manifest.json``.
        num_samples: Number of samples.
        manifest: The parsed manifest.
        field_types: Field name -> type (``"ImageBytes"``, ``"bytes"``, ``"str"``, ``"int"``...).
        image_fields: Names of the ``ImageBytes`` fields.
    """

    def __init__(
        self,
        path: Path,
        manifest: dict[str, Any],
        arrays: dict[str, Any],
        checksums: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Use :meth:`open`; this only stores what it checked."""
        self._checksums = dict(checksums or {})
        self.path = path
        self.manifest = manifest
        self.num_samples = int(manifest["num_samples"])
        self.field_types = {name: f["type"] for name, f in manifest["fields"].items()}
        self.image_fields = [n for n, t in self.field_types.items() if t == IMAGE_TYPE]
        self._arrays = arrays
        self._item_formats: dict[str, np.ndarray | None] = {}
        self.refresh_indexes()

    @classmethod
    def open(cls, path: str | os.PathLike) -> SlipCache:
        """Open and check a cache.

        Checks the format name and version, that every file exists with the size the
        manifest records (original caches: that the ``.bin`` holds every item its table
        points at), and that every table has ``num_samples`` rows.

        Args:
            path: The cache folder, or a parent folder with ``.slipstream/manifest.json``.

        Returns:
            The opened cache.

        Raises:
            CacheFormatError: Naming the cache folder and the file or field at fault.
        """
        root = find_cache_dir(path)
        if root is None:
            raise CacheFormatError(
                f"no slip cache at {path}: neither {MANIFEST_NAME} nor "
                f"{LEGACY_SUBDIR}/{MANIFEST_NAME} exists"
            )
        manifest = _load_manifest(root)
        arrays: dict[str, Any] = {}
        checksums: dict[str, np.ndarray] = {}
        for name, spec in manifest["fields"].items():
            try:
                arrays[name] = _open_field(root, name, spec, int(manifest["num_samples"]))
                if isinstance(arrays[name], tuple) and len(arrays[name]) == 3:
                    *stored, checksums[name] = arrays[name]
                    arrays[name] = tuple(stored)
            except CacheFormatError:
                raise
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
                raise CacheFormatError(
                    f"{root / MANIFEST_NAME}: field {name!r} is damaged "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
        return cls(root, manifest, arrays, checksums)

    @property
    def indexed_fields(self) -> list[str]:
        """Fields with a stored ``<field>_index.npy`` (:func:`~slipstream.write_index`)."""
        return list(self._index_files)

    def refresh_indexes(self) -> None:
        """Look again for stored field indexes in the cache folder (done on open)."""
        self._index_files = find_index_files(self.path, self.field_types)
        self._indexes: dict[str, FieldIndex] = {}

    def get_index(self, field: str) -> FieldIndex:
        """The stored ``value -> sample indices`` index of a field, read and checked once.

        Args:
            field: An indexed field (see :attr:`indexed_fields`).

        Returns:
            The index: ``index[value]`` gives the sorted ``int64`` sample indices.

        Raises:
            KeyError: The field has no stored index (build one with ``write_index``).
            FieldIndexError: The index file is garbled or stale (names the file).
        """
        if field not in self._index_files:
            raise KeyError(
                f"{self.path}: no index found for field {field!r}; indexed fields: "
                f"{self.indexed_fields}. Use write_index(cache, fields=[{field!r}]) to build one."
            )
        if field not in self._indexes:
            self._indexes[field] = load_field_index(self._index_files[field], self, field)
        return self._indexes[field]

    def _field(self, field: str, kinds: frozenset[str] | set[str], what: str) -> Any:
        self._check_field(field, kinds, what)
        return self._arrays[field]

    def data(self, field: str) -> np.ndarray:
        """The ``uint8`` memory map of ``<field>.bin`` (bytes, image or string field).

        Args:
            field: Field name.
        """
        return self._field(field, BYTES_TYPES | {STRING_TYPE}, "bytes/image/str")[0]

    def meta(self, field: str) -> np.ndarray:
        """The ``IMAGE_META_DTYPE`` table of a bytes or image field.

        Args:
            field: Field name.

        Returns:
            Array of shape ``[num_samples]`` with ``data_ptr, data_size, height, width``.
        """
        return self._field(field, BYTES_TYPES, "bytes/image")[1]

    def checksums(self, field: str) -> np.ndarray | None:
        """``<u8 [num_samples]`` XXH64 of every item of a bytes or image field, if stored.

        Caches of format version 1 (and the original slipstream's) have none: None.

        Args:
            field: Field name.
        """
        self._field(field, BYTES_TYPES, "bytes/image")
        return self._checksums.get(field)

    def item_formats(self, field: str) -> np.ndarray | None:
        """uint8 ``[num_samples]`` format code of every item of an image field, or None.

        None when every item is a JPEG (no ``<field>.format.npy``: caches of versions 1
        and 2, and version-3 caches' all-JPEG fields); else ``ITEM_FORMAT_JPEG`` (0) or
        ``ITEM_FORMAT_RAW`` (2, raw RGB pixels) per item (:mod:`slipstream.cache.format`).

        Args:
            field: Field name.

        Raises:
            CacheFormatError: The file is not one code per sample.
        """
        self._field(field, BYTES_TYPES, "bytes/image")
        if field not in self._item_formats:
            self._item_formats[field] = _load_item_formats(self.path, field, self.num_samples)
        return self._item_formats[field]

    def offsets(self, field: str) -> np.ndarray:
        """The ``[num_samples, 2]`` (offset, length) table of a string field.

        Args:
            field: Field name.
        """
        return self._field(field, {STRING_TYPE}, "str")[1]

    def numbers(self, field: str) -> np.ndarray:
        """The memory-mapped array of a numeric field (first dimension ``num_samples``).

        Args:
            field: Field name.
        """
        kinds = set(self.field_types.values()) - BYTES_TYPES - {STRING_TYPE}
        return self._field(field, kinds, "numeric")

    def class_names(self, field: str = "label") -> list[str] | None:
        """The class names the manifest stores for a label field, or None.

        Args:
            field: The label field.

        Returns:
            Label ``i`` -> ``names[i]``; None where the build knew no names (or the field
            does not exist).
        """
        names = self.manifest["fields"].get(field, {}).get(CLASSES_KEY)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return None
        return list(names)

    def item_bytes(self, field: str, index: int) -> np.ndarray:
        """Zero-copy ``uint8`` view of one item of a bytes, image or string field.

        Args:
            field: Field name.
            index: Sample index in ``[0, num_samples)``.
        """
        index = self._check_index(index)
        data, table = self._field(field, BYTES_TYPES | {STRING_TYPE}, "bytes/image/str")
        if self.field_types[field] == STRING_TYPE:
            start, size = int(table[index, 0]), int(table[index, 1])
        else:
            start, size = int(table[index]["data_ptr"]), int(table[index]["data_size"])
        return data[start : start + size]


def _load_item_formats(root: Path, field: str, num_samples: int) -> np.ndarray | None:
    """``<field>.format.npy`` (memory-mapped), or None when absent (every item a JPEG)."""
    path = root / item_format_file(field)
    if not path.is_file():
        return None
    try:
        codes = np.load(path, mmap_mode="r") if path.stat().st_size else None
    except (OSError, ValueError) as exc:
        raise CacheFormatError(f"{path}: unreadable item formats ({exc})") from exc
    if codes is None or codes.dtype != ITEM_FORMAT_DTYPE or codes.shape != (num_samples,):
        raise CacheFormatError(
            f"{path}: expected {num_samples} item format codes ({ITEM_FORMAT_DTYPE}), found "
            f"{None if codes is None else (codes.dtype, codes.shape)}"
        )
    return codes


def _load_manifest(root: Path) -> dict[str, Any]:
    manifest_path = root / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheFormatError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise CacheFormatError(f"{manifest_path}: manifest is not a JSON object")
    fmt = manifest.get("format", FORMAT_NAME)  # original slipstream caches have no "format"
    if fmt != FORMAT_NAME:
        raise CacheFormatError(
            f"{manifest_path}: format {fmt!r} is not a slip cache (expected {FORMAT_NAME!r})"
        )
    version = manifest.get("version")
    if version not in READ_VERSIONS or isinstance(version, bool):
        raise CacheFormatError(
            f"{manifest_path}: cache version {version!r} found, this slipstream reads "
            f"versions {list(READ_VERSIONS)} (writes {FORMAT_VERSION}); rebuild the cache"
        )
    num = manifest.get("num_samples")
    fields = manifest.get("fields")
    if not isinstance(num, int) or num < 0 or not isinstance(fields, dict):
        raise CacheFormatError(
            f"{manifest_path}: needs an integer 'num_samples' and a 'fields' object"
        )
    for name, spec in fields.items():
        if not is_valid_field_name(name):
            raise CacheFormatError(f"{manifest_path}: invalid field name {name!r}")
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise CacheFormatError(f"{manifest_path}: field {name!r} has no 'type'")
        if spec.get("num_samples", num) != num:
            raise CacheFormatError(
                f"{manifest_path}: field {name!r} has num_samples {spec['num_samples']}, "
                f"the cache has {num}"
            )
    return manifest


def _check_files(root: Path, name: str, spec: dict[str, Any]) -> None:
    """Every file of the field exists; where the manifest records sizes, they match."""
    recorded = spec.get("files")
    names = field_files(name, spec["type"])
    if recorded is not None:  # also check companion files the writer recorded
        names += [f for f in recorded if f not in names and is_valid_field_name(f)]
    for fname in names:
        fpath = root / fname
        try:
            actual = fpath.stat().st_size
        except FileNotFoundError:
            raise CacheFormatError(f"{root}: file {fname} of field {name!r} is missing") from None
        if recorded is None:
            continue
        if fname not in recorded:
            raise CacheFormatError(f"{root}: manifest records no size for {fname} ({name!r})")
        if int(recorded[fname]) != actual:
            raise CacheFormatError(
                f"{root}: {fname} of field {name!r} is {actual} bytes, the manifest "
                f"records {recorded[fname]} (truncated or modified)"
            )


def _load_npy(root: Path, fname: str) -> np.ndarray:
    try:
        return np.load(root / fname, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - a garbled header raises tokenize/Unicode errors
        raise CacheFormatError(
            f"{root}: cannot read {fname} ({type(exc).__name__}: {exc})"
        ) from exc


def _map_bin(root: Path, fname: str) -> np.ndarray:
    fpath = root / fname
    if fpath.stat().st_size == 0:  # mmap refuses empty files
        return np.zeros(0, dtype=np.uint8)
    return np.memmap(fpath, dtype=np.uint8, mode="r")


def _open_field(root: Path, name: str, spec: dict[str, Any], num: int) -> Any:
    kind = spec["type"]
    _check_files(root, name, spec)
    if kind in BYTES_TYPES:
        meta = _load_npy(root, f"{name}.meta.npy")
        if meta.dtype != IMAGE_META_DTYPE or meta.shape != (num,):
            raise CacheFormatError(
                f"{root}: {name}.meta.npy is {meta.dtype} {meta.shape}, expected "
                f"{IMAGE_META_DTYPE} ({num},)"
            )
        ends = meta["data_ptr"] + meta["data_size"]
        _check_bin_holds(root, f"{name}.bin", ends)
        checksum = spec.get("checksum")
        if checksum is None:
            return _map_bin(root, f"{name}.bin"), meta
        if checksum != CHECKSUM_NAME:
            raise CacheFormatError(
                f"{root}: field {name!r} has checksum {checksum!r}, this slipstream knows "
                f"{CHECKSUM_NAME!r} only"
            )
        sums = _load_npy(root, checksum_file(name))
        if sums.dtype != CHECKSUM_DTYPE or sums.shape != (num,):
            raise CacheFormatError(
                f"{root}: {checksum_file(name)} is {sums.dtype} {sums.shape}, expected "
                f"{CHECKSUM_DTYPE} ({num},)"
            )
        return _map_bin(root, f"{name}.bin"), meta, sums
    if kind == STRING_TYPE:
        offsets = _load_npy(root, f"{name}.offsets.npy")
        if offsets.shape != (num, 2) or offsets.dtype.kind not in "ui":
            raise CacheFormatError(
                f"{root}: {name}.offsets.npy is {offsets.dtype} {offsets.shape}, "
                f"expected <u8 ({num}, 2)"
            )
        _check_bin_holds(root, f"{name}.bin", offsets[:, 0] + offsets[:, 1])
        return _map_bin(root, f"{name}.bin"), offsets
    values = _load_npy(root, f"{name}.npy")
    if values.ndim == 0 or values.shape[0] != num:
        raise CacheFormatError(f"{root}: {name}.npy has shape {values.shape}, expected {num} rows")
    return values


def _check_bin_holds(root: Path, fname: str, ends: np.ndarray) -> None:
    size = (root / fname).stat().st_size
    needed = int(ends.max()) if len(ends) else 0
    if needed > size:
        raise CacheFormatError(
            f"{root}: {fname} is {size} bytes but its table points up to byte {needed} (truncated)"
        )
