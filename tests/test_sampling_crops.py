"""Tests for keyed randomness and crop windows (slipstream.sampling)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from slipstream.sampling import (
    Stream,
    bits,
    center_crop,
    epoch_order,
    flips,
    random_resized_crop,
    resize_short_center_crop,
    uniform,
)

SIZES = [(256, 340), (500, 375), (256, 256), (600, 200), (100, 1000)]


def _assert_valid(win: np.ndarray, H: np.ndarray, W: np.ndarray) -> None:
    assert win.dtype == np.int32 and win.shape == (len(H), 4)
    y, x, h, w = win.T.astype(np.int64)
    assert (h >= 1).all() and (w >= 1).all()
    assert (y >= 0).all() and (x >= 0).all()
    assert (y + h <= H).all() and (x + w <= W).all()


# ---------------------------------------------------------------- keyed_random


def test_uniform_shape_range_and_no_warnings():
    ids = np.arange(256)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        u = uniform(3, 1, ids, 0, Stream.CROP, 40)
    assert u.shape == (256, 40) and u.dtype == np.float64
    assert (u >= 0).all() and (u < 1).all()
    # 53-bit resolution: values times 2**53 are integers and use the low bits too.
    scaled = u * 2.0**53
    assert np.array_equal(scaled, np.floor(scaled))
    assert (scaled.astype(np.int64) & 1).any()


def test_uniform_moments_and_chi_square():
    u = uniform(0, 0, np.arange(50_000), 0, Stream.CROP, 8).ravel()
    n = u.size
    assert abs(u.mean() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 0.002
    counts = np.bincount((u * 100).astype(int), minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-3


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_uniform_independence_across_keys():
    ids = np.arange(20_000)
    base = uniform(7, 2, ids, 0, Stream.CROP, 4)
    others = {
        "stream": uniform(7, 2, ids, 0, Stream.FLIP, 4),
        "view": uniform(7, 2, ids, 1, Stream.CROP, 4),
        "epoch": uniform(7, 3, ids, 0, Stream.CROP, 4),
        "seed": uniform(8, 2, ids, 0, Stream.CROP, 4),
        "neighbour id": uniform(7, 2, ids + 1, 0, Stream.CROP, 4),
    }
    bound = 4 / math.sqrt(base.size)
    for name, other in others.items():
        assert abs(_corr(base, other)) < bound, name
        # Joint 2-D histogram of (base, other) is uniform: chi-square on 10x10 bins.
        joint = (base * 10).astype(int) * 10 + (other * 10).astype(int)
        assert stats.chisquare(np.bincount(joint.ravel(), minlength=100)).pvalue > 1e-3, name
    # Consecutive draws of one sample, and neighbouring ids at the same draw.
    assert abs(_corr(base[:, 0], base[:, 1])) < 4 / math.sqrt(len(ids))
    assert abs(_corr(base[:-1, 0], base[1:, 0])) < 4 / math.sqrt(len(ids))


def test_uniform_is_pure_function_of_key():
    ids = np.array([5, 1_000_000_007, 0, 2**40], dtype=np.int64)
    a = uniform(1, 2, ids, 3, Stream.CROP, 6)
    assert np.array_equal(a, uniform(1, 2, ids, 3, Stream.CROP, 6))
    # Row independence from batch composition and from num_draws (prefix property).
    assert np.array_equal(a[2:3], uniform(1, 2, ids[2:3], 3, Stream.CROP, 6))
    assert np.array_equal(a[:, :2], uniform(1, 2, ids, 3, Stream.CROP, 2))
    assert np.array_equal(uniform(1, 2, ids.astype(np.uint32) % 7, 3, 1, 1).shape, (4, 1))
    assert bits(1, 2, ids, 3, Stream.CROP, 0).shape == (4, 0)


def test_uniform_rejects_bad_ids():
    with pytest.raises(TypeError):
        uniform(0, 0, np.array([0.5]), 0, Stream.CROP, 1)
    with pytest.raises(ValueError):
        uniform(0, 0, np.zeros((2, 2), dtype=int), 0, Stream.CROP, 1)


# ---------------------------------------------------------------- RRC vs torchvision


def _torchvision_windows(H: int, W: int, n: int) -> np.ndarray:
    img = torch.empty(1, H, W)
    torch.manual_seed(1234)
    scale, ratio = [0.08, 1.0], [3 / 4, 4 / 3]
    get = transforms.RandomResizedCrop.get_params
    return np.array([get(img, scale, ratio) for _ in range(n)], dtype=np.int64)


def _fallback_window(H: int, W: int) -> tuple[int, int, int, int]:
    in_ratio = W / H
    if in_ratio < 3 / 4:
        w, h = W, int(round(W / (3 / 4)))
    elif in_ratio > 4 / 3:
        h, w = H, int(round(H * 4 / 3))
    else:
        h, w = H, W
    return (H - h) // 2, (W - w) // 2, h, w


@pytest.mark.parametrize("H,W", SIZES)
def test_rrc_matches_torchvision_in_distribution(H: int, W: int):
    n = 20_000
    tv = _torchvision_windows(H, W, n)
    ours = random_resized_crop(np.full(n, H), np.full(n, W), np.arange(n), seed=11, epoch=0).astype(
        np.int64
    )
    _assert_valid(ours.astype(np.int32), np.full(n, H), np.full(n, W))
    for name, f in {
        "area fraction": lambda a: a[:, 2] * a[:, 3] / (H * W),
        "log aspect": lambda a: np.log(a[:, 3] / a[:, 2]),
        "relative y": lambda a: (a[:, 0] + a[:, 2] / 2) / H,
        "relative x": lambda a: (a[:, 1] + a[:, 3] / 2) / W,
    }.items():
        p = stats.ks_2samp(f(ours), f(tv)).pvalue
        assert p > 0.01, f"{name}: KS p={p:.4g} for {H}x{W}"
    # Fallback rate: two-proportion z-test (the fallback window is a single point).
    fb = np.array(_fallback_window(H, W))
    k_tv = int((tv == fb).all(axis=1).sum())
    k_ours = int((ours == fb).all(axis=1).sum())
    p_pool = (k_tv + k_ours) / (2 * n)
    if 0 < p_pool < 1:
        z = (k_tv - k_ours) / n / math.sqrt(2 * p_pool * (1 - p_pool) / n)
        assert abs(z) < 3.3, (k_tv, k_ours)
    else:
        assert k_tv == k_ours
    if (H, W) == (100, 1000):
        assert k_ours > n // 2  # this size really exercises the fallback


def test_rrc_matches_torchvision_on_mixed_batch():
    """One batch of mixed image sizes: windows valid, and distributed as torchvision's."""
    rng = np.random.default_rng(5)
    n = 5000
    H = rng.integers(1, 800, n)
    W = rng.integers(1, 800, n)
    win = random_resized_crop(H, W, np.arange(n), seed=0, epoch=4)
    _assert_valid(win, H, W)
    torch.manual_seed(4321)
    get = transforms.RandomResizedCrop.get_params
    tv = np.array(
        [get(torch.empty(1, h, w), [0.08, 1.0], [3 / 4, 4 / 3]) for h, w in zip(H, W, strict=True)],
        dtype=np.int64,
    )
    for name, f in {
        "area fraction": lambda x: x[:, 2] * x[:, 3] / (H * W),
        "log aspect": lambda x: np.log(x[:, 3] / x[:, 2]),
        "center y": lambda x: (x[:, 0] + x[:, 2] / 2) / H,
        "center x": lambda x: (x[:, 1] + x[:, 3] / 2) / W,
    }.items():
        p = stats.ks_2samp(f(win.astype(np.int64)), f(tv)).pvalue
        assert p > 1e-3, (name, p)


