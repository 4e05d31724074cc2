"""The FFCV ``.beton`` / ``.ffcv`` file format, version 2: dtypes and parsing (no ``ffcv``).

Every number is little-endian. Offsets are absolute file offsets.

::

    offset 0          ┌───────────────────────────────────────────────────────────────┐
                      │ header, HEADER_DTYPE (24 B)                                   │
                      │ version <u2 | num_fields <u2 | page_size <u4 |                │
                      │ num_samples <u8 | alloc_table_ptr <u8                         │
    24                ├───────────────────────────────────────────────────────────────┤
                      │ num_fields descriptors, FIELD_DESCRIPTOR_DTYPE (1041 B each): │
                      │ type_id u1 | name 16 x u1 (ASCII, NUL-padded) | args 1024 x u1│
    24 + 1041 F       ├───────────────────────────────────────────────────────────────┤
                      │ metadata table: num_samples records of one C-aligned struct   │
                      │ (numpy ``align=True``) with one member per field, in order    │
                      ├───────────────────────────────────────────────────────────────┤
                      │ zero padding to a multiple of page_size                       │
                      ├───────────────────────────────────────────────────────────────┤
                      │ data pages (page_size each): items back to back; FFCV moves   │
                      │ a sample that does not fit to a fresh page                    │
    alloc_table_ptr   ├───────────────────────────────────────────────────────────────┤
                      │ allocation table up to the end of the file, ALLOCATION_DTYPE: │
                      │ sample_id <u8 | ptr <u8 | size <u8, one record per item,      │
                      │ unsorted (each writer process appends its own list)           │
    end of file       └───────────────────────────────────────────────────────────────┘

Metadata member per field type (``type_id``) and the slip cache type it reads as:

=======  ================  ==========================================  ==============
type id  FFCV field        metadata member                             slip type
=======  ================  ==========================================  ==============
0        FloatField        ``<f8`` value                               ``"float"``
1        IntField          ``<i8`` value                               ``"int"``
2        RGBImageField     packed ``mode u1 | width <u2 | height <u2   ``"ImageBytes"``
                           | data_ptr <u8`` (13 B); mode 0 JPEG,
                           1 raw RGB (``height * width * 3`` bytes)
3        BytesField        packed ``ptr <u8 | size <u8``               ``"bytes"``
4        NDArrayField      ``<u8`` ptr; args: ``shape 32 x <u8 |       ``"ndarray"``
                           type_length <u8 | dtype.descr as JSON``
5        JSONField         as BytesField; item ``json.dumps(v) + NUL``  ``"str"``
6        TorchTensorField  as NDArrayField                             ``"ndarray"``
255      a subclass        read as RGBImageField (or as the caller     as read
                           says)
=======  ================  ==========================================  ==============

The size of a pointed-to item is in the allocation table, found by ``(sample_id, ptr)``:
never by position, and never by ``ptr`` alone, because a zero-size item (an empty
``BytesField`` value) shares its ``ptr`` with the next item of the same sample. Records
with equal ``(sample_id, ptr)`` belong to the sample's fields in field order, smallest
first (only the last of them can be non-empty), whatever the table's order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from slipstream.errors import SlipstreamError

FFCV_VERSION = 2
"""The one FFCV file format version this reader reads (FFCV 1.0's ``CURRENT_VERSION``)."""

FFCV_SUFFIXES = (".beton", ".ffcv")
"""File name endings taken as FFCV files."""

HEADER_DTYPE = np.dtype(
    [
        ("version", "<u2"),
        ("num_fields", "<u2"),
        ("page_size", "<u4"),
        ("num_samples", "<u8"),
        ("alloc_table_ptr", "<u8"),
    ]
)
"""The 24-byte file header."""

FIELD_NAME_BYTES = 16
FIELD_ARGS_BYTES = 1024
FIELD_DESCRIPTOR_DTYPE = np.dtype(
    [("type_id", "u1"), ("name", "u1", FIELD_NAME_BYTES), ("arguments", "u1", FIELD_ARGS_BYTES)]
)
"""One 1041-byte field descriptor."""

ALLOCATION_DTYPE = np.dtype([("sample_id", "<u8"), ("ptr", "<u8"), ("size", "<u8")])
"""One record of the allocation table."""

IMAGE_METADATA_DTYPE = np.dtype(
    [("mode", "u1"), ("width", "<u2"), ("height", "<u2"), ("data_ptr", "<u8")]
)
"""Metadata member of an RGB image field (packed, 13 bytes)."""

BYTES_METADATA_DTYPE = np.dtype([("ptr", "<u8"), ("size", "<u8")])
"""Metadata member of a bytes or JSON field (packed, 16 bytes)."""

NDARRAY_ARGS_DTYPE = np.dtype([("shape", "<u8", 32), ("type_length", "<u8")])
"""Start of the descriptor arguments of an ndarray or torch tensor field."""

MODE_JPEG = 0
"""Image ``mode`` of a JPEG-encoded item."""

MODE_RAW = 1
"""Image ``mode`` of raw RGB pixels (``height * width * 3`` bytes, row-major)."""

CUSTOM_TYPE_ID = 255
"""Type id FFCV writes for a field whose class is a subclass of a standard field."""

TYPE_NAMES = {
    0: "float",
    1: "int",
    2: "rgb_image",
    3: "bytes",
    4: "ndarray",
    5: "json",
    6: "torch_tensor",
}
"""FFCV type id -> the name this reader uses for that field type."""

SLIP_TYPES = {
    "float": "float",
    "int": "int",
    "rgb_image": "ImageBytes",
    "bytes": "bytes",
    "ndarray": "ndarray",
    "json": "str",
    "torch_tensor": "ndarray",
}
"""FFCV type name -> the slip cache field type it reads as."""

_SCALAR_DTYPES = {"float": np.dtype("<f8"), "int": np.dtype("<i8")}
_METADATA_DTYPES = {
    "rgb_image": IMAGE_METADATA_DTYPE,
    "bytes": BYTES_METADATA_DTYPE,
    "json": BYTES_METADATA_DTYPE,
    "ndarray": np.dtype("<u8"),
    "torch_tensor": np.dtype("<u8"),
}


class FfcvFormatError(SlipstreamError, ValueError):
    """A file is not a readable FFCV file (wrong version, truncated, damaged).

    The message names the file and the part at fault.
    """


@dataclass(frozen=True)
class FieldSpec:
    """One field of an FFCV file, as its descriptor says.

    Attributes:
        name: Field name.
        type_id: The type id in the file (255 for a subclass of a standard field).
        kind: The FFCV type it is read as (a key of :data:`SLIP_TYPES`).
        array_dtype: Element dtype of an ndarray / torch tensor field, else None.
        array_shape: Shape of one value of an ndarray / torch tensor field.
    """

    name: str
    type_id: int
    kind: str
    array_dtype: np.dtype | None = None
    array_shape: tuple[int, ...] = field(default_factory=tuple)

    @property
    def metadata_dtype(self) -> np.dtype:
        """The field's member of the per-sample metadata struct."""
        return _SCALAR_DTYPES.get(self.kind) or _METADATA_DTYPES[self.kind]

    @property
    def has_pointer(self) -> bool:
        """Whether the field's values live in the data pages (all but int and float)."""
        return self.kind not in _SCALAR_DTYPES

    @property
    def array_nbytes(self) -> int:
        """Bytes of one value of an ndarray / torch tensor field."""
        assert self.array_dtype is not None
        return int(self.array_dtype.itemsize * np.prod(self.array_shape, dtype=np.int64))


def parse_fields(
    path: Path, descriptors: np.ndarray, custom_types: dict[str, str]
) -> list[FieldSpec]:
    """Turn the field descriptors into :class:`FieldSpec` records.

    Args:
        path: The file, for error messages.
        descriptors: The ``FIELD_DESCRIPTOR_DTYPE`` records.
        custom_types: Field name -> FFCV type name to read a type-255 field as; type-255
            fields not named here are read as ``"rgb_image"``.

    Returns:
        One spec per field, in file order.

    Raises:
        FfcvFormatError: An unknown type id, a bad name or bad ndarray arguments.
    """
    specs = []
    for descriptor in descriptors:
        raw_name = bytes(descriptor["name"]).split(b"\0", 1)[0]
        try:
            name = raw_name.decode("ascii")
        except UnicodeDecodeError:
            raise FfcvFormatError(f"{path}: field name {raw_name!r} is not ASCII") from None
        type_id = int(descriptor["type_id"])
        if type_id == CUSTOM_TYPE_ID:
            kind = custom_types.get(name, "rgb_image")
        elif type_id in TYPE_NAMES:
            kind = TYPE_NAMES[type_id]
        else:
            raise FfcvFormatError(f"{path}: field {name!r} has unknown FFCV type id {type_id}")
        if not name or any(spec.name == name for spec in specs):
            raise FfcvFormatError(f"{path}: empty or repeated field name {name!r}")
        if kind in ("ndarray", "torch_tensor"):
            dtype, shape = _parse_array_args(path, name, descriptor["arguments"])
            specs.append(FieldSpec(name, type_id, kind, dtype, shape))
        else:
            specs.append(FieldSpec(name, type_id, kind))
    return specs


def _parse_array_args(path: Path, name: str, args: np.ndarray) -> tuple[np.dtype, tuple]:
    """Element dtype and shape from an ndarray field's descriptor arguments."""
    head = np.frombuffer(bytes(args[: NDARRAY_ARGS_DTYPE.itemsize]), NDARRAY_ARGS_DTYPE)[0]
    length = int(head["type_length"])
    start = NDARRAY_ARGS_DTYPE.itemsize
    try:
        if length > FIELD_ARGS_BYTES - start:
            raise ValueError(f"dtype description of {length} bytes")
        descr = json.loads(bytes(args[start : start + length]).decode("ascii"))
        dtype = np.dtype([tuple(item) for item in descr])
        if len(descr) == 1:  # FFCV stores dtype.descr of a plain dtype: [["", "<f4"]]
            dtype = dtype[0]
    except (ValueError, TypeError) as exc:
        raise FfcvFormatError(f"{path}: field {name!r} has bad array arguments ({exc})") from exc
    shape = [int(s) for s in head["shape"]]
    while shape and shape[-1] == 0:
        shape.pop()
    return dtype, tuple(shape)


def fail_for_samples(
    path: Path, wrong: np.ndarray, problem: str, cause: str, at: np.ndarray | None = None
) -> None:
    """Raise :class:`FfcvFormatError` naming the first sample where ``wrong`` is true.

    Args:
        path: The file.
        wrong: ``[num_samples]`` booleans.
        problem: What is wrong, e.g. ``"field 'image': unknown image mode"``.
        cause: The likely cause, e.g. ``"damaged file"``.
        at: Optional ``[num_samples]`` file offsets to name with the sample.
    """
    bad = np.flatnonzero(wrong)
    if len(bad):
        i = int(bad[0])
        where = f" (byte {int(at[i])})" if at is not None else ""
        raise FfcvFormatError(
            f"{path}: {problem}: sample {i}{where}, {len(bad)} of {len(wrong)} samples; {cause}"
        )


def metadata_dtype(specs: list[FieldSpec]) -> np.dtype:
    """The per-sample metadata struct: one member ``f<k>`` per field, C-aligned."""
    return np.dtype([("", spec.metadata_dtype) for spec in specs], align=True)


def item_sizes(
    path: Path, table: np.ndarray, pointers: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Look up every item's size in the allocation table by ``(sample_id, ptr)``.

    Args:
        path: The file, for error messages.
        table: The allocation table (``ALLOCATION_DTYPE``, any order).
        pointers: Field name -> ``[num_samples]`` item pointers, in field order.

    Returns:
        Field name -> ``[num_samples]`` ``<u8`` item sizes.

    Raises:
        FfcvFormatError: A sample has no allocation-table record for an item.
    """
    order = np.argsort(table["ptr"], kind="stable")
    table_ptrs, table_ids = table["ptr"][order], table["sample_id"][order]
    table_sizes = np.asarray(table["size"])[order]
    sizes_by_field: dict[str, np.ndarray] = {}
    earlier: list[np.ndarray] = []
    for name, ptrs in pointers.items():
        sample_ids = np.arange(len(ptrs), dtype=np.uint64)
        first = np.searchsorted(table_ptrs, ptrs, side="left")
        end = np.searchsorted(table_ptrs, ptrs, side="right")
        # Earlier fields of the same sample at the same ptr (zero-size items) come first.
        rank = np.zeros(len(ptrs), dtype=np.int64)
        for other in earlier:
            rank += ptrs == other
        found = np.full(len(ptrs), -1, dtype=np.int64)
        unique = (end - first == 1) & (rank == 0)
        unique[unique] = table_ids[first[unique]] == sample_ids[unique]
        found[unique] = first[unique]
        for i in np.flatnonzero(~unique & (end > first)):  # records sharing a ptr: rare
            run = np.arange(first[i], end[i])
            run = run[table_ids[run] == i]
            run = run[np.argsort(table_sizes[run], kind="stable")]  # zero-size ones first
            if rank[i] < len(run):
                found[i] = run[rank[i]]
        fail_for_samples(
            path,
            found < 0,
            f"field {name!r} has no allocation-table record for the item",
            "truncated or damaged allocation table",
            at=ptrs,
        )
        sizes_by_field[name] = table_sizes[found]
        earlier.append(ptrs)
    return sizes_by_field
