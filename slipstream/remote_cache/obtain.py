"""Get a cache folder from the remote cache, or build it once in the whole job and share it.

:func:`obtain_cache` is what :class:`~slipstream.SlipstreamDataset` runs for every cache it
would build when ``remote_cache=`` is given:

1. ``dest`` already holds a cache: it is used (nothing remote is read).
2. Ranks other than global rank 0 (``torch.distributed``, else ``$RANK``) wait, holding no
   lock, until the marker of the cache exists on S3 (polling; one log line when they start
   waiting, one every :data:`~slipstream.cache.build_lock.REPORT_EVERY_S` seconds, a
   :class:`RemoteCacheError` after ``timeout`` seconds). A failure record rank 0 stored
   there is raised as the same error (see :mod:`slipstream.cache.build_lock`).
3. Under the node's lock of ``dest`` (one process per node does the work, the others
   wait on the lock): a marker found means a download (resumable, checked, atomic);
   otherwise (rank 0) the cache is built, uploaded, and its marker written last. A failed
   build stores its failure record on S3 for the other nodes before it is raised.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slipstream.cache import build_cache
from slipstream.cache import build_lock as lock_module
from slipstream.cache.build_lock import (
    build_lock,
    failure_record,
    raise_recorded_failure,
    record_applies,
)
from slipstream.cache.format import MANIFEST_NAME
from slipstream.remote_cache.store import RemoteCache
from slipstream.remote_cache.transfer import RemoteCacheError

_log = logging.getLogger(__name__)

TIMEOUT_ENV = "SLIPSTREAM_REMOTE_CACHE_TIMEOUT"
DEFAULT_TIMEOUT_S = 24 * 3600.0
POLL_ENV = "SLIPSTREAM_REMOTE_CACHE_POLL"
POLL_S = float(os.environ.get(POLL_ENV) or 5.0)
"""Seconds between checks of the marker (``$SLIPSTREAM_REMOTE_CACHE_POLL``, default 5)."""


def global_rank() -> int:
    """This process's rank in the whole job.

    The initialized torch.distributed group's, else torchrun's ``$RANK``, else Slurm's
    ``$SLURM_PROCID`` (plain ``srun`` before the process group starts), else 0.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    for name in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(name, "").strip()
        if value:
            return int(value)
    return 0


def obtain_cache(
    dest: str | os.PathLike,
    build: Callable[[], Path],
    remote: RemoteCache,
    *,
    timeout: float | None = None,
    poll: float = POLL_S,
) -> Path:
    """The cache folder ``dest``: local, downloaded, or built by rank 0 and uploaded.

    Args:
        dest: The local cache folder (its name is the remote name).
        build: Builds the cache at ``dest`` and returns it (e.g. ``build_cache``).
        remote: Where caches are shared.
        timeout: Seconds a rank other than 0 waits for rank 0's upload (default
            ``$SLIPSTREAM_REMOTE_CACHE_TIMEOUT``, else 24 h).
        poll: Seconds between checks of the marker.

    Returns:
        ``dest``.

    Raises:
        RemoteCacheError: The wait timed out, or a download did not check.
        Exception: A build failure recorded by rank 0 (raised on every rank).
    """
    dest = Path(dest)
    if (dest / MANIFEST_NAME).is_file():
        return dest
    name = dest.name
    if timeout is None:
        timeout = float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)
    marker = remote.marker(name)
    if marker is None and global_rank() != 0:
        marker = wait_for_marker(remote, name, timeout=timeout, poll=poll)
    dest.parent.mkdir(parents=True, exist_ok=True)
    what = f"download of {remote.location(name)}" if marker else f"build of {dest}"
    with build_lock(dest, what=what):
        if (dest / MANIFEST_NAME).is_file():
            return dest
        marker = marker or remote.marker(name)
        if marker is not None:
            _log.info("slipstream: downloading the cache %s", remote.location(name))
            return remote.download(name, dest, marker)
        _log.info("slipstream: %s is not on %s: building it, then uploading", name, remote.url)
        try:
            built = build()
            remote.upload(built, name)
        except Exception as exc:
            try:
                remote.record_failure(name, failure_record(exc, f"build of {name}"))
            except Exception as record_exc:  # keep the build's error, say the other one
                _log.warning("slipstream: could not store the failure record: %s", record_exc)
            raise
        return built


def build_or_fetch(
    reader: Any,
    dest: str | os.PathLike,
    *,
    remote: RemoteCache | None = None,
    build_threads: int | None = None,
    **options: Any,
) -> Path:
    """:func:`~slipstream.cache.build_cache` of ``reader`` at ``dest``, through ``remote``.

    Args:
        reader: The source reader.
        dest: The cache folder.
        remote: Where caches are shared; ``None`` builds locally as ``build_cache`` does.
        build_threads: Reader threads of the build (``build_cache``'s ``num_workers``).
        **options: Other ``build_cache`` arguments (``on_error``, ``progress``, ...).

    Returns:
        The cache folder.
    """
    build = functools.partial(build_cache, reader, dest, num_workers=build_threads, **options)
    if remote is None:
        return Path(build())
    return obtain_cache(dest, build, remote)


def sync_remote(remote: RemoteCache, folder: str | os.PathLike) -> tuple[int, int]:
    """Exchange new files between a local cache and its remote copy, once per node at a time.

    Under the folder's build lock: where the remote cache has a marker,
    :meth:`RemoteCache.sync`; where it has none, global rank 0 uploads the whole folder
    (other ranks do nothing).

    Returns:
        ``(downloaded, uploaded)`` file counts.
    """
    folder = Path(folder)
    with build_lock(folder, what=f"sync of {folder.name} with {remote.url}"):
        if remote.marker(folder.name) is None:
            if global_rank() != 0:
                return (0, 0)
            return (0, len(remote.upload(folder)["files"]))
        return remote.sync(folder)


def wait_for_marker(
    remote: RemoteCache, name: str, *, timeout: float, poll: float = POLL_S
) -> dict:
    """Poll until the marker of ``name`` exists; raise a failure record that applies.

    Returns:
        The marker.

    Raises:
        RemoteCacheError: After ``timeout`` seconds.
    """
    start = time.monotonic()
    where = remote.location(name)
    _log.warning("slipstream: waiting for rank 0 to build and upload the cache %s", where)
    reported = start
    while True:
        marker = remote.marker(name)
        if marker is not None:
            _log.warning(
                "slipstream: waited %.1f s for the upload of %s", time.monotonic() - start, where
            )
            return marker
        record = remote.failure(name)
        if record is not None and record_applies(record):
            raise_recorded_failure(record, f"{where}/failed.json")
        now = time.monotonic()
        if now - start > timeout:
            raise RemoteCacheError(
                f"waited {timeout:.0f} s for rank 0 to upload the cache {where} (no "
                f"complete.json); is rank 0 building it? (timeout: ${TIMEOUT_ENV})"
            )
        if now - reported >= lock_module.REPORT_EVERY_S:
            reported = now
            _log.warning(
                "slipstream: still waiting for the upload of %s (%.0f s so far)", where, now - start
            )
        time.sleep(poll)