@pytest.mark.parametrize("scale,ratio", [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.3, 0.5), (0.5, 2.0))])
def test_rrc_direct_valid_and_within_bounds(scale, ratio):
    rng = np.random.default_rng(2)
    n = 20_000
    H = rng.integers(64, 1000, n)
    W = rng.integers(64, 1000, n)
    win = random_resized_crop(
        H, W, np.arange(n), seed=3, epoch=1, scale=scale, ratio=ratio, method="direct"
    )
    _assert_valid(win, H, W)
    h, w = win[:, 2].astype(float), win[:, 3].astype(float)
    frac = h * w / (H * W)
    aspect = w / h
    # Images whose aspect admits scale[0] somewhere in ratio: bounds hold up to rounding.
    img = W / H
    feasible = (img * scale[0] <= ratio[1]) & (img / scale[0] >= ratio[0])
    tol_frac = (h + w + 1) / (H * W)  # one pixel of rounding on each side
    assert (frac[feasible] >= scale[0] - tol_frac[feasible]).all()
    assert (frac <= scale[1] + tol_frac).all()
    tol_ar = 1.0 / np.minimum(h, w) + 1e-9
    assert (aspect[feasible] >= ratio[0] * (1 - tol_ar[feasible]) - 1e-9).all()
    assert (aspect[feasible] <= ratio[1] * (1 + tol_ar[feasible]) + 1e-9).all()
    # Infeasibly elongated images get the widest/tallest window at the clamped aspect.
    tiny = random_resized_crop([100], [2000], [0], seed=0, epoch=0, method="direct")
    assert tiny[0, 2] == 100 and tiny[0, 3] == round(100 * 4 / 3)


