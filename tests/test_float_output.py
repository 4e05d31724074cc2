"""The fused float output: the C++ kernel writes normalized float32 / float16 / bfloat16.

Oracle: the uint8 output of the same windows and flips, normalized by torch exactly as
:class:`slipstream.transforms.ImageOutput` does (``x.float() * scale - shift``, then the cast).
float32 must match within 1e-6 (it is bit-identical), float16 / bfloat16 exactly.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
import torch
from loader_engines import engine_params, make_loader
from PIL import Image

skd = pytest.importorskip("skimage.data")

from slipstream.native.decode import NativeDecoder, pixel_lut  # noqa: E402
from slipstream.native.yuv420 import rgb_to_yuv420  # noqa: E402
from slipstream.pipelines import (  # noqa: E402
    DecodeRandomResizedCrop,
    ImagePipeline,
    Normalize,
    supervised_train,
)
from slipstream.transforms import ImageOutput  # noqa: E402

IMAGENET = Normalize()
FLOAT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _torch_normalized(pixels: np.ndarray, mean, std, dtype: str) -> torch.Tensor:
    """``[..., H, W, 3]`` uint8 normalized in torch by ImageOutput itself, back in HWC."""
    pipeline = ImagePipeline(
        crop=DecodeRandomResizedCrop(8),
        normalize=None if mean is None else Normalize(tuple(mean), tuple(std)),
        dtype=dtype,
    )
    out = ImageOutput(pipeline, torch.device("cpu"))
    flat = torch.from_numpy(pixels.reshape(-1, *pixels.shape[-3:]))
    return out(flat).permute(0, 2, 3, 1).reshape(pixels.shape)


def _as_torch(array: np.ndarray, dtype: str) -> torch.Tensor:
    """A kernel output array as a torch tensor of ``dtype`` (bfloat16 arrive as int16 bits)."""
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if dtype == "bfloat16" else tensor


def _empty(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    return np.empty(shape, dtype=np.int16 if dtype == "bfloat16" else dtype)


def _jpeg(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=93, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    """Real photos of different sizes (one odd-sized)."""
    return [skd.astronaut(), skd.chelsea(), skd.coffee(), skd.rocket()[1:222, 7:340]]


def _batch(items: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = np.cumsum([0] + [len(b) for b in items[:-1]]).astype(np.uint64)
    sizes = np.array([len(b) for b in items], dtype=np.uint64)
    data = np.frombuffer(b"".join(items), dtype=np.uint8).copy()
    return data, offsets, sizes


def _windows(photos: list[np.ndarray], views: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    windows = np.zeros((len(photos), views, 4), dtype=np.int32)
    for i, p in enumerate(photos):
        h, w = p.shape[:2]
        for k in range(views):
            ch, cw = int(rng.integers(8, h + 1)), int(rng.integers(8, w + 1))
            windows[i, k] = (rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1), ch, cw)
    flips = rng.integers(0, 2, size=(len(photos), views)).astype(np.uint8)
    return windows, flips


# ------------------------------------------------------------------ the formula
@pytest.mark.parametrize("seed", range(6))
def test_lut_is_torch_normalization(seed):
    """Every byte of every channel maps to torch's value: float32 bit for bit, 16-bit casts."""
    rng = np.random.default_rng(seed)
    if seed == 0:
        mean, std = IMAGENET.mean, IMAGENET.std
    elif seed == 1:  # huge values (float16 overflows to inf) and values near 0 (subnormals)
        mean, std = (0.5, 0.2, 1e-3), (1e-6, 3e-5, 0.7)
    else:
        mean = tuple(rng.uniform(-1, 2, 3).tolist())
        std = tuple(rng.uniform(1e-3, 3, 3).tolist())
    expected = (
        _torch_normalized(
            np.tile(np.arange(256, dtype=np.uint8), (1, 1, 1))
            .reshape(1, 256, 1, 1)
            .repeat(3, axis=3),
            mean,
            std,
            "float32",
        )
        .reshape(256, 3)
        .T
    )
    lut = torch.from_numpy(pixel_lut("float32", mean, std))
    assert torch.equal(lut, expected)
    for name, dtype in FLOAT_DTYPES.items():
        if name == "float32":
            continue
        bits = torch.from_numpy(pixel_lut(name, mean, std).view(np.int16)).view(dtype)
        assert torch.equal(bits, expected.to(dtype)), name


def test_lut_plain_cast_and_bad_arguments():
    for name, dtype in FLOAT_DTYPES.items():
        lut = torch.from_numpy(pixel_lut(name).view(np.int16 if name != "float32" else np.float32))
        expected = torch.arange(256, dtype=torch.float32).expand(3, 256).to(dtype)
        assert torch.equal(lut.view(dtype) if name != "float32" else lut, expected)
    with pytest.raises(ValueError, match="std"):
        pixel_lut("float32", (0.5, 0.5, 0.5), (0.1, 0.0, 0.1))
    with pytest.raises(ValueError, match="both"):
        pixel_lut("float32", (0.5, 0.5, 0.5), None)
    with pytest.raises(ValueError, match="dtype"):
        pixel_lut("float64")


