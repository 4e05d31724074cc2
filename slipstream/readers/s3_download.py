"""Download a LitData dataset from ``s3://bucket/prefix`` into a local folder.

``index.json`` is fetched first (always: it is small and says which chunks exist), then the
chunks it names are downloaded in parallel threads with a byte progress bar::

    <dest_root>/s3/<bucket>/<prefix>-<sha256(index.json)[:16]>/
    ├── index.json
    └── chunk-*.bin

The folder is named after the index's content, so a dataset rewritten in the bucket never
mixes with chunks of its old version. Every file is written to ``<name>.part-<pid>-<rand>``
and renamed when complete; a chunk already there with the size ``index.json`` gives is not
downloaded again, so an interrupted download resumes.

FFCV files (``s3://bucket/x.beton``), image folders and slip caches stored under a prefix
are downloaded once per node by :func:`fetch_s3_source` (what a URL is:
:func:`s3_source_kind`).

Credentials, region and endpoint come from the standard AWS configuration that boto3 reads
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``~/.aws/...``); the endpoint of an S3-compatible server (MinIO,
Ceph, moto, R2, ...) from ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tqdm import tqdm

from slipstream.cache.build_lock import build_lock
from slipstream.logs import show_progress

INDEX_NAME = "index.json"


def is_s3_url(source: Any) -> bool:
    """Whether ``source`` is a string of the form ``s3://...``."""
    return isinstance(source, str) and source.startswith("s3://")


def parse_s3_url(url: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix/`` into ``("bucket", "some/prefix")``.

    Raises:
        ValueError: Not an ``s3://`` URL with a bucket.
    """
    if not is_s3_url(url):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def s3_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client configured from the standard AWS environment (module docstring).

    Args:
        endpoint_url: S3-compatible endpoint; default ``$AWS_ENDPOINT_URL_S3`` or
            ``$AWS_ENDPOINT_URL`` (AWS itself when neither is set).

    Raises:
        ImportError: boto3 is not installed (names the ``slipstream[s3]`` extra).
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ImportError(
            "reading s3:// datasets needs boto3: pip install 'slipstream[s3]'"
        ) from exc
    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32)
    return boto3.client("s3", endpoint_url=endpoint or None, config=config)


def _key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _is_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _atomic_write_from(target: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` to ``target``."""
    tmp = target.with_name(f"{target.name}.part-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fetch_index(url: str, dest_root: str | os.PathLike, *, client: Any = None) -> Path:
    """Download ``<url>/index.json`` into its local folder (see the module docstring).

    Args:
        url: ``s3://bucket/prefix`` of a LitData dataset.
        dest_root: Root of local downloads.
        client: A boto3 S3 client (default :func:`s3_client`).

    Returns:
        The local dataset folder (holding ``index.json``; chunks may still be missing).

    Raises:
        FileNotFoundError: There is no ``index.json`` under the URL.
    """
    bucket, prefix = parse_s3_url(url)
    client = client or s3_client()
    try:
        body = client.get_object(Bucket=bucket, Key=_key(prefix, INDEX_NAME))["Body"].read()
    except Exception as exc:
        if _is_missing(exc):
            raise FileNotFoundError(
                f"{url} is not a LitData dataset: s3://{bucket}/{_key(prefix, INDEX_NAME)} "
                f"does not exist"
            ) from exc
        raise
    tag = hashlib.sha256(body).hexdigest()[:16]
    name = prefix.replace("/", "_") or "_root"
    folder = Path(dest_root) / "s3" / bucket / f"{name}-{tag}"
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / INDEX_NAME).is_file():
        _atomic_write_from(folder / INDEX_NAME, lambda tmp: tmp.write_bytes(body))
    return folder


def download_chunks(
    url: str,
    folder: str | os.PathLike,
    *,
    client: Any = None,
    num_workers: int = 8,
    progress: bool = True,
) -> Path:
    """Download the chunks ``folder/index.json`` names from ``url`` into ``folder``.

    Args:
        url: ``s3://bucket/prefix`` the index came from.
        folder: Local folder holding that ``index.json`` (from :func:`fetch_index`).
        client: A boto3 S3 client (default :func:`s3_client`).
        num_workers: Parallel downloads.
        progress: Show a tqdm progress bar (bytes).

    Returns:
        ``folder``.

    Raises:
        FileNotFoundError: A chunk named by the index is not in the bucket (names the
            chunk and the dataset).
    """
    bucket, prefix = parse_s3_url(url)
    folder = Path(folder)
    chunks = json.loads((folder / INDEX_NAME).read_bytes())["chunks"]
    todo = []
    for chunk in chunks:
        path = folder / chunk["filename"]
        expected = chunk.get("chunk_bytes")
        if path.is_file() and expected is not None and path.stat().st_size == int(expected):
            continue
        todo.append(chunk)
    if not todo:
        return folder
    client = client or s3_client()
    total = sum(int(c.get("chunk_bytes") or 0) for c in todo)
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        disable=not show_progress(progress),
        desc=f"downloading {url}",
    )

    def fetch(chunk: dict[str, Any]) -> None:
        name = chunk["filename"]
        key = _key(prefix, name)
        try:
            _atomic_write_from(
                folder / name,
                lambda tmp: client.download_file(bucket, key, str(tmp), Callback=bar.update),
            )
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(
                    f"chunk {name!r} named by {url}/{INDEX_NAME} does not exist in the bucket "
                    f"(s3://{bucket}/{key})"
                ) from exc
            raise

    pool = ThreadPoolExecutor(max(1, num_workers), thread_name_prefix="slip-s3")
    try:
        for future in [pool.submit(fetch, chunk) for chunk in todo]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
    return folder


