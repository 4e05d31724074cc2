"""Raw pixels stay raw: non-JPEG sources are stored as raw RGB items and read back exactly.

Sources: FFCV betons written by FFCV itself with ``write_mode`` raw and smart (the
fixtures of tests/fixtures/ffcv, made by ``make_fixtures.py``: raw items and a mix of JPEG
and raw), a LitData dataset of PIL images written with ``litdata.optimize``, and an image
folder of PNG, WebP (lossless), BMP and JPEG files. Oracles: the source pixels (numpy),
Pillow's crop + resize (the kernel's resize is Pillow's ``BILINEAR`` with a box, exactly),
and the JPEG bytes as written.
"""

from __future__ import annotations

import functools
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from loader_engines import has_dali
from numpy.testing import assert_array_equal
from PIL import Image

from slipstream import SlipstreamDataset, SlipstreamLoader
from slipstream.cache import SlipCache, build_cache
from slipstream.cache.format import (
    ITEM_FORMAT_JPEG,
    ITEM_FORMAT_RAW,
    RAW_FORMAT_VERSION,
    item_format_file,
)
from slipstream.cache.raw_items import raw_pixels
from slipstream.cache.reader import CacheFormatError
from slipstream.native import NativeDecoder
from slipstream.pipelines import DecodeCenterCrop, DecodeOnly, ImagePipeline
from slipstream.readers import FfcvFile, ImageFolderReader

FFCV = Path(__file__).parent / "fixtures" / "ffcv"


