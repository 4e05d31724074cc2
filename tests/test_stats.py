"""compute_normalization_stats against numpy over PIL decodes and over the stored YUV420 planes.

Tolerances: Pillow and the native kernel both decode with libjpeg-turbo's accurate integer
DCT, but builds may differ by +-1 level on some pixels; over a dataset that moves a channel
mean by far less than 1e-3 (of the [0, 1] range), the bound checked here (on this machine
the two decodes of the test photos are identical, 0 pixels differ). Against the same
decoded pixels summed in numpy the result agrees to float64 rounding (1e-9).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from slipstream import compute_normalization_stats
from slipstream.cache.yuv420 import companion_folder, open_yuv420
from slipstream.native import decode_full, yuv420_to_rgb
from slipstream.stats import ImageStatsError


def _numpy_stats(images) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std per channel over every pixel of every image, in [0, 1]."""
    total = np.zeros(3)
    total_sq = np.zeros(3)
    count = 0
    for image in images:
        pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3) / 255.0
        total += pixels.sum(axis=0)
        total_sq += (pixels**2).sum(axis=0)
        count += len(pixels)
    mean = total / count
    return mean, np.sqrt(total_sq / count - mean**2)


def _check(stats, mean, std, tol) -> None:
    assert set(stats) == {"mean", "std"}
    assert all(isinstance(v, float) for v in stats["mean"] + stats["std"])
    np.testing.assert_allclose(stats["mean"], mean, atol=tol, rtol=0)
    np.testing.assert_allclose(stats["std"], std, atol=tol, rtol=0)


def test_jpeg_stats_match_pil_and_numpy(photo_dataset):
    stats = compute_normalization_stats(photo_dataset, verbose=False)
    jpegs = [bytes(photo_dataset.cache.item_bytes("image", i)) for i in range(len(photo_dataset))]
    pil = (Image.open(io.BytesIO(j)).convert("RGB") for j in jpegs)
    _check(stats, *_numpy_stats(pil), tol=1e-3)
    _check(stats, *_numpy_stats(decode_full(j) for j in jpegs), tol=1e-9)
    # any thread count and task size, a path or the cache itself: the same numbers
    again = compute_normalization_stats(
        str(photo_dataset.cache_path), batch_size=7, num_threads=1, verbose=False
    )
    assert again == stats


def test_subset_is_random_and_keyed(photo_dataset):
    n = len(photo_dataset)
    full = compute_normalization_stats(photo_dataset, verbose=False)
    assert compute_normalization_stats(photo_dataset, num_samples=n + 5, verbose=False) == full
    a = compute_normalization_stats(photo_dataset, num_samples=24, seed=1, verbose=False)
    assert a == compute_normalization_stats(photo_dataset, num_samples=24, seed=1, verbose=False)
    assert a != compute_normalization_stats(photo_dataset, num_samples=24, seed=2, verbose=False)
    first = [decode_full(photo_dataset.cache.item_bytes("image", i)) for i in range(24)]
    assert not np.allclose(a["mean"], _numpy_stats(first)[0], atol=1e-6)  # not the first 24
    np.testing.assert_allclose(a["mean"], full["mean"], atol=0.1)


def _companion_items(dataset):
    comp = open_yuv420(companion_folder(dataset.cache), "image", len(dataset))
    for record in comp.meta:
        start, size = int(record["data_ptr"]), int(record["data_size"])
        yield comp.data[start : start + size], int(record["height"]), int(record["width"])


