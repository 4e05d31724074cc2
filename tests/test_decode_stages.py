"""Decode stages by the original slipstream's names, the old names, and full-resolution outputs.

Oracles: Pillow's JPEG decode (full-resolution RGB, within the JPEG path's stated mean
absolute difference of 1.5), the stored YUV420 companion parsed here with numpy (planes bit
for bit), a BT.601 conversion of Pillow's decode (luma within tolerance), and the crop
sampler's own functions for the renamed specs (same windows).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import slipstream
from slipstream import SlipstreamLoader
from slipstream.cache.yuv420 import build_yuv420
from slipstream.decode.errors import NoDecodeEngineError
from slipstream.pipelines import (
    DecodeCenterCrop,
    DecodeDirectRandomResizedCrop,
    DecodeMultiRandomResizedCrop,
    DecodeOnly,
    DecodeRandomResizedCrop,
    DecodeRandomResizeShortCropLong,
    DecodeResizeCrop,
    DecodeYUVFullRes,
    DecodeYUVPlanes,
    ImagePipeline,
    MultiCropPipeline,
    NamedCopies,
    Normalize,
    YokedCrop,
    make_train_pipeline,
    make_val_pipeline,
    multicrop,
    supervised_train,
)
from slipstream.pipelines.compose import to_pipelines
from slipstream.sampling import crops

H = np.array([300, 200, 257, 512])
W = np.array([400, 200, 190, 333])
IDS = np.array([5, 9, 1, 70])


def _windows(spec, seed=0, epoch=0, view=0):
    return spec.windows(H, W, IDS, seed=seed, epoch=epoch, view=view)


# ------------------------------------------------------------------ names
def test_decode_stage_windows_are_the_samplers():
    rrc = DecodeRandomResizedCrop(64, scale=(0.2, 1.0))
    want = crops.random_resized_crop(H, W, IDS, seed=3, epoch=1, view=2, scale=(0.2, 1.0))
    np.testing.assert_array_equal(_windows(rrc, 3, 1, 2), want)
    direct = DecodeDirectRandomResizedCrop(64)
    want = crops.random_resized_crop(H, W, IDS, seed=0, epoch=0, method="direct")
    np.testing.assert_array_equal(_windows(direct), want)
    np.testing.assert_array_equal(
        _windows(DecodeCenterCrop(56, crop_ratio=224 / 256)),
        crops.center_crop(H, W, crop_ratio=224 / 256, output_size=56),
    )


def test_center_crop_is_the_originals_unresized_window():
    """``DecodeCenterCrop(s)``: the centred s x s source pixels, as the original slipstream."""
    heights, widths = np.array([300, 375, 40, 56]), np.array([500, 280, 90, 56])
    got = DecodeCenterCrop(56).windows(heights, widths, np.arange(4), seed=0, epoch=0)
    want = []
    for h, w in zip(heights, widths, strict=True):
        side = min(56, h, w)  # an image smaller than the crop gives its largest centred square
        want.append([(h - side) // 2, (w - side) // 2, side, side])
    np.testing.assert_array_equal(got, np.array(want, dtype=np.int32))
    wide = DecodeCenterCrop((32, 64)).windows(
        np.array([100, 16]), np.array([200, 200]), np.arange(2), seed=0, epoch=0
    )
    np.testing.assert_array_equal(wide, [[34, 68, 32, 64], [0, 84, 16, 32]])
    resize = DecodeResizeCrop(resize_size=72, crop_size=64)
    assert resize.output_size == (64, 64)
    np.testing.assert_array_equal(
        _windows(resize), crops.resize_short_center_crop(H, W, resize_short=72, output_size=64)
    )


def test_stage_seed_overrides_the_loader_seed():
    pinned = DecodeRandomResizedCrop(64, seed=11)
    np.testing.assert_array_equal(_windows(pinned, seed=0), _windows(pinned, seed=5))
    np.testing.assert_array_equal(_windows(pinned), _windows(DecodeRandomResizedCrop(64), seed=11))
    with pytest.raises(ValueError, match="num_workers"):
        DecodeRandomResizedCrop(224, (0.08, 1), (0.75, 1.33), 8)


def test_resize_short_crop_long_windows():
    spec = DecodeRandomResizeShortCropLong(32)  # centred square of the short side
    win = _windows(spec)
    side = np.minimum(H, W)
    np.testing.assert_array_equal(win[:, 2], side)
    np.testing.assert_array_equal(win[:, 3], side)
    np.testing.assert_array_equal(win[:, 0], np.floor((H - side) / 2 + 0.5).astype(int))
    np.testing.assert_array_equal(win[:, 1], np.floor((W - side) / 2 + 0.5).astype(int))
    left = _windows(DecodeRandomResizeShortCropLong(32, x_range=0.0, y_range=1.0))
    np.testing.assert_array_equal(left[:, 1], 0)
    np.testing.assert_array_equal(left[:, 0], H - side)
    jitter = DecodeRandomResizeShortCropLong(32, x_range=(0.0, 1.0))
    a, b = _windows(jitter, epoch=0), _windows(jitter, epoch=1)
    assert (a[:, 1] <= W - side).all() and not np.array_equal(a, b)
    with pytest.raises(ValueError, match="one int"):
        DecodeRandomResizeShortCropLong((96, 224))


@pytest.mark.parametrize(
    ("old", "args", "new"),
    [
        ("RandomResizedCrop", (64,), DecodeRandomResizedCrop),
        ("DirectRandomResizedCrop", (64,), DecodeDirectRandomResizedCrop),
        ("CenterCrop", (64,), DecodeCenterCrop),
        ("ResizeCrop", (72, 64), DecodeResizeCrop),
        ("ResizeShortCenterCrop", (64, 72), DecodeResizeCrop),
    ],
)
def test_old_names_warn_and_build_the_new_stage(old, args, new):
    import slipstream.pipelines as pipelines

    with pytest.warns(FutureWarning, match=new.__name__):
        spec = getattr(pipelines, old)(*args)
    assert isinstance(spec, new)
    ref = new(*((72, 64) if new is DecodeResizeCrop else args))
    np.testing.assert_array_equal(_windows(spec), _windows(ref))


def test_old_multi_crop_warns_and_keeps_its_views():
    import slipstream.pipelines as pipelines

    with pytest.warns(FutureWarning, match="multicrop"):
        views = pipelines.multi_crop(
            global_size=64,
            local_size=32,
            num_global=2,
            num_local=1,
            global_scale=(0.4, 1.0),
            local_scale=(0.05, 0.4),
        )
    assert list(views) == ["global_0", "global_1", "local_0"]
    assert views["local_0"].crop.ratio == (3 / 4, 4 / 3) and views["local_0"].augment is None


def test_top_level_exports_the_decode_stages():
    for name in ("DecodeOnly", "DecodeRandomResizedCrop", "DecodeMultiRandomResizedCrop"):
        assert getattr(slipstream, name) is getattr(slipstream.pipelines, name)


# ------------------------------------------------------------------ presets
def test_multicrop_has_the_originals_defaults():
    views = multicrop()
    assert list(views) == ["global_0", "global_1"] + [f"local_{k}" for k in range(4)]
    assert views["local_0"].crop.output_size == (98, 98)  # int(0.4375 * 224)
    assert views["global_0"].crop.ratio == (1.0, 1.0)
    assert [p.view for p in views.values()] == list(range(6))
    assert views["global_0"].augment is not None and views["global_0"].flip_probability == 0.5


def test_supervised_presets_take_the_originals_arguments():
    pipes = supervised_train(64, seed=4, device="cpu", dtype=torch.float16)
    image = pipes["image"]
    assert image.device == "cpu" and image.dtype == "float16" and image.crop.seed == 4
    with pytest.raises(ValueError, match="SlipstreamLoader"):
        supervised_train(64, num_threads=4)
    train = make_train_pipeline(64, scale=(0.3, 1.0))
    assert isinstance(train.crop, DecodeRandomResizedCrop) and train.dtype == "float16"
    assert train.flip_probability == 0.0 and train.normalize is not None
    val = make_val_pipeline(64, normalize=False, dtype="uint8")
    assert isinstance(val.crop, DecodeCenterCrop) and val.normalize is None


def test_multi_crop_stage_expands_to_views_and_yokes_shared_seeds():
    multi = DecodeMultiRandomResizedCrop(
        {
            "zoom_out": dict(size=64, scale=(0.4, 1.0), seed=42),
            "zoom_in": dict(size=64, scale=(0.05, 0.4), seed=42),
            "other": dict(size=32),
        }
    )
    views = to_pipelines({"image": [multi, MultiCropPipeline({"zoom_out": [Normalize()]})]})
    assert list(views) == ["zoom_out", "zoom_in", "other"]
    assert [v.view for v in views.values()] == [0, 1, 2]
    assert isinstance(views["zoom_in"].crop, YokedCrop)
    assert views["zoom_in"].crop.anchor_view == 0
    assert views["zoom_out"].normalize is not None and views["other"].dtype == "uint8"
    copies = to_pipelines({"image": [DecodeResizeCrop(72, 64), NamedCopies(["a", "b"])]})
    assert [v.view for v in copies.values()] == [0, 1]
    with pytest.raises(ValueError, match="random window"):
        to_pipelines({"image": [DecodeRandomResizedCrop(64), NamedCopies(["a", "b"])]})


# ------------------------------------------------------------------ full resolution
def _pil(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _loader(dataset, pipelines, **kwargs):
    options = {"device": "cpu", "num_workers": 2, "shuffle": False, "seed": 0}
    options.update(kwargs)
    return SlipstreamLoader(dataset, 8, pipelines, **options)


@pytest.mark.parametrize("backend", ["native", "dali"])
def test_decode_only_gives_full_resolution_rgb(photo_dataset, backend):
    pipes = {"image": ImagePipeline(DecodeOnly()), "small": supervised_train(32)["image"]}
    pipes["small"] = ImagePipeline(DecodeCenterCrop(32), dtype="uint8", field="image")
    loader = _loader(photo_dataset, pipes, backend=backend, indices=np.arange(16))
    seen = 0
    for batch in loader:
        images, ids = batch["image"], batch["index"].tolist()
        assert isinstance(images, list) and len(images) == len(ids)
        assert batch["small"].shape == (len(ids), 3, 32, 32)
        for image, i in zip(images, ids, strict=True):
            ref = _pil(photo_dataset.cache.item_bytes("image", i))
            assert image.dtype == torch.uint8 and image.shape == (3, *ref.shape[:2])
            mad = np.abs(image.permute(1, 2, 0).numpy().astype(np.int16) - ref).mean()
            assert mad <= 1.5, (i, mad)
            seen += 1
    assert seen == 16


def _stored_planes(companion, i: int):
    """The companion item of sample ``i`` parsed with numpy: Y [H, W], U, V [H/2, W/2]."""
    start, size, h, w = (int(companion.meta[i][k]) for k in range(4))
    item = np.asarray(companion.data[start : start + size])
    ph, pw = h + h % 2, w + w % 2
    y = item[: ph * pw].reshape(ph, pw)
    q = (ph // 2) * (pw // 2)
    u = item[ph * pw : ph * pw + q].reshape(ph // 2, pw // 2)
    v = item[ph * pw + q : ph * pw + 2 * q].reshape(ph // 2, pw // 2)
    return y, u, v, h, w


def test_yuv_planes_and_full_res_match_the_stored_companion(yuv_dataset):
    companion = build_yuv420(yuv_dataset.cache, "image", progress=False)
    pipes = {
        "planes": ImagePipeline(DecodeYUVPlanes(), field="image"),
        "yuv": ImagePipeline(DecodeYUVFullRes(), field="image"),
        "rgb": ImagePipeline(DecodeOnly(), field="image"),
    }
    loader = _loader(yuv_dataset, pipes, image_format="yuv420", indices=np.arange(10))
    for batch in loader:
        for k, i in enumerate(batch["index"].tolist()):
            y, u, v, h, w = _stored_planes(companion, i)
            got_y, got_u, got_v = batch["planes"][k]
            np.testing.assert_array_equal(got_y.numpy(), y[:h, :w])
            np.testing.assert_array_equal(got_u.numpy(), u)
            np.testing.assert_array_equal(got_v.numpy(), v)
            full = batch["yuv"][k].numpy()
            assert full.shape == (3, h, w)
            np.testing.assert_array_equal(full[0], y[:h, :w])
            np.testing.assert_array_equal(full[1], np.kron(u, np.ones((2, 2), np.uint8))[:h, :w])
            np.testing.assert_array_equal(full[2], np.kron(v, np.ones((2, 2), np.uint8))[:h, :w])
            # independent: BT.601 luma of Pillow's decode of the source JPEG
            ref = _pil(yuv_dataset.cache.item_bytes("image", i)).astype(np.float64)
            luma = 0.299 * ref[..., 0] + 0.587 * ref[..., 1] + 0.114 * ref[..., 2]
            assert np.abs(full[0] - luma).mean() <= 1.5
            rgb = batch["rgb"][k].permute(1, 2, 0).numpy().astype(np.int16)
            assert rgb.shape == ref.shape and np.abs(rgb - ref).mean() <= 3.0


def test_yuv_outputs_of_jpeg_items_are_an_error(photo_dataset):
    loader = _loader(photo_dataset, {"image": ImagePipeline(DecodeYUVPlanes())}, backend="native")
    with pytest.raises(NoDecodeEngineError, match="image_format='yuv420'"):
        next(iter(loader))


def test_full_resolution_outputs_are_uint8_only():
    with pytest.raises(ValueError, match="own sizes"):
        ImagePipeline(DecodeOnly(), normalize=Normalize())
    with pytest.raises(ValueError, match="own sizes"):
        ImagePipeline(DecodeOnly(), dtype="float32")
    assert ImagePipeline(DecodeOnly()).dtype == "uint8"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ImagePipeline(DecodeRandomResizedCrop(8)).dtype == "float32"


def test_the_issues_example_with_the_old_name_composes():
    from slipstream.pipelines import RandomResizedCrop

    with pytest.warns(FutureWarning, match="DecodeRandomResizedCrop"):
        pipes = to_pipelines({"image": [RandomResizedCrop(224)]})
    assert isinstance(pipes["image"].crop, DecodeRandomResizedCrop)
    assert pipes["image"].dtype == "uint8"
    full = to_pipelines({"image": [DecodeOnly()]})
    assert full["image"].dtype == "uint8"


def test_center_crop_pixels_are_the_pil_center_pixels(photo_dataset):
    """The original's ``DecodeCenterCrop(48)`` through the loader: PIL's centred 48 x 48."""
    loader = _loader(photo_dataset, {"image": [DecodeCenterCrop(48)]}, backend="native")
    batch = next(iter(loader))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape[-2:] == (48, 48)
    for image, i in zip(batch["image"], batch["index"].tolist(), strict=True):
        ref = _pil(photo_dataset.cache.item_bytes("image", i))
        h, w = ref.shape[:2]
        top, left = (h - 48) // 2, (w - 48) // 2
        want = ref[top : top + 48, left : left + 48].astype(np.int16)
        got = image.permute(1, 2, 0).numpy().astype(np.int16)
        # libjpeg-turbo's ROI decode vs Pillow's full decode: the same IDCT, at most
        # a level or two apart where the fancy upsampling sees other neighbours.
        assert np.abs(got - want).mean() < 1.0, i