def _pixels(seed: int, h: int, w: int) -> np.ndarray:
    """A smooth image with noise: not JPEG-friendly, so any lossy step shows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 5 + seed, y * 7, (x + y) * 3], axis=-1)
    return ((base + rng.integers(0, 40, (h, w, 3))) % 256).astype(np.uint8)


def _png_pixels(png: np.ndarray) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png.tobytes())).convert("RGB"))


def _full_views(store, field: str, ids: list[int], flip: bool = False) -> list[np.ndarray]:
    """Each item decoded by the native kernel with the window = the whole image, same size."""
    meta, codes = store.meta(field), store.item_formats(field)
    decoder = NativeDecoder(2)
    out = []
    for i in ids:
        h, w = int(meta["height"][i]), int(meta["width"][i])
        item = np.ascontiguousarray(store.item_bytes(field, i))
        pixels = np.empty((1, h, w, 3), np.uint8)
        failures = decoder.decode_views_batch(
            item,
            np.zeros(1, np.uint64),
            np.full(1, item.size, np.uint64),
            np.array([[0, 0, h, w]], np.int32),
            np.full(1, int(flip), np.uint8),
            [pixels],
            "jpeg",
            np.array([h], np.int32),
            np.array([w], np.int32),
            formats=np.array([codes[i]], np.uint8),
        )
        assert failures == []
        out.append(pixels[0])
    return out


# ----------------------------------------------------------------------------- FFCV


@pytest.mark.parametrize("name", ["raw", "smart"])
def test_ffcv_raw_items_are_exact_in_place_and_in_a_cache(name, tmp_path):
    beton = FfcvFile(FFCV / f"{name}.beton")
    with np.load(FFCV / f"{name}.expected.npz") as npz:
        expected = dict(npz)
    cache = SlipCache.open(build_cache(beton, tmp_path / "cache", progress=False))
    raw = beton.modes("image") == 1
    assert raw.any()
    assert_array_equal(cache.item_formats("image"), np.where(raw, ITEM_FORMAT_RAW, 0))
    assert cache.manifest["version"] == RAW_FORMAT_VERSION
    assert cache.manifest["fields"]["image"]["format"] == ("raw" if raw.all() else "mixed")
    assert cache.manifest["build"]["reencoded"] == []
    ids = list(range(len(beton)))
    for store in (beton, cache):
        views = _full_views(store, "image", ids)
        for i in ids:
            source = _png_pixels(expected[f"image/png/{i}"])
            if raw[i]:  # ds[i]'s bytes are the pixels; the identity crop gives them back
                assert_array_equal(raw_pixels(store, "image", i), source)
                assert_array_equal(views[i], source)
            else:  # a JPEG item stays the JPEG FFCV wrote
                jpeg = expected[f"image/jpeg/{i}"].tobytes()
                assert store.item_bytes("image", i).tobytes() == jpeg
                assert raw_pixels(store, "image", i) is None


def test_ffcv_beton_reads_in_place_through_the_dataset(tmp_path):
    ds = SlipstreamDataset(FFCV / "smart.beton", cache_dir=tmp_path / "unused", progress=False)
    assert isinstance(ds.cache, FfcvFile)
    assert not (tmp_path / "unused").exists()
    with np.load(FFCV / "smart.expected.npz") as npz:
        expected = dict(npz)
    decoded = SlipstreamDataset(
        FFCV / "smart.beton", decode_images=True, to_pil=False, progress=False
    )
    for i in np.flatnonzero(ds.cache.modes("image") == 1).tolist():
        source = _png_pixels(expected[f"image/png/{i}"])
        assert ds[i]["image"] == source.tobytes()
        assert_array_equal(decoded[i]["image"].permute(1, 2, 0).numpy(), source)


# -------------------------------------------------------------------------- LitData


def _litdata_sample(i: int, src: str) -> dict:
    with np.load(src) as arrays:
        return {"image": Image.fromarray(arrays[f"arr_{i}"]), "label": i}


def _make_litdata(out: Path, images: list[np.ndarray]) -> Path:
    from litdata import optimize

    src = out.parent / "litdata_src.npz"
    np.savez(src, *images)
    optimize(
        fn=functools.partial(_litdata_sample, src=str(src)),
        inputs=list(range(len(images))),
        output_dir=str(out),
        chunk_bytes="64KB",
        num_workers=1,
        mode="overwrite",
    )
    return out


def test_litdata_pil_images_are_exact(tmp_path):
    sizes = [(24, 24), (17, 31), (40, 22), (33, 33)]
    images = [_pixels(k, h, w) for k, (h, w) in enumerate(sizes)]
    root = _make_litdata(tmp_path / "optimized", images)
    ds = SlipstreamDataset(root, cache_dir=tmp_path / "caches", progress=False)
    assert ds.cache.manifest["fields"]["image"]["format"] == "raw"
    by_label = {int(ds[i]["label"]): i for i in range(len(ds))}
    for label, image in enumerate(images):
        i = by_label[label]
        assert ds[i]["image"] == image.tobytes()  # raw bytes: the source pixels
        assert_array_equal(raw_pixels(ds.cache, "image", i), image)
    # the loader: a window that is the whole (square) image at its own size is exact
    pipelines = {"image": ImagePipeline(DecodeCenterCrop(24, crop_ratio=1.0), dtype="uint8")}
    loader = SlipstreamLoader(ds, 4, pipelines, device="cpu", shuffle=False, num_workers=2)
    batch = next(iter(loader))
    first = by_label[0]
    position = batch["index"].tolist().index(first) if "index" in batch else first
    assert_array_equal(batch["image"][position].permute(1, 2, 0).numpy(), images[0])


# ---------------------------------------------------------------------- image folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("raw_folder")
    sources: dict[str, np.ndarray] = {}
    for k, (ext, size) in enumerate(
        [("png", 32), ("webp", 32), ("bmp", 32), ("jpg", 32), ("png", (27, 41)), ("jpg", 48)]
    ):
        h, w = (size, size) if isinstance(size, int) else size
        pixels = _pixels(k, h, w)
        path = root / "a" / f"{k}.{ext}"
        path.parent.mkdir(exist_ok=True)
        options = {"lossless": True} if ext == "webp" else {"quality": 90} if ext == "jpg" else {}
        Image.fromarray(pixels).save(path, **options)
        sources[f"a/{k}.{ext}"] = pixels
    return root, sources


@pytest.fixture(scope="module")
def folder_cache(folder, tmp_path_factory) -> SlipCache:
    root, _ = folder
    dest = tmp_path_factory.mktemp("raw_caches") / "folder.slip"
    return SlipCache.open(build_cache(ImageFolderReader(root), dest, progress=False))


def test_folder_png_webp_bmp_are_exact_jpegs_unchanged(folder, folder_cache):
    root, sources = folder
    cache = folder_cache
    assert cache.manifest["fields"]["image"]["format"] == "mixed"
    assert cache.manifest["build"]["reencoded"] == []
    codes = cache.item_formats("image")
    for i in range(len(cache)):
        rel = cache.string("path", i)
        if rel.endswith(".jpg"):
            assert codes[i] == ITEM_FORMAT_JPEG
            assert cache.item_bytes("image", i).tobytes() == (root / rel).read_bytes()
        else:
            assert codes[i] == ITEM_FORMAT_RAW
            assert_array_equal(raw_pixels(cache, "image", i), sources[rel])
            assert cache.meta("image")["data_size"][i] == sources[rel].size


def test_crops_equal_pillow_crop_resize(folder_cache):
    """Random windows, several output sizes, flips: Pillow's box resize, bit for bit."""
    cache = folder_cache
    rng = np.random.default_rng(3)
    decoder = NativeDecoder(2)
    ids = [i for i in range(len(cache)) if cache.item_formats("image")[i] == ITEM_FORMAT_RAW]
    meta = cache.meta("image")
    for out_h, out_w in ((16, 16), (24, 20), (64, 48)):  # down- and upsampling
        windows, flips, items = [], [], []
        for i in ids:
            h, w = int(meta["height"][i]), int(meta["width"][i])
            wh, ww = int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1))
            y, x = int(rng.integers(0, h - wh + 1)), int(rng.integers(0, w - ww + 1))
            windows.append([y, x, wh, ww])
            flips.append(int(rng.integers(0, 2)))
            items.append(np.ascontiguousarray(cache.item_bytes("image", i)))
        sizes = np.array([item.size for item in items], np.uint64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.uint64)
        out = np.empty((len(ids), out_h, out_w, 3), np.uint8)
        failures = decoder.decode_views_batch(
            np.concatenate(items),
            offsets,
            sizes,
            np.array(windows, np.int32),
            np.array(flips, np.uint8),
            [out],
            "raw",
            meta["height"][ids].astype(np.int32),
            meta["width"][ids].astype(np.int32),
        )
        assert failures == []
        for k, i in enumerate(ids):
            y, x, wh, ww = windows[k]
            ref = Image.fromarray(raw_pixels(cache, "image", i)).resize(
                (out_w, out_h), Image.BILINEAR, box=(x, y, x + ww, y + wh)
            )
            want = np.asarray(ref)[:, ::-1] if flips[k] else np.asarray(ref)
            assert_array_equal(out[k], want)


