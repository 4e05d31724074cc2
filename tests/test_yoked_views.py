"""Yoked views: several crops of one image at different scales that share a center."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slipstream import SlipstreamLoader
from slipstream.native import decode_crop
from slipstream.pipelines import DecodeRandomResizedCrop, dino, lejepa, multicrop, simclr
from slipstream.pipelines.spec import DecodeCenterCrop, ImagePipeline, YokedCrop
from slipstream.pipelines.ssl import yoke
from slipstream.sampling import crops

SIZES = [(256, 340), (500, 375), (256, 256), (600, 200), (192, 320), (320, 240)]
GLOBAL = (0.4, 1.0)
LOCAL = (0.05, 0.4)
RATIO = (3 / 4, 4 / 3)


def _batch(n: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = np.array(SIZES)[rng.integers(0, len(SIZES), n)]
    return sizes[:, 0], sizes[:, 1], rng.permutation(10 * n)[:n]


def _yoked_windows(H, W, ids, *, seed=5, epoch=2):
    """``[B, 1 + 4, 4]``: a global anchor (view 0), a yoked global (1), 3 yoked locals."""
    anchor = DecodeRandomResizedCrop(224, scale=GLOBAL)
    specs = [YokedCrop(224, anchor, 0, scale=GLOBAL)] + [
        YokedCrop(96, anchor, 0, scale=LOCAL) for _ in range(3)
    ]
    views = [anchor.windows(H, W, ids, seed=seed, epoch=epoch, view=0)]
    views += [s.windows(H, W, ids, seed=seed, epoch=epoch, view=v + 1) for v, s in enumerate(specs)]
    return np.stack(views, axis=1), [GLOBAL, GLOBAL, LOCAL, LOCAL, LOCAL]


def _assert_inside(win, H, W):
    y, x, h, w = np.moveaxis(win.astype(np.int64), -1, 0)
    assert (h >= 1).all() and (w >= 1).all() and (y >= 0).all() and (x >= 0).all()
    assert (y + h <= H[:, None]).all() and (x + w <= W[:, None]).all()


def test_centers_shared_windows_inside_scales_in_range():
    H, W, ids = _batch()
    win, scales = _yoked_windows(H, W, ids)
    assert win.dtype == np.int32 and win.shape == (len(ids), 5, 4)
    _assert_inside(win, H, W)
    centers = crops.window_centers(win)
    assert np.abs(centers - centers[:, :1]).max() <= 0.5
    # Area fraction and aspect within range up to rounding each side to whole pixels.
    h, w = win[..., 2].astype(np.float64), win[..., 3].astype(np.float64)
    area = (H * W)[:, None].astype(np.float64)
    lo = np.array([s[0] for s in scales])
    hi = np.array([s[1] for s in scales])
    # where the anchor itself is in range (torchvision's fallback may leave it below)
    fine = (h[:, 0] + 0.5) * (w[:, 0] + 0.5) / area[:, 0] >= GLOBAL[0]
    assert fine.mean() > 0.9
    assert ((h[fine] + 0.5) * (w[fine] + 0.5) / area[fine] >= lo).all()
    assert ((h - 0.5) * (w - 0.5) / area <= hi).all()
    assert ((w + 0.5) / (h - 0.5) >= RATIO[0]).all() and ((w - 0.5) / (h + 0.5) <= RATIO[1]).all()
    # Views really differ in scale: the locals are smaller than the anchor.
    assert (h[:, 2:] * w[:, 2:] < h[:, :1] * w[:, :1]).mean() > 0.95
    # The local scales cover their range (not stuck at a bound).
    local = (h[:, 2:] * w[:, 2:] / area).ravel()
    assert local.min() < 0.07 and local.max() > 0.35


def test_centers_near_the_border_and_odd_sides():
    """Tiny and elongated images, centers at pixel edges: still inside and shared."""
    H = np.array([1, 2, 3, 7, 40, 1000, 33, 500])
    W = np.array([1, 5, 2, 7, 1000, 40, 33, 499])
    ids = np.arange(len(H))
    for view in range(20):
        anchor = crops.random_resized_crop(H, W, ids, seed=view, epoch=0, view=0)
        c = crops.window_centers(anchor)
        win = crops.centered_resized_crop(H, W, c, ids, seed=view, epoch=0, view=1, scale=LOCAL)
        _assert_inside(win[:, None], H, W)
        assert np.abs(crops.window_centers(win) - c).max() <= 0.5
    # Any center strictly inside works, however close to an edge.
    c = np.array([[0.5, 0.5], [1.0, 4.9], [2.9, 0.1], [3.5, 3.5]])
    win = crops.centered_resized_crop(H[:4], W[:4], c, ids[:4], seed=0, epoch=0)
    _assert_inside(win[:, None], H[:4], W[:4])
    assert np.abs(crops.window_centers(win) - c).max() <= 0.5
    with pytest.raises(ValueError, match="strictly inside"):
        crops.centered_resized_crop(H[:1], W[:1], np.array([[1.0, 0.5]]), ids[:1], seed=0, epoch=0)
    with pytest.raises(ValueError, match="centers must have shape"):
        crops.centered_resized_crop(H, W, c, ids, seed=0, epoch=0)


def test_keyed_whatever_the_batch():
    H, W, ids = _batch(500)
    full, _ = _yoked_windows(H, W, ids)
    order = np.random.default_rng(1).permutation(len(ids))
    for part in np.array_split(order, 7):  # other batch compositions and positions
        got, _ = _yoked_windows(H[part], W[part], ids[part])
        np.testing.assert_array_equal(got, full[part])
    other_epoch, _ = _yoked_windows(H, W, ids, epoch=3)
    assert (other_epoch != full).any(axis=(1, 2)).mean() > 0.95


def test_anchor_keeps_its_windows_and_center_crop_anchor():
    H, W, ids = _batch(200)
    plain = dino(augment=False)
    yoked = dino(augment=False, yoked=True)
    assert yoked["global_0"] == plain["global_0"]
    for name in ("global_1", "local_0", "local_7"):
        crop = yoked[name].crop
        assert isinstance(crop, YokedCrop) and crop.anchor == plain["global_0"].crop
        assert crop.anchor_view == 0 and crop.scale == plain[name].crop.scale
        assert crop.output_size == plain[name].crop.output_size
        assert yoked[name].view == plain[name].view
    # A deterministic anchor: every view centred on the (whole-pixel) center crop's center.
    spec = YokedCrop(32, DecodeCenterCrop(64), scale=LOCAL)
    win = spec.windows(H, W, ids, seed=0, epoch=0, view=3)
    center = crops.window_centers(DecodeCenterCrop(64).windows(H, W, ids, seed=0, epoch=0))
    assert np.abs(crops.window_centers(win) - center).max() <= 0.5
    assert np.abs(center - np.stack([H / 2, W / 2], axis=1)).max() <= 1


def test_yoke_api():
    views = yoke(simclr(64, augment=False))
    assert isinstance(views["view_1"].crop, YokedCrop)
    assert isinstance(views["view_0"].crop, DecodeRandomResizedCrop)
    only = yoke(lejepa(augment=False), anchor="global_1", members=["local_0"])
    assert only["local_0"].crop.anchor_view == 1
    assert isinstance(only["local_1"].crop, DecodeRandomResizedCrop)
    assert isinstance(only["global_0"].crop, DecodeRandomResizedCrop)
    mc = multicrop(
        global_size=64, local_size=32, global_crops=1, local_crops=2,
        global_scale=GLOBAL, local_scale=LOCAL, yoked=True,
    )  # fmt: skip
    kinds = [type(p.crop).__name__ for p in mc.values()]
    assert kinds == ["DecodeRandomResizedCrop", "YokedCrop", "YokedCrop"]
    with pytest.raises(KeyError, match="unknown anchor"):
        yoke(simclr(), anchor="nope")
    a = ImagePipeline(DecodeRandomResizedCrop(8), field="image")
    with pytest.raises(ValueError, match="anchor's view"):
        yoke({"a": a, "b": ImagePipeline(DecodeRandomResizedCrop(8), field="image")})
    with pytest.raises(ValueError, match="yoke needs DecodeRandomResizedCrop"):
        yoke({"a": a, "b": ImagePipeline(DecodeCenterCrop(8), field="image", view=1)})
    with pytest.raises(ValueError, match="reads 'other'"):
        yoke({"a": a, "b": ImagePipeline(DecodeRandomResizedCrop(8), field="other")}, members=["b"])
    other_field = yoke({"a": a, "b": ImagePipeline(DecodeRandomResizedCrop(8), view=1)})
    assert isinstance(other_field["b"].crop, DecodeRandomResizedCrop)  # reads field "b": left alone
    with pytest.raises(TypeError, match="anchor must be"):
        YokedCrop(8, anchor=YokedCrop(8, DecodeRandomResizedCrop(8)))


def _uint8(preset):
    return {
        name: type(p)(p.crop, p.flip_probability, None, "uint8", p.field, p.view)
        for name, p in preset.items()
    }


@pytest.mark.parametrize("backend", ["native", pytest.param("dali", marks=pytest.mark.dali)])
def test_yoked_views_through_the_loader(photo_dataset, backend):
    """Each yoked view equals the decode of its own keyed window alone; centers shared."""
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
    pipelines = _uint8(dino(64, 32, num_local=3, augment=False, yoked=True))
    kwargs = {"seed": 3, "device": "cpu", "num_workers": 2, "backend": backend}
    loader = SlipstreamLoader(photo_dataset, 40, pipelines, **kwargs)
    loader.set_epoch(1)
    cache = photo_dataset.cache
    heights, widths = photo_dataset.image_sizes()
    batch = next(iter(loader))
    ids = batch["index"].numpy()
    H, W = heights[ids], widths[ids]
    anchor = crops.random_resized_crop(H, W, ids, seed=3, epoch=1, view=0, scale=GLOBAL)
    centers = crops.window_centers(anchor)
    for name, pipeline in pipelines.items():
        images = batch[name]
        size = pipeline.crop.output_size
        assert images.shape == (40, 3, *size)
        if name == "global_0":
            windows = anchor
        else:
            windows = crops.centered_resized_crop(
                H, W, centers, ids, seed=3, epoch=1, view=pipeline.view,
                scale=pipeline.crop.scale,
            )  # fmt: skip
        assert np.abs(crops.window_centers(windows) - centers).max() <= 0.5
        flips = crops.flips(ids, seed=3, epoch=1, view=pipeline.view)
        for i in (0, 11, 39):
            want = decode_crop(
                cache.item_bytes("image", int(ids[i])), windows[i], size, flip=bool(flips[i])
            )
            np.testing.assert_array_equal(images[i].permute(1, 2, 0).numpy(), want)
    assert not torch.equal(batch["local_0"], batch["local_1"])
    # Same sample, other batch size: the same views.
    small = SlipstreamLoader(photo_dataset, 16, pipelines, **kwargs)
    small.set_epoch(1)
    other = next(iter(small))
    where = {int(i): k for k, i in enumerate(ids)}
    for k, i in enumerate(other["index"].tolist()):
        if i in where:
            for name in pipelines:
                assert torch.equal(other[name][k], batch[name][where[i]]), (name, i)
