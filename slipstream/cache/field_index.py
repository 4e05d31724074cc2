"""``value -> sample indices`` for one field of a cache, built with numpy in one pass.

One stable ``argsort`` of the field's values groups the sample indices by value; the
groups' bounds come from ``np.unique``. A lookup is a binary search per asked value and a
concatenation of slices, with no per-sample Python.

Example:
    >>> index = FieldIndex.of_field(SlipCache.open("train.slip"), "label")  # doctest: +SKIP
    >>> subset = index.indices_of([0, 3, 7])  # sorted int64 sample ids  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from slipstream.cache.format import BYTES_TYPES, STRING_TYPE


class FieldIndex:
    """Sample indices grouped by the value of one field.

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
    def of_field(cls, store: Any, field: str) -> FieldIndex:
        """Index a field of a cache (or any store with the slip cache's field access).

        Args:
            store: A :class:`~slipstream.cache.SlipCache` or
                :class:`~slipstream.readers.FfcvFile`.
            field: A numeric field with one value per sample, or a string field.

        Raises:
            KeyError: No such field.
            TypeError: A bytes or image field.
        """
        kind = store.field_types.get(field)
        if kind is None:
            raise KeyError(f"{store.path}: no field {field!r}; fields: {list(store.field_types)}")
        if kind in BYTES_TYPES:
            raise TypeError(f"{store.path}: field {field!r} is {kind!r}; index a number or str")
        if kind == STRING_TYPE:
            strings = _fixed_width_strings(store.data(field), store.offsets(field))
            return cls(strings, is_string=True)
        return cls(np.asarray(store.numbers(field)))

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
        keys = self._keys(wanted)
        positions = np.searchsorted(self.values, keys)
        inside = positions < len(self.values)
        positions, keys = positions[inside], keys[inside]
        positions = np.unique(positions[self.values[positions] == keys])
        if len(positions) == 0:
            return np.zeros(0, dtype=np.int64)
        parts = [
            self._order[start : start + count]
            for start, count in zip(self._starts[positions], self.counts[positions], strict=True)
        ]
        return np.sort(np.concatenate(parts))

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