# ------------------------------------------------------------------ the batch kernel
@pytest.mark.parametrize("dtype", list(FLOAT_DTYPES))
@pytest.mark.parametrize("image_format", ["jpeg", "yuv420"])
@pytest.mark.parametrize("views", [1, 3])
def test_batch_equals_torch_normalized_uint8(photos, dtype, image_format, views):
    """Flips, K views of different sizes, JPEG and YUV420: equal to the torch oracle."""
    if image_format == "jpeg":
        items = [_jpeg(p) for p in photos]
    else:
        items = [rgb_to_yuv420(p).tobytes() for p in photos]
    data, offsets, sizes = _batch(items)
    heights = np.array([p.shape[0] for p in photos], dtype=np.int32)
    widths = np.array([p.shape[1] for p in photos], dtype=np.int32)
    windows, flips = _windows(photos, views, seed=views)
    flips[0, :] = 1  # at least one flipped and one not
    flips[1, :] = 0
    out_sizes = [(224, 224), (96, 80), (33, 47)][:views]
    wins = windows if views > 1 else np.ascontiguousarray(windows[:, 0])
    fl = flips if views > 1 else np.ascontiguousarray(flips[:, 0])
    decoder = NativeDecoder(2)
    b = len(photos)
    ref = [np.empty((b, h, w, 3), dtype=np.uint8) for h, w in out_sizes]
    assert not decoder.decode_views_batch(
        data, offsets, sizes, wins, fl, ref, image_format, heights, widths
    )
    got = [_empty((b, h, w, 3), dtype) for h, w in out_sizes]
    mean, std = IMAGENET.mean, IMAGENET.std
    assert not decoder.decode_views_batch(
        data, offsets, sizes, wins, fl, got, image_format, heights, widths, dtype, mean, std
    )
    for r, g in zip(ref, got, strict=True):
        expected = _torch_normalized(r, mean, std, dtype)
        result = _as_torch(g, dtype)
        assert result.dtype == FLOAT_DTYPES[dtype]
        assert torch.allclose(result.float(), expected.float(), atol=1e-6, rtol=0)
        assert torch.equal(result, expected)  # in fact bit for bit
    # Without normalization: a plain cast of the uint8 result.
    plain = [_empty((b, h, w, 3), dtype) for h, w in out_sizes]
    assert not decoder.decode_views_batch(
        data, offsets, sizes, wins, fl, plain, image_format, heights, widths, dtype
    )
    for r, p in zip(ref, plain, strict=True):
        assert torch.equal(_as_torch(p, dtype), torch.from_numpy(r).to(FLOAT_DTYPES[dtype]))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_failed_sample_is_normalized_zero(photos, dtype):
    """A corrupt sample: reported, its pixels are pixel value 0 normalized; others intact."""
    items = [_jpeg(p) for p in photos]
    items[2] = items[2][:200]  # truncated
    data, offsets, sizes = _batch(items)
    windows, flips = _windows(photos, 1, seed=5)
    wins, fl = np.ascontiguousarray(windows[:, 0]), np.ascontiguousarray(flips[:, 0])
    decoder = NativeDecoder(2)
    ref = np.empty((len(photos), 64, 64, 3), dtype=np.uint8)
    got = _empty(ref.shape, dtype)
    mean, std = IMAGENET.mean, IMAGENET.std
    failed_u8 = decoder.decode_views_batch(data, offsets, sizes, wins, fl, [ref])
    failed = decoder.decode_views_batch(
        data, offsets, sizes, wins, fl, [got], out_dtype=dtype, mean=mean, std=std
    )
    assert [f[:2] for f in failed] == [f[:2] for f in failed_u8] and failed[0][0] == 2
    assert not ref[2].any()
    assert torch.equal(_as_torch(got, dtype), _torch_normalized(ref, mean, std, dtype))


def test_batch_rejects_mismatched_outputs(photos):
    data, offsets, sizes = _batch([_jpeg(photos[0])])
    wins = np.array([[0, 0, 64, 64]], dtype=np.int32)
    fl = np.zeros(1, dtype=np.uint8)
    decoder = NativeDecoder(1)
    with pytest.raises(ValueError, match="dtype"):
        decoder.decode_views_batch(
            data, offsets, sizes, wins, fl, [np.empty((1, 8, 8, 3), np.uint8)], out_dtype="float32"
        )
    with pytest.raises(ValueError, match="uint8"):
        decoder.decode_views_batch(
            data, offsets, sizes, wins, fl, [np.empty((1, 8, 8, 3), np.uint8)],
            mean=IMAGENET.mean, std=IMAGENET.std,
        )  # fmt: skip


