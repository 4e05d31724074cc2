"""The YUV420 companion of an image field: build it once, open it checked.

Decoding JPEG dominates training-time loading; a companion stores the same images as
planar I420 (1.5 bytes per pixel, no entropy coding), trading disk and page cache for
decode speed. It sits next to the field it mirrors::

    <folder>/                           the slip cache folder (or, for a store that is not a
    │                                   slip cache, e.g. a .beton read in place, a folder
    │                                   under the cache root holding only companions)
    ├── <field>_yuv420.bin              item 0 | item 1 | ... | item N-1  (back to back)
    │                                   item i = planar I420 of image i (Y, then U, then V;
    │                                   odd sides padded to even; layout and colors in
    │                                   slipstream.native.yuv420), yuv420_size(h, w) bytes
    ├── <field>_yuv420.meta.npy         N records of IMAGE_META_DTYPE (24 bytes each):
    │                                   ┌──────────────┬───────────────┬────────────┬───────────┐
    │                                   │ data_ptr <u8 │ data_size <u8 │ height <u4 │ width <u4 │
    │                                   └──────────────┴───────────────┴────────────┴───────────┘
    │                                   height, width = the image's true size (as the field's)
    ├── <field>_yuv420.xxh64.npy        N x <u8: XXH64 (seed 0) of each item, checked when
    │                                   items are gathered (absent in older companions)
    └── manifest.json                   the record, written last (slip cache: in the field's
        (or yuv420.json elsewhere)      entry; elsewhere: yuv420.json):

    "yuv420": {"format": "i420-bt601-full", "version": 1, "num_samples": N,
               "source_bytes": <bytes of the JPEG field>, "checksum": "xxh64",
               "files": {"<field>_yuv420.bin": <bytes>, "<field>_yuv420.meta.npy": <bytes>,
                         "<field>_yuv420.xxh64.npy": <bytes>}}

In a slip cache written by this package the files are also added to the field's
``"files"``, so :meth:`SlipCache.open` checks their sizes too.

Building decodes every JPEG with libjpeg-turbo (the pixels the JPEG path crops from),
converts to BT.601 full-range Y'CbCr and averages chroma over 2x2 blocks, in chunks on the
native thread pool. It is atomic (``*.partial`` files renamed into place, then the record),
resumable (a killed build continues from its last recorded chunk) and locked (one builder
per companion; others wait and then open it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from slipstream.cache.build_lock import build_lock
from slipstream.cache.checksum import CHECKSUM_DTYPE, CHECKSUM_NAME, checksum_file, xxh64_items
from slipstream.cache.format import IMAGE_META_DTYPE, MANIFEST_NAME
from slipstream.cache.raw_items import stored_item_formats
from slipstream.logs import show_progress
from slipstream.native import NativeDecoder, jpeg_to_yuv420_batch
from slipstream.paths import default_cache_root

COMPANION_FORMAT = "i420-bt601-full"
"""``record["format"]``: planar I420, BT.601 full range, chroma sited at 2x2 block centers."""

COMPANION_VERSION = 1
"""The one companion version this package reads and writes."""

STANDALONE_RECORD = "yuv420.json"
"""Record file of a companion folder that is not a slip cache."""

CHUNK = 256
"""Images converted per call into the native pool."""


class Yuv420Error(RuntimeError):
    """A YUV420 companion could not be built or is damaged; the message names the file."""


@dataclass(frozen=True)
class Yuv420Companion:
    """An opened YUV420 companion.

    Attributes:
        folder: Folder holding the companion files.
        field: The image field it mirrors.
        data: ``uint8`` memory map of ``<field>_yuv420.bin``.
        meta: ``IMAGE_META_DTYPE`` table, one record per sample.
        source_bytes: Bytes of the JPEG field it was built from.
        checksums: ``<u8 [N]`` XXH64 of each item (``<field>_yuv420.xxh64.npy``), checked
            when items are gathered; None for a companion built before they were written.
    """

    folder: Path
    field: str
    data: np.ndarray
    meta: np.ndarray
    source_bytes: int
    checksums: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the companion's items."""
        return int(self.data.size)

    @property
    def size_ratio(self) -> float:
        """Companion bytes / JPEG field bytes."""
        return self.nbytes / max(self.source_bytes, 1)


def companion_names(field: str) -> tuple[str, str]:
    """``(<field>_yuv420.bin, <field>_yuv420.meta.npy)``.

    Args:
        field: Image field name.
    """
    return f"{field}_yuv420.bin", f"{field}_yuv420.meta.npy"