def test_rrc_small_and_degenerate_images():
    H = np.array([1, 1, 2, 1, 3000])
    W = np.array([1, 5000, 1, 2, 1])
    for method in ("torchvision", "direct"):
        win = random_resized_crop(H, W, np.arange(5), seed=0, epoch=0, method=method)
        _assert_valid(win, H, W)


# ---------------------------------------------------------------- keyed invariance


def _rrc(ids: np.ndarray, H: np.ndarray, W: np.ndarray, epoch: int = 0, view: int = 0, **kw):
    return random_resized_crop(H[ids], W[ids], ids, seed=42, epoch=epoch, view=view, **kw)


@pytest.mark.parametrize("method", ["torchvision", "direct"])
def test_windows_keyed_per_sample(method: str):
    N = 1000
    rng = np.random.default_rng(0)
    H = rng.integers(50, 700, N)
    W = rng.integers(50, 700, N)
    ids = np.arange(N)
    ref = _rrc(ids, H, W, method=method)
    assert np.array_equal(ref, _rrc(ids, H, W, method=method))  # repeated call
    for bs in (1, 7, 256):
        got = np.concatenate([_rrc(ids[i : i + bs], H, W, method=method) for i in range(0, N, bs)])
        assert np.array_equal(got, ref), bs
    perm = rng.permutation(N)
    assert np.array_equal(_rrc(perm, H, W, method=method), ref[perm])
    subset = np.sort(rng.choice(N, 100, replace=False))
    assert np.array_equal(_rrc(subset, H, W, method=method), ref[subset])
    for world in (2, 3):
        for rank in range(world):
            order = epoch_order(N, seed=42, epoch=0, rank=rank, world_size=world)
            assert np.array_equal(_rrc(order, H, W, method=method), ref[order])
    # Other epochs and views give other windows (almost all samples change).
    assert (_rrc(ids, H, W, epoch=1, method=method) != ref).any(axis=1).mean() > 0.95
    assert (_rrc(ids, H, W, view=1, method=method) != ref).any(axis=1).mean() > 0.95


def test_flips_keyed_and_balanced():
    ids = np.arange(20_000)
    f = flips(ids, seed=1, epoch=0)
    assert f.dtype == np.uint8 and set(np.unique(f)) <= {0, 1}
    assert abs(f.mean() - 0.5) < 0.02
    assert np.array_equal(flips(ids[::-1], seed=1, epoch=0), f[::-1])
    assert (flips(ids, seed=1, epoch=1) != f).mean() > 0.4
    assert (flips(ids, seed=1, epoch=0, view=1) != f).mean() > 0.4
    assert flips(ids, seed=1, epoch=0, probability=0.0).sum() == 0
    assert flips(ids, seed=1, epoch=0, probability=1.0).all()
    assert abs(flips(ids, seed=1, epoch=0, probability=0.2).mean() - 0.2) < 0.02


# ---------------------------------------------------------------- deterministic crops


