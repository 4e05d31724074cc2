"""The build's fast paths give exactly what the plain paths give.

* The compiled JPEG walk (``jpeg_scan``) says "portable" only where ``parse_jpeg_header``
  does, with the same size: every truncation and random byte flips of real photos.
* ``read_batch`` columns equal ``read_sample`` dicts; a reader that overrides only
  ``read_sample`` is read through it.
* A cache built through batches equals one built sample by sample (same bytes).
* Files read packed without the GIL equal their bytes; a file that cannot be read sends
  the batch through the per-sample path, which names it.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slipstream.cache import CacheBuildError, SlipCache, build_cache
from slipstream.cache.build_batches import has_batch_reads, read_checked_batch
from slipstream.cache.jpeg_check import ImageCheckError, parse_jpeg_header
from slipstream.cache.jpeg_scan import prepare_images, scan_portable_jpeg
from slipstream.readers import ImageFolderReader
from slipstream.readers.file_batch_io import read_files_packed


def _python_verdict(data: bytes) -> tuple[bool, int, int]:
    try:
        header = parse_jpeg_header(data)
    except ImageCheckError:
        return False, 0, 0
    if not header.portable:
        return False, 0, 0
    return True, header.height, header.width


def _jpeg(**kwargs) -> bytes:
    rng = np.random.default_rng(3)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(
        out, format="JPEG", **kwargs
    )
    return out.getvalue()


def test_scan_agrees_on_every_truncation():
    for data in (_jpeg(), _jpeg(progressive=True), _jpeg(restart_marker_rows=1)):
        assert scan_portable_jpeg(data) == (True, 37, 53)
        for cut in range(len(data)):
            assert scan_portable_jpeg(data[:cut]) == _python_verdict(data[:cut]), cut


def test_scan_agrees_on_random_flips(photo_folder):
    rng = np.random.default_rng(0)
    paths = [p for p, _ in ImageFolderReader(photo_folder).samples[:40]]
    for path in paths:
        original = Path(path).read_bytes()
        assert scan_portable_jpeg(original) == _python_verdict(original)
        for _ in range(60):
            data = bytearray(original)
            head = min(len(data), 700)  # the markers before the first scan
            for position in rng.integers(0, head, int(rng.integers(1, 4))):
                data[position] = int(rng.integers(0, 256))
            data = bytes(data)
            assert scan_portable_jpeg(data) == _python_verdict(data)


def test_scan_non_portable_and_non_jpeg():
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8)).save(cmyk, format="JPEG")
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    for data in (cmyk.getvalue(), png.getvalue(), b"", b"\xff\xd8", b"hello world"):
        assert scan_portable_jpeg(data) == (False, 0, 0)
    stored, heights, widths, reencoded, errors = prepare_images(
        [_jpeg(), memoryview(cmyk.getvalue()), np.frombuffer(png.getvalue(), np.uint8), b""], 95
    )
    assert stored[0] == _jpeg() and (heights[0], widths[0]) == (37, 53)
    assert sorted(reencoded) == [1, 2] and list(errors) == [3]
    assert "empty" in errors[3]


def test_read_batch_equals_read_sample(photo_folder):
    reader = ImageFolderReader(photo_folder)
    assert has_batch_reads(reader)
    columns = reader.read_batch(5, 23)
    for row, index in enumerate(range(5, 23)):
        sample = reader.read_sample(index)
        for name, values in columns.items():
            value = values[row]
            assert (value.item() if isinstance(value, np.generic) else value) == sample[name]


class _SampleOnly(ImageFolderReader):
    def read_sample(self, index):
        sample = super().read_sample(index)
        sample["label"] = 100 + sample["label"]
        return sample


def test_subclass_overriding_read_sample_is_honoured(photo_folder):
    reader = _SampleOnly(photo_folder)
    assert not has_batch_reads(reader)
    batch = read_checked_batch(reader, dict(reader.field_types), 0, 10, 95)
    assert [int(v) for v in batch.columns["label"]] == [
        100 + label for _, label in reader.samples[:10]
    ]


@pytest.mark.parametrize("num_workers", [0, 3])
def test_batched_build_equals_per_sample_build(photo_folder, tmp_path, num_workers):
    fast = build_cache(
        ImageFolderReader(photo_folder), tmp_path / "fast", progress=False, num_workers=num_workers
    )
    slow = build_cache(_PerSample(photo_folder), tmp_path / "slow", progress=False)
    for name in ("image.bin", "image.meta.npy", "label.npy", "index.npy", "path.bin"):
        assert (fast / name).read_bytes() == (slow / name).read_bytes(), name
    assert len(SlipCache.open(fast)) == 240


class _PerSample(ImageFolderReader):
    def read_sample(self, index):  # same data, but forces the per-sample path
        return super().read_sample(index)


def test_packed_file_reads(photo_folder, tmp_path):
    paths = [p for p, _ in ImageFolderReader(photo_folder).samples[:50]]
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    packed = read_files_packed([*paths[:3], str(empty), *paths[3:]])
    assert len(packed) == 51 and packed.sizes[3] == 0
    expected = [Path(p).read_bytes() for p in paths[:3]] + [b""]
    expected += [Path(p).read_bytes() for p in paths[3:]]
    assert packed.to_list() == expected
    assert bytes(packed[10]) == expected[10]
    assert read_files_packed([]).to_list() == []
    for bad in (tmp_path / "missing.jpg", tmp_path):  # missing; a folder cannot be read
        with pytest.raises(OSError):
            read_files_packed([paths[0], str(bad)])


def test_file_vanishing_before_the_build_names_it(tmp_path, photo_folder):
    root = tmp_path / "src"
    shutil.copytree(photo_folder, root)
    reader = ImageFolderReader(root)
    victim = Path(reader.samples[130][0])
    victim.unlink()  # after the scan: the packed read fails, the per-sample read names it
    with pytest.raises(CacheBuildError, match=rf"{victim.name}.*No such file"):
        build_cache(reader, tmp_path / "out.slip", progress=False)
    cache = build_cache(reader, tmp_path / "out.slip", progress=False, on_error="skip")
    skipped = SlipCache.open(cache).manifest["build"]["skipped"]
    assert [entry["index"] for entry in skipped] == [130]


@pytest.mark.parametrize(("cores", "workers"), [(1, 0), (2, 0), (3, 0), (4, 1), (8, 2), (64, 4)])
def test_default_build_workers(monkeypatch, cores, workers):
    from slipstream.cache import writer

    monkeypatch.setattr(writer.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert writer.default_build_workers() == workers
