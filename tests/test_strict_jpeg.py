"""``strict=``: libjpeg's corrupt-data warnings, counted per epoch or made failures.

The damaged JPEG: four bytes of one photo's entropy-coded scan overwritten (no 0xFF, so no
marker appears). libjpeg-turbo decodes it with a "Corrupt JPEG data" warning into visibly
wrong pixels, exactly as Pillow (the same library) decodes those bytes. Without ``strict``
the sample is kept and counted in ``loader.stats[epoch].jpeg_warnings``; with it the sample
fails like an undecodable one (raised or skipped under ``on_error``). Both CPU engines.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.decode import SampleDecodeError
from slipstream.native.decode import STATUS_JPEG_WARNING, NativeDecoder
from slipstream.pipelines import supervised_val

VICTIM = 3


def _decode_whole(data: bytes) -> tuple[np.ndarray, list]:
    """The native batch decode of one JPEG, full window at full size: (pixels, failures)."""
    h, w = Image.open(io.BytesIO(data)).size[::-1]
    out = np.zeros((1, h, w, 3), np.uint8)
    arr = np.frombuffer(data, np.uint8)
    failures = NativeDecoder(1).decode_crop_batch(
        arr,
        np.zeros(1, np.uint64),
        np.full(1, len(data), np.uint64),
        np.array([[0, 0, h, w]], np.int32),
        np.zeros(1, np.uint8),
        out,
    )
    return out[0], failures


def _pillow(data: bytes) -> np.ndarray:
    """Pillow's decode of damaged bytes (it reports the stream as broken unless told not to)."""
    keep = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = keep


def _damage(jpeg: bytes) -> bytes:
    """``jpeg`` with 4 scan bytes overwritten where libjpeg warns (first such place)."""
    sos = jpeg.find(b"\xff\xda")
    for pos in range(sos + 40, len(jpeg) - 40, 97):
        damaged = jpeg[:pos] + bytes([0x5A, 0x13, 0x77, 0x01]) + jpeg[pos + 4 :]
        if _decode_whole(damaged)[1]:
            return damaged
    raise AssertionError("no corruption found that libjpeg warns about")


