"""Source pointers: reopen a built cache without looking at every source file.

A cache built from an image folder or a file list is named after the source fingerprint,
which stats every file (:meth:`FileSamplesReader.fingerprint`): seconds for a million
files. To avoid that on every open, the build writes a *pointer* under the cache root,
keyed by the resolved source path and the reader options::

    <cache_root>/sources/<sha256(kind, resolved source, options)[:32]>.json
    {
      "pointer_version": 1,
      "kind": "ImageFolderReader",         # reader class name
      "source": "/abs/path/of/source",     # resolved
      "options": {...},                    # what else names the cache (e.g. list root)
      "cache": "<cache folder name>",      # under the cache root
      "fingerprint": "<hex>",              # the full fingerprint the cache was named after
      "file_count": 200000,                # samples the source listed at build time
      "taken_unix": 1764783000.1,          # when the watched paths were looked at
      "watched": {"<path>": [mtime_ns, size, inode], ...}
    }

``watched`` holds every folder of an image folder tree (``os.walk``, symlinks followed),
or a file list and the folders its files sit in. Adding, removing or renaming a file
changes its folder's modification time, and editing the list file changes the list's, so
the *fast* check (:func:`pointer_is_current`, one ``os.stat`` per watched path: O(folders))
sees those changes. An **in-place edit** of an image's content keeps the folder's time: only
``verify_source="full"`` (the full fingerprint, one stat per file) sees it.

The watched paths are looked at *before* the reader scans the source, so a change made
during a build makes the pointer stale, never the cache. A folder whose time is within
:data:`RACY_SECONDS` of the look is *racy* (a file added in the same clock tick would not
change it, as git's "racy clean" entries): a pointer with a racy path is not trusted by the
fast check; the full check then rewrites it.

On network file systems a client may cache folder attributes for a while (NFS
``actimeo``), so a change made on another machine can take that long to be seen by the
fast check; pass ``verify_source="full"`` right after changing a dataset elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

POINTER_VERSION = 1
"""Version of the pointer file layout (a pointer of another version is ignored)."""

POINTER_DIR = "sources"
"""Sub-folder of the cache root that holds the pointers."""

RACY_SECONDS = 2.0
"""A watched path modified this close to (or after) the look is not trusted by the fast check."""

VERIFY_CHOICES = ("fast", "full", "none")
"""Values of ``verify_source``: fast (folder times), full (fingerprint), none (trust)."""


def pointer_path(cache_root: str | os.PathLike, kind: str, source: str, options: Any) -> Path:
    """Where the pointer of a source lives.

    Args:
        cache_root: The cache root.
        kind: Reader class name.
        source: The resolved source path.
        options: JSON-serializable reader options that also name the cache.

    Returns:
        ``<cache_root>/sources/<key>.json``.
    """
    key = json.dumps([kind, source, options], sort_keys=True).encode("utf-8")
    return Path(cache_root) / POINTER_DIR / f"{hashlib.sha256(key).hexdigest()[:32]}.json"


def _identity(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def watch_tree(root: str | os.PathLike) -> dict[str, list[int] | None]:
    """Every folder of a tree (root included, symlinks followed) -> its identity.

    Args:
        root: The image folder root.

    Returns:
        Folder path -> ``[mtime_ns, size, inode]``.
    """
    watched: dict[str, list[int] | None] = {}
    for folder, _, _ in os.walk(os.fspath(root), followlinks=True):
        watched[folder] = _identity(folder)
    return watched


def watch_paths(paths: Iterable[str]) -> dict[str, list[int] | None]:
    """Given paths -> their identity (None for a missing path).

    Args:
        paths: Files or folders (e.g. a file list and the folders of its files).
    """
    return {path: _identity(path) for path in paths}


def write_pointer(
    path: Path,
    *,
    kind: str,
    source: str,
    options: Any,
    cache: str,
    fingerprint: str,
    file_count: int,
    watched: dict[str, list[int] | None],
    taken_unix: float,
) -> None:
    """Write a pointer atomically (temporary file, then ``os.replace``).

    Args:
        path: From :func:`pointer_path`.
        kind: Reader class name.
        source: The resolved source path.
        options: The reader options of :func:`pointer_path`.
        cache: The cache folder's name (under the cache root).
        fingerprint: The full fingerprint the cache was named after.
        file_count: Samples the source listed.
        watched: From :func:`watch_tree` / :func:`watch_paths`, taken before the scan.
        taken_unix: ``time.time()`` just before ``watched`` was taken.
    """
    record = {
        "pointer_version": POINTER_VERSION,
        "kind": kind,
        "source": source,
        "options": options,
        "cache": cache,
        "fingerprint": fingerprint,
        "file_count": int(file_count),
        "taken_unix": taken_unix,
        "watched": watched,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def read_pointer(path: Path, *, kind: str, source: str, options: Any) -> dict[str, Any] | None:
    """The pointer at ``path`` if it exists, parses and names this source; else None.

    Args:
        path: From :func:`pointer_path`.
        kind: Reader class name it must name.
        source: Resolved source path it must name.
        options: Reader options it must name.
    """
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("pointer_version") != POINTER_VERSION:
        return None
    same = (record.get("kind"), record.get("source"), record.get("options")) == (
        kind,
        source,
        json.loads(json.dumps(options)),
    )
    if not same or not isinstance(record.get("cache"), str) or "/" in record["cache"]:
        return None
    if not isinstance(record.get("watched"), dict):
        return None
    return record


def pointer_is_current(record: dict[str, Any]) -> bool:
    """The fast check: every watched path still has its recorded identity, none is racy.

    One ``os.stat`` per watched path (folders, not files).

    Args:
        record: From :func:`read_pointer`.
    """
    taken = float(record.get("taken_unix", 0.0))
    racy_after_ns = int((taken - RACY_SECONDS) * 1e9)
    for path, identity in record["watched"].items():
        if identity is None or identity[0] >= racy_after_ns:
            return False
        if _identity(path) != identity:
            return False
    return True


def now() -> float:
    """``time.time()``: the moment to pass as ``taken_unix`` (read before watching)."""
    return time.time()
