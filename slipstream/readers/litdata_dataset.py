"""Read datasets written by ``litdata.optimize()`` without importing litdata.

A LitData dataset is a folder with ``index.json`` and the chunk files it names::

    dataset/
    ├── index.json          {"config": {...}, "chunks": [{"filename": ..., "chunk_size": n,
    │                        "chunk_bytes": b, ...}, ...]}
    ├── chunk-0-0.bin       samples 0 .. n0-1
    └── chunk-0-1.bin       samples n0 .. n0+n1-1   (global order = order of "chunks")

``config`` holds ``data_format`` (one serializer name per leaf of a sample),
``data_spec`` (the sample's tree structure, a JSON-encoded pytree spec),
``item_loader`` (``"PyTreeLoader"``), ``compression`` and ``encryption``.

Chunk file (all integers little-endian ``uint32``)::

    ┌───────────┬──────────────────────────┬────────────┬─────┬──────────────┐
    │ num_items │ offsets[num_items + 1]   │ item 0     │ ... │ item n-1     │ [footer]
    └───────────┴──────────────────────────┴────────────┴─────┴──────────────┘
    item i = chunk[offsets[i] : offsets[i + 1]]  (offsets are absolute in the file)

    item = ┌──────────────────────────┬─────────┬─────────┬─────┐
           │ sizes[num_leaves] <u4    │ leaf 0  │ leaf 1  │ ... │   (leaves back to back)
           └──────────────────────────┴─────────┴─────────┴─────┘

Newer litdata may append an Arrow table of the rows after the last item (ignored here) or,
for samples that are dicts of plain values when pyarrow was installed at write time, store
ONLY that table (every item empty): those rows are read with pyarrow
(:mod:`slipstream.readers.litdata_arrow`; an ImportError naming pyarrow where it is absent).

Leaf serializers (``data_format`` entries, ``name`` or ``name:detail``) and what they become:

=========================  ===============  =================================================
serializer                 slip type        stored leaf bytes
=========================  ===============  =================================================
``jpeg``                   ``ImageBytes``   the JPEG file (passed through byte for byte)
``image:<ext>``            ``ImageBytes``   an encoded image file (png, webp, ...)
``file:<image ext>``       ``ImageBytes``   an encoded image file
``pil``                    ``ImageBytes``   ``<u4 width, <u4 height, <u4 len(mode), mode,
                                            raw pixels`` -> handed over as PNG
``bytes`` / ``file``       ``bytes``        raw bytes (``ImageBytes`` when the first sample
                                            is an encoded image, see ``detect_images``)
``int``                    ``int``          ``<i8``
``float``                  ``float``        ``<f8``
``bool``                   ``bool``         one byte, non-zero = True
``str`` / ``text``         ``str``          UTF-8
=========================  ===============  =================================================

Anything else (numpy arrays, tensors, JSON/nested lists, pickles, video, audio, ...) is
refused with an error naming the field and the serializer; pass ``fields=`` to leave such
fields out.

Images handed to :func:`slipstream.cache.build_cache`: JPEGs pass through untouched; other
encoded images, and PIL images (whose raw pixels are wrapped losslessly here: RGB and L as
binary PPM / PGM, a header in front of the pixels; other modes as PNG), are stored by the
cache builder as raw RGB items, pixel for pixel (or re-encoded as JPEG with its
``image_storage="jpeg"``).

Field names follow the sample's structure: dict keys (nested dicts joined with ``.``:
``{"a": {"b": 1}}`` -> ``"a.b"``), tuple/list positions (``(img, label)`` -> ``"0"``,
``"1"``; nested: ``"meta.0"``), and a sample that is one value is named ``"image"`` if it
is an image or bytes (encoded images, typically), else ``"value"``. ``rename`` maps them to
other names (e.g. ``{"0": "image", "1": "label"}`` so the loader's default pipelines find
``"image"``).
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from slipstream.cache.jpeg_check import sniff_format
from slipstream.errors import SlipstreamError
from slipstream.readers.litdata_arrow import arrow_rows, rows_only_in_arrow

INDEX_NAME = "index.json"
"""The file that makes a folder a LitData dataset."""

IMAGE_SERIALIZERS = frozenset({"jpeg", "pil", "image"})
"""Serializers whose leaves are always images."""

_IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"})
_SCALARS = {"int": ("int", "<i8"), "float": ("float", "<f8"), "bool": ("bool", "|u1")}
_STRINGS = frozenset({"str", "text"})
_BYTES = frozenset({"bytes", "file"})
_U32 = np.dtype("<u4")
# Arrow-only chunks (slipstream.readers.litdata_arrow) give Python values; None = missing.
_PY_TYPES = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "bytes": bytes,
    "ImageBytes": bytes,
}
_ARROW_DEFAULTS = {
    "int": 0,
    "float": 0.0,
    "bool": False,
    "str": "",
    "bytes": b"",
    "ImageBytes": b"",
}


class UnknownFieldError(KeyError):
    """A requested field is not in the dataset (the message names the dataset)."""


class LitDataFormatError(SlipstreamError, ValueError):
    """The dataset's index or chunks are not something this reader can read."""


