"""A column of variable-size byte items stored back to back in one ``uint8`` array.

Readers that can fill one buffer per batch (file readers, see
:mod:`slipstream.readers.file_batch_io`) hand image columns over as :class:`PackedItems`;
the build checks and writes them without a Python object per item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PackedItems:
    """Items ``data[offsets[i] : offsets[i] + sizes[i]]``, back to back.

    Attributes:
        data: ``uint8`` array holding every item, in order, without gaps.
        sizes: ``int64`` size of each item.
    """

    data: np.ndarray
    sizes: np.ndarray

    def __post_init__(self) -> None:
        """Compute the item offsets."""
        self.offsets = np.zeros(len(self.sizes), dtype=np.int64)
        np.cumsum(self.sizes[:-1], out=self.offsets[1:])

    def __len__(self) -> int:
        """Number of items."""
        return len(self.sizes)

    def __getitem__(self, index: int) -> memoryview:
        """One item, as a view of ``data``."""
        start = int(self.offsets[index])
        return memoryview(self.data[start : start + int(self.sizes[index])])

    def to_list(self) -> list[bytes]:
        """Every item as ``bytes``."""
        return [bytes(self[i]) for i in range(len(self))]