# ------------------------------------------------------------------ the engines
FLOAT_PIPELINES = {
    "float32": supervised_train(64, dtype="float32"),
    "bfloat16": supervised_train(64, dtype="bfloat16"),
    "float16-plain": supervised_train(64, dtype="float16", normalize=False),
}


@pytest.mark.parametrize("pipelines", list(FLOAT_PIPELINES))
@pytest.mark.parametrize(
    "engine", engine_params(["native-jpeg", "native-yuv420", "dali-cpu-jpeg", "dali-cpu-yuv420"])
)
def test_engine_float_output_equals_torch_normalized_uint8(yuv_dataset, engine, pipelines):
    """A CPU loader's float batches == its uint8 batches (same crops) normalized in torch."""
    pipes = FLOAT_PIPELINES[pipelines]
    raw = {name: replace(p, normalize=None, dtype="uint8") for name, p in pipes.items()}
    floats = make_loader(yuv_dataset, engine, 64, pipes, seed=3)
    uint8 = make_loader(yuv_dataset, engine, 64, raw, seed=3)
    outputs = {name: ImageOutput(p, torch.device("cpu")) for name, p in pipes.items()}
    for got, ref in zip(floats, uint8, strict=True):
        image = got["image"]
        assert image.dtype == outputs["image"].dtype
        assert image.is_contiguous(memory_format=torch.channels_last)
        expected = outputs["image"](ref["image"].permute(0, 2, 3, 1))
        assert torch.equal(image, expected)


# ------------------------------------------------------------------ the DALI operator
@pytest.mark.dali
@pytest.mark.parametrize("dtype", list(FLOAT_DTYPES))
def test_dali_operator_equals_native_kernel(photos, dtype):
    """fn.slipstream_decode_crop(dtype, mean, std), K views and a corrupt sample: the same
    elements as the native kernel, the same status."""
    pytest.importorskip("nvidia.dali", reason="nvidia-dali is not installed")
    from nvidia.dali import fn, pipeline_def

    from slipstream.dali import decode_crop

    items = [_jpeg(p) for p in photos]
    items[1] = items[1][:300]  # truncated: status 2, normalized zero pixels
    windows, flips = _windows(photos, 2, seed=9)
    mean, std = IMAGENET.mean, IMAGENET.std

    def source():
        yield (
            [np.frombuffer(b, dtype=np.uint8) for b in items],
            list(windows),
            list(flips),
        )

    @pipeline_def(batch_size=len(items), num_threads=2, device_id=None, prefetch_queue_depth=1)
    def pipe():
        jpegs, wins, fl = fn.external_source(source, num_outputs=3, cycle="raise")
        return decode_crop(
            jpegs, wins, size=(72, 56), flip=fl, status=True, dtype=dtype, mean=mean, std=std
        )

    p = pipe()
    p.build()
    images, status = p.run()
    got = np.stack([np.array(t) for t in images])  # [B, K, H, W, 3]
    codes = np.array([int(np.array(t)) for t in status])
    data, offsets, sizes = _batch(items)
    outs = [_empty((len(items), 72, 56, 3), dtype) for _ in range(2)]
    failures = NativeDecoder(2).decode_views_batch(
        data, offsets, sizes, windows, flips, outs, out_dtype=dtype, mean=mean, std=std
    )
    assert [(i, c) for i, c, _ in failures] == [(1, int(codes[1]))]
    assert codes.tolist() == [0, codes[1], 0, 0] and codes[1] != 0
    expected = np.stack(outs, axis=1)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    with pytest.raises(ValueError, match="float dtype"):
        decode_crop(None, None, size=8, dtype="uint8", mean=mean, std=std)
    with pytest.raises(ValueError, match="mixed"):
        decode_crop(None, None, size=8, device="mixed", dtype="float32")


@pytest.mark.parametrize("dtype", list(FLOAT_DTYPES))
def test_unaligned_output_equals_aligned(photos, dtype):
    """Aligned outputs take non-temporal stores, others plain ones: the same elements."""
    data, offsets, sizes = _batch([_jpeg(p) for p in photos])
    windows, flips = _windows(photos, 1, seed=2)
    wins, fl = np.ascontiguousarray(windows[:, 0]), np.ascontiguousarray(flips[:, 0])
    shape = (len(photos), 57, 61, 3)
    aligned = _empty(shape, dtype)
    n = int(np.prod(shape))
    spare = _empty((n + 1,), dtype)
    unaligned = spare[1:].reshape(shape)  # 2 or 4 bytes off the buffer's alignment
    assert unaligned.ctypes.data % 16 != 0
    decoder = NativeDecoder(2)
    for out in (aligned, unaligned):
        assert not decoder.decode_views_batch(
            data, offsets, sizes, wins, fl, [out], out_dtype=dtype, mean=IMAGENET.mean,
            std=IMAGENET.std,
        )  # fmt: skip
    assert np.array_equal(aligned, unaligned)
