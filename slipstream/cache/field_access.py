"""Checks and per-sample reads shared by every store with the slip cache's read interface.

A store (:class:`~slipstream.cache.SlipCache`, :class:`~slipstream.readers.FfcvFile`) sets
``path``, ``num_samples`` and ``field_types`` and implements ``item_bytes`` and ``numbers``;
:class:`FieldAccess` adds ``__len__``, ``__repr__``, ``string``, ``sample`` and the argument checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from slipstream.cache.format import BYTES_TYPES, STRING_TYPE


class FieldAccess:
    """Mixin: ``__len__``, ``__repr__``, :meth:`string`, :meth:`sample` and field / index checks.

    Attributes:
        path: The store's file or folder, named in error messages.
        num_samples: Number of samples.
        field_types: Field name -> slip cache type.
    """

    path: Path
    num_samples: int
    field_types: dict[str, str]

    def __len__(self) -> int:
        """Number of samples."""
        return self.num_samples

    def __repr__(self) -> str:
        """Class, path, sample count and field types."""
        name = type(self).__name__
        return f"{name}({str(self.path)!r}, num_samples={self.num_samples}, {self.field_types})"

    def item_bytes(self, field: str, index: int) -> np.ndarray:
        """Zero-copy ``uint8`` view of one item of a bytes, image or string field."""
        raise NotImplementedError

    def numbers(self, field: str) -> np.ndarray:
        """The values of a numeric field (first dimension ``num_samples``)."""
        raise NotImplementedError

    def _check_field(self, field: str, kinds: frozenset[str] | set[str], what: str) -> None:
        if field not in self.field_types:
            raise KeyError(f"{self.path}: no field {field!r}; fields: {list(self.field_types)}")
        if self.field_types[field] not in kinds:
            raise TypeError(
                f"{self.path}: field {field!r} is {self.field_types[field]!r}, not {what}"
            )

    def _check_index(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"{self.path}: index {index} out of range [0, {self.num_samples})")
        return index

    def string(self, field: str, index: int) -> str:
        """One string of a ``str`` field.

        Args:
            field: Field name.
            index: Sample index.
        """
        self._check_field(field, {STRING_TYPE}, "str")
        return self.item_bytes(field, index).tobytes().decode("utf-8")

    def sample(self, index: int) -> dict[str, Any]:
        """All fields of one sample, copied out (images and bytes as ``bytes``).

        Args:
            index: Sample index.

        Returns:
            Field name -> ``bytes`` | ``str`` | Python scalar | ``np.ndarray``.
        """
        index = self._check_index(index)
        out: dict[str, Any] = {}
        for name, kind in self.field_types.items():
            if kind in BYTES_TYPES:
                out[name] = self.item_bytes(name, index).tobytes()
            elif kind == STRING_TYPE:
                out[name] = self.string(name, index)
            else:
                value = self.numbers(name)[index]
                out[name] = value.item() if np.ndim(value) == 0 else np.array(value)
        return out
