"""FfcvFile against ``.beton`` files written by the real FFCV (no ``ffcv`` import here).

The fixtures and their ``*.expected.npz`` come from ``tests/fixtures/ffcv/make_fixtures.py``.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from PIL import Image

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.cache import SlipCache, build_cache
from slipstream.cache.build_batches import has_batch_reads
from slipstream.cli import main
from slipstream.native import decode_full
from slipstream.pipelines import supervised_train
from slipstream.readers import FfcvFile, FfcvFormatError
from slipstream.readers.ffcv_format import (
    ALLOCATION_DTYPE,
    CUSTOM_TYPE_ID,
    FIELD_DESCRIPTOR_DTYPE,
    HEADER_DTYPE,
    MODE_JPEG,
    MODE_RAW,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ffcv"
NAMES = ["all_fields", "raw", "smart", "custom"]
JPEG_MEAN_ERROR = 3.0  # mean |decoded - original| of these quality-90 JPEGs stays below


def open_fixture(name: str) -> tuple[FfcvFile, dict[str, np.ndarray]]:
    with np.load(FIXTURES / f"{name}.expected.npz") as expected:
        return FfcvFile(FIXTURES / f"{name}.beton"), dict(expected)


def png_pixels(png: np.ndarray) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png.tobytes())).convert("RGB"))


def header(path: Path) -> np.void:
    return np.fromfile(path, dtype=HEADER_DTYPE, count=1)[0]


def copy_fixture(name: str, tmp_path: Path) -> Path:
    path = tmp_path / f"{name}.beton"
    shutil.copyfile(FIXTURES / f"{name}.beton", path)
    return path


@pytest.mark.parametrize("name", NAMES)
def test_images_read_back_as_ffcv_wrote_them(name):
    beton, expected = open_fixture(name)
    meta = beton.meta("image")
    assert_array_equal(meta["height"], expected["image/height"])
    assert_array_equal(meta["width"], expected["image/width"])
    assert_array_equal(beton.modes("image"), expected["image/mode"])
    assert beton.has_raw_images == bool((expected["image/mode"] == MODE_RAW).any())
    for i in range(len(beton)):
        pixels = png_pixels(expected[f"image/png/{i}"])
        item = beton.item_bytes("image", i)
        assert item.base is not None  # a view of the file map, not a copy
        if beton.modes("image")[i] == MODE_JPEG:
            assert item.tobytes() == expected[f"image/jpeg/{i}"].tobytes()
            decoded = decode_full(item)
            assert decoded.shape == pixels.shape
            assert np.abs(decoded.astype(np.int16) - pixels).mean() < JPEG_MEAN_ERROR
        else:
            assert item.size == pixels.size
            assert_array_equal(beton.image_pixels("image", i), pixels)


@pytest.mark.parametrize("name", NAMES)
def test_labels_read_back(name):
    beton, expected = open_fixture(name)
    labels = beton.numbers("label")
    assert labels.dtype == np.dtype("<i8")
    assert_array_equal(labels, expected["label"])
    assert [beton.sample(i)["label"] for i in range(len(beton))] == expected["label"].tolist()


def test_every_field_type_reads_back():
    beton, expected = open_fixture("all_fields")
    assert beton.field_types == {
        "image": "ImageBytes",
        "label": "int",
        "score": "float",
        "blob": "bytes",
        "array": "ndarray",
        "info": "str",
        "tensor": "ndarray",
    }
    assert beton.image_fields == ["image"]
    assert [spec.type_id for spec in beton.fields] == [2, 1, 0, 3, 4, 5, 6]
    assert beton.numbers("score").dtype == np.dtype("<f8")
    assert_array_equal(beton.numbers("score"), expected["score"])
    for name in ("array", "tensor"):
        assert beton.numbers(name).dtype == expected[name].dtype
        assert_array_equal(beton.numbers(name), expected[name])
    for i in range(len(beton)):
        blob = expected[f"blob/{i}"]
        assert beton.item_bytes("blob", i).tobytes() == blob.tobytes()
        assert beton.meta("blob")[i]["data_size"] == blob.size
        assert json.loads(beton.string("info", i)) == json.loads(str(expected["info"][i]))
        sample = beton.sample(i)
        assert sample["blob"] == blob.tobytes()
        assert sample["score"] == expected["score"][i]
        assert_array_equal(sample["array"], expected["array"][i])
        assert sample["info"] == beton.string("info", i)
    assert beton.item_bytes("blob", 3).size == 0  # shares its pointer with "array" of sample 3


def test_type_255_image_field():
    beton, _ = open_fixture("custom")
    assert [spec.type_id for spec in beton.fields] == [1, CUSTOM_TYPE_ID]
    assert beton.field_types == {"label": "int", "image": "ImageBytes"}
    named = FfcvFile(FIXTURES / "custom.beton", custom_types={"image": "rgb_image"})
    assert_array_equal(named.meta("image"), beton.meta("image"))
    with pytest.raises(FfcvFormatError):  # another metadata layout: nothing lines up
        FfcvFile(FIXTURES / "custom.beton", custom_types={"image": "bytes"})
    with pytest.raises(ValueError, match="unknown FFCV types"):
        FfcvFile(FIXTURES / "custom.beton", custom_types={"image": "png"})


def test_type_255_field_that_is_not_an_image_asks_for_its_type(tmp_path):
    path = copy_fixture("custom", tmp_path)
    beton = FfcvFile(path)
    with open(path, "r+b") as f:
        f.seek(int(beton.meta("image")[0]["data_ptr"]))
        f.write(b"not a jpeg")
    del beton
    with pytest.raises(FfcvFormatError, match="custom_types") as info:
        FfcvFile(path)
    assert str(path) in str(info.value)


def test_unsorted_allocation_table_as_ffcv_wrote_it():
    beton = FfcvFile(FIXTURES / "raw.beton")  # written by two worker processes
    table = np.fromfile(beton.path, dtype=ALLOCATION_DTYPE, offset=int(header(beton.path)[4]))
    assert not (np.diff(table["sample_id"].astype(np.int64)) >= 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_shuffled_allocation_table_reads_the_same(name, tmp_path):
    original, _ = open_fixture(name)
    path = copy_fixture(name, tmp_path)
    start = int(header(path)["alloc_table_ptr"])
    table = np.fromfile(path, dtype=ALLOCATION_DTYPE, offset=start)
    for seed in range(3):
        shuffled = table[np.random.default_rng(seed).permutation(len(table))]
        assert not np.array_equal(shuffled, table)
        with open(path, "r+b") as f:
            f.seek(start)
            f.write(shuffled.tobytes())
        beton = FfcvFile(path)
        for field, kind in original.field_types.items():
            if kind in ("ImageBytes", "bytes"):
                assert_array_equal(beton.meta(field), original.meta(field))
        for i in range(len(beton)):
            got, want = beton.sample(i), original.sample(i)
            assert got.keys() == want.keys()
            for key in want:
                assert_array_equal(got[key], want[key])


def _cut_points(path: Path) -> list[int]:
    head = header(path)
    descriptors_end = (
        HEADER_DTYPE.itemsize + int(head["num_fields"]) * FIELD_DESCRIPTOR_DTYPE.itemsize
    )
    table = int(head["alloc_table_ptr"])
    size = path.stat().st_size
    return [
        0,
        11,
        HEADER_DTYPE.itemsize,
        HEADER_DTYPE.itemsize + 500,
        descriptors_end,  # the metadata table is gone
        descriptors_end + 20,
        table - 1000,  # inside the data pages
        table,  # the allocation table is gone
        table + 7,
        size - ALLOCATION_DTYPE.itemsize,  # one record short
        size - 1,
    ]


@pytest.mark.parametrize("name", ["all_fields", "raw"])
def test_truncated_file_is_a_clear_error(name, tmp_path):
    source = FIXTURES / f"{name}.beton"
    for cut in _cut_points(source):
        path = tmp_path / f"cut-{cut}.beton"
        path.write_bytes(source.read_bytes()[:cut])
        with pytest.raises(FfcvFormatError) as info:
            FfcvFile(path)
        assert str(path) in str(info.value), cut


def test_missing_allocation_record_names_the_sample(tmp_path):
    path = copy_fixture("smart", tmp_path)
    start = int(header(path)["alloc_table_ptr"])
    table = np.fromfile(path, dtype=ALLOCATION_DTYPE, offset=start)
    kept = table[table["sample_id"] != 5]
    with open(path, "r+b") as f:
        f.seek(start)
        f.write(kept.tobytes())
        f.truncate()
    with pytest.raises(FfcvFormatError, match="no allocation-table record for the item: sample 5"):
        FfcvFile(path)


@pytest.mark.parametrize("version", [1, 3, 0x0200])
def test_wrong_version_is_a_clear_error(version, tmp_path):
    path = copy_fixture("all_fields", tmp_path)
    with open(path, "r+b") as f:
        f.write(np.array(version, dtype="<u2").tobytes())
    with pytest.raises(FfcvFormatError, match=f"version {version} found") as info:
        FfcvFile(path)
    assert str(path) in str(info.value)


def test_unknown_field_type_is_a_clear_error(tmp_path):
    path = copy_fixture("all_fields", tmp_path)
    with open(path, "r+b") as f:
        f.seek(HEADER_DTYPE.itemsize)
        f.write(bytes([7]))
    with pytest.raises(FfcvFormatError, match="unknown FFCV type id 7"):
        FfcvFile(path)


def _epoch(dataset) -> list[dict]:
    loader = SlipstreamLoader(
        dataset, batch_size=4, pipelines=supervised_train(32), seed=0, device="cpu"
    )
    return [{key: value.clone() for key, value in batch.items()} for batch in loader]


def test_loader_reads_a_jpeg_beton_in_place_like_its_slip_cache(tmp_path):
    source = FIXTURES / "all_fields.beton"
    direct = SlipstreamDataset(source, cache_dir=tmp_path / "unused", progress=False)
    assert isinstance(direct.cache, FfcvFile)
    assert not (tmp_path / "unused").exists()
    cache = build_cache(FfcvFile(source), tmp_path / "cache", progress=False)
    converted = SlipstreamDataset(cache)
    direct_batches, cache_batches = _epoch(direct), _epoch(converted)
    assert len(direct_batches) == 2
    for got, want in zip(direct_batches, cache_batches, strict=True):
        assert got.keys() == want.keys() >= {"image", "label", "score"}
        for key in want:
            assert got[key].dtype == want[key].dtype
            assert np.array_equal(got[key].numpy(), want[key].numpy()), key


@pytest.mark.parametrize("name", ["raw", "smart"])
def test_dataset_reads_a_beton_with_raw_images_in_place(name, tmp_path):
    beton, expected = open_fixture(name)
    dataset = SlipstreamDataset(beton.path, cache_dir=tmp_path / "unused", progress=False)
    assert isinstance(dataset.cache, FfcvFile)  # no conversion
    assert not (tmp_path / "unused").exists()
    raw = beton.modes("image") == MODE_RAW
    codes = beton.item_formats("image")
    assert_array_equal(codes, np.where(raw, 2, 0))
    heights, widths = dataset.image_sizes()
    assert_array_equal(heights, expected["image/height"])
    assert_array_equal(widths, expected["image/width"])
    assert len(_epoch(dataset)) == 2


def test_cli_builds_a_slip_cache_from_a_beton(tmp_path, capsys):
    dest = tmp_path / "cache"
    assert main(["build", str(FIXTURES / "all_fields.beton"), str(dest)]) == 0
    beton, expected = open_fixture("all_fields")
    cache = SlipCache.open(dest)
    assert cache.field_types == beton.field_types
    assert cache.manifest["build"]["reencoded"] == []
    for name in ("label", "score", "array", "tensor"):
        assert_array_equal(cache.numbers(name), expected[name])
    for i in range(len(beton)):
        got, want = cache.sample(i), beton.sample(i)
        for key in want:
            assert_array_equal(got[key], want[key])
    assert "slip cache ready" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["all_fields", "raw", "smart"])
def test_read_batch_is_read_sample_column_by_column(name):
    """The build's batched read gives exactly the per-sample reads, for every field."""
    beton, _ = open_fixture(name)
    assert has_batch_reads(beton)
    n = len(beton)
    for start, stop in ((0, n), (1, max(2, n // 2)), (n - 1, n)):
        columns = beton.read_batch(start, stop)
        assert set(columns) == set(beton.field_types)
        for name_, column in columns.items():
            assert len(column) == stop - start
            for k, index in enumerate(range(start, stop)):
                want = beton.read_sample(index)[name_]
                got = column[k]
                if isinstance(want, bytes):
                    assert bytes(got) == want, (name_, index)
                else:
                    assert_array_equal(np.asarray(got), np.asarray(want))


def test_read_batch_checks_its_range():
    beton, _ = open_fixture("all_fields")
    with pytest.raises(IndexError):
        beton.read_batch(0, len(beton) + 1)
