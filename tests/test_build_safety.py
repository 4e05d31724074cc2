"""Safe cache builds: concurrent builders, a builder killed mid-build, verified publishing,
content-addressed cache names. Builders are real processes (``tests/build_child.py``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from slipstream import SlipstreamDataset
from slipstream.cache import CacheBuildError, CacheFormatError, SlipCache, build_cache
from slipstream.cache import writer as cache_writer
from slipstream.cache.build_lock import build_lock, lock_path
from slipstream.readers import FileListReader, ImageFolderReader
from slipstream.verify import verify_cache

ROOT = Path(__file__).resolve().parent.parent
CHILD = [sys.executable, str(ROOT / "tests" / "build_child.py")]
sys.path.insert(0, str(ROOT / "tests"))
from build_child import cache_digest  # noqa: E402


def _start(src: Path, dest: Path, work: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*CHILD, str(src), str(dest), str(work), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        time.sleep(0.02)


def _finish(proc: subprocess.Popen) -> tuple[dict, str]:
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1]), err


def _stalled_builder(src: Path, dest: Path, work: Path, batch: int) -> subprocess.Popen:
    """A builder process holding the lock, stalled in batch ``batch``."""
    work.mkdir()
    proc = _start(src, dest, work, "--stall-at", str(batch))
    _wait_for(lambda: (work / f"stalled-{proc.pid}").exists(), "the builder to stall")
    return proc


def _blocked_on_a_lock(pid: int) -> bool:
    """Whether ``pid`` waits for a ``flock`` (Linux ``/proc/locks`` lists waiters as ``->``)."""
    try:
        text = Path("/proc/locks").read_text()
    except OSError:  # no /proc: give it time
        time.sleep(2.0)
        return True
    return any("->" in line and f" {pid} " in line for line in text.splitlines())


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def _leftovers(folder: Path, dest: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(dest.name + "."))


@pytest.fixture(scope="module")
def reference(photo_folder, tmp_path_factory) -> Path:
    """The cache of ``photo_folder`` built in this process."""
    dest = tmp_path_factory.mktemp("reference") / "photos.slip"
    return build_cache(ImageFolderReader(photo_folder), dest, progress=False)


def test_concurrent_builders_build_once(photo_folder, reference, tmp_path):
    dest, work, go = tmp_path / "caches" / "photos.slip", tmp_path / "work", tmp_path / "go"
    work.mkdir()
    procs = [_start(photo_folder, dest, work, "--go", str(go)) for _ in range(3)]
    _wait_for(lambda: len(list(work.glob("ready-*"))) == 3, "3 builders to start")
    go.write_text("go")
    results = [_finish(proc) for proc in procs]
    builders = (work / "reads.log").read_text().split()
    assert len(builders) == 1  # exactly one process read the source
    assert {r["digest"] for r, _ in results} == {cache_digest(reference)}
    assert all(r["num_samples"] == 240 for r, _ in results)
    waiting = [err for _, err in results if "another process is building" in err]
    assert len(waiting) >= 1  # the others said why they waited
    assert _leftovers(dest.parent, dest) == []  # no tmp folder, no lock file
    assert verify_cache(dest).ok


def test_killed_builder_then_rebuild(photo_folder, reference, tmp_path):
    dest, work = tmp_path / "photos.slip", tmp_path / "work"
    victim = _stalled_builder(photo_folder, dest, work, 1)
    # A second builder arrives while the first holds the lock: it must wait, not build.
    waiter = _start(photo_folder, dest, work)
    _wait_for(lambda: _blocked_on_a_lock(waiter.pid), "the second builder to wait")
    assert (work / "reads.log").read_text().split() == [str(victim.pid)]
    tmp_dirs = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert [p.name.split(".tmp-")[1].split("-")[0] for p in tmp_dirs] == [str(victim.pid)]
    assert not dest.exists()
    _kill(victim)
    # The OS released the dead builder's lock: the waiter builds from scratch.
    result, err = _finish(waiter)
    assert "another process is building" in err
    assert (work / "reads.log").read_text().split() == [str(victim.pid), str(waiter.pid)]
    assert result["digest"] == cache_digest(reference)
    assert _leftovers(tmp_path, dest) == []  # the dead builder's tmp folder is gone
    assert verify_cache(dest).ok


def test_killed_builder_alone_leaves_nothing_that_opens(photo_folder, reference, tmp_path):
    dest, work = tmp_path / "photos.slip", tmp_path / "work"
    _kill(_stalled_builder(photo_folder, dest, work, 0))
    assert not dest.exists()
    with pytest.raises(CacheFormatError):
        SlipCache.open(dest)
    assert any(".tmp-" in name for name in _leftovers(tmp_path, dest))
    built = build_cache(ImageFolderReader(photo_folder), dest, progress=False)
    assert cache_digest(built) == cache_digest(reference)
    assert _leftovers(tmp_path, dest) == []


def test_lock_waits_for_holder_and_survives_unlinked_file(tmp_path):
    dest = tmp_path / "x.slip"
    code = (
        "import sys, time; from slipstream.cache.build_lock import build_lock\n"
        "with build_lock(sys.argv[1]):\n"
        "    open(sys.argv[2], 'w').close(); time.sleep(1.5)\n"
    )
    flag = tmp_path / "holding"
    holder = subprocess.Popen([sys.executable, "-c", code, str(dest), str(flag)], cwd=ROOT)
    _wait_for(flag.exists, "the lock holder")
    start = time.monotonic()
    with build_lock(dest, announce=False) as waited:
        assert waited > 0.2 and time.monotonic() - start > 0.2
        assert lock_path(dest).exists()
    assert holder.wait(timeout=30) == 0
    assert not lock_path(dest).exists()  # the holder removes it before releasing


def test_unverified_tmp_is_never_published(photo_folder, tmp_path, monkeypatch):
    def fail(folder, manifest):
        raise CacheBuildError(f"{folder}: failed its check")

    monkeypatch.setattr(cache_writer, "check_written_cache", fail)
    dest = tmp_path / "photos.slip"
    with pytest.raises(CacheBuildError, match="failed its check"):
        build_cache(ImageFolderReader(photo_folder), dest, progress=False)
    # Nothing published, no tmp folder; only the failure record for waiting ranks.
    assert [p.name for p in tmp_path.iterdir()] == ["photos.slip.failed.json"]


def test_written_cache_check_catches_bad_tables(reference, tmp_path):
    copy = shutil.copytree(reference, tmp_path / "copy")
    manifest = json.loads((copy / "manifest.json").read_text())
    cache_writer.check_written_cache(copy, manifest)
    meta = np.load(copy / "image.meta.npy")
    meta["data_ptr"][3] += 1  # a gap: item 3 no longer follows item 2
    np.save(copy / "image.meta.npy", meta)
    with pytest.raises(CacheBuildError, match="do not tile image.bin"):
        cache_writer.check_written_cache(copy, manifest)
    manifest["num_samples"] = 7
    with pytest.raises(CacheBuildError, match="wrote 7 samples"):
        cache_writer.check_written_cache(copy, manifest)


def _touch_new_content(path: Path, data: bytes) -> None:
    stat = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))


def test_changed_source_file_changes_cache_name(photo_folder, tmp_path):
    folder = shutil.copytree(photo_folder, tmp_path / "photos")
    caches = tmp_path / "caches"
    first = SlipstreamDataset(folder, cache_dir=caches, progress=False)
    assert first.cache_path.name.startswith("photos-") and first.cache_path.name.endswith("-v3")
    reader = ImageFolderReader(folder)
    victim = 17
    path = Path(reader.samples[victim][0])
    other = Path(reader.samples[victim + 1][0]).read_bytes()
    _touch_new_content(path, other)
    # An in-place edit keeps the folder times: the default fast check does not see it
    # (slipstream.readers.source_pointer), the full fingerprint does.
    second = SlipstreamDataset(folder, cache_dir=caches, progress=False, verify_source="full")
    assert second.cache_path != first.cache_path  # a new name, a new build
    assert second[victim]["image"] == other
    assert first[victim]["image"] != other  # the old cache is untouched
    assert SlipstreamDataset(folder, cache_dir=caches, progress=False).cache_path == (
        second.cache_path
    )


def test_changed_list_file_changes_cache_name(photo_folder, tmp_path):
    reader = ImageFolderReader(photo_folder)
    listing = tmp_path / "train.txt"
    lines = [f"{path} {label}" for path, label in reader.samples[:20]]
    listing.write_text("\n".join(lines) + "\n")
    caches = tmp_path / "caches"
    first = SlipstreamDataset(listing, cache_dir=caches, progress=False)
    assert first.cache_path.name.startswith("train-")
    listing.write_text("\n".join(lines[:-1] + [lines[-1].rsplit(" ", 1)[0] + " 7"]) + "\n")
    second = SlipstreamDataset(listing, cache_dir=caches, progress=False)
    assert second.cache_path != first.cache_path
    assert second[19]["label"] == 7 and first[19]["label"] == reader.samples[19][1]
    assert FileListReader(listing).fingerprint()[:16] in second.cache_path.name
