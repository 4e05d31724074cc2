"""sync_s3_dataset against moto's S3 server on loopback (in a thread of this process)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from slipstream import sync_s3_dataset
from slipstream.readers.s3_sync import STATE_NAME, S3SyncError

pytest.importorskip("boto3", reason="needs boto3 for s3://")
pytest.importorskip("moto.server", reason="needs moto[server] for an S3 server")


@pytest.fixture(scope="module")
def endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(endpoint, monkeypatch):
    """A boto3 client of the server that counts the GetObject calls per key."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.gets = Counter()

    def count(params, **_):
        client.gets[params["Key"]] += 1

    client.meta.events.register("before-parameter-build.s3.GetObject", count)
    return client


def _objects() -> dict[str, bytes]:
    rng = __import__("random").Random(0)
    return {
        "a.bin": rng.randbytes(100_000),
        "sub/b.txt": b"hello\n" * 10,
        "sub/deep/c.bin": rng.randbytes(1_500_000),
        "empty.txt": b"",
    }


def _upload(client) -> tuple[str, dict[str, bytes]]:
    bucket = f"sync-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    objects = _objects()
    for name, body in objects.items():
        client.put_object(Bucket=bucket, Key=f"sets/train/{name}", Body=body)
    client.put_object(Bucket=bucket, Key="sets/train/folder/", Body=b"")  # a folder marker
    client.put_object(Bucket=bucket, Key="sets/training/x.bin", Body=b"not under the prefix")
    return f"s3://{bucket}/sets/train/", objects


def _local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and p.name != STATE_NAME
    }


def test_sync_copies_the_prefix_then_only_what_is_missing(s3, endpoint, tmp_path):
    url, objects = _upload(s3)
    folder = sync_s3_dataset(url, tmp_path, endpoint_url=endpoint, numworkers=3, verbose=False)
    # the original slipstream's folder name: <cache_dir>/s3-sync/<name>-<sha256(url)[:12]>
    assert folder == tmp_path / "s3-sync" / f"train-{hashlib.sha256(url.encode()).hexdigest()[:12]}"
    assert _local_files(folder) == objects
    assert (folder / STATE_NAME).is_file()

    # nothing changed: nothing downloaded
    sync_s3_dataset(url, local_dir=folder, client=s3, verbose=False)
    assert sum(s3.gets.values()) == 0

    # one file lost: only that one downloaded again; the others keep their inode
    inodes = {p: (folder / p).stat().st_ino for p in objects}
    (folder / "sub/b.txt").unlink()
    sync_s3_dataset(url, local_dir=folder, client=s3, verbose=False)
    assert s3.gets == Counter({"sets/train/sub/b.txt": 1})
    assert _local_files(folder) == objects
    assert all((folder / p).stat().st_ino == inodes[p] for p in objects if p != "sub/b.txt")


def test_an_interrupted_sync_resumes_cleanly(s3, endpoint, tmp_path):
    url, objects = _upload(s3)
    folder = sync_s3_dataset(url, tmp_path, endpoint_url=endpoint, verbose=False)
    # a killed sync: its half download of c.bin under a temporary name (the target not
    # yet renamed into place), and a.bin truncated by something else
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    (folder / "sub/deep/c.bin").rename(folder / f"sub/deep/c.bin.part-{dead}-0badc0de")
    with open(folder / f"sub/deep/c.bin.part-{dead}-0badc0de", "r+b") as f:
        f.truncate(700_000)
    with open(folder / "a.bin", "r+b") as f:
        f.truncate(5)
    alive = folder / f"b.part-{os.getpid()}-feedf00d"  # a live process (this one): kept
    alive.write_bytes(b"in progress")
    sync_s3_dataset(url, local_dir=folder, client=s3, verbose=False)
    assert s3.gets == Counter({"sets/train/sub/deep/c.bin": 1, "sets/train/a.bin": 1})
    leftovers = sorted(p.name for p in folder.rglob("*.part-*"))
    assert leftovers == [alive.name]
    alive.unlink()
    assert _local_files(folder) == objects


def test_a_changed_object_of_the_same_size_is_downloaded_again(s3, tmp_path):
    url, objects = _upload(s3)
    folder = sync_s3_dataset(url, local_dir=tmp_path / "d", client=s3, verbose=False)
    bucket = url.split("/")[2]
    new = b"HELLO\n" * 10  # same size as before, another ETag
    s3.put_object(Bucket=bucket, Key="sets/train/sub/b.txt", Body=new)
    s3.gets.clear()
    sync_s3_dataset(url, local_dir=folder, client=s3, verbose=False)
    assert s3.gets == Counter({"sets/train/sub/b.txt": 1})
    assert (folder / "sub/b.txt").read_bytes() == new


def test_a_folder_synced_by_another_tool_is_trusted_by_size(s3, tmp_path):
    url, objects = _upload(s3)
    folder = sync_s3_dataset(url, local_dir=tmp_path / "d", client=s3, verbose=False)
    (folder / STATE_NAME).unlink()  # as s5cmd or the original slipstream leave it
    s3.gets.clear()
    sync_s3_dataset(url, local_dir=folder, client=s3, verbose=False)
    assert sum(s3.gets.values()) == 0 and (folder / STATE_NAME).is_file()


def test_errors(s3, endpoint, tmp_path):
    url, _ = _upload(s3)
    bucket = url.split("/")[2]
    with pytest.raises(S3SyncError, match=f"s3://{bucket}/nothing/here: no objects"):
        sync_s3_dataset(f"s3://{bucket}/nothing/here", tmp_path, client=s3, verbose=False)
    with pytest.raises(ValueError, match="not an s3:// URL"):
        sync_s3_dataset("/local/path", tmp_path, client=s3)
    with pytest.raises(ValueError, match="tool"):
        sync_s3_dataset(url, tmp_path, client=s3, tool="rsync")
    s3.put_object(Bucket=bucket, Key="sets/train/../evil.sh", Body=b"x")
    with pytest.raises(S3SyncError, match=r"train/\.\./evil.sh: key cannot be a local file"):
        sync_s3_dataset(url, tmp_path, client=s3, verbose=False)
    assert not (tmp_path / "s3-sync" / "evil.sh").exists()
    if shutil.which("s5cmd") is None:
        with pytest.raises(S3SyncError, match="s5cmd is not on PATH"):
            sync_s3_dataset(url, tmp_path, endpoint_url=endpoint, tool="s5cmd")