def test_float_output_and_multi_view_match_uint8(folder_cache):
    cache = folder_cache
    ids = np.arange(len(cache))
    meta = cache.meta("image")
    items = [np.ascontiguousarray(cache.item_bytes("image", int(i))) for i in ids]
    sizes = np.array([item.size for item in items], np.uint64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.uint64)
    heights, widths = meta["height"].astype(np.int32), meta["width"].astype(np.int32)
    side = np.minimum(heights, widths)
    windows = np.stack(
        [np.stack([np.zeros_like(side), np.zeros_like(side), side, side], -1)] * 2, 1
    ).astype(np.int32)
    windows[:, 1, 2:] //= 2  # view 1: the top-left quarter
    flips = np.array([[0, 1]] * len(ids), np.uint8)
    decoder = NativeDecoder(2)
    codes = np.ascontiguousarray(cache.item_formats("image"))
    args = (np.concatenate(items), offsets, sizes, windows, flips)
    u8 = [np.empty((len(ids), 20, 20, 3), np.uint8) for _ in range(2)]
    f32 = [np.empty((len(ids), 20, 20, 3), np.float32) for _ in range(2)]
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    common = {"heights": heights, "widths": widths, "formats": codes}
    assert decoder.decode_views_batch(*args, u8, "jpeg", **common) == []
    assert (
        decoder.decode_views_batch(
            *args, f32, "jpeg", out_dtype="float32", mean=mean, std=std, **common
        )
        == []
    )
    for k in range(2):
        single = np.empty((len(ids), 20, 20, 3), np.uint8)
        decoder.decode_views_batch(
            args[0], offsets, sizes, np.ascontiguousarray(windows[:, k]),
            np.ascontiguousarray(flips[:, k]), [single], "jpeg", **common,
        )  # fmt: skip
        assert_array_equal(u8[k], single)  # a view of a multi-view call == its own call
        want = (u8[k].astype(np.float32) / 255 - np.float32(mean)) / np.float32(std)
        np.testing.assert_allclose(f32[k], want, atol=1e-5)


