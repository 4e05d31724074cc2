"""Compare every sample of a slip cache with its source: ``slipstream verify``.

This sits above both the cache and the readers (it opens a cache and reads its source
again), so it lives at the top of the package, next to the command line that runs it.

The source is read again with its reader (from the manifest's ``source.kind`` and
``source.root`` unless another is given) and each sample goes through the build's own
check (:func:`~slipstream.cache.build_batches.read_checked_batch`), so the comparison is
with exactly what a build would store now:

* Images stored as is: the cache's bytes equal the source file's bytes, and the stored
  height and width equal the JPEG header's.
* Images the build re-encoded (listed in ``manifest["build"]["reencoded"]``): equal bytes,
  or, where this machine's encoder produces other bytes, the decoded pixels have the same
  size and a mean absolute difference of at most :data:`PIXEL_TOLERANCE` levels (0-255).
* Every other field: equal values (floats: NaN equals NaN).
* Every stored JPEG decodes (the C++ kernel's full decode, once, in parallel:
  :func:`~slipstream.cache.decode_check.check_cache_decode`), so damage inside the
  compressed data that equal bytes cannot reveal (a source that was already broken) is
  reported too.
* Samples the build skipped (``manifest["build"]["skipped"]``) must still be unreadable;
  the cache must hold every other source sample, in source order.

Example:
    >>> report = verify_cache("/data/train.slip")  # doctest: +SKIP
    >>> print(report.format()); report.ok          # doctest: +SKIP
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from slipstream.cache.build_batches import BATCH_SIZE, CheckedBatch, read_checked_batch
from slipstream.cache.decode_check import check_cache_decode
from slipstream.cache.format import BYTES_TYPES, IMAGE_TYPE, STRING_TYPE
from slipstream.cache.reader import SlipCache
from slipstream.logs import show_progress
from slipstream.readers.open_source import READER_KINDS, open_reader

PIXEL_TOLERANCE = 3.0
"""Largest mean absolute pixel difference (0-255 levels) accepted for a re-encoded image
whose bytes differ from this machine's re-encoding of its source."""


@dataclass(frozen=True)
class Mismatch:
    """One difference between a cache and its source.

    Attributes:
        cache_index: Sample index in the cache (None where the cache lacks the sample).
        source_index: Sample index in the source (None for a whole-cache problem).
        name: The source sample's name (``reader.describe``), or the cache path.
        field: The field that differs, or None.
        reason: What differs.
    """

    cache_index: int | None
    source_index: int | None
    name: str
    field: str | None
    reason: str


