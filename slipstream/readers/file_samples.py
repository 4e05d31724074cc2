"""Shared base of readers whose samples are image files with an integer label.

:class:`~slipstream.readers.ImageFolderReader` and :class:`~slipstream.readers.FileListReader`
differ only in how they find ``(file path, label)`` pairs; reading, describing and
fingerprinting them is here. Besides the per-sample ``read_sample``, :meth:`read_batch`
returns a range of samples as columns, which :func:`~slipstream.cache.build_cache` uses to
build without per-sample dicts.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from slipstream.readers.file_batch_io import read_files_packed

READ_CHUNK = 1 << 20
"""Bytes asked for per ``os.read`` call when reading a whole file."""


def read_file(path: str) -> bytes:
    """Read a whole file with plain ``os.read`` calls (no buffered file object).

    One ``fstat`` and, where the file still has the size it reports, one ``read``.

    Args:
        path: The file.

    Returns:
        Its bytes.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size + 1) if size else b""
        if len(data) == size:
            return data
        chunks = [data]  # short read or the file grew: read to the end
        while chunk := os.read(fd, max(size, READ_CHUNK)):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


class FileSamplesReader:
    """Samples that are files: the encoded bytes plus label, index and a display path.

    Subclasses set ``samples`` (``(file path, label)`` in sample order) and ``rel_paths``
    (the ``"path"`` field of each sample), and may extend :meth:`describe` and
    :meth:`_fingerprint_header`.

    Attributes:
        samples: ``(file path, label)`` per sample.
        rel_paths: The ``"path"`` field per sample.
        field_types: Field name -> slip cache field type.
    """

    field_types: dict[str, str] = {
        "image": "ImageBytes",
        "label": "int",
        "index": "int",
        "path": "str",
    }
    samples: list[tuple[str, int]]
    rel_paths: list[str]

    def __len__(self) -> int:
        """Number of images."""
        return len(self.samples)

    def read_sample(self, index: int) -> dict[str, Any]:
        """Read one sample.

        Args:
            index: Sample index in ``[0, len(self))``.

        Returns:
            ``{"image": file bytes, "label": int, "index": index, "path": str}``.
        """
        path, label = self.samples[index]
        return {
            "image": read_file(path),
            "label": label,
            "index": int(index),
            "path": self.rel_paths[index],
        }

    def read_batch(self, start: int, stop: int) -> dict[str, Any]:
        """Read samples ``start .. stop-1`` as columns.

        Args:
            start: First sample index.
            stop: One past the last sample index.

        Returns:
            ``{"image": PackedItems, "label": int64 array, "index": int64 array,
            "path": [str, ...]}``; the files are read without the GIL
            (:func:`~slipstream.readers.file_batch_io.read_files_packed`).

        Raises:
            OSError: A file cannot be read (the caller finds which with ``read_sample``).
        """
        rows = self.samples[start:stop]
        return {
            "image": read_files_packed([path for path, _ in rows]),
            "label": np.fromiter((label for _, label in rows), np.int64, len(rows)),
            "index": np.arange(start, start + len(rows), dtype=np.int64),
            "path": self.rel_paths[start:stop],
        }

    def describe(self, index: int) -> str:
        """The file path of a sample, for error messages."""
        return self.samples[index][0]

    def _fingerprint_header(self) -> bytes:
        """What besides the files identifies the source (e.g. the class list)."""
        return b""

    def fingerprint(self) -> str:
        """Hex digest of the source's identity, computed once per reader.

        Covers :meth:`_fingerprint_header` and, for every sample in order, its ``path``
        field, label, size and modification time (ns). Adding, removing, renaming,
        relabelling or rewriting a file changes it; reading does not. The files are
        looked at on the first call; create a new reader to see later changes.
        """
        cached = self.__dict__.get("_fingerprint")
        if cached is not None:
            return cached
        digest = hashlib.sha256(self._fingerprint_header())
        for (path, label), rel in zip(self.samples, self.rel_paths, strict=True):
            try:
                stat = os.stat(path)
                identity = f"{stat.st_size}\0{stat.st_mtime_ns}"
            except OSError:  # gone since the scan: reading it will name it
                identity = "missing"
            digest.update(f"\n{rel}\0{label}\0{identity}".encode())
        self._fingerprint = digest.hexdigest()
        return self._fingerprint
