"""Append columns of samples to one field's files of a cache being built.

One :class:`FieldWriter` per field owns that field's files (layout in
:mod:`slipstream.cache.format`). It takes a batch's column at once: the items of a bytes,
image or string column go out in one ``os.writev`` per 1,024 items, their table rows are
computed with numpy, and numeric columns are kept as arrays and saved once at the end.
The writes run on one :class:`BackgroundWriter` thread per build, so the build's next
batch is read while the last one is written; it also starts the disk write-back of every
64 MiB written (``fdatasync``), so the final ``fsync`` has little left to wait for.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from slipstream.cache.checksum import CHECKSUM_DTYPE, CHECKSUM_NAME, checksum_file, xxh64_items
from slipstream.cache.format import (
    BYTES_TYPES,
    IMAGE_META_DTYPE,
    IMAGE_TYPE,
    NUMBER_DTYPES,
    STRING_OFFSETS_DTYPE,
    STRING_TYPE,
)
from slipstream.cache.packed_items import PackedItems

IOV_MAX = 1024
"""Most buffers one ``os.writev`` call takes (Linux ``IOV_MAX``)."""

SYNC_EVERY = 64 << 20
"""Bytes written to one file between two ``fdatasync`` calls of the background writer."""

MAX_PENDING_WRITES = 8
"""Batches' writes queued on the background writer before ``append`` waits."""


class BackgroundWriter:
    """One thread that writes the build's ``.bin`` files in the order they were queued.

    Errors of a write are raised by the next :meth:`submit` or by :meth:`drain`.
    """

    def __init__(self) -> None:
        """Start the thread (lazily, on the first write)."""
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slip-write")
        self._pending: deque[Future] = deque()
        self._unsynced: dict[int, int] = {}

    def submit(self, fd: int, items: list, total: int) -> None:
        """Queue ``items`` (``total`` bytes) to be written to ``fd``; waits while 8 are queued.

        Args:
            fd: An open file descriptor, written only by this writer.
            items: Bytes-like items, written back to back.
            total: Their total size.
        """
        while self._pending and (
            len(self._pending) >= MAX_PENDING_WRITES or self._pending[0].done()
        ):
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(self._write, fd, items, total))

    def _write(self, fd: int, items: list, total: int) -> None:
        write_all(fd, items, total)
        unsynced = self._unsynced.get(fd, 0) + total
        if unsynced >= SYNC_EVERY:
            getattr(os, "fdatasync", os.fsync)(fd)  # starts the write-back early
            unsynced = 0
        self._unsynced[fd] = unsynced

    def drain(self) -> None:
        """Wait for every queued write; raise the first error."""
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for the queued writes (errors dropped) and stop the thread."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()


class FieldValueError(ValueError):
    """A field's values cannot be stored (e.g. a numeric field with non-numbers)."""


