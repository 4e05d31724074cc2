"""``slipstream verify``: every sample of a cache against its source."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slipstream.cache import build_cache
from slipstream.cli import main
from slipstream.readers import FileListReader, ImageFolderReader
from slipstream.verify import verify_cache


@pytest.fixture
def source(photo_folder, tmp_path) -> Path:
    """A copy of 30 photos (3 classes), plus a PNG the build re-encodes and a bad file."""
    root = tmp_path / "src"
    reader = ImageFolderReader(photo_folder)
    for path, _ in reader.samples[:24] + reader.samples[-6:]:
        rel = Path(path).relative_to(photo_folder)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / rel)
    first_class = sorted(p.name for p in root.iterdir())[0]
    with Image.open(reader.samples[0][0]) as img:
        img.convert("RGBA").save(root / first_class / "zz_alpha.png")
    (root / first_class / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut")
    return root


@pytest.fixture
def cache(source, tmp_path) -> Path:
    return build_cache(  # image_storage="jpeg": the PNG re-encoded (raw items: below)
        ImageFolderReader(source),
        tmp_path / "src.slip",
        on_error="skip",
        progress=False,
        image_storage="jpeg",
    )


def test_clean_cache_verifies(cache, source):
    manifest = json.loads((cache / "manifest.json").read_text())
    assert len(manifest["build"]["skipped"]) == 1 and len(manifest["build"]["reencoded"]) == 1
    report = verify_cache(cache)
    assert report.ok, report.format()
    assert report.checked == 31 and report.skipped == 1 and report.fingerprint_matches
    assert str(source) in report.source
    assert "OK: every sample matches" in report.format()


def test_one_flipped_byte_names_that_sample(cache, tmp_path):
    copy = shutil.copytree(cache, tmp_path / "copy.slip")
    meta = np.load(copy / "image.meta.npy")
    victim = 11
    position = int(meta["data_ptr"][victim]) + int(meta["data_size"][victim]) // 2
    with open(copy / "image.bin", "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ 0x01]))
    report = verify_cache(copy)
    assert not report.ok
    assert report.bad_samples == [victim]
    [mismatch] = report.mismatches
    assert mismatch.field == "image" and mismatch.source_index == victim
    assert f"first at byte {int(meta['data_size'][victim]) // 2}" in mismatch.reason
    assert f"cache sample {victim}" in report.format()


def test_changed_source_file(cache, source):
    reader = ImageFolderReader(source)
    victim = 20
    path = Path(reader.samples[victim][0])
    path.write_bytes(Path(reader.samples[victim + 1][0]).read_bytes())
    report = verify_cache(cache)
    assert not report.fingerprint_matches
    assert report.bad_samples == [victim]
    assert {m.field for m in report.mismatches} <= {"image"}
    assert str(path) in report.mismatches[0].name


def test_reencoded_image_compared_by_pixels(cache, tmp_path, monkeypatch):
    # Another encoder would give other bytes: the pixels must still match within tolerance.
    import slipstream.cache.jpeg_scan as jpeg_scan

    real = jpeg_scan.prepare_image

    def other_encoder(data, quality):
        prepared = real(data, quality)
        if prepared.reencoded is None:
            return prepared
        with Image.open(io.BytesIO(prepared.data)) as img:
            out = io.BytesIO()
            img.save(out, format="JPEG", quality=90)
        return type(prepared)(out.getvalue(), prepared.height, prepared.width, "PNG")

    monkeypatch.setattr(jpeg_scan, "prepare_image", other_encoder)
    report = verify_cache(cache)
    assert report.ok, report.format()
    assert report.reencoded == 1
    report = verify_cache(cache, pixel_tolerance=0.0)
    assert not report.ok and "re-encoded pixels differ" in report.mismatches[0].reason


def test_skipped_sample_that_reads_now_and_missing_samples(cache, source, tmp_path):
    first_class = sorted(p.name for p in source.iterdir())[0]
    broken = source / first_class / "zz_broken.jpg"
    shutil.copyfile(next((source / first_class).glob("*.jpg")), broken)
    report = verify_cache(cache)
    assert any("skipped at build, but reads fine now" in m.reason for m in report.mismatches)
    listing = tmp_path / "list.txt"
    reader = ImageFolderReader(source)
    rows = reader.samples + reader.samples[:1]  # one sample more than the source had
    listing.write_text("".join(f"{p} {label}\n" for p, label in rows))
    extra = verify_cache(cache, FileListReader(listing))
    assert [m.source_index for m in extra.mismatches if "missing" in m.reason] == [32]
    assert "the cache has 31 samples, the source 33" in extra.mismatches[-1].reason


def test_cli_exit_codes(cache, tmp_path, capsys):
    assert main(["verify", str(cache), "--quiet"]) == 0
    assert "OK" in capsys.readouterr().out
    copy = shutil.copytree(cache, tmp_path / "copy.slip")
    labels = np.load(copy / "label.npy")
    labels[3] += 1
    np.save(copy / "label.npy", labels)
    assert main(["verify", str(copy), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH: 1 difference" in out and "cache sample 3" in out and "'label'" in out


def test_raw_items_verify_exactly(source, tmp_path):
    cache = build_cache(
        ImageFolderReader(source), tmp_path / "raw.slip", on_error="skip", progress=False
    )
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["build"]["reencoded"] == [] and manifest["fields"]["image"]["format"] == "mixed"
    report = verify_cache(cache)
    assert report.ok and report.checked == 31, report.format()
    meta = np.load(cache / "image.meta.npy")
    codes = np.load(cache / "image.format.npy")
    victim = int(np.flatnonzero(codes == 2)[0])  # flip one byte of the raw item
    with open(cache / "image.bin", "r+b") as f:
        f.seek(int(meta["data_ptr"][victim]) + 5)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    report = verify_cache(cache)
    assert not report.ok and report.mismatches[0].cache_index == victim
