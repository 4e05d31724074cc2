"""Build a slip cache from any reader, atomically.

A reader is any object with ``field_types`` (name -> type), ``__len__``,
``read_sample(i) -> dict``, ``describe(i) -> str`` and ``fingerprint() -> str``.

How a build runs:

1. If ``dest`` already opens as a cache, it is returned as is (unless ``overwrite``);
   its source fingerprint is not compared, so pass ``overwrite=True`` after the source
   changed.
2. Leftover ``<dest>.tmp-<pid>-*`` folders of processes that no longer run are removed.
3. Samples are read and their images checked in a thread pool, and written in order into
   ``<dest>.tmp-<pid>-<random>``: every ``ImageBytes`` item goes through
   :func:`slipstream.cache.jpeg_check.prepare_image` (portable JPEGs byte for byte, any
   other image Pillow reads re-encoded to RGB JPEG and listed in
   ``manifest["build"]["reencoded"]``).
4. Files are fsynced, ``manifest.json`` is written last, and the folder is renamed to
   ``dest`` in one ``os.rename``. An interrupted build leaves nothing at ``dest``.

Bad items (empty, unreadable, truncated, not an image) raise :class:`CacheBuildError`
naming the sample, or with ``on_error="skip"`` are left out and listed in
``manifest["build"]["skipped"]``. Skipping renumbers the cache: cache sample ``i`` is then
not source sample ``i``; a reader's own ``"index"`` field keeps the source index.

Example:
    >>> from slipstream.readers import ImageFolderReader        # doctest: +SKIP
    >>> path = build_cache(ImageFolderReader("/data/train"), "/data/train.slip")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from tqdm import tqdm

from slipstream.cache.format import (
    BYTES_TYPES,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_META_DTYPE,
    IMAGE_TYPE,
    MANIFEST_NAME,
    NUMBER_DTYPES,
    STRING_OFFSETS_DTYPE,
    STRING_TYPE,
    is_valid_field_name,
)
from slipstream.cache.jpeg_check import ImageCheckError, PreparedImage, prepare_image
from slipstream.cache.reader import CacheFormatError, SlipCache

ON_ERROR_CHOICES = ("raise", "skip")


class CacheBuildError(RuntimeError):
    """A cache could not be built; names the sample (``reader.describe(i)``) at fault."""


def build_cache(
    reader: Any,
    dest: str | os.PathLike,
    *,
    on_error: str = "raise",
    jpeg_quality: int = 95,
    num_workers: int = 8,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write every sample of ``reader`` into a slip cache at ``dest``.

    Args:
        reader: Object with ``field_types``, ``__len__``, ``read_sample``, ``describe``
            and ``fingerprint`` (see the module docstring).
        dest: The cache folder to create (it will hold ``manifest.json``).
        on_error: ``"raise"`` stops at the first bad sample; ``"skip"`` leaves bad
            samples out and lists them in the manifest.
        jpeg_quality: Quality for images that must be re-encoded as JPEG.
        num_workers: Threads that read samples and check images; 0 reads inline.
        progress: Show a tqdm progress bar.
        overwrite: Rebuild even if ``dest`` already holds a cache (or a damaged one).

    Returns:
        ``dest`` as a Path.

    Raises:
        CacheBuildError: A bad sample (with ``on_error="raise"``), or ``dest`` exists and
            is not a cache that opens (without ``overwrite``).
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    dest = Path(dest)
    if dest.exists():
        if not overwrite:
            try:
                SlipCache.open(dest)
            except CacheFormatError as exc:
                raise CacheBuildError(
                    f"{dest} exists but is not a usable cache ({exc}); "
                    f"pass overwrite=True to rebuild it"
                ) from exc
            return dest
        _check_replaceable(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_dirs(dest)
    tmp = dest.parent / f"{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        _write_cache(reader, tmp, on_error, jpeg_quality, num_workers, progress, dest.name)
        _publish(tmp, dest, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def remove_stale_tmp_dirs(dest: str | os.PathLike) -> list[Path]:
    """Remove ``<dest>.tmp-<pid>-*`` / ``<dest>.old-<pid>-*`` folders of dead processes.

    Args:
        dest: The cache folder whose leftovers to look for.

    Returns:
        The folders removed.
    """
    dest = Path(dest)
    removed = []
    if not dest.parent.is_dir():
        return removed
    for entry in dest.parent.iterdir():
        for tag in (".tmp-", ".old-"):
            prefix = dest.name + tag
            if not entry.name.startswith(prefix):
                continue
            pid_text = entry.name[len(prefix) :].split("-", 1)[0]
            if pid_text.isdigit() and not _pid_alive(int(pid_text)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _check_replaceable(dest: Path) -> None:
    """Refuse to overwrite a folder that is neither empty nor a cache."""
    # Only a folder that IS a cache: an original-layout parent (holding .slipstream/) is
    # a user's folder with a cache inside, never deleted here.
    if dest.is_dir() and ((dest / MANIFEST_NAME).is_file() or not any(dest.iterdir())):
        return
    raise CacheBuildError(
        f"{dest} exists and is not a slip cache; refusing to replace it (remove it yourself)"
    )


def _publish(tmp: Path, dest: Path, overwrite: bool) -> None:
    """Move the finished build into place with ``os.rename``."""
    old = None
    if overwrite and dest.exists():
        old = dest.parent / f"{dest.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        # Another process published first: keep its cache if it opens.
        SlipCache.open(dest)
        shutil.rmtree(tmp, ignore_errors=True)
    _fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _FieldWriter:
    """Appends one field's values to its files in ``folder``."""

    def __init__(self, folder: Path, name: str, kind: str, capacity: int) -> None:
        self.folder, self.name, self.kind = folder, name, kind
        self.count = 0
        self.max_size = 0
        self.bin: BinaryIO | None = None
        self.offset = 0
        if kind in BYTES_TYPES:
            self.bin = open(folder / f"{name}.bin", "wb")  # closed in finish()
            self.table = np.zeros(capacity, dtype=IMAGE_META_DTYPE)
        elif kind == STRING_TYPE:
            self.bin = open(folder / f"{name}.bin", "wb")
            self.table = np.zeros((capacity, 2), dtype=STRING_OFFSETS_DTYPE)
        else:
            self.values: list[Any] = []

    def append(self, value: Any) -> None:
        if self.kind in BYTES_TYPES:
            if isinstance(value, PreparedImage):
                data, height, width = value.data, value.height, value.width
            else:
                data, height, width = _as_bytes(value), 0, 0
            self.table[self.count] = (self.offset, len(data), height, width)
        elif self.kind == STRING_TYPE:
            data = str(value).encode("utf-8")
            self.table[self.count] = (self.offset, len(data))
        else:
            self.values.append(value)
            self.count += 1
            return
        self.bin.write(data)
        self.offset += len(data)
        self.max_size = max(self.max_size, len(data))
        self.count += 1

    def finish(self) -> dict[str, Any]:
        """Close and fsync the files; return the manifest entry."""
        spec: dict[str, Any] = {"type": self.kind, "num_samples": self.count}
        if self.bin is not None:
            _close_synced(self.bin)
            self.bin = None
            _save_npy(self.folder / self._table_name(), self.table[: self.count])
        if self.kind in BYTES_TYPES:
            spec["format"] = "jpeg" if self.kind == IMAGE_TYPE else "raw"
            spec["max_size"] = self.max_size
            files = [f"{self.name}.bin", self._table_name()]
        elif self.kind == STRING_TYPE:
            spec["format"] = "utf-8"
            files = [f"{self.name}.bin", self._table_name()]
        else:
            array = _number_array(self.name, self.kind, self.values)
            _save_npy(self.folder / f"{self.name}.npy", array)
            spec["format"] = array.dtype.str
            files = [f"{self.name}.npy"]
        spec["files"] = {f: (self.folder / f).stat().st_size for f in files}
        return spec

    def _table_name(self) -> str:
        return f"{self.name}.meta.npy" if self.kind in BYTES_TYPES else f"{self.name}.offsets.npy"

    def abort(self) -> None:
        if self.bin is not None:
            self.bin.close()


