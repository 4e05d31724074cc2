"""``value -> sample indices`` for one field of a cache: built with numpy, or stored.

One stable ``argsort`` of the field's values groups the sample indices by value; the
groups' bounds come from ``np.unique``. A lookup is a binary search per asked value and a
concatenation of slices, with no per-sample Python.

An index can be stored in the cache folder with :func:`write_index`, in the original
slipstream's file format (so caches exchanged with it keep their indexes)::

    <cache>/<field>_index.npy     np.save of a 0-d object array holding a dict
                                  {value: int64 array of the sample indices with that value}
                                  value = a Python int / float / bool (numeric field) or str

:class:`~slipstream.cache.SlipCache` lists these files when it opens and reads one with
``cache.get_index(field)``: the pickle is read by an unpickler that admits numpy arrays and
plain values only (no other code runs), and the index is checked against the field (every
sample exactly once, under its own value): a stale or garbled file is a
:class:`FieldIndexError` naming it. Files are written to a temporary name and renamed.

Example:
    >>> index = FieldIndex.of_field(SlipCache.open("train.slip"), "label")  # doctest: +SKIP
    >>> subset = index.indices_of([0, 3, 7])  # sorted int64 sample ids  # doctest: +SKIP
    >>> write_index("train.slip", fields=["label"])  # doctest: +SKIP
    >>> SlipCache.open("train.slip").get_index("label")[3]  # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import secrets
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from slipstream.cache.format import BYTES_TYPES, STRING_TYPE
from slipstream.errors import SlipstreamError

logger = logging.getLogger(__name__)

INDEX_SUFFIX = "_index.npy"
"""A stored index of field ``f`` is the file ``f + INDEX_SUFFIX`` in the cache folder."""


class FieldIndexError(SlipstreamError, ValueError):
    """A stored field index is unreadable, or does not match its cache; names the file."""


class FieldIndex:
    """Sample indices grouped by the value of one field.

    Lookups: :meth:`indices_of` (any number of values, sorted union), or, as the original
    slipstream's index dict, ``index[value]`` (KeyError when no sample has it),
    ``value in index``, ``len(index)``, :meth:`keys` and :meth:`items`. (``index.values``
    is the array of distinct values, not a method.)

    Args:
        values: One value per sample (a 1-D numeric array, or fixed-width ``bytes`` of
            UTF-8 strings as :meth:`of_field` builds for string fields).
        is_string: Whether ``values`` are encoded strings (lookups then take ``str``).

    Attributes:
        values: The distinct values, sorted.
        counts: Number of samples per distinct value.
    """

    def __init__(self, values: np.ndarray, *, is_string: bool = False) -> None:
        """Sort the sample indices by value (see the class docstring)."""
        values = np.asarray(values)
        if values.ndim != 1:
            raise ValueError(f"a field index needs one value per sample, got shape {values.shape}")
        self.is_string = is_string
        self._order = np.argsort(values, kind="stable").astype(np.int64)
        self.values, starts, self.counts = np.unique(
            values[self._order], return_index=True, return_counts=True
        )
        self._starts = starts.astype(np.int64)

    @classmethod
    def _from_groups(
        cls, values: np.ndarray, groups: Sequence[np.ndarray], *, is_string: bool
    ) -> FieldIndex:
        """An index from sorted distinct ``values`` and each one's sample indices."""
        index = cls.__new__(cls)
        index.is_string = is_string
        index.values = values
        index.counts = np.array([len(g) for g in groups], dtype=np.int64)
        index._starts = np.concatenate([[0], np.cumsum(index.counts)[:-1]]).astype(np.int64)
        parts = [np.sort(np.asarray(g, dtype=np.int64)) for g in groups]
        index._order = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return index

    @classmethod
    def of_field(cls, store: Any, field: str, *, use_stored: bool = True) -> FieldIndex:
        """Index a field of a cache (or any store with the slip cache's field access).

        Args:
            store: A :class:`~slipstream.cache.SlipCache` or
                :class:`~slipstream.readers.FfcvFile`.
            field: A numeric field with one value per sample, or a string field.
            use_stored: Read the cache's stored ``<field>_index.npy`` where it has one
                (:func:`write_index`) instead of sorting the field.

        Raises:
            KeyError: No such field.
            TypeError: A bytes or image field.
            FieldIndexError: The stored index is garbled or stale (names the file).
        """
        if use_stored and field in getattr(store, "indexed_fields", ()):
            return store.get_index(field)
        kind = store.field_types.get(field)
        if kind is None:
            raise KeyError(f"{store.path}: no field {field!r}; fields: {list(store.field_types)}")
        if kind in BYTES_TYPES:
            raise TypeError(f"{store.path}: field {field!r} is {kind!r}; index a number or str")
        if kind == STRING_TYPE:
            return cls(_field_values(store, field), is_string=True)
        return cls(_field_values(store, field))

    def __len__(self) -> int:
        """Number of distinct values."""
        return len(self.values)

    def __repr__(self) -> str:
        """Distinct value and sample counts."""
        return f"FieldIndex({len(self.values)} values, {len(self._order)} samples)"

    def indices_of(self, wanted: Any) -> np.ndarray:
        """Sorted sample indices whose value is one of ``wanted``.

        Args:
            wanted: One value or an iterable of values; values no sample has are ignored.

        Returns:
            Sorted, unique ``int64`` sample indices.
        """
        positions = self._positions(wanted)
        if len(positions) == 0:
            return np.zeros(0, dtype=np.int64)
        parts = [
            self._order[start : start + count]
            for start, count in zip(self._starts[positions], self.counts[positions], strict=True)
        ]
        return np.sort(np.concatenate(parts))

    def _positions(self, wanted: Any) -> np.ndarray:
        """Positions in :attr:`values` of the asked values that some sample has."""
        keys = self._keys(wanted)
        positions = np.searchsorted(self.values, keys)
        inside = positions < len(self.values)
        positions, keys = positions[inside], keys[inside]
        return np.unique(positions[self.values[positions] == keys])

    def _keys(self, wanted: Any) -> np.ndarray:
        if isinstance(wanted, (str, bytes)) or not isinstance(wanted, Iterable):
            wanted = [wanted]
        wanted = list(wanted)
        if not self.is_string:
            return np.asarray(wanted)  # no cast: 3.5 must not find 3
        width = self.values.dtype.itemsize
        encoded = [w.encode("utf-8") if isinstance(w, str) else bytes(w) for w in wanted]
        fits = [e for e in encoded if len(e) <= width and not e.endswith(b"\0")]
        return np.asarray(fits, dtype=self.values.dtype)

    # --- the original slipstream's dict interface -------------------------------------

    def __getitem__(self, value: Any) -> np.ndarray:
        """Sorted ``int64`` sample indices with exactly this value.

        Raises:
            KeyError: No sample has ``value``.
        """
        if isinstance(value, (list, tuple, np.ndarray)):
            raise TypeError("index[value] takes one value; use indices_of(values) for several")
        positions = self._positions(value)
        if len(positions) == 0:
            raise KeyError(value)
        start, count = self._starts[positions[0]], self.counts[positions[0]]
        return np.sort(self._order[start : start + count])

    def __contains__(self, value: Any) -> bool:
        """Whether some sample has ``value``."""
        try:
            return len(self._positions(value)) > 0
        except (TypeError, ValueError):
            return False

    def __iter__(self) -> Iterator[Any]:
        """The distinct values, sorted, as Python values (``str`` for string fields)."""
        return iter(self.keys())

    def keys(self) -> list[Any]:
        """The distinct values, sorted, as Python values (``str`` for string fields)."""
        if self.is_string:
            return [bytes(v).decode("utf-8") for v in self.values]
        return [v.item() for v in self.values]

    def items(self) -> list[tuple[Any, np.ndarray]]:
        """``(value, sorted int64 sample indices)`` pairs, as the original's index dict."""
        return [
            (key, np.sort(self._order[start : start + count]))
            for key, start, count in zip(self.keys(), self._starts, self.counts, strict=True)
        ]

    def as_dict(self) -> dict[Any, np.ndarray]:
        """``{value: int64 sample indices}``: what the original slipstream stored."""
        return dict(self.items())


