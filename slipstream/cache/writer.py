"""Build a slip cache from any reader: atomic, verified, one builder at a time.

A reader is any object with ``field_types`` (name -> type), ``__len__``,
``read_sample(i) -> dict``, ``describe(i) -> str`` and ``fingerprint() -> str``; an optional
``read_batch(start, stop) -> dict of columns`` lets it hand over many samples per call
(:mod:`slipstream.cache.build_batches`).

How a build runs:

1. If ``dest`` already opens as a cache, it is returned as is (unless ``overwrite``);
   its source fingerprint is not compared: name caches after the fingerprint (as
   :class:`~slipstream.SlipstreamDataset` does, ``<name>-<fingerprint16>-v<version>``) or
   pass ``overwrite=True`` after the source changed.
2. The exclusive lock ``<dest>.lock`` is taken (:mod:`slipstream.cache.build_lock`). A
   second process building the same ``dest`` waits here, then finds the cache built and
   returns it. A dead builder's lock is released by the operating system.
3. Leftover ``<dest>.tmp-<pid>-*`` folders of processes that no longer run are removed:
   an interrupted or killed build is restarted from scratch, not resumed.
4. Batches of samples are read and their images checked in a thread pool, and written in
   order into ``<dest>.tmp-<pid>-<random>``: every ``ImageBytes`` item is checked
   (:func:`slipstream.cache.raw_items.prepare_stored_images`: portable JPEGs byte for
   byte, any other image Pillow reads stored as its raw RGB pixels, lossless, with
   ``<field>.format.npy`` and manifest version 3; ``image_storage="jpeg"`` re-encodes them
   as JPEG at ``jpeg_quality`` instead and lists them in ``manifest["build"]["reencoded"]``).
   Before that, the cache's size is estimated from a few samples and a destination
   without that much free space is refused (:mod:`slipstream.cache.free_space`).
5. Files are fsynced and ``manifest.json`` is written last. The folder is opened as a
   cache and checked (sample counts, every item table contiguous and covering its
   ``.bin`` exactly), then renamed to ``dest`` in one ``os.rename``. An interrupted build
   leaves nothing at ``dest``.

Bad items (empty, unreadable, truncated, not an image) raise :class:`CacheBuildError`
naming the sample, or with ``on_error="skip"`` are left out and listed in
``manifest["build"]["skipped"]``. Skipping renumbers the cache: cache sample ``i`` is then
not source sample ``i``; a reader's own ``"index"`` field keeps the source index.

Example:
    >>> from slipstream.readers import ImageFolderReader        # doctest: +SKIP
    >>> path = build_cache(ImageFolderReader("/data/train"), "/data/train.slip")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from slipstream.cache.build_batches import CacheBuildError, ordered_batches, read_checked_batch
from slipstream.cache.build_lock import build_lock, unwritable_location
from slipstream.cache.field_writer import (
    BackgroundWriter,
    FieldValueError,
    FieldWriter,
    fsync_dir,
)
from slipstream.cache.format import (
    BYTES_TYPES,
    CLASSES_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_STORAGE,
    MANIFEST_NAME,
    RAW_FORMAT_VERSION,
    STRING_TYPE,
    field_format,
    is_valid_field_name,
)
from slipstream.cache.free_space import check_free_space, is_out_of_space, out_of_space
from slipstream.cache.raw_items import write_item_formats
from slipstream.cache.reader import CacheFormatError, SlipCache
from slipstream.logs import show_progress

ON_ERROR_CHOICES = ("raise", "skip")

__all__ = ["ON_ERROR_CHOICES", "CacheBuildError", "build_cache", "remove_stale_tmp_dirs"]


def default_build_workers() -> int:
    """Reader threads of a build by default: a quarter of the usable cores, at most 4.

    Zero (read inline) below 4 cores: there the main thread, the writer and the page cache
    already share the cores, and an extra reader thread only competes with them (on the
    2-core benchmark machine, inline reading built 21,467 img/s against 18,190 with 2
    threads; ``benchmarks/results/build-2026-11-25-225725.md``).
    """
    return min(4, len(os.sched_getaffinity(0)) // 4)


def build_cache(
    reader: Any,
    dest: str | os.PathLike,
    *,
    on_error: str = "raise",
    jpeg_quality: int = 95,
    num_workers: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
    check_decode: bool = False,
    image_storage: str = "raw",
    exif_transpose: bool = False,
) -> Path:
    """Write every sample of ``reader`` into a slip cache at ``dest``.

    Safe to call from several processes at once for the same ``dest``: one builds, the
    others wait for it and return the finished cache.

    Args:
        reader: Object with ``field_types``, ``__len__``, ``read_sample``, ``describe``
            and ``fingerprint`` (see the module docstring).
        dest: The cache folder to create (it will hold ``manifest.json``).
        on_error: ``"raise"`` stops at the first bad sample; ``"skip"`` leaves bad
            samples out and lists them in the manifest.
        jpeg_quality: Quality for images that are re-encoded as JPEG (JPEGs the kernel
            cannot decode, and every non-JPEG image with ``image_storage="jpeg"``).
        num_workers: Threads that read and check batches of samples; 0 reads inline.
            File readers read without the GIL; more threads help on network file
            systems and cold disks. Default: :func:`default_build_workers`.
        progress: Show a tqdm progress bar (and say so when waiting for another builder).
        overwrite: Rebuild even if ``dest`` already holds a cache (or a damaged one),
            unless another process finished building it while this one waited.
        check_decode: Decode every image once (in parallel, the C++ kernel's full decode)
            and treat one that fails like any unreadable sample (``on_error``). Catches
            damage inside the compressed data that the marker walk cannot see.
        image_storage: How a source image that is not a JPEG is stored: ``"raw"``
            (default: its RGB pixels, lossless, decoded later with a crop and a resize
            only) or ``"jpeg"`` (re-encoded at ``jpeg_quality``: a smaller cache, lossy).
        exif_transpose: Store images whose EXIF Orientation tag is not 1 upright (Pillow's
            ``ImageOps.exif_transpose``), as raw RGB items (re-encoded JPEGs with
            ``image_storage="jpeg"``). Default False: EXIF orientation is ignored, as
            torchvision's ``ImageFolder`` ignores it. Recorded in ``manifest["build"]``.

    Returns:
        ``dest`` as a Path.

    Raises:
        CacheBuildError: A bad sample (with ``on_error="raise"``), ``dest`` exists and
            is not a cache that opens (without ``overwrite``), or the written cache failed
            its check.
        NotEnoughSpaceError: (a CacheBuildError) The estimated size exceeds the free space
            (checked before writing), or the disk filled during the build; the temporary
            folder is removed either way.
        CacheLocationError: ``dest``'s folder cannot be written (read-only, no permission,
            a file in the way); an OSError too.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    if image_storage not in IMAGE_STORAGE:
        raise ValueError(f"image_storage must be one of {IMAGE_STORAGE}, got {image_storage!r}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100], got {jpeg_quality}")
    if num_workers is None:
        num_workers = default_build_workers()
    dest = Path(dest)
    if dest.exists() and not overwrite:
        return _existing_cache(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable_location(dest.parent, exc, f"the cache {dest.name}") from exc
    with build_lock(dest, announce=progress is not False) as waited:
        if dest.exists() and (not overwrite or (waited and _opens(dest))):
            return _existing_cache(dest)  # built by the process this one waited for
        if dest.exists():
            _check_replaceable(dest)
        remove_stale_tmp_dirs(dest)
        if _CHECK_FREE_SPACE:
            check_free_space(reader, dest, image_storage)
        tmp = dest.parent / f"{dest.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            manifest = _write_cache(
                reader,
                tmp,
                on_error,
                jpeg_quality,
                num_workers,
                progress,
                dest.name,
                check_decode,
                image_storage,
                exif_transpose,
            )
            check_written_cache(tmp, manifest)
            _publish(tmp, dest, overwrite)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if is_out_of_space(exc):
                raise out_of_space(dest, tmp, exc) from exc
            raise
    return dest


