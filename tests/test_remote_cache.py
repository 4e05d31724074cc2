"""Caches shared on S3 (``remote_cache=``): moto's S3 server on loopback, real caches.

A "node" is a local cache folder of its own; ranks are real processes
(``tests/lock_child.py``) where the test is about ranks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from slipstream import SlipstreamDataset
from slipstream.cache.field_index import write_index
from slipstream.readers import ImageFolderReader
from slipstream.remote_cache import RemoteCache, RemoteCacheError, transfer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from s3_test_server import start_moto, stop  # noqa: E402

pytest.importorskip("boto3")
pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def moto_endpoint():
    proc, endpoint = start_moto()
    yield endpoint
    stop(proc)


@pytest.fixture
def remote(moto_endpoint, monkeypatch) -> str:
    """A fresh bucket; the AWS variables slipstream reads point at the server."""
    import boto3

    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    bucket = f"slip-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/caches"


@pytest.fixture(scope="module")
def small_folder(photo_folder, tmp_path_factory) -> Path:
    """30 photos in 3 classes (a quick build)."""
    root = tmp_path_factory.mktemp("small")
    for cls in sorted(p for p in photo_folder.iterdir() if p.is_dir())[:3]:
        (root / cls.name).mkdir()
        for f in sorted(cls.iterdir())[:10]:
            (root / cls.name / f.name).write_bytes(f.read_bytes())
    return root


@pytest.fixture
def reads(monkeypatch) -> list:
    """Every ``ImageFolderReader.read_batch`` call (i.e. every build) is listed here."""
    calls: list = []
    original = ImageFolderReader.read_batch

    def counted(self, start, stop):
        calls.append((start, stop))
        return original(self, start, stop)

    monkeypatch.setattr(ImageFolderReader, "read_batch", counted)
    return calls


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _objects(url: str) -> list[str]:
    store = RemoteCache(url)
    listing = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix)
    return sorted(o["Key"][len(store.prefix) + 1 :] for o in listing.get("Contents", []))


def test_second_node_downloads_instead_of_building(small_folder, remote, reads, tmp_path):
    first = SlipstreamDataset(small_folder, cache_dir=tmp_path / "node1", remote_cache=remote,
                              progress=False)  # fmt: skip
    assert reads  # node 1 built it
    name = first.cache_path.name
    keys = _objects(remote)
    assert f"{name}/complete.json" in keys
    marker = RemoteCache(remote).marker(name)
    assert set(marker["files"]) == set(_files(first.cache_path))
    assert marker["files"]["manifest.json"]["sha256"]

    reads.clear()
    second = SlipstreamDataset(small_folder, cache_dir=tmp_path / "node2", remote_cache=remote,
                               progress=False)  # fmt: skip
    assert reads == []  # no build: the reader never read a sample
    assert second.cache_path == tmp_path / "node2" / name
    assert _files(second.cache_path) == _files(first.cache_path)
    assert [second[i]["label"] for i in range(len(second))] == [
        first[i]["label"] for i in range(len(first))
    ]
    assert not list((tmp_path / "node2").glob("*.download"))  # renamed into place


def test_half_uploaded_cache_is_not_used(small_folder, remote, reads, tmp_path):
    first = SlipstreamDataset(small_folder, cache_dir=tmp_path / "node1", progress=False)
    store, name = RemoteCache(remote), first.cache_path.name
    store.upload(first.cache_path)
    store.client.delete_object(Bucket=store.bucket, Key=f"caches/{name}/complete.json")
    assert store.marker(name) is None and any("/data-" in k for k in _objects(remote))
    reads.clear()
    SlipstreamDataset(small_folder, cache_dir=tmp_path / "node2", remote_cache=remote,
                               progress=False)  # fmt: skip
    assert reads  # built, not downloaded from the unfinished upload
    assert store.marker(name) is not None  # and shared now
    with pytest.raises(RemoteCacheError, match="no complete cache"):
        store.download("not-there-0000-v1", tmp_path / "x")


class _Interrupted(Exception):
    pass


class _FailingAfter:
    """A real client that raises after ``n`` ranged GETs (a download cut off mid-way)."""

    def __init__(self, client, n: int) -> None:
        self.client, self.left, self.gets = client, n, 0

    def get_object(self, **kwargs):
        self.gets += 1
        if self.left <= 0:
            raise _Interrupted("connection lost")
        self.left -= 1
        return self.client.get_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_download_resumes_after_an_interruption(small_folder, remote, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "SEGMENT_BYTES", 64 << 10)
    first = SlipstreamDataset(small_folder, cache_dir=tmp_path / "node1", progress=False)
    store = RemoteCache(remote)
    marker = store.upload(first.cache_path)
    sizes = [info["size"] for info in marker["files"].values()]
    segments = sum(max(1, -(-size // (64 << 10))) for size in sizes)
    assert segments > 10

    dest = tmp_path / "node2" / first.cache_path.name
    dest.parent.mkdir()
    cut = RemoteCache(remote)
    cut._client = _FailingAfter(store.client, 6)
    with pytest.raises(_Interrupted):
        cut.download(dest.name, dest)
    assert not dest.exists()  # nothing half-done at the cache's name
    partial = dest.parent / f"{dest.name}.download"
    kept = sum(len(p.read_text().split()) for p in partial.glob("*.part.done"))
    assert kept == 5  # 6 GETs went through: the marker, then 5 segments

    again = RemoteCache(remote)
    again._client = _FailingAfter(store.client, 10**6)
    again.download(dest.name, dest)
    assert again._client.gets == 1 + segments - kept  # the marker, then what was missing
    assert _files(dest) == _files(first.cache_path)

    # A file that does not check (bytes changed on disk) is refused, not published.
    other = tmp_path / "node3" / dest.name
    other.parent.mkdir()
    RemoteCache(remote).download(dest.name, other)
    bad = dict(marker)
    bad["files"] = {**marker["files"], "manifest.json": {"size": 3, "sha256": "0" * 64}}
    with pytest.raises(RemoteCacheError, match="manifest.json"):
        RemoteCache(remote).download(dest.name, tmp_path / "node4" / dest.name, bad)


def test_sync_uploads_a_new_index_and_other_nodes_get_it(small_folder, remote, tmp_path):
    first = SlipstreamDataset(small_folder, cache_dir=tmp_path / "node1", remote_cache=remote,
                              progress=False)  # fmt: skip
    second = SlipstreamDataset(small_folder, cache_dir=tmp_path / "node2", remote_cache=remote,
                               progress=False)  # fmt: skip
    assert first.sync_remote_cache() == (0, 0)  # nothing new
    written = write_index(first.cache, ["label"], verbose=False)
    index_name = written["label"].name
    assert first.sync_remote_cache() == (0, 1)
    marker = RemoteCache(remote).marker(first.cache_path.name)
    assert index_name in marker["files"]
    assert second.sync_remote_cache() == (1, 0)
    got = second.cache_path / index_name
    assert got.read_bytes() == written["label"].read_bytes()
    assert not SlipstreamDataset(small_folder, cache_dir=tmp_path / "x").sync_remote_cache()[1]


def _rank(rank: int, source, cache_root: Path, work: Path, url: str) -> subprocess.Popen:
    env = {**os.environ, "RANK": str(rank), "SLIP_TEST_REMOTE": url,
           "SLIPSTREAM_REMOTE_CACHE_POLL": "0.2"}  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "lock_child.py"), "dataset", str(source),
         str(cache_root), str(work)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip


def _run_ranks(procs: list, work: Path) -> list:
    deadline = time.monotonic() + 120
    while len(list(work.glob("ready-*"))) < len(procs):
        assert time.monotonic() < deadline, "ranks did not start"
        time.sleep(0.02)
    (work / "go").write_text("go")
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        out.append((json.loads(stdout.strip().splitlines()[-1]), stderr))
    return out


def test_rank_1_on_another_node_waits_for_rank_0_and_downloads(small_folder, remote, tmp_path):
    work = tmp_path / "work"
    procs = [
        _rank(1, small_folder, tmp_path / "node2", work, remote),
        _rank(0, small_folder, tmp_path / "node1", work, remote),
    ]
    (one, err1), (zero, _) = _run_ranks(procs, work)
    assert one["ok"] and zero["ok"], (one, zero)
    assert "waiting for rank 0 to build and upload the cache" in err1
    assert _files(Path(one["cache"])) == _files(Path(zero["cache"]))


def test_rank_0_build_failure_is_raised_on_the_other_node(photo_folder, remote, tmp_path):
    source = tmp_path / "src" / "a"
    source.mkdir(parents=True)
    files = sorted(next(p for p in photo_folder.iterdir() if p.is_dir()).iterdir())[:5]
    for f in files:
        (source / f.name).write_bytes(f.read_bytes())
    broken = source / files[-1].name
    broken.write_bytes(broken.read_bytes()[:300])
    work = tmp_path / "work"
    procs = [
        _rank(1, source.parent, tmp_path / "node2", work, remote),
        _rank(0, source.parent, tmp_path / "node1", work, remote),
    ]
    (one, _), (zero, _) = _run_ranks(procs, work)
    assert not zero["ok"] and zero["type"] == "CacheBuildError" and broken.name in zero["message"]
    assert not one["ok"] and one["type"] == "CacheBuildError"
    assert "raised by rank 0, pid" in one["message"] and socket.gethostname() in one["message"]
    assert broken.name in one["message"]


def test_marker_names_content_and_transfers_check_sizes(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    (folder / "big.bin").write_bytes(np.arange(10, dtype=np.uint8).tobytes())
    (folder / ".hidden").write_text("x")
    (folder / "x.bin.part").write_text("x")
    files = transfer.describe_files(folder)
    assert set(files) == {"manifest.json", "big.bin"}
    assert files["big.bin"]["size"] == 10


# ------------------------------------------------------------- s3:// .beton and folders


def _upload_tree(url: str, folder: Path) -> None:
    store = RemoteCache(url)
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            store.client.upload_file(str(path), store.bucket, f"{store.prefix}/{rel}")


def test_s3_image_folder_is_downloaded_once_and_read_like_the_local_one(
    small_folder, remote, tmp_path, monkeypatch
):
    from s3_test_server import CountingProxy

    url = remote.replace("/caches", "/sets/train")
    _upload_tree(url, small_folder)
    proxy = CountingProxy(os.environ["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    try:
        ds = SlipstreamDataset(url, cache_dir=tmp_path / "node1", progress=False)
        again = SlipstreamDataset(url, cache_dir=tmp_path / "node1", progress=False)
        other = SlipstreamDataset(url, cache_dir=tmp_path / "node2", progress=False)
    finally:
        proxy.close()
    local = SlipstreamDataset(small_folder, cache_dir=tmp_path / "local", progress=False)
    assert ds.cache_path.name.startswith("train-") and len(ds) == len(local) == 30
    assert [bytes(ds[i]["image"]) for i in range(30)] == [
        bytes(local[i]["image"]) for i in range(30)
    ]
    assert [ds[i]["label"] for i in range(30)] == [local[i]["label"] for i in range(30)]
    assert ds.classes == local.classes
    gets = proxy.gets(".jpg")
    assert len(gets) == 30 and set(gets.values()) == {2}  # once per node (2 cache folders)
    assert again.cache_path == ds.cache_path  # the same download and cache on one node
    assert other.cache_path.name == ds.cache_path.name  # same fingerprint on another node


def test_s3_beton_is_read_like_the_local_file(remote, tmp_path):
    beton = next(p for p in sorted((ROOT / "tests" / "fixtures" / "ffcv").glob("*.beton")))
    url = remote.replace("/caches", f"/betons/{beton.name}")
    store = RemoteCache(url.rsplit("/", 1)[0])
    store.client.upload_file(str(beton), store.bucket, f"{store.prefix}/{beton.name}")
    ds = SlipstreamDataset(url, cache_dir=tmp_path, progress=False)
    local = SlipstreamDataset(beton, cache_dir=tmp_path / "local", progress=False)
    assert len(ds) == len(local) and ds.field_types == local.field_types
    for i in range(len(ds)):
        a, b = ds[i], local[i]
        assert a.keys() == b.keys()
        assert all(
            bytes(a[k]) == bytes(b[k])
            if isinstance(a[k], (bytes, np.ndarray, memoryview))
            else a[k] == b[k]
            for k in a
        )
    assert (tmp_path / "s3").is_dir() and list((tmp_path / "s3").rglob(beton.name))
    with pytest.raises(FileNotFoundError, match="nothing is stored"):
        SlipstreamDataset(remote.replace("/caches", "/nothing"), cache_dir=tmp_path)


def test_loader_remote_cache_shares_a_local_cache_and_syncs(small_folder, remote, tmp_path):
    from slipstream import SlipstreamLoader

    ds = SlipstreamDataset(small_folder, cache_dir=tmp_path / "node1", progress=False)
    name = ds.cache_path.name
    assert RemoteCache(remote).marker(name) is None
    loader = SlipstreamLoader(ds, 8, crop_size=32, crop_mode="center", device="cpu",
                              backend="native", remote_cache=remote)  # fmt: skip
    marker = RemoteCache(remote).marker(name)
    assert marker is not None and set(marker["files"]) == set(_files(ds.cache_path))
    assert loader.sync_remote_cache() == (0, 0)
    write_index(ds.cache, ["label"], verbose=False)
    assert loader.sync_remote_cache() == (0, 1)
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 3, 32, 32)