def _as_bytes(value: Any) -> bytes | memoryview:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    return np.ascontiguousarray(value, dtype=np.uint8).tobytes()


def _number_array(name: str, kind: str, values: list[Any]) -> np.ndarray:
    array = np.asarray(values, dtype=NUMBER_DTYPES.get(kind))
    if array.dtype.hasobject:
        raise CacheBuildError(f"field {name!r} ({kind}) does not form a numeric array")
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def _write_cache(
    reader: Any,
    folder: Path,
    on_error: str,
    quality: int,
    num_workers: int,
    progress: bool,
    label: str,
) -> None:
    field_types = {
        k: (v if isinstance(v, str) else v.__name__) for k, v in reader.field_types.items()
    }
    bad = [name for name in field_types if not is_valid_field_name(name)]
    if bad:
        raise CacheBuildError(f"field names {bad} cannot name files (no '/', leading '.')")
    total = len(reader)
    source = {
        "kind": type(reader).__name__,
        "root": str(getattr(reader, "root", "")),
        "fingerprint": reader.fingerprint(),
    }
    writers = {name: _FieldWriter(folder, name, kind, total) for name, kind in field_types.items()}
    image_fields = [n for n, k in field_types.items() if k == IMAGE_TYPE]
    reencoded: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []

    def load(index: int) -> tuple[dict[str, Any] | None, str | None]:
        try:
            sample = reader.read_sample(index)
            for name in image_fields:
                sample[name] = prepare_image(sample[name], quality)
        except (ImageCheckError, OSError) as exc:
            return None, str(exc)
        return sample, None

    bar = tqdm(total=total, disable=not progress, unit="img", desc=f"building {label}")
    results = contextlib.closing(_ordered_map(load, total, num_workers))
    try:
        with results as ordered:
            for index, (sample, error) in ordered:
                bar.update(1)
                if error is not None:
                    name = reader.describe(index)
                    if on_error == "raise":
                        raise CacheBuildError(f"{name}: {error}")
                    skipped.append({"index": index, "name": name, "reason": error})
                    continue
                for field, writer in writers.items():
                    if field not in sample:
                        raise CacheBuildError(
                            f"{reader.describe(index)}: sample has no field {field!r}"
                        )
                    writer.append(sample[field])
                for field in image_fields:
                    if sample[field].reencoded is not None:
                        reencoded.append(
                            {
                                "index": index,
                                "name": reader.describe(index),
                                "reason": sample[field].reencoded,
                            }
                        )
        fields = {name: writer.finish() for name, writer in writers.items()}
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        bar.close()
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "num_samples": total - len(skipped),
        "fields": fields,
        "source": source,
        "build": {
            "created_unix": time.time(),
            "jpeg_quality": quality,
            "reencoded": reencoded,
            "skipped": skipped,
        },
    }
    with open(folder / MANIFEST_NAME, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(folder)


def _ordered_map(fn: Any, total: int, num_workers: int) -> Any:
    """Yield ``(i, fn(i))`` for ``i`` in ``range(total)`` in order, computed by threads."""
    if num_workers <= 0:
        for index in range(total):
            yield index, fn(index)
        return
    window = 4 * num_workers
    pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="slip-build")
    pending: deque[tuple[int, Future]] = deque()
    try:
        next_index = 0
        while pending or next_index < total:
            while next_index < total and len(pending) < window:
                pending.append((next_index, pool.submit(fn, next_index)))
                next_index += 1
            index, future = pending.popleft()
            yield index, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        _close_synced(f)


def _close_synced(f: BinaryIO) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
