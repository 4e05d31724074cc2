"""``slipstream build --check decode`` and ``verify``'s decode: JPEGs the marker walk passes.

The damaged JPEG: a DHT marker written into the middle of the entropy-coded scan. Its
headers and tables are valid (the build's walk stops at the scan), but libjpeg-turbo
fails on it ("Bogus Huffman table definition") at every load.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from slipstream.cache import SlipCache, build_cache
from slipstream.cache.build_batches import CacheBuildError
from slipstream.cache.decode_check import check_cache_decode, decode_failures
from slipstream.cache.jpeg_scan import prepare_images
from slipstream.cli import main
from slipstream.native.decode import DecodeError, decode_full
from slipstream.readers.open_source import open_reader
from slipstream.verify import verify_cache


def _break_scan(jpeg: bytes) -> bytes:
    sos = jpeg.find(b"\xff\xda")
    middle = (sos + len(jpeg)) // 2
    return jpeg[:middle] + b"\xff\xc4" + jpeg[middle + 2 :]


@pytest.fixture
def broken_folder(photo_folder: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of 40 photos of ``photo_folder`` where one has a broken scan; its path."""
    folder = tmp_path / "photos"
    files = sorted(photo_folder.rglob("*.jpg"))[:40]
    for f in files:
        target = folder / f.relative_to(photo_folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    victim = sorted(folder.rglob("*.jpg"))[7]
    victim.write_bytes(_break_scan(victim.read_bytes()))
    return folder, str(victim)


def test_the_damage_passes_the_walk_and_fails_the_decode(broken_folder):
    data = Path(broken_folder[1]).read_bytes()
    assert prepare_images([data], 95)[4] == {}
    with pytest.raises(DecodeError, match="Huffman"):
        decode_full(data)
    items = [Path(p).read_bytes() for p in sorted(broken_folder[0].rglob("*.jpg"))]
    failures = decode_failures(items, num_threads=2)
    assert list(failures) == [7] and "Huffman" in failures[7]
    assert decode_failures(items, num_threads=1) == failures


def test_build_check_decode_raises_naming_the_file(broken_folder, tmp_path):
    folder, victim = broken_folder
    with pytest.raises(CacheBuildError, match=Path(victim).name):
        build_cache(open_reader(folder), tmp_path / "c", check_decode=True, progress=False)
    assert not (tmp_path / "c").exists()


def test_build_check_decode_skip_leaves_it_out(broken_folder, tmp_path):
    folder, victim = broken_folder
    dest = build_cache(
        open_reader(folder), tmp_path / "c", on_error="skip", check_decode=True, progress=False
    )
    cache = SlipCache.open(dest)
    assert len(cache) == 39
    skipped = cache.manifest["build"]["skipped"]
    assert [e["index"] for e in skipped] == [7] and Path(victim).name in skipped[0]["name"]
    assert "Huffman" in skipped[0]["reason"]
    assert check_cache_decode(cache, progress=False) == []
    assert verify_cache(dest).ok  # the skipped file still fails: as the manifest says


def test_without_the_check_the_build_passes_and_verify_decodes(broken_folder, tmp_path):
    folder, victim = broken_folder
    dest = build_cache(open_reader(folder), tmp_path / "c", progress=False)
    found = check_cache_decode(SlipCache.open(dest), num_threads=2, progress=False)
    assert [(i, f) for i, f, _ in found] == [(7, "image")]
    report = verify_cache(dest)
    assert not report.ok and report.bad_samples == [7] and report.decoded == 40
    assert Path(victim).name in report.format()
    assert verify_cache(dest, decode=False).ok


def test_cli_build_check_decode(broken_folder, tmp_path, capsys):
    folder, victim = broken_folder
    argv = ["build", str(folder), str(tmp_path / "c"), "--check", "decode", "--quiet"]
    assert main(argv) == 1
    assert Path(victim).name in capsys.readouterr().err
    assert main([*argv, "--on-error", "skip"]) == 0
    assert len(SlipCache.open(tmp_path / "c")) == 39
    assert main(["verify", str(tmp_path / "c"), "--quiet"]) == 0