class ChunkNotFoundError(LitDataFormatError, FileNotFoundError):
    """A chunk file that ``index.json`` names does not exist."""


def _serializer_key(data_format: str) -> tuple[str, str]:
    """``"image:png"`` -> ``("image", "png")``; ``"int"`` -> ``("int", "")``."""
    name, _, detail = data_format.partition(":")
    return name.lower(), detail.lower()


def _leaf_names(spec: dict[str, Any], prefix: str = "") -> list[str]:
    """Names of the leaves of a litdata pytree spec (JSON form), in flattening order."""
    kind, context = spec.get("type"), spec.get("context")
    children = spec.get("children_spec") or []
    if kind is None and not children:
        return [prefix]
    if kind in ("builtins.dict", "collections.OrderedDict", "collections.defaultdict"):
        keys = json.loads(context) if isinstance(context, str) else context
        if isinstance(keys, dict):  # defaultdict: {"dict_context": [...], ...}
            keys = keys.get("dict_context", [])
    else:  # tuple, list, namedtuple, deque: positions
        keys = list(range(len(children)))
    if len(keys) != len(children):
        raise LitDataFormatError(
            f"data_spec node {kind} has {len(keys)} keys, {len(children)} children"
        )
    names = []
    for key, child in zip(keys, children, strict=True):
        names.extend(_leaf_names(child, f"{prefix}.{key}" if prefix else str(key)))
    return names


_NETPBM_MAGIC = {"RGB": b"P6", "L": b"P5"}
"""PIL modes whose raw pixels are a binary PPM / PGM body as they are."""


def _pil_to_lossless(leaf: bytes | memoryview) -> bytes:
    """The raw PIL leaf of litdata (size, mode, pixels) as a lossless encoded image.

    RGB and L pixels get a binary PPM / PGM header (no compression, no pixel touched);
    other modes are encoded as PNG.
    """
    width, height, mode_len = np.frombuffer(leaf, _U32, count=3)
    start = 12 + int(mode_len)
    mode = bytes(leaf[12:start]).decode("ascii")
    magic = _NETPBM_MAGIC.get(mode)
    pixels = int(width) * int(height) * (3 if mode == "RGB" else 1)
    if magic is not None and len(leaf) - start == pixels:
        return b"%s\n%d %d\n255\n" % (magic, int(width), int(height)) + bytes(leaf[start:])
    image = Image.frombytes(mode, (int(width), int(height)), bytes(leaf[start:]))
    if mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
        image = image.convert("RGB")  # e.g. CMYK, YCbCr, HSV: PNG cannot hold them
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


