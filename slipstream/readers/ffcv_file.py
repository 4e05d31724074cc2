"""Read an FFCV ``.beton`` / ``.ffcv`` file in place, with the slip cache's read interface.

:class:`FfcvFile` memory-maps the file once and checks it on open (layout and dtypes:
:mod:`slipstream.readers.ffcv_format`). It answers what :class:`~slipstream.cache.SlipCache`
answers, so :class:`~slipstream.loader.SlipstreamLoader` streams a ``.beton`` with no
conversion, and it is a reader for :func:`~slipstream.cache.build_cache`, so
``build_cache(FfcvFile(path), dest)`` converts one to a slip cache.

How FFCV fields read (``field_types``):

* ``FloatField`` -> ``"float"``, ``IntField`` -> ``"int"``: :meth:`FfcvFile.numbers` is a
  zero-copy (strided) view of the metadata table, ``<f8`` / ``<i8``.
* ``RGBImageField`` (and a type-255 subclass) -> ``"ImageBytes"``: :meth:`FfcvFile.data` is
  the map of the whole file and :meth:`FfcvFile.meta` its ``IMAGE_META_DTYPE`` table, so
  ``data_ptr`` values are file offsets. :meth:`FfcvFile.modes` says per sample whether the
  item is a JPEG (0) or raw RGB pixels (1; ``raw``, ``smart`` and ``proportion`` files);
  :meth:`FfcvFile.item_formats` gives the same as the slip cache's per-item format codes,
  so the loader's decoders read both kinds in place (raw items: crop + resize, no decode).
* ``BytesField`` -> ``"bytes"`` (same ``data`` / ``meta`` access, height and width 0).
* ``JSONField`` -> ``"str"``: :meth:`FfcvFile.string` is the JSON text (without FFCV's
  NUL terminator); ``json.loads`` it.
* ``NDArrayField`` and ``TorchTensorField`` -> ``"ndarray"``: :meth:`FfcvFile.numbers` is a
  ``[num_samples, *shape]`` array of the field's dtype, copied out of the pages once.

For :func:`~slipstream.cache.build_cache`, :meth:`FfcvFile.read_sample` hands over JPEG items
byte for byte and raw items as binary PPM, which the build stores as raw RGB items again
(pixel for pixel; or re-encoded as JPEG with ``image_storage="jpeg"``).

Example:
    >>> beton = FfcvFile("/data/imagenet_train.beton")  # doctest: +SKIP
    >>> jpeg = beton.item_bytes("image", 0)  # zero-copy uint8 view  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from slipstream.cache.field_access import FieldAccess
from slipstream.cache.format import (
    BYTES_TYPES,
    IMAGE_META_DTYPE,
    IMAGE_TYPE,
    ITEM_FORMAT_JPEG,
    ITEM_FORMAT_RAW,
    STRING_TYPE,
)
from slipstream.cache.gather import gather_bytes
from slipstream.cache.packed_items import PackedItems
from slipstream.readers.ffcv_format import (
    ALLOCATION_DTYPE,
    CUSTOM_TYPE_ID,
    FFCV_VERSION,
    FIELD_DESCRIPTOR_DTYPE,
    HEADER_DTYPE,
    MODE_JPEG,
    MODE_RAW,
    SLIP_TYPES,
    FfcvFormatError,
    FieldSpec,
    fail_for_samples,
    item_sizes,
    metadata_dtype,
    parse_fields,
)

CUSTOM_FIELD_CHECKS = 16
"""Items of a type-255 image field whose JPEG signature is checked on open."""

_ARRAY_GATHER_ROWS = 1 << 14


class FfcvFile(FieldAccess):
    """A read-only, memory-mapped FFCV file (format version 2).

    Args:
        path: The ``.beton`` / ``.ffcv`` file.
        custom_types: Field name -> FFCV type name (``"int"``, ``"bytes"``, ...; see
            :data:`~slipstream.readers.ffcv_format.SLIP_TYPES`) to read a custom (type 255)
            field as. Custom fields not named are read as RGB images, as FFCV subclasses of
            ``RGBImageField`` write them, and checked to look like images.

    Raises:
        FfcvFormatError: Naming the file: another format version, a truncated header,
            descriptor list, metadata table, data region or allocation table, an item
            past the data region, or an item without an allocation-table record.

    Attributes:
        path: The file.
        num_samples: Number of samples.
        page_size: FFCV page size of the file, in bytes.
        fields: One :class:`~slipstream.readers.ffcv_format.FieldSpec` per field.
        field_types: Field name -> slip cache type (see the module docstring).
        image_fields: Names of the image fields.
        root: The file again (the source named in a slip cache built from it).
    """

    def __init__(
        self, path: str | os.PathLike, *, custom_types: dict[str, str] | None = None
    ) -> None:
        """Map and check the file (see the class docstring)."""
        self.path = Path(path)
        self.root = self.path
        unknown = set((custom_types or {}).values()) - set(SLIP_TYPES)
        if unknown:
            raise ValueError(f"unknown FFCV types {sorted(unknown)}; known: {list(SLIP_TYPES)}")
        try:
            self._size = self.path.stat().st_size
        except OSError as exc:
            raise FileNotFoundError(f"cannot open FFCV file {self.path}: {exc}") from exc
        self._file = (
            np.memmap(self.path, dtype=np.uint8, mode="r") if self._size else np.zeros(0, np.uint8)
        )
        header = self._header()
        self.num_samples = int(header["num_samples"])
        self.page_size = int(header["page_size"])
        self._alloc_table_ptr = int(header["alloc_table_ptr"])
        num_fields = int(header["num_fields"])
        if num_fields == 0:
            raise FfcvFormatError(f"{self.path}: the header says the file has no fields")
        descriptors = self._slice(
            HEADER_DTYPE.itemsize, num_fields, FIELD_DESCRIPTOR_DTYPE, "field descriptors"
        )
        self.fields: list[FieldSpec] = parse_fields(self.path, descriptors, custom_types or {})
        self._metadata = self._slice(
            HEADER_DTYPE.itemsize + descriptors.nbytes,
            self.num_samples,
            metadata_dtype(self.fields),
            "per-sample metadata",
        )
        self._data_start = HEADER_DTYPE.itemsize + descriptors.nbytes + self._metadata.nbytes
        self._columns = {spec.name: self._metadata[f"f{k}"] for k, spec in enumerate(self.fields)}
        self._specs = {spec.name: spec for spec in self.fields}
        self._item_formats: dict[str, np.ndarray | None] = {}
        self.field_types = {spec.name: SLIP_TYPES[spec.kind] for spec in self.fields}
        self.image_fields = [n for n, t in self.field_types.items() if t == IMAGE_TYPE]
        self._meta = self._item_tables()
        self._arrays: dict[str, np.ndarray] = {}
        self._offsets: dict[str, np.ndarray] = {}
        self._checksums: dict[str, np.ndarray] = {}
        for spec in self.fields:
            if spec.kind == "rgb_image":
                self._check_images(spec)

    def _header(self) -> np.void:
        if self._size < HEADER_DTYPE.itemsize:
            raise FfcvFormatError(
                f"{self.path}: {self._size} bytes, shorter than the {HEADER_DTYPE.itemsize}-byte "
                f"FFCV header (truncated, or not an FFCV file)"
            )
        header = self._file[: HEADER_DTYPE.itemsize].view(HEADER_DTYPE)[0]
        if int(header["version"]) != FFCV_VERSION:
            raise FfcvFormatError(
                f"{self.path}: FFCV format version {int(header['version'])} found, this reader "
                f"reads version {FFCV_VERSION} (FFCV 1.0) only; or not an FFCV file"
            )
        return header

    def _slice(self, start: int, count: int, dtype: np.dtype, what: str) -> np.ndarray:
        end = start + count * dtype.itemsize
        if end > self._size:
            raise FfcvFormatError(
                f"{self.path}: truncated file ({self._size} bytes): the {what} lie at bytes "
                f"[{start}, {end})"
            )
        return self._file[start:end].view(dtype)

    def _allocation_table(self) -> np.ndarray:
        start = self._alloc_table_ptr
        if not self._data_start <= start <= self._size:
            raise FfcvFormatError(
                f"{self.path}: allocation table pointer {start} lies outside the file's data "
                f"region [{self._data_start}, {self._size}] (truncated, or the writer did not "
                f"finish)"
            )
        if (self._size - start) % ALLOCATION_DTYPE.itemsize:
            raise FfcvFormatError(
                f"{self.path}: the allocation table from byte {start} is {self._size - start} "
                f"bytes, not whole {ALLOCATION_DTYPE.itemsize}-byte records (truncated)"
            )
        table = np.array(self._file[start:].view(ALLOCATION_DTYPE))
        self._check_allocation_table(table)
        return table

    def _check_allocation_table(self, table: np.ndarray) -> None:
        """Records lie in the data region and name samples the header counts."""
        if not len(table):
            return
        ids, ptrs, sizes = table["sample_id"], table["ptr"], table["size"]
        beyond = np.flatnonzero(ids >= np.uint64(self.num_samples))
        if len(beyond):
            raise FfcvFormatError(
                f"{self.path}: the header's num_samples ({self.num_samples}) disagrees with the "
                f"allocation table, which has records for sample {int(ids.max())}: damaged header"
            )
        end = np.uint64(self._alloc_table_ptr)
        outside = (ptrs < np.uint64(self._data_start)) | (ptrs > end)
        outside |= sizes > end - np.minimum(ptrs, end)  # no overflow: ptr + size <= end
        bad = np.flatnonzero(outside)
        if len(bad):
            i = int(bad[0])
            raise FfcvFormatError(
                f"{self.path}: allocation table record {i} (sample {int(ids[i])}, byte "
                f"{int(ptrs[i])}, size {int(sizes[i])}) lies outside the data region "
                f"[{self._data_start}, {self._alloc_table_ptr}) ({len(bad)} such records; "
                f"damaged allocation table)"
            )

    def _item_tables(self) -> dict[str, np.ndarray]:
        """``IMAGE_META_DTYPE`` table of every field whose values live in the data pages."""
        pointers = {}
        for spec in self.fields:
            if spec.has_pointer:
                column = self._columns[spec.name]
                key = {"rgb_image": "data_ptr", "bytes": "ptr", "json": "ptr"}.get(spec.kind)
                pointers[spec.name] = np.asarray(column[key] if key else column, dtype=np.uint64)
        sizes = item_sizes(self.path, self._allocation_table(), pointers)
        tables = {}
        for name, ptrs in pointers.items():
            spec, size = self._specs[name], sizes[name]
            table = np.zeros(self.num_samples, dtype=IMAGE_META_DTYPE)
            table["data_ptr"], table["data_size"] = ptrs, size
            if spec.kind == "rgb_image":
                table["height"] = self._columns[name]["height"]
                table["width"] = self._columns[name]["width"]
            self._check_items(spec, table)
            tables[name] = table
        return tables

    def _check_items(self, spec: FieldSpec, table: np.ndarray) -> None:
        ptrs, sizes = table["data_ptr"], table["data_size"]
        end = np.uint64(self._alloc_table_ptr)
        fail_for_samples(
            self.path,
            (ptrs < self._data_start) | (ptrs > end) | (sizes > end - np.minimum(ptrs, end)),
            f"field {spec.name!r} has an item outside the data region "
            f"[{self._data_start}, {self._alloc_table_ptr})",
            "truncated or damaged file",
            at=ptrs,
        )
        if spec.kind in ("bytes", "json"):
            recorded = np.asarray(self._columns[spec.name]["size"])
            self._fail_where(spec, recorded != table["data_size"], "size differs from its record")
        elif spec.kind in ("ndarray", "torch_tensor"):
            wrong = table["data_size"] != spec.array_nbytes
            self._fail_where(spec, wrong, f"size is not {spec.array_nbytes} bytes")

    def _check_images(self, spec: FieldSpec) -> None:
        table, modes = self._meta[spec.name], self.modes(spec.name)
        self._fail_where(spec, (modes != MODE_JPEG) & (modes != MODE_RAW), "unknown image mode")
        pixels = table["height"].astype(np.uint64) * table["width"] * 3
        raw_wrong = (modes == MODE_RAW) & (table["data_size"] != pixels)
        self._fail_where(spec, raw_wrong, "raw image size is not height * width * 3")
        if spec.type_id != CUSTOM_TYPE_ID:
            return
        jpegs = np.flatnonzero(modes == MODE_JPEG)[:CUSTOM_FIELD_CHECKS]
        starts = table["data_ptr"][jpegs]
        not_jpeg = (table["data_size"][jpegs] < 2) | (self._file[starts] != 0xFF)
        not_jpeg |= self._file[np.minimum(starts + 1, self._size - 1)] != 0xD8
        if not_jpeg.any():
            raise FfcvFormatError(
                f"{self.path}: custom field {spec.name!r} (FFCV type {CUSTOM_TYPE_ID}) does not "
                f"read as an RGB image (sample {int(jpegs[np.argmax(not_jpeg)])} is not a JPEG); "
                f"name its type with FfcvFile(..., custom_types={{{spec.name!r}: ...}})"
            )

    def _fail_where(self, spec: FieldSpec, wrong: np.ndarray, what: str) -> None:
        fail_for_samples(self.path, wrong, f"field {spec.name!r}: {what}", "damaged file")

    def _spec(self, field: str, kinds: frozenset[str] | set[str], what: str) -> FieldSpec:
        self._check_field(field, kinds, what)
        return self._specs[field]

    def data(self, field: str) -> np.ndarray:
        """The ``uint8`` map of the whole file; item offsets in :meth:`meta` index it.

        Args:
            field: A bytes, image or string field (all share the one map).
        """
        self._spec(field, BYTES_TYPES | {STRING_TYPE}, "bytes/image/str")
        return self._file

    def meta(self, field: str) -> np.ndarray:
        """The ``IMAGE_META_DTYPE`` table of a bytes or image field.

        Args:
            field: Field name.

        Returns:
            Array ``[num_samples]`` of ``data_ptr`` (file offset), ``data_size`` (from the
            allocation table), ``height``, ``width`` (0 for bytes fields).
        """
        self._spec(field, BYTES_TYPES, "bytes/image")
        return self._meta[field]

    def modes(self, field: str) -> np.ndarray:
        """Per-sample image mode of an image field: ``MODE_JPEG`` (0) or ``MODE_RAW`` (1).

        Args:
            field: Image field name.
        """
        self._spec(field, {IMAGE_TYPE}, "an image field")
        return np.asarray(self._columns[field]["mode"])

    def item_formats(self, field: str) -> np.ndarray | None:
        """uint8 format code per item (the slip cache's, ``ITEM_FORMAT_*``), or None.

        None when every item of the field is a JPEG; else ``ITEM_FORMAT_JPEG`` (0) or
        ``ITEM_FORMAT_RAW`` (2: raw RGB pixels, ``height x width x 3`` bytes) per sample.

        Args:
            field: Image field name.
        """
        if field not in self._item_formats:
            modes = self.modes(field)
            raw = modes == MODE_RAW
            codes = None
            if raw.any():
                codes = np.where(raw, ITEM_FORMAT_RAW, ITEM_FORMAT_JPEG).astype(np.uint8)
            self._item_formats[field] = codes
        return self._item_formats[field]

    @property
    def has_raw_images(self) -> bool:
        """Whether any image field holds a raw-pixel (not JPEG) item."""
        return any(bool((self.modes(name) != MODE_JPEG).any()) for name in self.image_fields)

    def offsets(self, field: str) -> np.ndarray:
        """The ``[num_samples, 2]`` (file offset, length) table of a string (JSON) field.

        Args:
            field: Field name.
        """
        self._spec(field, {STRING_TYPE}, "str")
        if field not in self._offsets:
            table = self._meta[field]
            starts, sizes = table["data_ptr"], table["data_size"].copy()
            ends_with_nul = sizes > 0
            ends_with_nul[ends_with_nul] = self._file[(starts + sizes - 1)[ends_with_nul]] == 0
            sizes[ends_with_nul] -= 1
            self._offsets[field] = np.stack([starts, sizes], axis=1)
        return self._offsets[field]

    def numbers(self, field: str) -> np.ndarray:
        """The values of a numeric field (first dimension ``num_samples``).

        Args:
            field: An ``"int"`` / ``"float"`` field (a view of the metadata table) or an
                ``"ndarray"`` field (``[num_samples, *shape]``, read once, then kept).
        """
        spec = self._spec(field, {"int", "float", "ndarray"}, "numeric")
        if spec.array_dtype is None:
            return self._columns[field]
        if field not in self._arrays:
            self._arrays[field] = self._read_arrays(spec)
        return self._arrays[field]

    def _read_arrays(self, spec: FieldSpec) -> np.ndarray:
        nbytes = spec.array_nbytes
        out = np.empty((self.num_samples, nbytes), dtype=np.uint8)
        ptrs = self._meta[spec.name]["data_ptr"].astype(np.int64)
        columns = np.arange(nbytes, dtype=np.int64)
        for start in range(0, self.num_samples, _ARRAY_GATHER_ROWS):
            rows = ptrs[start : start + _ARRAY_GATHER_ROWS, None] + columns
            out[start : start + len(rows)] = self._file[rows]
        return out.view(spec.array_dtype).reshape((self.num_samples, *spec.array_shape))

    def item_bytes(self, field: str, index: int) -> np.ndarray:
        """Zero-copy ``uint8`` view of one item of a bytes, image or string field.

        Image items are a JPEG or raw RGB pixels (see :meth:`modes`); string items are
        the JSON text without its NUL terminator.

        Args:
            field: Field name.
            index: Sample index in ``[0, num_samples)``.
        """
        index = self._check_index(index)
        self._spec(field, BYTES_TYPES | {STRING_TYPE}, "bytes/image/str")
        if self.field_types[field] == STRING_TYPE:
            start, size = (int(v) for v in self.offsets(field)[index])
        else:
            record = self._meta[field][index]
            start, size = int(record["data_ptr"]), int(record["data_size"])
        return self._file[start : start + size]

    def image_pixels(self, field: str, index: int) -> np.ndarray:
        """Zero-copy ``[height, width, 3]`` view of a raw-mode image item.

        Args:
            field: Image field name.
            index: Sample index whose mode is ``MODE_RAW``.

        Raises:
            ValueError: The item is a JPEG.
        """
        index = self._check_index(index)
        if self.modes(field)[index] != MODE_RAW:
            raise ValueError(f"{self.describe(index)}: field {field!r} holds a JPEG, not pixels")
        record = self._meta[field][index]
        shape = (int(record["height"]), int(record["width"]), 3)
        return self.item_bytes(field, index).reshape(shape)

    def read_sample(self, index: int) -> dict[str, Any]:
        """One sample for :func:`~slipstream.cache.build_cache`.

        Like :meth:`sample`, except that a raw-mode image comes as a binary PPM, which the
        build stores as a raw RGB item (pixel for pixel).

        Args:
            index: Sample index.
        """
        out = self.sample(index)
        for name in self.image_fields:
            if self.modes(name)[index] == MODE_RAW:
                height, width, _ = self.image_pixels(name, index).shape
                out[name] = b"P6\n%d %d\n255\n" % (width, height) + out[name]
        return out

    def read_batch(self, start: int, stop: int) -> dict[str, Any]:
        """Samples ``start .. stop-1`` as columns, for :func:`~slipstream.cache.build_cache`.

        What :meth:`read_sample` gives, column by column: the items of a bytes or image
        field are copied from the map back to back into one
        :class:`~slipstream.cache.packed_items.PackedItems` (one compiled gather without
        the GIL, no Python object per item), except that an image column holding a
        raw-mode item comes as a list with that item as a binary PPM. Numeric fields are
        array slices; string fields lists of ``str``.

        Args:
            start: First sample index.
            stop: One past the last sample index.
        """
        start, stop = self._check_index(start), self._check_index(stop - 1) + 1
        out: dict[str, Any] = {}
        for name, kind in self.field_types.items():
            if kind == STRING_TYPE:
                out[name] = [self.string(name, i) for i in range(start, stop)]
            elif kind not in BYTES_TYPES:
                out[name] = self.numbers(name)[start:stop]
            elif kind == IMAGE_TYPE and (self.modes(name)[start:stop] != MODE_JPEG).any():
                out[name] = [self.read_sample(i)[name] for i in range(start, stop)]
            else:
                table = self._meta[name][start:stop]
                pointers = np.ascontiguousarray(table["data_ptr"], dtype=np.uint64)
                sizes = np.ascontiguousarray(table["data_size"], dtype=np.uint64)
                data = np.empty(int(sizes.sum()), dtype=np.uint8)
                gather_bytes(self._file, pointers, sizes, data, np.empty_like(sizes))
                out[name] = PackedItems(data, sizes.astype(np.int64))
        return out

    def describe(self, index: int) -> str:
        """``"sample <i> of <file>"``, for error messages."""
        return f"sample {index} of {self.path}"

    def checksums(self, field: str) -> np.ndarray:
        """``<u8 [num_samples]`` XXH64 of every item of a bytes or image field.

        Computed once per file (from its bytes as they are now) and kept in a sidecar in
        the cache root (``<cache root>/ffcv-checksums/``, keyed by the file's fingerprint,
        written atomically), since the file itself may be read-only. Later opens load it,
        so a byte that changes afterwards fails its checksum when gathered.

        Args:
            field: A bytes or image field.
        """
        self._spec(field, BYTES_TYPES, "bytes/image")
        cached = self._checksums.get(field)
        if cached is not None:
            return cached
        from slipstream.readers.ffcv_checksums import load_or_compute

        self._checksums[field] = load_or_compute(self, field)
        return self._checksums[field]

    def fingerprint(self) -> str:
        """Hex digest of the file's identity.

        Covers its size and modification time (ns), header, field descriptors and
        allocation table, without reading the data pages.
        """
        stat = self.path.stat()
        digest = hashlib.sha256(f"{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
        digest.update(self._file[: self._data_start - self._metadata.nbytes].tobytes())
        digest.update(self._file[self._alloc_table_ptr :].tobytes())
        return digest.hexdigest()