def companion_folder(store: Any, cache_root: str | os.PathLike | None = None) -> Path:
    """Where the companions of ``store`` live.

    A slip cache keeps them inside its folder (where it already holds one, or the folder is
    writable); another store (an FFCV file read in place), or a read-only cache, in
    ``<cache_root>/<name>-<fingerprint>-yuv420``.

    Args:
        store: A :class:`~slipstream.cache.SlipCache` or another store with ``path``,
            ``data()``, ``meta()`` (and ``fingerprint()`` when it has one).
        cache_root: Root for stores that are not slip caches (default: the dataset default).
    """
    path = Path(store.path)
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        holds_one = '"yuv420"' in (path / MANIFEST_NAME).read_text(encoding="utf-8")
        if holds_one or os.access(path, os.W_OK):
            return path
    if cache_root is None:
        cache_root = default_cache_root()
    if hasattr(store, "fingerprint"):
        stamp = store.fingerprint()[:16]
    else:  # a read-only slip cache: its folder and manifest name it
        key = f"{path.resolve()}\n{(path / MANIFEST_NAME).read_text(encoding='utf-8')}"
        stamp = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_root) / f"{path.stem}-{stamp}-yuv420"


def _record_file(folder: Path) -> Path:
    manifest = folder / MANIFEST_NAME
    return manifest if manifest.is_file() else folder / STANDALONE_RECORD


def _read_record(folder: Path, field: str) -> dict[str, Any] | None:
    path = _record_file(folder)
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    if path.name == MANIFEST_NAME:
        return doc.get("fields", {}).get(field, {}).get("yuv420")
    return doc.get(field)


