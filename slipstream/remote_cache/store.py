"""A slip cache shared on S3, found by the cache's content name.

Layout under the ``remote_cache`` URL (``s3://bucket/base``)::

    s3://bucket/base/<name>/                 <name> = <source>-<fingerprint16>-v<version>
      data-<token>/manifest.json, *.bin, *.npy, ...   one upload's files
      complete.json                          the marker, written last
      failed.json                            a failed build's record (see build_lock)

An upload writes its files under a fresh ``data-<token>/`` prefix, then the marker
``complete.json``: ``{"data": "data-<token>", "files": {rel: {"size", "sha256"}}, ...}``.
A cache is used only through its marker, so a half-uploaded one (no marker, or files
under a prefix no marker names) is never read. Later files (indexes, YUV420 companions)
are uploaded into the marker's prefix, then the marker is rewritten with them
(:meth:`RemoteCache.sync`).

Credentials and region come from the standard AWS configuration boto3 reads; the
endpoint from ``endpoint_url``, else ``$AWS_ENDPOINT_URL_S3`` / ``$AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from slipstream.cache import SlipCache
from slipstream.cache.reader import CacheFormatError
from slipstream.readers.s3_download import parse_s3_url, s3_client
from slipstream.remote_cache.transfer import (
    RemoteCacheError,
    describe_files,
    download_files,
    upload_files,
)

MARKER_NAME = "complete.json"
FAILURE_NAME = "failed.json"
MARKER_FORMAT = "slipstream-remote-cache"
MARKER_VERSION = 1


class RemoteCache:
    """Slip caches shared under one ``s3://`` prefix (module docstring).

    Args:
        url: ``s3://bucket/prefix`` under which caches are stored by name.
        endpoint_url: S3-compatible endpoint (MinIO, Wasabi, R2, ...); default from the
            AWS environment.
        progress: Show transfer progress bars.
    """

    def __init__(
        self, url: str, *, endpoint_url: str | None = None, progress: bool | None = None
    ) -> None:
        """Parse the URL; the client is made on first use."""
        self.bucket, self.prefix = parse_s3_url(url)
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url, self.progress = endpoint_url, progress
        self._client: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for data-loader workers): the client is made again on first use."""
        return {**self.__dict__, "_client": None}

    def __repr__(self) -> str:
        """The URL (and endpoint)."""
        endpoint = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"RemoteCache({self.url!r}{endpoint})"

    @property
    def client(self) -> Any:
        """The boto3 S3 client."""
        if self._client is None:
            self._client = s3_client(endpoint_url=self.endpoint_url)
        return self._client

    def _key(self, name: str, rel: str = "") -> str:
        parts = [p for p in (self.prefix, name, rel) if p]
        return "/".join(parts)

    def location(self, name: str) -> str:
        """``s3://bucket/prefix/<name>``: where the cache ``name`` lives."""
        return f"s3://{self.bucket}/{self._key(name)}"

    def _get_json(self, key: str) -> dict[str, Any] | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise RemoteCacheError(f"s3://{self.bucket}/{key} is not JSON: {exc}") from exc
        return value if isinstance(value, dict) else None

    def _put_json(self, key: str, value: dict[str, Any]) -> None:
        body = json.dumps(value, indent=1).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def marker(self, name: str) -> dict[str, Any] | None:
        """The completion marker of cache ``name``, or ``None`` (absent or half-uploaded)."""
        marker = self._get_json(self._key(name, MARKER_NAME))
        if marker is None:
            return None
        if marker.get("format") != MARKER_FORMAT or "files" not in marker:
            raise RemoteCacheError(
                f"{self.location(name)}/{MARKER_NAME} is not a slipstream marker"
            )
        return marker

    def failure(self, name: str) -> dict[str, Any] | None:
        """The failure record of the last failed build of ``name``, or ``None``."""
        return self._get_json(self._key(name, FAILURE_NAME))

    def record_failure(self, name: str, record: dict[str, Any]) -> None:
        """Store a failure record (``build_lock.failure_record``) for the other nodes."""
        self._put_json(self._key(name, FAILURE_NAME), record)

    def upload(self, folder: str | os.PathLike, name: str | None = None) -> dict[str, Any]:
        """Upload a built cache folder under a fresh prefix, then write its marker.

        Args:
            folder: The cache folder (opens as a slip cache).
            name: Remote name (default: the folder's name).

        Returns:
            The marker written.
        """
        folder = Path(folder)
        name = name or folder.name
        SlipCache.open(folder)  # never share a folder that does not open
        files = describe_files(folder)
        data = f"data-{secrets.token_hex(6)}"
        upload_files(
            self.client, folder, list(files), self.bucket, self._key(name, data),
            progress=self.progress,
        )  # fmt: skip
        marker = {
            "format": MARKER_FORMAT,
            "version": MARKER_VERSION,
            "name": name,
            "data": data,
            "files": files,
            "uploaded": {"time": time.time(), "host": socket.gethostname(), "pid": os.getpid()},
        }
        self._put_json(self._key(name, MARKER_NAME), marker)  # last: the cache is complete
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name, FAILURE_NAME))
        return marker

    def download(
        self, name: str, dest: str | os.PathLike, marker: dict[str, Any] | None = None
    ) -> Path:
        """Download cache ``name`` into ``dest`` (parallel, resumable, checked, atomic).

        Files go to ``<dest>.download/`` (kept across interruptions: a new call resumes),
        are checked against the marker, the folder is opened as a cache, then renamed to
        ``dest`` in one ``os.rename``.

        Raises:
            RemoteCacheError: No marker, or a file does not match it.
        """
        dest = Path(dest)
        marker = marker or self.marker(name)
        if marker is None:
            raise RemoteCacheError(f"no complete cache at {self.location(name)} ({MARKER_NAME})")
        partial = dest.parent / f"{dest.name}.download"
        partial.mkdir(parents=True, exist_ok=True)
        download_files(
            self.client, self.bucket, self._key(name, marker["data"]), marker["files"],
            partial, progress=self.progress,
        )  # fmt: skip
        try:
            SlipCache.open(partial)
        except CacheFormatError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise RemoteCacheError(
                f"the cache downloaded from {self.location(name)} does not open: {exc}"
            ) from exc
        os.rename(partial, dest)
        return dest

    def sync(self, folder: str | os.PathLike, name: str | None = None) -> tuple[int, int]:
        """Exchange files added after the upload (indexes, YUV420 companions).

        Remote files the local folder lacks are downloaded into it (each renamed into
        place when complete and checked); local files the marker lacks are uploaded into
        the marker's prefix, then the marker is rewritten with them (last).

        Args:
            folder: The local cache folder.
            name: Remote name (default: the folder's name).

        Returns:
            ``(downloaded, uploaded)`` file counts.

        Raises:
            RemoteCacheError: The cache was never uploaded (no marker).
        """
        folder = Path(folder)
        name = name or folder.name
        marker = self.marker(name)
        if marker is None:
            raise RemoteCacheError(
                f"no complete cache at {self.location(name)} to sync {folder} with"
            )
        local = describe_files(folder)
        missing = {rel: info for rel, info in marker["files"].items() if rel not in local}
        if missing:
            download_files(
                self.client, self.bucket, self._key(name, marker["data"]), missing, folder,
                progress=self.progress,
            )  # fmt: skip
        new = {rel: info for rel, info in local.items() if rel not in marker["files"]}
        if new:
            upload_files(
                self.client, folder, list(new), self.bucket, self._key(name, marker["data"]),
                progress=self.progress,
            )  # fmt: skip
            latest = self.marker(name) or marker  # keep files another node added meanwhile
            if latest.get("data") == marker["data"]:
                marker = latest
            marker = {**marker, "files": {**marker["files"], **new}}
            self._put_json(self._key(name, MARKER_NAME), marker)
        return len(missing), len(new)
