"""Where a build cannot write: a read-only location, a file in the way, a full disk.

Tests run as root, where ``chmod`` does not stop writes, so the read-only location and the
small disk are real tmpfs mounts (skipped where ``mount`` is not permitted); the file in the
way needs no mount. Every failure is a slipstream error naming the folder, and no temporary
build folder is left behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from slipstream import SlipstreamDataset
from slipstream.cache import writer
from slipstream.cache.build_lock import CacheLocationError
from slipstream.cache.free_space import NotEnoughSpaceError, estimate_build_bytes
from slipstream.errors import SlipstreamError
from slipstream.readers.open_source import open_reader


@pytest.fixture(scope="module")
def photos(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 photos (about 1 MiB of JPEGs): a build larger than a 512 KiB disk."""
    folder = tmp_path_factory.mktemp("hardening") / "photos"
    for f in sorted(photo_folder.rglob("*.jpg"))[:40]:
        target = folder / f.relative_to(photo_folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    return folder


@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator:
    """``mount(options) -> folder``: a tmpfs mounted for the test (skips if not permitted)."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=False)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or p.is_dir())


def test_read_only_location(photos, mount_tmpfs):
    location = mount_tmpfs("size=1m,ro")
    with pytest.raises(OSError) as probe:  # the mount really refuses writes (even to root)
        (location / "probe").write_bytes(b"x")
    assert probe.value.errno == errno.EROFS
    with pytest.raises(CacheLocationError, match="Read-only file system") as info:
        SlipstreamDataset(photos, cache_dir=location, progress=False)
    assert str(location) in str(info.value) and "cache_dir=" in str(info.value)
    assert isinstance(info.value, SlipstreamError) and info.value.errno == errno.EROFS


def test_a_file_where_the_cache_folder_should_be(photos, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file")
    with pytest.raises(CacheLocationError, match="not-a-folder"):
        SlipstreamDataset(photos, cache_dir=blocker / "caches", progress=False)
    assert blocker.read_text() == "a file"


def test_estimate_refuses_a_build_the_disk_cannot_hold(photos, mount_tmpfs):
    disk = mount_tmpfs("size=512k")
    need = estimate_build_bytes(open_reader(photos))
    source = sum(f.stat().st_size for f in photos.rglob("*.jpg"))
    assert source <= need <= 1.2 * source + 2**20  # the JPEGs are stored as they are
    with pytest.raises(NotEnoughSpaceError, match="not enough disk space") as info:
        SlipstreamDataset(photos, cache_dir=disk, progress=False)
    assert str(disk) in str(info.value) and "free" in str(info.value)
    assert _leftovers(disk) == []


def test_disk_filling_during_the_build(photos, mount_tmpfs, monkeypatch):
    disk = mount_tmpfs("size=512k")
    monkeypatch.setattr(writer, "_CHECK_FREE_SPACE", False)
    with pytest.raises(NotEnoughSpaceError, match="disk filled") as info:
        SlipstreamDataset(photos, cache_dir=disk, progress=False)
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.errno == errno.ENOSPC
    assert "was removed" in str(info.value)
    assert _leftovers(disk) == []
    assert shutil.disk_usage(disk).used < 64 * 1024  # the partial build's bytes are freed


def test_the_estimate_lets_a_build_that_fits_through(photos, mount_tmpfs):
    disk = mount_tmpfs("size=8m")
    dataset = SlipstreamDataset(photos, cache_dir=disk, progress=False)
    assert len(dataset) == 40
    assert [p for p in os.listdir(disk) if ".tmp-" in p] == []


def _damage_manifest(cache: Path) -> None:
    (cache / "manifest.json").write_text("{not json")


def _future_version(cache: Path) -> None:
    import json

    manifest = json.loads((cache / "manifest.json").read_text())
    manifest["version"] = 99
    (cache / "manifest.json").write_text(json.dumps(manifest))


DAMAGE = {
    "truncated-bin": (
        lambda c: os.truncate(c / "image.bin", (c / "image.bin").stat().st_size - 100),
        "image.bin of field 'image' is .* bytes, the manifest records .* \\(truncated",
    ),
    "extended-bin": (
        lambda c: (c / "image.bin").open("ab").write(b"x" * 100),
        "image.bin of field 'image' is .* bytes, the manifest records",
    ),
    "bad-manifest": (_damage_manifest, "manifest.json: unreadable manifest"),
    "future-version": (_future_version, "cache version 99 found.*rebuild the cache"),
    "missing-meta": (
        lambda c: (c / "image.meta.npy").unlink(),
        "file image.meta.npy of field 'image' is missing",
    ),
    "missing-label": (
        lambda c: (c / "label.npy").unlink(),
        "file label.npy of field 'label' is missing",
    ),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_cache_is_a_clear_error_naming_it(photo_dataset, tmp_path, damage):
    from slipstream.cache import SlipCache
    from slipstream.cache.reader import CacheFormatError

    cache = tmp_path / "cache"
    shutil.copytree(photo_dataset.cache_path, cache)
    apply, message = DAMAGE[damage]
    apply(cache)
    with pytest.raises(CacheFormatError, match=message) as info:
        SlipCache.open(cache)
    assert str(cache) in str(info.value)
