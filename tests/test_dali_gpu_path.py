"""The nvJPEG path (decode_device="mixed"): its graph checked on DALI's CPU decoder, GPU runs.

Without a GPU, the same graph (region decode with the same windows -> antialiased resize
-> one crop_mirror_normalize) runs on DALI's CPU decoder and is compared with the native
kernel: DALI's resampling differs from Pillow's, so pixels agree within a tolerance, not
bit for bit. The tests marked ``gpu`` run the real mixed path and skip without a GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip(
    "nvidia.dali", reason="nvidia-dali is not installed (pip install 'slipstream[dali]')"
)

from nvidia.dali import fn, pipeline_def  # noqa: E402

import slipstream.dali as sdali  # noqa: E402
from slipstream import SlipstreamLoader  # noqa: E402
from slipstream.dali.engine import normalized_images  # noqa: E402
from slipstream.dali.ops import NvjpegOptions, slice_decode_resize  # noqa: E402
from slipstream.native import decode_crop as native_decode_crop  # noqa: E402
from slipstream.pipelines import (  # noqa: E402
    DecodeRandomResizedCrop,
    ImagePipeline,
    Normalize,
    supervised_train,
)
from slipstream.sampling.crops import random_resized_crop  # noqa: E402
from slipstream.transforms.output import ImageOutput  # noqa: E402

pytestmark = pytest.mark.dali

BATCH = 32
# Full-resolution decode + DALI's antialiased linear resize against the native kernel's
# DCT-scaled decode + Pillow-exact resize, same windows (measured on the photo fixture:
# mean 1.42 levels, 99th percentile 10, max 30). A window misplaced by a few source pixels
# breaks these bounds (the negative control below).
MEAN_ABS_TOLERANCE = 2.5  # mean |difference| over a batch, in uint8 levels
P99_TOLERANCE = 16  # 99th percentile of |difference|


def _inputs(photo_dataset, size=(48, 64)):
    ids = np.arange(BATCH, dtype=np.int64)
    heights, widths = photo_dataset.image_sizes()
    jpegs = [np.array(photo_dataset.cache.item_bytes("image", int(i))) for i in ids]
    windows = random_resized_crop(heights[ids], widths[ids], ids, seed=3, epoch=0)
    flips = (np.arange(BATCH) % 2).astype(np.uint8)
    triples = zip(jpegs, windows, flips, strict=True)
    native = np.stack([native_decode_crop(j, w, size, flip=bool(f)) for j, w, f in triples])
    return jpegs, windows, flips, native


def _assert_close(expected: np.ndarray, got: np.ndarray) -> None:
    diff = np.abs(expected.astype(np.float64) - got.astype(np.float64))
    assert diff.mean() <= MEAN_ABS_TOLERANCE, diff.mean()
    assert np.percentile(diff, 99) <= P99_TOLERANCE, np.percentile(diff, 99)


def _run_cpu(graph, arrays):
    def source():
        yield arrays

    @pipeline_def(batch_size=BATCH, num_threads=2, device_id=None)
    def pipe():
        return graph(*fn.external_source(source, num_outputs=len(arrays), cycle="raise"))

    p = pipe()
    p.build()
    return np.stack([np.array(t) for t in p.run()[0]])


VARIANTS = [
    NvjpegOptions("slice"),
    NvjpegOptions("crop"),
    NvjpegOptions("slice", hw_decoder_load=0.9, preallocate_width_hint=512,
                  preallocate_height_hint=512),
    NvjpegOptions("crop", hw_decoder_load=0.0, fancy_upsampling=True),
]  # fmt: skip
VARIANT_IDS = ["slice", "crop", "slice-hw", "crop-fancy"]


@pytest.mark.parametrize("nvjpeg", VARIANTS, ids=VARIANT_IDS)
def test_region_graph_matches_native_windows(photo_dataset, nvjpeg):
    """Each variant's window (anchor/shape order, crop position) and output size are right."""
    jpegs, windows, _, native = _inputs(photo_dataset)
    unflipped = np.stack(
        [native_decode_crop(j, w, (48, 64)) for j, w in zip(jpegs, windows, strict=True)]
    )

    def graph(j, w):
        return slice_decode_resize(j, w, (48, 64), decoder_device="cpu", nvjpeg=nvjpeg)

    got = _run_cpu(graph, (jpegs, list(windows)))
    assert got.shape == (BATCH, 48, 64, 3) and got.dtype == np.uint8
    _assert_close(unflipped, got)
    assert not np.array_equal(native, unflipped)  # the flips below are not a no-op
    shifted = windows + np.array([3, 3, -6, -6], np.int32)  # negative control: 3 px inside
    off = _run_cpu(graph, (jpegs, list(shifted)))
    with pytest.raises(AssertionError):
        _assert_close(unflipped, off)


