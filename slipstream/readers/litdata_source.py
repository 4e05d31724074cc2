"""Turn a LitData source (a local folder or ``s3://bucket/prefix``) into a slip cache.

For ``s3://`` only ``index.json`` is fetched before the cache name is known; when a cache of
that exact index already exists, no chunk is downloaded. Otherwise the chunks are
downloaded (:mod:`slipstream.readers.s3_download`) into ``<cache_root>/s3/...`` and the
cache is built from there, both under the cache's build lock
(:mod:`slipstream.cache.build_lock`): the ranks of a node download each chunk once, and a
failed download or build is raised by all of them. The downloaded chunks are kept, so a
rebuild does not download again; delete ``<cache_root>/s3`` to reclaim the space once the
cache is built.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from slipstream.cache import build_cache
from slipstream.cache.build_lock import build_lock
from slipstream.cache.format import NAME_VERSION, storage_suffix
from slipstream.readers.litdata_dataset import LitDataReader
from slipstream.readers.s3_download import download_chunks, fetch_index, is_s3_url, parse_s3_url
from slipstream.remote_cache import RemoteCache, obtain_cache


def open_litdata_reader(
    source: str | os.PathLike,
    download_root: str | os.PathLike,
    *,
    progress: bool = True,
) -> LitDataReader:
    """A reader of a LitData folder, or of an ``s3://`` dataset downloaded first.

    Args:
        source: Local folder with ``index.json``, or ``s3://bucket/prefix``.
        download_root: Where ``s3://`` datasets are downloaded to.
        progress: Show the download progress bar.

    Returns:
        The reader, every chunk present locally.
    """
    if not is_s3_url(source):
        return LitDataReader(source)
    folder = fetch_index(str(source), download_root)
    download_chunks(str(source), folder, progress=progress)
    return LitDataReader(folder)


def litdata_cache(
    source: str | os.PathLike,
    cache_root: str | os.PathLike,
    *,
    on_error: str = "raise",
    progress: bool = True,
    rename: dict[str, str] | None = None,
    remote: RemoteCache | None = None,
    build_threads: int | None = None,
    **storage: Any,
) -> Path:
    """Build (once) the slip cache of a LitData source; return its folder.

    The cache is ``<cache_root>/<name>-<fingerprint16>-v<NAME_VERSION>[-jpeg<q>]``, ``name`` being
    the folder's name or the URL's last path component (the bucket for a bare bucket).

    Args:
        source: Local folder with ``index.json``, or ``s3://bucket/prefix``.
        cache_root: Where caches (and ``s3://`` downloads) go.
        on_error: ``"raise"`` or ``"skip"`` bad samples while building.
        progress: Show progress bars.
        rename: Field renames for :class:`LitDataReader` (e.g. ``{"0": "image"}``); they
            are part of the fingerprint, so the cache name.
        remote: Share the cache on S3 (:func:`slipstream.remote_cache.obtain_cache`):
            download it when it is there, else build it (rank 0) and upload it.
        build_threads: Reader threads of the build (``build_cache``'s ``num_workers``).
        **storage: ``image_storage`` / ``jpeg_quality`` of the build (``build_cache``); a
            JPEG storage is part of the cache name.

    Returns:
        The cache folder.
    """
    cache_root = Path(cache_root)
    if is_s3_url(source):
        bucket, prefix = parse_s3_url(str(source))
        name = prefix.rsplit("/", 1)[-1] or bucket
        folder = fetch_index(str(source), cache_root)
        reader = LitDataReader(folder, check_chunks=False, rename=rename)
    else:
        reader = LitDataReader(source, rename=rename)
        name = reader.root.resolve().name
    dest = (
        cache_root
        / f"{name}-{reader.fingerprint()[:16]}-v{NAME_VERSION}{storage_suffix(**storage)}"
    )

    build_here = functools.partial(
        build_cache,
        reader,
        dest,
        on_error=on_error,
        progress=progress,
        num_workers=build_threads,
        **storage,
    )

    def build() -> Path:
        if (dest / "manifest.json").is_file() or not is_s3_url(source):
            return build_here()
        dest.parent.mkdir(parents=True, exist_ok=True)
        # The download and the build under one lock (reentrant: build_cache takes it
        # again), so the ranks of a node fetch each chunk once; the others wait.
        with build_lock(dest, announce=progress is not False, what=f"download of {source}"):
            if not (dest / "manifest.json").is_file():
                download_chunks(str(source), reader.root, progress=progress)
                reader.check_chunks()
            return build_here()

    return build() if remote is None else obtain_cache(dest, build, remote)