def test_center_crop_hand_computed():
    win = center_crop([256, 500, 300, 10], [340, 375, 300, 7])
    expected = [
        [16, 58, 224, 224],  # c = int(0.875 * 256) = 224
        [86, 23, 328, 328],  # c = int(0.875 * 375) = 328
        [19, 19, 262, 262],  # c = int(262.5) = 262
        [2, 0, 6, 6],  # c = int(6.125) = 6
    ]
    assert np.array_equal(win, expected)
    assert win.dtype == np.int32
    full = center_crop([256], [340], crop_ratio=1.0)
    assert full.tolist() == [[0, 42, 256, 256]]


def test_center_crop_non_square_keeps_output_aspect():
    win = center_crop([300, 400], [400, 300], crop_ratio=1.0, output_size=(100, 200))
    # 300x400 (w/h 1.33 < 2): width-limited 200x400; 400x300: 150x300.
    assert win.tolist() == [[50, 0, 200, 400], [125, 0, 150, 300]]
    win = center_crop([300], [1000], crop_ratio=0.5, output_size=(100, 200))
    assert win.tolist() == [[75, 350, 150, 300]]


def test_resize_short_center_crop_hand_computed():
    # 256x340: resized 256x340 (no-op), crop at (16, 58).
    # 500x375: short 375 -> 256, long int(256*500/375)=341; top round(58.5)=58 (half even)
    # -> y = rint(58 * 500/341) = rint(85.04) = 85, h = rint(224 * 500/341) = rint(328.4) = 328.
    win = resize_short_center_crop([256, 500], [340, 375])
    assert win.tolist() == [[16, 58, 224, 224], [85, 23, 328, 328]]
    small = resize_short_center_crop([100], [120], resize_short=256, output_size=300)
    _assert_valid(small, np.array([100]), np.array([120]))
    assert small.tolist()[0][2] == 100  # output larger than resized image: whole height


@pytest.mark.parametrize(
    "H,W", [(500, 375), (256, 340), (333, 517), (1000, 257), (37, 45), (2000, 1500)]
)
def test_resize_short_center_crop_vs_torchvision(H: int, W: int):
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    grid = torch.stack([yy, xx]).float()  # channel 0 = source row, channel 1 = source col
    resized = TF.resize(grid, 256, interpolation=InterpolationMode.NEAREST, antialias=False)
    out = TF.center_crop(resized, [224, 224])
    y0, x0 = out[0, 0, 0].item(), out[1, 0, 0].item()
    y1, x1 = out[0, -1, -1].item(), out[1, -1, -1].item()
    y, x, h, w = resize_short_center_crop([H], [W])[0].tolist()
    # NEAREST samples source floor(i * s) for output pixel i (s = source / resized size):
    # the first crop pixel sits at the window's top-left edge, and the last one starts the
    # final source block of length s, which ends at the window's bottom-right edge.
    sy, sx = H / resized.shape[1], W / resized.shape[2]
    assert abs(y - y0) <= 1 and abs(x - x0) <= 1
    assert abs((y + h) - (y1 + sy)) <= 2 and abs((x + w) - (x1 + sx)) <= 2


@pytest.mark.parametrize("fn", [center_crop, resize_short_center_crop])
def test_validation_errors(fn):
    with pytest.raises(ValueError, match="positive"):
        fn(np.array([0, 5]), np.array([5, 5]))
    with pytest.raises(ValueError, match="1-D"):
        fn(np.array([[5]]), np.array([[5]]))
    with pytest.raises(ValueError, match="match"):
        fn(np.array([5, 5]), np.array([5, 5, 5]))


def test_flip_validation_errors():
    with pytest.raises(ValueError, match="probability"):
        flips(np.arange(3), seed=0, epoch=0, probability=1.5)


def test_rrc_validation_errors():
    with pytest.raises(ValueError, match="positive"):
        random_resized_crop([10, -1], [10, 10], [0, 1], seed=0, epoch=0)
    with pytest.raises(ValueError, match="method"):
        random_resized_crop([10], [10], [0], seed=0, epoch=0, method="nope")
    with pytest.raises(ValueError, match="match"):
        random_resized_crop([10, 10], [10, 10], [0, 1, 2], seed=0, epoch=0)
    with pytest.raises(ValueError, match="ratio"):
        random_resized_crop([10], [10], [0], seed=0, epoch=0, ratio=(2.0, 1.0))
    with pytest.raises(TypeError):
        random_resized_crop([10.5], [10], [0], seed=0, epoch=0)
