"""One download and one build per node, one failure for all (``slipstream.cache.build_lock``).

Ranks are real processes (``tests/lock_child.py``) started together; S3 is moto's server on
loopback behind a proxy that counts the GETs of every object.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from slipstream.cache import CacheBuildError
from slipstream.cache import build_lock as lock_module
from slipstream.cache.build_lock import (
    SharedBuildError,
    build_lock,
    failure_path,
    failure_record,
    raise_recorded_failure,
    record_applies,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from s3_test_server import CountingProxy, start_moto, stop  # noqa: E402


def _ranks(kind: str, source, cache_root: Path, work: Path, n: int = 4, env=None) -> list:
    """Start ``n`` ranks, release them together, return ``(result, stderr)`` of each."""
    work.mkdir(parents=True, exist_ok=True)
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "lock_child.py"), kind, str(source),
             str(cache_root), str(work)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        for _ in range(n)
    ]  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(work.glob("ready-*"))) < n:
        assert time.monotonic() < deadline, "ranks did not start"
        time.sleep(0.02)
    (work / "go").write_text("go")
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append((json.loads(out.strip().splitlines()[-1]), err, proc.pid))
    return results


def _truncated_copy(photo_folder: Path, dest: Path) -> Path:
    """A copy of 40 photos of ``photo_folder`` with the last one cut in half."""
    classes = sorted(p for p in photo_folder.iterdir() if p.is_dir())[:2]
    last = None
    for cls in classes:
        (dest / cls.name).mkdir(parents=True)
        for f in sorted(cls.iterdir())[:20]:
            last = dest / cls.name / f.name
            last.write_bytes(f.read_bytes())
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    return last


def test_failed_build_is_raised_by_every_waiter_not_rebuilt(photo_folder, tmp_path):
    source = tmp_path / "src"
    broken = _truncated_copy(photo_folder, source)
    results = _ranks("folder", source, tmp_path / "caches", tmp_path / "work")
    builders = (tmp_path / "work" / "reads.log").read_text().split()
    assert len(builders) == 1  # the waiters did not read the source again
    assert all(not r["ok"] and r["type"] == "CacheBuildError" for r, _, _ in results)
    own = [r for r, _, pid in results if str(pid) == builders[0]]
    shared = [r for r, _, pid in results if str(pid) != builders[0]]
    assert broken.name in own[0]["message"] and "raised by" not in own[0]["message"]
    for r in shared:
        assert broken.name in r["message"]
        assert f"raised by pid {builders[0]} on host {socket.gethostname()}" in r["message"]
    record = json.loads(failure_path(tmp_path / "caches" / "photos.slip").read_text())
    assert record["type"] == "CacheBuildError" and record["pid"] == int(builders[0])

    # A new run (processes started after the record) retries: it reads the source again.
    again = _ranks("folder", source, tmp_path / "caches", tmp_path / "work2", n=1)
    assert not again[0][0]["ok"] and "raised by" not in again[0][0]["message"]
    assert (tmp_path / "work2" / "reads.log").read_text().split() == [str(again[0][2])]


def test_record_applies_to_other_processes_started_before_it():
    record = failure_record(CacheBuildError("bad"), "build of x")
    assert not record_applies(record)  # written by this very process: it retries
    other = {**record, "pid": record["pid"] + 1}
    assert record_applies(other)  # this process started before the record was written
    assert not record_applies(other, since=other["time"] + 1)  # a run started later
    assert not record_applies({**other, "time": 0.0})
    stale = {**other, "time": time.time() - lock_module.FAILURE_TTL_S - 1}
    assert not record_applies(stale, since=0.0)  # too old for anyone: retry


def test_recorded_failure_keeps_its_class_where_it_can():
    record = {**failure_record(CacheBuildError("sample 3: truncated"), "build of x"), "rank": "2"}
    with pytest.raises(CacheBuildError, match=r"sample 3: truncated \[raised by rank 2, pid"):
        raise_recorded_failure(record, "/x.failed.json")

    class NeedsTwo(Exception):
        def __init__(self, a, b):
            super().__init__(a, b)

    record = failure_record(NeedsTwo("a", "b"), "download of s3://b/k")
    with pytest.raises(SharedBuildError, match=r"NeedsTwo: .*download of s3://b/k"):
        raise_recorded_failure(record, "/x.failed.json")
    record = {**record, "module": "not.imported.module", "type": "Evil"}
    with pytest.raises(SharedBuildError, match="not.imported.module.Evil"):
        raise_recorded_failure(record, "/x.failed.json")


def test_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    dest, order = tmp_path / "x.slip", []
    with build_lock(dest, announce=False):
        with build_lock(dest, announce=False) as waited:  # same thread: no deadlock
            assert waited == 0.0

        def other_thread() -> None:
            with build_lock(dest, announce=False) as waited:
                order.append(("other", waited))

        other = threading.Thread(target=other_thread)
        other.start()
        time.sleep(0.3)
        order.append(("first", None))
    other.join(timeout=10)
    assert [name for name, _ in order] == ["first", "other"]
    assert order[1][1] > 0.2  # the other thread waited for the holder


def test_waiting_reports_every_interval(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(lock_module, "REPORT_EVERY_S", 0.2)
    dest = tmp_path / "x.slip"
    code = (
        "import sys, time; from slipstream.cache.build_lock import build_lock\n"
        "with build_lock(sys.argv[1], what='download of s3://b/p'):\n"
        "    open(sys.argv[2], 'w').close(); time.sleep(1.2)\n"
    )
    flag = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", code, str(dest), str(flag)], cwd=ROOT)
    while not flag.exists():
        time.sleep(0.02)
    with caplog.at_level(logging.INFO, logger="slipstream"), build_lock(dest) as waited:
        assert waited > 0.5
    assert holder.wait(timeout=30) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert f"waiting for the download of s3://b/p by pid {holder.pid}" in lines[0]
    assert sum("still waiting for the download of s3://b/p" in line for line in lines) >= 2
    assert "waited" in lines[-1]


# ----------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def counted_s3():
    """moto on loopback behind a counting proxy: ``(proxy, boto3 client of moto)``."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    proc, endpoint = start_moto()
    proxy = CountingProxy(endpoint, delay=0.1)
    yield proxy, boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="t", aws_secret_access_key="t",
        region_name="us-east-1",
    )  # fmt: skip
    proxy.close()
    stop(proc)