def test_loader_full_resolution_and_identity_crop_are_exact(folder, folder_cache):
    _, sources = folder
    ds = SlipstreamDataset(folder_cache.path)
    loader = SlipstreamLoader(
        ds,
        3,
        {"image": ImagePipeline(DecodeOnly())},
        device="cpu",
        shuffle=False,
        num_workers=2,
    )
    seen = 0
    for batch in loader:
        for image, index in zip(batch["image"], batch["index"].tolist(), strict=True):
            rel = folder_cache.string("path", index)
            if not rel.endswith(".jpg"):
                assert_array_equal(image.permute(1, 2, 0).numpy(), sources[rel])
                seen += 1
    assert seen == 4


ENGINES = [{"backend": "native"}]
if has_dali():
    ENGINES.append({"backend": "dali", "decode_device": "cpu"})


@pytest.mark.parametrize("engine", ENGINES, ids=lambda e: e["backend"])
def test_engines_identity_center_crop_exact_and_bit_identical(engine, folder, folder_cache):
    _, sources = folder
    ds = SlipstreamDataset(folder_cache.path)
    pipelines = {"image": ImagePipeline(DecodeCenterCrop(32, crop_ratio=1.0), dtype="uint8")}
    loader = SlipstreamLoader(
        ds, 4, pipelines, device="cpu", shuffle=False, num_workers=2, **engine
    )
    for batch in loader:
        for image, index in zip(batch["image"], batch["index"].tolist(), strict=True):
            rel = folder_cache.string("path", index)
            if rel.endswith((".png", ".webp", ".bmp")) and sources[rel].shape[:2] == (32, 32):
                assert_array_equal(image.permute(1, 2, 0).numpy(), sources[rel])


@pytest.mark.skipif(not has_dali(), reason="needs nvidia.dali")
def test_dali_cpu_equals_native_on_a_mixed_field(folder_cache):
    from slipstream.pipelines import DecodeRandomResizedCrop

    ds = SlipstreamDataset(folder_cache.path)
    pipelines = {
        "image": ImagePipeline(DecodeRandomResizedCrop(24), flip_probability=0.5, dtype="uint8"),
        "float": ImagePipeline(DecodeRandomResizedCrop(16), dtype="float32", field="image", view=1),
    }
    epochs = []
    for engine in ENGINES:
        loader = SlipstreamLoader(ds, 4, pipelines, device="cpu", seed=5, num_workers=2, **engine)
        epochs.append([{k: v.clone() for k, v in b.items()} for b in loader])
    for a, b in zip(*epochs, strict=True):
        for key in a:
            assert np.array_equal(a[key].numpy(), b[key].numpy()), key