def test_crop_variant_places_windows_exactly(photo_dataset):
    """image_crop's crop_pos lands on the window's own pixels: equal to image_slice's."""
    jpegs, windows, _, _ = _inputs(photo_dataset)
    edges = windows.copy()  # windows at the image's edges and spanning whole sides
    heights, widths = photo_dataset.image_sizes()
    edges[::4, 1] = 0
    edges[1::4, 1] = widths[1:BATCH:4] - edges[1::4, 3]
    edges[2::4, 0] = heights[2:BATCH:4] - edges[2::4, 2]
    edges[3::4] = np.stack(
        [np.zeros(BATCH // 4), np.zeros(BATCH // 4), heights[3:BATCH:4], widths[3:BATCH:4]], 1
    )
    for w in (windows, edges):
        sliced, cropped = (
            _run_cpu(
                lambda j, w_, v=v: slice_decode_resize(
                    j, w_, (40, 40), decoder_device="cpu", nvjpeg=NvjpegOptions(v)
                ),
                (jpegs, list(w.astype(np.int32))),
            )
            for v in ("slice", "crop")
        )
        np.testing.assert_array_equal(sliced, cropped)


def test_nvjpeg_options_are_checked():
    with pytest.raises(ValueError, match="variant must be one of"):
        NvjpegOptions("random")
    with pytest.raises(ValueError, match="hw_decoder_load"):
        NvjpegOptions(hw_decoder_load=1.5)
    options = NvjpegOptions("crop", hw_decoder_load=0.5, preallocate_width_hint=640)
    assert options.decoder_kwargs("cpu") == {}  # the hardware decoder's settings: mixed only
    assert options.decoder_kwargs("mixed") == {
        "hw_decoder_load": 0.5, "preallocate_width_hint": 640, "preallocate_height_hint": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("normalize", "dtype"),
    [(None, "uint8"), (Normalize(), "float32"), (Normalize(), "float16"), (None, "float32")],
)
@pytest.mark.parametrize("variant", ["slice", "crop"])
def test_fused_flip_normalize_cast_matches_loader_output(photo_dataset, normalize, dtype, variant):
    jpegs, windows, flips, native = _inputs(photo_dataset)
    pipeline = ImagePipeline(DecodeRandomResizedCrop((48, 64)), normalize=normalize, dtype=dtype)
    nvjpeg = NvjpegOptions(variant)
    got = _run_cpu(
        lambda j, w, f: normalized_images(j, w, f, pipeline, "cpu", nvjpeg),
        (jpegs, list(windows), list(flips)),
    )
    output = ImageOutput(pipeline, torch.device("cpu"))
    expected = output(torch.from_numpy(native)).float().numpy()
    got_out = output(torch.from_numpy(got), normalized=True)
    assert got_out.dtype == output.dtype and got_out.shape == (BATCH, 3, 48, 64)
    got_np = got_out.float().numpy()
    if normalize is None:
        _assert_close(expected, got_np)
    else:  # back to uint8 levels: x * 255 * std + 255 * mean
        std = np.array(normalize.std).reshape(1, 3, 1, 1) * 255
        mean = np.array(normalize.mean).reshape(1, 3, 1, 1) * 255
        _assert_close(expected * std + mean, got_np * std + mean)


def test_mixed_without_gpu_pipeline_is_a_clear_error():
    @pipeline_def(batch_size=2, num_threads=1, device_id=None)
    def pipe():
        jpegs, windows = fn.external_source(name="jpegs"), fn.external_source(name="windows")
        return sdali.decode_crop(jpegs, windows, size=32, device="mixed")

    with pytest.raises(RuntimeError, match="device_id=None"):
        pipe()


def test_mixed_needs_dali_and_cuda(photo_dataset):
    pipelines = supervised_train(32)
    with pytest.raises(ValueError, match="no decode engine for .*decode_device='mixed'"):
        SlipstreamLoader(photo_dataset, 8, pipelines, device="cpu", decode_device="mixed")
    with pytest.raises(ValueError, match="decode_device must be one of"):
        SlipstreamLoader(photo_dataset, 8, pipelines, device="cpu", decode_device="gpu")
    loader = SlipstreamLoader(photo_dataset, 8, pipelines, device="cpu", backend="dali")
    assert loader.decode_device == "cpu"


def test_external_source_settings():
    class Source:
        output_names = ("a", "b", "c")

        def __iter__(self):
            yield [np.zeros(2, np.uint8)], [np.ones(1, np.int32)], [np.array(5)]

    @pipeline_def(batch_size=1, num_threads=1, device_id=None)
    def pipe():
        return tuple(sdali.external_source(Source()))

    p = pipe()
    p.build()
    a, b, c = (np.array(t.as_tensor()) for t in p.run())
    assert a.tolist() == [[0, 0]] and b.tolist() == [[1]] and c.tolist() == [5]
    with pytest.raises(ValueError, match="num_outputs"):
        sdali.external_source(object())


# ---------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_mixed_loader_close_to_native(photo_dataset, dtype):
    normalize = Normalize() if dtype == "float32" else None
    pipelines = {"image": ImagePipeline(DecodeRandomResizedCrop(64), 0.5, normalize, dtype)}
    kwargs = {"batch_size": 50, "seed": 4, "num_workers": 2}
    native = SlipstreamLoader(photo_dataset, pipelines=pipelines, device="cpu", **kwargs)
    mixed = SlipstreamLoader(
        photo_dataset, pipelines=pipelines, device="cuda", backend="dali", **kwargs
    )
    assert mixed.decode_device == "mixed"
    for epoch in range(3):  # three full epochs in a row
        native.set_epoch(epoch)
        mixed.set_epoch(epoch)
        count = 0
        for a, b in zip(native, mixed, strict=True):
            assert b["image"].is_cuda and b["image"].dtype == a["image"].dtype
            assert torch.equal(a["label"], b["label"].cpu())
            x, y = a["image"].float().numpy(), b["image"].float().cpu().numpy()
            if normalize is not None:
                std = np.array(normalize.std).reshape(1, 3, 1, 1) * 255
                x, y = x * std, y * std
            _assert_close(x, y)
            count += b["image"].shape[0]
        assert count == len(photo_dataset)


@pytest.mark.gpu
def test_cpu_operator_to_cuda_is_bit_exact(photo_dataset):
    pipelines = supervised_train(64, normalize=False, dtype="uint8")
    kwargs = {"batch_size": 64, "seed": 2, "num_workers": 2}
    native = SlipstreamLoader(photo_dataset, pipelines=pipelines, device="cpu", **kwargs)
    dali = SlipstreamLoader(
        photo_dataset, pipelines=pipelines, device="cuda", backend="dali",
        decode_device="cpu", **kwargs,
    )  # fmt: skip
    for a, b in zip(native, dali, strict=True):
        assert b["image"].is_cuda
        assert torch.equal(a["image"], b["image"].cpu())