def _write_record(folder: Path, field: str, record: dict[str, Any]) -> None:
    """Add the record to the manifest (or yuv420.json) atomically: tmp file + rename."""
    path = _record_file(folder)
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if path.name == MANIFEST_NAME:
        spec = doc["fields"][field]
        spec["yuv420"] = record
        if "files" in spec:  # SlipCache.open then checks the companion's sizes too
            spec["files"].update(record["files"])
    else:
        doc[field] = record
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def open_yuv420(folder: str | os.PathLike, field: str, num_samples: int) -> Yuv420Companion:
    """Open a finished companion and check it against its record.

    Args:
        folder: The companion folder (see :func:`companion_folder`).
        field: Image field name.
        num_samples: Samples the store has.

    Returns:
        The opened companion.

    Raises:
        Yuv420Error: If there is no record, or a file is missing, truncated or inconsistent.
    """
    folder = Path(folder)
    record = _read_record(folder, field)
    if record is None:
        raise Yuv420Error(f"{folder}: no YUV420 companion of field {field!r}")
    if record.get("format") != COMPANION_FORMAT or record.get("version") != COMPANION_VERSION:
        raise Yuv420Error(
            f"{folder}: YUV420 companion of {field!r} is {record.get('format')!r} "
            f"v{record.get('version')}, this slipstream reads {COMPANION_FORMAT!r} "
            f"v{COMPANION_VERSION}; rebuild it"
        )
    if record.get("num_samples") != num_samples:
        raise Yuv420Error(
            f"{folder}: YUV420 companion of {field!r} has {record.get('num_samples')} samples, "
            f"the store has {num_samples}"
        )
    bin_name, meta_name = companion_names(field)
    for fname, size in record["files"].items():
        try:
            actual = (folder / fname).stat().st_size
        except FileNotFoundError:
            raise Yuv420Error(f"{folder}: {fname} is missing") from None
        if actual != int(size):
            raise Yuv420Error(
                f"{folder}: {fname} is {actual} bytes, its record says {size} "
                "(truncated or modified)"
            )
    meta = np.load(folder / meta_name, mmap_mode="r", allow_pickle=False)
    if meta.dtype != IMAGE_META_DTYPE or meta.shape != (num_samples,):
        raise Yuv420Error(f"{folder}: {meta_name} is {meta.dtype} {meta.shape}")
    size = (folder / bin_name).stat().st_size
    data = np.memmap(folder / bin_name, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
    ends = meta["data_ptr"] + meta["data_size"]
    if len(ends) and int(ends.max()) > size:
        raise Yuv420Error(f"{folder}: {bin_name} is shorter than its table says (truncated)")
    checksums = None
    if record.get("checksum") == CHECKSUM_NAME:
        sums_name = checksum_file(f"{field}_yuv420")
        checksums = np.load(folder / sums_name, mmap_mode="r", allow_pickle=False)
        if checksums.dtype != CHECKSUM_DTYPE or checksums.shape != (num_samples,):
            raise Yuv420Error(f"{folder}: {sums_name} is {checksums.dtype} {checksums.shape}")
    return Yuv420Companion(folder, field, data, meta, int(record["source_bytes"]), checksums)


def _item_layout(heights: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The companion's meta table for images of these true sizes."""
    hh = heights.astype(np.uint64) + (heights.astype(np.uint64) & 1)
    ww = widths.astype(np.uint64) + (widths.astype(np.uint64) & 1)
    meta = np.zeros(len(heights), dtype=IMAGE_META_DTYPE)
    meta["data_size"] = hh * ww + 2 * (hh // 2) * (ww // 2)
    meta["data_ptr"][1:] = np.cumsum(meta["data_size"])[:-1]
    meta["height"], meta["width"] = heights, widths
    return meta


ChunkSource = Callable[[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""``(start, stop) -> (data, offsets, sizes)``: the JPEG bytes of samples ``[start, stop)``."""


def _store_chunks(store: Any, field: str) -> ChunkSource:
    """Chunks of a store with ``data()`` + ``meta()`` (slip cache, FFCV file), zero-copy."""
    data, meta = store.data(field), store.meta(field)

    def chunk(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = meta[start:stop]
        offsets = np.ascontiguousarray(rows["data_ptr"], dtype=np.uint64)
        return np.asarray(data), offsets, np.ascontiguousarray(rows["data_size"], np.uint64)

    return chunk


def _build(
    folder: Path,
    field: str,
    meta: np.ndarray,
    chunks: ChunkSource,
    source_bytes: int,
    progress: bool,
    num_threads: int | None,
    formats: np.ndarray | None = None,
) -> None:
    """Convert every sample into ``<field>_yuv420.bin.partial``, resuming, then commit.

    ``formats``: per-item format codes (raw RGB items are converted, not decoded).
    """
    bin_name, meta_name = companion_names(field)
    partial = folder / f"{bin_name}.partial"
    state_path = folder / f"{bin_name}.partial.json"
    n = len(meta)
    ends = meta["data_ptr"] + meta["data_size"]
    total = int(ends[-1]) if n else 0
    done = 0
    with contextlib.suppress(OSError, ValueError, KeyError):
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if state["num_samples"] == n and state["total_bytes"] == total and partial.is_file():
            done = int(state["done"])
    decoder = NativeDecoder(num_threads)
    heights = np.ascontiguousarray(meta["height"], dtype=np.int32)
    widths = np.ascontiguousarray(meta["width"], dtype=np.int32)
    bar = tqdm(
        total=n,
        initial=done,
        disable=not show_progress(progress),
        unit="img",
        desc=f"yuv420 {field}",
    )
    with open(partial, "r+b" if done else "wb") as f:
        f.truncate(int(meta["data_ptr"][done]) if done < n else total)
        f.seek(0, os.SEEK_END)
        for start in range(done, n, CHUNK):
            stop = min(start + CHUNK, n)
            data, offsets, sizes = chunks(start, stop)
            base = int(meta["data_ptr"][start])
            out = np.empty(int(ends[stop - 1]) - base, dtype=np.uint8)
            out_offsets = np.ascontiguousarray(meta["data_ptr"][start:stop] - np.uint64(base))
            failures = jpeg_to_yuv420_batch(
                data,
                offsets,
                sizes,
                heights[start:stop],
                widths[start:stop],
                out,
                out_offsets,
                decoder.num_threads,
                None if formats is None else np.ascontiguousarray(formats[start:stop], np.uint8),
            )
            if failures:
                i, _code, msg = failures[0]
                raise Yuv420Error(
                    f"{folder}: cannot convert sample {start + int(i)} of field {field!r} "
                    f"to YUV420: {msg} ({len(failures)} failures in this chunk)"
                )
            f.write(out.data)
            f.flush()
            os.fsync(f.fileno())
            _write_json(state_path, {"num_samples": n, "total_bytes": total, "done": stop})
            bar.update(stop - start)
    bar.close()
    meta_tmp = folder / f"{meta_name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    with open(meta_tmp, "wb") as f:
        np.save(f, meta)
    os.replace(meta_tmp, folder / meta_name)
    os.replace(partial, folder / bin_name)
    # Per-item checksums of the finished items, checked by the gather like the JPEG field's.
    sums_name = checksum_file(f"{field}_yuv420")
    stored = np.memmap(folder / bin_name, np.uint8, mode="r") if total else np.zeros(0, np.uint8)
    sums = xxh64_items(stored, meta["data_ptr"], meta["data_size"])
    del stored
    sums_tmp = folder / f"{sums_name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    with open(sums_tmp, "wb") as f:
        np.save(f, sums)
        f.flush()
        os.fsync(f.fileno())
    os.replace(sums_tmp, folder / sums_name)
    files = {
        bin_name: total,
        meta_name: (folder / meta_name).stat().st_size,
        sums_name: (folder / sums_name).stat().st_size,
    }
    record = {
        "format": COMPANION_FORMAT,
        "version": COMPANION_VERSION,
        "num_samples": n,
        "source_bytes": int(source_bytes),
        "checksum": CHECKSUM_NAME,
        "files": files,
    }
    _write_record(folder, field, record)  # the commit point
    state_path.unlink(missing_ok=True)
    if progress:
        ratio = total / max(int(source_bytes), 1)
        logging.getLogger(__name__).info(
            f"YUV420 companion of {field!r}: {total / 1e6:,.1f} MB, "
            f"{ratio:.2f}x the JPEG field ({int(source_bytes) / 1e6:,.1f} MB), in {folder}"
        )


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


def build_yuv420(
    store: Any,
    field: str = "image",
    *,
    folder: str | os.PathLike | None = None,
    cache_root: str | os.PathLike | None = None,
    progress: bool = True,
    num_threads: int | None = None,
    rebuild: bool = False,
) -> Yuv420Companion:
    """Build (or open, if it is already there) the YUV420 companion of an image field.

    Args:
        store: A :class:`~slipstream.cache.SlipCache`, an
            :class:`~slipstream.readers.FfcvFile` or any store with ``path``,
            ``num_samples``, ``data(field)`` and ``meta(field)`` (JPEG items).
        field: The image field to mirror.
        folder: Where to put the companion (default :func:`companion_folder`).
        cache_root: Root for stores that are not slip caches.
        progress: Show a progress bar.
        num_threads: Conversion threads (default: all cores).
        rebuild: Build again even if a valid companion exists.

    Returns:
        The opened companion (``size_ratio`` gives its size relative to the JPEG field).

    Raises:
        Yuv420Error: If a JPEG cannot be decoded (naming the sample) or the files are damaged.
    """
    folder = Path(folder) if folder is not None else companion_folder(store, cache_root)
    folder.mkdir(parents=True, exist_ok=True)
    n = int(store.num_samples)
    if not rebuild:
        with contextlib.suppress(Yuv420Error):
            return open_yuv420(folder, field, n)
    with build_lock(folder / f"{field}_yuv420", announce=progress):
        if not rebuild:  # another process may have built it while we waited
            with contextlib.suppress(Yuv420Error):
                return open_yuv420(folder, field, n)
        source = store.meta(field)
        meta = _item_layout(np.asarray(source["height"]), np.asarray(source["width"]))
        source_bytes = int(np.asarray(source["data_size"]).sum())
        _build(
            folder,
            field,
            meta,
            _store_chunks(store, field),
            source_bytes,
            progress,
            num_threads,
            stored_item_formats(store, field),  # raw RGB items: converted, not decoded
        )
    return open_yuv420(folder, field, n)


def build_yuv420_from_jpegs(
    jpegs: list[bytes | os.PathLike | str],
    folder: str | os.PathLike,
    field: str = "image",
    *,
    progress: bool = True,
    num_threads: int | None = None,
) -> Yuv420Companion:
    """Build a standalone companion directly from JPEG files or bytes.

    Args:
        jpegs: JPEG files (paths) or encoded bytes, in sample order.
        folder: Folder for the companion and its ``yuv420.json`` record.
        field: Field name the files are named after.
        progress: Show a progress bar.
        num_threads: Conversion threads (default: all cores).

    Returns:
        The opened companion.
    """
    from slipstream.native.decode import read_jpeg_header

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    def load(item: bytes | os.PathLike | str) -> bytes:
        return item if isinstance(item, bytes) else Path(item).read_bytes()

    headers = [read_jpeg_header(load(j)) for j in jpegs]
    heights = np.array([h.height for h in headers], dtype=np.uint32)
    widths = np.array([h.width for h in headers], dtype=np.uint32)
    meta = _item_layout(heights, widths)

    def chunk(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        items = [load(j) for j in jpegs[start:stop]]
        sizes = np.array([len(b) for b in items], dtype=np.uint64)
        offsets = np.zeros(len(items), dtype=np.uint64)
        offsets[1:] = np.cumsum(sizes)[:-1]
        return np.frombuffer(b"".join(items), dtype=np.uint8), offsets, sizes

    total_source = sum(len(j) if isinstance(j, bytes) else os.path.getsize(j) for j in jpegs)
    with build_lock(folder / f"{field}_yuv420", announce=progress):
        _build(folder, field, meta, chunk, total_source, progress, num_threads)
    return open_yuv420(folder, field, len(jpegs))