class FieldWriter:
    """Appends one field's columns to its files in ``folder``.

    Args:
        folder: The cache folder being written.
        name: Field name.
        kind: Field type (``"ImageBytes"``, ``"bytes"``, ``"str"``, ``"int"``, ...).
        capacity: Most samples that will be appended.
        background: Writes the ``.bin`` file (None: writes inline).
    """

    def __init__(
        self,
        folder: Path,
        name: str,
        kind: str,
        capacity: int,
        background: BackgroundWriter | None = None,
    ) -> None:
        """Open the field's ``.bin`` file where it has one."""
        self.folder, self.name, self.kind = folder, name, kind
        self.background = background
        self.count = 0
        self.max_size = 0
        self.offset = 0
        self.fd: int | None = None
        self.chunks: list[np.ndarray] = []
        if kind in BYTES_TYPES:
            self.table = np.zeros(capacity, dtype=IMAGE_META_DTYPE)
            self.checksums = np.zeros(capacity, dtype=CHECKSUM_DTYPE)
        elif kind == STRING_TYPE:
            self.table = np.zeros((capacity, 2), dtype=STRING_OFFSETS_DTYPE)
        if kind in BYTES_TYPES or kind == STRING_TYPE:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
            self.fd = os.open(folder / f"{name}.bin", flags, 0o644)

    def append(self, column: Any, heights: np.ndarray | None = None, widths: Any = None) -> None:
        """Append one batch's values of this field.

        Args:
            column: Items (bytes-like, or one :class:`PackedItems`) of a bytes/image
                field, ``str`` values of a string field, or a sequence / array of values
                of a numeric field.
            heights: Per-item heights of an image field (else zeros are stored).
            widths: Per-item widths of an image field.
        """
        if self.fd is None:
            if len(column):
                self.chunks.append(_number_array(self.name, self.kind, column))
            return
        if isinstance(column, PackedItems):
            items = [memoryview(column.data)]
            sizes = column.sizes.astype(np.uint64)
        else:
            if self.kind == STRING_TYPE:
                items = [str(value).encode("utf-8") for value in column]
            else:
                items = [_as_bytes(value) for value in column]
            sizes = np.fromiter(map(len, items), dtype=np.uint64, count=len(items))
        count = len(sizes)
        starts = np.empty(count, dtype=np.uint64)
        if count:
            starts[0] = self.offset
            np.cumsum(sizes[:-1], out=starts[1:])
            starts[1:] += np.uint64(self.offset)
        rows = slice(self.count, self.count + count)
        if self.kind == STRING_TYPE:
            self.table[rows, 0], self.table[rows, 1] = starts, sizes
        else:
            table = self.table[rows]
            table["data_ptr"], table["data_size"] = starts, sizes
            if heights is not None:
                table["height"], table["width"] = heights, widths
        total = int(sizes.sum())
        if self.kind in BYTES_TYPES:
            self.checksums[rows] = _item_checksums(column, items, sizes)
        if self.background is not None:
            self.background.submit(self.fd, items, total)
        else:
            write_all(self.fd, items, total)
        self.offset += total
        self.max_size = max(self.max_size, int(sizes.max()) if count else 0)
        self.count += count

    def finish(self) -> dict[str, Any]:
        """Close and fsync the files; return the manifest entry."""
        spec: dict[str, Any] = {"type": self.kind}
        if self.fd is not None:
            if self.background is not None:
                self.background.drain()
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
            save_npy(self.folder / self._table_name(), self.table[: self.count])
            files = [f"{self.name}.bin", self._table_name()]
        if self.kind in BYTES_TYPES:
            spec["format"] = "jpeg" if self.kind == IMAGE_TYPE else "raw"
            spec["max_size"] = self.max_size
            save_npy(self.folder / checksum_file(self.name), self.checksums[: self.count])
            spec["checksum"] = CHECKSUM_NAME
            files.append(checksum_file(self.name))
        elif self.kind == STRING_TYPE:
            spec["format"] = "utf-8"
        else:
            array = _concatenate(self.name, self.kind, self.chunks)
            self.count = len(array)
            save_npy(self.folder / f"{self.name}.npy", array)
            spec["format"] = array.dtype.str
            files = [f"{self.name}.npy"]
        spec["num_samples"] = self.count
        spec["files"] = {f: (self.folder / f).stat().st_size for f in files}
        return spec

    def _table_name(self) -> str:
        return f"{self.name}.meta.npy" if self.kind in BYTES_TYPES else f"{self.name}.offsets.npy"

    def abort(self) -> None:
        """Close the files without finishing them."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _item_checksums(column: Any, items: list, sizes: np.ndarray) -> np.ndarray:
    """XXH64 of each item of one appended column (hashed from memory, in one compiled call)."""
    if isinstance(column, PackedItems):
        data = np.ascontiguousarray(column.data, dtype=np.uint8).reshape(-1)
    else:
        data = np.frombuffer(b"".join(items), dtype=np.uint8)
    starts = np.zeros(len(sizes), dtype=np.uint64)
    if len(sizes) > 1:
        np.cumsum(sizes[:-1], out=starts[1:])
    return xxh64_items(data, starts, sizes)


def write_all(fd: int, items: list, total: int) -> None:
    """Write ``items`` back to back: ``os.writev`` per 1,024 items, resuming short writes.

    Args:
        fd: Open file descriptor.
        items: Bytes-like items.
        total: Their total size in bytes.
    """
    for first in range(0, len(items), IOV_MAX):
        group = items[first : first + IOV_MAX]
        expected = sum(map(len, group)) if len(items) > IOV_MAX else total
        written = os.writev(fd, group) if group else 0
        if written < expected:  # short write (signal, huge batch): write the rest plainly
            rest = memoryview(b"".join(group))[written:]
            while rest:
                rest = rest[os.write(fd, rest) :]


def _as_bytes(value: Any) -> bytes | memoryview:
    if isinstance(value, (bytes, bytearray)):
        return value
    if isinstance(value, memoryview):
        return value.cast("B") if value.format != "B" or value.ndim != 1 else value
    return np.ascontiguousarray(value, dtype=np.uint8).reshape(-1).tobytes()


def _concatenate(name: str, kind: str, chunks: list[np.ndarray]) -> np.ndarray:
    if not chunks:
        return _number_array(name, kind, [])
    try:
        return np.concatenate(chunks)
    except ValueError as exc:
        raise FieldValueError(f"field {name!r} ({kind}) has values of different shapes") from exc


def _number_array(name: str, kind: str, values: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=NUMBER_DTYPES.get(kind))
    except (TypeError, ValueError) as exc:
        raise FieldValueError(f"field {name!r} ({kind}) does not form a numeric array") from exc
    if array.dtype.hasobject:
        raise FieldValueError(f"field {name!r} ({kind}) does not form a numeric array")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` ``array`` to ``path`` and fsync it.

    Args:
        path: File to write.
        array: Array to store (no pickled objects).
    """
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        close_synced(f)


def close_synced(f: BinaryIO) -> None:
    """Flush, fsync and close a file object.

    Args:
        f: An open binary file.
    """
    f.flush()
    os.fsync(f.fileno())
    f.close()


def fsync_dir(path: Path) -> None:
    """Fsync a folder, so renames and new entries in it are on disk.

    Args:
        path: The folder.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
