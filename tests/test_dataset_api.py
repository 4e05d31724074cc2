"""``SlipstreamDataset``'s API as users of the original slipstream know it.

Call forms (``input_dir=``, ``remote_dir=``, ``local_dir=``, ``cache_dir=``), class names
against the folder names, ``decode_images`` against Pillow, ``to_pil``, the ``from_*``
classmethods, ``field_names`` for tuple samples and the renamed ``cache_root`` argument.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from slipstream import SlipstreamDataset
from slipstream.renamed import renamed_argument

CLASSES = ["cat", "dog", "fish"]
FFCV_FIXTURES = Path(__file__).parent / "fixtures" / "ffcv"


def _jpeg(i: int, size: tuple[int, int] = (40, 56)) -> bytes:
    """A small JPEG with content that differs per ``i`` (gradients + noise)."""
    rng = np.random.default_rng(i)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    pixels = np.stack([(x * 4 + i * 7) % 256, (y * 5) % 256, (x + y + i) % 256], axis=-1)
    pixels = (pixels + rng.integers(0, 30, pixels.shape)).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image folder: 3 classes, 4 JPEGs each (one class also holds a PNG)."""
    root = tmp_path_factory.mktemp("api") / "pets"
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for j in range(4):
            (root / name / f"{j:03d}.jpg").write_bytes(_jpeg(c * 10 + j))
    png = Image.fromarray(np.full((12, 9, 3), (10, 200, 30), np.uint8))
    png.save(root / "dog" / "zz.png")
    return root


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api_caches")


def test_original_call_forms_open_the_same_cache(folder: Path, caches: Path):
    by_position = SlipstreamDataset(folder, cache_dir=caches, progress=False)
    assert by_position.cache_path.parent == caches
    for form in ("input_dir", "local_dir", "remote_dir"):
        ds = SlipstreamDataset(**{form: str(folder)}, cache_dir=caches, progress=False)
        assert ds.cache_path == by_position.cache_path, form
        assert len(ds) == 13
    # input_dir overrides the others, as in the original
    ds = SlipstreamDataset(input_dir=folder, local_dir="/nowhere", cache_dir=caches)
    assert ds.cache_path == by_position.cache_path


def test_bad_call_forms_say_what_to_pass(folder: Path, caches: Path):
    with pytest.raises(ValueError, match="both 'local_dir' and 'remote_dir'"):
        SlipstreamDataset(local_dir=folder, remote_dir="s3://b/p", cache_dir=caches)
    with pytest.raises(ValueError, match="pass the dataset once"):
        SlipstreamDataset(folder, input_dir=folder, cache_dir=caches)
    with pytest.raises(ValueError, match="no dataset given"):
        SlipstreamDataset(cache_dir=caches)
    with pytest.raises(TypeError, match="source must be"):
        SlipstreamDataset(3)
    with pytest.raises(ValueError, match="verify_source"):
        SlipstreamDataset(folder, cache_dir=caches, verify_source="quick")


def test_cache_root_is_renamed_to_cache_dir(folder: Path, caches: Path):
    with pytest.warns(FutureWarning, match=r"cache_root= was renamed to cache_dir="):
        ds = SlipstreamDataset(folder, cache_root=caches, progress=False)
    assert ds.cache_path.parent == caches
    with pytest.raises(TypeError, match="both cache_root= and cache_dir="):
        SlipstreamDataset(folder, cache_root=caches, cache_dir=caches)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name warns about nothing
        SlipstreamDataset(folder, cache_dir=caches, progress=False)


def test_renamed_argument_helper():
    assert renamed_argument("old", "new", None, 5) == 5
    assert renamed_argument("old", "new", None) is None
    with pytest.warns(FutureWarning, match="pass new=7 instead"):
        assert renamed_argument("old", "new", 7, None) == 7


def test_classes_are_the_folder_names(folder: Path, caches: Path):
    ds = SlipstreamDataset(folder, cache_dir=caches, progress=False)
    assert ds.classes == CLASSES
    assert ds.class_to_idx == {"cat": 0, "dog": 1, "fish": 2}
    assert ds.num_classes == 3
    for i in range(len(ds)):
        sample = ds[i]
        assert ds.classes[sample["label"]] == sample["path"].split("/")[0]
    assert ds.cache.manifest["fields"]["label"]["classes"] == CLASSES  # stored at build


def test_classes_of_file_lists(folder: Path, tmp_path: Path):
    named = tmp_path / "named.txt"
    named.write_text(f"{folder}/fish/000.jpg zebra\n{folder}/cat/001.jpg ant\n")
    ds = SlipstreamDataset(named, cache_dir=tmp_path / "c", progress=False)
    assert ds.classes == ["ant", "zebra"] and ds.num_classes == 2
    assert [ds.classes[ds[i]["label"]] for i in range(2)] == ["zebra", "ant"]

    numbered = tmp_path / "numbered.txt"
    numbered.write_text(
        f"{folder}/fish/000.jpg 7\n{folder}/cat/001.jpg 2\n{folder}/cat/002.jpg 7\n"
    )
    ds = SlipstreamDataset(numbered, cache_dir=tmp_path / "c", progress=False)
    assert "classes" not in ds.cache.manifest["fields"]["label"]
    assert ds.classes == [2, 7]  # no names: the distinct labels
    assert ds.class_to_idx == {2: 2, 7: 7}
    assert ds.num_classes == 8  # a head that fits every label