@dataclass
class VerifyReport:
    """The result of :func:`verify_cache`.

    Attributes:
        cache: The cache folder.
        source: The source that was compared with it.
        checked: Cache samples compared.
        skipped: Source samples the build skipped (still checked to be unreadable).
        reencoded: Re-encoded images compared.
        decoded: Stored images decoded by the decode check (0 when it was off).
        fingerprint_matches: Whether the source's fingerprint equals the manifest's.
        mismatches: Every difference found.
    """

    cache: Path
    source: str
    checked: int = 0
    skipped: int = 0
    reencoded: int = 0
    decoded: int = 0
    fingerprint_matches: bool = True
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no sample differs."""
        return not self.mismatches

    @property
    def bad_samples(self) -> list[int]:
        """Sorted cache indices of the samples that differ."""
        return sorted({m.cache_index for m in self.mismatches if m.cache_index is not None})

    def format(self, limit: int = 20) -> str:
        """A human-readable report, listing at most ``limit`` mismatches."""
        lines = [
            f"cache {self.cache}",
            f"source {self.source}"
            + ("" if self.fingerprint_matches else " (fingerprint changed)"),
            f"  {self.checked} samples compared, {self.reencoded} re-encoded images by pixels "
            f"where bytes differ, {self.skipped} skipped at build, {self.decoded} images "
            f"decoded",
        ]
        if self.ok:
            lines.append("  OK: every sample matches its source")
            return "\n".join(lines)
        lines.append(f"  MISMATCH: {len(self.mismatches)} difference(s)")
        for m in self.mismatches[:limit]:
            where = f"cache sample {m.cache_index}" if m.cache_index is not None else "cache"
            what = f" field {m.field!r}" if m.field else ""
            lines.append(f"    {where} ({m.name}){what}: {m.reason}")
        if len(self.mismatches) > limit:
            lines.append(f"    ... {len(self.mismatches) - limit} more")
        return "\n".join(lines)


def verify_cache(
    cache_path: str | os.PathLike,
    source: Any = None,
    *,
    pixel_tolerance: float = PIXEL_TOLERANCE,
    progress: bool = False,
    decode: bool = True,
    num_threads: int | None = None,
) -> VerifyReport:
    """Compare every sample of a cache with its source.

    Args:
        cache_path: The cache folder.
        source: A source path or an open reader (default: the manifest's source).
        pixel_tolerance: See :data:`PIXEL_TOLERANCE`.
        progress: Show a progress bar.
        decode: Also decode every stored image once; one that fails is a mismatch.
        num_threads: Decode threads (default: the usable cores).

    Returns:
        The report; ``report.ok`` is False when anything differs.

    Raises:
        CacheFormatError: The cache does not open.
    """
    cache = SlipCache.open(cache_path)
    recorded = cache.manifest.get("source", {})
    if source is None:
        kind = recorded.get("kind")  # a reader subclass: guess from the path instead
        reader = open_reader(
            recorded["root"],
            kind=kind if kind in READER_KINDS else None,
            list_root=recorded.get("list_root"),
        )
    elif isinstance(source, (str, os.PathLike)):
        reader = open_reader(source)
    else:
        reader = source
    report = VerifyReport(cache.path, str(getattr(reader, "root", source)))
    report.fingerprint_matches = reader.fingerprint() == recorded.get("fingerprint")
    _Comparison(cache, reader, report, pixel_tolerance, decode).run(progress)
    if decode:
        _check_decodes(cache, report, num_threads, progress)
    return report


def _check_decodes(
    cache: SlipCache, report: VerifyReport, num_threads: int | None, progress: bool
) -> None:
    """Decode every stored image once; each failure is a mismatch naming the sample."""
    images = [name for name, kind in cache.field_types.items() if kind == IMAGE_TYPE]
    report.decoded = len(cache) * len(images)
    named = cache.field_types.get("path") == STRING_TYPE
    for index, name, message in check_cache_decode(cache, images, num_threads, progress):
        where = cache.string("path", index) if named else str(cache.path)
        report.mismatches.append(Mismatch(index, None, where, name, message))


class _Comparison:
    """Walks the source in batches and compares each sample with its cache sample."""

    def __init__(
        self,
        cache: SlipCache,
        reader: Any,
        report: VerifyReport,
        tolerance: float,
        decode: bool = False,
    ):
        self.cache, self.reader, self.report, self.tolerance = cache, reader, report, tolerance
        self.decode = decode
        build = cache.manifest.get("build", {})
        self.skipped = {int(e["index"]) for e in build.get("skipped", [])}
        self.reencoded = {int(e["index"]) for e in build.get("reencoded", [])}
        self.quality = int(build.get("jpeg_quality", 95))
        # the build's storage of non-JPEG images (caches from before raw items: re-encoded)
        self.image_storage = str(build.get("image_storage", "jpeg"))
        report.skipped = len(self.skipped)
        self.fields = {n: t for n, t in cache.field_types.items()}
        self.next_cache_index = 0

    def mismatch(self, cache_index: int | None, source_index: int | None, field: Any, why: str):
        name = (
            self.reader.describe(source_index) if source_index is not None else str(self.cache.path)
        )
        self.report.mismatches.append(Mismatch(cache_index, source_index, name, field, why))

    def run(self, progress: bool) -> None:
        total = len(self.reader)
        missing = set(self.fields) - set(self.reader.field_types)
        if missing:
            self.mismatch(None, None, None, f"the source has no field(s) {sorted(missing)}")
            return
        bar = tqdm(total=total, disable=not show_progress(progress), unit="img", desc="verifying")
        for start in range(0, total, BATCH_SIZE):
            stop = min(start + BATCH_SIZE, total)
            # A sample skipped by a decode check must still fail it: decode those batches.
            check = self.decode and any(start <= i < stop for i in self.skipped)
            batch = read_checked_batch(
                self.reader, self.fields, start, stop, self.quality, check, self.image_storage
            )
            self.compare_batch(batch)
            bar.update(stop - start)
        bar.close()
        if self.next_cache_index != len(self.cache):
            self.mismatch(
                None,
                None,
                None,
                f"the cache has {len(self.cache)} samples, the source {total} of which "
                f"{len(self.skipped)} were skipped at build: {self.next_cache_index} expected",
            )

    def compare_batch(self, batch: CheckedBatch) -> None:
        errors = dict(batch.errors)
        row = -1  # rows of batch.columns are the samples without an error
        for index in range(batch.start, batch.start + batch.count):
            row += index not in errors
            if index in self.skipped:
                if index not in errors:
                    self.mismatch(None, index, None, "skipped at build, but reads fine now")
                continue
            cache_index = self.next_cache_index
            self.next_cache_index += 1
            if cache_index >= len(self.cache):
                self.mismatch(None, index, None, "missing from the cache")
            elif index in errors:
                self.mismatch(cache_index, index, None, f"source now bad: {errors[index]}")
            else:
                self.report.checked += 1
                for name, kind in self.fields.items():
                    reason = self.compare_value(name, kind, cache_index, index, batch, row)
                    if reason is not None:
                        self.mismatch(cache_index, index, name, reason)

    def compare_value(
        self, name: str, kind: str, cache_index: int, index: int, batch: CheckedBatch, row: int
    ) -> str | None:
        value = batch.columns[name][row]
        if kind in BYTES_TYPES:
            stored = self.cache.item_bytes(name, cache_index)
            if kind == IMAGE_TYPE:
                heights, widths = batch.image_sizes[name]
                meta = self.cache.meta(name)[cache_index]
                size = (int(meta["height"]), int(meta["width"]))
                if size != (int(heights[row]), int(widths[row])):
                    return f"stored size {size}, source {(int(heights[row]), int(widths[row]))}"
            reason = _bytes_difference(stored, value)
            if reason is not None and kind == IMAGE_TYPE and index in self.reencoded:
                self.report.reencoded += 1
                return self.compare_pixels(stored, self.reader.read_sample(index)[name])
            return reason
        if kind == STRING_TYPE:
            stored = self.cache.string(name, cache_index)
            return None if stored == str(value) else f"cache {stored!r}, source {str(value)!r}"
        stored = np.asarray(self.cache.numbers(name)[cache_index])
        value = np.asarray(value)
        nan = stored.dtype.kind in "fc" and value.dtype.kind in "fc"
        same = stored.shape == value.shape and np.array_equal(stored, value, equal_nan=nan)
        return None if same else f"cache {stored.tolist()!r}, source {value.tolist()!r}"

    def compare_pixels(self, stored: np.ndarray, source: Any) -> str | None:
        cache_pixels = _decode(stored.tobytes())
        source_pixels = _decode(bytes(source))
        if cache_pixels.shape != source_pixels.shape:
            return f"re-encoded image is {cache_pixels.shape}, source {source_pixels.shape}"
        error = float(np.abs(cache_pixels - source_pixels).mean())
        if error > self.tolerance:
            return f"re-encoded pixels differ by {error:.2f} levels on average (> {self.tolerance})"
        return None


def _bytes_difference(stored: np.ndarray, value: Any) -> str | None:
    """None when equal, else a description naming the first differing byte."""
    source = np.frombuffer(
        value if isinstance(value, (bytes, memoryview)) else bytes(value), np.uint8
    )
    if len(stored) == len(source) and np.array_equal(stored, source):
        return None
    common = min(len(stored), len(source))
    differ = np.flatnonzero(stored[:common] != source[:common])
    where = int(differ[0]) if len(differ) else common
    return f"bytes differ (cache {len(stored)} bytes, source {len(source)}; first at byte {where})"


def _decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)
