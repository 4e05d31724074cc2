"""EXIF orientation: ignored by default (as torchvision's ImageFolder), applied on request.

Real JPEGs carrying an Orientation tag, written with Pillow's ``Exif``. With
``exif_transpose=True`` the cache (a different one: its name ends ``-exif``) stores each
oriented image upright as a raw RGB item, equal to Pillow's ``ImageOps.exif_transpose`` of
the decoded file; images without the tag stay the same JPEG bytes. Without it, the stored
bytes and sizes are the file's, as ``Image.open`` sees them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from slipstream import SlipstreamDataset
from slipstream.cache import build_cache
from slipstream.cache.format import ITEM_FORMAT_JPEG, ITEM_FORMAT_RAW
from slipstream.cache.raw_items import exif_orientation, raw_pixels
from slipstream.readers.open_source import open_reader

ORIENTATIONS = {"a_plain.jpg": None, "b_rot90.jpg": 6, "c_mirror.jpg": 2, "d_rot270.jpg": 8}


def _photo(seed: int) -> Image.Image:
    """A 48 x 80 RGB image with structure (a gradient and a block), not symmetric."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:80]
    img = np.stack([x * 3, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    img[5:20, 10:30] = rng.integers(0, 255, 3)
    return Image.fromarray(img)


@pytest.fixture(scope="module")
def exif_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An image folder (one class) of JPEGs, three with an EXIF Orientation tag."""
    folder = tmp_path_factory.mktemp("exif") / "photos"
    (folder / "cls").mkdir(parents=True)
    for i, (name, orientation) in enumerate(ORIENTATIONS.items()):
        exif = Image.Exif()
        if orientation is not None:
            exif[0x0112] = orientation
        _photo(i).save(folder / "cls" / name, "JPEG", quality=92, exif=exif.tobytes())
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.jpg"))


def test_the_files_carry_their_tags(exif_folder):
    for f in _files(exif_folder):
        assert exif_orientation(f.read_bytes()) == (ORIENTATIONS[f.name] or 1)


def test_exif_transpose_stores_oriented_images_upright(exif_folder, tmp_path):
    ds = SlipstreamDataset(exif_folder, cache_dir=tmp_path, exif_transpose=True)
    plain = SlipstreamDataset(exif_folder, cache_dir=tmp_path)
    assert ds.cache.path != plain.cache.path and ds.cache.path.name.endswith("-exif")
    assert ds.cache.manifest["build"]["exif_transpose"] is True
    assert plain.cache.manifest["build"]["exif_transpose"] is False
    meta = ds.cache.meta("image")
    codes = ds.cache.item_formats("image")
    for i, f in enumerate(_files(exif_folder)):
        with Image.open(f) as img:
            want = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
        if ORIENTATIONS[f.name] is None:
            assert codes[i] == ITEM_FORMAT_JPEG
            assert bytes(ds.cache.item_bytes("image", i)) == f.read_bytes()
            continue
        assert codes[i] == ITEM_FORMAT_RAW
        got = raw_pixels(ds.cache, "image", i)
        np.testing.assert_array_equal(got, want)
        assert (int(meta["height"][i]), int(meta["width"][i])) == want.shape[:2]
    # rotated by 90 degrees: the stored sides are swapped against the file's
    assert tuple(meta[["height", "width"]][1]) == (80, 48)


def test_default_ignores_orientation_like_imagefolder(exif_folder, tmp_path):
    plain = SlipstreamDataset(exif_folder, cache_dir=tmp_path)
    meta = plain.cache.meta("image")
    for i, f in enumerate(_files(exif_folder)):
        assert bytes(plain.cache.item_bytes("image", i)) == f.read_bytes()
        with Image.open(f) as img:  # what torchvision's ImageFolder (pil_loader) returns
            assert (int(meta["height"][i]), int(meta["width"][i])) == (img.height, img.width)


def test_jpeg_storage_reencodes_and_records_it(exif_folder, tmp_path):
    dest = build_cache(
        open_reader(exif_folder),
        tmp_path / "c",
        exif_transpose=True,
        image_storage="jpeg",
        progress=False,
    )
    from slipstream.cache import SlipCache

    cache = SlipCache.open(dest)
    reencoded = cache.manifest["build"]["reencoded"]
    assert sorted(e["reason"] for e in reencoded) == ["exif_transpose"] * 3
    files = _files(exif_folder)
    for entry in reencoded:
        i = entry["index"]
        assert files[i].name in entry["name"]
        with Image.open(files[i]) as img:
            want = np.asarray(ImageOps.exif_transpose(img).convert("RGB"), dtype=np.int16)
        got = np.asarray(Image.open(io.BytesIO(bytes(cache.item_bytes("image", i)))))
        assert got.shape == want.shape and np.abs(got - want).mean() < 3  # JPEG, q95


def test_other_sources_refuse_it(exif_folder, tmp_path):
    plain = SlipstreamDataset(exif_folder, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="exif_transpose"):
        SlipstreamDataset(plain.cache.path, exif_transpose=True)