_CHECK_FREE_SPACE = True  # private knob: tests turn the estimate off to fill a disk


def _opens(dest: Path) -> bool:
    try:
        SlipCache.open(dest)
    except CacheFormatError:
        return False
    return True


def _existing_cache(dest: Path) -> Path:
    """``dest`` if it opens as a cache, else a :class:`CacheBuildError`."""
    try:
        SlipCache.open(dest)
    except CacheFormatError as exc:
        raise CacheBuildError(
            f"{dest} exists but is not a usable cache ({exc}); pass overwrite=True to rebuild it"
        ) from exc
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
    """Whether ``pid`` runs; a zombie (killed, not yet reaped by its parent) does not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc: trust kill()
    return state not in (b"Z", b"X")


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
        # Another process published first (one that did not take the lock): keep its
        # cache if it opens.
        SlipCache.open(dest)
        shutil.rmtree(tmp, ignore_errors=True)
    fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def check_written_cache(folder: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Open a just-written cache and check it holds what the build wrote.

    Cheap checks, no image bytes read: the cache opens (format, version, every file's
    size), has the sample count of ``manifest``, and every item table of a bytes, image or
    string field is contiguous from byte 0 and ends exactly at the end of its ``.bin``.

    Args:
        folder: The cache folder.
        manifest: The manifest the build wrote.

    Raises:
        CacheBuildError: Naming the folder and what does not match.
    """
    try:
        cache = SlipCache.open(folder)
    except CacheFormatError as exc:
        raise CacheBuildError(f"the cache just written does not open: {exc}") from exc
    if len(cache) != manifest["num_samples"] or set(cache.field_types) != set(manifest["fields"]):
        raise CacheBuildError(
            f"{folder}: wrote {manifest['num_samples']} samples of fields "
            f"{sorted(manifest['fields'])}, it opens with {len(cache)} samples of "
            f"{sorted(cache.field_types)}"
        )
    for name, kind in cache.field_types.items():
        if kind in BYTES_TYPES:
            meta = cache.meta(name)
            starts, sizes = meta["data_ptr"], meta["data_size"]
        elif kind == STRING_TYPE:
            table = cache.offsets(name)
            starts, sizes = table[:, 0], table[:, 1]
        else:
            continue
        ends = np.cumsum(sizes, dtype=np.uint64)
        contiguous = len(starts) == 0 or (starts[0] == 0 and np.array_equal(starts[1:], ends[:-1]))
        covered = (int(ends[-1]) if len(ends) else 0) == len(cache.data(name))
        if not (contiguous and covered):
            raise CacheBuildError(
                f"{folder}: items of field {name!r} do not tile {name}.bin "
                f"(contiguous: {contiguous}, cover it exactly: {covered})"
            )


