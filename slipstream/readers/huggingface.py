"""Read Hugging Face ``datasets`` datasets (extra ``slipstream[hf]``) for the slip cache.

Sources :func:`load_hf_dataset` opens:

==========================================  =============================================
source                                      opened with
==========================================  =============================================
a ``datasets.Dataset`` (in memory)           itself (a ``DatasetDict``: pick ``split``)
a ``save_to_disk`` folder (``state.json``)   ``datasets.load_from_disk``
  ... of a ``DatasetDict`` (``dataset_dict.json``)  the same, then ``[split]``
a folder of ``*.parquet`` files              ``Dataset.from_parquet`` (sorted file names)
a folder of ``*.arrow`` files                ``Dataset.from_file`` per file, concatenated
a hub name (``"user/name"``, ``hf://...``)   ``datasets.load_dataset(name, split=split)``
==========================================  =============================================

Columns become fields (``features`` -> slip type): ``Image`` -> ``"ImageBytes"`` (the
stored encoded bytes, read without decoding: JPEG bytes pass through unchanged; other
formats, PNG included, are handed to the cache builder as they are, which keeps them
lossless as raw RGB items, :mod:`slipstream.cache.raw_items`); ``ClassLabel`` -> ``"int"``
with its names (:attr:`HuggingFaceReader.class_names`, stored in the cache manifest);
integer ``Value`` -> ``"int"``, floating -> ``"float"``, ``bool`` -> ``"bool"``,
``string`` -> ``"str"``, ``binary`` -> ``"bytes"``. Any other column (sequences, arrays,
audio, ...) is an error naming it; drop it first (``dataset.remove_columns([...])``).

``datasets`` is imported only here, when a reader is made; without it the error names the
``slipstream[hf]`` extra.

Example:
    >>> dataset = load_hf_dataset("/data/cifar10_saved", split="train")  # doctest: +SKIP
    >>> HuggingFaceReader(dataset).field_types                          # doctest: +SKIP
    {'img': 'ImageBytes', 'label': 'int'}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slipstream.errors import SlipstreamError

HF_EXTRA_HINT = "pip install 'slipstream[hf]'"
"""What to install for Hugging Face sources."""

_INT_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
_FLOAT_DTYPES = frozenset({"float16", "float32", "float64"})
_STR_DTYPES = frozenset({"string", "large_string"})
_BYTES_DTYPES = frozenset({"binary", "large_binary"})
_NUMBER_TYPES = {"int": np.int64, "float": np.float64, "bool": np.bool_}


class HuggingFaceError(SlipstreamError, ValueError):
    """A Hugging Face dataset cannot be read: names the dataset and the column or file."""


def require_datasets() -> Any:
    """Import and return the ``datasets`` module.

    Raises:
        ImportError: ``datasets`` is not installed; the message names the extra.
    """
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            f"reading Hugging Face datasets needs the 'datasets' package: {HF_EXTRA_HINT}"
        ) from exc
    return datasets


def is_hf_dataset(obj: Any) -> bool:
    """Whether ``obj`` is a ``datasets.Dataset`` or ``DatasetDict`` (without importing it).

    Args:
        obj: Any object.
    """
    kind = type(obj)
    return kind.__module__.split(".")[0] == "datasets" and kind.__name__ in (
        "Dataset",
        "DatasetDict",
    )


def hf_folder_files(path: str | os.PathLike) -> list[Path]:
    """The files that make ``path`` a local Hugging Face dataset, sorted; empty if none.

    ``state.json`` / ``dataset_dict.json`` folders (``save_to_disk``) list every file
    under them; otherwise the ``*.parquet`` or ``*.arrow`` files directly in ``path``.

    Args:
        path: A local folder.
    """
    root = Path(path)
    if not root.is_dir():
        return []
    if (root / "state.json").is_file() or (root / "dataset_dict.json").is_file():
        return sorted(p for p in root.rglob("*") if p.is_file())
    for suffix in (".parquet", ".arrow"):
        files = sorted(p for p in root.iterdir() if p.suffix == suffix and p.is_file())
        if files:
            return files
    return []


def folder_fingerprint(path: str | os.PathLike, split: str | None) -> str:
    """Hex digest of a local Hugging Face folder: each file's name, size and mtime, the split.

    One ``os.stat`` per file (a few files per dataset), no dataset loaded.

    Args:
        path: A folder :func:`hf_folder_files` recognizes.
        split: The split asked for.
    """
    root = Path(path)
    digest = hashlib.sha256(f"hf-folder\0{split}\0".encode())
    for file in hf_folder_files(root):
        st = file.stat()
        digest.update(f"{file.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _pick_split(dataset: Any, split: str | None, where: str) -> Any:
    if type(dataset).__name__ != "DatasetDict":
        return dataset
    splits = list(dataset.keys())
    if split is None and len(splits) == 1:
        split = splits[0]
    if split not in dataset:
        raise HuggingFaceError(f"{where} has splits {splits}: pass split=<one of them>")
    return dataset[split]


def load_hf_dataset(
    source: Any, split: str | None = None, *, cache_dir: str | os.PathLike | None = None
) -> Any:
    """Open a Hugging Face dataset (see the module table).

    Args:
        source: A ``datasets.Dataset`` / ``DatasetDict``, a local folder, or a hub name.
        split: Split to read (required where there are several).
        cache_dir: Where ``datasets`` writes Arrow files when it converts Parquet or
            downloads from the hub (default: its own cache).

    Returns:
        A ``datasets.Dataset``.

    Raises:
        ImportError: ``datasets`` is not installed.
        HuggingFaceError: Several splits and no ``split``, or a folder without data files.
    """
    datasets = require_datasets()
    if is_hf_dataset(source):
        return _pick_split(source, split, "the dataset")
    text = os.fspath(source)
    path = Path(text).expanduser()
    cache = None if cache_dir is None else str(cache_dir)
    if path.is_dir():
        files = hf_folder_files(path)
        if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
            return _pick_split(datasets.load_from_disk(str(path)), split, str(path))
        if files and files[0].suffix == ".parquet":
            parquet = [str(f) for f in files]
            return datasets.Dataset.from_parquet(parquet, cache_dir=cache)
        if files:
            parts = [datasets.Dataset.from_file(str(f)) for f in files]
            return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
        raise HuggingFaceError(
            f"{path} holds no Hugging Face dataset (no state.json, dataset_dict.json, "
            f"*.parquet or *.arrow file)"
        )
    name = text.removeprefix("hf://").removeprefix("datasets/")
    return _pick_split(datasets.load_dataset(name, split=split, cache_dir=cache), split, name)


def _field_type(column: str, feature: Any, where: str) -> str:
    kind = type(feature).__name__
    if kind == "Image":
        return "ImageBytes"
    if kind == "ClassLabel":
        return "int"
    if kind == "Value":
        dtype = str(feature.dtype)
        if dtype in _INT_DTYPES:
            return "int"
        if dtype in _FLOAT_DTYPES:
            return "float"
        if dtype == "bool":
            return "bool"
        if dtype in _STR_DTYPES:
            return "str"
        if dtype in _BYTES_DTYPES:
            return "bytes"
        kind = f"Value({dtype!r})"
    raise HuggingFaceError(
        f"column {column!r} of {where} is {kind}, which slipstream cannot store (Image, "
        f"ClassLabel, integer/float/bool/string/binary Value); drop it first with "
        f"dataset.remove_columns([{column!r}])"
    )


def field_renames(columns: Sequence[str], field_names: Any) -> dict[str, str]:
    """Column -> field name, from ``field_names`` (a sequence in column order, or a mapping).

    Args:
        columns: The dataset's column names, in order.
        field_names: None (keep the names), a sequence of names for the first columns, or a
            mapping ``{column: name}``.

    Raises:
        HuggingFaceError: More names than columns, an unknown column, or duplicate names.
    """
    if field_names is None:
        renames = {}
    elif isinstance(field_names, Mapping):
        unknown = sorted(set(field_names) - set(columns))
        if unknown:
            raise HuggingFaceError(f"field_names names unknown column(s) {unknown}: {columns}")
        renames = {str(k): str(v) for k, v in field_names.items()}
    else:
        names = [str(n) for n in field_names]
        if len(names) > len(columns):
            raise HuggingFaceError(
                f"field_names has {len(names)} names for {len(columns)} columns {columns}"
            )
        renames = dict(zip(columns, names, strict=False))
    final = [renames.get(c, c) for c in columns]
    if len(set(final)) != len(final):
        raise HuggingFaceError(f"field names {final} are not unique")
    return renames


class HuggingFaceReader:
    """A reader (for :func:`~slipstream.cache.build_cache`) of one ``datasets.Dataset``.

    Args:
        dataset: A ``datasets.Dataset`` (e.g. from :func:`load_hf_dataset`).
        field_names: Rename columns: a sequence (names of the first columns, in order) or a
            mapping ``{column: name}``.
        fingerprint: The source identity to name the cache after (default: the dataset's
            own ``_fingerprint``, changed by every transform ``datasets`` applies).
        name: What to call the dataset in messages and cache names.

    Raises:
        ImportError: ``datasets`` is not installed.
        HuggingFaceError: A column of a type slipstream cannot store, or bad ``field_names``.

    Attributes:
        dataset: The dataset, image columns cast to undecoded ``{"bytes", "path"}``.
        field_types: Field name -> slip type.
        class_names: Field name -> class names of each ``ClassLabel`` column.
        classes: The class names of the ``"label"`` field, if it has them, else None.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        field_names: Sequence[str] | Mapping[str, str] | None = None,
        fingerprint: str | None = None,
        name: str | None = None,
    ) -> None:
        """Read the features (see the class docstring); nothing is decoded."""
        datasets = require_datasets()
        self.name = name or (dataset.info.dataset_name or "dataset")
        where = f"Hugging Face dataset {self.name!r}"
        columns = list(dataset.column_names)
        self._renames = field_renames(columns, field_names)
        self._columns = columns
        self.field_types: dict[str, str] = {}
        self.class_names: dict[str, list[str]] = {}
        for column in columns:
            feature = dataset.features[column]
            field = self._renames.get(column, column)
            self.field_types[field] = _field_type(column, feature, where)
            if type(feature).__name__ == "Image":
                dataset = dataset.cast_column(column, datasets.Image(decode=False))
            elif type(feature).__name__ == "ClassLabel":
                self.class_names[field] = list(feature.names)
        self.dataset = dataset
        self._arrow = dataset.with_format("arrow")
        self._fingerprint = fingerprint
        self.classes = self.class_names.get("label")

    def __len__(self) -> int:
        """Number of rows."""
        return len(self.dataset)

    def __repr__(self) -> str:
        """Name, rows and field types."""
        return f"HuggingFaceReader({self.name!r}, {len(self)} rows, {self.field_types})"

    def describe(self, index: int) -> str:
        """``<name>[<index>]``, for error messages."""
        return f"Hugging Face dataset {self.name!r}[{index}]"

    def fingerprint(self) -> str:
        """Hex digest naming the source: the given fingerprint (or the dataset's) + renames."""
        base = self._fingerprint or getattr(self.dataset, "_fingerprint", None) or ""
        digest = hashlib.sha256(f"hf\0{base}\0".encode())
        digest.update(json.dumps([self._columns, self._renames], sort_keys=True).encode())
        return digest.hexdigest()

    def read_batch(self, start: int, stop: int) -> dict[str, Any]:
        """Rows ``start .. stop-1`` as columns (one Arrow slice, no image decoded).

        Args:
            start: First row.
            stop: One past the last row.

        Returns:
            Field -> images as encoded ``bytes``, numbers as arrays, strings as lists.

        Raises:
            OSError: An image stored as a path only cannot be read.
        """
        table = self._arrow[start:stop]
        out: dict[str, Any] = {}
        for column in self._columns:
            field = self._renames.get(column, column)
            kind = self.field_types[field]
            values = table.column(column).to_pylist()
            if kind == "ImageBytes":
                out[field] = [self._image_bytes(v, start + i) for i, v in enumerate(values)]
            elif kind in _NUMBER_TYPES:
                if any(v is None for v in values):
                    bad = start + values.index(None)
                    raise HuggingFaceError(f"{self.describe(bad)}: column {column!r} is null")
                out[field] = np.asarray(values, dtype=_NUMBER_TYPES[kind])
            elif kind == "str":
                out[field] = ["" if v is None else v for v in values]
            else:
                out[field] = [b"" if v is None else bytes(v) for v in values]
        return out

    def read_sample(self, index: int) -> dict[str, Any]:
        """One row: field -> value (images as encoded bytes, numbers as Python scalars)."""
        row = self.read_batch(index, index + 1)
        return {k: (v[0].item() if isinstance(v, np.ndarray) else v[0]) for k, v in row.items()}

    def _image_bytes(self, value: Any, index: int) -> bytes:
        if value is None:
            return b""  # the builder reports an empty image naming the sample
        data, path = value.get("bytes"), value.get("path")
        if data:
            return bytes(data)
        if path:
            with open(path, "rb") as f:
                return f.read()
        return b""