# --- stored indexes ---------------------------------------------------------------------


def index_file_name(field: str) -> str:
    """``<field>_index.npy``: the file name of a stored index."""
    return f"{field}{INDEX_SUFFIX}"


def find_index_files(folder: str | os.PathLike, fields: Iterable[str]) -> dict[str, Path]:
    """The stored index files of a cache folder, for the fields the cache has.

    Args:
        folder: The cache folder (the one holding ``manifest.json``).
        fields: The cache's field names.

    Returns:
        Field name -> path of its ``<field>_index.npy``.
    """
    folder = Path(folder)
    found = {}
    for field in fields:
        path = folder / index_file_name(field)
        if path.is_file():
            found[field] = path
    return found


_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, dtypes and builtin values only; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_index_dict(path: Path) -> dict[Any, Any]:
    """The dict an index file holds, read without running arbitrary pickled code."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f".npy version {version} (an index file is version 1.0 or 2.0)")
        if dtype != np.dtype(object) or shape != ():
            raise ValueError(f"holds a {dtype} array of shape {shape}, not a pickled dict")
        obj = _ArraysOnlyUnpickler(io.BytesIO(f.read())).load()
    if isinstance(obj, np.ndarray) and obj.shape == () and obj.dtype == object:
        obj = obj.item()
    if not isinstance(obj, dict):
        raise ValueError(f"holds a {type(obj).__name__}, not a dict")
    return obj


def load_field_index(path: str | os.PathLike, store: Any, field: str) -> FieldIndex:
    """Read a stored index and check it against the field it indexes.

    Checks: a dict of ``value -> 1-D integer array``; together the arrays hold every sample
    index of the store exactly once; each sample's stored value equals its key.

    Args:
        path: The ``<field>_index.npy`` file.
        store: The :class:`~slipstream.cache.SlipCache` it belongs to.
        field: The indexed field.

    Returns:
        The index.

    Raises:
        FieldIndexError: The file is unreadable, garbled or stale (the message names it;
            rebuild it with :func:`write_index`).
    """
    path = Path(path)
    kind = store.field_types.get(field)
    if kind is None or kind in BYTES_TYPES:
        raise FieldIndexError(f"{path}: the cache has no numeric or string field {field!r}")
    is_string = kind == STRING_TYPE
    try:
        mapping = _read_index_dict(path)
    except Exception as exc:  # noqa: BLE001 - any garbled byte: one clear error
        raise FieldIndexError(
            f"{path}: unreadable field index ({type(exc).__name__}: {exc}); "
            f"rebuild it with write_index(cache, fields=[{field!r}])"
        ) from exc
    stale = f"; rebuild it with write_index(cache, fields=[{field!r}])"
    try:
        field_values = _field_values(store, field)
        values, groups = _sorted_groups(mapping, is_string, field_values.dtype)
    except (TypeError, ValueError, OverflowError, UnicodeError) as exc:
        raise FieldIndexError(f"{path}: garbled field index ({exc}){stale}") from exc
    index = FieldIndex._from_groups(values, groups, is_string=is_string)
    order, n = index._order, store.num_samples
    if len(order) != n or (n and (order.min() < 0 or order.max() >= n)):
        span = f"{order.min()}..{order.max()}" if len(order) else "none"
        raise FieldIndexError(
            f"{path}: indexes {len(order)} sample ids ({span}), the cache has {n} samples: "
            f"stale{stale}"
        )
    if n and not np.all(np.bincount(order, minlength=n) == 1):
        raise FieldIndexError(f"{path}: a sample is listed twice or not at all: stale{stale}")
    expected = np.repeat(index.values, index.counts)
    actual = field_values[order]
    same = expected == actual
    if expected.dtype.kind == "f":
        same |= np.isnan(expected) & np.isnan(actual)
    if not same.all():
        bad = int(order[np.flatnonzero(~same)[0]])
        raise FieldIndexError(
            f"{path}: sample {bad} is listed under {expected[~same][0]!r} but its "
            f"{field!r} is {actual[~same][0]!r}: stale{stale}"
        )
    return index


def _sorted_groups(
    mapping: dict[Any, Any], is_string: bool, dtype: np.dtype
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The mapping's keys as a sorted array of the field's kind, and their index arrays."""
    keys = list(mapping)
    groups = []
    for key in keys:
        group = mapping[key]
        if not isinstance(group, np.ndarray) or group.ndim != 1 or group.dtype.kind not in "iu":
            raise TypeError(f"value {key!r} maps to {type(group).__name__}, not 1-D int indices")
        groups.append(group.astype(np.int64))
    if is_string:
        if not all(isinstance(k, str) for k in keys):
            raise TypeError("a string field's index has a key that is not a str")
        encoded = [k.encode("utf-8") for k in keys]
        width = max([len(e) for e in encoded] + [1])
        values = np.asarray(encoded, dtype=f"S{width}")
    else:
        if not all(isinstance(k, (int, float, bool, np.generic)) for k in keys):
            raise TypeError("a numeric field's index has a key that is not a number")
        values = np.asarray(keys, dtype=dtype) if keys else np.zeros(0, dtype=dtype)
        if len(set(values.tolist())) != len(keys):
            raise ValueError("two keys are the same value of the field")
    order = np.argsort(values, kind="stable")
    return values[order], [groups[i] for i in order]