def test_yuv420_companion_of_raw_items(folder_cache):
    from slipstream.cache.yuv420 import build_yuv420
    from slipstream.native.yuv420 import rgb_to_yuv420

    companion = build_yuv420(folder_cache, "image", progress=False)
    meta = companion.meta
    for i in np.flatnonzero(folder_cache.item_formats("image") == ITEM_FORMAT_RAW).tolist():
        start, size = int(meta["data_ptr"][i]), int(meta["data_size"][i])
        want = rgb_to_yuv420(np.ascontiguousarray(raw_pixels(folder_cache, "image", i)))
        assert_array_equal(np.asarray(companion.data[start : start + size]), want)


def test_jpeg_storage_option_reencodes(folder, tmp_path):
    root, sources = folder
    dest = build_cache(
        ImageFolderReader(root),
        tmp_path / "lossy",
        progress=False,
        image_storage="jpeg",
        jpeg_quality=90,
    )
    cache = SlipCache.open(dest)
    assert cache.item_formats("image") is None
    assert cache.manifest["fields"]["image"]["format"] == "jpeg"
    assert cache.manifest["version"] == 2  # all-JPEG caches keep the version older readers read
    assert len(cache.manifest["build"]["reencoded"]) == 4
    with pytest.raises(ValueError, match="image_storage"):
        build_cache(ImageFolderReader(root), tmp_path / "bad", image_storage="png")


def test_dataset_storage_option_names_its_cache(folder, tmp_path):
    """SlipstreamDataset: raw by default (exact, ``-v3``), JPEG on request (``-jpeg90``)."""
    from slipstream import SlipstreamDataset

    root, sources = folder
    exact = SlipstreamDataset(root, cache_dir=tmp_path, progress=False)
    lossy = SlipstreamDataset(
        root, cache_dir=tmp_path, progress=False, image_storage="jpeg", jpeg_quality=90
    )
    assert exact.cache_path.name.endswith("-v3")
    assert lossy.cache_path.name.endswith("-v3-jpeg90") and exact.cache_path != lossy.cache_path
    assert lossy.cache.item_formats("image") is None  # every item a JPEG
    for i in range(len(lossy)):
        rel = lossy.cache.string("path", i)
        want = sources[rel].astype(np.int16)
        item = lossy.cache.item_bytes("image", i).tobytes()
        assert item[:2] == b"\xff\xd8"
        with Image.open(io.BytesIO(item)) as image:
            diff = np.abs(np.asarray(image.convert("RGB")).astype(np.int16) - want)
        # Lossy: these test images are random noise, JPEG's worst case (a photo at q90 is
        # within ~1-2 levels); the exact cache below holds the very pixels.
        assert 0 < diff.mean() < 16, rel
        if not rel.endswith(".jpg"):
            assert exact.cache.string("path", i) == rel
            assert_array_equal(raw_pixels(exact.cache, "image", i), sources[rel])
    with pytest.raises(ValueError, match="image_storage"):
        SlipstreamDataset(root, cache_dir=tmp_path, image_storage="png")
    with pytest.raises(ValueError, match="jpeg_quality"):
        SlipstreamDataset(root, cache_dir=tmp_path, image_storage="jpeg", jpeg_quality=101)


def test_damaged_format_file_is_a_clear_error(folder_cache, tmp_path):
    copy = tmp_path / "copy.slip"
    shutil.copytree(folder_cache.path, copy)
    np.save(copy / item_format_file("image"), np.zeros(2, np.uint8))
    with pytest.raises(CacheFormatError, match=r"image\.format\.npy"):
        SlipCache.open(copy).item_formats("image")


def test_nvjpeg_refuses_raw_items_clearly():
    from slipstream.decode.errors import NoDecodeEngineError

    pytest.importorskip("nvidia.dali")
    from slipstream.dali.ops import decode_crop

    with pytest.raises(NoDecodeEngineError, match="nvJPEG"):
        decode_crop(None, None, 4, device="mixed", format="raw", image_size=[4, 4])