class LitDataReader:
    """Samples of a LitData (``litdata.optimize``) dataset folder, read with mmap.

    See the module docstring for the format, the field names and the field types.

    Args:
        root: Folder with ``index.json`` and its chunk files.
        fields: Field names to keep (after ``rename``); None keeps every field. Fields
            left out may use serializers this reader does not support.
        rename: Map from a field's name (as in the module docstring) to the name to store.
        detect_images: Type a ``bytes`` field ``"ImageBytes"`` when its first sample starts
            with the magic bytes of an image format (JPEG, PNG, ...).
        check_chunks: Check at once that every chunk file exists with the size the index
            gives. Without it, call :meth:`check_chunks` before reading.

    Raises:
        FileNotFoundError: No ``index.json``, or (``check_chunks``) a chunk file is missing.
        LitDataFormatError: Compressed or encrypted chunks, another item loader, a
            serializer this reader cannot store, or a chunk with the wrong size.

    Attributes:
        root: The dataset folder.
        config: ``index.json``'s ``config``.
        chunks: ``index.json``'s ``chunks`` list.
        leaf_names: The field name of every leaf, in ``data_format`` order.
        data_format: The serializer of every leaf.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        fields: list[str] | None = None,
        rename: dict[str, str] | None = None,
        detect_images: bool = True,
        check_chunks: bool = True,
    ) -> None:
        """Parse ``index.json`` (see the class docstring)."""
        self.root = Path(root).expanduser()
        index_path = self.root / INDEX_NAME
        if not index_path.is_file():
            raise FileNotFoundError(f"{self.root} is not a LitData dataset: no {INDEX_NAME}")
        self._index_bytes = index_path.read_bytes()
        try:
            index = json.loads(self._index_bytes)
            self.config: dict[str, Any] = index["config"]
            self.chunks: list[dict[str, Any]] = index["chunks"]
            for chunk in self.chunks:
                if not isinstance(chunk["filename"], str):
                    raise TypeError(f"chunk filename {chunk['filename']!r} is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise LitDataFormatError(f"{index_path} is not a LitData index ({exc})") from exc
        try:
            self._check_config(index_path)
            self.data_format: list[str] = list(self.config["data_format"])
            spec = self.config.get("data_spec")
            names = _leaf_names(json.loads(spec)[1]) if spec else [""]
            if len(names) != len(self.data_format):
                raise LitDataFormatError(
                    f"{index_path}: data_spec has {len(names)} leaves, data_format "
                    f"{len(self.data_format)}"
                )
            if names == [""]:  # the sample is a single value
                key = _serializer_key(self.data_format[0])[0]
                names = ["image" if key in IMAGE_SERIALIZERS | _BYTES else "value"]
            self._rename = dict(rename or {})
            self._source_names = names
            self.leaf_names = [self._rename.get(name, name) for name in names]
            self._options = {
                "fields": fields,
                "rename": self._rename,
                "detect_images": detect_images,
            }
            keep = set(self.leaf_names if fields is None else fields)
            unknown = keep - set(self.leaf_names)
            if unknown:
                raise UnknownFieldError(
                    f"no field(s) {sorted(unknown)} in {self.root}; fields: {self.leaf_names}"
                )
            self._leaves = [i for i, name in enumerate(self.leaf_names) if name in keep]
            sizes = np.array([int(c["chunk_size"]) for c in self.chunks], dtype=np.int64)
            self._chunk_starts = np.concatenate([[0], np.cumsum(sizes)])
            self._maps: dict[int, memoryview] = {}
            self._arrow_only: dict[int, bool] = {}
            self._arrow_rows: OrderedDict[int, list[dict[str, Any]]] = OrderedDict()
            self._lock = threading.Lock()
            self._detect_images = detect_images
            self._field_types: dict[str, str] | None = None
            self._types_without_detection()  # refuse unsupported serializers now
        except (LitDataFormatError, UnknownFieldError):
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise LitDataFormatError(
                f"{index_path}: damaged LitData index ({type(exc).__name__}: {exc})"
            ) from exc
        if check_chunks:
            self.check_chunks()

    def _check_config(self, index_path: Path) -> None:
        config = self.config
        loader = config.get("item_loader") or "PyTreeLoader"
        if loader != "PyTreeLoader":
            raise LitDataFormatError(
                f"{index_path}: item_loader {loader!r} is not supported (only PyTreeLoader, "
                f"the default of litdata.optimize)"
            )
        if config.get("compression") or config.get("compression_level"):
            raise LitDataFormatError(
                f"{index_path}: chunks are compressed ({config.get('compression')!r}); write "
                f"the dataset without compression= to read it with slipstream"
            )
        if config.get("encryption"):
            raise LitDataFormatError(f"{index_path}: encrypted chunks are not supported")
        if not config.get("data_format"):
            raise LitDataFormatError(f"{index_path}: config has no data_format")

    def _types_without_detection(self) -> dict[str, str]:
        types = {}
        for leaf in self._leaves:
            name, fmt = self.leaf_names[leaf], self.data_format[leaf]
            key, detail = _serializer_key(fmt)
            if key in IMAGE_SERIALIZERS or (key == "file" and detail in _IMAGE_EXTENSIONS):
                types[name] = "ImageBytes"
            elif key in _SCALARS:
                types[name] = _SCALARS[key][0]
            elif key in _STRINGS:
                types[name] = "str"
            elif key in _BYTES:
                types[name] = "bytes"
            else:
                raise LitDataFormatError(
                    f"field {name!r} of {self.root} uses the litdata serializer {fmt!r}, which "
                    f"slipstream cannot store (supported: jpeg, pil, image, bytes, file, int, "
                    f"float, bool, str, text); leave it out with fields=[...]"
                )
        return types

    @property
    def field_types(self) -> dict[str, str]:
        """Field name -> slip type; ``bytes`` fields holding images become ``ImageBytes``."""
        if self._field_types is None:
            types = self._types_without_detection()
            if self._detect_images and len(self) and "bytes" in types.values():
                first = self._leaf_values(0)
                for leaf in self._leaves:
                    name = self.leaf_names[leaf]
                    if types[name] == "bytes" and sniff_format(first[leaf] or b"") is not None:
                        types[name] = "ImageBytes"
            self._field_types = types
        return self._field_types

    def check_chunks(self) -> None:
        """Check that every chunk file exists and has the size ``index.json`` gives.

        Raises:
            FileNotFoundError: A chunk file is missing (names the chunk and the dataset).
            LitDataFormatError: A chunk file has another size than the index says.
        """
        for chunk in self.chunks:
            path = self.root / chunk["filename"]
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise ChunkNotFoundError(
                    f"chunk {chunk['filename']!r} named by {self.root / INDEX_NAME} does not "
                    f"exist ({path})"
                ) from None
            expected = chunk.get("chunk_bytes")
            if expected is not None and size != int(expected):
                raise LitDataFormatError(
                    f"chunk {path} has {size} bytes, {self.root / INDEX_NAME} says {expected} "
                    f"(truncated or rewritten)"
                )

    def __len__(self) -> int:
        """Number of samples."""
        return int(self._chunk_starts[-1])

    def __repr__(self) -> str:
        """Root, sample count and fields."""
        return f"LitDataReader({str(self.root)!r}, {len(self)} samples, fields={self.leaf_names})"

    def _chunk(self, chunk_index: int) -> memoryview:
        view = self._maps.get(chunk_index)
        if view is None:
            with self._lock:
                view = self._maps.get(chunk_index)
                if view is None:
                    path = self.root / self.chunks[chunk_index]["filename"]
                    with open(path, "rb") as f:
                        view = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
                    self._maps[chunk_index] = view
        return view

    def _locate(self, index: int) -> tuple[int, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        chunk_index = int(np.searchsorted(self._chunk_starts, index, side="right")) - 1
        return chunk_index, index - int(self._chunk_starts[chunk_index])

    def _arrow_chunk(self, chunk_index: int) -> list[dict[str, Any]] | None:
        """A chunk's rows when it stores them only as Arrow (the last few cached), else None."""
        flag = self._arrow_only.get(chunk_index)
        if flag is None:
            flag = self._arrow_only[chunk_index] = rows_only_in_arrow(self._chunk(chunk_index))
        if not flag:
            return None
        with self._lock:
            rows = self._arrow_rows.get(chunk_index)
            if rows is None:
                name = self.chunks[chunk_index]["filename"]
                try:
                    rows = arrow_rows(self._chunk(chunk_index), name)
                except ValueError as exc:
                    raise LitDataFormatError(f"{self.root}: {exc}") from exc
                self._arrow_rows[chunk_index] = rows
                while len(self._arrow_rows) > 4:
                    self._arrow_rows.popitem(last=False)
        return rows

    def _leaf_values(self, index: int) -> list[Any]:
        """Every leaf of sample ``index``.

        A zero-copy view of the leaf's serialized bytes (valid while the reader lives), or
        for Arrow-only chunks the decoded value.
        """
        chunk_index, local = self._locate(index)
        rows = self._arrow_chunk(chunk_index)
        if rows is not None:
            row = rows[local]
            return [row.get(name) for name in self._source_names]
        data = self._chunk(chunk_index)
        name = self.chunks[chunk_index]["filename"]
        count = int(np.frombuffer(data, _U32, count=1)[0])
        if local >= count:
            raise LitDataFormatError(f"chunk {name} holds {count} items, index.json says more")
        begin, end = (int(v) for v in np.frombuffer(data, _U32, count=2, offset=4 + 4 * local))
        n = len(self.data_format)
        if end < begin + 4 * n or end > len(data):
            raise LitDataFormatError(f"chunk {name}: item {local} spans [{begin}, {end}), corrupt")
        sizes = np.frombuffer(data, _U32, count=n, offset=begin)
        views = []
        pos = begin + 4 * n
        for size in sizes.tolist():
            views.append(data[pos : pos + size])
            pos += size
        if pos != end:
            raise LitDataFormatError(f"chunk {name}: item {local} leaf sizes do not add up")
        return views

    def read_sample(self, index: int) -> dict[str, Any]:
        """Read one sample.

        Args:
            index: Sample index in ``[0, len(self))``.

        Returns:
            Field name -> value: images as encoded bytes (PIL images as PPM / PGM or PNG),
            ``bytes``
            as bytes, numbers as Python ints/floats/bools, strings as str.
        """
        values = self._leaf_values(index)
        types = self.field_types
        sample: dict[str, Any] = {}
        for leaf in self._leaves:
            name, value = self.leaf_names[leaf], values[leaf]
            key = _serializer_key(self.data_format[leaf])[0]
            kind = types[name]
            if not isinstance(value, memoryview):  # a row of an Arrow-only chunk
                sample[name] = _ARROW_DEFAULTS[kind] if value is None else _PY_TYPES[kind](value)
            elif key == "pil":
                sample[name] = _pil_to_lossless(value)
            elif key in _SCALARS:
                number = np.frombuffer(value, _SCALARS[key][1], count=1)[0]
                sample[name] = bool(number) if key == "bool" else number.item()
            elif kind == "str":
                sample[name] = str(value, "utf-8")
            else:
                sample[name] = bytes(value)
        return sample

    def describe(self, index: int) -> str:
        """``<root>[<index>] (<chunk file>)``, for error messages."""
        chunk_index, _ = self._locate(index)
        return f"{self.root}[{index}] ({self.chunks[chunk_index]['filename']})"

    def fingerprint(self) -> str:
        """Hex digest of ``index.json``'s bytes and this reader's options.

        litdata rewrites ``index.json`` (chunk sizes, ``updated_at``) whenever it writes a
        dataset, so a rewritten dataset gets a new fingerprint; the same dataset read from
        a local folder or from S3 gets the same one.
        """
        digest = hashlib.sha256(self._index_bytes)
        digest.update(json.dumps(self._options, sort_keys=True).encode())
        return digest.hexdigest()