@pytest.fixture(scope="module")
def warned(photo_folder: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(dataset, victim path, original bytes)``: 16 photos, the VICTIM-th damaged."""
    folder = tmp_path_factory.mktemp("strict") / "photos"
    files = sorted(photo_folder.rglob("*.jpg"))[:16]
    for f in files:
        target = folder / f.relative_to(photo_folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
    victim = sorted(folder.rglob("*.jpg"))[VICTIM]
    original = victim.read_bytes()
    victim.write_bytes(_damage(original))
    dataset = SlipstreamDataset(
        folder, cache_dir=tmp_path_factory.mktemp("strict-cache"), progress=False
    )
    return dataset, victim, original


def test_kernel_reports_the_warning_and_keeps_libjpegs_pixels(warned):
    _, victim, original = warned
    data = victim.read_bytes()
    pixels, failures = _decode_whole(data)
    [(position, code, message)] = failures
    assert (position, code) == (0, STATUS_JPEG_WARNING)
    assert message.startswith("libjpeg warning: Corrupt JPEG data")
    np.testing.assert_array_equal(pixels, _pillow(data))
    clean = np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.float64)
    assert np.abs(pixels - clean).mean() > 5  # garbage, decoded silently before strict
    assert _decode_whole(original)[1] == []


def _epoch(loader: SlipstreamLoader) -> list[dict]:
    return list(loader)


ENGINES = [
    pytest.param("native", id="native"),
    pytest.param("dali", id="dali-cpu", marks=pytest.mark.dali),
]


@pytest.mark.parametrize("backend", ENGINES)
def test_default_counts_and_keeps(warned, backend):
    dataset, victim, _ = warned
    loader = SlipstreamLoader(dataset, 8, supervised_val(64), backend=backend, device="cpu")
    batches = _epoch(loader)
    assert sum(len(b["label"]) for b in batches) == 16
    assert loader.stats[0].jpeg_warnings == 1 and loader.stats[0].failed == 0
    _epoch(loader)  # the next epoch counts its own
    assert loader.stats[1].jpeg_warnings == 1 and loader.stats[0].jpeg_warnings == 1


@pytest.mark.parametrize("backend", ENGINES)
def test_strict_raises_naming_the_file(warned, backend):
    dataset, victim, _ = warned
    loader = SlipstreamLoader(
        dataset, 8, supervised_val(64), backend=backend, device="cpu", strict=True, shuffle=False
    )
    with pytest.raises(SampleDecodeError, match="Corrupt JPEG data") as info:
        _epoch(loader)
    assert victim.name in str(info.value) and "strict=True" in str(info.value)
    assert len(info.value.sample_ids) == 1


@pytest.mark.parametrize("backend", ENGINES)
def test_strict_skip_masks_the_sample(warned, backend):
    dataset, victim, _ = warned
    loader = SlipstreamLoader(
        dataset, 8, supervised_val(64), backend=backend, device="cpu", strict=True, on_error="skip"
    )
    batches = _epoch(loader)
    valid = np.concatenate([b["valid"].numpy() for b in batches])
    assert valid.sum() == 15
    assert loader.stats[0].jpeg_warnings == 1 and loader.stats[0].failed == 1


def test_strict_is_a_bool(warned):
    with pytest.raises(TypeError, match="strict"):
        SlipstreamLoader(warned[0], 8, supervised_val(64), strict="yes")


def _op_run(items: list[np.ndarray], windows: np.ndarray, strict: bool):
    """One batch through the DALI CPU operator with status=True: (images, status)."""
    from nvidia.dali import fn, pipeline_def

    from slipstream.dali import decode_crop

    columns = [items, list(windows)]

    @pipeline_def(batch_size=len(items), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        nodes = fn.external_source(lambda: tuple(columns), num_outputs=2, batch=True)
        return decode_crop(nodes[0], nodes[1], size=48, status=True, strict=strict)

    p = pipe()
    p.build()
    images, status = p.run()
    return [np.array(t) for t in images], [int(np.array(t)) for t in status]


@pytest.mark.dali
def test_dali_operator_strict_argument(warned):
    _, victim, original = warned
    items = [np.frombuffer(b, np.uint8) for b in (original, victim.read_bytes())]
    h, w = Image.open(io.BytesIO(original)).size[::-1]
    windows = np.array([[0, 0, h, w]] * 2, np.int32)
    kept, status = _op_run(items, windows, strict=False)
    assert status == [0, STATUS_JPEG_WARNING] and kept[1].any()
    failed, status = _op_run(items, windows, strict=True)
    assert status == [0, STATUS_JPEG_WARNING] and not failed[1].any()
    np.testing.assert_array_equal(failed[0], kept[0])


def test_sof_claiming_65500_px_is_a_warning(photo_folder, tmp_path):
    """A JPEG whose SOF says 65,500 x 65,500 over a small image's data: built as is; the
    decode runs out of data ("premature end of data segment"), a warning strict fails."""
    import struct

    folder = tmp_path / "photos" / "cls"
    folder.mkdir(parents=True)
    files = sorted(photo_folder.rglob("*.jpg"))[:5]
    for f in files:
        shutil.copyfile(f, folder / f.name)
    lying = bytearray(files[0].read_bytes())
    sof = lying.find(b"\xff\xc0")
    assert sof > 0
    struct.pack_into(">HH", lying, sof + 5, 65500, 65500)
    (folder / "zz_huge.jpg").write_bytes(bytes(lying))
    dataset = SlipstreamDataset(folder.parent, cache_dir=tmp_path / "c", progress=False)
    assert tuple(dataset.cache.meta("image")[["height", "width"]][-1]) == (65500, 65500)
    loader = SlipstreamLoader(dataset, 8, supervised_val(64), device="cpu")
    assert sum(len(b["label"]) for b in loader) == 6
    assert loader.stats[0].jpeg_warnings == 1
    strict = SlipstreamLoader(
        dataset, 8, supervised_val(64), device="cpu", strict=True, shuffle=False
    )
    with pytest.raises(SampleDecodeError, match="zz_huge.jpg.*premature end of data segment"):
        list(strict)
