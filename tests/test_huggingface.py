"""Hugging Face ``datasets`` sources, on datasets made here (no hub).

JPEG images must come back byte for byte, PNG images as their exact pixels (stored as raw
RGB items, :mod:`slipstream.cache.raw_items`), other columns as written, ``ClassLabel``
names as ``ds.classes``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from slipstream import SlipstreamDataset
from slipstream.cache.format import ITEM_FORMAT_RAW
from slipstream.readers.huggingface import HuggingFaceError, HuggingFaceReader, require_datasets

try:
    import datasets
except ImportError:  # the tests below that need it skip
    datasets = None

needs_datasets = pytest.mark.skipif(datasets is None, reason="needs datasets (slipstream[hf])")

NAMES = ["ant", "bee", "cow"]
N = 10


def _pixels(i: int) -> np.ndarray:
    y, x = np.mgrid[0:24, 0:32]
    return np.stack([x * 4 + i, y * 5, np.full_like(x, i * 20)], -1).astype(np.uint8)


def _encoded(i: int) -> bytes:
    """Even rows: JPEG; odd rows: PNG."""
    buf = io.BytesIO()
    Image.fromarray(_pixels(i)).save(buf, format="JPEG" if i % 2 == 0 else "PNG")
    return buf.getvalue()


def _features():
    return datasets.Features(
        {
            "img": datasets.Image(),
            "label": datasets.ClassLabel(names=NAMES),
            "caption": datasets.Value("string"),
            "score": datasets.Value("float32"),
            "id": datasets.Value("int32"),
        }
    )


def _dataset():
    return datasets.Dataset.from_dict(
        {
            "img": [{"bytes": _encoded(i), "path": None} for i in range(N)],
            "label": [i % 3 for i in range(N)],
            "caption": [f"row {i}" for i in range(N)],
            "score": [i / 4 for i in range(N)],
            "id": [100 + i for i in range(N)],
        },
        features=_features(),
    )


def _check(ds: SlipstreamDataset, image: str = "img") -> None:
    assert len(ds) == N
    assert ds.field_types == {
        image: "ImageBytes",
        "label": "int",
        "caption": "str",
        "score": "float",
        "id": "int",
    }
    assert ds.classes == NAMES and ds.num_classes == 3
    assert ds.class_to_idx == {"ant": 0, "bee": 1, "cow": 2}
    assert ds.cache.manifest["build"]["reencoded"] == []
    assert ds.cache.item_formats(image).tolist() == [ITEM_FORMAT_RAW * (i % 2) for i in range(N)]
    for i in range(N):
        sample = ds[i]
        assert sample["label"] == i % 3 and sample["id"] == 100 + i
        assert sample["caption"] == f"row {i}" and sample["score"] == pytest.approx(i / 4)
        if i % 2 == 0:
            assert sample[image] == _encoded(i)  # JPEG bytes pass through unchanged
        else:  # the PNG's pixels, kept lossless as a raw RGB item
            assert sample[image] == _pixels(i).tobytes()


@needs_datasets
def test_in_memory_dataset(tmp_path: Path):
    ds = SlipstreamDataset(_dataset(), cache_dir=tmp_path, progress=False)
    _check(ds)
    assert ds.source_kind == "huggingface" and ds.cache_path.name.startswith("hf-")
    assert ds.source.startswith("datasets.Dataset(fingerprint=") and "\n" not in repr(ds)
    again = SlipstreamDataset.from_huggingface(_dataset(), cache_dir=tmp_path)
    assert again.cache_path == ds.cache_path  # same fingerprint, same cache


@needs_datasets
def test_save_to_disk_folder_and_reopen_without_loading(tmp_path: Path, monkeypatch):
    _dataset().save_to_disk(str(tmp_path / "saved"))
    ds = SlipstreamDataset(tmp_path / "saved", cache_dir=tmp_path / "c", progress=False)
    _check(ds)

    def no_load(*args, **kwargs):
        raise AssertionError("the dataset was loaded although its cache exists")

    monkeypatch.setattr("slipstream.readers.huggingface.load_hf_dataset", no_load)
    assert SlipstreamDataset(tmp_path / "saved", cache_dir=tmp_path / "c").cache_path == (
        ds.cache_path
    )


@needs_datasets
def test_dataset_dict_needs_a_split(tmp_path: Path):
    splits = datasets.DatasetDict({"train": _dataset(), "test": _dataset().select(range(4))})
    splits.save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(HuggingFaceError, match=r"splits \['train', 'test'\]"):
        SlipstreamDataset.from_huggingface(tmp_path / "dict", cache_dir=tmp_path / "c")
    test = SlipstreamDataset.from_huggingface(tmp_path / "dict", "test", cache_dir=tmp_path / "c")
    assert len(test) == 4 and test.classes == NAMES
    train = SlipstreamDataset.from_huggingface(splits, split="train", cache_dir=tmp_path / "c")
    _check(train)


@needs_datasets
def test_parquet_folder_with_field_names(tmp_path: Path):
    folder = tmp_path / "pq"
    folder.mkdir()
    _dataset().select(range(6)).to_parquet(str(folder / "a.parquet"))
    _dataset().select(range(6, N)).to_parquet(str(folder / "b.parquet"))
    ds = SlipstreamDataset(
        folder, cache_dir=tmp_path / "c", field_names={"img": "image"}, progress=False
    )
    _check(ds, image="image")
    positional = SlipstreamDataset(folder, cache_dir=tmp_path / "c", field_names=["image"])
    assert positional.field_types == ds.field_types


@needs_datasets
def test_pil_images_and_unsupported_columns(tmp_path: Path):
    pil = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(_pixels(i)) for i in range(3)], "label": [0, 1, 2]}
    )
    ds = SlipstreamDataset(pil, cache_dir=tmp_path, decode_images=True, to_pil=False)
    for i in range(3):
        assert np.array_equal(ds[i]["image"].permute(1, 2, 0).numpy(), _pixels(i))
    assert ds.classes == [0, 1, 2]  # a plain int label: no names

    nested = datasets.Dataset.from_dict({"image": [_encoded(0)], "boxes": [[1.0, 2.0]]})
    nested = nested.cast_column("image", datasets.Image())
    with pytest.raises(HuggingFaceError, match=r"column 'boxes'.*remove_columns"):
        HuggingFaceReader(nested)


def test_missing_datasets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"slipstream\[hf\]"):
        require_datasets()
