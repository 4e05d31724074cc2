"""Slip cache: JPEG checks, build from an image folder, open checks, atomic builds."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from slipstream.cache import (
    FORMAT_NAME,
    FORMAT_VERSION,
    IMAGE_META_DTYPE,
    CacheBuildError,
    CacheFormatError,
    SlipCache,
    build_cache,
)
from slipstream.cache.jpeg_check import (
    ImageCheckError,
    parse_jpeg_header,
    prepare_image,
    sniff_format,
)
from slipstream.readers import ImageFolderReader

# ----------------------------------------------------------------------------- data


def _photo_crops(n: int, seed: int = 0) -> list[np.ndarray]:
    """Random crops (odd and even sides) of real photographs."""
    photos = [skdata.astronaut(), skdata.chelsea(), skdata.coffee(), skdata.rocket()]
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = int(rng.integers(40, 160)), int(rng.integers(40, 160))
        y, x = int(rng.integers(0, photo.shape[0] - h)), int(rng.integers(0, photo.shape[1] - w))
        crops.append(np.ascontiguousarray(photo[y : y + h, x : x + w]))
    return crops


def _encode(img: Image.Image, fmt: str = "JPEG", **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _make_tree(root: Path, per_class: int = 6) -> Path:
    """An image folder with baseline/progressive/gray/CMYK JPEGs, PNGs and a misnamed PNG."""
    crops = _photo_crops(3 * per_class + 8)
    for c, name in enumerate(["dog", "Cat", "bird"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = Image.fromarray(crops[c * per_class + i])
            (root / name / f"{i:03d}.jpg").write_bytes(_encode(img, quality=90))
    extra = crops[3 * per_class :]
    special = {
        "dog/progressive.jpg": _encode(Image.fromarray(extra[0]), progressive=True),
        "dog/gray.jpeg": _encode(Image.fromarray(skdata.camera()[100:180, 50:170])),
        "dog/cmyk.jpg": _encode(Image.fromarray(extra[1]).convert("CMYK"), quality=95),
        "Cat/exif_restart.jpg": _encode(
            Image.fromarray(extra[2]), exif=_exif(), restart_marker_rows=1
        ),
        "Cat/real.png": _encode(Image.fromarray(extra[3]), "PNG"),
        "Cat/misnamed_png.jpg": _encode(Image.fromarray(extra[4]), "PNG"),
        "bird/rgba.png": _encode(Image.fromarray(extra[5]).convert("RGBA"), "PNG"),
        "bird/sub/nested.JPG": _encode(Image.fromarray(extra[6])),
    }
    for rel, payload in special.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(payload)
    return root


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "slipstream test camera"  # Make
    exif[0x0112] = 6  # Orientation: kept as is, like torchvision's loader ignores it
    return exif


REENCODED = {"Cat/real.png": "PNG", "Cat/misnamed_png.jpg": "PNG", "bird/rgba.png": "PNG"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return _make_tree(tmp_path_factory.mktemp("photos") / "train")


@pytest.fixture(scope="module")
def built(tree, tmp_path_factory) -> tuple[ImageFolderReader, Path]:
    reader = ImageFolderReader(tree)
    # image_storage="jpeg": the lossy option, non-JPEG files re-encoded (raw storage, the
    # default, is tested in tests/test_raw_images.py)
    dest = build_cache(
        reader,
        tmp_path_factory.mktemp("caches") / "train.slip",
        progress=False,
        image_storage="jpeg",
    )
    return reader, dest


def _copy_cache(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _decode(data: bytes | np.ndarray) -> np.ndarray:
    with Image.open(io.BytesIO(bytes(data))) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


# ------------------------------------------------------------------------ JPEG checks


def test_jpeg_header_matches_pillow(tree):
    for path in sorted(tree.rglob("*")):
        if path.is_file() and sniff_format(path.read_bytes()) == "jpeg":
            header = parse_jpeg_header(path.read_bytes())
            with Image.open(path) as img:
                assert (header.width, header.height) == img.size, path
    progressive = parse_jpeg_header((tree / "dog/progressive.jpg").read_bytes())
    assert progressive.sof_marker == 0xC2 and progressive.portable
    assert parse_jpeg_header((tree / "dog/gray.jpeg").read_bytes()).components == 1
    cmyk = parse_jpeg_header((tree / "dog/cmyk.jpg").read_bytes())
    assert cmyk.components == 4 and not cmyk.portable
    assert b"\xff\xdd" in (tree / "Cat/exif_restart.jpg").read_bytes()  # DRI present


def test_jpeg_fill_bytes_and_padding():
    jpeg = _encode(Image.fromarray(_photo_crops(1)[0]))
    h, w = _photo_crops(1)[0].shape[:2]
    # Fill bytes before the first marker after SOI, and zero padding after EOI.
    filled = jpeg[:2] + b"\xff\xff\xff" + jpeg[2:] + b"\x00" * 40
    header = parse_jpeg_header(filled)
    assert (header.height, header.width) == (h, w)
    assert Image.open(io.BytesIO(filled)).size == (w, h)
    with pytest.raises(ImageCheckError, match="EOI"):
        parse_jpeg_header(jpeg + b"\x00" * 100)  # EOI too far from the end


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"hello, I am text\n" * 4, "not a readable image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "truncated"),
        (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 70 + b"\xff\xd9", "no frame header"),
    ],
)
def test_prepare_image_rejects(payload, message):
    with pytest.raises(ImageCheckError, match=message):
        prepare_image(payload)


def test_prepare_image_truncated_jpeg():
    jpeg = _encode(Image.fromarray(_photo_crops(1)[0]))
    for cut in (len(jpeg) // 2, len(jpeg) - 3, 300):
        with pytest.raises(ImageCheckError, match="truncated"):
            prepare_image(jpeg[:cut])
    assert prepare_image(jpeg).data == jpeg
    assert prepare_image(np.frombuffer(jpeg, np.uint8)).data == jpeg


# ----------------------------------------------------------------------- round trip


def test_round_trip(built):
    from torchvision.datasets import ImageFolder

    reader, dest = built
    cache = SlipCache.open(dest)
    ref = ImageFolder(str(reader.root))
    assert cache.path == dest
    assert len(cache) == len(reader) == len(ref)
    assert cache.field_types == reader.field_types
    assert cache.image_fields == ["image"]
    assert reader.class_to_idx == ref.class_to_idx
    meta = cache.meta("image")
    assert meta.dtype == IMAGE_META_DTYPE
    labels = cache.numbers("label")
    assert labels.dtype == np.dtype("<i8")
    reencoded = {e["name"] for e in cache.manifest["build"]["reencoded"]}
    for i, (path, label) in enumerate(ref.samples):
        src = Path(path).read_bytes()
        stored = cache.item_bytes("image", i)
        if path not in reencoded:
            assert stored.tobytes() == src, path
        with Image.open(path) as img:
            assert (int(meta[i]["width"]), int(meta[i]["height"])) == img.size, path
        assert labels[i] == label
        assert cache.numbers("index")[i] == i
        assert cache.string("path", i) == os.path.relpath(path, reader.root)
        sample = cache.sample(i)
        assert sample["image"] == stored.tobytes()
        assert sample["label"] == label and isinstance(sample["label"], int)
    assert int(meta["data_size"].max()) == cache.manifest["fields"]["image"]["max_size"]
    assert (meta["data_ptr"][1:] == meta["data_ptr"][:-1] + meta["data_size"][:-1]).all()


def test_manifest(built):
    reader, dest = built
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["format"] == FORMAT_NAME and manifest["version"] == FORMAT_VERSION
    assert manifest["num_samples"] == len(reader)
    assert manifest["source"] == {
        "kind": "ImageFolderReader",
        "root": str(reader.root),
        "fingerprint": reader.fingerprint(),
    }
    fields = manifest["fields"]
    assert fields["image"]["format"] == "jpeg"
    assert fields["label"]["format"] == "<i8" and fields["path"]["format"] == "utf-8"
    for spec in fields.values():
        assert spec["num_samples"] == len(reader)
        for fname, size in spec["files"].items():
            assert (dest / fname).stat().st_size == size
    assert manifest["build"]["skipped"] == []
    assert sorted(os.listdir(dest)) == sorted(
        ["manifest.json"] + [f for s in fields.values() for f in s["files"]]
    )


def test_reencoded_images(built):
    reader, dest = built
    cache = SlipCache.open(dest)
    entries = {e["name"]: e for e in cache.manifest["build"]["reencoded"]}
    expected = {str(reader.root / rel): reason for rel, reason in REENCODED.items()}
    expected[str(reader.root / "dog/cmyk.jpg")] = "JPEG SOF 0xC0, 8-bit, 4 components"
    assert {name: e["reason"] for name, e in entries.items()} == expected
    for name, entry in entries.items():
        i = entry["index"]
        assert reader.describe(i) == name
        stored = cache.item_bytes("image", i)
        assert sniff_format(stored) == "jpeg"
        assert parse_jpeg_header(stored).portable
        with Image.open(name) as img:
            want = np.asarray(img.convert("RGB"), dtype=np.int16)
        got = _decode(stored)
        assert got.shape == want.shape
        assert np.abs(got - want).mean() <= 3, name


def test_workers_give_identical_cache(tree, built, tmp_path):
    _, dest = built
    inline = build_cache(
        ImageFolderReader(tree),
        tmp_path / "inline",
        num_workers=0,
        progress=False,
        image_storage="jpeg",
    )
    for fname in ("image.bin", "image.meta.npy", "label.npy", "path.bin"):
        assert (inline / fname).read_bytes() == (dest / fname).read_bytes()


# ------------------------------------------------------------------------ bad input


BAD = {
    "empty.jpg": b"",
    "text.jpg": b"this is a text file, not a JPEG\n" * 8,
    "truncated.jpg": None,  # filled in below
}


def _bad_tree(root: Path, bad_name: str) -> Path:
    _make_tree(root, per_class=2)
    payload = BAD[bad_name]
    if payload is None:
        full = (root / "dog" / "000.jpg").read_bytes()
        payload = full[: len(full) * 2 // 3]
    (root / "Cat" / bad_name).write_bytes(payload)
    return root


@pytest.mark.parametrize("bad_name", sorted(BAD))
def test_bad_input_raises(tmp_path, bad_name):
    reader = ImageFolderReader(_bad_tree(tmp_path / "src", bad_name))
    dest = tmp_path / "out.slip"
    with pytest.raises(CacheBuildError, match=bad_name):
        build_cache(reader, dest, progress=False, num_workers=2)
    assert not dest.exists()
    # Nothing left but the failure record the ranks waiting on this build raise
    # (slipstream.cache.build_lock): no temporary folder, no lock file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.slip.failed.json", "src"]


@pytest.mark.parametrize("bad_name", sorted(BAD))
def test_bad_input_skipped(tmp_path, bad_name):
    reader = ImageFolderReader(_bad_tree(tmp_path / "src", bad_name))
    dest = build_cache(reader, tmp_path / "out.slip", on_error="skip", progress=False)
    cache = SlipCache.open(dest)
    skipped = cache.manifest["build"]["skipped"]
    bad_index = next(i for i, (p, _) in enumerate(reader.samples) if p.endswith(bad_name))
    assert [(s["index"], Path(s["name"]).name) for s in skipped] == [(bad_index, bad_name)]
    assert skipped[0]["reason"]
    assert len(cache) == len(reader) - 1
    kept = [i for i in range(len(reader)) if i != bad_index]
    assert cache.numbers("index").tolist() == kept  # the source index, not the cache index
    for j, i in enumerate(kept):
        assert cache.string("path", j) == reader.read_sample(i)["path"]


# ------------------------------------------------------------------- open checks


@pytest.fixture
def cache_copy(built, tmp_path) -> Path:
    return _copy_cache(built[1], tmp_path / "copy.slip")


def _truncate(path: Path, nbytes: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - nbytes)


@pytest.mark.parametrize("fname", ["image.bin", "image.meta.npy", "path.offsets.npy", "label.npy"])
def test_truncated_file(cache_copy, fname):
    _truncate(cache_copy / fname, 1)
    with pytest.raises(CacheFormatError, match=rf"{fname} .*bytes.*records"):
        SlipCache.open(cache_copy)


def test_missing_file(cache_copy):
    (cache_copy / "image.meta.npy").unlink()
    with pytest.raises(CacheFormatError, match=r"image\.meta\.npy.*missing"):
        SlipCache.open(cache_copy)


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(changes)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_wrong_version(cache_copy):
    _edit_manifest(cache_copy, version=99)
    with pytest.raises(CacheFormatError, match=r"manifest\.json.*version 99 found.*\[1, 2, 3\]"):
        SlipCache.open(cache_copy)


def test_wrong_format(cache_copy):
    _edit_manifest(cache_copy, format="mds")
    with pytest.raises(CacheFormatError, match=r"manifest\.json: format 'mds'"):
        SlipCache.open(cache_copy)


def test_not_a_cache(tmp_path):
    with pytest.raises(CacheFormatError, match="no slip cache"):
        SlipCache.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CacheFormatError, match="unreadable manifest"):
        SlipCache.open(tmp_path)


# ----------------------------------------------------------------- atomic builds


class _InterruptingReader(ImageFolderReader):
    def __init__(self, root, stop_at: int) -> None:
        super().__init__(root)
        self.stop_at = stop_at

    def read_sample(self, index):
        if index == self.stop_at:
            raise KeyboardInterrupt
        return super().read_sample(index)


@pytest.mark.parametrize("num_workers", [0, 3])
def test_interrupted_build(tree, tmp_path, num_workers):
    dest = tmp_path / "out.slip"
    with pytest.raises(KeyboardInterrupt):
        build_cache(
            _InterruptingReader(tree, stop_at=7), dest, num_workers=num_workers, progress=False
        )
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(CacheFormatError):
        SlipCache.open(dest)
    reader = ImageFolderReader(tree)
    assert build_cache(reader, dest, progress=False) == dest
    assert len(SlipCache.open(dest)) == len(reader)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_tmp_cleaned(tree, tmp_path):
    dest = tmp_path / "out.slip"
    stale = tmp_path / f"out.slip.tmp-{_dead_pid()}-deadbeef"
    stale.mkdir()
    (stale / "image.bin").write_bytes(b"partial")
    live = tmp_path / f"out.slip.tmp-{os.getppid()}-cafe0001"  # a running process's build
    live.mkdir()
    other = tmp_path / "other.slip.tmp-1-00"
    other.mkdir()
    build_cache(ImageFolderReader(tree), dest, progress=False)
    assert not stale.exists()
    assert live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.slip", live.name, other.name])


def test_existing_cache_reused_or_overwritten(tree, tmp_path):
    reader = ImageFolderReader(tree)
    dest = build_cache(reader, tmp_path / "out.slip", progress=False)
    stamp = (dest / "manifest.json").stat().st_mtime_ns
    created = SlipCache.open(dest).manifest["build"]["created_unix"]
    assert build_cache(reader, dest, progress=False) == dest
    assert (dest / "manifest.json").stat().st_mtime_ns == stamp
    build_cache(reader, dest, progress=False, overwrite=True)
    assert SlipCache.open(dest).manifest["build"]["created_unix"] != created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.slip"]
    # A damaged cache is an error unless the caller asks for a rebuild.
    _truncate(dest / "image.bin", 10)
    with pytest.raises(CacheBuildError, match="overwrite=True"):
        build_cache(reader, dest, progress=False)
    build_cache(reader, dest, progress=False, overwrite=True)
    assert len(SlipCache.open(dest)) == len(reader)
    # A folder that is not a cache is never deleted.
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("...")
    with pytest.raises(CacheBuildError, match="refusing"):
        build_cache(reader, precious, progress=False, overwrite=True)
    assert (precious / "thesis.tex").exists()


# ------------------------------------------------------------ other field types


class _MemoryReader:
    """A reader with every field type, no files behind it."""

    field_types = {"blob": "bytes", "score": "float", "name": "str", "flag": "int"}

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def read_sample(self, index: int) -> dict:
        return {
            "blob": np.arange(index, dtype=np.uint8),  # item 0 is empty
            "score": index / 3,
            "name": f"sample-{index}-\u00e9\u6f22",
            "flag": -index,
        }

    def describe(self, index: int) -> str:
        return f"memory sample {index}"

    def fingerprint(self) -> str:
        return f"memory-{self.n}"


def test_generic_reader(tmp_path):
    dest = build_cache(_MemoryReader(20), tmp_path / "mem", progress=False)
    cache = SlipCache.open(dest)
    assert cache.image_fields == []
    assert cache.numbers("score").dtype == np.dtype("<f8")
    for i in range(20):
        assert cache.item_bytes("blob", i).tolist() == list(range(i))
        sample = cache.sample(i)
        assert sample == {
            "blob": bytes(range(i)),
            "score": i / 3,
            "name": f"sample-{i}-\u00e9\u6f22",
            "flag": -i,
        }
    assert cache.manifest["source"]["kind"] == "_MemoryReader"
    with pytest.raises(IndexError):
        cache.sample(20)
    with pytest.raises(TypeError):
        cache.meta("name")
    with pytest.raises(KeyError):
        cache.data("nope")


# ------------------------------------------------------------- original layout


def _original_meta(jpegs: list[bytes], sizes: list[tuple[int, int]]) -> np.ndarray:
    dtype = [("data_ptr", "<u8"), ("data_size", "<u8"), ("height", "<u4"), ("width", "<u4")]
    meta = np.zeros(len(jpegs), dtype=dtype)
    ptr = 0
    for i, (jpeg, (h, w)) in enumerate(zip(jpegs, sizes, strict=True)):
        meta[i] = (ptr, len(jpeg), h, w)
        ptr += len(jpeg)
    return meta


def _write_original_cache(parent: Path, jpegs: list[bytes], sizes: list[tuple[int, int]]) -> None:
    """The original slipstream's layout: parent/.slipstream/, no format/files keys."""
    folder = parent / ".slipstream"
    folder.mkdir(parents=True)
    n = len(jpegs)
    (folder / "image.bin").write_bytes(b"".join(jpegs))
    np.save(folder / "image.meta.npy", _original_meta(jpegs, sizes))
    np.save(folder / "label.npy", np.arange(n) % 3)
    names = [f"img_{i}.jpg".encode() for i in range(n)]
    offsets = np.zeros((n, 2), dtype=np.uint64)
    offsets[:, 1] = [len(s) for s in names]
    offsets[1:, 0] = np.cumsum(offsets[:-1, 1])
    (folder / "path.bin").write_bytes(b"".join(names))
    np.save(folder / "path.offsets.npy", offsets)
    manifest = {
        "version": 1,
        "num_samples": n,
        "fields": {
            "image": {
                "type": "ImageBytes",
                "num_samples": n,
                "max_size": int(max(map(len, jpegs)) * 1.2),
            },
            "label": {"type": "int", "num_samples": n},
            "path": {"type": "str", "num_samples": n},
        },
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_original_layout(tmp_path):
    crops = _photo_crops(5, seed=3)
    jpegs = [_encode(Image.fromarray(c)) for c in crops]
    _write_original_cache(tmp_path / "ds", jpegs, [c.shape[:2] for c in crops])
    (tmp_path / "ds" / "my_data.txt").write_text("user data next to the cache")
    cache = SlipCache.open(tmp_path / "ds")
    assert cache.path == tmp_path / "ds" / ".slipstream"
    with pytest.raises(CacheBuildError, match="refusing"):  # never deletes the user's folder
        build_cache(_MemoryReader(3), tmp_path / "ds", progress=False, overwrite=True)
    assert (tmp_path / "ds" / "my_data.txt").exists()
    assert build_cache(_MemoryReader(3), tmp_path / "ds", progress=False) == tmp_path / "ds"
    assert SlipCache.open(tmp_path / "ds" / ".slipstream").num_samples == 5
    assert cache.field_types == {"image": "ImageBytes", "label": "int", "path": "str"}
    for i, (jpeg, crop) in enumerate(zip(jpegs, crops, strict=True)):
        assert cache.item_bytes("image", i).tobytes() == jpeg
        assert (cache.meta("image")[i]["height"], cache.meta("image")[i]["width"]) == crop.shape[:2]
        assert cache.sample(i) == {"image": jpeg, "label": i % 3, "path": f"img_{i}.jpg"}
    # Without recorded sizes, a truncated .bin is caught from the metadata table.
    folder = tmp_path / "ds" / ".slipstream"
    (folder / "image.meta.npy").write_bytes((folder / "image.meta.npy").read_bytes()[:-5])
    with pytest.raises(CacheFormatError, match=r"image\.meta\.npy"):
        SlipCache.open(tmp_path / "ds")
    np.save(folder / "image.meta.npy", _original_meta(jpegs, [c.shape[:2] for c in crops]))
    assert len(SlipCache.open(tmp_path / "ds")) == 5
    _truncate(folder / "image.bin", 1)
    with pytest.raises(CacheFormatError, match=r"image\.bin is \d+ bytes.*truncated"):
        SlipCache.open(tmp_path / "ds")


def test_manifest_field_name_cannot_escape(cache_copy):
    manifest = json.loads((cache_copy / "manifest.json").read_text())
    manifest["fields"]["../evil"] = manifest["fields"].pop("label")
    (cache_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheFormatError, match="invalid field name"):
        SlipCache.open(cache_copy)


def test_recorded_companion_file_checked(cache_copy):
    manifest = json.loads((cache_copy / "manifest.json").read_text())
    (cache_copy / "image_yuv420.bin").write_bytes(b"\0" * 10)
    manifest["fields"]["image"]["files"]["image_yuv420.bin"] = 12
    (cache_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CacheFormatError, match=r"image_yuv420\.bin .*10 bytes.*records 12"):
        SlipCache.open(cache_copy)


def test_progress_bar(tree, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SLIPSTREAM_PROGRESS", "1")  # stderr is not a terminal under pytest
    build_cache(ImageFolderReader(tree), tmp_path / "p.slip", progress=True)
    assert "building p.slip" in capsys.readouterr().err