def _litdata(folder: Path, photo_folder: Path, n: int = 40) -> Path:
    from litdata.streaming.writer import BinaryWriter
    from PIL import Image

    writer = BinaryWriter(str(folder), chunk_size=1)  # one chunk per sample: 40 chunks
    files = sorted(photo_folder.rglob("*.jpg"))[:n]
    for i, f in enumerate(files):
        writer[i] = {"image": Image.open(f), "label": i % 3}
    writer.done()
    writer.merge()
    return folder


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_s3_litdata_chunks_fetched_once_per_node(counted_s3, photo_folder, tmp_path):
    proxy, client = counted_s3
    local = _litdata(tmp_path / "lit", photo_folder)
    bucket = f"slip-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    chunks = sorted(p.name for p in local.glob("chunk-*.bin"))
    assert len(chunks) == 40
    for path in local.iterdir():
        client.upload_file(str(path), bucket, f"sets/train/{path.name}")
    env = {
        "AWS_ENDPOINT_URL": proxy.url, "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t", "AWS_DEFAULT_REGION": "us-east-1",
    }  # fmt: skip
    results = _ranks("dataset", f"s3://{bucket}/sets/train", tmp_path / "node", tmp_path / "w",
                     env=env)  # fmt: skip
    assert all(r["ok"] and r["num_samples"] == 40 for r, _, _ in results), results
    assert len({r["cache"] for r, _, _ in results}) == 1
    gets = proxy.gets(".bin")
    assert sorted(p.rsplit("/", 1)[1] for p in gets) == chunks
    assert set(gets.values()) == {1}  # each chunk fetched once for the 4 ranks
    assert sum(proxy.gets("index.json").values()) == 4  # the small index: once per rank
    said = [err for _, err, _ in results if "waiting for the download of s3://" in err]
    assert len(said) >= 1  # the ranks that waited said what for, and who does it
    for err in said:
        assert f" on {socket.gethostname()} (another process is building it" in err
        assert err.count("waiting for the download of") == 1  # one line, not one per poll
        assert "waited" in err  # the closing line, with the time waited