def _field_values(store: Any, field: str) -> np.ndarray:
    """One value per sample: the numeric array, or UTF-8 strings as fixed-width bytes."""
    if store.field_types[field] == STRING_TYPE:
        return _fixed_width_strings(store.data(field), store.offsets(field))
    values = np.asarray(store.numbers(field))
    if values.ndim != 1:
        raise ValueError(
            f"{store.path}: a field index needs one value per sample, field {field!r} has "
            f"shape {values.shape}"
        )
    return values


def _fixed_width_strings(data: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """UTF-8 strings of a string field as one ``S<longest>`` array, gathered with numpy.

    Args:
        data: The field's ``uint8`` bytes.
        offsets: ``[N, 2]`` (offset, length) per string.
    """
    starts = np.asarray(offsets[:, 0], dtype=np.int64)
    lengths = np.asarray(offsets[:, 1], dtype=np.int64)
    width = max(int(lengths.max()) if len(lengths) else 0, 1)
    columns = np.arange(width, dtype=np.int64)
    inside = columns[None, :] < lengths[:, None]
    positions = np.where(inside, starts[:, None] + columns[None, :], 0)
    table = np.where(inside, np.asarray(data)[positions] if len(data) else 0, 0).astype(np.uint8)
    return np.ascontiguousarray(table).view(f"S{width}").reshape(-1)


def write_index(cache: Any, fields: Sequence[str], verbose: bool = True) -> dict[str, Path]:
    """Build and store ``value -> sample indices`` indexes of fields of a slip cache.

    Each index is saved as ``<field>_index.npy`` in the cache folder (the original
    slipstream's format, module docstring), written to a temporary file and renamed. An
    opened :class:`~slipstream.cache.SlipCache` passed here (or a dataset's) sees the new
    indexes at once; others see them when they next open the cache.

    Args:
        cache: A :class:`~slipstream.cache.SlipCache`, an object whose ``cache`` is one
            (a :class:`~slipstream.SlipstreamDataset`), or the cache folder's path.
        fields: Fields to index, e.g. ``["label"]`` (numeric or string fields).
        verbose: Log each index written (logger ``slipstream.cache.field_index``, INFO;
            quiet unless logging is enabled, see :mod:`slipstream.logs`).

    Returns:
        Field name -> path of the file written.

    Raises:
        KeyError: A field the cache does not have.
        TypeError: An image or bytes field, or ``cache`` is not a slip cache (e.g. an
            FFCV file read in place: build a slip cache from it first).
    """
    store = _as_slip_cache(cache)
    if isinstance(fields, str):
        fields = [fields]
    written = {}
    for field in fields:
        index = FieldIndex.of_field(store, field, use_stored=False)
        target = Path(store.path) / index_file_name(field)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.array(index.as_dict(), dtype=object), allow_pickle=True)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        written[field] = target
        if verbose:
            logger.info("%s: %d distinct values of %r -> %s", store.path, len(index), field, target)
    if hasattr(store, "refresh_indexes"):
        store.refresh_indexes()
    return written


def _as_slip_cache(cache: Any) -> Any:
    """The SlipCache that ``cache`` is, holds (``.cache``) or names (a path)."""
    if isinstance(cache, (str, os.PathLike)):
        from slipstream.cache.reader import SlipCache  # same package; reader imports us

        return SlipCache.open(cache)
    store = getattr(cache, "cache", cache)
    if not hasattr(store, "refresh_indexes"):
        raise TypeError(
            f"write_index needs a slip cache (a SlipCache, a SlipstreamDataset over one, or "
            f"a cache folder), got {type(store).__name__}"
            + (f" of {store.path}" if hasattr(store, "path") else "")
        )
    return store
