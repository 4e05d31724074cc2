"""Parallel, resumable, checked transfers of one cache folder's files to and from S3.

A download writes each file as ``<file>.part`` (its full size allocated at once) in
segments of :data:`SEGMENT_BYTES` fetched by ranged GETs in parallel threads; every
finished segment is appended to ``<file>.part.done``. An interrupted download resumes:
segments listed there are not fetched again. A file is complete when every segment is
done; its size, and its SHA-256 where the marker holds one (every file up to
:data:`HASHED_MAX_BYTES`, always ``manifest.json``), are checked before it is renamed to
its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slipstream.errors import SlipstreamError
from slipstream.logs import show_progress

SEGMENT_BYTES = 32 << 20
"""Bytes per ranged GET of a download."""

HASHED_MAX_BYTES = 64 << 20
"""Files up to this size get a SHA-256 in the marker (larger ones: their size)."""

_READ_BYTES = 1 << 20


class RemoteCacheError(SlipstreamError, RuntimeError):
    """A remote cache is incomplete, damaged or unreachable (names the URL and file)."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def describe_files(folder: Path) -> dict[str, dict[str, Any]]:
    """``relative path -> {"size", "sha256"}`` of every regular file under ``folder``.

    Hidden files and download leftovers (``.part``) are left out; the SHA-256 is ``None``
    above :data:`HASHED_MAX_BYTES` except for ``manifest.json``.
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or any(p.startswith(".") for p in rel.split("/")):
            continue
        if ".part" in path.name:
            continue
        size = path.stat().st_size
        hashed = size <= HASHED_MAX_BYTES or rel == "manifest.json"
        files[rel] = {"size": size, "sha256": sha256_file(path) if hashed else None}
    return files


def upload_files(
    client: Any, folder: Path, files: list[str], bucket: str, prefix: str, *, progress: bool
) -> None:
    """Upload ``folder/<rel>`` to ``s3://bucket/prefix/<rel>`` for each ``rel``, in parallel."""
    total = sum((folder / rel).stat().st_size for rel in files)
    bar = tqdm(
        total=total, unit="B", unit_scale=True, disable=not show_progress(progress),
        desc=f"uploading to s3://{bucket}/{prefix}",
    )  # fmt: skip
    try:
        _parallel(
            lambda rel: client.upload_file(
                str(folder / rel), bucket, f"{prefix}/{rel}", Callback=bar.update
            ),
            files,
        )
    finally:
        bar.close()


def download_files(
    client: Any,
    bucket: str,
    prefix: str,
    files: dict[str, dict[str, Any]],
    folder: Path,
    *,
    progress: bool,
    workers: int = 16,
) -> None:
    """Download ``files`` (marker entries) from ``s3://bucket/prefix`` into ``folder``.

    Resumable and checked (module docstring).

    Raises:
        RemoteCacheError: A file's size or SHA-256 does not match the marker.
    """
    jobs: list[tuple[str, int]] = []
    for rel, info in files.items():
        target = folder / rel
        if target.is_file() and _matches(target, info):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        size = int(info["size"])
        if not part.is_file() or part.stat().st_size != size:
            with open(part, "wb") as f:
                f.truncate(size)
            _done_path(part).unlink(missing_ok=True)
        done = _done_segments(part)
        count = max(1, -(-size // SEGMENT_BYTES))
        jobs += [(rel, i) for i in range(count) if i not in done]
    todo = sum(min(SEGMENT_BYTES, int(files[rel]["size"]) - i * SEGMENT_BYTES) for rel, i in jobs)
    bar = tqdm(
        total=todo, unit="B", unit_scale=True, disable=not show_progress(progress),
        desc=f"downloading s3://{bucket}/{prefix}",
    )  # fmt: skip

    def fetch(job: tuple[str, int]) -> None:
        rel, index = job
        size = int(files[rel]["size"])
        part = folder / (rel + ".part")
        start = index * SEGMENT_BYTES
        stop = min(size, start + SEGMENT_BYTES)
        if stop > start:
            response = client.get_object(
                Bucket=bucket, Key=f"{prefix}/{rel}", Range=f"bytes={start}-{stop - 1}"
            )
            fd = os.open(part, os.O_WRONLY)
            try:
                offset = start
                while chunk := response["Body"].read(_READ_BYTES):
                    os.pwrite(fd, chunk, offset)
                    offset += len(chunk)
                    bar.update(len(chunk))
                os.fsync(fd)
            finally:
                os.close(fd)
            if offset != stop:
                raise RemoteCacheError(
                    f"s3://{bucket}/{prefix}/{rel}: got {offset - start} bytes of segment "
                    f"{index}, expected {stop - start}"
                )
        with open(_done_path(part), "a") as f:  # one short line: an atomic append
            f.write(f"{index}\n")

    try:
        _parallel(fetch, jobs, workers)
    finally:
        bar.close()
    for rel, info in files.items():
        target, part = folder / rel, folder / (rel + ".part")
        if target.is_file() and _matches(target, info):
            continue
        if not _matches(part, info):
            part.unlink(missing_ok=True)
            _done_path(part).unlink(missing_ok=True)
            raise RemoteCacheError(
                f"s3://{bucket}/{prefix}/{rel}: downloaded file does not match the marker "
                f"(size {part.stat().st_size if part.exists() else 'missing'} vs {info['size']}"
                f", sha256 {info.get('sha256')}); removed, retry the download"
            )
        os.replace(part, target)
        _done_path(part).unlink(missing_ok=True)


def _matches(path: Path, info: dict[str, Any]) -> bool:
    try:
        if path.stat().st_size != int(info["size"]):
            return False
    except FileNotFoundError:
        return False
    return info.get("sha256") is None or sha256_file(path) == info["sha256"]


def _done_path(part: Path) -> Path:
    return part.with_name(part.name + ".done")


def _done_segments(part: Path) -> set[int]:
    with contextlib.suppress(FileNotFoundError):
        lines = _done_path(part).read_text().split("\n")
        return {int(x) for x in lines[:-1] if x.isdigit()}  # the last may be cut short
    return set()


def _parallel(fn: Any, items: list, workers: int = 16) -> None:
    if not items:
        return
    pool = ThreadPoolExecutor(max(1, min(workers, len(items))), thread_name_prefix="slip-s3")
    try:
        for future in [pool.submit(fn, item) for item in items]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