def reader_class_names(reader: Any) -> dict[str, list[str]]:
    """Class names a reader knows, per label field, for the manifest's ``"classes"``.

    A reader may have ``class_names`` (field name -> names, e.g. Hugging Face
    ``ClassLabel`` columns) or ``classes`` (the names of its ``"label"`` field, as
    :class:`~slipstream.readers.ImageFolderReader` and a file list with class names).

    Args:
        reader: The reader being built from.

    Returns:
        Field name -> class names (label ``i`` is ``names[i]``); empty when none are known.
    """
    named = getattr(reader, "class_names", None)
    if isinstance(named, dict):
        return {str(field): [str(n) for n in names] for field, names in named.items() if names}
    classes = getattr(reader, "classes", None)
    if isinstance(classes, (list, tuple)) and classes:
        return {"label": [str(n) for n in classes]}
    return {}


def _write_cache(
    reader: Any,
    folder: Path,
    on_error: str,
    quality: int,
    num_workers: int,
    progress: bool,
    label: str,
    check_decode: bool = False,
    image_storage: str = "raw",
    exif_transpose: bool = False,
) -> dict[str, Any]:
    """Write every sample into ``folder`` and its manifest last; return the manifest."""
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
    if hasattr(reader, "list_file"):  # a file list: the list, and where its paths start
        source["root"], source["list_root"] = str(reader.list_file), str(reader.root)
    background = BackgroundWriter()
    writers = {
        name: FieldWriter(folder, name, kind, total, background)
        for name, kind in field_types.items()
    }
    reencoded: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    load = functools.partial(
        read_checked_batch,
        reader,
        field_types,
        quality=quality,
        check_decode=check_decode,
        image_storage=image_storage,
        exif_transpose=exif_transpose,
    )
    item_formats: dict[str, list[np.ndarray]] = {}
    bar = tqdm(
        total=total, disable=not show_progress(progress), unit="img", desc=f"building {label}"
    )
    batches = ordered_batches(load, total, num_workers)
    try:
        for batch in batches:
            for index, error in batch.errors:
                if on_error == "raise":
                    raise CacheBuildError(f"{reader.describe(index)}: {error}")
                skipped.append({"index": index, "name": reader.describe(index), "reason": error})
            for name, writer in writers.items():
                sizes = batch.image_sizes.get(name, (None, None))
                writer.append(batch.columns[name], *sizes)
            for name, codes in batch.item_formats.items():
                item_formats.setdefault(name, []).append(codes)
            reencoded += [
                {"index": index, "name": reader.describe(index), "reason": reason}
                for index, reason in batch.reencoded
            ]
            bar.update(batch.count)
        fields = {name: writer.finish() for name, writer in writers.items()}
        version = FORMAT_VERSION
        for name, parts in item_formats.items():
            codes = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
            fields[name]["format"] = field_format(codes)
            if fields[name]["format"] != "jpeg":  # version 3: per-item format codes
                file_name = write_item_formats(folder, name, codes)
                fields[name]["files"][file_name] = (folder / file_name).stat().st_size
                version = RAW_FORMAT_VERSION
        for name, names in reader_class_names(reader).items():
            if name in fields:
                fields[name][CLASSES_KEY] = names
    except FieldValueError as exc:
        raise CacheBuildError(str(exc)) from exc
    finally:
        batches.close()  # stops the thread pool
        background.close()
        for writer in writers.values():
            writer.abort()
        bar.close()
    manifest = {
        "format": FORMAT_NAME,
        "version": version,
        "num_samples": total - len(skipped),
        "fields": fields,
        "source": source,
        "build": {
            "created_unix": time.time(),
            "jpeg_quality": quality,
            "image_storage": image_storage,
            "exif_transpose": bool(exif_transpose),
            "reencoded": reencoded,
            "skipped": skipped,
        },
    }
    with open(folder / MANIFEST_NAME, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(folder)
    return manifest