@pytest.mark.parametrize("decode_device", [None, "torch"], ids=["native-yuv420", "torch-yuv420"])
def test_yuv420_engines_read_the_companion_of_raw_items(decode_device, folder_cache):
    """Both YUV420 engines read the companion built from raw items: each equals the kernel."""
    from slipstream.native.yuv420 import decode_crop_yuv420, rgb_to_yuv420

    ds = SlipstreamDataset(folder_cache.path)
    pipelines = {"image": ImagePipeline(DecodeCenterCrop(16, crop_ratio=1.0), dtype="uint8")}
    extra = {"decode_device": decode_device} if decode_device else {}
    extra["backend"] = "native"
    loader = SlipstreamLoader(
        ds, 6, pipelines, device="cpu", shuffle=False, image_format="yuv420", **extra
    )
    batch = next(iter(loader))
    meta = folder_cache.meta("image")
    for image, index in zip(batch["image"], batch["index"].tolist(), strict=True):
        pixels = raw_pixels(folder_cache, "image", index)
        if pixels is None:
            continue
        h, w = int(meta["height"][index]), int(meta["width"][index])
        side = min(h, w)
        window = [(h - side) // 2, (w - side) // 2, side, side]
        item = rgb_to_yuv420(np.ascontiguousarray(pixels))
        want = decode_crop_yuv420(item, h, w, window, (16, 16))
        got = image.permute(1, 2, 0).numpy()
        if decode_device is None:
            assert_array_equal(got, want)
        else:  # the torch engine: within a level of the kernel
            assert np.abs(got.astype(int) - want).max() <= 2


@pytest.mark.skipif(not has_dali(), reason="needs nvidia.dali")
def test_hybrid_cpu_equals_native_on_a_mixed_field(folder_cache):
    """native + DALI CPU operator, each on part of every batch: the native engine's pixels."""
    from slipstream.pipelines import DecodeRandomResizedCrop

    ds = SlipstreamDataset(folder_cache.path)
    pipelines = {"image": ImagePipeline(DecodeRandomResizedCrop(24), dtype="uint8")}
    epochs = []
    for engine in ({"backend": "native"}, {"backend": "dali", "decode_device": "hybrid"}):
        loader = SlipstreamLoader(ds, 4, pipelines, device="cpu", seed=2, num_workers=2, **engine)
        epochs.append([{k: v.clone() for k, v in b.items()} for b in loader])
    for a, b in zip(*epochs, strict=True):
        for key in a:
            assert np.array_equal(a[key].numpy(), b[key].numpy()), key


def test_decode_check_skips_raw_items_that_start_like_a_jpeg(tmp_path):
    """A raw item whose first pixel is (255, 216, x) is pixels, not a broken JPEG."""
    from slipstream.cache.decode_check import check_cache_decode

    pixels = _pixels(9, 12, 12)
    pixels[0, 0] = (0xFF, 0xD8, 0xFF)
    (tmp_path / "src" / "a").mkdir(parents=True)
    Image.fromarray(pixels).save(tmp_path / "src" / "a" / "x.png")
    cache = SlipCache.open(build_cache(ImageFolderReader(tmp_path / "src"), tmp_path / "c.slip"))
    assert cache.item_bytes("image", 0)[:3].tobytes() == b"\xff\xd8\xff"
    assert check_cache_decode(cache, progress=False) == []


def test_normalization_stats_read_raw_items(tmp_path):
    from slipstream.stats import compute_normalization_stats

    images = [_pixels(k, 16, 20) for k in range(3)]
    for k, image in enumerate(images):
        (tmp_path / "src" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(tmp_path / "src" / "a" / f"{k}.png")
    cache = SlipCache.open(build_cache(ImageFolderReader(tmp_path / "src"), tmp_path / "c.slip"))
    stats = compute_normalization_stats(cache, verbose=False)
    pixels = np.stack(images).reshape(-1, 3) / 255.0
    np.testing.assert_allclose(stats["mean"], pixels.mean(0), atol=1e-6)
    np.testing.assert_allclose(stats["std"], pixels.std(0), atol=1e-6)