def test_decode_images_matches_pillow(folder: Path, caches: Path):
    tensors = SlipstreamDataset(folder, cache_dir=caches, decode_images=True, to_pil=False)
    pils = SlipstreamDataset(folder, cache_dir=caches, decode_images=True, to_pil=True)
    encoded = SlipstreamDataset(folder, cache_dir=caches)
    for i in range(len(tensors)):
        source = folder / encoded[i]["path"]
        expected = np.asarray(Image.open(source).convert("RGB"))
        image = tensors[i]["image"]
        assert isinstance(image, torch.Tensor) and image.dtype == torch.uint8
        assert image.shape == (3, *expected.shape[:2])
        # JPEGs stored as is (native decode), the PNG as raw pixels: Pillow's pixels exactly
        assert np.array_equal(image.permute(1, 2, 0).numpy(), expected), source
        pil = pils[i]["image"]
        assert isinstance(pil, Image.Image) and pil.mode == "RGB"
        assert np.array_equal(np.asarray(pil), image.permute(1, 2, 0).numpy())
        assert isinstance(encoded[i]["image"], bytes)
        assert pils[i]["label"] == encoded[i]["label"]


def test_decode_images_to_pil_is_the_original_default(folder: Path, caches: Path):
    ds = SlipstreamDataset(folder, cache_dir=caches, decode_images=True)
    assert isinstance(ds[0]["image"], Image.Image)
    assert "decode_images=True" in repr(ds)


def test_from_imagefolder(folder: Path, caches: Path):
    ds = SlipstreamDataset.from_imagefolder(folder, cache_dir=caches, progress=False)
    assert ds.source_kind == "imagefolder" and ds.classes == CLASSES and len(ds) == 13


def test_from_ffcv():
    ds = SlipstreamDataset.from_ffcv(FFCV_FIXTURES / "all_fields.beton")
    assert ds.source_kind == "ffcv"
    labels = ds.cache.numbers("label")
    assert ds.classes == sorted(set(np.asarray(labels).tolist()))  # FFCV stores no names
    assert ds.num_classes == int(np.max(labels)) + 1
    with pytest.raises(FileNotFoundError):
        SlipstreamDataset.from_ffcv(FFCV_FIXTURES / "missing.beton")


def _litdata_pairs(tmp_path: Path) -> list[bytes]:
    """``tmp_path / "pairs"``: a LitData dataset of ``(JPEG image, i % 3)`` tuples."""
    pytest.importorskip("litdata")
    from litdata.streaming.writer import BinaryWriter

    jpegs = [_jpeg(i) for i in range(6)]
    for i, data in enumerate(jpegs):
        (tmp_path / f"{i}.jpg").write_bytes(data)
    writer = BinaryWriter(str(tmp_path / "pairs"), chunk_size=4)
    for i in range(len(jpegs)):
        writer[i] = (Image.open(tmp_path / f"{i}.jpg"), i % 3)
    writer.done()
    writer.merge()
    return jpegs


def test_from_litdata_names_tuple_fields(tmp_path: Path):
    jpegs = _litdata_pairs(tmp_path)
    plain = SlipstreamDataset.from_litdata(tmp_path / "pairs", cache_dir=tmp_path / "c")
    assert set(plain.field_types) == {"0", "1"}
    named = SlipstreamDataset.from_litdata(
        tmp_path / "pairs", cache_dir=tmp_path / "c", field_names=["image", "label"]
    )
    assert named.field_types == {"image": "ImageBytes", "label": "int"}
    assert named.cache_path != plain.cache_path
    assert [named[i]["image"] for i in range(6)] == jpegs
    assert [named[i]["label"] for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert named.classes == [0, 1, 2] and named.num_classes == 3
    with pytest.raises(KeyError, match="field_names"):
        SlipstreamDataset.from_litdata(
            tmp_path / "pairs", cache_dir=tmp_path / "c", field_names=["image", "label", "x"]
        )


def test_remote_dir_and_cache_dir_on_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The original's ``remote_dir=`` + ``cache_dir=`` (and ``input_dir=``) on a moto server."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    from s3_test_server import start_moto, stop

    jpegs = _litdata_pairs(tmp_path)
    proc, endpoint = start_moto()
    try:
        for name, value in {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="pets")
        for path in sorted((tmp_path / "pairs").iterdir()):
            client.upload_file(str(path), "pets", f"sets/pairs/{path.name}")
        caches = tmp_path / "remote-cache"
        ds = SlipstreamDataset(
            remote_dir="s3://pets/sets/pairs/",
            cache_dir=caches,
            field_names=["image", "label"],
            decode_images=True,
            to_pil=False,
        )
        assert ds.cache_path.parent == caches
        assert len(ds) == 6 and ds.field_types == {"image": "ImageBytes", "label": "int"}
        expected = np.asarray(Image.open(io.BytesIO(jpegs[4])).convert("RGB"))
        assert np.array_equal(ds[4]["image"].permute(1, 2, 0).numpy(), expected)
        same = SlipstreamDataset(
            input_dir="s3://pets/sets/pairs/", cache_dir=caches, field_names=["image", "label"]
        )
        assert same.cache_path == ds.cache_path and same[4]["image"] == jpegs[4]
    finally:
        stop(proc)