def test_yuv420_rgb_stats(yuv_dataset):
    stats = compute_normalization_stats(yuv_dataset, image_format="yuv420", verbose=False)
    items = list(_companion_items(yuv_dataset))
    _check(stats, *_numpy_stats(yuv420_to_rgb(*item) for item in items), tol=1e-9)

    def pil_rgb(item, h, w):  # Pillow's own YCbCr (JPEG, BT.601 full range) -> RGB
        ph, pw = h + h % 2, w + w % 2
        q = (ph // 2) * (pw // 2)
        y = item[: ph * pw].reshape(ph, pw)
        u = item[ph * pw : ph * pw + q].reshape(ph // 2, pw // 2)
        v = item[ph * pw + q : ph * pw + 2 * q].reshape(ph // 2, pw // 2)
        rows, cols = np.arange(h)[:, None] // 2, np.arange(w)[None, :] // 2
        ycc = np.stack([y[:h, :w], u[rows, cols], v[rows, cols]], axis=-1)
        return Image.frombytes("YCbCr", (w, h), ycc.tobytes()).convert("RGB")

    # chroma upsampling differs (the kernel's triangle filter vs nearest): means agree
    # closely, stds within a few 1e-3
    mean, std = _numpy_stats(pil_rgb(*item) for item in items)
    np.testing.assert_allclose(stats["mean"], mean, atol=2e-3, rtol=0)
    np.testing.assert_allclose(stats["std"], std, atol=5e-3, rtol=0)
    jpeg = compute_normalization_stats(yuv_dataset, verbose=False)
    np.testing.assert_allclose(stats["mean"], jpeg["mean"], atol=5e-3, rtol=0)


def test_yuv_colorspace_is_the_stored_planes(yuv_dataset):
    stats = compute_normalization_stats(
        yuv_dataset, image_format="yuv420", colorspace="yuv", verbose=False
    )
    sums, sums_sq, count = np.zeros(3), np.zeros(3), 0
    for item, h, w in _companion_items(yuv_dataset):
        ph, pw = h + h % 2, w + w % 2
        q = (ph // 2) * (pw // 2)
        planes = [item[: ph * pw].reshape(ph, pw)[:h, :w]]
        for start in (ph * pw, ph * pw + q):
            chroma = item[start : start + q].reshape(ph // 2, pw // 2).astype(np.float64)
            # every chroma sample covers the true pixels of its 2x2 block
            weight = (
                np.minimum(2, h - 2 * np.arange(ph // 2))[:, None]
                * np.minimum(2, w - 2 * np.arange(pw // 2))[None, :]
            )
            planes.append((chroma, weight))
        y = planes[0].astype(np.float64) / 255
        sums[0] += y.sum()
        sums_sq[0] += (y**2).sum()
        for c, (chroma, weight) in enumerate(planes[1:], start=1):
            sums[c] += (weight * chroma / 255).sum()
            sums_sq[c] += (weight * (chroma / 255) ** 2).sum()
        count += h * w
    mean = sums / count
    _check(stats, mean, np.sqrt(sums_sq / count - mean**2), tol=1e-9)
    assert stats["std"][1] < stats["std"][0]  # chroma varies less than luma in photos


def test_errors_name_the_sample(corrupt_dataset, short_yuv_item_dataset, photo_dataset):
    dataset, victim = corrupt_dataset
    with pytest.raises(ImageStatsError, match=f"sample {victim} of field 'image'"):
        compute_normalization_stats(dataset, verbose=False)
    dataset, victim = short_yuv_item_dataset
    for colorspace in ("rgb", "yuv"):
        with pytest.raises(ImageStatsError, match=f"sample {victim} "):
            compute_normalization_stats(
                dataset, image_format="yuv420", colorspace=colorspace, verbose=False
            )
    with pytest.raises(ImageStatsError, match='image_format="yuv420"'):
        compute_normalization_stats(photo_dataset, colorspace="yuv", verbose=False)
    with pytest.raises(ImageStatsError, match="YUV420 companion"):
        compute_normalization_stats(photo_dataset, image_format="yuv420", verbose=False)
    with pytest.raises(ValueError, match="image_format"):
        compute_normalization_stats(photo_dataset, image_format="png", verbose=False)
    with pytest.raises(KeyError, match="nope"):
        compute_normalization_stats(photo_dataset, image_field="nope", verbose=False)


def test_an_ffcv_file_read_in_place():
    from pathlib import Path

    from slipstream import SlipstreamDataset

    beton = Path(__file__).parent / "fixtures" / "ffcv" / "all_fields.beton"
    dataset = SlipstreamDataset(beton)
    stats = compute_normalization_stats(dataset, verbose=False)
    jpegs = [bytes(dataset.cache.item_bytes("image", i)) for i in range(len(dataset))]
    _check(stats, *_numpy_stats(Image.open(io.BytesIO(j)).convert("RGB") for j in jpegs), 1e-3)