SOURCE_FILE_SUFFIXES = (".beton", ".ffcv")


def s3_source_kind(url: str, *, client: Any = None) -> str:
    """What an ``s3://`` source is: ``"ffcv"``, ``"litdata"``, ``"cache"`` or ``"imagefolder"``.

    A key ending in ``.beton``/``.ffcv`` is an FFCV file; a prefix holding ``index.json`` a
    LitData dataset, one holding ``manifest.json`` a slip cache, any other non-empty prefix
    an image folder (class sub-folders).

    Raises:
        FileNotFoundError: Nothing is stored under the URL.
    """
    bucket, prefix = parse_s3_url(url)
    if prefix.lower().endswith(SOURCE_FILE_SUFFIXES):
        return "ffcv"
    client = client or s3_client()
    for name, kind in ((INDEX_NAME, "litdata"), ("manifest.json", "cache")):
        try:
            client.head_object(Bucket=bucket, Key=_key(prefix, name))
            return kind
        except Exception as exc:
            if not _is_missing(exc):
                raise
    listing = client.list_objects_v2(Bucket=bucket, Prefix=_key(prefix, ""), MaxKeys=1)
    if not listing.get("Contents"):
        raise FileNotFoundError(
            f"nothing is stored under {url} (no {INDEX_NAME} of a LitData dataset, no "
            "manifest.json of a slip cache, no image files)"
        )
    return "imagefolder"


def fetch_s3_source(
    url: str, kind: str, dest_root: str | os.PathLike, *, progress: bool | None = True
) -> Path:
    """Download an ``s3://`` FFCV file or folder (image folder, slip cache) once per node.

    Layout: ``<dest_root>/s3/<bucket>/<prefix>-<tag>/<last path component>``, ``tag`` a
    digest of the object listing (keys, sizes, ETags), so a changed source gets a new
    folder. The download runs under the build lock of that path
    (:mod:`slipstream.cache.build_lock`): the ranks of a node download once, the others
    wait; files already there with their listed size are kept (an interrupted download
    resumes). Each file's modification time is set to its ``LastModified``, so every
    node computes the same source fingerprint (hence the same cache name).

    Args:
        url: ``s3://bucket/key.beton`` or ``s3://bucket/prefix``.
        kind: :func:`s3_source_kind` of the URL.
        dest_root: Root of local downloads.
        progress: Show a byte progress bar.

    Returns:
        The local file (``"ffcv"``) or folder.

    Raises:
        FileNotFoundError: Nothing is stored under the URL.
    """
    bucket, prefix = parse_s3_url(url)
    client = s3_client()
    if kind == "ffcv":
        head = client.head_object(Bucket=bucket, Key=prefix)
        objects = [{"Key": prefix, "Size": head["ContentLength"], "ETag": head.get("ETag", ""),
                    "LastModified": head["LastModified"]}]  # fmt: skip
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
    else:
        objects = _list_objects(client, bucket, _key(prefix, ""))
        base = prefix
        if not objects:
            raise FileNotFoundError(f"nothing is stored under {url}")
    listing = "\n".join(f"{o['Key']}\0{o['Size']}\0{o.get('ETag', '')}" for o in objects)
    tag = hashlib.sha256(listing.encode()).hexdigest()[:16]
    name = prefix.rsplit("/", 1)[-1] or bucket
    folder = Path(dest_root) / "s3" / bucket / f"{prefix.replace('/', '_') or '_root'}-{tag}"
    target = folder / name
    folder.mkdir(parents=True, exist_ok=True)
    todo = [o for o in objects if not _present(_local(target, base, o, kind), o)]
    if not todo:
        return target
    with build_lock(target, announce=progress is not False, what=f"download of {url}"):
        todo = [o for o in objects if not _present(_local(target, base, o, kind), o)]
        _download_objects(client, bucket, todo, target, base, kind, url, progress)
    return target


def _local(target: Path, base: str, obj: dict[str, Any], kind: str) -> Path:
    if kind == "ffcv":
        return target
    return target / obj["Key"][len(_key(base, "")) :]


def _present(path: Path, obj: dict[str, Any]) -> bool:
    return path.is_file() and path.stat().st_size == int(obj["Size"])


def _list_objects(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects += [o for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    return sorted(objects, key=lambda o: o["Key"])


def _download_objects(
    client: Any,
    bucket: str,
    objects: list[dict[str, Any]],
    target: Path,
    base: str,
    kind: str,
    url: str,
    progress: bool | None,
) -> None:
    bar = tqdm(
        total=sum(int(o["Size"]) for o in objects), unit="B", unit_scale=True,
        disable=not show_progress(progress), desc=f"downloading {url}",
    )  # fmt: skip

    def fetch(obj: dict[str, Any]) -> None:
        path = _local(target, base, obj, kind)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write_from(
            path,
            lambda tmp: client.download_file(bucket, obj["Key"], str(tmp), Callback=bar.update),
        )
        stamp = obj["LastModified"].timestamp()
        os.utime(path, (stamp, stamp))

    pool = ThreadPoolExecutor(8, thread_name_prefix="slip-s3")
    try:
        for future in [pool.submit(fetch, obj) for obj in objects]:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
